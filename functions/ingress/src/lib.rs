//! The ingress function's event glue: API Gateway (HTTP API, payload v2)
//! in front, the one inbound pipeline inside, through the AWS driver's
//! ports ([`Ingress`]). This file turns the API Gateway event into a
//! [`Call`] and the pipeline's reply into a response; what is answered when
//! is the pipeline's (`hookflow_pipeline::inbound`) and the driver's
//! (`hookflow_aws::ingress`).

use std::net::IpAddr;

use hookflow_aws::ingress::Ingress;
use hookflow_core::headers::Headers;
use hookflow_core::run::Reply;
use hookflow_pipeline::inbound::Call;
use lambda_http::{Body, Request, RequestExt, Response};

/// Handles one trigger request.
pub async fn handle(ingress: &Ingress, req: Request) -> Response<Body> {
    respond(&ingress.handle(call_of(&req)).await)
}

/// The API Gateway request as the pipeline's [`Call`].
fn call_of(req: &Request) -> Call<Vec<u8>> {
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/hooks/").unwrap_or("");
    let (tenant, route) = rest.split_once('/').unwrap_or((rest, ""));
    Call {
        tenant: tenant.to_string(),
        route: route.to_string(),
        method: req.method().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect::<Headers>(),
        source_ip: source_ip(req),
        body: req.body().as_ref().to_vec(),
        path,
    }
}

fn respond(reply: &Reply) -> Response<Body> {
    let mut builder = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Body::from(reply.body.clone().unwrap_or_default()))
        .unwrap_or_else(|_| Response::new(Body::from("{\"error\": \"bad response\"}")))
}

/// The source address API Gateway saw.
fn source_ip(req: &Request) -> IpAddr {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => c.http.source_ip.as_deref(),
        _ => None,
    }
    .and_then(|ip| ip.parse().ok())
    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

//! The trigger endpoint of `hookflow dev`: `ANY /hooks/{tenant}/{path}`.
//!
//! The decisions are the core's ([`hookflow_core::inbound`]), shared with
//! the ingress Lambda; this is the axum transport around them, with the
//! embedded store. An accepted request is answered only after its run and
//! jobs are committed, so an event that got a 2xx cannot be lost.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::any;
use hookflow_core::CompiledFlow;
use hookflow_core::auth::Verifier;
use hookflow_core::commit::Commit;
use hookflow_core::headers::Headers;
use hookflow_core::inbound::{self as decide, Arrival, Rejection};
use hookflow_core::run::{InboundRequest, Reply, parse_form};
use serde_json::json;

use crate::runtime::Runtime;
use crate::{now_ms, rfc3339};

pub use hookflow_core::inbound::{DEFAULT_MAX_BODY, DEFAULT_SYNC_TIMEOUT};

/// The router of the trigger endpoint.
pub fn router(rt: Arc<Runtime>) -> Router {
    Router::new().route("/hooks/{tenant}/{*path}", any(handle)).layer(DefaultBodyLimit::disable()).with_state(rt)
}

fn respond(reply: &Reply) -> Response {
    let mut r = Response::new(Body::from(reply.body.clone().unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) = (header::HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
            r.headers_mut().append(k, v);
        }
    }
    r
}

/// Logs a rejection (stdout and the request log) and answers it.
fn reject(rt: &Runtime, a: &Arrival, flow: Option<&CompiledFlow>, r: Rejection) -> Response {
    let (entry, line, reply) = r.record(a, flow);
    rt.write_lines(vec![line]);
    rt.store.commit_detached(Commit { log: vec![entry], ..Default::default() });
    respond(&reply)
}

async fn handle(
    State(rt): State<Arc<Runtime>>,
    Path((tenant, path)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received = now_ms();
    let a = Arrival {
        tenant: tenant.clone(),
        event_id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
        method: method.to_string(),
        path: uri.path().to_string(),
        source_ip: peer.ip().to_string(),
        received,
    };
    let flows = rt.flows();
    let Some(flow) = flows.by_route(&tenant, &path) else {
        return reject(&rt, &a, None, decide::not_found());
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let max = match decide::check_route(&flow, method.as_str(), peer.ip(), declared) {
        Ok(max) => max,
        Err(r) => return reject(&rt, &a, Some(&flow), r),
    };
    let bytes = match axum::body::to_bytes(body, max as usize).await {
        Ok(b) => b,
        Err(_) => return reject(&rt, &a, Some(&flow), decide::too_large(max)),
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Err(r) = decide::check_body(&flow, content_type, bytes.len()) {
        return reject(&rt, &a, Some(&flow), r);
    }
    let mut request = InboundRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect::<Headers>(),
        query: parse_form(uri.query().unwrap_or("")),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        source_ip: peer.ip().to_string(),
        received_at: rfc3339(received),
    };
    let verifier = Verifier::for_trigger(&flow.flow.trigger);
    if let Some(name) = &verifier.secret {
        let Some(secret) = rt.secrets.get(name) else {
            return reject(
                &rt,
                &a,
                Some(&flow),
                Rejection::new(401, format!("the trigger's secret `{name}` is not set")),
            );
        };
        if let Err(e) = verifier.verify_bytes(&request, &bytes, &secret, received / 1000) {
            return reject(&rt, &a, Some(&flow), Rejection::new(401, e.to_string()));
        }
    }
    // The checks below that read the body parse it once, when first needed.
    let parsed = std::sync::OnceLock::new();
    let body_json = || parsed.get_or_init(|| request.parsed_body());
    if let Err(r) = decide::check_shape(&flow, body_json()) {
        return reject(&rt, &a, Some(&flow), r);
    }
    if let Some(reply) = decide::slack_challenge(&flow, body_json()) {
        rt.logger.log(
            "info",
            "slack url_verification answered",
            json!({"tenant": tenant, "flow_id": flow.flow.id, "event_id": a.event_id}),
        );
        return respond(&reply);
    }
    let mut idem = None;
    if let Some((scope, key, window)) = decide::idempotency_scope(&flow, &request, body_json()) {
        match rt.store.idempotent_reply(&scope, received) {
            Ok(Some(stored)) => {
                if let Ok(reply) = serde_json::from_value::<Reply>(stored) {
                    let (entry, line) = decide::duplicate(&a, &flow, &key);
                    rt.write_lines(vec![line]);
                    rt.store.commit_detached(Commit { log: vec![entry], ..Default::default() });
                    return respond(&reply);
                }
            }
            Ok(None) => {}
            Err(e) => return reject(&rt, &a, Some(&flow), Rejection::new(503, format!("store unavailable: {e}"))),
        }
        idem = Some((scope, received + window));
    }

    // The run keeps the request without its credentials (the idempotency
    // key above was read first).
    verifier.strip_credentials(&mut request);
    let run_id = format!("run_{}", uuid::Uuid::now_v7().simple());
    let mut accepted = decide::accept(&flow, &request, (&run_id, &a.event_id), received, idem.clone());
    let ready = rt.lease_ready(&mut accepted.outcome.commit, 0);
    let waiter = accepted.waits.then(|| rt.wait_for_reply(&run_id));
    let has_jobs = accepted.outcome.commit.jobs.len() > ready.len();
    let commit = std::mem::take(&mut accepted.outcome.commit);
    if let Err(e) = rt.store.commit(commit).await {
        rt.forget_reply(&run_id);
        return reject(&rt, &a, Some(&flow), Rejection::new(503, format!("store unavailable: {e}")));
    }
    rt.dispatch(ready);
    rt.write_lines(std::mem::take(&mut accepted.outcome.lines));
    if has_jobs {
        rt.wake();
    }
    let sync = flow.flow.trigger.respond.mode == hookflow_core::flow::RespondMode::Sync;
    let Some(waiter) = waiter else {
        return match accepted.reply {
            Some(reply) => respond(&reply),
            None if sync => respond(&decide::failed_before_answering(&a.event_id)),
            None => respond(&decide::json_reply(
                500,
                json!({"error": "the trigger's answer failed", "event_id": a.event_id}),
            )),
        };
    };
    let timeout = flow.flow.trigger.respond.timeout.map_or(DEFAULT_SYNC_TIMEOUT, |t| t.get());
    match tokio::time::timeout(timeout, waiter).await {
        Ok(Ok(reply)) => {
            if let Some((scope, expires)) = idem {
                let c = Commit {
                    idempotency: Some((scope, serde_json::to_string(&reply).unwrap_or_default(), expires)),
                    ..Default::default()
                };
                let _ = rt.store.commit(c).await;
            }
            respond(&reply)
        }
        // The run ended before its `respond` step.
        Ok(Err(_)) => respond(&decide::failed_before_answering(&a.event_id)),
        Err(_) => {
            rt.forget_reply(&run_id);
            respond(&decide::answer_timed_out(&a.event_id))
        }
    }
}

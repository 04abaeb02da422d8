//! The ingress: API Gateway (HTTP API, payload v2) in front, the one
//! inbound pipeline ([`hookflow_pipeline::inbound::handle`], the same as
//! `hookflow dev`) inside, DynamoDB and SQS behind. This file is transport
//! glue: the API Gateway event to a [`Call`], the pipeline's reply to a
//! response, and the AWS adapters as the pipeline's ports.
//!
//! An async flow is answered after its run is stored and its deliveries
//! queued. The run's item keeps what was queued (its outbox,
//! [`hookflow_aws::outbox`]): a request whose send failed after the run was
//! written is answered 503, and the caller's retry with the same
//! idempotency key, answered as the first was accepted, sends it again.
//!
//! A sync flow runs inline until its `respond` step
//! ([`hookflow_pipeline::inline`]): steps that wait for a response are sent
//! from here, within `respond.timeout`, and whatever is left when the
//! answer is ready (or the time is up: 504) goes to the queues.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hookflow_aws::outbox::ACCEPTED;
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_aws::table::StoredRun;
use hookflow_aws::{Error, metrics};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{Commit, LogEntry};
use hookflow_core::engine::Level;
use hookflow_core::engine::LogLine;
use hookflow_core::headers::Headers;
use hookflow_core::inbound::Accepted;
use hookflow_core::ports::{Claim, Clock, SystemClock};
use hookflow_core::run::Reply;
use hookflow_io::{Logger, Sender};
use hookflow_pipeline::Sampler;
use hookflow_pipeline::inbound::{self, Admitted, Call, InboundPorts, Verdict};
use lambda_http::{Body, Request, RequestExt, Response};

/// What the ingress needs, built once per container.
pub struct Ingress {
    pub store: Store,
    pub secrets: Secrets,
    pub sender: Sender,
    pub logger: Logger,
    /// Which requests to unknown trigger paths are logged (per instance).
    pub unknown_routes: Sampler,
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

impl Ingress {
    /// Handles one trigger request.
    pub async fn handle(&self, req: Request) -> Response<Body> {
        let path = req.uri().path().to_string();
        let rest = path.strip_prefix("/hooks/").unwrap_or("");
        let (tenant, route) = rest.split_once('/').unwrap_or((rest, ""));
        let call = Call {
            tenant: tenant.to_string(),
            route: route.to_string(),
            method: req.method().to_string(),
            query: req.uri().query().unwrap_or("").to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect::<Headers>(),
            source_ip: source_ip(&req),
            body: req.body().as_ref().to_vec(),
            path,
        };
        respond(&inbound::handle(self, call).await)
    }
}

/// DynamoDB, SQS and Secrets Manager as the inbound pipeline's ports.
impl InboundPorts for Ingress {
    type Error = Error;

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    async fn flow(&self, tenant: &str, route: &str) -> Result<Option<Arc<CompiledFlow>>, Error> {
        self.store.table.by_route(tenant, route).await
    }

    async fn secret(&self, name: &str) -> Result<Option<String>, Error> {
        self.secrets.get(name).await
    }

    /// A conditional claim: new, in progress (409) or answered. A key
    /// answered but not yet `completed` (the send after its commit may have
    /// failed) whose run has not moved on has the run's first messages sent
    /// again before it is answered.
    async fn claim(&self, scope: &str, now_ms: i64) -> Result<Claim, Error> {
        // The claim outlives the longest this function can take.
        let (claim, run) = self.store.table.claim_run(scope, now_ms, Duration::from_secs(60)).await?;
        if let (Claim::Completed(_), Some(run)) = (&claim, run)
            && let Some(StoredRun { outbox, .. }) = self.store.table.load_stored(&run).await?
            && outbox.caused_by(ACCEPTED)
        {
            // A copy still unwritten keeps the key `accepted`, for the next
            // retry to write it.
            if self.store.redrive(&outbox, SystemClock.now_ms()).await?.unlogged.is_none() {
                let _ = self.store.table.idempotency_sent(scope).await;
            }
        }
        Ok(claim)
    }

    async fn release(&self, scope: &str) {
        let _ = self.store.table.release(scope).await;
    }

    /// Runs a sync flow's waiting steps inline, then stores the run and
    /// queues what is left.
    async fn admit(
        &self,
        flow: &Arc<CompiledFlow>,
        accepted: Accepted,
        idem: Option<(String, i64)>,
    ) -> Result<Admitted, Error> {
        let (mut out, admitted) =
            hookflow_pipeline::inline::settle(&self.secrets, &self.sender, &SystemClock, flow, accepted, idem.as_ref())
                .await;
        let lines = std::mem::take(&mut out.lines);
        // A new run: its item keeps its log from the start.
        let applied = self.store.apply_from(out.commit, Some(ACCEPTED), Some(""), SystemClock.now_ms()).await?;
        self.lines(lines);
        if let Some(e) = applied.unlogged {
            // Accepted all the same: the run, its entries and its messages
            // are stored and sent; only `hookflow logs` misses the request.
            self.logger.log(
                Level::Warn,
                "a request's log copy under its tenant not written",
                serde_json::json!({"tenant": flow.flow.tenant, "flow_id": flow.flow.id, "error": e.to_string()}),
            );
        }
        Ok(admitted)
    }

    /// The rejection's log entry is best effort: the answer does not wait
    /// on it failing.
    async fn log_request(&self, entry: LogEntry) {
        let at = entry.at;
        if let Err(e) = self.store.table.write(&Commit { log: vec![entry], ..Default::default() }, at).await {
            self.logger.log(Level::Error, "request log write failed", serde_json::json!({"error": e.to_string()}));
        }
    }

    fn lines(&self, lines: Vec<LogLine>) {
        self.logger.lines(lines);
    }

    fn unknown_routes(&self) -> &Sampler {
        &self.unknown_routes
    }

    fn counted(&self, verdict: Verdict, received: i64) {
        self.logger.raw(&metrics::inbound(verdict.as_str(), received));
    }
}

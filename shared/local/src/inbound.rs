//! The trigger endpoint of `hookflow dev`: `ANY /hooks/{tenant}/{path}`.
//!
//! Transport glue around the one inbound pipeline
//! ([`hookflow_pipeline::inbound::handle`], shared with the ingress
//! Lambda): axum's request in, the pipeline's reply out, and the embedded
//! runtime as its ports. An accepted request is answered only after its run
//! and jobs are committed, so an event that got a 2xx cannot be lost.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::any;
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{Commit, LogEntry};
use hookflow_core::engine::LogLine;
use hookflow_core::headers::Headers;
use hookflow_core::inbound::Accepted;
use hookflow_core::ports::Claim;
use hookflow_core::run::Reply;
use hookflow_pipeline::inbound::{self, Admitted, Call, InboundPorts};

use crate::runtime::Runtime;
use crate::{Error, now_ms};

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

async fn handle(
    State(rt): State<Arc<Runtime>>,
    Path((tenant, route)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let call = Call {
        tenant,
        route,
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect::<Headers>(),
        source_ip: peer.ip(),
        body: Streamed(body),
    };
    respond(&inbound::handle(&Ports(rt), call).await)
}

/// axum's body, read up to the route's limit.
struct Streamed(Body);

impl inbound::Body for Streamed {
    type Bytes = Bytes;
    async fn read(self, max: u64) -> Option<Bytes> {
        axum::body::to_bytes(self.0, max as usize).await.ok()
    }
}

/// The embedded runtime as the inbound pipeline's ports.
struct Ports(Arc<Runtime>);

impl InboundPorts for Ports {
    type Error = Error;

    fn now_ms(&self) -> i64 {
        now_ms()
    }

    async fn flow(&self, tenant: &str, route: &str) -> Result<Option<Arc<CompiledFlow>>, Error> {
        Ok(self.0.flows().by_route(tenant, route))
    }

    async fn secret(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self.0.secrets.get(name))
    }

    /// A lookup of the stored answer, not a claim: two concurrent first
    /// requests with one key both go on (issue #14 item 10; the AWS driver
    /// claims atomically).
    async fn claim(&self, scope: &str, now_ms: i64) -> Result<Claim, Error> {
        let stored = self.0.store.idempotent_reply(scope, now_ms)?;
        Ok(match stored.and_then(|v| serde_json::from_value::<Reply>(v).ok()) {
            Some(reply) => Claim::Completed(reply),
            None => Claim::Claimed,
        })
    }

    /// Nothing to give up: [`claim`](Self::claim) holds nothing.
    async fn release(&self, _scope: &str) {}

    /// Commits the run with its jobs (deliveries due now inserted leased
    /// and sent by this process at once), then answers: the trigger's
    /// answer, or for a sync flow the reply of its `respond` step, which a
    /// worker hands over, within `respond.timeout`.
    async fn admit(
        &self,
        flow: &Arc<CompiledFlow>,
        mut accepted: Accepted,
        idem: Option<(String, i64)>,
    ) -> Result<Admitted, Error> {
        let rt = &self.0;
        let run_id = accepted.run.id.clone();
        let ready = rt.lease_ready(&mut accepted.outcome.commit, 0);
        let waiter = accepted.waits.then(|| rt.wait_for_reply(&run_id));
        let has_jobs = accepted.outcome.commit.jobs.len() > ready.len();
        let commit = std::mem::take(&mut accepted.outcome.commit);
        if let Err(e) = rt.store.commit(commit).await {
            rt.forget_reply(&run_id);
            return Err(e);
        }
        rt.dispatch(ready);
        rt.write_lines(std::mem::take(&mut accepted.outcome.lines));
        if has_jobs {
            rt.wake();
        }
        let Some(waiter) = waiter else {
            return Ok(Admitted { reply: accepted.reply, timed_out: false });
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
                Ok(Admitted { reply: Some(reply), timed_out: false })
            }
            // The run ended before its `respond` step.
            Ok(Err(_)) => Ok(Admitted::default()),
            Err(_) => {
                rt.forget_reply(&run_id);
                Ok(Admitted { reply: None, timed_out: true })
            }
        }
    }

    async fn log_request(&self, entry: LogEntry) {
        self.0.store.commit_detached(Commit { log: vec![entry], ..Default::default() });
    }

    fn lines(&self, lines: Vec<LogLine>) {
        self.0.write_lines(lines);
    }
}

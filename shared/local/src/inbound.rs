//! The trigger endpoint of `hookflow dev`: `ANY /hooks/{tenant}/{path}`.
//!
//! Transport glue around the one inbound pipeline
//! ([`hookflow_pipeline::inbound::handle`], shared with the ingress
//! Lambda): axum's request in, the pipeline's reply out, and the embedded
//! runtime as its ports. An accepted request is answered only after its run
//! and jobs are committed, so an event that got a 2xx cannot be lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::any;
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{Commit, LogEntry};
use hookflow_core::engine::{Level, LogLine};
use hookflow_core::headers::Headers;
use hookflow_core::inbound::Accepted;
use hookflow_core::ports::Claim;
use hookflow_core::run::Reply;
use hookflow_pipeline::Sampler;
use hookflow_pipeline::inbound::{self, Admitted, Call, InboundPorts, Unread, Verdict};

use crate::runtime::Runtime;
use crate::{Error, now_ms};

pub use hookflow_core::inbound::{DEFAULT_MAX_BODY, DEFAULT_SYNC_TIMEOUT};

/// The router of the trigger endpoint; a body must arrive within
/// `read_timeout` (408 otherwise).
pub fn router(rt: Arc<Runtime>, read_timeout: Duration) -> Router {
    Router::new()
        .route("/hooks/{tenant}/{*path}", any(handle))
        .layer(DefaultBodyLimit::disable())
        .with_state(Trigger { rt, read_timeout })
}

#[derive(Clone)]
struct Trigger {
    rt: Arc<Runtime>,
    read_timeout: Duration,
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
    State(Trigger { rt, read_timeout }): State<Trigger>,
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
        body: Streamed(body, read_timeout),
    };
    respond(&inbound::handle(&Ports(rt), call).await)
}

/// axum's body, read up to the route's limit within the read timeout.
struct Streamed(Body, Duration);

impl inbound::Body for Streamed {
    type Bytes = Bytes;
    async fn read(self, max: u64) -> Result<Bytes, Unread> {
        match tokio::time::timeout(self.1, axum::body::to_bytes(self.0, max as usize)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            // Over the limit, or the connection broke off (nobody hears
            // the answer then).
            Ok(Err(_)) => Err(Unread::TooLarge),
            Err(_) => Err(Unread::TimedOut),
        }
    }
}

/// The embedded runtime as the inbound pipeline's ports.
struct Ports(Arc<Runtime>);

/// Gives up an idempotency claim when dropped.
struct Unclaim(Arc<Runtime>, String);

impl Drop for Unclaim {
    fn drop(&mut self) {
        self.0.claims.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.1);
    }
}

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

    fn how_to_set(&self, name: &str) -> String {
        crate::secrets::how_to_set(name)
    }

    /// The stored answer, or the key claimed in memory until its answer is
    /// stored (one process holds the data directory, so memory is enough;
    /// a restart forgets claims whose requests died with it): of two
    /// concurrent first requests with one key, the second is answered 409.
    /// The check and the claim are one step under the claims' lock, and a
    /// claim is given up only after its answer is committed.
    async fn claim(&self, scope: &str, now_ms: i64) -> Result<Claim, Error> {
        let mut claims = self.0.claims.lock().unwrap_or_else(|p| p.into_inner());
        if claims.contains(scope) {
            return Ok(Claim::InProgress);
        }
        let stored = self.0.store.idempotent_reply(scope, now_ms)?;
        Ok(match stored.and_then(|v| serde_json::from_value::<Reply>(v).ok()) {
            Some(reply) => Claim::Completed(reply),
            None => {
                claims.insert(scope.to_string());
                Claim::Claimed
            }
        })
    }

    async fn release(&self, scope: &str) {
        self.0.claims.lock().unwrap_or_else(|p| p.into_inner()).remove(scope);
    }

    /// Commits the run with its jobs (deliveries due now inserted leased
    /// and sent by this process at once), then answers: the trigger's
    /// answer, or for a sync flow the reply of its `respond` step, which a
    /// worker hands over, within `respond.timeout`. All of it runs in a
    /// task of its own: a caller that hangs up (hyper then drops this
    /// future) must not cut the commit, the wait or the answer kept under
    /// its key short — its claim would be given up with no answer stored,
    /// and its retry would start a second run.
    async fn admit(
        &self,
        flow: &Arc<CompiledFlow>,
        accepted: Accepted,
        idem: Option<(String, i64)>,
    ) -> Result<Admitted, Error> {
        tokio::spawn(settle(self.0.clone(), flow.clone(), accepted, idem))
            .await
            .unwrap_or_else(|e| Err(Error::Unavailable(format!("the request's task failed: {e}"))))
    }

    async fn log_request(&self, entry: LogEntry) {
        self.0.store.commit_detached(Commit { log: vec![entry], ..Default::default() });
    }

    fn lines(&self, lines: Vec<LogLine>) {
        self.0.write_lines(lines);
    }

    fn unknown_routes(&self) -> &Sampler {
        &self.0.unknown_routes
    }

    fn counted(&self, verdict: Verdict, flow: Option<&CompiledFlow>, _received: i64) {
        let (tenant, id) = flow.map_or(("", ""), |f| (f.flow.tenant.as_str(), f.flow.id.as_str()));
        self.0.metrics.inbound(verdict.as_str(), tenant, id);
    }
}

/// [`Ports::admit`]'s work, in its own task.
async fn settle(
    rt: Arc<Runtime>,
    flow: Arc<CompiledFlow>,
    mut accepted: Accepted,
    idem: Option<(String, i64)>,
) -> Result<Admitted, Error> {
    // The claim is given up when this ends: by then the key's answer is
    // committed, or nothing was.
    let _claim = idem.as_ref().map(|(scope, _)| Unclaim(rt.clone(), scope.clone()));
    let run_id = accepted.run.id.clone();
    // A keyed retry names its first attempt's run (`inbound::keyed_ids`):
    // stored already (the process died before the key kept its answer),
    // it goes on and is not started again, nor overwritten.
    if idem.is_some() && rt.store.has_run(&run_id)? {
        let admitted =
            Admitted { reply: Some(hookflow_core::inbound::accepted_reply(&accepted.run.event_id)), timed_out: false };
        keep_answer(&rt, idem, &admitted, &accepted.run.event_id, &run_id).await;
        return Ok(admitted);
    }
    let waiter = accepted.waits.then(|| rt.wait_for_reply(&run_id));
    if let Err(e) = rt.commit_and_send(std::mem::take(&mut accepted.outcome.commit)).await {
        rt.forget_reply(&run_id);
        return Err(e);
    }
    rt.write_lines(std::mem::take(&mut accepted.outcome.lines));
    let Some(waiter) = waiter else {
        return Ok(Admitted { reply: accepted.reply, timed_out: false });
    };
    let timeout = flow.flow.trigger.respond.timeout.map_or(DEFAULT_SYNC_TIMEOUT, |t| t.get());
    let admitted = match tokio::time::timeout(timeout, waiter).await {
        Ok(Ok(reply)) => Admitted { reply: Some(reply), timed_out: false },
        // The run ended before its `respond` step.
        Ok(Err(_)) => Admitted::default(),
        Err(_) => {
            rt.forget_reply(&run_id);
            Admitted { reply: None, timed_out: true }
        }
    };
    keep_answer(&rt, idem, &admitted, &accepted.run.event_id, &run_id).await;
    Ok(admitted)
}

/// The key keeps the answer, a 500 or 504 too: a retry with it gets that
/// again, not a second run.
async fn keep_answer(rt: &Runtime, idem: Option<(String, i64)>, admitted: &Admitted, event_id: &str, run_id: &str) {
    let Some((scope, expires)) = idem else { return };
    let answer = hookflow_core::inbound::answer(admitted.reply.clone(), admitted.timed_out, event_id);
    let c = Commit {
        idempotency: Some((scope, serde_json::to_string(&answer).unwrap_or_default(), expires)),
        ..Default::default()
    };
    if let Err(e) = rt.store.commit(c).await {
        // The run goes on; a retry with the key finds it stored.
        rt.logger.log(
            Level::Error,
            "the answer could not be kept under its idempotency key",
            serde_json::json!({"run_id": run_id, "error": e.to_string()}),
        );
    }
}

#[cfg(test)]
mod tests {
    use hookflow_core::run::InboundRequest;

    use super::*;
    use crate::flows::Flows;

    /// A keyed retry whose first attempt's run is stored (the process died
    /// before its key kept the answer) names that run (`keyed_ids`): it is
    /// answered as accepted, and the stored run is neither started again
    /// nor overwritten.
    #[tokio::test]
    async fn a_keyed_retry_finding_its_run_stored_answers_accepted_and_leaves_the_run_alone() {
        let text = r#"
id: keyed
tenant: acme
trigger:
  type: webhook
  path: keyed
  idempotency: { header: X-Key }
  respond: { mode: async, status: 200, body: { json: { first: true } } }
steps:
  - { id: s, type: set, vars: { x: 1 } }
"#;
        let load = || hookflow_core::load_flow("keyed.yaml".as_ref(), text).unwrap();
        let dir = std::env::temp_dir().join(format!("hookflow-keyed-{}", uuid::Uuid::now_v7().simple()));
        let rt = Runtime::new(crate::runtime::test_config(&dir), Flows::new(vec![load()]).unwrap()).unwrap();
        let flow = Arc::new(load());
        let (scope, window, now) = ("acme/keyed/k-1".to_string(), 86_400_000, now_ms());
        let (run_id, event_id) = hookflow_core::inbound::keyed_ids(&scope, window, now);
        let accept = || {
            let request = InboundRequest { method: "POST".into(), body: "{}".into(), ..Default::default() };
            hookflow_core::inbound::accept(
                &flow,
                &request,
                (&run_id, &event_id),
                now,
                Some((scope.clone(), now + window)),
            )
        };
        let first = settle(rt.clone(), flow.clone(), accept(), Some((scope.clone(), now + window))).await.unwrap();
        assert_eq!(first.reply.unwrap().status, 200, "the flow's own answer");
        let stored = rt.store.run(&run_id).unwrap().expect("stored");
        // The answer was never kept (the process died): the retry claims
        // the key again and names the same run.
        let again = settle(rt.clone(), flow.clone(), accept(), Some((scope.clone(), now + window))).await.unwrap();
        let reply = again.reply.unwrap();
        assert_eq!(reply.status, 202, "accepted: the stored run goes on");
        assert!(reply.body.unwrap().contains(&event_id));
        assert_eq!(rt.store.run(&run_id).unwrap().unwrap(), stored, "not written over");
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! The trigger endpoint: `ANY /hooks/{tenant}/{path}`.
//!
//! Checks, in order: route (404, the same for an unknown tenant and an
//! unknown path), method (405 with `Allow`), source address (403), size
//! (413), content type (415), authentication (401), idempotency (a repeat
//! gets the first answer). Every rejection is logged with its reason. An
//! accepted request is answered only after its run and start job are
//! committed to the store, so an event that got a 2xx cannot be lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hookflow_core::CompiledFlow;
use hookflow_core::auth::Verifier;
use hookflow_core::flow::RespondMode;
use hookflow_core::headers::Headers;
use hookflow_core::run::{InboundRequest, Input, Reply, Run, advance, async_reply, parse_form};
use serde_json::{Value, json};

use crate::runtime::Runtime;
use crate::store::{Commit, LogEntry};
use crate::{now_ms, rfc3339};

/// Default largest body: 256 KiB.
pub const DEFAULT_MAX_BODY: u64 = 256 * 1024;
/// Default wait of a sync trigger.
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// The router of the trigger endpoint.
pub fn router(rt: Arc<Runtime>) -> Router {
    Router::new().route("/hooks/{tenant}/{*path}", any(handle)).layer(DefaultBodyLimit::disable()).with_state(rt)
}

fn json_response(status: u16, body: Value, extra: Vec<(String, String)>) -> Response {
    let mut r =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (header::HeaderName::try_from(k), HeaderValue::try_from(v)) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn reply_response(reply: &Reply) -> Response {
    let mut r = Response::new(Body::from(reply.body.clone().unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) = (header::HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
            r.headers_mut().append(k, v);
        }
    }
    r
}

/// Content types a trigger accepts.
fn supported(content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.is_empty()
        || ct == "application/json"
        || ct.ends_with("+json")
        || ct == "application/x-www-form-urlencoded"
        || ct.starts_with("text/")
        || ct == "application/xml"
        || ct.ends_with("+xml")
}

struct Ctx<'a> {
    rt: &'a Runtime,
    event_id: String,
    tenant: String,
    path: String,
    method: String,
    source_ip: String,
}

impl Ctx<'_> {
    /// Logs a rejection and builds its response.
    fn reject(&self, status: u16, reason: &str, flow: Option<&CompiledFlow>, extra: Vec<(String, String)>) -> Response {
        let fields = json!({
            "tenant": self.tenant, "flow_id": flow.map(|f| f.flow.id.clone()), "event_id": self.event_id,
            "status": status, "reason": reason, "method": self.method, "path": self.path, "source_ip": self.source_ip,
        });
        self.rt.logger.log("warn", "inbound rejected", fields.clone());
        let entry = LogEntry {
            at: now_ms(),
            kind: "inbound".into(),
            tenant: Some(self.tenant.clone()),
            flow_id: flow.map(|f| f.flow.id.clone()),
            event_id: Some(self.event_id.clone()),
            outcome: Some(format!("rejected_{status}")),
            detail: fields,
            ..Default::default()
        };
        self.rt.store.commit_detached(Commit { log: vec![entry], ..Default::default() });
        // 404 says nothing about which part was unknown.
        let message = if status == 404 { "not found" } else { reason };
        json_response(status, json!({"error": message, "event_id": self.event_id}), extra)
    }
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
    let event_id = format!("evt_{}", uuid::Uuid::now_v7().simple());
    let cx = Ctx {
        rt: &rt,
        event_id: event_id.clone(),
        tenant: tenant.clone(),
        path: uri.path().to_string(),
        method: method.to_string(),
        source_ip: peer.ip().to_string(),
    };
    let flows = rt.flows();
    let Some(flow) = flows.by_route(&tenant, &path) else {
        return cx.reject(404, "no trigger at this tenant and path", None, vec![]);
    };
    let trigger = &flow.flow.trigger;
    if !trigger.methods.iter().any(|m| m.as_str() == method.as_str()) {
        let allow = trigger.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        return cx.reject(405, &format!("method {method} is not allowed"), Some(&flow), vec![("Allow".into(), allow)]);
    }
    if !trigger.ip_allowlist.is_empty() && !trigger.ip_allowlist.iter().any(|n| n.contains(&peer.ip())) {
        return cx.reject(403, &format!("source address {} is not in the allow-list", peer.ip()), Some(&flow), vec![]);
    }
    let max = trigger.max_body.unwrap_or(DEFAULT_MAX_BODY);
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return cx.reject(413, &format!("body is larger than {max} bytes"), Some(&flow), vec![]);
    }
    let bytes = match axum::body::to_bytes(body, max as usize).await {
        Ok(b) => b,
        Err(_) => return cx.reject(413, &format!("body is larger than {max} bytes"), Some(&flow), vec![]),
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !bytes.is_empty() && !supported(content_type) {
        return cx.reject(415, &format!("content type `{content_type}` is not supported"), Some(&flow), vec![]);
    }
    let core_headers: Headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let query = parse_form(uri.query().unwrap_or(""));
    let request = InboundRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers: core_headers,
        query,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        source_ip: peer.ip().to_string(),
        received_at: rfc3339(received),
    };
    let verifier = Verifier::for_trigger(trigger);
    if let Some(name) = &verifier.secret {
        let Some(secret) = rt.secrets.get(name) else {
            return cx.reject(401, &format!("the trigger's secret `{name}` is not set"), Some(&flow), vec![]);
        };
        if let Err(e) = verifier.verify_bytes(&request, &bytes, &secret, received / 1000) {
            return cx.reject(401, &e.to_string(), Some(&flow), vec![]);
        }
    }
    // The checks below that read the body parse it once, when first needed.
    let parsed = std::sync::OnceLock::new();
    let body_json = || parsed.get_or_init(|| request.parsed_body());
    // The declared shape is advisory unless the flow enforces it.
    if let Some(validator) = flows.schema(&flow.flow.tenant, &flow.flow.id)
        && let Some(err) = validator.iter_errors(body_json()).next()
    {
        let path = err.instance_path().to_string();
        let path = if path.is_empty() { "/".to_string() } else { path };
        return cx.reject(
            422,
            &format!("body does not match the expected shape at {path}: {err}"),
            Some(&flow),
            vec![],
        );
    }
    // Slack checks a new endpoint by asking it to echo a challenge.
    if trigger.system == Some(hookflow_core::signature::System::Slack) {
        let body = body_json();
        if body["type"] == "url_verification" {
            rt.logger.log(
                "info",
                "slack url_verification answered",
                json!({"tenant": tenant, "flow_id": flow.flow.id, "event_id": event_id}),
            );
            return json_response(200, json!({"challenge": body["challenge"]}), vec![]);
        }
    }
    // Idempotency: the key's scope is the flow.
    let mut idem_scope = None;
    if let Some(idem) = &trigger.idempotency {
        let key = match (&idem.header, &idem.body) {
            (Some(h), _) => request.headers.get(h).map(str::to_string),
            (_, Some(p)) => p
                .split('.')
                .try_fold(body_json(), |v, k| v.get(k))
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())),
            _ => None,
        };
        if let Some(key) = key {
            let scope = format!("{}/{}/{}", flow.flow.tenant, flow.flow.id, key);
            match rt.store.idempotent_reply(&scope, received) {
                Ok(Some(stored)) => {
                    if let Ok(reply) = serde_json::from_value::<Reply>(stored) {
                        rt.logger.log(
                            "info",
                            "duplicate inbound: answered with the first reply",
                            json!({"tenant": tenant, "flow_id": flow.flow.id, "event_id": event_id, "idempotency_key": key}),
                        );
                        let entry = LogEntry {
                            at: received,
                            kind: "inbound".into(),
                            tenant: Some(tenant.clone()),
                            flow_id: Some(flow.flow.id.clone()),
                            event_id: Some(event_id.clone()),
                            outcome: Some("duplicate".into()),
                            detail: json!({"idempotency_key": key}),
                            ..Default::default()
                        };
                        rt.store.commit_detached(Commit { log: vec![entry], ..Default::default() });
                        return reply_response(&reply);
                    }
                }
                Ok(None) => {}
                Err(e) => return cx.reject(503, &format!("store unavailable: {e}"), Some(&flow), vec![]),
            }
            let window = idem.window.map_or(24 * 3600 * 1000, |w| w.get().as_millis() as i64);
            idem_scope = Some((scope, received + window));
        }
    }

    // The run keeps the request without its credentials (the idempotency
    // key above was read first).
    let mut request = request;
    verifier.strip_credentials(&mut request);
    let run_id = format!("run_{}", uuid::Uuid::now_v7().simple());
    let run = Run::new(&flow.flow, run_id.clone(), event_id.clone(), &request);
    let sync = trigger.respond.mode == RespondMode::Sync;
    let immediate = if sync {
        None
    } else {
        match async_reply(&flow, &run) {
            Ok(r) => Some(r),
            Err(e) => {
                rt.logger.log(
                    "error",
                    "trigger answer failed to render",
                    json!({"event_id": event_id, "error": e.to_string()}),
                );
                None
            }
        }
    };
    // The run's first steps run here, inline: their state, log and delivery
    // jobs are committed with the acceptance, which saves a queue round trip
    // per event. A sync flow whose `respond` comes before any waiting step
    // is answered at once.
    let mut commit = Commit::default();
    let (run, inline_reply, ready) = match advance(&flow, run.clone(), Input::Start) {
        Ok((run, effects)) => {
            let recorded = rt.record_effects(&mut commit, &run, effects);
            (run, recorded.replies.into_iter().next(), recorded.ready)
        }
        Err(_) => {
            commit.run(&run);
            commit.jobs.push(Runtime::start_job(&run));
            (run, None, Vec::new())
        }
    };
    commit.log.push(LogEntry {
        at: received,
        kind: "inbound".into(),
        tenant: Some(tenant.clone()),
        flow_id: Some(flow.flow.id.clone()),
        run_id: Some(run_id.clone()),
        event_id: Some(event_id.clone()),
        outcome: Some("accepted".into()),
        detail: json!({
            "method": request.method, "path": request.path, "source_ip": request.source_ip,
            "headers": request.headers.to_json(), "body": truncate(&request.body, 16 * 1024),
        }),
        ..Default::default()
    });
    if let (Some((scope, expires)), Some(reply)) = (&idem_scope, immediate.as_ref().or(inline_reply.as_ref())) {
        commit.idempotency = Some((scope.clone(), serde_json::to_string(reply).unwrap_or_default(), *expires));
    }
    let waits = sync && inline_reply.is_none() && !run.status.is_finished();
    let waiter = waits.then(|| rt.wait_for_reply(&run_id));
    let has_jobs = commit.jobs.len() > ready.len();
    if let Err(e) = rt.store.commit(commit).await {
        rt.forget_reply(&run_id);
        return cx.reject(503, &format!("store unavailable: {e}"), Some(&flow), vec![]);
    }
    rt.dispatch(ready);
    rt.logger.log(
        "info",
        "inbound accepted",
        json!({"tenant": tenant, "flow_id": flow.flow.id, "run_id": run_id, "event_id": event_id}),
    );
    if has_jobs {
        rt.wake();
    }
    if sync {
        if let Some(reply) = inline_reply {
            return reply_response(&reply);
        }
        if run.status.is_finished() {
            return json_response(
                500,
                json!({"error": "the flow failed before answering", "event_id": event_id}),
                vec![],
            );
        }
    }
    let Some(waiter) = waiter else {
        return match immediate {
            Some(reply) => reply_response(&reply),
            None => json_response(500, json!({"error": "the trigger's answer failed", "event_id": event_id}), vec![]),
        };
    };
    let timeout = trigger.respond.timeout.map_or(DEFAULT_SYNC_TIMEOUT, |t| t.get());
    match tokio::time::timeout(timeout, waiter).await {
        Ok(Ok(reply)) => {
            if let Some((scope, expires)) = idem_scope {
                let c = Commit {
                    idempotency: Some((scope, serde_json::to_string(&reply).unwrap_or_default(), expires)),
                    ..Default::default()
                };
                let _ = rt.store.commit(c).await;
            }
            reply_response(&reply)
        }
        // The run ended before its `respond` step.
        Ok(Err(_)) => {
            json_response(500, json!({"error": "the flow failed before answering", "event_id": event_id}), vec![])
        }
        Err(_) => {
            rt.forget_reply(&run_id);
            json_response(
                504,
                json!({"error": "the flow did not answer in time; it goes on in the background", "event_id": event_id}),
                vec![],
            )
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

//! The trigger endpoint's decisions, free of any transport: the same for
//! the dev server (axum) and the ingress Lambda (API Gateway events).
//!
//! In order: [`check_route`] (method 405, source address 403, declared
//! size 413) before the body is read; [`check_body`] (size 413, content
//! type 415); authentication ([`crate::auth::Verifier`], 401) by the
//! caller, which holds the secret; [`slack_challenge`]; [`idempotency_scope`]
//! (the caller looks the scope up in its store); then [`accept`], which
//! creates the run, advances it inline as far as it goes without waiting,
//! and returns the commit to store before answering. Every rejection is a
//! [`Rejection`] whose [`record`](Rejection::record) gives the log entry,
//! the log line and the answer.

pub mod auth;

use std::net::IpAddr;
use std::time::Duration;

use serde_json::json;

use crate::CompiledFlow;
use crate::commit::{EntryKind, LogEntry};
use crate::engine::{self, Level, LogLine, Outcome};
use crate::flow::RespondMode;
use crate::run::{InboundRequest, Input, Reply, Run, advance, async_reply};

/// Default largest body: 256 KiB.
pub const DEFAULT_MAX_BODY: u64 = 256 * 1024;
/// Default wait of a sync trigger.
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// Default idempotency window: 24 hours.
pub const DEFAULT_IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Who called, for the log of a rejection.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub tenant: String,
    pub event_id: String,
    pub method: String,
    pub path: String,
    pub source_ip: String,
    pub received: i64,
}

/// A request turned away.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub status: u16,
    /// Why, for the log and the console.
    pub reason: String,
    /// What the caller is told instead of `reason`, when the reason is the
    /// operator's business (the name of a secret that is not set).
    pub public: Option<String>,
    /// Extra response headers (`Allow` for a 405).
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Rejection { status, reason: reason.into(), public: None, headers: Vec::new() }
    }

    /// A rejection whose caller is told `public`, not the reason.
    pub fn private(status: u16, reason: impl Into<String>, public: &str) -> Self {
        Rejection { public: Some(public.into()), ..Rejection::new(status, reason) }
    }

    /// Its request-log entry, its log line and the answer. A 404 says
    /// nothing about which part was unknown.
    pub fn record(&self, a: &Arrival, flow: Option<&CompiledFlow>) -> (LogEntry, LogLine, Reply) {
        let flow_id = flow.map(|f| f.flow.id.clone());
        let fields = json!({
            "tenant": a.tenant, "flow_id": flow_id, "event_id": a.event_id, "status": self.status,
            "reason": self.reason, "method": a.method, "path": a.path, "source_ip": a.source_ip,
        });
        let entry = LogEntry {
            at: a.received,
            kind: EntryKind::Inbound,
            tenant: Some(a.tenant.clone()),
            flow_id,
            event_id: Some(a.event_id.clone()),
            outcome: Some(format!("rejected_{}", self.status)),
            detail: fields.clone(),
            ..Default::default()
        };
        let line = LogLine { level: Level::Warn, message: "inbound rejected".into(), fields };
        let message = match &self.public {
            Some(public) => public.as_str(),
            None if self.status == 404 => "not found",
            None => self.reason.as_str(),
        };
        let mut reply = json_reply(self.status, json!({"error": message, "event_id": a.event_id}));
        reply.headers.extend(self.headers.iter().cloned());
        (entry, line, reply)
    }
}

/// A JSON answer.
pub fn json_reply(status: u16, body: serde_json::Value) -> Reply {
    Reply { status, headers: vec![("content-type".into(), "application/json".into())], body: Some(body.to_string()) }
}

/// The answer when no trigger matches.
pub fn not_found() -> Rejection {
    Rejection::new(404, "no trigger at this tenant and path")
}

/// Method, source address and declared size; returns the largest body
/// allowed.
pub fn check_route(flow: &CompiledFlow, method: &str, source: IpAddr, declared: Option<u64>) -> Result<u64, Rejection> {
    let trigger = &flow.flow.trigger;
    if !trigger.methods.iter().any(|m| m.as_str() == method) {
        let allow = trigger.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        let mut r = Rejection::new(405, format!("method {method} is not allowed"));
        r.headers.push(("Allow".into(), allow));
        return Err(r);
    }
    if !trigger.ip_allowlist.is_empty() && !trigger.ip_allowlist.iter().any(|n| n.contains(&source)) {
        return Err(Rejection::new(403, format!("source address {source} is not in the allow-list")));
    }
    let max = trigger.max_body.unwrap_or(DEFAULT_MAX_BODY);
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    Ok(max)
}

pub fn too_large(max: u64) -> Rejection {
    Rejection::new(413, format!("body is larger than {max} bytes"))
}

/// A body that did not arrive within the server's read timeout.
pub fn body_timed_out() -> Rejection {
    Rejection::new(408, "the body did not arrive in time")
}

/// Size and content type of the body as received.
pub fn check_body(flow: &CompiledFlow, content_type: &str, len: usize) -> Result<(), Rejection> {
    let max = flow.flow.trigger.max_body.unwrap_or(DEFAULT_MAX_BODY);
    if len as u64 > max {
        return Err(too_large(max));
    }
    if len > 0 && !supported(content_type) {
        return Err(Rejection::new(415, format!("content type `{content_type}` is not supported")));
    }
    Ok(())
}

/// The body against the schema the flow enforces (`expect.enforce`): 422
/// naming the first place it differs. Without enforcement the declared shape
/// is documentation only.
pub fn check_shape(flow: &CompiledFlow, body: &serde_json::Value) -> Result<(), Rejection> {
    let Some(validator) = &flow.shape else { return Ok(()) };
    let Some(err) = validator.iter_errors(body).next() else { return Ok(()) };
    let path = err.instance_path().to_string();
    let path = if path.is_empty() { "/".to_string() } else { path };
    Err(Rejection::new(422, format!("body does not match the expected shape at {path}: {err}")))
}

/// What is wrong with a body declared JSON (`application/json`, `…+json`)
/// that does not parse, if it is; an empty body is none.
pub fn json_problem(content_type: &str, body: &[u8]) -> Option<String> {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !(ct == "application/json" || ct.ends_with("+json")) || body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let e = serde_json::from_slice::<serde::de::IgnoredAny>(body).err()?;
    Some(format!(
        "the body is declared {ct} but is not JSON ({e}): the flow sees it as text (`expect.enforce: true` answers 400)"
    ))
}

/// Content types a trigger accepts.
pub fn supported(content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.is_empty()
        || ct == "application/json"
        || ct.ends_with("+json")
        || ct == "application/x-www-form-urlencoded"
        || ct.starts_with("text/")
        || ct == "application/xml"
        || ct.ends_with("+xml")
}

/// Slack checks a new endpoint by asking it to echo a challenge.
pub fn slack_challenge(flow: &CompiledFlow, body: &serde_json::Value) -> Option<Reply> {
    (flow.flow.trigger.system == Some(crate::signature::System::Slack) && body["type"] == "url_verification")
        .then(|| json_reply(200, json!({"challenge": body["challenge"]})))
}

/// The idempotency scope of a request (`tenant/flow/key`) and how long it
/// holds (ms), when the trigger declares a key and the request has one.
pub fn idempotency_scope(
    flow: &CompiledFlow,
    request: &InboundRequest,
    body: &serde_json::Value,
) -> Option<(String, String, i64)> {
    let idem = flow.flow.trigger.idempotency.as_ref()?;
    let key = match (&idem.header, &idem.body) {
        (Some(h), _) => request.headers.get(h).map(str::to_string),
        (_, Some(p)) => p
            .split('.')
            .try_fold(body, |v, k| v.get(k))
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())),
        _ => None,
    }?;
    let window = idem.window.map_or(DEFAULT_IDEMPOTENCY_WINDOW_MS, |w| w.get().as_millis() as i64);
    Some((format!("{}/{}/{}", flow.flow.tenant, flow.flow.id, key), key, window))
}

/// The idempotency scope of a signed request remembered against replays
/// (`trigger.auth.reject_replays`; the caller prefers the trigger's own
/// idempotency key when the request has one, kept for the longer of the
/// two windows — [`claim_scope`]): the request's signed identity ([`Verifier::replay_identity`], computed
/// once the signature is verified), hashed, for twice the signature's
/// tolerance (a captured request is valid from `tolerance` before its time
/// to `tolerance` after), or the default idempotency window for a
/// signature without a time.
pub fn replay_scope(
    flow: &CompiledFlow,
    verifier: &auth::Verifier,
    identity: Option<&str>,
) -> Option<(String, String, i64)> {
    let auth = flow.flow.trigger.auth.as_ref()?;
    if !auth.reject_replays {
        return None;
    }
    let key = crate::signature::hex(&<sha2::Sha256 as sha2::Digest>::digest(identity?.as_bytes()));
    // Validation bounds the tolerance (`MAX_TOLERANCE`); saturate anyway.
    let tolerance = i64::try_from(verifier.tolerance.as_millis()).unwrap_or(i64::MAX);
    let window = if verifier.is_timed() { tolerance.saturating_mul(2) } else { DEFAULT_IDEMPOTENCY_WINDOW_MS };
    Some((format!("{}/{}/replay:{key}", flow.flow.tenant, flow.flow.id), format!("replay:{key}"), window))
}

/// What step 6 of the inbound pipeline claims: the trigger's idempotency
/// key when the request has one — kept at least as long as a replay of a
/// signed request could come (`reject_replays`) — else the replay scope.
pub fn claim_scope(
    flow: &CompiledFlow,
    verifier: &auth::Verifier,
    request: &InboundRequest,
    body: &serde_json::Value,
    identity: Option<&str>,
) -> Option<(String, String, i64)> {
    let replay = replay_scope(flow, verifier, identity);
    match idempotency_scope(flow, request, body) {
        Some((scope, key, window)) => Some((scope, key, replay.map_or(window, |r| window.max(r.2)))),
        None => replay,
    }
}

/// The run and event ids of a request claimed under idempotency `scope`
/// (held `window` ms), received at `received` (ms): derived from the scope
/// and the window's period, not drawn anew. A retry after an admission
/// that failed, died or lost its answer — a sync flow's inline steps
/// already sent — names the same run, so its steps go out again under the
/// same `webhook-id`s rather than new ones. A key used again after its
/// window is in a later period: a new run. (A retry that crosses the
/// boundary of its period, a chance of its delay over the window, gets
/// new ids.)
pub fn keyed_ids(scope: &str, window: i64, received: i64) -> (String, String) {
    use sha2::{Digest, Sha256};
    let period = received.div_euclid(window.max(1));
    // The window too: a period's number means nothing across windows (a
    // flow whose window changed).
    let digest = Sha256::digest(format!("{scope}\n{window}\n{period}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    (format!("run_k{hex}"), format!("evt_k{hex}"))
}

/// The log entry and line of a duplicate answered with the first reply.
pub fn duplicate(a: &Arrival, flow: &CompiledFlow, key: &str) -> (LogEntry, LogLine) {
    let entry = LogEntry {
        at: a.received,
        kind: EntryKind::Inbound,
        tenant: Some(a.tenant.clone()),
        flow_id: Some(flow.flow.id.clone()),
        event_id: Some(a.event_id.clone()),
        outcome: Some("duplicate".into()),
        detail: json!({"idempotency_key": key}),
        ..Default::default()
    };
    let line = LogLine {
        level: Level::Info,
        message: "duplicate inbound: answered with the first reply".into(),
        fields: json!({"tenant": a.tenant, "flow_id": flow.flow.id, "event_id": a.event_id, "idempotency_key": key}),
    };
    (entry, line)
}

/// A replay of run `run_id`: its request accepted again by `flow` (the
/// flow's current version) as a new run whose ids derive from `run_id`
/// and the replay's `key` — the same replay asked twice (a retry after a
/// failure) names the same run, which the store then finds rather than
/// starting a second. The inbound entry says which run it replays.
pub fn replay(flow: &CompiledFlow, request: &InboundRequest, run_id: &str, key: &str, now: i64) -> Accepted {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{run_id}\n{key}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let (new_run, event) = (format!("run_r{hex}"), format!("evt_r{hex}"));
    let mut accepted = accept(flow, request, (&new_run, &event), now, None);
    for e in accepted.outcome.commit.log.iter_mut().filter(|e| e.kind == EntryKind::Inbound) {
        e.detail["replay_of"] = json!(run_id);
    }
    accepted
}

/// An accepted request.
#[derive(Debug)]
pub struct Accepted {
    /// The run after its inline steps.
    pub run: Run,
    /// What to store before answering: the run, its jobs, the inbound log
    /// entry, the idempotency record.
    pub outcome: Outcome,
    /// The answer now, if there is one: the trigger's configured answer
    /// (async), or a `respond` step reached inline (sync).
    pub reply: Option<Reply>,
    /// A sync flow whose answer needs a step that waits.
    pub waits: bool,
}

/// Accepts `request` (its credentials already stripped): a new run,
/// advanced inline as far as it goes without waiting, with the inbound log
/// entry and, when `idem` is given (scope, expiry), the idempotency record
/// of the answer.
pub fn accept(
    flow: &CompiledFlow,
    request: &InboundRequest,
    ids: (&str, &str),
    received: i64,
    idem: Option<(String, i64)>,
) -> Accepted {
    let (run_id, event_id) = ids;
    let mut run = Run::new(&flow.flow, run_id, event_id, request);
    run.flow_version.clone_from(&flow.version);
    let sync = flow.flow.trigger.respond.mode == RespondMode::Sync;
    let mut outcome = Outcome::default();
    let immediate = if sync {
        None
    } else {
        // The run is accepted whatever its answer renders to: an answer
        // that fails is the default one, never a 500 that would make the
        // caller send the event again (a second run).
        match async_reply(flow, &run) {
            Ok(r) => Some(r),
            Err(e) => {
                outcome.lines.push(LogLine {
                    level: Level::Error,
                    message: "trigger answer failed to render; answered 202 with the event id".into(),
                    fields: json!({"event_id": event_id, "error": e.to_string()}),
                });
                Some(accepted_reply(event_id))
            }
        }
    };
    let run = match advance(flow, run.clone(), Input::Start) {
        Ok((run, effects)) => {
            engine::record(&mut outcome, &run, effects, received);
            run
        }
        // The executor tries again from the start job (and logs why).
        Err(_) => {
            outcome.commit.run(&run);
            outcome.commit.jobs.push(crate::commit::NewJob::run(&run.tenant, &run.id, "start", Input::Start, received));
            run
        }
    };
    let inline = if sync { outcome.replies.first().cloned() } else { None };
    // The answer's status where it is known now (a sync flow that waits is
    // answered by its `respond` step, logged as a step).
    let answered = immediate.as_ref().or(inline.as_ref()).map(|r| r.status);
    outcome.commit.log.push(LogEntry {
        at: received,
        kind: EntryKind::Inbound,
        tenant: Some(run.tenant.clone()),
        flow_id: Some(run.flow_id.clone()),
        run_id: Some(run.id.clone()),
        event_id: Some(event_id.to_string()),
        outcome: Some("accepted".into()),
        detail: json!({
            "method": request.method, "path": request.path, "source_ip": request.source_ip,
            "headers": request.headers.to_json(), "body": truncate(&request.body, 16 * 1024),
            "status": answered,
        }),
        ..Default::default()
    });
    let reply = immediate.or(inline);
    let waits = sync && reply.is_none() && !run.status.is_finished();
    // The key keeps the answer the caller gets, whatever it is (a sync
    // flow that failed before answering: its 500), so a retry with the key
    // gets it again rather than a second run. A flow still running
    // inline has its answer kept by the driver once it is known.
    if let Some((scope, expires)) = idem
        && !waits
    {
        let answer = answer(reply.clone(), false, event_id);
        outcome.commit.idempotency = Some((scope, serde_json::to_string(&answer).unwrap_or_default(), expires));
    }
    Accepted { run, outcome, reply, waits }
}

/// The line of an accepted request, once answered: what it asked, the
/// status it got and how long that took (one line a request).
/// `warning`: what the request got wrong that the flow let through (a
/// body declared JSON that is not).
pub fn accepted_line(
    a: &Arrival,
    (flow_id, run_id, event_id): (&str, &str, &str),
    status: u16,
    warning: Option<&str>,
    now: i64,
) -> LogLine {
    LogLine {
        level: if warning.is_some() { Level::Warn } else { Level::Info },
        message: "inbound accepted".into(),
        fields: json!({"tenant": a.tenant, "flow_id": flow_id, "run_id": run_id, "event_id": event_id,
                       "method": a.method, "path": a.path, "status": status, "duration_ms": (now - a.received).max(0),
                       "warning": warning}),
    }
}

/// What the caller of an accepted request is answered: the trigger's
/// answer or the `respond` step's reply; for a sync flow without one, 504
/// when it still runs past `respond.timeout`, else 500 (it ended before
/// answering).
pub fn answer(reply: Option<Reply>, timed_out: bool, event_id: &str) -> Reply {
    match reply {
        Some(r) => r,
        None if timed_out => answer_timed_out(event_id),
        None => failed_before_answering(event_id),
    }
}

/// The default answer of an async trigger: `202 {"event_id": …}`.
pub fn accepted_reply(event_id: &str) -> Reply {
    json_reply(202, json!({"event_id": event_id}))
}

/// The answer of a sync flow that ended before its `respond` step.
pub fn failed_before_answering(event_id: &str) -> Reply {
    json_reply(500, json!({"error": "the flow failed before answering", "event_id": event_id}))
}

/// The answer of a sync flow past its `respond.timeout`.
pub fn answer_timed_out(event_id: &str) -> Reply {
    json_reply(
        504,
        json!({"error": "the flow did not answer in time; it goes on in the background", "event_id": event_id}),
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    format!("{}…", crate::text::head(s, max))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn keyed_ids_hold_through_a_window_and_change_with_the_key_or_a_later_window() {
        let day = 86_400_000;
        let (run, event) = keyed_ids("acme/f/k1", day, 5 * day + 10);
        assert!(run.starts_with("run_k") && event.starts_with("evt_k") && run[5..] == event[5..], "{run} {event}");
        assert_eq!(keyed_ids("acme/f/k1", day, 5 * day + 60_000), (run.clone(), event), "a retry minutes later");
        assert_ne!(keyed_ids("acme/f/k2", day, 5 * day + 10).0, run, "another key");
        // Used again once its window is over: always a later period.
        for first in [5 * day, 5 * day + day / 2, 6 * day - 1] {
            assert_ne!(keyed_ids("acme/f/k1", day, first + day).0, keyed_ids("acme/f/k1", day, first).0);
        }
        assert_eq!(keyed_ids("s", 0, 7), keyed_ids("s", 0, 7), "a zero window does not divide by zero");
        // Period 5 of a day and period 5 of a slightly longer window: not
        // the same run.
        assert_ne!(
            keyed_ids("acme/f/k1", day + 120_000, 5 * (day + 120_000)).0,
            keyed_ids("acme/f/k1", day, 5 * day).0
        );
    }
    use crate::util::headers::Headers;

    fn flow(auth: &str, extra: &str) -> Result<CompiledFlow, crate::Error> {
        let text = format!(
            "id: signed\ntenant: acme\ntrigger:\n  type: webhook\n  path: signed\n  auth: {auth}\n{extra}steps:\n  \
             - id: go\n    type: http\n    url: https://example.com/in\n"
        );
        crate::load_flow(Path::new("f.yaml"), &text)
    }

    fn request(headers: &[(&str, &str)]) -> InboundRequest {
        InboundRequest {
            method: "POST".into(),
            headers: Headers(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            body: "{}".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_signed_request_is_remembered_by_its_identity_for_twice_the_tolerance() {
        let f = flow("{ type: standard_webhooks, secret: s, tolerance: 2m, reject_replays: true }", "").unwrap();
        let v = auth::Verifier::for_trigger(&f.flow.trigger);
        let req = |id: &str, sig: &str| {
            request(&[("webhook-id", id), ("webhook-timestamp", "1"), ("webhook-signature", sig)])
        };
        let scope_of = |f: &CompiledFlow, r: &InboundRequest| {
            replay_scope(f, &v, v.replay_identity(r, r.body.as_bytes(), "s").as_deref())
        };
        let (scope, key, window) = scope_of(&f, &req("msg_1", "v1,a")).expect("remembered");
        assert!(scope.starts_with("acme/signed/replay:") && scope.ends_with(&key[7..]), "{scope} {key}");
        assert_eq!(window, 4 * 60 * 1000);
        // A sender's retry (new signature, same id) is the same request.
        assert_eq!(scope_of(&f, &req("msg_1", "v1,b")).unwrap().0, scope);
        assert_ne!(scope_of(&f, &req("msg_2", "v1,a")).unwrap().0, scope);
        // Off by default.
        let off = flow("{ type: standard_webhooks, secret: s }", "").unwrap();
        assert!(scope_of(&off, &req("msg_1", "v1,a")).is_none());
        // The trigger's own key comes first, kept as long as a replay could
        // come; a request without the key is still remembered.
        let keyed = flow(
            "{ type: standard_webhooks, secret: s, tolerance: 1h, reject_replays: true }",
            "  idempotency: { body: id, window: 1m }\n",
        )
        .unwrap();
        let kv = auth::Verifier::for_trigger(&keyed.flow.trigger);
        let claim = |body: serde_json::Value| {
            let r = req("msg_1", "v1,a");
            claim_scope(&keyed, &kv, &r, &body, kv.replay_identity(&r, b"{}", "s").as_deref()).unwrap()
        };
        let (scope, key, window) = claim(serde_json::json!({"id": "k1"}));
        assert_eq!((scope.as_str(), key.as_str(), window), ("acme/signed/k1", "k1", 2 * 60 * 60 * 1000));
        let (scope, _, _) = claim(serde_json::json!({}));
        assert!(scope.starts_with("acme/signed/replay:"), "{scope}");
    }

    #[test]
    fn an_hmac_without_a_time_is_remembered_for_the_idempotency_window_and_an_api_key_cannot_be() {
        let f = flow("{ type: hmac, secret: s, header: x-sig, reject_replays: true }", "").unwrap();
        let v = auth::Verifier::for_trigger(&f.flow.trigger);
        let r = request(&[("x-sig", "abc")]);
        let (_, _, window) = replay_scope(&f, &v, v.replay_identity(&r, b"{}", "s").as_deref()).unwrap();
        assert_eq!(window, DEFAULT_IDEMPOTENCY_WINDOW_MS);
        // A timestamp header the signed content leaves out bounds nothing.
        let loose = flow(
            "{ type: hmac, secret: s, header: x-sig, timestamp_header: x-ts, tolerance: 1m, reject_replays: true }",
            "",
        )
        .unwrap();
        let v = auth::Verifier::for_trigger(&loose.flow.trigger);
        assert!(!v.is_timed());
        let (_, _, window) = replay_scope(&loose, &v, v.replay_identity(&r, b"{}", "s").as_deref()).unwrap();
        assert_eq!(window, DEFAULT_IDEMPOTENCY_WINDOW_MS);
        let err = flow("{ type: api_key, secret: s, header: x-key, reject_replays: true }", "").err().unwrap();
        assert!(err.to_string().contains("trigger.auth.reject_replays"), "{err}");
        // A tolerance past 1h is warned about (a flow stored before still
        // loads); its replay window saturates instead of overflowing.
        let warned = |f: &CompiledFlow| f.warnings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        let long = flow("{ type: standard_webhooks, secret: s, tolerance: 2h }", "").unwrap();
        assert!(warned(&long).contains("trigger.auth.tolerance: longer than 1h"), "{}", warned(&long));
        assert_eq!(warned(&flow("{ type: standard_webhooks, secret: s, tolerance: 1h }", "").unwrap()), "");
        let huge = flow("{ type: standard_webhooks, secret: s, tolerance: 100000000000d, reject_replays: true }", "");
        match huge {
            Ok(huge) => {
                let v = auth::Verifier::for_trigger(&huge.flow.trigger);
                assert_eq!(replay_scope(&huge, &v, Some("id:x")).unwrap().2, i64::MAX);
            }
            Err(e) => assert!(e.to_string().contains("tolerance"), "{e}"),
        }
        // With reject_replays, an idempotency key a replay could change is
        // warned about; a signed one is not.
        let hmac = "{ type: hmac, secret: s, header: x-sig, reject_replays: true }";
        let unsigned = flow(hmac, "  idempotency: { header: x-id }\n").unwrap();
        assert!(
            warned(&unsigned).contains("trigger.idempotency.header: `x-id` is not signed"),
            "{}",
            warned(&unsigned)
        );
        assert_eq!(warned(&flow(hmac, "  idempotency: { body: id }\n").unwrap()), "");
        let sw = "{ type: standard_webhooks, secret: s, reject_replays: true }";
        assert_eq!(warned(&flow(sw, "  idempotency: { header: webhook-id }\n").unwrap()), "");
    }

    #[test]
    fn a_replay_is_the_same_request_however_its_signature_header_is_spelled() {
        use crate::signature::{System, stripe_sign};
        // An HMAC in hex: capitals, the prefix's spacing, are the same MAC.
        let f = flow("{ secret: s, reject_replays: true }", "  system: github\n").unwrap();
        let v = auth::Verifier::for_trigger(&f.flow.trigger);
        let gh = System::Github.hmac_scheme().unwrap();
        let sig = gh.sign(b"k", 0, "", b"{}");
        let upper = format!("sha256={}", sig.trim_start_matches("sha256=").to_uppercase());
        let id = |r: &InboundRequest| {
            assert!(v.verify(r, "k", 0).is_ok(), "{:?}", r.headers);
            v.replay_identity(r, b"{}", "k").unwrap()
        };
        let first = id(&request(&[("X-Hub-Signature-256", &sig)]));
        assert_eq!(id(&request(&[("X-Hub-Signature-256", &upper)])), first);
        assert_eq!(id(&request(&[("X-Hub-Signature-256", &format!(" {sig} "))])), first);
        // Stripe: junk entries, another order, a second v1: the same request.
        let f = flow("{ secret: s }", "  system: stripe\n").unwrap();
        let v = auth::Verifier::for_trigger(&f.flow.trigger);
        let header = stripe_sign(b"k", 1000, b"{}");
        let (t, v1) = header.split_once(',').unwrap();
        let id = |h: &str| {
            let r = request(&[("Stripe-Signature", h)]);
            assert!(v.verify(&r, "k", 1000).is_ok(), "{h}");
            v.replay_identity(&r, b"{}", "k").unwrap()
        };
        let first = id(&header);
        assert_eq!(id(&format!("{v1},{t}")), first);
        assert_eq!(id(&format!("{t},v1={},{v1},v0=junk", "00".repeat(32))), first);
        assert_eq!(id(&format!("{t},{}", v1.to_uppercase().replace("V1=", "v1="))), first);
        assert_ne!(id(&stripe_sign(b"k", 1001, b"{}")), first, "another time is another request");
    }
}

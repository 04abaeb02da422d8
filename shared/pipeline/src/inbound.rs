//! The inbound pipeline: one trigger request, from arrival to answer.
//!
//! The order of the checks is a security property (nothing is read before
//! the route says how much may be; nothing is parsed before the caller is
//! authenticated; the idempotency key is read before credentials are
//! stripped), so it is written here once, in [`handle`], for both drivers:
//!
//! 1. route: the flow at `/hooks/{tenant}/{path}` (404), its methods (405),
//!    source allow-list (403), declared size (413) —
//!    [`inbound::check_route`](hookflow_core::inbound::check_route);
//! 2. body: read up to the limit (413), content type (415) —
//!    [`check_body`](hookflow_core::inbound::check_body);
//! 3. signature or credential against the trigger's secret (401) —
//!    [`Verifier`];
//! 4. shape, when the flow enforces one (422) —
//!    [`check_shape`](hookflow_core::inbound::check_shape);
//! 5. Slack's URL challenge, answered and not run;
//! 6. idempotency: the key claimed (a completed key answers its first
//!    reply, one in progress 409) — [`InboundPorts::claim`];
//! 7. credentials stripped from what is stored;
//! 8. accepted ([`accept`](hookflow_core::inbound::accept)), stored and
//!    answered by the driver ([`InboundPorts::admit`]): an accepted
//!    request is answered only after its run is stored.
//!
//! Every rejection is logged (operational line and request-log entry) the
//! same way on both drivers.

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use hookflow_core::CompiledFlow;
use hookflow_core::auth::Verifier;
use hookflow_core::commit::LogEntry;
use hookflow_core::duration::rfc3339;
use hookflow_core::engine::{Level, LogLine};
use hookflow_core::headers::Headers;
use hookflow_core::inbound::{self as decide, Accepted, Arrival, Rejection};
use hookflow_core::ports::{Claim, Classify, ErrorKind};
use hookflow_core::run::{InboundRequest, Reply, parse_form};
use serde_json::json;

use crate::sampler::{Sampled, Sampler};

/// A trigger request as the transport received it.
#[derive(Debug)]
pub struct Call<B> {
    pub tenant: String,
    /// The trigger path after `/hooks/{tenant}/`.
    pub route: String,
    pub method: String,
    /// The whole request path.
    pub path: String,
    /// The raw query string (without `?`).
    pub query: String,
    pub headers: Headers,
    pub source_ip: IpAddr,
    pub body: B,
}

/// A request body, read only once the route has said how large it may be.
pub trait Body: Send {
    type Bytes: AsRef<[u8]> + Send;
    /// The body, or why it could not be read.
    fn read(self, max: u64) -> impl Future<Output = Result<Self::Bytes, Unread>> + Send;
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unread {
    /// Larger than the route allows: 413.
    TooLarge,
    /// Not all there within the server's read timeout (a client trickling
    /// it, or gone): 408.
    TimedOut,
}

/// A body already in memory (API Gateway hands the whole body over; its
/// size is checked against the limit after).
impl Body for Vec<u8> {
    type Bytes = Vec<u8>;
    async fn read(self, _max: u64) -> Result<Vec<u8>, Unread> {
        Ok(self)
    }
}

/// How an inbound request ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Rejected,
    Duplicate,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Rejected => "rejected",
            Verdict::Duplicate => "duplicate",
        }
    }
}

/// What a driver's [`InboundPorts::admit`] reports once the accepted run is
/// stored.
#[derive(Debug, Default)]
pub struct Admitted {
    /// The answer, when there is one: the trigger's configured answer
    /// (async) or the flow's `respond` step (sync).
    pub reply: Option<Reply>,
    /// A sync flow that did not answer within `respond.timeout` (504; the
    /// run goes on).
    pub timed_out: bool,
}

/// What the inbound pipeline needs from a driver.
pub trait InboundPorts: Send + Sync {
    type Error: Classify;

    /// The time, ms since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// The flow whose trigger is at `route` of `tenant`.
    fn flow(
        &self,
        tenant: &str,
        route: &str,
    ) -> impl Future<Output = Result<Option<Arc<CompiledFlow>>, Self::Error>> + Send;

    /// A trigger's verification secret.
    fn secret(&self, name: &str) -> impl Future<Output = Result<Option<String>, Self::Error>> + Send;

    /// How an operator sets the secret `name` on this driver (the log's
    /// answer to a secret that is not set; never the caller's).
    fn how_to_set(&self, name: &str) -> String;

    /// Claims an idempotency scope at `now_ms`.
    fn claim(&self, scope: &str, now_ms: i64) -> impl Future<Output = Result<Claim, Self::Error>> + Send;

    /// Gives up a claim: the request failed before its run was stored.
    fn release(&self, scope: &str) -> impl Future<Output = ()> + Send;

    /// Stores the accepted request's run (its commit, with the idempotency
    /// record when `idem` is set: scope and expiry) and gets its answer.
    /// Writes the outcome's log lines once stored. On an error the pipeline
    /// answers 413 ([`ErrorKind::TooLarge`]) or 503 and releases the claim.
    /// On SQLite an error means nothing was stored. On AWS the table is
    /// written (with the messages to send, the outbox) before they are
    /// sent; a send that fails leaves the key `accepted`, and the caller's
    /// retry sends them again (docs/ARCHITECTURE.md, "The outbox").
    fn admit(
        &self,
        flow: &Arc<CompiledFlow>,
        accepted: Accepted,
        idem: Option<(String, i64)>,
    ) -> impl Future<Output = Result<Admitted, Self::Error>> + Send;

    /// Stores a request-log entry of a request not accepted, best effort
    /// (the answer does not depend on it).
    fn log_request(&self, entry: LogEntry) -> impl Future<Output = ()> + Send;

    /// Writes operational log lines.
    fn lines(&self, lines: Vec<LogLine>);

    /// The sampler of requests to unknown paths (one a process).
    fn unknown_routes(&self) -> &Sampler;

    /// Counts a request's verdict (metrics), for the flow it reached
    /// (`None`: no trigger at its path), if the driver has any.
    fn counted(&self, _verdict: Verdict, _flow: Option<&CompiledFlow>, _received: i64) {}
}

/// A new id: `{prefix}_{uuid v7}`, ordered by time.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Handles one trigger request: every check in order, then the run
/// accepted and stored, then the answer.
pub async fn handle<P: InboundPorts, B: Body>(p: &P, call: Call<B>) -> Reply {
    let received = p.now_ms();
    let a = Arrival {
        tenant: call.tenant.clone(),
        event_id: new_id("evt"),
        method: call.method.clone(),
        path: call.path.clone(),
        source_ip: call.source_ip.to_string(),
        received,
    };
    // 1. Route.
    let flow = match p.flow(&call.tenant, &call.route).await {
        Ok(Some(flow)) => flow,
        Ok(None) => return unknown(p, &a).await,
        Err(e) => {
            let r = Rejection::private(503, format!("flows unavailable: {e}"), "unavailable: try again");
            return reject(p, &a, None, r).await;
        }
    };
    let declared = call.headers.get("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let max = match decide::check_route(&flow, &call.method, call.source_ip, declared) {
        Ok(max) => max,
        Err(r) => return reject(p, &a, Some(&flow), r).await,
    };
    // 2. Body.
    let bytes = match call.body.read(max).await {
        Ok(bytes) => bytes,
        Err(Unread::TooLarge) => return reject(p, &a, Some(&flow), decide::too_large(max)).await,
        Err(Unread::TimedOut) => return reject(p, &a, Some(&flow), decide::body_timed_out()).await,
    };
    let bytes = bytes.as_ref();
    let content_type = call.headers.get("content-type").unwrap_or("");
    if let Err(r) = decide::check_body(&flow, content_type, bytes.len()) {
        return reject(p, &a, Some(&flow), r).await;
    }
    // A body declared JSON that is not: refused where the flow enforces
    // its shape (after the credential, as the shape), else let through as
    // text and said in the log.
    let not_json = decide::json_problem(content_type, bytes);
    let mut request = InboundRequest {
        method: call.method,
        path: call.path,
        headers: call.headers,
        query: parse_form(&call.query),
        body: String::from_utf8_lossy(bytes).into_owned(),
        source_ip: a.source_ip.clone(),
        received_at: rfc3339(received),
    };
    // 3. Signature or credential.
    let verifier = Verifier::for_trigger(&flow.flow.trigger);
    // What a replay of this request repeats, when the trigger refuses them.
    let mut signed = None;
    if let Some(name) = &verifier.secret {
        let secret = match p.secret(name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                let reason = format!("the trigger's secret `{name}` is not set: {}", p.how_to_set(name));
                let r = Rejection::private(401, reason, "unauthorized: this trigger cannot verify requests yet");
                return reject(p, &a, Some(&flow), r).await;
            }
            Err(e) => {
                // The store's words may name the secret: the log's, not the caller's.
                let r = Rejection::private(503, format!("secrets unavailable: {e}"), "unavailable: try again");
                return reject(p, &a, Some(&flow), r).await;
            }
        };
        if let Err(e) = verifier.verify_bytes(&request, bytes, &secret, received / 1000) {
            return reject(p, &a, Some(&flow), Rejection::new(401, e.to_string())).await;
        }
        if flow.flow.trigger.auth.as_ref().is_some_and(|auth| auth.reject_replays) {
            signed = verifier.replay_identity(&request, bytes, &secret);
        }
    }
    // The checks below that read the body parse it once, when first needed.
    let parsed = OnceLock::new();
    let body_json = || parsed.get_or_init(|| request.parsed_body());
    // 4. Shape.
    if let Some(problem) = &not_json
        && flow.flow.trigger.expect.as_ref().is_some_and(|e| e.enforce)
    {
        return reject(p, &a, Some(&flow), Rejection::new(400, problem.clone())).await;
    }
    if let Err(r) = decide::check_shape(&flow, body_json()) {
        return reject(p, &a, Some(&flow), r).await;
    }
    // 5. Slack's challenge.
    if let Some(reply) = decide::slack_challenge(&flow, body_json()) {
        p.lines(vec![LogLine {
            level: Level::Info,
            message: "slack url_verification answered".into(),
            fields: json!({"tenant": a.tenant, "flow_id": flow.flow.id, "event_id": a.event_id}),
        }]);
        return reply;
    }
    // 6. Idempotency: the trigger's key, or a signed request remembered
    // against replays.
    let mut idem = None;
    let (mut run_id, mut event_id) = (None, a.event_id.clone());
    let scope = decide::claim_scope(&flow, &verifier, &request, body_json(), signed.as_deref());
    if let Some((scope, key, window)) = scope {
        match p.claim(&scope, received).await {
            Ok(Claim::Claimed) => {
                // A retry of a failed admission names the same run.
                let (run, event) = decide::keyed_ids(&scope, window, received);
                (run_id, event_id) = (Some(run), event);
                idem = Some((scope, received + window));
            }
            Ok(Claim::Completed(reply)) => {
                let (entry, line) = decide::duplicate(&a, &flow, &key);
                p.lines(vec![line]);
                p.counted(Verdict::Duplicate, Some(&flow), received);
                p.log_request(entry).await;
                return reply;
            }
            Ok(Claim::InProgress) => {
                let r = Rejection::new(409, "a request with this idempotency key is being handled; try again");
                return reject(p, &a, Some(&flow), r).await;
            }
            Err(e) => {
                let r = Rejection::private(503, format!("store unavailable: {e}"), "unavailable: try again");
                return reject(p, &a, Some(&flow), r).await;
            }
        }
    }
    // 7. The run keeps the request without its credentials (the
    // idempotency key above was read first).
    verifier.strip_credentials(&mut request);
    // 8. Accepted, stored, answered.
    // The event id's own uuid: a run is found from its event id alone
    // (`GET /v1/logs?event_id=` on a deployment reads the run, no index).
    let run_id = run_id.unwrap_or_else(|| event_id.replacen("evt_", "run_", 1));
    let accepted = decide::accept(&flow, &request, (&run_id, &event_id), received, idem.clone());
    let admitted = match p.admit(&flow, accepted, idem.clone()).await {
        Ok(admitted) => admitted,
        Err(e) => {
            if let Some((scope, _)) = &idem {
                p.release(scope).await;
            }
            let r = match e.kind() {
                ErrorKind::TooLarge => Rejection::new(413, format!("the run cannot be queued: {e}")),
                _ => Rejection::private(503, format!("store unavailable: {e}"), "unavailable: try again"),
            };
            return reject(p, &a, Some(&flow), r).await;
        }
    };
    p.counted(Verdict::Accepted, Some(&flow), received);
    let reply = decide::answer(admitted.reply, admitted.timed_out, &event_id);
    let ids = (flow.flow.id.as_str(), run_id.as_str(), event_id.as_str());
    p.lines(vec![decide::accepted_line(&a, ids, reply.status, not_json.as_deref(), p.now_ms())]);
    reply
}

/// Answers a request to a path with no trigger: counted always, logged
/// only as sampled ([`Sampler`](crate::Sampler)), so a flood of made-up
/// paths writes a bounded number of entries.
async fn unknown<P: InboundPorts>(p: &P, a: &Arrival) -> Reply {
    match p.unknown_routes().sample(a.received) {
        Sampled::Keep { dropped_before } => {
            if dropped_before > 0 {
                p.lines(vec![LogLine {
                    level: Level::Warn,
                    message: "requests to unknown trigger paths were counted, not logged".into(),
                    fields: json!({"requests": dropped_before, "logged_per_minute": crate::sampler::PER_MINUTE}),
                }]);
            }
            reject(p, a, None, decide::not_found()).await
        }
        Sampled::Drop => {
            p.counted(Verdict::Rejected, None, a.received);
            decide::not_found().record(a, None).2
        }
    }
}

/// Logs a rejection (operational line, metric, request log) and answers it.
async fn reject<P: InboundPorts>(p: &P, a: &Arrival, flow: Option<&CompiledFlow>, r: Rejection) -> Reply {
    let (entry, mut line, reply) = r.record(a, flow);
    line.fields["duration_ms"] = json!((p.now_ms() - a.received).max(0));
    p.lines(vec![line]);
    p.counted(Verdict::Rejected, flow, a.received);
    p.log_request(entry).await;
    reply
}

#[cfg(test)]
mod tests {
    //! Every inbound rule and its order, on ports held in memory: each
    //! request fails one check after passing all before it, and a request
    //! failing two checks gets the earlier one's answer.

    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hookflow_core::headers::REDACTED;

    use super::*;
    use crate::testing::Fault;

    const FLOW: &str = r#"
id: guarded
tenant: acme
trigger:
  type: webhook
  path: orders
  methods: [POST]
  ip_allowlist: [203.0.113.0/24]
  max_body: 64
  auth: { type: api_key, header: X-Api-Key, secret: inbound_key }
  idempotency: { header: X-Event-Id }
  expect:
    enforce: true
    body:
      schema: { type: object, required: [order] }
steps:
  - { id: fwd, type: http, url: "http://127.0.0.1:9/x" }
"#;

    const KEY: &str = "k-123-inbound";

    /// An accepted request as handed to `admit`, with its idempotency scope.
    type Admission = (Accepted, Option<(String, i64)>);

    #[derive(Default)]
    struct Fake {
        flow: Option<Arc<CompiledFlow>>,
        claims: HashMap<String, Claim>,
        admit_fails: Option<ErrorKind>,
        claimed: Mutex<Vec<String>>,
        released: Mutex<Vec<String>>,
        admitted: Mutex<Vec<Admission>>,
        /// The run and job ids of every admission, failed ones too.
        tried: Mutex<Vec<(String, Vec<String>)>>,
        logged: Mutex<Vec<LogEntry>>,
        lines: Mutex<Vec<LogLine>>,
        counted: Mutex<Vec<Verdict>>,
        sampler: Sampler,
    }

    impl Fake {
        fn new() -> Self {
            let flow = hookflow_core::load_flow("guarded.yaml".as_ref(), FLOW).unwrap();
            Fake { flow: Some(Arc::new(flow)), ..Default::default() }
        }
    }

    impl InboundPorts for Fake {
        type Error = Fault;

        fn now_ms(&self) -> i64 {
            1_800_000_000_000
        }

        async fn flow(&self, tenant: &str, route: &str) -> Result<Option<Arc<CompiledFlow>>, Fault> {
            Ok(self.flow.clone().filter(|_| tenant == "acme" && route == "orders"))
        }

        async fn secret(&self, name: &str) -> Result<Option<String>, Fault> {
            Ok((name == "inbound_key").then(|| KEY.to_string()))
        }

        fn how_to_set(&self, name: &str) -> String {
            format!("set {name}")
        }

        async fn claim(&self, scope: &str, _now_ms: i64) -> Result<Claim, Fault> {
            self.claimed.lock().unwrap().push(scope.to_string());
            Ok(self.claims.get(scope).cloned().unwrap_or(Claim::Claimed))
        }

        async fn release(&self, scope: &str) {
            self.released.lock().unwrap().push(scope.to_string());
        }

        async fn admit(
            &self,
            _flow: &Arc<CompiledFlow>,
            accepted: Accepted,
            idem: Option<(String, i64)>,
        ) -> Result<Admitted, Fault> {
            let jobs = accepted.outcome.commit.jobs.iter().map(|j| j.id.clone()).collect();
            self.tried.lock().unwrap().push((accepted.run.id.clone(), jobs));
            if let Some(kind) = self.admit_fails {
                return Err(Fault(kind));
            }
            let reply = accepted.reply.clone();
            self.admitted.lock().unwrap().push((accepted, idem));
            Ok(Admitted { reply, timed_out: false })
        }

        async fn log_request(&self, entry: LogEntry) {
            self.logged.lock().unwrap().push(entry);
        }

        fn lines(&self, lines: Vec<LogLine>) {
            self.lines.lock().unwrap().extend(lines);
        }

        fn counted(&self, verdict: Verdict, _flow: Option<&CompiledFlow>, _received: i64) {
            self.counted.lock().unwrap().push(verdict);
        }

        fn unknown_routes(&self) -> &Sampler {
            &self.sampler
        }
    }

    /// A body that counts whether it was read.
    struct Counted {
        bytes: Vec<u8>,
        reads: Arc<AtomicUsize>,
    }

    impl Body for Counted {
        type Bytes = Vec<u8>;
        async fn read(self, max: u64) -> Result<Vec<u8>, Unread> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            (self.bytes.len() as u64 <= max).then_some(self.bytes).ok_or(Unread::TooLarge)
        }
    }

    /// A request that passes every check; tests spoil one part.
    struct Req {
        route: &'static str,
        method: &'static str,
        ip: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    }

    fn good() -> Req {
        Req {
            route: "orders",
            method: "POST",
            ip: "203.0.113.9",
            headers: vec![
                ("content-type", "application/json".into()),
                ("x-api-key", KEY.into()),
                ("x-event-id", "evt-1".into()),
            ],
            body: br#"{"order": 1}"#.to_vec(),
        }
    }

    impl Req {
        fn header(mut self, name: &'static str, value: &str) -> Self {
            self.headers.retain(|(k, _)| *k != name);
            self.headers.push((name, value.to_string()));
            self
        }

        fn without(mut self, name: &str) -> Self {
            self.headers.retain(|(k, _)| *k != name);
            self
        }
    }

    /// Sends `req`; the answer's status, the answer, and how often the body
    /// was read.
    async fn send(p: &Fake, req: Req) -> (u16, Reply, usize) {
        let reads = Arc::new(AtomicUsize::new(0));
        let call = Call {
            tenant: "acme".into(),
            route: req.route.into(),
            method: req.method.into(),
            path: format!("/hooks/acme/{}", req.route),
            query: String::new(),
            headers: Headers(req.headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
            source_ip: req.ip.parse().unwrap(),
            body: Counted { bytes: req.body, reads: reads.clone() },
        };
        let reply = handle(p, call).await;
        (reply.status, reply, reads.load(Ordering::SeqCst))
    }

    /// The request was refused with `status`: logged once (entry and line),
    /// counted, nothing claimed or admitted.
    fn refused(p: &Fake, status: u16) {
        let logged = p.logged.lock().unwrap();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].outcome.as_deref(), Some(format!("rejected_{status}").as_str()));
        assert_eq!(p.counted.lock().unwrap().as_slice(), &[Verdict::Rejected]);
        assert_eq!(p.lines.lock().unwrap().len(), 1);
        assert!(p.admitted.lock().unwrap().is_empty(), "nothing may be admitted");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_good_request_is_accepted_with_its_idempotency_scope_and_without_its_credential() {
        let p = Fake::new();
        let (status, _, reads) = send(&p, good()).await;
        assert_eq!(status, 202);
        assert_eq!(reads, 1);
        let admitted = p.admitted.lock().unwrap();
        let (accepted, idem) = &admitted[0];
        let (scope, expires) = idem.clone().unwrap();
        assert_eq!(scope, "acme/guarded/evt-1");
        assert_eq!(expires, p.now_ms() + 24 * 3600 * 1000);
        let stored = format!("{:?}", accepted.outcome.commit);
        assert!(!stored.contains(KEY), "the credential is stripped before anything is stored");
        assert!(stored.contains(REDACTED));
        assert_eq!(p.counted.lock().unwrap().as_slice(), &[Verdict::Accepted]);
        assert!(p.logged.lock().unwrap().is_empty(), "an accepted request's entry is in its commit");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_async_answer_that_fails_to_render_still_answers_202_and_keeps_it_for_the_key() {
        // The run is stored and queued whatever the answer renders to; a
        // 500 would make the caller send the event again: a second run.
        let text = FLOW.replace(
            "  idempotency: { header: X-Event-Id }",
            "  idempotency: { header: X-Event-Id }\n  respond: { mode: async, status: 200, body: { json: { ref: \"{{ trigger.body.order // 0 }}\" } } }",
        );
        let flow = hookflow_core::load_flow("guarded.yaml".as_ref(), &text).unwrap();
        let p = Fake { flow: Some(Arc::new(flow)), ..Default::default() };
        let (status, reply, _) = send(&p, good()).await;
        assert_eq!(status, 202, "{reply:?}");
        let admitted = p.admitted.lock().unwrap();
        let (accepted, _) = &admitted[0];
        assert!(reply.body.unwrap().contains(&accepted.run.event_id));
        let (_, kept, _) = accepted.outcome.commit.idempotency.clone().expect("the answer is kept for the key");
        assert!(kept.contains("202"), "{kept}");
        assert!(accepted.outcome.lines.iter().any(|l| l.message.contains("failed to render")));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_secret_not_set_is_named_with_its_remedy_in_the_log_never_to_the_caller() {
        let text = FLOW.replace("secret: inbound_key", "secret: unset_key");
        let flow = hookflow_core::load_flow("guarded.yaml".as_ref(), &text).unwrap();
        let p = Fake { flow: Some(Arc::new(flow)), ..Default::default() };
        let (status, reply, _) = send(&p, good()).await;
        assert_eq!(status, 401);
        let body = reply.body.unwrap();
        assert!(!body.contains("unset_key"), "the caller is not told the secret's name: {body}");
        refused(&p, 401);
        let line = &p.lines.lock().unwrap()[0];
        assert_eq!(line.fields["reason"], "the trigger's secret `unset_key` is not set: set unset_key");
        assert!(line.fields["duration_ms"].is_number(), "{line:?}");
        assert_eq!(p.logged.lock().unwrap()[0].detail["reason"], line.fields["reason"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_body_declared_json_that_is_not_is_said_or_refused_where_the_flow_enforces() {
        let p = Fake::new();
        let (status, reply, _) = send(&p, Req { body: b"{\"order\": 1".to_vec(), ..good() }).await;
        assert_eq!(status, 400, "the guarded flow enforces its shape: {reply:?}");
        assert!(reply.body.unwrap().contains("is not JSON"));
        let text = FLOW.replace("    enforce: true\n", "");
        let flow = hookflow_core::load_flow("guarded.yaml".as_ref(), &text).unwrap();
        let p = Fake { flow: Some(Arc::new(flow)), ..Default::default() };
        let (status, _, _) = send(&p, Req { body: b"{\"order\": 1".to_vec(), ..good() }).await;
        assert_eq!(status, 202);
        let lines = p.lines.lock().unwrap();
        let line = lines.iter().find(|l| l.message == "inbound accepted").unwrap();
        assert_eq!(line.level, Level::Warn);
        assert!(line.fields["warning"].as_str().unwrap().contains("declared application/json but is not JSON"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_accepted_request_has_one_line_with_its_status_and_duration() {
        let p = Fake::new();
        let (status, _, _) = send(&p, good()).await;
        let lines = p.lines.lock().unwrap();
        let line = lines.iter().find(|l| l.message == "inbound accepted").expect("a line for the request");
        assert_eq!(
            (line.fields["status"].as_u64(), line.fields["method"].as_str()),
            (Some(status.into()), Some("POST"))
        );
        assert_eq!(line.fields["path"], "/hooks/acme/orders");
        assert!(line.fields["duration_ms"].is_number() && line.fields["run_id"].is_string(), "{line:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unknown_route_is_404_without_reading_the_body() {
        let p = Fake::new();
        let (status, reply, reads) = send(&p, Req { route: "nope", ..good() }).await;
        assert_eq!(status, 404);
        assert_eq!(reads, 0);
        assert!(reply.body.unwrap().contains("not found"), "a 404 says nothing of which part was unknown");
        refused(&p, 404);
        assert_eq!(p.logged.lock().unwrap()[0].flow_id, None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_flood_of_unknown_paths_is_counted_but_logged_only_as_sampled() {
        let p = Fake::new();
        for _ in 0..200 {
            let (status, _, reads) = send(&p, Req { route: "nope", ..good() }).await;
            assert_eq!((status, reads), (404, 0));
        }
        assert_eq!(p.counted.lock().unwrap().len(), 200, "every one is counted");
        let logged = p.logged.lock().unwrap().len();
        assert_eq!(logged, crate::sampler::PER_MINUTE as usize, "a bounded sample is stored");
        assert_eq!(p.lines.lock().unwrap().len(), logged);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_method_not_allowed_is_405_with_allow_before_the_source_address_is_checked() {
        let p = Fake::new();
        let (status, reply, reads) = send(&p, Req { method: "GET", ip: "198.51.100.1", ..good() }).await;
        assert_eq!(status, 405);
        assert!(reply.headers.contains(&("Allow".into(), "POST".into())));
        assert_eq!(reads, 0);
        refused(&p, 405);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_source_outside_the_allow_list_is_403_before_the_size_or_the_body() {
        let p = Fake::new();
        let req = Req { ip: "198.51.100.1", ..good() }.header("content-length", "1000");
        let (status, _, reads) = send(&p, req).await;
        assert_eq!(status, 403);
        assert_eq!(reads, 0);
        refused(&p, 403);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_declared_size_over_the_limit_is_413_without_reading_the_body() {
        let p = Fake::new();
        let (status, _, reads) = send(&p, good().header("content-length", "65")).await;
        assert_eq!(status, 413);
        assert_eq!(reads, 0);
        refused(&p, 413);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_body_over_the_limit_is_413_whatever_it_declared() {
        let p = Fake::new();
        let body = format!(r#"{{"order": "{}"}}"#, "x".repeat(64)).into_bytes();
        let (status, _, reads) = send(&p, Req { body, ..good() }.header("content-length", "10")).await;
        assert_eq!(status, 413);
        assert_eq!(reads, 1);
        refused(&p, 413);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unsupported_content_type_is_415_before_authentication() {
        let p = Fake::new();
        let (status, _, _) = send(&p, good().header("content-type", "image/png").without("x-api-key")).await;
        assert_eq!(status, 415);
        refused(&p, 415);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_missing_or_wrong_credential_is_401_before_the_shape_is_checked() {
        for req in [good().without("x-api-key"), good().header("x-api-key", "k-wrong")] {
            let p = Fake::new();
            let (status, reply, _) = send(&p, Req { body: b"[]".to_vec(), ..req }).await;
            assert_eq!(status, 401);
            assert!(!reply.body.unwrap().contains(KEY));
            refused(&p, 401);
            assert!(p.claimed.lock().unwrap().is_empty());
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_body_of_the_wrong_shape_is_422_before_the_idempotency_key_is_claimed() {
        let p = Fake::new();
        let (status, reply, _) = send(&p, Req { body: br#"{"other": 1}"#.to_vec(), ..good() }).await;
        assert_eq!(status, 422);
        assert!(reply.body.unwrap().contains("expected shape"));
        refused(&p, 422);
        assert!(p.claimed.lock().unwrap().is_empty(), "a refused request claims no key");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_answered_key_gets_its_first_reply_and_one_in_progress_409() {
        let first = Reply { status: 202, headers: vec![], body: Some("first".into()) };
        let mut p = Fake::new();
        p.claims.insert("acme/guarded/evt-1".into(), Claim::Completed(first.clone()));
        let (_, reply, _) = send(&p, good()).await;
        assert_eq!(reply, first);
        assert!(p.admitted.lock().unwrap().is_empty());
        assert_eq!(p.counted.lock().unwrap().as_slice(), &[Verdict::Duplicate]);
        assert_eq!(p.logged.lock().unwrap()[0].outcome.as_deref(), Some("duplicate"));

        let mut p = Fake::new();
        p.claims.insert("acme/guarded/evt-1".into(), Claim::InProgress);
        let (status, _, _) = send(&p, good()).await;
        assert_eq!(status, 409);
        refused(&p, 409);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_run_the_store_refuses_is_413_or_503_and_its_key_is_released() {
        for (kind, status) in [(ErrorKind::TooLarge, 413), (ErrorKind::Unavailable, 503), (ErrorKind::Conflict, 503)] {
            let mut p = Fake::new();
            p.admit_fails = Some(kind);
            let (got, _, _) = send(&p, good()).await;
            assert_eq!(got, status, "{kind:?}");
            assert_eq!(p.released.lock().unwrap().as_slice(), &["acme/guarded/evt-1".to_string()]);
            refused(&p, status);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_keyed_retry_after_a_failed_admission_names_the_same_run_and_deliveries() {
        // A sync flow sends its inline steps inside admission: when the
        // commit then fails, the caller's retry must send them again under
        // the same ids (webhook-id), not new ones.
        let mut failing = Fake::new();
        failing.admit_fails = Some(ErrorKind::Unavailable);
        assert_eq!(send(&failing, good()).await.0, 503);
        let ok = Fake::new();
        let (status, reply, _) = send(&ok, good()).await;
        assert_eq!(status, 202);
        let first = failing.tried.lock().unwrap()[0].clone();
        let again = ok.tried.lock().unwrap()[0].clone();
        assert!(!first.1.is_empty(), "the run has a delivery job: {first:?}");
        assert_eq!(first, again, "the same run and the same delivery ids");
        assert!(reply.body.unwrap().contains(&ok.admitted.lock().unwrap()[0].0.run.event_id));
        // Another key: another run.
        let other = Fake::new();
        send(&other, good().header("x-event-id", "evt-2")).await;
        assert_ne!(other.tried.lock().unwrap()[0].0, first.0);
        // No key: ids drawn anew each time.
        let (a, b) = (Fake::new(), Fake::new());
        send(&a, good().without("x-event-id")).await;
        send(&b, good().without("x-event-id")).await;
        assert_ne!(a.tried.lock().unwrap()[0].0, b.tried.lock().unwrap()[0].0);
    }
}

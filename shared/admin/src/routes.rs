//! The admin API's routes, under `/v1`: flows, subscriptions, events, the
//! request log, runs and dead deliveries, over a [`Backend`].
//!
//! With a token (`hookflow dev`) every request needs `Authorization: Bearer
//! <token>`; without one (the Lambda function, behind API Gateway's IAM
//! authorisation) the check is API Gateway's. Every error has one shape,
//! `{"error": {"code", "message", "field"}}`, with `problems` when a
//! document has several. The OpenAPI document of these routes is
//! [`crate::openapi::document`]; a test keeps `docs/openapi.json` equal to it.
//!
//! The decisions are the core's ([`hookflow_core::subscription`]); this
//! module parses, checks, calls the backend and answers.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use hookflow_core::run::parse_form;
use hookflow_core::subscription::{
    Credential, Event, FieldError, Keyring, NewEvent, NewSubscription, Replay, Status, Subscription,
};
use hookflow_core::{Error as CoreError, load_flow};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::backend::{Backend, BackendError, FlowInfo, LogQuery, Page};

/// What the admin routes share.
pub struct Admin<B> {
    pub backend: B,
    /// The bearer token every request must carry; `None` when something in
    /// front (API Gateway's IAM authorisation) checks the caller.
    pub token: Option<String>,
}

/// An error answer: `{"error": {"code", "message", "field", "problems"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub problems: Vec<FieldError>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None, problems: Vec::new() }
    }

    fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what}"))
    }

    fn invalid(problems: Vec<FieldError>) -> Self {
        let first = problems.first().cloned();
        let message = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message,
            field: first.map(|f| f.field),
            problems,
        }
    }

    fn field(status: StatusCode, code: &'static str, field: &str, message: impl Into<String>) -> Self {
        ApiError { field: Some(field.into()), ..ApiError::new(status, code, message) }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Invalid(problems) => ApiError::invalid(problems),
            BackendError::Conflict { field, message } => {
                ApiError { field, ..ApiError::new(StatusCode::CONFLICT, "conflict", message) }
            }
            BackendError::Duplicate(id) => {
                ApiError::new(StatusCode::CONFLICT, "duplicate", format!("event `{id}` was published already"))
            }
            BackendError::Unsupported(m) => ApiError::new(StatusCode::NOT_IMPLEMENTED, "unsupported", m),
            BackendError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("the store failed: {m}"))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message, "field": self.field});
        if !self.problems.is_empty() {
            error["problems"] = self.problems.iter().map(problem).collect();
        }
        let mut r = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// A refused field as the API answers it: `line` and `col` when the
/// document has lines.
fn problem(p: &FieldError) -> Value {
    let mut v = json!({"field": p.field, "message": p.message});
    if let (Some(line), Some(col)) = (p.line, p.col) {
        (v["line"], v["col"]) = (json!(line), json!(col));
    }
    v
}

type ApiResult = Result<Response, ApiError>;

fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

/// The admin routes, behind the bearer-token check when there is a token.
///
/// Built from the OpenAPI document ([`crate::openapi`]): every operation
/// it lists is routed to the handler its `operationId` names ([`Op`]), and
/// nothing else is routed. The router and the document cannot disagree.
pub fn router<B: Backend>(admin: Arc<Admin<B>>) -> Router {
    let mut routes = Router::new();
    for (path, method, id) in crate::openapi::operations() {
        let op = Op::from_id(&id).unwrap_or_else(|| panic!("the document's operation `{id}` has no handler"));
        let filter = MethodFilter::try_from(method.to_ascii_uppercase().parse::<Method>().expect("a method"))
            .expect("a routable method");
        // axum writes path parameters as OpenAPI does (`{id}`); a path
        // listed again with another method is merged into its route.
        routes = routes.route(&path, op.route::<B>(filter));
    }
    let routes = routes.fallback(|| async { ApiError::not_found("such route under /v1") }).method_not_allowed_fallback(
        || async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        },
    );
    routes.layer(middleware::from_fn_with_state(admin.clone(), authorize::<B>)).with_state(admin)
}

/// The operations of the admin API, by `operationId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    ListFlows,
    GetFlow,
    PutFlow,
    DeleteFlow,
    TestFlow,
    ListSubscriptions,
    CreateSubscription,
    GetSubscription,
    DeleteSubscription,
    VerifySubscription,
    RotateSecret,
    GetPublicKey,
    EnableSubscription,
    DisableSubscription,
    ListEvents,
    PublishEvent,
    GetLogs,
    GetRun,
    ReplayRun,
    ListDead,
    ReplayDead,
}

impl Op {
    pub(crate) const ALL: [Op; 21] = [
        Op::ListFlows,
        Op::GetFlow,
        Op::PutFlow,
        Op::DeleteFlow,
        Op::TestFlow,
        Op::ListSubscriptions,
        Op::CreateSubscription,
        Op::GetSubscription,
        Op::DeleteSubscription,
        Op::VerifySubscription,
        Op::RotateSecret,
        Op::GetPublicKey,
        Op::EnableSubscription,
        Op::DisableSubscription,
        Op::ListEvents,
        Op::PublishEvent,
        Op::GetLogs,
        Op::GetRun,
        Op::ReplayRun,
        Op::ListDead,
        Op::ReplayDead,
    ];

    pub(crate) fn id(self) -> &'static str {
        match self {
            Op::ListFlows => "listFlows",
            Op::GetFlow => "getFlow",
            Op::PutFlow => "putFlow",
            Op::DeleteFlow => "deleteFlow",
            Op::TestFlow => "testFlow",
            Op::ListSubscriptions => "listSubscriptions",
            Op::CreateSubscription => "createSubscription",
            Op::GetSubscription => "getSubscription",
            Op::DeleteSubscription => "deleteSubscription",
            Op::VerifySubscription => "verifySubscription",
            Op::RotateSecret => "rotateSecret",
            Op::GetPublicKey => "getPublicKey",
            Op::EnableSubscription => "enableSubscription",
            Op::DisableSubscription => "disableSubscription",
            Op::ListEvents => "listEvents",
            Op::PublishEvent => "publishEvent",
            Op::GetLogs => "getLogs",
            Op::GetRun => "getRun",
            Op::ReplayRun => "replayRun",
            Op::ListDead => "listDead",
            Op::ReplayDead => "replayDead",
        }
    }

    pub(crate) fn from_id(id: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.id() == id)
    }

    /// Its handler, for requests that `filter` matches.
    fn route<B: Backend>(self, filter: MethodFilter) -> MethodRouter<Arc<Admin<B>>> {
        match self {
            Op::ListFlows => on(filter, list_flows::<B>),
            Op::GetFlow => on(filter, get_flow::<B>),
            Op::PutFlow => on(filter, put_flow::<B>),
            Op::DeleteFlow => on(filter, delete_flow::<B>),
            Op::TestFlow => on(filter, test_flow::<B>),
            Op::ListSubscriptions => on(filter, list_subscriptions::<B>),
            Op::CreateSubscription => on(filter, create_subscription::<B>),
            Op::GetSubscription => on(filter, get_subscription::<B>),
            Op::DeleteSubscription => on(filter, delete_subscription::<B>),
            Op::VerifySubscription => on(filter, verify_subscription::<B>),
            Op::RotateSecret => on(filter, rotate_secret::<B>),
            Op::GetPublicKey => on(filter, public_key::<B>),
            Op::EnableSubscription => on(filter, enable_subscription::<B>),
            Op::DisableSubscription => on(filter, disable_subscription::<B>),
            Op::ListEvents => on(filter, list_events::<B>),
            Op::PublishEvent => on(filter, publish_event::<B>),
            Op::GetLogs => on(filter, logs::<B>),
            Op::GetRun => on(filter, get_run::<B>),
            Op::ReplayRun => on(filter, replay_run::<B>),
            Op::ListDead => on(filter, list_dead::<B>),
            Op::ReplayDead => on(filter, replay_dead::<B>),
        }
    }
}

async fn authorize<B: Backend>(State(admin): State<Arc<Admin<B>>>, req: Request, next: Next) -> Response {
    let Some(token) = &admin.token else { return next.run(req).await };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !hookflow_core::signature::mac_eq(given.trim().as_bytes(), token.as_bytes()) {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send `Authorization: Bearer <admin token>`")
            .into_response();
    }
    next.run(req).await
}

/// Parses a JSON body; errors name the field (422) or say where the JSON
/// breaks (400).
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let syntax = |e: &serde_json::Error| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_json", format!("the body is not JSON: {e}"))
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            de.end().map_err(|e| syntax(&e))?;
            Ok(v)
        }
        Err(e) if e.inner().is_data() => {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            Err(ApiError::invalid(vec![FieldError::new(field, e.inner().to_string())]))
        }
        Err(e) => Err(syntax(e.inner())),
    }
}

/// Query parameters, with typed reads that name the parameter on error.
struct Query(Map<String, Value>);

impl Query {
    fn of(raw: Option<String>) -> Self {
        Query(parse_form(raw.as_deref().unwrap_or("")))
    }

    fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => a.last().and_then(Value::as_str).unwrap_or_default().to_string(),
            other => other.to_string(),
        })
    }

    fn int(&self, name: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, ApiError> {
        let Some(t) = self.text(name) else { return Ok(default) };
        match t.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                name,
                format!("`{name}` must be an integer from {} to {}", range.start(), range.end()),
            )),
        }
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                name,
                format!("`{name}` must be true or false"),
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Flows

fn flow_json(f: &FlowInfo) -> Value {
    let mut v = json!({"tenant": f.tenant, "id": f.id, "file": f.file, "trigger": f.trigger});
    if let Some(flow) = &f.flow {
        v["flow"] = flow.clone();
    }
    if let Some(source) = &f.source {
        v["source"] = json!(source);
    }
    v
}

async fn list_flows<B: Backend>(State(a): State<Arc<Admin<B>>>) -> ApiResult {
    let mut all = a.backend.flows().await?;
    all.sort_by(|x, y| (&x.tenant, &x.id).cmp(&(&y.tenant, &y.id)));
    ok(StatusCode::OK, json!({ "flows": all.iter().map(flow_json).collect::<Vec<_>>() }))
}

async fn get_flow<B: Backend>(State(a): State<Arc<Admin<B>>>, Path((tenant, id)): Path<(String, String)>) -> ApiResult {
    let flow = a.backend.flow(&tenant, &id).await?.ok_or_else(|| ApiError::not_found("such flow"))?;
    ok(StatusCode::OK, flow_json(&flow))
}

/// A dry run of a flow (`hookflow test` over HTTP): its sample, or the
/// request given, through the run state machine with stand-in answers;
/// nothing is sent or stored, secrets stay `***`.
async fn test_flow<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path((tenant, id)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Request {
        #[serde(default)]
        method: Option<String>,
        #[serde(default)]
        path: String,
        #[serde(default)]
        headers: Map<String, Value>,
        #[serde(default)]
        query: Map<String, Value>,
        #[serde(default)]
        body: Value,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct StandIn {
        #[serde(default = "ok_status")]
        status: u16,
        #[serde(default)]
        headers: Map<String, Value>,
        #[serde(default)]
        body: Value,
    }
    fn ok_status() -> u16 {
        200
    }
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Test {
        #[serde(default)]
        request: Option<Request>,
        #[serde(default)]
        responses: Map<String, Value>,
    }
    let want: Test = if bytes.iter().all(u8::is_ascii_whitespace) { Test::default() } else { body(&bytes)? };
    let info = a.backend.flow(&tenant, &id).await?.ok_or_else(|| ApiError::not_found("such flow"))?;
    let text = info.source.unwrap_or_default();
    let flow = load_flow(std::path::Path::new(&info.file), &text).map_err(|e| match e {
        CoreError::Invalid(d) => {
            ApiError::invalid(d.into_iter().map(|d| FieldError::new(d.field.clone(), d.to_string())).collect())
        }
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", other.to_string()),
    })?;
    // The stored text is the flow's (a file edited to another id is not).
    if flow.flow.tenant != tenant || flow.flow.id != id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the flow's source now says `{}/{}`: reload the flows first", flow.flow.tenant, flow.flow.id),
        ));
    }
    let mut stand_ins = std::collections::HashMap::new();
    for (step, v) in want.responses {
        if flow.flow.step_index(&step).is_none() {
            let field = format!("responses.{step}");
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                &field,
                format!("the flow has no step `{step}`"),
            ));
        }
        let s: StandIn = serde_json::from_value(v).map_err(|e| {
            ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "invalid", &format!("responses.{step}"), e.to_string())
        })?;
        stand_ins.insert(step, hookflow_core::dry::response_of(s.status, &s.headers, s.body));
    }
    let inbound = match want.request {
        Some(r) => {
            let mut req = hookflow_core::dry::request_of(r.method, &r.headers, r.query, r.body);
            req.path = r.path;
            req
        }
        None => hookflow_core::dry::sample_request(&flow).ok_or_else(|| {
            ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                "request",
                "the flow has no sample (`trigger.expect.body.sample`): give a `request`",
            )
        })?,
    };
    let done = hookflow_core::dry::dry_run(&flow, inbound, &stand_ins)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string()))?;
    ok(StatusCode::OK, json!({"lines": done.lines, "failed": done.failed}))
}

fn check_slugs(tenant: &str, id: &str) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    for (field, v) in [("tenant", tenant), ("id", id)] {
        if !hookflow_core::validate::is_slug(v) {
            problems.push(FieldError::new(
                field,
                format!("`{v}` is not a valid {field}: use lower-case letters, digits, `-` and `_` (at most 64)"),
            ));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(ApiError::invalid(problems)) }
}

async fn put_flow<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path((tenant, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    text: Bytes,
) -> ApiResult {
    let dry_run = Query::of(q).flag("dry_run")?;
    check_slugs(&tenant, &id)?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", "the flow document is not UTF-8"))?;
    let name = format!("{tenant}.{id}.yaml");
    let compiled = match load_flow(name.as_ref(), text) {
        Ok(c) => c,
        Err(CoreError::Invalid(diags)) => {
            return Err(ApiError::invalid(
                diags
                    .iter()
                    .map(|d| {
                        FieldError::new(
                            d.field.clone(),
                            format!("line {}:{}: {}", d.position.line, d.position.col, d.message),
                        )
                        .at(d.position.line, d.position.col)
                    })
                    .collect(),
            ));
        }
        Err(e) => return Err(ApiError::invalid(vec![FieldError::new("", e.to_string())])),
    };
    let mut problems = Vec::new();
    if compiled.flow.tenant != tenant {
        problems.push(FieldError::new(
            "tenant",
            format!("the document says `{}`, the URL `{tenant}`", compiled.flow.tenant),
        ));
    }
    if compiled.flow.id != id {
        problems.push(FieldError::new("id", format!("the document says `{}`, the URL `{id}`", compiled.flow.id)));
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid(problems));
    }
    let warnings: Vec<Value> = compiled
        .warnings
        .iter()
        .map(|d| problem(&FieldError::new(d.field.clone(), d.message.clone()).at(d.position.line, d.position.col)))
        .collect();
    let (info, status) = if dry_run {
        a.backend.check_flow(&compiled).await?;
        (FlowInfo::of(&compiled, Some(text.to_string())), StatusCode::OK)
    } else {
        let (info, created) = a.backend.put_flow(&compiled, text).await?;
        (info, if created { StatusCode::CREATED } else { StatusCode::OK })
    };
    let mut answer = flow_json(&info);
    answer["warnings"] = json!(warnings);
    answer["dry_run"] = json!(dry_run);
    ok(status, answer)
}

async fn delete_flow<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    if !a.backend.delete_flow(&tenant, &id).await? {
        return Err(ApiError::not_found("such flow"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------
// Subscriptions

/// A subscription as the API shows it (the verification token is the
/// endpoint's business, not the admin's).
fn view(s: &Subscription) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("verification");
    }
    v
}

fn credential_fields(ring: &Keyring, out: &mut Value) {
    match ring.credential() {
        Some(Credential::Secret(s)) => out["secret"] = json!(s),
        Some(Credential::PublicKey(k)) => out["public_key"] = json!(k),
        None => {}
    }
}

async fn subscription<B: Backend>(a: &Admin<B>, id: &str) -> Result<Subscription, ApiError> {
    a.backend.subscription(id).await?.ok_or_else(|| ApiError::not_found("such subscription"))
}

async fn create_subscription<B: Backend>(State(a): State<Arc<Admin<B>>>, bytes: Bytes) -> ApiResult {
    let new: NewSubscription = body(&bytes)?;
    let now = a.backend.now_ms();
    let (sub, ring) = new.create(now).map_err(ApiError::invalid)?;
    // The keys first: a subscription is never without them.
    a.backend.put_keyring(&sub, &ring).await?;
    let job = sub.verification_job(a.backend.settings(), now);
    a.backend.save_subscription(&sub, None, job.into_iter().collect()).await?;
    let mut out = view(&sub);
    credential_fields(&ring, &mut out);
    ok(StatusCode::CREATED, out)
}

async fn list_subscriptions<B: Backend>(State(a): State<Arc<Admin<B>>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let tenant = q.text("tenant");
    // Paged when asked (`limit`, `after`): by id, the next page after the
    // last id of this one (`next`); else all, as before.
    if q.text("limit").is_none() && q.text("after").is_none() {
        let subs = a.backend.subscriptions(tenant.as_deref()).await?;
        return ok(StatusCode::OK, json!({ "subscriptions": subs.iter().map(view).collect::<Vec<_>>() }));
    }
    let limit = q.int("limit", 100, 1..=1_000)? as usize;
    let after = q.text("after");
    let subs = a.backend.subscriptions_page(tenant.as_deref(), after.as_deref(), limit).await?;
    let next = (subs.len() == limit).then(|| subs.last().map(|s| s.id.clone())).flatten();
    ok(StatusCode::OK, json!({ "subscriptions": subs.iter().map(view).collect::<Vec<_>>(), "next": next }))
}

async fn get_subscription<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    ok(StatusCode::OK, view(&subscription(&a, &id).await?))
}

async fn delete_subscription<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    if let Some(sub) = a.backend.subscription(&id).await?.filter(|s| s.status == Status::Disabled) {
        a.backend.flush_disabled(&sub).await?;
    }
    if !a.backend.delete_subscription(&id).await? {
        return Err(ApiError::not_found("such subscription"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn verify_subscription<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id).await?;
    if matches!(sub.status, Status::Active | Status::Disabled) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the subscription is {} already; verification is for pending or failed ones", sub.status.as_str()),
        ));
    }
    let now = a.backend.now_ms();
    let prev = sub.updated_at;
    let sub = sub.reverify(now);
    let job = sub.verification_job(a.backend.settings(), now);
    a.backend.save_subscription(&sub, Some(prev), job.into_iter().collect()).await?;
    ok(StatusCode::ACCEPTED, view(&sub))
}

async fn rotate_secret<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id).await?;
    let mut ring = a.backend.keyring(&sub).await?.unwrap_or_else(|| Keyring { keys: Vec::new() });
    let now = a.backend.now_ms();
    let grace = a.backend.settings().rotation_grace;
    ring.rotate(sub.signing, now, grace);
    a.backend.put_keyring(&sub, &ring).await?;
    // Senders caching the keyring see the new version and read it again.
    let mut sub = sub;
    let prev = sub.updated_at;
    sub.keys_version = now;
    sub.updated_at = now;
    a.backend.save_subscription(&sub, Some(prev), Vec::new()).await?;
    let mut out = json!({"id": sub.id, "previous_expires_at": now + grace.as_millis() as i64});
    credential_fields(&ring, &mut out);
    ok(StatusCode::OK, out)
}

async fn public_key<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id).await?;
    if sub.signing != hookflow_core::subscription::Signing::Ed25519 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the subscription signs with HMAC (`hmac_sha256`): it has a secret, not a public key",
        ));
    }
    let ring = a.backend.keyring(&sub).await?;
    let keys = ring.map(|r| r.public_keys(a.backend.now_ms())).unwrap_or_default();
    ok(StatusCode::OK, json!({"id": sub.id, "public_key": keys.last(), "public_keys": keys}))
}

/// How many events a replay reads, and queues, at a time.
const REPLAY_PAGE: usize = 1_000;
/// How many missed events an enable without replay counts, at most.
const COUNT_MAX: usize = 10_000;
/// How long one request replays before it answers with the rest pending
/// (the AWS admin function answers within API Gateway's 29 s).
const REPLAY_BUDGET_MS: i64 = 10_000;

/// Enables a disabled subscription and, with `replay: true`, queues the
/// matching events it missed: see [`replay`]. A request that stops anywhere
/// (its time budget, a failed send, a failed write) leaves the cursor where
/// nothing before it is unsent, and the same request again resumes there.
async fn enable_subscription<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Enable {
        #[serde(default)]
        replay: bool,
        #[serde(default)]
        since: Option<i64>,
    }
    let want: Enable = if bytes.iter().all(u8::is_ascii_whitespace) { Enable::default() } else { body(&bytes)? };
    let sub = subscription(&a, &id).await?;
    let started = a.backend.now_ms();
    let settle = a.backend.settings().replay_settle.as_millis() as i64;
    if let Some(since) = want.since {
        let refuse = |m: &str| Err(ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "invalid", "since", m));
        if !want.replay {
            return refuse("`since` chooses where a replay starts: send it with `replay: true`");
        }
        if !(0..=started).contains(&since) {
            return refuse("`since` must be a time in the past (ms since the epoch)");
        }
    }
    let (sub, since) = match (sub.status, sub.replay, want.since) {
        // A recovery: every selected event since the time chosen, sent
        // again (same `webhook-id`s), disabled or not.
        (Status::Disabled | Status::Active, None, Some(since)) | (Status::Disabled, Some(_), Some(since)) => {
            if sub.status == Status::Disabled {
                a.backend.flush_disabled(&sub).await?;
            }
            let recovering = sub.recovering(since, started + settle, started);
            let from = recovering.replay.map_or(since, |r| r.from);
            a.backend.save_subscription(&recovering, Some(sub.updated_at), Vec::new()).await?;
            (widen(&a, recovering, settle).await?, from)
        }
        (Status::Active, Some(_), Some(_)) => {
            return Err(ApiError::field(
                StatusCode::CONFLICT,
                "conflict",
                "since",
                "a replay of this subscription is unfinished: finish it first (`replay: true` without `since`)",
            ));
        }
        (Status::Disabled, _, None) => {
            a.backend.flush_disabled(&sub).await?;
            let since = sub.missed_since();
            let enabled = sub.enabled(started, want.replay.then_some(started + settle));
            a.backend.save_subscription(&enabled, Some(sub.updated_at), Vec::new()).await?;
            (widen(&a, enabled, settle).await?, since)
        }
        // An earlier replay stopped before its end: this one goes on.
        (Status::Active, Some(r), None) if want.replay => (sub, r.next),
        (status, _, _) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "the subscription is {}; only a disabled one can be enabled (or an active one whose replay \
                     is unfinished, with `replay: true`; or, to recover, a disabled or active one with `replay: true` and `since`)",
                    status.as_str()
                ),
            ));
        }
    };
    let (sub, missed, replayed) = match sub.replay {
        Some(_) => {
            let (sub, n) = replay(&a, sub, started).await?;
            (sub, n, n)
        }
        None => {
            let events = a.backend.events(Some(&sub.tenant), since, COUNT_MAX).await?;
            let missed = events.iter().filter(|e| sub.selects(&e.kind)).count();
            (sub, missed, 0)
        }
    };
    ok(
        StatusCode::OK,
        json!({"subscription": view(&sub), "missed": missed, "missed_since": since, "replayed": replayed,
               "replay_pending": sub.replay.is_some()}),
    )
}

/// Queues the events of `sub`'s [`Replay`] window a page at a time (read
/// from the cursor, queued, then the cursor moved past them), until the
/// window is done or the time budget is spent; the subscription as saved
/// last, and how many deliveries were queued.
///
/// A publish stamps its event, reads the subscriptions, then writes the
/// event: one in flight when the subscription was enabled can miss the
/// fan-out and land after the first read. So the window runs `settle`
/// past the enable (`until`), and once read to its end it is read once
/// more (`last_pass`) from `settle` before the enable, after `until +
/// settle`: events sent twice (same `webhook-id`s), none skipped.
async fn replay<B: Backend>(
    a: &Admin<B>,
    mut sub: Subscription,
    started: i64,
) -> Result<(Subscription, usize), ApiError> {
    let Some(Replay { until, .. }) = sub.replay else { return Ok((sub, 0)) };
    let settle = a.backend.settings().replay_settle.as_millis() as i64;
    // Events this request queued: a read that meets them again (its first
    // event, the last pass) does not queue them twice.
    let mut queued = std::collections::HashSet::new();
    let mut limit = REPLAY_PAGE;
    // Done, another window's (finished elsewhere, or a disable and enable
    // began another), or no longer active: stop.
    while let Some(r) = sub.replay.filter(|r| r.until == until && sub.status == Status::Active) {
        // The last pass reads only once publishes in flight have landed
        // (a request resumed early waits too).
        if r.last_pass {
            let now = a.backend.now_ms();
            // At most the settling time twice, whatever the clock did.
            let wait = (until + settle - now).clamp(0, 2 * settle);
            if wait > 0 && now + wait - started >= REPLAY_BUDGET_MS {
                break;
            }
            if wait > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
            }
        }
        let read = a.backend.events(Some(&sub.tenant), r.next, limit).await?;
        let last = read.last().map(|e| e.at);
        let cut = read.len() == limit && last.is_some_and(|at| at < until);
        if cut && last == Some(r.next) {
            // A whole read at one millisecond: read more of it at once.
            limit *= 2;
            continue;
        }
        let page: Vec<&Event> = read
            .iter()
            .filter(|e| e.at < until && sub.selects(&e.kind) && !queued.contains(&(e.at, e.id.clone())))
            .collect();
        if !page.is_empty() {
            let now = a.backend.now_ms();
            let jobs =
                page.iter().map(|e| sub.event_job(e, &e.envelope().to_string(), a.backend.settings(), now)).collect();
            a.backend.queue(jobs).await?;
            queued.extend(page.iter().map(|e| (e.at, e.id.clone())));
        }
        let next = match (last, cut, r.last_pass) {
            // More of the window: on from the last event read (its
            // millisecond is read again).
            (Some(at), true, _) => Some(Replay { next: at, ..r }),
            // Read to its end: once more from `settle` before the enable
            // (or past this read, if earlier), once publishes in flight
            // have landed.
            (_, _, false) => {
                let past = last.map_or(r.next, |at| at + 1);
                Some(Replay { next: past.min((until - 2 * settle).max(r.from)), last_pass: true, ..r })
            }
            (_, _, true) => None,
        };
        sub = advance(a, sub, next, until).await?;
        if a.backend.now_ms() - started >= REPLAY_BUDGET_MS {
            break;
        }
    }
    Ok((sub, queued.len()))
}

/// Ends the replay window of `sub` (just enabled) `settle` past when its
/// enable was seen written, if its write took so long that the window
/// (`settle` past the enable's start) ended first: a publish stamped
/// before that moment may not have seen the enable in either of its
/// reads, and its event must be in the window. (A second write, only
/// then.)
async fn widen<B: Backend>(a: &Admin<B>, sub: Subscription, settle: i64) -> Result<Subscription, ApiError> {
    let seen = a.backend.now_ms();
    let Some(r) = sub.replay.filter(|r| seen >= r.until) else { return Ok(sub) };
    let mut wider = sub.clone();
    wider.replay = Some(Replay { until: seen + settle, ..r });
    wider.updated_at = seen.max(sub.updated_at + 1);
    a.backend.save_subscription(&wider, Some(sub.updated_at), Vec::new()).await?;
    Ok(wider)
}

/// Saves the replay's cursor as `next` (`None`: done) over whatever else
/// changed meanwhile (a delivery's health change). A cursor of another
/// window (the replay finished elsewhere, or a new one began) is left
/// alone.
async fn advance<B: Backend>(
    a: &Admin<B>,
    mut sub: Subscription,
    next: Option<Replay>,
    until: i64,
) -> Result<Subscription, ApiError> {
    for _ in 0..3 {
        if sub.replay.is_none_or(|r| r.until != until) {
            return Ok(sub);
        }
        let prev = sub.updated_at;
        let mut moved = sub.clone();
        moved.replay = next;
        moved.updated_at = a.backend.now_ms().max(prev + 1);
        match a.backend.save_subscription(&moved, Some(prev), Vec::new()).await {
            Ok(()) => return Ok(moved),
            Err(BackendError::Conflict { .. }) => sub = subscription(a, &sub.id).await?,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        "the subscription kept changing during the replay; send the same request again to go on",
    ))
}

async fn disable_subscription<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id).await?;
    if sub.status == Status::Disabled {
        return ok(StatusCode::OK, view(&sub));
    }
    let prev = sub.updated_at;
    let sub = sub.disabled_by_admin(a.backend.now_ms());
    a.backend.save_subscription(&sub, Some(prev), Vec::new()).await?;
    ok(StatusCode::OK, view(&sub))
}

// ---------------------------------------------------------------------------
// Events

async fn publish_event<B: Backend>(State(a): State<Arc<Admin<B>>>, bytes: Bytes) -> ApiResult {
    let new: NewEvent = body(&bytes)?;
    let event = new.into_event(a.backend.now_ms()).map_err(ApiError::invalid)?;
    let id = event.id.clone();
    match a.backend.publish(event).await {
        Ok(p) => {
            ok(StatusCode::ACCEPTED, json!({"id": id, "duplicate": false, "deliveries": p.deliveries, "runs": p.runs}))
        }
        Err(BackendError::Duplicate(id)) => {
            ok(StatusCode::OK, json!({"id": id, "duplicate": true, "deliveries": 0, "runs": []}))
        }
        Err(e) => Err(e.into()),
    }
}

async fn list_events<B: Backend>(State(a): State<Arc<Admin<B>>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let since = q.int("since", 0, 0..=i64::MAX)?;
    let limit = q.int("limit", 100, 1..=1000)? as usize;
    let events = a.backend.events(q.text("tenant").as_deref(), since, limit).await?;
    ok(StatusCode::OK, json!({ "events": events }))
}

// ---------------------------------------------------------------------------
// Logs, runs, dead deliveries

async fn logs<B: Backend>(State(a): State<Arc<Admin<B>>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let query = LogQuery {
        tenant: q.text("tenant"),
        flow_id: q.text("flow_id"),
        run_id: q.text("run_id"),
        event_id: q.text("event_id"),
        subscription_id: q.text("subscription_id"),
        since: q.int("since", 0, 0..=i64::MAX)?,
        until: q.text("until").map(|_| q.int("until", 0, 0..=i64::MAX)).transpose()?,
        after_seq: q.text("after_seq").map(|_| q.int("after_seq", 0, 0..=i64::MAX)).transpose()?,
        upto_seq: q.text("before_seq").map(|_| q.int("before_seq", 1, 1..=i64::MAX).map(|n| n - 1)).transpose()?,
        failed_only: q.flag("failed")?,
        limit: q.int("limit", 500, 1..=10_000)? as usize,
    };
    let entries = a.backend.logs(query.clone()).await?;
    // The tail's count: every match after the cursor up to the newest entry
    // answered (the store commits in `seq` order: none below it is late).
    let count = match (query.after_seq, entries.iter().filter_map(|e| e.seq).max()) {
        (Some(_), Some(newest)) => a.backend.count_logs(LogQuery { upto_seq: Some(newest), ..query }).await?,
        (Some(_), None) if entries.is_empty() => Some(0),
        _ => None,
    };
    let mut answer = json!({ "entries": entries });
    if let Some(n) = count {
        answer["count"] = json!(n);
    }
    ok(StatusCode::OK, answer)
}

async fn get_run<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    let (run, log) = a.backend.run(&id).await?.ok_or_else(|| ApiError::not_found("such run"))?;
    ok(StatusCode::OK, json!({"run": run, "log": log}))
}

/// Replays a run: its request, as stored (credentials were stripped before
/// it was), accepted again by the flow's current version as a new run.
/// `key` names the replay: the same key again (a retry) is the same run.
async fn replay_run<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Replay {
        #[serde(default)]
        key: Option<String>,
    }
    let want: Replay = if bytes.iter().all(u8::is_ascii_whitespace) { Replay::default() } else { body(&bytes)? };
    if let Some(k) = &want.key
        && (k.is_empty() || k.len() > 64 || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "key",
            "`key` is 1 to 64 letters, digits, `-` or `_`",
        ));
    }
    let (run, _) = a.backend.run(&id).await?.ok_or_else(|| ApiError::not_found("such run"))?;
    let text = |k: &str| run.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (tenant, flow_id) = (text("tenant"), text("flow_id"));
    let request = run.get("trigger").and_then(hookflow_core::run::InboundRequest::from_trigger).ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "conflict", "this run has no request to replay (an event started it)")
    })?;
    let flow = a.backend.current_flow(&tenant, &flow_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("flow `{tenant}/{flow_id}` is gone: nothing to replay it with"),
        )
    })?;
    let now = a.backend.now_ms();
    let key = want.key.unwrap_or_else(|| now.to_string());
    let accepted = hookflow_core::inbound::replay(&flow, &request, &id, &key, now);
    let (run_id, event_id) = (accepted.run.id.clone(), accepted.run.event_id.clone());
    let new = a.backend.start_run(accepted).await?;
    ok(
        StatusCode::ACCEPTED,
        json!({"run_id": run_id, "event_id": event_id, "replay_of": id, "flow_version": flow.version, "new": new}),
    )
}

async fn list_dead<B: Backend>(State(a): State<Arc<Admin<B>>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let after = match (q.text("after_at"), q.text("after_id")) {
        (Some(_), Some(id)) => Some((q.int("after_at", 0, 0..=i64::MAX)?, id)),
        (None, None) => None,
        _ => {
            return Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                "after_at",
                "`after_at` and `after_id` go together: the `at` and `delivery_id` of the last row of the page before",
            ));
        }
    };
    let page = Page {
        offset: q.int("offset", 0, 0..=i64::MAX)? as usize,
        limit: q.int("limit", 1_000, 1..=10_000)? as usize,
        after,
    };
    let (dead, total) = a.backend.dead(q.text("flow_id").as_deref(), page).await?;
    ok(StatusCode::OK, json!({ "dead": dead, "total": total }))
}

async fn replay_dead<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path(delivery_id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let tenant = Query::of(q).text("tenant").filter(|t| !t.is_empty());
    if !a.backend.replay(&delivery_id, tenant.as_deref()).await? {
        return Err(ApiError::not_found("such dead delivery"));
    }
    ok(StatusCode::ACCEPTED, json!({"replayed": delivery_id}))
}

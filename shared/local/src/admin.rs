//! The admin API of `hookflow dev`, under `/v1`: flows, subscriptions,
//! events, the request log, runs and dead deliveries.
//!
//! Every request needs `Authorization: Bearer <token>` (the token is given
//! with `--admin-token`, or generated and printed at start). Every error has
//! one shape, `{"error": {"code", "message", "field"}}`, with `problems`
//! when a document has several. The OpenAPI document of these routes is
//! [`crate::openapi::document`]; a test keeps `docs/openapi.json` equal to it.
//!
//! The decisions are the core's ([`hookflow_core::subscription`]); this
//! module parses, checks, calls the runtime and answers.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hookflow_core::commit::LogEntry;
use hookflow_core::run::parse_form;
use hookflow_core::subscription::{Credential, FieldError, Keyring, NewEvent, NewSubscription, Status, Subscription};
use hookflow_core::{Error as CoreError, load_flow};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::runtime::{Flows, PublishError, Runtime};
use crate::store::LogFilter;
use crate::{Error, now_ms};

/// What the admin routes share.
pub struct Admin {
    pub rt: Arc<Runtime>,
    /// The bearer token every request must carry.
    pub token: String,
    /// Where `PUT /v1/flows/...` writes flow files.
    pub flows_dir: PathBuf,
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

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("the store failed: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message, "field": self.field});
        if !self.problems.is_empty() {
            error["problems"] = self.problems.iter().map(|p| json!({"field": p.field, "message": p.message})).collect();
        }
        let mut r = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

type ApiResult = Result<Response, ApiError>;

fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

/// The admin routes, behind the bearer-token check.
pub fn router(admin: Arc<Admin>) -> Router {
    let routes = Router::new()
        .route("/v1/flows", get(list_flows))
        .route("/v1/flows/{tenant}/{id}", get(get_flow).put(put_flow).delete(delete_flow))
        .route("/v1/subscriptions", get(list_subscriptions).post(create_subscription))
        .route("/v1/subscriptions/{id}", get(get_subscription).delete(delete_subscription))
        .route("/v1/subscriptions/{id}/verify", post(verify_subscription))
        .route("/v1/subscriptions/{id}/rotate-secret", post(rotate_secret))
        .route("/v1/subscriptions/{id}/public-key", get(public_key))
        .route("/v1/subscriptions/{id}/enable", post(enable_subscription))
        .route("/v1/subscriptions/{id}/disable", post(disable_subscription))
        .route("/v1/events", get(list_events).post(publish_event))
        .route("/v1/logs", get(logs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/dead", get(list_dead))
        .route("/v1/dead/{delivery_id}/replay", post(replay_dead))
        .fallback(|| async { ApiError::not_found("such route under /v1") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        });
    routes.layer(middleware::from_fn_with_state(admin.clone(), authorize)).with_state(admin)
}

async fn authorize(State(admin): State<Arc<Admin>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !hookflow_core::signature::mac_eq(given.trim().as_bytes(), admin.token.as_bytes()) {
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

fn flow_summary(f: &hookflow_core::CompiledFlow) -> Value {
    json!({
        "tenant": f.flow.tenant, "id": f.flow.id, "file": f.file.display().to_string(),
        "trigger": serde_json::to_value(&f.flow.trigger).unwrap_or_default(),
    })
}

async fn list_flows(State(a): State<Arc<Admin>>) -> ApiResult {
    let flows = a.rt.flows();
    let mut all: Vec<Value> = flows.all().map(|f| flow_summary(f)).collect();
    all.sort_by_key(|f| (f["tenant"].to_string(), f["id"].to_string()));
    ok(StatusCode::OK, json!({ "flows": all }))
}

async fn get_flow(State(a): State<Arc<Admin>>, Path((tenant, id)): Path<(String, String)>) -> ApiResult {
    let flow = a.rt.flows().by_id(&tenant, &id).ok_or_else(|| ApiError::not_found("such flow"))?;
    let mut v = flow_summary(&flow);
    v["flow"] = serde_json::to_value(&flow.flow).unwrap_or_default();
    v["source"] = json!(std::fs::read_to_string(&flow.file).unwrap_or_default());
    ok(StatusCode::OK, v)
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

/// Reloads the flows from the directory (after a write), so the change
/// is live when the answer goes out.
fn reload(a: &Admin) -> Result<(), ApiError> {
    let flows = crate::dev::load_dir(&a.flows_dir)
        .map_err(|p| ApiError::new(StatusCode::CONFLICT, "flows_invalid", p.join("; ")))
        .and_then(|f| Flows::new(f).map_err(|e| ApiError::new(StatusCode::CONFLICT, "flows_invalid", e.to_string())))?;
    a.rt.set_flows(flows);
    Ok(())
}

async fn put_flow(State(a): State<Arc<Admin>>, Path((tenant, id)): Path<(String, String)>, text: Bytes) -> ApiResult {
    check_slugs(&tenant, &id)?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", "the flow document is not UTF-8"))?;
    let existing = a.rt.flows().by_id(&tenant, &id);
    let file = existing.as_ref().map_or_else(|| a.flows_dir.join(format!("{tenant}.{id}.yaml")), |f| f.file.clone());
    let compiled = match load_flow(&file, text) {
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
    // The route must not clash with another flow's.
    if compiled.flow.trigger.kind == hookflow_core::flow::TriggerKind::Webhook
        && let Some(other) = a.rt.flows().by_route(&tenant, &compiled.flow.trigger.path)
        && other.file != file
    {
        return Err(ApiError::field(
            StatusCode::CONFLICT,
            "conflict",
            "trigger.path",
            format!("flow `{}` uses the trigger {} already", other.flow.id, other.flow.trigger_path()),
        ));
    }
    std::fs::write(&file, text).map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("{}: {e}", file.display()))
    })?;
    reload(&a)?;
    let status = if existing.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    ok(status, flow_summary(&compiled))
}

async fn delete_flow(State(a): State<Arc<Admin>>, Path((tenant, id)): Path<(String, String)>) -> ApiResult {
    let flow = a.rt.flows().by_id(&tenant, &id).ok_or_else(|| ApiError::not_found("such flow"))?;
    std::fs::remove_file(&flow.file).map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("{}: {e}", flow.file.display()))
    })?;
    reload(&a)?;
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

fn subscription(a: &Admin, id: &str) -> Result<Subscription, ApiError> {
    a.rt.subs.get(id).map(|s| (*s).clone()).ok_or_else(|| ApiError::not_found("such subscription"))
}

async fn create_subscription(State(a): State<Arc<Admin>>, bytes: Bytes) -> ApiResult {
    let new: NewSubscription = body(&bytes)?;
    let now = now_ms();
    let (sub, ring) = new.create(now).map_err(ApiError::invalid)?;
    a.rt.subs.put_keyring(&a.rt.store, &sub.keyring_name(), &ring.to_text())?;
    let job = sub.verification_job(&a.rt.settings, now);
    a.rt.save_subscription(&sub, job.into_iter().collect()).await?;
    let mut out = view(&sub);
    credential_fields(&ring, &mut out);
    ok(StatusCode::CREATED, out)
}

async fn list_subscriptions(State(a): State<Arc<Admin>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let subs = a.rt.subs.list(q.text("tenant").as_deref(), false);
    ok(StatusCode::OK, json!({ "subscriptions": subs.iter().map(|s| view(s)).collect::<Vec<_>>() }))
}

async fn get_subscription(State(a): State<Arc<Admin>>, Path(id): Path<String>) -> ApiResult {
    ok(StatusCode::OK, view(&subscription(&a, &id)?))
}

async fn delete_subscription(State(a): State<Arc<Admin>>, Path(id): Path<String>) -> ApiResult {
    if !a.rt.subs.delete(&a.rt.store, &id)? {
        return Err(ApiError::not_found("such subscription"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn verify_subscription(State(a): State<Arc<Admin>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id)?;
    if matches!(sub.status, Status::Active | Status::Disabled) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the subscription is {} already; verification is for pending or failed ones", sub.status.as_str()),
        ));
    }
    let now = now_ms();
    let sub = sub.reverify(now);
    let job = sub.verification_job(&a.rt.settings, now);
    a.rt.save_subscription(&sub, job.into_iter().collect()).await?;
    ok(StatusCode::ACCEPTED, view(&sub))
}

async fn rotate_secret(State(a): State<Arc<Admin>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id)?;
    let name = sub.keyring_name();
    let mut ring =
        a.rt.subs
            .keyring(&a.rt.store, &name)?
            .and_then(|t| Keyring::from_text(&t))
            .unwrap_or_else(|| Keyring { keys: Vec::new() });
    let now = now_ms();
    ring.rotate(sub.signing, now, a.rt.settings.rotation_grace);
    a.rt.subs.put_keyring(&a.rt.store, &name, &ring.to_text())?;
    let until = now + a.rt.settings.rotation_grace.as_millis() as i64;
    let mut out = json!({"id": sub.id, "previous_expires_at": until});
    credential_fields(&ring, &mut out);
    ok(StatusCode::OK, out)
}

async fn public_key(State(a): State<Arc<Admin>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id)?;
    if sub.signing != hookflow_core::subscription::Signing::Ed25519 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the subscription signs with HMAC (`hmac_sha256`): it has a secret, not a public key",
        ));
    }
    let ring = a.rt.subs.keyring(&a.rt.store, &sub.keyring_name())?.and_then(|t| Keyring::from_text(&t));
    let keys = ring.map(|r| r.public_keys(now_ms())).unwrap_or_default();
    ok(StatusCode::OK, json!({"id": sub.id, "public_key": keys.last(), "public_keys": keys}))
}

async fn enable_subscription(State(a): State<Arc<Admin>>, Path(id): Path<String>, bytes: Bytes) -> ApiResult {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Enable {
        #[serde(default)]
        replay: bool,
    }
    let want: Enable = if bytes.iter().all(u8::is_ascii_whitespace) { Enable::default() } else { body(&bytes)? };
    let sub = subscription(&a, &id)?;
    if sub.status != Status::Disabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the subscription is {}; only a disabled one can be enabled", sub.status.as_str()),
        ));
    }
    let since = sub.disabled_at.unwrap_or(sub.updated_at);
    let now = now_ms();
    let sub = sub.enabled(now);
    let missed: Vec<_> =
        a.rt.store.events(Some(&sub.tenant), since, 100_000)?.into_iter().filter(|e| sub.selects(&e.kind)).collect();
    let jobs = if want.replay {
        missed.iter().map(|e| sub.event_job(e, &e.envelope().to_string(), &a.rt.settings, now)).collect()
    } else {
        Vec::new()
    };
    let replayed = jobs.len();
    a.rt.save_subscription(&sub, jobs).await?;
    ok(
        StatusCode::OK,
        json!({"subscription": view(&sub), "missed": missed.len(), "missed_since": since, "replayed": replayed}),
    )
}

async fn disable_subscription(State(a): State<Arc<Admin>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id)?;
    if sub.status == Status::Disabled {
        return ok(StatusCode::OK, view(&sub));
    }
    let sub = sub.disabled_by_admin(now_ms());
    a.rt.save_subscription(&sub, Vec::new()).await?;
    ok(StatusCode::OK, view(&sub))
}

// ---------------------------------------------------------------------------
// Events

async fn publish_event(State(a): State<Arc<Admin>>, bytes: Bytes) -> ApiResult {
    let new: NewEvent = body(&bytes)?;
    let event = new.into_event(now_ms()).map_err(ApiError::invalid)?;
    let id = event.id.clone();
    match a.rt.publish(event).await {
        Ok(p) => {
            ok(StatusCode::ACCEPTED, json!({"id": id, "duplicate": false, "deliveries": p.deliveries, "runs": p.runs}))
        }
        Err(PublishError::Duplicate(id)) => {
            ok(StatusCode::OK, json!({"id": id, "duplicate": true, "deliveries": 0, "runs": []}))
        }
        Err(PublishError::Runtime(e)) => Err(e.into()),
    }
}

async fn list_events(State(a): State<Arc<Admin>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let since = q.int("since", 0, 0..=i64::MAX)?;
    let limit = q.int("limit", 100, 1..=1000)? as usize;
    let events = a.rt.store.events(q.text("tenant").as_deref(), since, limit)?;
    ok(StatusCode::OK, json!({ "events": events }))
}

// ---------------------------------------------------------------------------
// Logs, runs, dead deliveries

async fn logs(State(a): State<Arc<Admin>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let filter = LogFilter {
        flow_id: q.text("flow_id"),
        run_id: q.text("run_id"),
        since: q.int("since", 0, 0..=i64::MAX)?,
        failed_only: q.flag("failed")?,
    };
    let limit = q.int("limit", 500, 1..=10_000)? as usize;
    let mut entries: Vec<LogEntry> = a.rt.store.query_log(&filter)?;
    if let Some(t) = q.text("tenant") {
        entries.retain(|e| e.tenant.as_deref() == Some(t.as_str()));
    }
    if let Some(e) = q.text("event_id") {
        entries.retain(|x| x.event_id.as_deref() == Some(e.as_str()));
    }
    let skip = entries.len().saturating_sub(limit);
    ok(StatusCode::OK, json!({ "entries": entries.split_off(skip) }))
}

async fn get_run(State(a): State<Arc<Admin>>, Path(id): Path<String>) -> ApiResult {
    let run = a.rt.store.run(&id)?.ok_or_else(|| ApiError::not_found("such run"))?;
    let log = a.rt.store.query_log(&LogFilter { run_id: Some(id), ..Default::default() })?;
    ok(StatusCode::OK, json!({"run": run, "log": log}))
}

async fn list_dead(State(a): State<Arc<Admin>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let dead = a.rt.store.dead_jobs(q.text("flow_id").as_deref())?;
    ok(StatusCode::OK, json!({ "dead": dead }))
}

async fn replay_dead(State(a): State<Arc<Admin>>, Path(delivery_id): Path<String>, _h: HeaderMap) -> ApiResult {
    let dead =
        a.rt.store
            .dead_jobs(None)?
            .into_iter()
            .find(|d| d.row.delivery_id == delivery_id)
            .ok_or_else(|| ApiError::not_found("such dead delivery"))?;
    a.rt.store.replay(&dead)?;
    a.rt.wake();
    ok(StatusCode::ACCEPTED, json!({"replayed": delivery_id}))
}

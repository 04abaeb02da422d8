//! The console's routes: sign-in, each page, each action, the live tail.
//!
//! Every page is admin API reads rendered by a template; every action is
//! one admin API request, then a redirect to the page (post/redirect/get)
//! — or the page itself when it shows a secret once.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::api::{Failure, encode};
use crate::session::{Session, same_secret};
use crate::view::{DeadRow, Entry, FlowRow, LAST, Range, SubscriptionRow, Tail, Window, time};
use crate::{Console, assets, flow, now_ms};

/// The session cookie's name.
const COOKIE: &str = "hookflow_console";
/// The most log entries a page reads (the API's own bound is 10,000).
const LOG_PAGE: usize = 200;
/// How often the live tail asks for new entries.
const TAIL_EVERY: Duration = Duration::from_millis(250);
/// The most rows one push of the live tail carries (the rest are counted).
const TAIL_ROWS: usize = 100;

/// The Content-Security-Policy of every answer: the console's own script
/// and style only, no frames, forms only to itself.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router(c: Arc<Console>) -> Router {
    let private = Router::new()
        .route("/console", get(overview))
        .route("/console/flows", get(flows))
        .route("/console/flows/{tenant}/{id}", get(flow::show_flow))
        .route("/console/flows/{tenant}/{id}/test", post(flow::test_flow))
        .route("/console/flows/{tenant}/{id}/source", post(flow::edit_source))
        .route("/console/flows/{tenant}/{id}/send", post(flow::send_request))
        .route("/console/log", get(log))
        .route("/console/log/stream", get(stream))
        .route("/console/runs/{id}", get(run))
        .route("/console/runs/{id}/replay", post(replay_run))
        .route("/console/dead", get(dead))
        .route("/console/dead/replay", post(replay_dead))
        .route("/console/dead/replays/{id}", get(replay_progress))
        .route("/console/dead/replays/{id}/state", get(replay_state))
        .route("/console/subscriptions", get(subscriptions).post(create_subscription))
        .route("/console/subscriptions/{id}", get(subscription_page))
        .route("/console/subscriptions/{id}/{action}", post(subscription_action))
        .route("/console/events", post(publish))
        .route("/console/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(c.clone(), signed_in));
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(login_link).post(login_token))
        .route("/console/assets/{name}", get(|Path(name): Path<String>| async move { assets::asset(&name) }))
        .merge(private)
        .layer(middleware::from_fn_with_state(c.clone(), own_host))
        .layer(middleware::from_fn(security_headers))
        .with_state(c)
}

/// Refuses a request for another host than the console's (DNS rebinding:
/// a page whose name resolves to 127.0.0.1 would otherwise be same-origin
/// with the console for the browser).
async fn own_host(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    if let Some(hosts) = &c.hosts {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            let answer = format!("this console answers only at http://{}", hosts[0]);
            return (StatusCode::MISDIRECTED_REQUEST, answer).into_response();
        }
    }
    next.run(req).await
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    r
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(str::to_string))
}

/// Lets a signed-in browser through (its session in the request's
/// extensions); sends anyone else to sign in.
async fn signed_in(State(c): State<Arc<Console>>, mut req: Request, next: Next) -> Response {
    match cookie_value(req.headers()).and_then(|v| c.sessions.session(&v, now_ms())) {
        Some(session) => {
            req.extensions_mut().insert(session);
            next.run(req).await
        }
        None if req.method() == Method::GET => Redirect::to("/console/login").into_response(),
        None => (StatusCode::FORBIDDEN, "not signed in: open /console/login").into_response(),
    }
}

/// A submitted form: its fields in order (a key may repeat).
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        let dec = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        let text = String::from_utf8_lossy(bytes);
        Form(
            text.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (dec(k), dec(v))
                })
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> &str {
        self.0.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
    }

    /// The form as a URL query again.
    fn query_string(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// The form of a change, if it carries the session's CSRF token (a
    /// page of another site cannot read it); else [`csrf_refused`].
    pub(crate) fn checked(session: &Session, bytes: &[u8]) -> Option<Self> {
        let form = Form::parse(bytes);
        same_secret(form.get("csrf"), &session.csrf).then_some(form)
    }
}

pub(crate) fn csrf_refused() -> Response {
    (StatusCode::FORBIDDEN, "the form's CSRF token is missing or stale: reload the page").into_response()
}

/// The query of a page's URL.
pub(crate) fn query(q: Option<String>) -> Form {
    Form::parse(q.unwrap_or_default().as_bytes())
}

/// What every page's template gets, plus the page's own fields.
pub(crate) fn page(session: Option<&Session>, name: &str, fields: Value) -> Value {
    let mut ctx = json!({"signed_in": session.is_some(), "csrf": session.map(|s| s.csrf.clone()), "page": name});
    if let (Some(o), Value::Object(f)) = (ctx.as_object_mut(), fields) {
        o.extend(f);
    }
    ctx
}

pub(crate) fn render(c: &Console, template: &str, ctx: Value) -> Response {
    match c
        .templates
        .get_template(template)
        .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(&ctx))))
    {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("console template {template}: {e}")).into_response(),
    }
}

/// An admin API failure as a page: its status, its message.
pub(crate) fn failed(c: &Console, session: &Session, f: Failure) -> Response {
    let mut r = render(c, "base.html", page(Some(session), "error", json!({"error": f.to_string()})));
    *r.status_mut() = if f.status.is_client_error() { f.status } else { StatusCode::BAD_GATEWAY };
    r
}

fn signed_in_answer(cookie: &str) -> Response {
    let mut r = Redirect::to("/console").into_response();
    let value = format!(
        "{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        crate::session::SESSION_TTL_MS / 1000
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

// ---------------------------------------------------------------------------
// Sign-in

async fn login_link(State(c): State<Arc<Console>>, RawQuery(q): RawQuery) -> Response {
    let q = query(q);
    let code = q.get("code");
    if code.is_empty() {
        return render(&c, "login.html", page(None, "login", json!({})));
    }
    match c.sessions.redeem(code, now_ms()) {
        Some((cookie, _)) => signed_in_answer(&cookie),
        None => {
            let error = "This sign-in link was used already or has expired: each link signs in once. \
                         Enter the admin token, or restart hookflow dev for a new link.";
            let mut r = render(&c, "login.html", page(None, "login", json!({"error": error})));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

async fn login_token(State(c): State<Arc<Console>>, bytes: Bytes) -> Response {
    let now = now_ms();
    if !c.sessions.may_try(now) {
        let error = "Too many wrong tokens: wait a minute.";
        let mut r = render(&c, "login.html", page(None, "login", json!({"error": error})));
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return r;
    }
    let form = Form::parse(&bytes);
    if !form.get("token").is_empty() && same_secret(form.get("token"), &c.token) {
        let (cookie, _) = c.sessions.start(now);
        return signed_in_answer(&cookie);
    }
    c.sessions.failed_try(now);
    let mut r = render(&c, "login.html", page(None, "login", json!({"error": "That is not the admin token."})));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r
}

async fn logout(State(c): State<Arc<Console>>, req: Request) -> Response {
    let Some(session) = req.extensions().get::<Session>().cloned() else {
        return Redirect::to("/console/login").into_response();
    };
    let cookie = cookie_value(req.headers());
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if Form::checked(&session, &bytes).is_none() {
        return csrf_refused();
    }
    if let Some(cookie) = cookie {
        c.sessions.end(&cookie);
    }
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("hookflow_console=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

// ---------------------------------------------------------------------------
// Pages

/// The newest log entries since `since` (oldest first, as the API answers).
async fn entries_since(c: &Console, since: i64, limit: usize) -> Result<Vec<Value>, Failure> {
    let v = c.api.get(&format!("/v1/logs?since={since}&limit={limit}")).await?;
    Ok(v.get("entries").and_then(Value::as_array).cloned().unwrap_or_default())
}

async fn overview(State(c): State<Arc<Console>>, axum::Extension(s): axum::Extension<Session>) -> Response {
    const READ: usize = 10_000;
    let now = now_ms();
    // One read of the day; the hour is its tail.
    let day = match entries_since(&c, now - 86_400_000, READ).await {
        Ok(entries) => entries,
        Err(f) => return failed(&c, &s, f),
    };
    let hour: Vec<Value> =
        day.iter().filter(|e| e.get("at").and_then(Value::as_i64).unwrap_or(0) >= now - 3_600_000).cloned().collect();
    let capped = day.len() >= READ;
    let mut windows = vec![
        Window::of("hour", &hour, if capped { hour.len() } else { READ }).charted(&hour, now, "5 minutes", 300_000, 12),
        Window::of("24 hours", &day, READ).charted(&day, now, "hour", 3_600_000, 24),
    ];
    windows[0].capped = capped;
    let dead = match c.api.get("/v1/dead?limit=1").await {
        Ok(v) => v.get("total").and_then(Value::as_u64).unwrap_or(0),
        Err(f) => return failed(&c, &s, f),
    };
    render(&c, "overview.html", page(Some(&s), "overview", json!({"windows": windows, "dead": dead})))
}

async fn flows(State(c): State<Arc<Console>>, axum::Extension(s): axum::Extension<Session>) -> Response {
    let listed = match c.api.get("/v1/flows").await {
        Ok(v) => v.get("flows").and_then(Value::as_array).cloned().unwrap_or_default(),
        Err(f) => return failed(&c, &s, f),
    };
    let mut counts = BTreeMap::new();
    for e in entries_since(&c, now_ms() - 3_600_000, 10_000).await.unwrap_or_default() {
        if e.get("kind").and_then(Value::as_str) == Some("inbound") {
            let key = format!(
                "{}/{}",
                e.get("tenant").and_then(Value::as_str).unwrap_or_default(),
                e.get("flow_id").and_then(Value::as_str).unwrap_or_default()
            );
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    let rows: Vec<FlowRow> = listed.iter().map(|f| FlowRow::of(f, c.triggers_base.as_deref(), &counts)).collect();
    render(&c, "flows.html", page(Some(&s), "flows", json!({"flows": rows})))
}

/// The log filters of a query, as the admin API takes them, and the text
/// and outcome filters the console applies itself.
struct LogFilter {
    api: String,
    text: String,
    /// An outcome (`rejected` takes every `rejected_…`), or any.
    outcome: String,
    shown: Value,
}

/// The outcomes the log page's menu offers.
const OUTCOMES: [&str; 8] = ["accepted", "rejected", "success", "retry", "halt", "dead", "failed", "done"];

impl LogFilter {
    fn of(q: &Form) -> Self {
        let mut api = String::new();
        for key in ["flow_id", "tenant", "event_id", "run_id", "before_seq"] {
            let v = q.get(key).trim();
            if !v.is_empty() {
                api.push_str(&format!("&{key}={}", encode(v)));
            }
        }
        let failed = q.get("failed") == "true";
        if failed {
            api.push_str("&failed=true");
        }
        let outcome = q.get("outcome").trim().to_string();
        let shown = json!({
            "flow_id": q.get("flow_id"), "tenant": q.get("tenant"), "event_id": q.get("event_id"),
            "text": q.get("text"), "failed": failed, "outcome": outcome,
            "last": q.get("last"), "from": q.get("from"), "to": q.get("to"),
        });
        LogFilter { api, text: q.get("text").trim().to_lowercase(), outcome, shown }
    }

    /// Whether an entry passes the console's own filters.
    fn takes(&self, e: &Entry) -> bool {
        let outcome = self.outcome.as_str();
        e.contains(&self.text)
            && (outcome.is_empty()
                || e.outcome == outcome
                || (outcome == "rejected" && e.outcome.starts_with("rejected_")))
    }
}

async fn log(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query(q);
    let filter = LogFilter::of(&q);
    let now = now_ms();
    // The last 24 hours unless the form says otherwise: a deployment's
    // log is read by hour.
    let (range, error) = match Range::of(q.get("since"), q.get("last"), q.get("from"), q.get("to"), now) {
        Ok(r) => (r, None),
        Err(e) => (Range { since: now - 86_400_000, until: None }, Some(e)),
    };
    let until = range.until.map(|u| format!("&until={u}")).unwrap_or_default();
    let path = format!("/v1/logs?since={}&limit={LOG_PAGE}{until}{}", range.since, filter.api);
    let listed = match c.api.get(&path).await {
        Ok(v) => v.get("entries").and_then(Value::as_array).cloned().unwrap_or_default(),
        Err(f) => return failed(&c, &s, f),
    };
    let mut entries: Vec<Entry> = listed.iter().map(Entry::of).filter(|e| filter.takes(e)).collect();
    entries.reverse();
    let times: Vec<i64> = listed.iter().filter_map(|e| e.get("at").and_then(Value::as_i64)).collect();
    // A full page has older entries: the next page ends where this one
    // does (its oldest millisecond again, so none of that millisecond is
    // skipped; a page all of one millisecond moves past it).
    // (By `seq` where entries carry one: before the oldest shown, exact.)
    let oldest_seq = listed.iter().filter_map(|e| e.get("seq").and_then(Value::as_i64)).min();
    let older = (listed.len() >= LOG_PAGE).then(|| {
        let (oldest, newest) = (times.iter().min().copied().unwrap_or(0), times.iter().max().copied().unwrap_or(0));
        let skip = ["to", "since", "from", "before_seq", "after"];
        let mut link = Form(q.0.iter().filter(|(k, _)| !skip.contains(&k.as_str())).cloned().collect());
        link.0.push((
            "from".into(),
            if q.get("from").is_empty() { range.since.to_string() } else { q.get("from").into() },
        ));
        match oldest_seq {
            Some(seq) => {
                link.0.push(("before_seq".into(), seq.to_string()));
                link.0.push(("to".into(), range.until.map_or_else(|| now.to_string(), |u| u.to_string())));
            }
            None => link.0.push(("to".into(), if oldest == newest { oldest } else { oldest + 1 }.to_string())),
        }
        format!("/console/log?{}", link.query_string())
    });
    // The tail goes on after the newest entry this page shows: nothing
    // stored between this read and the page's script connecting is lost.
    // A range with an end (an older page too) has no tail.
    let stream = (range.until.is_none() && q.get("before_seq").is_empty()).then(|| {
        let newest_seq = listed.iter().filter_map(|e| e.get("seq").and_then(Value::as_i64)).max();
        let after = match newest_seq {
            Some(seq) => format!("s{seq}"),
            None => format!("t{}", times.iter().max().copied().unwrap_or(now)),
        };
        let mut link = Form(q.0.iter().filter(|(k, _)| k != "after").cloned().collect());
        link.0.push(("after".into(), after));
        format!("/console/log/stream?{}", link.query_string())
    });
    let last: Vec<Value> = LAST.iter().map(|(v, label, _)| json!([v, label])).collect();
    let ctx = json!({
        "entries": entries, "q": filter.shown, "stream": stream, "older": older, "error": error,
        "last_choices": last, "outcomes": OUTCOMES, "since": time(range.since),
        "until": range.until.map(time),
    });
    render(&c, "log.html", page(Some(&s), "log", ctx))
}

/// The live tail: server-sent events, each a batch of new entries rendered
/// as rows (newest first, at most [`TAIL_ROWS`]) with the count of all of
/// them, from an admin API read every [`TAIL_EVERY`] after its cursor
/// ([`Tail`]: an entry's `seq` where the store numbers them, else a time
/// less a look-back, the entries sent already known by content). Each
/// event's id is its cursor, so a reconnecting page (`Last-Event-ID`) goes
/// on from it. It ends when the page goes or its session does.
async fn stream(State(c): State<Arc<Console>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let q = query(q);
    let filter = LogFilter::of(&q);
    let resumed = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let cursor = Tail::parse(resumed.as_deref().unwrap_or(q.get("after")), now_ms());
    struct Stream {
        c: Arc<Console>,
        cookie: Option<String>,
        filter: LogFilter,
        cursor: Tail,
    }
    let tail = Stream { cookie: cookie_value(&headers), c, filter, cursor };
    let events = futures_util::stream::unfold(tail, |mut t| async move {
        loop {
            tokio::time::sleep(TAIL_EVERY).await;
            // Signed out or expired: the stream ends with the session.
            t.cookie.as_deref().and_then(|v| t.c.sessions.session(v, now_ms()))?;
            let path = format!("/v1/logs?{}{}", t.cursor.query(TAIL_ROWS), t.filter.api);
            let Ok(v) = t.c.api.get(&path).await else { continue };
            let (fresh, count) = t.cursor.take(&v);
            if count == 0 {
                continue;
            }
            let shown: Vec<Entry> = fresh.iter().map(Entry::of).filter(|e| t.filter.takes(e)).collect();
            let rows: Vec<String> = shown
                .iter()
                .rev()
                .take(TAIL_ROWS)
                .filter_map(|e| {
                    t.c.templates
                        .get_template("entry.html")
                        .and_then(|tpl| tpl.render(minijinja::Value::from(minijinja::value::Serde(json!({"e": e})))))
                        .ok()
                })
                .collect();
            let data = json!({"rows": rows, "count": count, "more": count.saturating_sub(rows.len())});
            let event = Event::default().event("entries").id(t.cursor.id()).data(data.to_string());
            return Some((Ok::<_, Infallible>(event), t));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

async fn run(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let v = match c.api.get(&format!("/v1/runs/{}", encode(&id))).await {
        Ok(v) => v,
        Err(f) => return failed(&c, &s, f),
    };
    let state = v.get("run").cloned().unwrap_or(Value::Null);
    let entries: Vec<Entry> =
        v.get("log").and_then(Value::as_array).map(|l| l.iter().map(Entry::of).collect()).unwrap_or_default();
    let field = |k: &str| state.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let status = match state.get("status") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    // Only what this page's replay says (a link cannot make up text).
    let replayed = query(q).get("replay_of").to_string();
    let notice = replayed
        .starts_with("run_")
        .then(|| format!("A replay of {replayed}, by the flow's current version."))
        .filter(|_| replayed.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'));
    let ctx = json!({
        "id": id, "status": status, "flow_id": field("flow_id"), "event_id": field("event_id"),
        "entries": entries, "state": serde_json::to_string_pretty(&state).unwrap_or_default(),
        "replayable": state.pointer("/trigger/method").is_some(),
        // Names this page's replay: clicked twice, or retried after a
        // failure, it is one replay.
        "replay_key": crate::session::random_token(), "notice": notice,
    });
    render(&c, "run.html", page(Some(&s), "run", ctx))
}

/// Dead deliveries a page shows.
const DEAD_PAGE: usize = 100;

/// Replays the run's request against the flow's current version
/// (`replayRun`), then shows the new run.
async fn replay_run(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Response {
    let Some(form) = Form::checked(&s, &bytes) else { return csrf_refused() };
    let key: String = form.get("key").chars().take(64).collect();
    match c.api.post(&format!("/v1/runs/{}/replay", encode(&id)), &json!({"key": key})).await {
        Ok(v) => {
            let new = v.get("run_id").and_then(Value::as_str).unwrap_or_default();
            Redirect::to(&format!("/console/runs/{}?replay_of={}", encode(new), encode(&id))).into_response()
        }
        Err(f) => failed(&c, &s, f),
    }
}

async fn dead(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query(q);
    let flow = q.get("flow_id").trim().to_string();
    let n = q.get("page").parse::<usize>().unwrap_or(0).min(1_000_000);
    let filter = if flow.is_empty() { String::new() } else { format!("&flow_id={}", encode(&flow)) };
    let path = format!("/v1/dead?offset={}&limit={DEAD_PAGE}{filter}", n * DEAD_PAGE);
    let (listed, total) = match c.api.get(&path).await {
        Ok(v) => (
            v.get("dead").and_then(Value::as_array).cloned().unwrap_or_default(),
            v.get("total").and_then(Value::as_u64).unwrap_or(0) as usize,
        ),
        Err(f) => return failed(&c, &s, f),
    };
    let rows: Vec<DeadRow> = listed.iter().map(DeadRow::of).collect();
    let notice = q.get("replayed").parse::<usize>().ok().map(|n| format!("{n} dead deliveries queued again."));
    let link = |page: usize| format!("/console/dead?page={page}{filter}");
    let ctx = json!({
        "dead": rows, "flow_id": flow, "notice": notice, "total": total,
        "first": n * DEAD_PAGE + 1, "last": n * DEAD_PAGE + rows.len(),
        "newer": (n > 0).then(|| link(n - 1)),
        "older": ((n + 1) * DEAD_PAGE < total).then(|| link(n + 1)),
    });
    render(&c, "dead.html", page(Some(&s), "dead", ctx))
}

async fn replay_dead(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    bytes: Bytes,
) -> Response {
    let Some(form) = Form::checked(&s, &bytes) else { return csrf_refused() };
    let flow = form.get("flow_id").trim();
    // Everything matching the filter, however many pages: a task whose
    // progress its page follows.
    if form.get("which") == "matching" {
        let id = c.replays.start(c.api.clone(), flow.to_string());
        return Redirect::to(&format!("/console/dead/replays/{id}")).into_response();
    }
    // Exactly what the page showed: "all" is every row it listed, not
    // whatever is dead by the time the form is sent.
    let ids: Vec<&str> = if form.get("which") == "all" { form.all("shown") } else { form.all("id") };
    let mut replayed = 0;
    for id in &ids {
        // Its tenant, as listed: the backend reads the row by its key.
        let tenant = form.get(&format!("tenant:{id}"));
        let path = format!("/v1/dead/{}/replay?tenant={}", encode(id), encode(tenant));
        match c.api.post(&path, &json!({})).await {
            Ok(_) => replayed += 1,
            // Replayed meanwhile (by another tab, the CLI): not an error.
            Err(f) if f.status == StatusCode::NOT_FOUND => {}
            Err(f) => return failed(&c, &s, f),
        }
    }
    let filter = if flow.is_empty() { String::new() } else { format!("&flow_id={}", encode(flow)) };
    Redirect::to(&format!("/console/dead?replayed={replayed}{filter}")).into_response()
}

async fn replay_progress(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let Some(p) = c.replays.get(&id) else {
        return failed(&c, &s, Failure::of(StatusCode::NOT_FOUND, "no such replay (the console keeps the last 20)"));
    };
    let state_path = format!("/console/dead/replays/{}/state", encode(&id));
    render(&c, "replay.html", page(Some(&s), "dead", json!({"p": p.state(), "state": state_path})))
}

async fn replay_state(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    match c.replays.get(&id) {
        Some(p) => axum::Json(p.state()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such replay").into_response(),
    }
}

/// Subscriptions a page lists.
const SUBSCRIPTIONS_PAGE: usize = 100;

async fn subscriptions_page(c: &Console, s: &Session, after: &str, extra: Value) -> Response {
    let from = if after.is_empty() { String::new() } else { format!("&after={}", encode(after)) };
    let (listed, next) = match c.api.get(&format!("/v1/subscriptions?limit={SUBSCRIPTIONS_PAGE}{from}")).await {
        Ok(v) => (
            v.get("subscriptions").and_then(Value::as_array).cloned().unwrap_or_default(),
            v.get("next").and_then(Value::as_str).map(|n| format!("/console/subscriptions?after={}", encode(n))),
        ),
        Err(f) => return failed(c, s, f),
    };
    let rows: Vec<SubscriptionRow> = listed.iter().map(SubscriptionRow::of).collect();
    // The event types seen so far, offered when typing patterns.
    let mut seen: Vec<String> = c
        .api
        .get("/v1/events?limit=1000")
        .await
        .ok()
        .and_then(|v| v.get("events").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.get("type").and_then(Value::as_str).map(String::from))
        .collect();
    seen.sort();
    seen.dedup();
    let mut ctx = json!({"subscriptions": rows, "seen_types": seen, "next": next, "paged": !after.is_empty()});
    if let (Some(o), Value::Object(e)) = (ctx.as_object_mut(), extra) {
        o.extend(e);
    }
    render(c, "subscriptions.html", page(Some(s), "subscriptions", ctx))
}

async fn subscriptions(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query(q);
    // Only what an action of this page says (a link cannot make up text).
    let done = q.get("done");
    let known = ["enable", "recover", "disable", "verify", "delete", "published"];
    let notice = done
        .split_once(' ')
        .filter(|(action, id)| {
            known.contains(action) && id.chars().all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
        })
        .map(|_| format!("Done: {done}."));
    subscriptions_page(&c, &s, q.get("after"), json!({"notice": notice})).await
}

/// One subscription: what it is, its actions, a recovery from a chosen
/// time, and its deliveries' attempts (the last 7 days, newest first).
async fn subscription_page(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let one = match c.api.get(&format!("/v1/subscriptions/{}", encode(&id))).await {
        Ok(v) => v,
        Err(f) => return failed(&c, &s, f),
    };
    let since = now_ms() - 7 * 86_400_000;
    let path = format!("/v1/logs?subscription_id={}&since={since}&limit={LOG_PAGE}", encode(&id));
    let mut attempts: Vec<Entry> = match c.api.get(&path).await {
        Ok(v) => {
            v.get("entries").and_then(Value::as_array).map(|l| l.iter().map(Entry::of).collect()).unwrap_or_default()
        }
        Err(f) => return failed(&c, &s, f),
    };
    attempts.reverse();
    let q = query(q);
    let notice = q.get("recovered").parse::<u64>().ok().map(|n| format!("Recovering: {n} events queued again."));
    let error =
        (!q.get("error").is_empty()).then_some("Not recovered: give the time as 2026-11-30T18:00:00Z (UTC) or ms.");
    let ctx = json!({
        "s": SubscriptionRow::of(&one), "detail": serde_json::to_string_pretty(&one).unwrap_or_default(),
        "attempts": attempts, "notice": notice, "error": error,
        "day_ago": time(now_ms() - 86_400_000),
    });
    render(&c, "subscription.html", page(Some(&s), "subscriptions", ctx))
}

async fn create_subscription(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    bytes: Bytes,
) -> Response {
    let Some(form) = Form::checked(&s, &bytes) else { return csrf_refused() };
    let types: Vec<&str> = form.get("event_types").split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    let mut body = json!({"url": form.get("url").trim(), "event_types": types});
    if !form.get("tenant").trim().is_empty() {
        body["tenant"] = json!(form.get("tenant").trim());
    }
    match c.api.post("/v1/subscriptions", &body).await {
        Ok(made) => {
            let id = made.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            let secret = made.get("secret").and_then(Value::as_str).map(|sec| json!([id, sec]));
            let notice = format!("Subscription {id} created: it is active once its endpoint answers the verification.");
            subscriptions_page(&c, &s, "", json!({"secret": secret, "notice": notice})).await
        }
        Err(f) => subscriptions_page(&c, &s, "", json!({"error": f.to_string()})).await,
    }
}

async fn subscription_action(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    Path((id, action)): Path<(String, String)>,
    bytes: Bytes,
) -> Response {
    let Some(form) = Form::checked(&s, &bytes) else { return csrf_refused() };
    let base = format!("/v1/subscriptions/{}", encode(&id));
    let back = format!("/console/subscriptions/{}", encode(&id));
    let done = match action.as_str() {
        // What its endpoint lost: every selected event since a time, again.
        "recover-since" => {
            let Ok(Some(since)) = crate::view::time_of("since", form.get("since")) else {
                return Redirect::to(&format!("{back}?error=since")).into_response();
            };
            return match c.api.post(&format!("{base}/enable"), &json!({"replay": true, "since": since})).await {
                Ok(v) => {
                    let n = v.get("replayed").and_then(Value::as_u64).unwrap_or(0);
                    Redirect::to(&format!("{back}?recovered={n}")).into_response()
                }
                Err(f) => failed(&c, &s, f),
            };
        }
        "enable" => c.api.post(&format!("{base}/enable"), &json!({})).await,
        "recover" => c.api.post(&format!("{base}/enable"), &json!({"replay": true})).await,
        "disable" => c.api.post(&format!("{base}/disable"), &json!({})).await,
        "verify" => c.api.post(&format!("{base}/verify"), &json!({})).await,
        "delete" => c.api.call(Method::DELETE, &base, None).await,
        "rotate-secret" => match c.api.post(&format!("{base}/rotate-secret"), &json!({})).await {
            Ok(v) => {
                let secret = v.get("secret").and_then(Value::as_str).map(|sec| json!([id, sec]));
                let notice = "Secret rotated: the previous one keeps signing until it expires.";
                return subscriptions_page(&c, &s, "", json!({"secret": secret, "notice": notice})).await;
            }
            Err(f) => Err(f),
        },
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    match done {
        Ok(_) => {
            Redirect::to(&format!("/console/subscriptions?done={}", encode(&format!("{action} {id}")))).into_response()
        }
        Err(f) => subscriptions_page(&c, &s, "", json!({"error": f.to_string()})).await,
    }
}

async fn publish(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    bytes: Bytes,
) -> Response {
    let Some(form) = Form::checked(&s, &bytes) else { return csrf_refused() };
    let data: Value = match serde_json::from_str(form.get("data")) {
        Ok(d) => d,
        Err(e) => return subscriptions_page(&c, &s, "", json!({"error": format!("data: not JSON: {e}")})).await,
    };
    let mut body = json!({"type": form.get("type").trim(), "data": data});
    if !form.get("tenant").trim().is_empty() {
        body["tenant"] = json!(form.get("tenant").trim());
    }
    match c.api.post("/v1/events", &body).await {
        Ok(v) => {
            let id = v.get("id").and_then(Value::as_str).unwrap_or_default();
            Redirect::to(&format!("/console/subscriptions?done={}", encode(&format!("published {id}")))).into_response()
        }
        Err(f) => subscriptions_page(&c, &s, "", json!({"error": f.to_string()})).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_and_escapes_what_it_shows() {
        let c = Console::new(crate::Config { admin: Router::new(), admin_token: "t".into(), triggers_base: None })
            .expect("the templates parse");
        let s = c.sessions.start(0).1;
        let evil = "<script>alert(1)</script>";
        let e = Entry::of(&json!({"at": 0, "kind": "inbound", "run_id": "run_1", "detail": {"body": evil}}));
        let pages = [
            ("login.html", json!({"error": evil})),
            (
                "overview.html",
                json!({"windows": [Window::of("hour", &[json!({"kind": "inbound", "outcome": evil, "at": 5})], 10)
                    .charted(&[json!({"kind": "inbound", "outcome": format!("'{evil}"), "at": 5})], 10, "ms", 10, 1)],
                    "dead": 0}),
            ),
            (
                "flows.html",
                json!({"flows": [FlowRow::of(&json!({"id": evil, "trigger": {"path": "p"}}), None, &BTreeMap::new())]}),
            ),
            (
                "log.html",
                json!({"entries": [e.clone()], "q": {"text": evil}, "stream": "/console/log/stream", "older": "/console/log?to=1",
                       "last_choices": [["1h", "hour"]], "outcomes": [evil], "since": "x", "until": null}),
            ),
            (
                "flow.html",
                json!({"f": FlowRow::of(&json!({"id": evil, "trigger": {"path": "p"}}), Some("http://h"), &BTreeMap::new()),
                       "source": evil, "lines": [{"n": 1, "text": evil, "notes": [{"error": true, "text": evil}]}],
                       "loose": [{"error": false, "text": evil}], "errors": true, "warned": false, "methods": ["POST"],
                       "sample": evil, "sent": {"method": "POST", "headers": evil, "body": evil,
                                               "answer": {"status": 200, "headers": evil, "body": evil}},
                       "log": "/console/log"}),
            ),
            ("run.html", json!({"id": "run_1", "entries": [e], "state": evil})),
            ("dead.html", json!({"dead": [], "flow_id": ""})),
            ("subscriptions.html", json!({"subscriptions": [], "seen_types": ["a.b"]})),
            (
                "subscription.html",
                json!({"s": SubscriptionRow::of(&json!({"id": evil, "url": evil, "status": "active"})),
                       "detail": evil, "attempts": [Entry::of(&json!({"kind": "attempt", "detail": {"x": evil}}))],
                       "day_ago": evil}),
            ),
            ("test.html", json!({"id": "f", "lines": [evil], "failed": true, "back": "/console/flows/a/f"})),
            (
                "replay.html",
                json!({"p": {"total": 0, "replayed": 0, "gone": 0, "finished": true, "failure": evil}, "state": "/x"}),
            ),
        ];
        for (name, fields) in pages {
            let html = c
                .templates
                .get_template(name)
                .unwrap()
                .render(minijinja::Value::from(minijinja::value::Serde(page(Some(&s), name, fields))));
            let html = html.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(html.starts_with("<!doctype html>"), "{name}");
            assert!(!html.contains(evil), "{name} shows markup from data");
        }
    }

    #[test]
    fn a_form_keeps_repeated_keys_and_decodes_them() {
        let f = Form::parse(b"id=a%2Fb&id=c+d&csrf=x&empty=");
        assert_eq!(f.all("id"), ["a/b", "c d"]);
        assert_eq!((f.get("csrf"), f.get("empty"), f.get("absent")), ("x", "", ""));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; hookflow_console=abc; b=2"));
        assert_eq!(cookie_value(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, HeaderValue::from_static("hookflow_consolex=abc"));
        assert_eq!(cookie_value(&h), None);
    }
}

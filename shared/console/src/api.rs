//! The console's one way to the data: the admin API's own router, called in
//! the process (no socket), with the admin token. Every read and every
//! change the console makes is an admin API request, so it is checked,
//! logged and answered exactly as the API's are, on both drivers — the
//! console adds pages, not a third copy of the logic.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

/// The largest API answer the console reads (a page of the log is bounded
/// by its `limit`; this only stops a runaway).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// An admin API answer that was not a success: its status and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
    /// Each refused field (`error.problems`), as the API gave it.
    pub problems: Vec<Value>,
}

impl Failure {
    pub fn of(status: StatusCode, message: &str) -> Self {
        Failure { status, message: message.into(), problems: Vec::new() }
    }

    /// An answer of the admin API whose `what` is not what this console
    /// reads (a bad gateway: the API and the console disagree).
    pub fn unreadable(what: &str, e: &serde_json::Error) -> Self {
        Failure::of(StatusCode::BAD_GATEWAY, &format!("the admin API's {what} could not be read: {e}"))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.status)
    }
}

/// The admin API, in process.
#[derive(Clone)]
pub struct Api {
    router: Router,
    token: String,
}

impl Api {
    pub fn new(router: Router, token: String) -> Self {
        Api { router, token }
    }

    /// `method path` with `body` as JSON; the answer's JSON.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.send(method, path, "application/json", body).await
    }

    /// `PUT path` with a document's text (a flow's YAML); the answer's JSON.
    pub async fn put_text(&self, path: &str, text: &str) -> Result<Value, Failure> {
        self.send(Method::PUT, path, "application/yaml", Body::from(text.to_string())).await
    }

    async fn send(&self, method: Method, path: &str, kind: &str, body: Body) -> Result<Value, Failure> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, kind)
            .body(body)
            .map_err(|e| Failure { status: StatusCode::BAD_REQUEST, message: e.to_string(), problems: Vec::new() })?;
        let answer = match self.router.clone().oneshot(req).await {
            Ok(a) => a,
            Err(never) => match never {},
        };
        let status = answer.status();
        let bytes = to_bytes(answer.into_body(), MAX_ANSWER).await.map_err(|e| Failure {
            status: StatusCode::BAD_GATEWAY,
            message: e.to_string(),
            problems: Vec::new(),
        })?;
        let json: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if status.is_success() {
            Ok(json)
        } else {
            let message = json
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map_or_else(|| String::from_utf8_lossy(&bytes).into_owned(), str::to_string);
            let problems = json.pointer("/error/problems").and_then(Value::as_array).cloned().unwrap_or_default();
            Err(Failure { status, message, problems })
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.call(Method::POST, path, Some(body)).await
    }
}

/// What [`encode`] encodes: all but letters, digits, `-`, `_` and `~`
/// (ids such as `run_01…` stay as they are; a `.` stays encoded, so no
/// segment reads as `.` or `..`).
const RESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// `s` percent-encoded for a URL's query or path segment.
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}

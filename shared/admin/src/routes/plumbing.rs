//! What every resource's handlers share: the one error shape
//! ([`ApiError`]), JSON bodies that name the refused field, and typed
//! query parameters.

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookflow_core::run::parse_form;
use hookflow_core::subscription::FieldError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::backend::BackendError;

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
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None, problems: Vec::new() }
    }

    pub(super) fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what}"))
    }

    pub(super) fn invalid(problems: Vec<FieldError>) -> Self {
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

    pub(super) fn field(status: StatusCode, code: &'static str, field: &str, message: impl Into<String>) -> Self {
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
            // Never 503: a client would send it again, forever.
            BackendError::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m),
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
pub(super) fn problem(p: &FieldError) -> Value {
    let mut v = json!({"field": p.field, "message": p.message});
    if let (Some(line), Some(col)) = (p.line, p.col) {
        (v["line"], v["col"]) = (json!(line), json!(col));
    }
    v
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

/// [`body`], or the document's defaults when the request sends none
/// (an empty or blank body).
pub(super) fn optional_body<T: DeserializeOwned + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { body(bytes) }
}

/// Parses a JSON body; errors name the field (422) or say where the JSON
/// breaks (400).
pub(super) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
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
pub(super) struct Query(Map<String, Value>);

impl Query {
    pub(super) fn of(raw: Option<String>) -> Self {
        Query(parse_form(raw.as_deref().unwrap_or("")))
    }

    pub(super) fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => a.last().and_then(Value::as_str).unwrap_or_default().to_string(),
            other => other.to_string(),
        })
    }

    pub(super) fn int(&self, name: &str, default: i64, range: std::ops::RangeInclusive<i64>) -> Result<i64, ApiError> {
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

    pub(super) fn flag(&self, name: &str) -> Result<bool, ApiError> {
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

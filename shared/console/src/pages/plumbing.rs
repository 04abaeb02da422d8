//! What every page and action shares: the submitted form, the
//! CSRF-checked form extractor ([`Checked`]), a page's template context,
//! rendering, and an admin API failure as a page.

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use crate::Console;
use crate::api::{Failure, encode};
use crate::session::{Session, same_secret};

/// A submitted form: its fields in order (a key may repeat).
pub(super) struct Form(pub(super) Vec<(String, String)>);

impl Form {
    pub(super) fn parse(bytes: &[u8]) -> Self {
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

    pub(super) fn get(&self, key: &str) -> &str {
        self.0.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
    }

    /// The form as a URL query again.
    pub(super) fn query_string(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
    }

    pub(super) fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// The form of a change, if it carries the session's CSRF token (a
    /// page of another site cannot read it); else [`csrf_refused`].
    pub(super) fn checked(session: &Session, bytes: &[u8]) -> Option<Self> {
        let form = Form::parse(bytes);
        same_secret(form.get("csrf"), &session.csrf).then_some(form)
    }
}

/// A change's form, taken only from a signed-in session whose CSRF token it
/// carries: the extractor every action (a `POST` that changes something)
/// takes last, in place of reading the body and checking it by hand.
pub(super) struct Checked {
    pub session: Session,
    pub form: Form,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Checked {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let Some(session) = req.extensions().get::<Session>().cloned() else {
            return Err((StatusCode::FORBIDDEN, "not signed in: open /console/login").into_response());
        };
        let bytes = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        let form = Form::checked(&session, &bytes).ok_or_else(csrf_refused)?;
        Ok(Checked { session, form })
    }
}

pub(super) fn csrf_refused() -> Response {
    (StatusCode::FORBIDDEN, "the form's CSRF token is missing or stale: reload the page").into_response()
}

/// The query of a page's URL.
pub(super) fn query(q: Option<String>) -> Form {
    Form::parse(q.unwrap_or_default().as_bytes())
}

/// What every page's template gets, plus the page's own fields.
pub(super) fn page(session: Option<&Session>, name: &str, fields: Value) -> Value {
    let mut ctx = json!({"signed_in": session.is_some(), "csrf": session.map(|s| s.csrf.clone()), "page": name});
    if let (Some(o), Value::Object(f)) = (ctx.as_object_mut(), fields) {
        o.extend(f);
    }
    ctx
}

pub(super) fn render(c: &Console, template: &str, ctx: Value) -> Response {
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
pub(super) fn failed(c: &Console, session: &Session, f: Failure) -> Response {
    let mut r = render(c, "base.html", page(Some(session), "error", json!({"error": f.to_string()})));
    *r.status_mut() = if f.status.is_client_error() { f.status } else { StatusCode::BAD_GATEWAY };
    r
}

//! Signing in (a one-time link or the admin token) and out: the
//! session cookie.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use crate::session::{Session, same_secret};
use crate::{Console, now_ms};

use super::plumbing::{Form, csrf_refused, page, query, render};
use super::{COOKIE, cookie_value};

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

pub(super) async fn login_link(State(c): State<Arc<Console>>, RawQuery(q): RawQuery) -> Response {
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

pub(super) async fn login_token(State(c): State<Arc<Console>>, req: Request) -> Response {
    let now = now_ms();
    let refused = |status: StatusCode, error: &str| {
        let mut r = render(&c, "login.html", page(None, "login", json!({"error": error})));
        *r.status_mut() = status;
        r
    };
    // A form posted from another site's page (it would spend this
    // client's tries, or sign the browser in as someone else).
    if cross_origin(&req, c.hosts.as_deref()) {
        return refused(StatusCode::FORBIDDEN, "Sign in from the console's own page.");
    }
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|i| i.0.ip());
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), 64 * 1024).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let form = Form::parse(&bytes);
    // The right token always signs in (as on `/v1`: no lock-out).
    if !form.get("token").is_empty() && same_secret(form.get("token"), &c.token) {
        let (cookie, _) = c.sessions.start(now);
        return signed_in_answer(&cookie);
    }
    if !c.sessions.may_try(client, now) {
        let mut r = refused(StatusCode::TOO_MANY_REQUESTS, "Too many tries: wait a minute.");
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return r;
    }
    c.sessions.failed_try(client, now);
    refused(StatusCode::UNAUTHORIZED, "That is not the admin token.")
}

/// Whether `req` was posted from another origin: `Sec-Fetch-Site` says so
/// (a browser sends it), or `Origin` names another host than the console's
/// own (`hosts`; without them, the request's own `Host`). A request with
/// neither (a script, curl) is not a browser's cross-site form.
fn cross_origin(req: &Request, hosts: Option<&[String]>) -> bool {
    let h = req.headers();
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    // `null`: the page's referrer policy (the console's own is
    // `no-referrer`) hides it; `Sec-Fetch-Site` above decided.
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()).filter(|o| *o != "null") else {
        return false;
    };
    let own_host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let from = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")).unwrap_or(origin);
    let known = hosts.is_some_and(|hs| hs.iter().any(|x| x.eq_ignore_ascii_case(from)));
    !(known || from.eq_ignore_ascii_case(own_host))
}

pub(super) async fn logout(State(c): State<Arc<Console>>, req: Request) -> Response {
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

//! The console's routes: sign-in, each page, each action, the live tail.
//!
//! Every page is admin API reads rendered by a template; every action is
//! one admin API request, then a redirect to the page (post/redirect/get)
//! — or the page itself when it shows a secret once.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::{Console, assets, now_ms};

mod dead;
mod flow;
mod log;
mod overview;
mod plumbing;
mod requests;
mod runs;
mod signin;
mod subscriptions;

use dead::{dead, replay_dead, replay_progress, replay_state};
use log::{log, stream};
use overview::{flows, overview};
use runs::{replay_run, run};
use signin::{login_link, login_token, logout};
use subscriptions::{create_subscription, publish, subscription_action, subscription_page, subscriptions};

/// The session cookie's name.
const COOKIE: &str = "hookflow_console";

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
/// with the console for the browser), and one naming two hosts (which one
/// a proxy in front would have checked is anyone's guess).
async fn own_host(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    if req.headers().get_all(header::HOST).iter().count() > 1 {
        return (StatusCode::BAD_REQUEST, "two Host headers: a request names one host").into_response();
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::plumbing::{Form, page};
    use super::*;
    use crate::view::{Entry, FlowView, SubscriptionView, Window};

    #[test]
    fn every_template_renders_and_escapes_what_it_shows() {
        let c = Console::new(crate::Config { admin: Router::new(), admin_token: "t".into(), triggers_base: None })
            .expect("the templates parse");
        let s = c.sessions.start(0).1;
        // Markup, and a right-to-left override that would reorder what
        // follows it.
        let evil = "<script>alert(1)</script>\u{202E}gnp.exe";
        let (mut sub, _) = hookflow_core::subscription::NewSubscription {
            url: "https://receiver.example/h".into(),
            event_types: vec!["a.b".into()],
            ..Default::default()
        }
        .create(0)
        .unwrap();
        (sub.id, sub.url) = (evil.to_string(), evil.to_string());
        let e = Entry::of(&json!({"at": 0, "kind": "inbound", "run_id": "run_1", "detail": {"body": evil}}));
        let pages = [
            ("login.html", json!({"error": evil})),
            ("overview.html", {
                let q = hookflow_core::stats::StatsQuery::new(None, 0, 10_000, 10_000).unwrap();
                let mut tally = hookflow_core::stats::Tally::new(&q);
                tally.count(hookflow_core::commit::EntryKind::Inbound, evil, 5, 1);
                tally.count(hookflow_core::commit::EntryKind::Attempt, &format!("'{evil}"), 5, 1);
                tally.failed(evil, 1);
                json!({"windows": [Window::of("hour", &tally.finish(), "ms")], "dead": 0})
            }),
            (
                "flows.html",
                json!({"flows": [FlowView::of(&json!({"id": evil, "trigger": {"path": "p"}}), None, &BTreeMap::new())]}),
            ),
            (
                "log.html",
                json!({"entries": [e.clone()], "q": {"text": evil}, "stream": "/console/log/stream", "older": "/console/log?to=1",
                       "last_choices": [["1h", "hour"]], "outcomes": [evil], "since": "x", "until": null}),
            ),
            (
                "requests.html",
                json!({"rows": [crate::view::RequestView::of(&hookflow_core::requests::RequestRow {
                           key: evil.into(), kind: hookflow_core::requests::RowKind::Request, at: 0, seq: None,
                           tenant: Some(evil.into()), flow_id: Some(evil.into()), run_id: Some(evil.into()),
                           event_id: None, method: Some(evil.into()), path: Some(evil.into()), event_type: None,
                           outcome: evil.into(), status: None, duration_ms: None, step: Some(evil.into()),
                           reason: Some(evil.into()), deliveries: Default::default()})],
                       "q": {"text": evil}, "stream": "/console/log/stream", "older": "/console/log?to=1",
                       "last_choices": [["1h", "hour"]], "outcomes": [evil], "since": "x", "until": null,
                       "entries_link": "/console/log?view=entries"}),
            ),
            (
                "flow.html",
                json!({"f": FlowView::of(&json!({"id": evil, "trigger": {"path": "p"}}), Some("http://h"), &BTreeMap::new()),
                       "source": evil, "lines": [{"n": 1, "text": evil, "notes": [{"error": true, "text": evil}]}],
                       "loose": [{"error": false, "text": evil}], "errors": true, "warned": false, "methods": ["POST"],
                       "sample": evil, "sent": {"method": "POST", "headers": evil, "body": evil,
                                               "answer": {"status": 200, "headers": evil, "body": evil}},
                       "log": "/console/log"}),
            ),
            (
                "run.html",
                json!({"id": "run_1", "state": evil, "tenant": evil, "flow_id": evil, "event_id": evil,
                       "headline": crate::view::Headline::of(&json!({"status": {"state": evil, "step": evil, "reason": evil}}), &[]),
                       "moments": [crate::view::Moment::of(&json!({"kind": "attempt", "detail": {"step": evil, "attempt": 1}}))]}),
            ),
            ("dead.html", json!({"dead": [], "flow_id": ""})),
            ("subscriptions.html", json!({"subscriptions": [], "seen_types": ["a.b"]})),
            (
                "subscription.html",
                json!({"s": SubscriptionView::of(&sub),
                       "detail": evil, "attempts": [Entry::of(&json!({"kind": "attempt", "detail": {"x": evil}}))],
                       "day_ago": evil, "filter": evil, "headers": evil, "transform": evil,
                       "limits": {"per_second": evil, "burst": evil, "max_in_flight": evil},
                       "backlog": {"waiting": 3, "in_flight": 1},
                       "preview": {"source": "recent", "before": evil, "after": evil, "event": evil, "error": evil,
                                   "dropped": false}}),
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
            assert!(!html.contains("<script>alert(1)"), "{name} shows markup from data");
            assert!(!html.contains('\u{202E}'), "{name} shows a bidirectional override as it is");
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

//! Subscriptions: the list, one subscription with its attempts, create,
//! the actions (enable, recover, disable, verify, rotate, delete), and
//! publishing an event.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hookflow_core::subscription::Subscription;
use serde_json::{Value, json};

use crate::api::{Failure, encode};
use crate::session::Session;
use crate::view::{Entry, SubscriptionView, time};
use crate::{Console, now_ms};

use super::log::LOG_PAGE;
use super::plumbing::{Checked, failed, page, query, render};

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
    let listed: Vec<Subscription> = match serde_json::from_value(Value::Array(listed)) {
        Ok(l) => l,
        Err(e) => return failed(c, s, Failure::unreadable("subscriptions", &e)),
    };
    let rows: Vec<SubscriptionView> = listed.iter().map(SubscriptionView::of).collect();
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
    // The publish form names its event: sent again (a retry after an
    // error), it is the same event, answered `duplicate`.
    let event_id = format!("evt_console_{}", &crate::session::random_token()[..24]);
    let mut ctx = json!({"subscriptions": rows, "seen_types": seen, "next": next, "paged": !after.is_empty(),
                         "event_id": event_id});
    if let (Some(o), Value::Object(e)) = (ctx.as_object_mut(), extra) {
        o.extend(e);
    }
    render(c, "subscriptions.html", page(Some(s), "subscriptions", ctx))
}

pub(super) async fn subscriptions(
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
pub(super) async fn subscription_page(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let one = match c.api.get(&format!("/v1/subscriptions/{}", encode(&id))).await {
        Ok(v) => v,
        Err(f) => return failed(&c, &s, f),
    };
    let sub: Subscription = match serde_json::from_value(one.clone()) {
        Ok(sub) => sub,
        Err(e) => return failed(&c, &s, Failure::unreadable("subscription", &e)),
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
        "s": SubscriptionView::of(&sub), "detail": serde_json::to_string_pretty(&one).unwrap_or_default(),
        "attempts": attempts, "notice": notice, "error": error,
        "day_ago": time(now_ms() - 86_400_000),
    });
    render(&c, "subscription.html", page(Some(&s), "subscriptions", ctx))
}

pub(super) async fn create_subscription(
    State(c): State<Arc<Console>>,
    Checked { session: s, form }: Checked,
) -> Response {
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

pub(super) async fn subscription_action(
    State(c): State<Arc<Console>>,
    Path((id, action)): Path<(String, String)>,
    Checked { session: s, form }: Checked,
) -> Response {
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

pub(super) async fn publish(State(c): State<Arc<Console>>, Checked { session: s, form }: Checked) -> Response {
    let data: Value = match serde_json::from_str(form.get("data")) {
        Ok(d) => d,
        Err(e) => return subscriptions_page(&c, &s, "", json!({"error": format!("data: not JSON: {e}")})).await,
    };
    let mut body = json!({"type": form.get("type").trim(), "data": data});
    if !form.get("id").trim().is_empty() {
        body["id"] = json!(form.get("id").trim());
    }
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

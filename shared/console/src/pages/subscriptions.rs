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
    show(&c, &s, &id, query(q), json!({})).await
}

/// The subscription's page, with `extra` (a transform's preview) in its
/// context.
async fn show(c: &Console, s: &Session, id: &str, q: super::plumbing::Form, extra: Value) -> Response {
    let (c, s, id) = (c, s, id.to_string());
    let one = match c.api.get(&format!("/v1/subscriptions/{}", encode(&id))).await {
        Ok(v) => v,
        Err(f) => return failed(c, s, f),
    };
    let sub: Subscription = match serde_json::from_value(one.clone()) {
        Ok(sub) => sub,
        Err(e) => return failed(c, s, Failure::unreadable("subscription", &e)),
    };
    let since = now_ms() - 7 * 86_400_000;
    let path = format!("/v1/logs?subscription_id={}&since={since}&limit={LOG_PAGE}", encode(&id));
    let mut attempts: Vec<Entry> = match c.api.get(&path).await {
        Ok(v) => {
            v.get("entries").and_then(Value::as_array).map(|l| l.iter().map(Entry::of).collect()).unwrap_or_default()
        }
        Err(f) => return failed(c, s, f),
    };
    attempts.reverse();
    let notice = q.get("recovered").parse::<u64>().ok().map(|n| format!("Recovering: {n} events queued again."));
    let notice = notice.or_else(|| match q.get("saved") {
        "filter" => Some("Filter saved: the next events published use it.".into()),
        "headers" => Some("Headers saved: the next deliveries carry them.".into()),
        "transform" => Some("Transform saved: each delivery's first attempt uses it.".into()),
        "limits" => Some("Limits saved: what waits takes them from now on.".into()),
        _ => None,
    });
    // A refusal is rendered in answer to its form (never read from a
    // link, which anyone could write).
    let refused = q.get("refused");
    let error: Option<String> = (!q.get("error").is_empty())
        .then(|| "Not recovered: give the time as 2026-11-30T18:00:00Z (UTC) or ms.".into());
    // What each form shows: what was tried (refused), else what is saved.
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let filter = match refused {
        "filter" => q.get("tried").to_string(),
        _ => sub.filter.as_ref().map(|f| pretty(f.as_json())).unwrap_or_default(),
    };
    let headers = match refused {
        "headers" => q.get("tried").to_string(),
        _ if sub.headers.is_empty() => String::new(),
        _ => pretty(&serde_json::to_value(&sub.headers).unwrap_or_default()),
    };
    let transform = match refused {
        "transform" => q.get("tried").to_string(),
        _ => sub.transform.as_ref().map(|t| pretty(&serde_json::to_value(t).unwrap_or_default())).unwrap_or_default(),
    };
    // Its limits' form: what was tried (refused), else what is saved.
    let limits = match refused {
        "limits" => json!({"per_second": q.get("per_second"), "burst": q.get("burst"),
                           "max_in_flight": q.get("max_in_flight")}),
        _ => json!({
            "per_second": sub.rate_limit.map(|r| r.per_second.to_string()).unwrap_or_default(),
            "burst": sub.rate_limit.map(|r| r.burst.to_string()).unwrap_or_default(),
            "max_in_flight": sub.max_in_flight.map(|m| m.to_string()).unwrap_or_default(),
        }),
    };
    let ctx = json!({
        "limits": limits, "backlog": one.get("backlog"),
        "s": SubscriptionView::of(&sub), "detail": serde_json::to_string_pretty(&one).unwrap_or_default(),
        "attempts": attempts, "notice": notice, "error": error, "filter": filter, "headers": headers,
        "transform": transform,
        "day_ago": time(now_ms() - 86_400_000),
    });
    let mut ctx = ctx;
    if let (Some(into), Some(more)) = (ctx.as_object_mut(), extra.as_object()) {
        into.extend(more.clone());
    }
    render(c, "subscription.html", page(Some(s), "subscriptions", ctx))
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
    let filter = form.get("filter").trim();
    if !filter.is_empty() {
        match serde_json::from_str::<Value>(filter) {
            Ok(f) => body["filter"] = f,
            Err(e) => return subscriptions_page(&c, &s, "", json!({"error": format!("filter: not JSON: {e}")})).await,
        }
    }
    match c.api.post("/v1/subscriptions", &body).await {
        Ok(made) => {
            let id = made.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            let secret = made.get("secret").and_then(Value::as_str).map(|sec| json!([id, sec]));
            let notice = format!("Subscription {id} created: it is active once its endpoint answers the verification.");
            subscriptions_page(&c, &s, "", json!({"secret": secret, "notice": notice})).await
        }
        Err(f) => subscriptions_page(&c, &s, "", json!({"error": every_problem(&f)})).await,
    }
}

/// The subscription's page answering a form that was refused: the error,
/// and what was tried left in its form to fix.
async fn refused(c: &Console, s: &Session, id: &str, field: &str, tried: &str, why: &str) -> Response {
    let q = super::plumbing::Form(vec![("refused".into(), field.into()), ("tried".into(), tried.into())]);
    show(c, s, id, q, json!({"error": format!("Not saved: {why}")})).await
}

/// The `PATCH` of the limits form: each number given, `null` for each
/// left empty; a field that is not a number is named.
fn limits_change(form: &super::plumbing::Form) -> Result<Value, String> {
    let number = |k: &str| -> Result<Option<f64>, String> {
        let t = form.get(k).trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<f64>().map(Some).map_err(|_| format!("{k}: `{t}` is not a number"))
    };
    let (per_second, burst, max) = (number("per_second")?, number("burst")?, number("max_in_flight")?);
    let rate_limit = match (per_second, burst) {
        (Some(p), b) => json!({"per_second": p, "burst": count(b.unwrap_or(1.0))}),
        (None, Some(_)) => return Err("burst: give the requests a second too".into()),
        (None, None) => Value::Null,
    };
    Ok(json!({"rate_limit": rate_limit, "max_in_flight": max.map(count)}))
}

/// A count as typed: a whole number as an integer, anything else as it is,
/// for the API to refuse by its field (never cut to a whole one here).
fn count(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 { json!(x as i64) } else { json!(x) }
}

/// A refusal with each refused field (`filter.data.$gte: …`).
fn every_problem(f: &Failure) -> String {
    let fields: Vec<String> = f
        .problems
        .iter()
        .map(|p| format!("{}: {}", p["field"].as_str().unwrap_or(""), p["message"].as_str().unwrap_or("")))
        .collect();
    if fields.is_empty() { f.to_string() } else { fields.join("; ") }
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
        // A transform tried on a recent event: before and after, nothing
        // saved.
        "preview" => {
            let text = form.get("transform").trim();
            let mut ask = json!({});
            if !text.is_empty() {
                match serde_json::from_str::<Value>(text) {
                    Ok(t) => ask["transform"] = t,
                    Err(e) => {
                        return refused(&c, &s, &id, "transform", text, &format!("transform: not JSON: {e}")).await;
                    }
                }
            }
            let preview = match c.api.post(&format!("{base}/preview"), &ask).await {
                Ok(v) => v,
                Err(f) => return refused(&c, &s, &id, "transform", text, &every_problem(&f)).await,
            };
            // A JSON body shown as JSON, not as a string of it.
            let pretty = |v: &Value| {
                let mut v = v.clone();
                if let Some(parsed) =
                    v.get("body").and_then(Value::as_str).and_then(|b| serde_json::from_str::<Value>(b).ok())
                {
                    v["body"] = parsed;
                }
                serde_json::to_string_pretty(&v).unwrap_or_default()
            };
            let shown = json!({
                "source": preview["source"], "event": pretty(&preview["event"]), "error": preview["error"],
                "before": pretty(&preview["before"]), "dropped": preview["dropped"],
                "after": if preview["after"].is_null() { String::new() } else { pretty(&preview["after"]) },
            });
            let q = super::plumbing::Form(vec![("refused".into(), "preview".into()), ("tried".into(), text.into())]);
            return show(&c, &s, &id, q, json!({"preview": shown, "transform": text})).await;
        }
        // Its filter, headers or transform: JSON, or empty for none (`PATCH`).
        field @ ("filter" | "headers" | "transform") => {
            let text = form.get(field).trim();
            let value = if text.is_empty() {
                Ok(Value::Null)
            } else {
                serde_json::from_str::<Value>(text).map_err(|e| format!("{field}: not JSON: {e}"))
            };
            let saved = match value {
                Ok(v) => {
                    c.api.call(Method::PATCH, &base, Some(&json!({ field: v }))).await.map_err(|f| every_problem(&f))
                }
                Err(e) => Err(e),
            };
            return match saved {
                Ok(_) => Redirect::to(&format!("{back}?saved={field}")).into_response(),
                Err(why) => refused(&c, &s, &id, field, text, &why).await,
            };
        }
        // Its limits: numbers, or empty for none (`PATCH`).
        "limits" => {
            let tried =
                ["per_second", "burst", "max_in_flight"].map(|k| (k.to_string(), form.get(k).trim().to_string()));
            let saved = match limits_change(&form) {
                Ok(change) => c.api.call(Method::PATCH, &base, Some(&change)).await.map_err(|f| every_problem(&f)),
                Err(e) => Err(e),
            };
            return match saved {
                Ok(_) => Redirect::to(&format!("{back}?saved=limits")).into_response(),
                Err(why) => {
                    let mut q = vec![("refused".to_string(), "limits".to_string())];
                    q.extend(tried);
                    show(&c, &s, &id, super::plumbing::Form(q), json!({"error": format!("Not saved: {why}")})).await
                }
            };
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_passed_as_typed_never_cut_to_whole_numbers() {
        let form = |pairs: &[(&str, &str)]| {
            super::super::plumbing::Form(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        let change = limits_change(&form(&[("per_second", "2.5"), ("burst", "3"), ("max_in_flight", "4")])).unwrap();
        assert_eq!(change, json!({"rate_limit": {"per_second": 2.5, "burst": 3}, "max_in_flight": 4}));
        // A fraction goes to the API as it is, which names the field.
        let change = limits_change(&form(&[("per_second", "1"), ("burst", "1.5"), ("max_in_flight", "0.5")])).unwrap();
        assert_eq!(change, json!({"rate_limit": {"per_second": 1.0, "burst": 1.5}, "max_in_flight": 0.5}));
        let change = limits_change(&form(&[("per_second", ""), ("burst", ""), ("max_in_flight", "")])).unwrap();
        assert_eq!(change, json!({"rate_limit": null, "max_in_flight": null}));
        assert!(limits_change(&form(&[("burst", "2")])).unwrap_err().contains("burst"));
    }
}

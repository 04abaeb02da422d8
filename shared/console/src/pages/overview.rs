//! The overview (counts, latency and charts over the hour and the day)
//! and the flows list.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use crate::api::Failure;
use crate::session::Session;
use crate::view::{FlowView, Window};
use crate::{Console, now_ms};

use super::plumbing::{failed, page, render};

/// The newest log entries since `since` (oldest first, as the API answers).
async fn entries_since(c: &Console, since: i64, limit: usize) -> Result<Vec<Value>, Failure> {
    let v = c.api.get(&format!("/v1/logs?since={since}&limit={limit}")).await?;
    Ok(v.get("entries").and_then(Value::as_array).cloned().unwrap_or_default())
}

pub(super) async fn overview(State(c): State<Arc<Console>>, axum::Extension(s): axum::Extension<Session>) -> Response {
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

pub(super) async fn flows(State(c): State<Arc<Console>>, axum::Extension(s): axum::Extension<Session>) -> Response {
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
    let rows: Vec<FlowView> = listed.iter().map(|f| FlowView::of(f, c.triggers_base.as_deref(), &counts)).collect();
    render(&c, "flows.html", page(Some(&s), "flows", json!({"flows": rows})))
}

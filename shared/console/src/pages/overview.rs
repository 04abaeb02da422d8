//! The overview (counts, latency and charts over the hour and the day)
//! and the flows list.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use hookflow_core::stats::Stats;

use crate::api::Failure;
use crate::session::Session;
use crate::view::{FlowView, Window};
use crate::{Console, now_ms};

use super::plumbing::{failed, page, render};

/// The admin API's summary of the log over `[since, now)` in buckets of
/// `bucket_ms`.
async fn stats(c: &Console, since: i64, now: i64, bucket_ms: i64) -> Result<Stats, Failure> {
    let v = c.api.get(&format!("/v1/stats?since={since}&until={now}&bucket={bucket_ms}")).await?;
    serde_json::from_value(v).map_err(|e| Failure::unreadable("summary", &e))
}

/// The start of `n` buckets of `bucket_ms` ending with the one holding `now`.
fn start(now: i64, bucket_ms: i64, n: i64) -> i64 {
    now.div_euclid(bucket_ms) * bucket_ms - (n - 1) * bucket_ms
}

pub(super) async fn overview(State(c): State<Arc<Console>>, axum::Extension(s): axum::Extension<Session>) -> Response {
    let now = now_ms();
    // Summed up by the store: the page's cost is its buckets', not the
    // traffic's.
    let mut windows = Vec::new();
    for (name, bucket, bucket_ms, n) in [("hour", "5 minutes", 300_000, 12), ("24 hours", "hour", 3_600_000, 24)] {
        match stats(&c, start(now, bucket_ms, n), now + 1, bucket_ms).await {
            Ok(summary) => windows.push(Window::of(name, &summary, bucket)),
            Err(f) => return failed(&c, &s, f),
        }
    }
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
    // The last hour's requests by flow; a failed read is shown, never
    // counted as none.
    let now = now_ms();
    let counts: BTreeMap<String, usize> = match stats(&c, now - 3_600_000, now + 1, 3_600_001).await {
        Ok(summary) => summary.flows.into_iter().map(|(flow, n)| (flow, n as usize)).collect(),
        Err(f) => return failed(&c, &s, f),
    };
    let rows: Vec<FlowView> = listed.iter().map(|f| FlowView::of(f, c.triggers_base.as_deref(), &counts)).collect();
    render(&c, "flows.html", page(Some(&s), "flows", json!({"flows": rows})))
}

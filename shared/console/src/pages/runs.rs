//! A run's page, and its replay as a new run.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use crate::Console;
use crate::api::encode;
use crate::session::Session;
use crate::view::{Headline, Moment};

use super::plumbing::{Checked, failed, page, query, render};

pub(super) async fn run(
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
    let mut log: Vec<Value> = v.get("log").and_then(Value::as_array).cloned().unwrap_or_default();
    // In time order; the request first within its millisecond (its entry
    // is stored with the steps it started, after them).
    log.sort_by_key(|e| {
        (
            e.get("at").and_then(Value::as_i64),
            e.get("kind") != Some(&json!("inbound")),
            e.get("seq").and_then(Value::as_i64),
        )
    });
    let moments: Vec<Moment> = log.iter().map(Moment::of).collect();
    let field = |k: &str| state.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    // Only what this page's replay says (a link cannot make up text).
    let replayed = query(q).get("replay_of").to_string();
    let notice = replayed
        .starts_with("run_")
        .then(|| format!("A replay of {replayed}, by the flow's current version."))
        .filter(|_| replayed.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'));
    let ctx = json!({
        "id": id, "headline": Headline::of(&state, &log), "flow_id": field("flow_id"),
        "tenant": field("tenant"), "event_id": field("event_id"),
        "moments": moments, "state": serde_json::to_string_pretty(&state).unwrap_or_default(),
        "replayable": state.pointer("/trigger/method").is_some(),
        // Names this page's replay: clicked twice, or retried after a
        // failure, it is one replay.
        "replay_key": crate::session::random_token(), "notice": notice,
    });
    render(&c, "run.html", page(Some(&s), "run", ctx))
}

/// Replays the run's request against the flow's current version
/// (`replayRun`), then shows the new run.
pub(super) async fn replay_run(
    State(c): State<Arc<Console>>,
    Path(id): Path<String>,
    Checked { session: s, form }: Checked,
) -> Response {
    let key: String = form.get("key").chars().take(64).collect();
    match c.api.post(&format!("/v1/runs/{}/replay", encode(&id)), &json!({"key": key})).await {
        Ok(v) => {
            let new = v.get("run_id").and_then(Value::as_str).unwrap_or_default();
            Redirect::to(&format!("/console/runs/{}?replay_of={}", encode(new), encode(&id))).into_response()
        }
        Err(f) => failed(&c, &s, f),
    }
}

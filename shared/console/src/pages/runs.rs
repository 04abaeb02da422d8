//! A run's page, and its replay as a new run.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use crate::Console;
use crate::api::encode;
use crate::session::Session;
use crate::view::Entry;

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
    let entries: Vec<Entry> =
        v.get("log").and_then(Value::as_array).map(|l| l.iter().map(Entry::of).collect()).unwrap_or_default();
    let field = |k: &str| state.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let status = match state.get("status") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    // Only what this page's replay says (a link cannot make up text).
    let replayed = query(q).get("replay_of").to_string();
    let notice = replayed
        .starts_with("run_")
        .then(|| format!("A replay of {replayed}, by the flow's current version."))
        .filter(|_| replayed.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'));
    let ctx = json!({
        "id": id, "status": status, "flow_id": field("flow_id"), "event_id": field("event_id"),
        "entries": entries, "state": serde_json::to_string_pretty(&state).unwrap_or_default(),
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

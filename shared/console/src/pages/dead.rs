//! Dead deliveries: the page, replaying the selected rows or every row
//! matching the filter (a task whose progress its page follows).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use hookflow_core::commit::DeadDelivery;
use serde_json::{Value, json};

use crate::Console;
use crate::api::{Failure, encode};
use crate::session::Session;
use crate::view::DeadView;

use super::plumbing::{Checked, failed, page, query, render};

/// Dead deliveries a page shows.
const DEAD_PAGE: usize = 100;

pub(super) async fn dead(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query(q);
    let flow = q.get("flow_id").trim().to_string();
    let n = q.get("page").parse::<usize>().unwrap_or(0).min(1_000_000);
    let filter = if flow.is_empty() { String::new() } else { format!("&flow_id={}", encode(&flow)) };
    let path = format!("/v1/dead?offset={}&limit={DEAD_PAGE}{filter}", n * DEAD_PAGE);
    let (listed, total) = match c.api.get(&path).await {
        Ok(v) => (
            v.get("dead").and_then(Value::as_array).cloned().unwrap_or_default(),
            v.get("total").and_then(Value::as_u64).unwrap_or(0) as usize,
        ),
        Err(f) => return failed(&c, &s, f),
    };
    let listed: Vec<DeadDelivery> = match serde_json::from_value(Value::Array(listed)) {
        Ok(l) => l,
        Err(e) => return failed(&c, &s, Failure::unreadable("dead deliveries", &e)),
    };
    let rows: Vec<DeadView> = listed.iter().map(DeadView::of).collect();
    let notice = q.get("replayed").parse::<usize>().ok().map(|n| format!("{n} dead deliveries queued again."));
    let link = |page: usize| format!("/console/dead?page={page}{filter}");
    let ctx = json!({
        "dead": rows, "flow_id": flow, "notice": notice, "total": total,
        "first": n * DEAD_PAGE + 1, "last": n * DEAD_PAGE + rows.len(),
        "newer": (n > 0).then(|| link(n - 1)),
        "older": ((n + 1) * DEAD_PAGE < total).then(|| link(n + 1)),
    });
    render(&c, "dead.html", page(Some(&s), "dead", ctx))
}

pub(super) async fn replay_dead(State(c): State<Arc<Console>>, Checked { session: s, form }: Checked) -> Response {
    let flow = form.get("flow_id").trim();
    // Everything matching the filter, however many pages: a task whose
    // progress its page follows.
    if form.get("which") == "matching" {
        let id = c.replays.start(c.api.clone(), flow.to_string());
        return Redirect::to(&format!("/console/dead/replays/{id}")).into_response();
    }
    // Exactly what the page showed: "all" is every row it listed, not
    // whatever is dead by the time the form is sent.
    let ids: Vec<&str> = if form.get("which") == "all" { form.all("shown") } else { form.all("id") };
    let mut replayed = 0;
    for id in &ids {
        // Its tenant, as listed: the backend reads the row by its key.
        let tenant = form.get(&format!("tenant:{id}"));
        let path = format!("/v1/dead/{}/replay?tenant={}", encode(id), encode(tenant));
        match c.api.post(&path, &json!({})).await {
            Ok(_) => replayed += 1,
            // Replayed meanwhile (by another tab, the CLI): not an error.
            Err(f) if f.status == StatusCode::NOT_FOUND => {}
            Err(f) => return failed(&c, &s, f),
        }
    }
    let filter = if flow.is_empty() { String::new() } else { format!("&flow_id={}", encode(flow)) };
    Redirect::to(&format!("/console/dead?replayed={replayed}{filter}")).into_response()
}

pub(super) async fn replay_progress(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let Some(p) = c.replays.get(&id) else {
        return failed(&c, &s, Failure::of(StatusCode::NOT_FOUND, "no such replay (the console keeps the last 20)"));
    };
    let state_path = format!("/console/dead/replays/{}/state", encode(&id));
    render(&c, "replay.html", page(Some(&s), "dead", json!({"p": p.state(), "state": state_path})))
}

pub(super) async fn replay_state(State(c): State<Arc<Console>>, Path(id): Path<String>) -> Response {
    match c.replays.get(&id) {
        Some(p) => axum::Json(p.state()).into_response(),
        None => (StatusCode::NOT_FOUND, "no such replay").into_response(),
    }
}

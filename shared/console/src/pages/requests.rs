//! The request log one row a request or published event (the log page's
//! default view: `GET /v1/requests`), and its live tail, which adds the
//! new ones at the top and redraws the rows of those whose run moved on.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use hookflow_core::commit::LogEntry;
use hookflow_core::requests::{self, RequestRow};
use serde_json::{Value, json};

use crate::api::encode;
use crate::session::Session;
use crate::view::{Range, RequestView, Tail, deliveries, time};
use crate::{Console, now_ms};

use super::log::{TAIL_EVERY, last_choices, stream_link};
use super::plumbing::{Form, failed, page as context, render};

/// The most requests a page shows.
const PAGE: usize = 50;
/// The most entries one read of the live tail takes (the rest wait for
/// the next read: the cursor moves past only what was read).
const TAIL_ENTRIES: usize = 500;
/// The most requests one push redraws (each a read of its run's entries).
const TAIL_ROWS: usize = 50;

/// The outcomes the requests view's menu offers (`rejected` takes every
/// status).
const OUTCOMES: [&str; 7] = ["succeeded", "failed", "waiting", "running", "rejected", "duplicate", "published"];

/// The filters of a query: those the admin API applies, and the text and
/// outcome the console applies itself.
pub(super) struct RequestForm {
    api: String,
    text: String,
    outcome: String,
    failed: bool,
    shown: Value,
}

impl RequestForm {
    pub(super) fn of(q: &Form) -> Self {
        let mut api = String::new();
        for key in ["flow_id", "tenant"] {
            let v = q.get(key).trim();
            if !v.is_empty() {
                api.push_str(&format!("&{key}={}", encode(v)));
            }
        }
        let failed = q.get("failed") == "true";
        let outcome = q.get("outcome").trim().to_string();
        let shown = json!({
            "flow_id": q.get("flow_id"), "tenant": q.get("tenant"), "text": q.get("text"), "failed": failed,
            "outcome": outcome, "last": q.get("last"), "from": q.get("from"), "to": q.get("to"),
        });
        RequestForm { api, text: q.get("text").trim().to_lowercase(), outcome, failed, shown }
    }

    /// Whether a row passes the console's own filters.
    fn takes(&self, r: &RequestRow, v: &RequestView) -> bool {
        let o = self.outcome.as_str();
        v.contains(&self.text)
            && (!self.failed || r.is_failure())
            && (o.is_empty() || r.outcome == o || (o == "rejected" && r.outcome.starts_with("rejected_")))
    }
}

/// The page: the newest [`PAGE`] requests of the range, newest first.
pub(super) async fn page(c: Arc<Console>, s: Session, q: Form) -> Response {
    let filter = RequestForm::of(&q);
    let now = now_ms();
    let (range, error) = match Range::of(q.get("since"), q.get("last"), q.get("from"), q.get("to"), now) {
        Ok(r) => (r, None),
        Err(e) => (Range { since: now - 86_400_000, until: None }, Some(e)),
    };
    let mut path = format!("/v1/requests?since={}&limit={PAGE}{}", range.since, filter.api);
    if let Some(u) = range.until {
        path.push_str(&format!("&until={u}"));
    }
    let before = q.get("before_seq").trim();
    if !before.is_empty() {
        path.push_str(&format!("&before_seq={}", encode(before)));
    }
    if filter.failed {
        path.push_str("&failed=true");
    }
    let answer = match c.api.get(&path).await {
        Ok(v) => v,
        Err(f) => return failed(&c, &s, f),
    };
    let listed: Vec<RequestRow> = answer
        .get("requests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| serde_json::from_value(r.clone()).ok())
        .collect();
    let rows: Vec<RequestView> =
        listed.iter().map(|r| (r, RequestView::of(r))).filter(|(r, v)| filter.takes(r, v)).map(|(_, v)| v).collect();
    // The next page: where the API says it starts, within the same range.
    let older = answer.get("next").filter(|n| n.is_object()).map(|next| {
        let skip = ["to", "since", "from", "before_seq", "after"];
        let mut link = Form(q.0.iter().filter(|(k, _)| !skip.contains(&k.as_str())).cloned().collect());
        let from = if q.get("from").is_empty() { range.since.to_string() } else { q.get("from").into() };
        link.0.push(("from".into(), from));
        let until = next.get("until").and_then(Value::as_i64).or(range.until).unwrap_or(now);
        link.0.push(("to".into(), until.to_string()));
        if let Some(seq) = next.get("before_seq").and_then(Value::as_i64) {
            link.0.push(("before_seq".into(), seq.to_string()));
        }
        format!("/console/log?{}", link.query_string())
    });
    // The tail goes on after the newest entry stored now: what is stored
    // between this read and the page's script connecting is shown.
    let stream = (range.until.is_none() && before.is_empty()).then(|| {
        let newest_at = listed.iter().map(|r| r.at).max().unwrap_or(now);
        stream_link(&q, listed.iter().filter_map(|r| r.seq).max(), newest_at)
    });
    let ctx = json!({
        "rows": rows, "q": filter.shown, "stream": stream, "older": older, "error": error,
        "last_choices": last_choices(), "outcomes": OUTCOMES, "since": time(range.since),
        "until": range.until.map(time), "entries_link": entries_link(&q),
    });
    render(&c, "requests.html", context(Some(&s), "log", ctx))
}

/// The same filters in the entries view.
fn entries_link(q: &Form) -> String {
    let mut link =
        Form(q.0.iter().filter(|(k, _)| !["view", "before_seq", "after"].contains(&k.as_str())).cloned().collect());
    link.0.push(("view".into(), "entries".into()));
    format!("/console/log?{}", link.query_string())
}

/// The live tail of the requests view: server-sent events, each the rows
/// of the requests that are new or whose run moved on since the last
/// (rendered; the page puts a row with a key it shows in its place, a new
/// one at the top), and for a published event whose own entry is on an
/// older read, its deliveries' counts alone. Read after a cursor as the
/// entries view's tail is ([`Tail`]); each request redrawn is one read of
/// its run's entries, at most [`TAIL_ROWS`] a push.
pub(super) async fn stream(c: Arc<Console>, cookie: Option<String>, q: Form, resumed: Option<String>) -> Response {
    let filter = RequestForm::of(&q);
    let cursor = Tail::parse(resumed.as_deref().unwrap_or(q.get("after")), now_ms());
    struct Stream {
        c: Arc<Console>,
        cookie: Option<String>,
        filter: RequestForm,
        cursor: Tail,
    }
    let tail = Stream { cookie, c, filter, cursor };
    let events = futures_util::stream::unfold(tail, |mut t| async move {
        loop {
            tokio::time::sleep(TAIL_EVERY).await;
            // Signed out or expired: the stream ends with the session.
            t.cookie.as_deref().and_then(|v| t.c.sessions.session(v, now_ms()))?;
            let path = format!("/v1/logs?{}{}", t.cursor.query(TAIL_ENTRIES), t.filter.api);
            let Ok(v) = t.c.api.get(&path).await else { continue };
            let (fresh, count) = t.cursor.take(&v);
            if count == 0 {
                continue;
            }
            let fresh: Vec<LogEntry> = fresh.into_iter().filter_map(|e| serde_json::from_value(e).ok()).collect();
            let (rows, cells) = redraw(&t.c, &t.filter, &fresh).await;
            if rows.is_empty() && cells.is_empty() {
                continue;
            }
            let data = json!({"rows": rows, "cells": cells});
            let event = Event::default().event("requests").id(t.cursor.id()).data(data.to_string());
            return Some((Ok::<_, Infallible>(event), t));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// The rows (rendered) and the deliveries cells of the requests that
/// `fresh` entries touched, newest first, at most [`TAIL_ROWS`].
async fn redraw(c: &Console, filter: &RequestForm, fresh: &[LogEntry]) -> (Vec<Value>, Vec<Value>) {
    // Each key's fresh entries, newest touched first.
    let mut keys: Vec<&str> = Vec::new();
    let mut own: HashMap<&str, Vec<LogEntry>> = HashMap::new();
    for e in fresh.iter().rev() {
        let Some(k) = requests::key(e) else { continue };
        if !own.contains_key(k) {
            keys.push(k);
        }
        own.entry(k).or_default().push(e.clone());
    }
    keys.truncate(TAIL_ROWS);
    let (mut rows, mut cells) = (Vec::new(), Vec::new());
    for key in keys {
        let mine = own.remove(key).unwrap_or_default();
        // A request that started no run is its one entry; anything else is
        // read whole by its run (a published event's deliveries carry the
        // event's id as their run; its own entry has none).
        let alone = mine.iter().all(|e| e.run_id.is_none() && e.kind == hookflow_core::commit::EntryKind::Inbound);
        let mut entries: Vec<LogEntry> = mine.iter().filter(|e| e.run_id.is_none()).cloned().collect();
        if !alone {
            let Ok(v) = c.api.get(&format!("/v1/logs?run_id={}&limit=10000", encode(key))).await else { continue };
            let read = v.get("entries").and_then(Value::as_array).cloned().unwrap_or_default();
            entries.extend(read.into_iter().filter_map(|e| serde_json::from_value::<LogEntry>(e).ok()));
        }
        match requests::fold(&entries).into_iter().next() {
            Some(row) => {
                let view = RequestView::of(&row);
                if !filter.takes(&row, &view) {
                    continue;
                }
                let html = c
                    .templates
                    .get_template("request.html")
                    .and_then(|tpl| tpl.render(minijinja::Value::from(minijinja::value::Serde(json!({"r": view})))));
                if let Ok(html) = html {
                    rows.push(json!({"key": key, "html": html}));
                }
            }
            None => cells.push(json!({"key": key, "deliveries": deliveries(&requests::deliveries(&entries))})),
        }
    }
    (rows, cells)
}

//! The request log page's entries view (every entry: filters, time range,
//! pages) and its live tail (server-sent events); the page's default
//! view, one row a request, is [`super::requests`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::encode;
use crate::session::Session;
use crate::view::{Entry, LAST, Range, Tail, time};
use crate::{Console, now_ms};

use super::cookie_value;
use super::plumbing::{Form, failed, page, query, render};

/// The most log entries a page reads (the API's own bound is 10,000).
pub(super) const LOG_PAGE: usize = 200;
/// How often a live tail (either view's) asks for new entries.
pub(super) const TAIL_EVERY: Duration = Duration::from_millis(250);
/// The most rows one push of the live tail carries (the rest are counted).
const TAIL_ROWS: usize = 100;

/// The log filters of a query, as the admin API takes them, and the text
/// and outcome filters the console applies itself.
struct LogForm {
    api: String,
    text: String,
    /// An outcome (`rejected` takes every `rejected_…`), or any.
    outcome: String,
    shown: Value,
}

/// The outcomes the log page's menu offers.
const OUTCOMES: [&str; 8] = ["accepted", "rejected", "success", "retry", "halt", "dead", "failed", "done"];

impl LogForm {
    fn of(q: &Form) -> Self {
        let mut api = String::new();
        for key in ["flow_id", "tenant", "event_id", "run_id", "before_seq"] {
            let v = q.get(key).trim();
            if !v.is_empty() {
                api.push_str(&format!("&{key}={}", encode(v)));
            }
        }
        let failed = q.get("failed") == "true";
        if failed {
            api.push_str("&failed=true");
        }
        let outcome = q.get("outcome").trim().to_string();
        let shown = json!({
            "flow_id": q.get("flow_id"), "tenant": q.get("tenant"), "event_id": q.get("event_id"),
            "text": q.get("text"), "failed": failed, "outcome": outcome,
            "last": q.get("last"), "from": q.get("from"), "to": q.get("to"),
        });
        LogForm { api, text: q.get("text").trim().to_lowercase(), outcome, shown }
    }

    /// Whether an entry passes the console's own filters.
    fn takes(&self, e: &Entry) -> bool {
        let outcome = self.outcome.as_str();
        e.contains(&self.text)
            && (outcome.is_empty()
                || e.outcome == outcome
                || (outcome == "rejected" && e.outcome.starts_with("rejected_")))
    }
}

/// Whether a query asks for every entry (`view=entries`, or an event's
/// or a run's) rather than one row a request.
fn entries_view(q: &Form) -> bool {
    q.get("view") == "entries" || !q.get("event_id").trim().is_empty() || !q.get("run_id").trim().is_empty()
}

pub(super) async fn log(
    State(c): State<Arc<Console>>,
    axum::Extension(s): axum::Extension<Session>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = query(q);
    if !entries_view(&q) {
        return super::requests::page(c, s, q).await;
    }
    let filter = LogForm::of(&q);
    let now = now_ms();
    // The last 24 hours unless the form says otherwise: a deployment's
    // log is read by hour.
    let (range, error) = match Range::of(q.get("since"), q.get("last"), q.get("from"), q.get("to"), now) {
        Ok(r) => (r, None),
        Err(e) => (Range { since: now - 86_400_000, until: None }, Some(e)),
    };
    let until = range.until.map(|u| format!("&until={u}")).unwrap_or_default();
    let path = format!("/v1/logs?since={}&limit={LOG_PAGE}{until}{}", range.since, filter.api);
    let listed = match c.api.get(&path).await {
        Ok(v) => v.get("entries").and_then(Value::as_array).cloned().unwrap_or_default(),
        Err(f) => return failed(&c, &s, f),
    };
    let mut entries: Vec<Entry> = listed.iter().map(Entry::of).filter(|e| filter.takes(e)).collect();
    entries.reverse();
    let times: Vec<i64> = listed.iter().filter_map(|e| e.get("at").and_then(Value::as_i64)).collect();
    // A full page has older entries: the next page ends where this one
    // does (its oldest millisecond again, so none of that millisecond is
    // skipped; a page all of one millisecond moves past it).
    // (By `seq` where entries carry one: before the oldest shown, exact.)
    let oldest_seq = listed.iter().filter_map(|e| e.get("seq").and_then(Value::as_i64)).min();
    let older = (listed.len() >= LOG_PAGE).then(|| {
        let (oldest, newest) = (times.iter().min().copied().unwrap_or(0), times.iter().max().copied().unwrap_or(0));
        let skip = ["to", "since", "from", "before_seq", "after"];
        let mut link = Form(q.0.iter().filter(|(k, _)| !skip.contains(&k.as_str())).cloned().collect());
        link.0.push((
            "from".into(),
            if q.get("from").is_empty() { range.since.to_string() } else { q.get("from").into() },
        ));
        match oldest_seq {
            Some(seq) => {
                link.0.push(("before_seq".into(), seq.to_string()));
                link.0.push(("to".into(), range.until.map_or_else(|| now.to_string(), |u| u.to_string())));
            }
            None => link.0.push(("to".into(), if oldest == newest { oldest } else { oldest + 1 }.to_string())),
        }
        format!("/console/log?{}", link.query_string())
    });
    // The tail goes on after the newest entry this page shows: nothing
    // stored between this read and the page's script connecting is lost.
    // A range with an end (an older page too) has no tail.
    let stream = (range.until.is_none() && q.get("before_seq").is_empty()).then(|| {
        let newest_seq = listed.iter().filter_map(|e| e.get("seq").and_then(Value::as_i64)).max();
        stream_link(&q, newest_seq, times.iter().max().copied().unwrap_or(now))
    });
    let ctx = json!({
        "entries": entries, "q": filter.shown, "stream": stream, "older": older, "error": error,
        "last_choices": last_choices(), "outcomes": OUTCOMES, "since": time(range.since),
        "until": range.until.map(time), "requests_link": requests_link(&q),
    });
    render(&c, "log.html", page(Some(&s), "log", ctx))
}

/// A page's live tail: the stream with the page's query, going on after
/// the newest entry the page read (its `seq` where entries carry one,
/// else its time).
pub(super) fn stream_link(q: &Form, newest_seq: Option<i64>, newest_at: i64) -> String {
    let after = match newest_seq {
        Some(seq) => format!("s{seq}"),
        None => format!("t{newest_at}"),
    };
    let mut link = Form(q.0.iter().filter(|(k, _)| k != "after").cloned().collect());
    link.0.push(("after".into(), after));
    format!("/console/log/stream?{}", link.query_string())
}

/// The time ranges a log page's menu offers, as its template takes them.
pub(super) fn last_choices() -> Vec<Value> {
    LAST.iter().map(|(v, label, _)| json!([v, label])).collect()
}

/// The same filters in the requests view (those it has).
fn requests_link(q: &Form) -> String {
    let keep = ["flow_id", "tenant", "text", "failed", "last", "from", "to"];
    let link = Form(q.0.iter().filter(|(k, _)| keep.contains(&k.as_str())).cloned().collect());
    format!("/console/log?{}", link.query_string())
}

/// The live tail: server-sent events, each a batch of new entries rendered
/// as rows (newest first, at most [`TAIL_ROWS`]) with the count of all of
/// them, from an admin API read every [`TAIL_EVERY`] after its cursor
/// ([`Tail`]: an entry's `seq` where the store numbers them, else a time
/// less a look-back, the entries sent already known by content). Each
/// event's id is its cursor, so a reconnecting page (`Last-Event-ID`) goes
/// on from it. It ends when the page goes or its session does.
pub(super) async fn stream(State(c): State<Arc<Console>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let q = query(q);
    let resumed = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    if !entries_view(&q) {
        return super::requests::stream(c, cookie_value(&headers), q, resumed).await;
    }
    let filter = LogForm::of(&q);
    let cursor = Tail::parse(resumed.as_deref().unwrap_or(q.get("after")), now_ms());
    struct Stream {
        c: Arc<Console>,
        cookie: Option<String>,
        filter: LogForm,
        cursor: Tail,
    }
    let tail = Stream { cookie: cookie_value(&headers), c, filter, cursor };
    let events = futures_util::stream::unfold(tail, |mut t| async move {
        loop {
            tokio::time::sleep(TAIL_EVERY).await;
            // Signed out or expired: the stream ends with the session.
            t.cookie.as_deref().and_then(|v| t.c.sessions.session(v, now_ms()))?;
            let path = format!("/v1/logs?{}{}", t.cursor.query(TAIL_ROWS), t.filter.api);
            let Ok(v) = t.c.api.get(&path).await else { continue };
            let (fresh, count) = t.cursor.take(&v);
            if count == 0 {
                continue;
            }
            let shown: Vec<Entry> = fresh.iter().map(Entry::of).filter(|e| t.filter.takes(e)).collect();
            let rows: Vec<String> = shown
                .iter()
                .rev()
                .take(TAIL_ROWS)
                .filter_map(|e| {
                    t.c.templates
                        .get_template("entry.html")
                        .and_then(|tpl| tpl.render(minijinja::Value::from(minijinja::value::Serde(json!({"e": e})))))
                        .ok()
                })
                .collect();
            let data = json!({"rows": rows, "count": count, "more": count.saturating_sub(rows.len())});
            let event = Event::default().event("entries").id(t.cursor.id()).data(data.to_string());
            return Some((Ok::<_, Infallible>(event), t));
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

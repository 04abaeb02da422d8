//! The request log one row a request: each trigger request or published
//! event with what it led to — its outcome, the answer's status, how long
//! its run took, the deliveries it caused (`GET /v1/requests`, the
//! console's request log). Folded from entries, no I/O.
//!
//! A row's *key* is what its entries share: the run's id, or for a
//! published event (whose deliveries carry its id as their run) and a
//! request that started no run, the event's id ([`key`]).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::commit::{EntryKind, LogEntry};

/// What a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// A request to a trigger.
    Request,
    /// An event published (the admin API, a flow's step).
    Event,
}

/// The deliveries a request or event caused, each by what became of it
/// last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliveries {
    /// Answered with a success code.
    pub delivered: u32,
    /// Queued, or retrying after a failed attempt.
    pub pending: u32,
    /// Halted, gone, dead or dropped.
    pub failed: u32,
    /// Attempts made, over all of them.
    pub attempts: u32,
    /// Subscriptions whose filter or transform left a published event out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub filtered: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Deliveries {
    pub fn total(&self) -> u32 {
        self.delivered + self.pending + self.failed
    }
}

/// One request or published event and what it led to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    /// What its entries share ([`key`]).
    pub key: String,
    pub kind: RowKind,
    /// When it arrived (ms).
    pub at: i64,
    /// Its entry's place in the store's commit order, where entries carry
    /// one: `before_seq` pages after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    pub tenant: Option<String>,
    pub flow_id: Option<String>,
    pub run_id: Option<String>,
    pub event_id: Option<String>,
    /// The request's method and path; for an event, its type.
    pub method: Option<String>,
    pub path: Option<String>,
    pub event_type: Option<String>,
    /// `succeeded`, `failed`, `waiting`, `running` (a run); `rejected_401`
    /// and the like, `duplicate` (a request that started none);
    /// `published` (an event).
    pub outcome: String,
    /// The status code the caller was answered with, where it is known.
    pub status: Option<u16>,
    /// From its arrival to its run's last entry (a finished run's length).
    pub duration_ms: Option<i64>,
    /// The step it failed at or waits on.
    pub step: Option<String>,
    /// Why it failed or was rejected.
    pub reason: Option<String>,
    pub deliveries: Deliveries,
}

impl RequestRow {
    /// Whether it went wrong somewhere: rejected, its run failed, or one of
    /// its deliveries failed or is being retried (the log's "failures
    /// only").
    pub fn is_failure(&self) -> bool {
        self.outcome.starts_with("rejected_")
            || self.outcome == "failed"
            || self.deliveries.failed > 0
            || (self.deliveries.pending > 0 && self.deliveries.attempts > 0)
    }
}

/// The key of the row an entry belongs to: its run's id (a published
/// event's deliveries carry the event's id there), else its event's.
pub fn key(e: &LogEntry) -> Option<&str> {
    e.run_id.as_deref().or(e.event_id.as_deref())
}

/// Whether an entry opens a row: a trigger request (accepted, rejected, a
/// duplicate) or a published event.
pub fn is_head(e: &LogEntry) -> bool {
    matches!(e.kind, EntryKind::Inbound | EntryKind::Event)
}

/// The rows of `entries` (any order), newest first: one a head entry
/// ([`is_head`]), each with every other entry of its key. Entries whose
/// head is not among them belong to older requests and are left out.
pub fn fold(entries: &[LogEntry]) -> Vec<RequestRow> {
    let mut groups: HashMap<&str, Vec<&LogEntry>> = HashMap::new();
    for e in entries {
        if let Some(k) = key(e) {
            groups.entry(k).or_default().push(e);
        }
    }
    let mut rows: Vec<RequestRow> = entries
        .iter()
        .filter(|e| is_head(e))
        .filter_map(|head| {
            let k = key(head)?;
            Some(row(head, groups.get(k).map(Vec::as_slice).unwrap_or_default()))
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse((r.at, r.seq)));
    rows
}

/// The deliveries among `entries` (any order), by what became of each last.
pub fn deliveries<'a>(entries: impl IntoIterator<Item = &'a LogEntry>) -> Deliveries {
    // delivery id → (order, outcome) of its latest word.
    let mut last: BTreeMap<&str, (i64, Option<i64>, &str)> = BTreeMap::new();
    let mut out = Deliveries::default();
    for e in entries {
        let (id, outcome) = match e.kind {
            EntryKind::Attempt => {
                if e.detail.get("attempt").is_some() {
                    out.attempts += 1;
                }
                match e.delivery_id.as_deref() {
                    Some(id) => (id, e.outcome.as_deref().unwrap_or("")),
                    None => continue,
                }
            }
            // A step that queued a delivery: pending until an attempt says
            // (a later word about it, such as a result ignored by a run
            // that ended, changes nothing).
            EntryKind::Step if e.detail.get("decision").and_then(Value::as_str) == Some("send") => {
                match e.detail.pointer("/detail/delivery_id").and_then(Value::as_str) {
                    Some(id) => (id, "queued"),
                    None => continue,
                }
            }
            // A dead delivery queued again.
            EntryKind::Replay => match e.delivery_id.as_deref() {
                Some(id) => (id, "queued"),
                None => continue,
            },
            _ => continue,
        };
        let order = (e.at, e.seq);
        let newer = last.get(id).is_none_or(|(at, seq, _)| order >= (*at, *seq));
        if newer {
            last.insert(id, (e.at, e.seq, outcome));
        }
    }
    for (_, _, outcome) in last.values() {
        match *outcome {
            "success" => out.delivered += 1,
            "queued" | "retry" => out.pending += 1,
            // Left out by the subscription's transform, as a filter would.
            "skipped" => out.filtered += 1,
            _ => out.failed += 1,
        }
    }
    out
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(String::from)
}

/// A head's row from its group (which holds the head itself).
fn row(head: &LogEntry, group: &[&LogEntry]) -> RequestRow {
    let d = &head.detail;
    let kind = if head.kind == EntryKind::Event { RowKind::Event } else { RowKind::Request };
    let mut row = RequestRow {
        key: key(head).unwrap_or_default().to_string(),
        kind,
        at: head.at,
        seq: head.seq,
        tenant: head.tenant.clone(),
        flow_id: head.flow_id.clone(),
        run_id: head.run_id.clone(),
        event_id: head.event_id.clone(),
        method: text(d, "method"),
        path: text(d, "path"),
        event_type: (kind == RowKind::Event).then(|| text(d, "type")).flatten(),
        outcome: head.outcome.clone().unwrap_or_default(),
        status: d.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()),
        duration_ms: None,
        step: None,
        reason: text(d, "reason"),
        deliveries: deliveries(group.iter().copied()),
    };
    if kind == RowKind::Event {
        row.deliveries.filtered += d.get("filtered").and_then(Value::as_u64).map_or(0, |n| n as u32);
    }
    if head.run_id.is_none() {
        return row;
    }
    // A run: its outcome, its answer, how long it took.
    let finished = group.iter().filter(|e| e.kind == EntryKind::Run).max_by_key(|e| (e.at, e.seq));
    match finished {
        Some(end) => {
            row.outcome = end.outcome.clone().unwrap_or_default();
            row.step = text(&end.detail, "step");
            row.reason = text(&end.detail, "reason");
            row.duration_ms = Some((end.at - head.at).max(0));
        }
        None => {
            row.outcome = if row.deliveries.pending > 0 { "waiting" } else { "running" }.into();
            row.step = group
                .iter()
                .filter(|e| e.kind == EntryKind::Step)
                .max_by_key(|e| (e.at, e.seq))
                .and_then(|e| text(&e.detail, "step"));
        }
    }
    if row.status.is_none() {
        // A sync flow's answer is its `respond` step's.
        row.status = group
            .iter()
            .find(|e| e.kind == EntryKind::Step && e.detail.get("decision").and_then(Value::as_str) == Some("respond"))
            .and_then(|e| e.detail.pointer("/detail/status").and_then(Value::as_u64))
            .and_then(|s| u16::try_from(s).ok());
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(at: i64, kind: EntryKind, run: Option<&str>, event: &str, outcome: &str, detail: Value) -> LogEntry {
        LogEntry {
            at,
            kind,
            tenant: Some("acme".into()),
            flow_id: run.map(|_| "orders".into()),
            run_id: run.map(String::from),
            event_id: Some(event.into()),
            delivery_id: None,
            outcome: Some(outcome.into()),
            detail,
            seq: Some(at),
        }
    }

    fn attempt(at: i64, run: &str, delivery: &str, n: u32, outcome: &str) -> LogEntry {
        let mut a = e(at, EntryKind::Attempt, Some(run), "evt_1", outcome, json!({"attempt": n, "step": "send"}));
        a.delivery_id = Some(delivery.into());
        a
    }

    #[test]
    fn a_request_s_row_says_what_its_run_did_how_long_it_took_and_what_it_sent() {
        let entries = vec![
            e(
                100,
                EntryKind::Inbound,
                Some("run_1"),
                "evt_1",
                "accepted",
                json!({"method": "POST", "path": "/hooks/acme/orders", "status": 202}),
            ),
            e(
                100,
                EntryKind::Step,
                Some("run_1"),
                "evt_1",
                "send",
                json!({"step": "send", "decision": "send", "detail": {"delivery_id": "d1"}}),
            ),
            attempt(110, "run_1", "d1", 1, "retry"),
            attempt(900, "run_1", "d1", 2, "success"),
            e(905, EntryKind::Run, Some("run_1"), "evt_1", "succeeded", json!({"state": "succeeded"})),
            // A later word about the delivery that is no attempt.
            e(
                906,
                EntryKind::Step,
                Some("run_1"),
                "evt_1",
                "ignored",
                json!({"step": "send", "decision": "ignored", "detail": {"delivery_id": "d1"}}),
            ),
            // A rejected request, newer.
            e(
                1000,
                EntryKind::Inbound,
                None,
                "evt_2",
                "rejected_401",
                json!({"method": "POST", "path": "/hooks/acme/orders", "status": 401, "reason": "bad signature"}),
            ),
        ];
        let rows = fold(&entries);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        let (rejected, run) = (&rows[0], &rows[1]);
        assert_eq!(
            (rejected.outcome.as_str(), rejected.status, rejected.key.as_str()),
            ("rejected_401", Some(401), "evt_2")
        );
        assert_eq!(rejected.reason.as_deref(), Some("bad signature"));
        assert!(rejected.is_failure());
        assert_eq!(run.outcome, "succeeded");
        assert_eq!((run.status, run.duration_ms), (Some(202), Some(805)));
        assert_eq!(run.deliveries, Deliveries { delivered: 1, pending: 0, failed: 0, attempts: 2, filtered: 0 });
        assert_eq!(run.path.as_deref(), Some("/hooks/acme/orders"));
        assert!(!run.is_failure(), "a retry that then succeeded is no failure");
    }

    #[test]
    fn a_run_still_going_waits_on_its_step_and_a_failed_one_names_it() {
        let waiting = vec![
            e(5, EntryKind::Inbound, Some("run_w"), "evt_w", "accepted", json!({"method": "POST", "path": "/p"})),
            e(
                5,
                EntryKind::Step,
                Some("run_w"),
                "evt_w",
                "send",
                json!({"step": "call", "decision": "send", "detail": {"delivery_id": "dw"}}),
            ),
            attempt(6, "run_w", "dw", 1, "retry"),
        ];
        let rows = fold(&waiting);
        assert_eq!(
            (rows[0].outcome.as_str(), rows[0].step.as_deref(), rows[0].duration_ms),
            ("waiting", Some("call"), None)
        );
        assert!(rows[0].is_failure(), "a delivery being retried is shown among failures");
        let failed = vec![
            e(5, EntryKind::Inbound, Some("run_f"), "evt_f", "accepted", json!({})),
            e(
                7,
                EntryKind::Step,
                Some("run_f"),
                "evt_f",
                "respond",
                json!({"step": "answer", "decision": "respond", "detail": {"status": 500}}),
            ),
            e(
                9,
                EntryKind::Run,
                Some("run_f"),
                "evt_f",
                "failed",
                json!({"state": "failed", "step": "call", "reason": "status 400 halts the step"}),
            ),
        ];
        let rows = fold(&failed);
        assert_eq!((rows[0].outcome.as_str(), rows[0].step.as_deref()), ("failed", Some("call")));
        assert_eq!((rows[0].status, rows[0].reason.as_deref()), (Some(500), Some("status 400 halts the step")));
        assert!(rows[0].is_failure());
    }

    #[test]
    fn a_published_event_s_row_counts_its_deliveries_by_their_last_word() {
        let mut head = e(
            10,
            EntryKind::Event,
            None,
            "evt_p",
            "published",
            json!({"type": "order.paid", "deliveries": 3, "filtered": 2}),
        );
        head.flow_id = None;
        let entries = vec![
            head,
            attempt(11, "evt_p", "m1", 1, "success"),
            attempt(11, "evt_p", "m2", 1, "retry"),
            attempt(12, "evt_p", "m3", 1, "dead"),
            // A dead delivery replayed: pending again.
            LogEntry {
                delivery_id: Some("m3".into()),
                ..e(20, EntryKind::Replay, Some("evt_p"), "evt_p", "queued", json!({}))
            },
            // Another request's entry, its head on an older page: left out.
            attempt(13, "run_old", "m9", 4, "success"),
        ];
        let rows = fold(&entries);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.kind, r.key.as_str(), r.event_type.as_deref()), (RowKind::Event, "evt_p", Some("order.paid")));
        assert_eq!(r.deliveries, Deliveries { delivered: 1, pending: 2, failed: 0, attempts: 3, filtered: 2 });
        assert_eq!(r.deliveries.total(), 3);
        assert_eq!(r.outcome, "published");
    }

    #[test]
    fn rows_are_newest_first_by_time_then_commit_order() {
        let entries: Vec<LogEntry> = (0..4)
            .map(|i| {
                let mut x = e(100 + i / 2, EntryKind::Inbound, None, &format!("evt_{i}"), "duplicate", json!({}));
                x.seq = Some(i);
                x
            })
            .collect();
        let keys: Vec<String> = fold(&entries).into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["evt_3", "evt_2", "evt_1", "evt_0"]);
    }
}

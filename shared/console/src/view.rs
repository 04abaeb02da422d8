//! Admin API JSON → what the templates show: no I/O, so each rule is a
//! unit test.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// RFC 3339 UTC of a time in ms, to the millisecond.
pub fn time(ms: i64) -> String {
    hookflow_core::duration::rfc3339(ms)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A request-log entry as a table row shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub time: String,
    pub kind: String,
    pub flow_id: String,
    pub outcome: String,
    pub event_id: String,
    pub run_id: String,
    /// Whether `run_id` names a flow's run (a subscription's delivery
    /// carries its event's id there: no run page).
    pub has_run: bool,
    /// One line: method and path, or status and duration, or the reason.
    pub summary: String,
    /// The whole detail, pretty JSON (as stored: redacted).
    pub detail: String,
}

impl Entry {
    pub fn of(e: &Value) -> Self {
        let d = e.get("detail").cloned().unwrap_or(Value::Null);
        let summary = [
            text(&d, "method"),
            text(&d, "path"),
            d.get("status").map(|s| format!("status {s}")).unwrap_or_default(),
            d.get("duration_ms").map(|s| format!("{s} ms")).unwrap_or_default(),
            text(&d, "reason"),
            text(&d, "error"),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
        Entry {
            time: time(e.get("at").and_then(Value::as_i64).unwrap_or(0)),
            kind: text(e, "kind"),
            flow_id: text(e, "flow_id"),
            outcome: text(e, "outcome"),
            event_id: text(e, "event_id"),
            run_id: text(e, "run_id"),
            has_run: text(e, "run_id").starts_with("run_"),
            summary: if summary.is_empty() { "detail".into() } else { summary },
            detail: serde_json::to_string_pretty(&d).unwrap_or_default(),
        }
    }

    /// Whether `needle` (lower case) is in any of the entry's text.
    pub fn contains(&self, needle: &str) -> bool {
        needle.is_empty()
            || [&self.kind, &self.flow_id, &self.outcome, &self.event_id, &self.run_id, &self.summary, &self.detail]
                .iter()
                .any(|f| f.to_lowercase().contains(needle))
    }
}

/// How far back each poll of the live tail reads again: an entry stamped
/// before another but stored after it (a worker's commit waits on the
/// writer; AWS reads are eventually consistent) is still shown, once.
pub const TAIL_LOOKBACK_MS: i64 = 3_000;

/// Where the live tail is: the newest entry's time sent, the floor below
/// which nothing is sent (the page showed it, or it was sent before a
/// reconnect), and what was sent within the look-back window, by content.
#[derive(Debug, Clone)]
pub struct TailCursor {
    at: i64,
    floor: i64,
    seen: std::collections::HashMap<String, i64>,
}

impl TailCursor {
    pub fn new(after: i64) -> Self {
        TailCursor { at: after, floor: after, seen: Default::default() }
    }

    /// The newest entry's time sent: the event id a reconnect resumes from.
    pub fn at(&self) -> i64 {
        self.at
    }

    /// What the next read asks for: entries at or after this.
    pub fn since(&self) -> i64 {
        self.at - TAIL_LOOKBACK_MS
    }

    /// The entries of a read not sent yet (in the read's order), and the
    /// cursor moved past them.
    pub fn fresh(&mut self, listed: &[Value]) -> Vec<Value> {
        let mut fresh = Vec::new();
        for e in listed {
            let at = e.get("at").and_then(Value::as_i64).unwrap_or(0);
            if at > self.floor && self.seen.insert(e.to_string(), at).is_none() {
                fresh.push(e.clone());
            }
        }
        self.at = self.at.max(fresh.iter().filter_map(|e| e.get("at").and_then(Value::as_i64)).max().unwrap_or(0));
        let horizon = self.since();
        self.seen.retain(|_, at| *at >= horizon);
        fresh
    }
}

/// A flow as the flows page lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowRow {
    pub tenant: String,
    pub id: String,
    pub file: String,
    /// The trigger's public URL (webhook triggers).
    pub url: Option<String>,
    /// The event types of an event trigger.
    pub events: String,
    pub methods: String,
    pub auth: String,
    /// Inbound requests in the last hour.
    pub count: usize,
}

impl FlowRow {
    pub fn of(f: &Value, base: Option<&str>, counts: &BTreeMap<String, usize>) -> Self {
        let t = f.get("trigger").cloned().unwrap_or(Value::Null);
        let (tenant, id) = (text(f, "tenant"), text(f, "id"));
        let webhook = text(&t, "type") != "event";
        let path = text(&t, "path");
        let url = (webhook && !path.is_empty())
            .then(|| format!("{}/hooks/{tenant}/{}", base.unwrap_or(""), path.trim_start_matches('/')));
        let list = |key: &str| -> String {
            t.get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default().to_string()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        let auth = t.get("auth").map_or_else(
            || "none".to_string(),
            |a| {
                let kind = text(a, "type");
                let system = text(&t, "system");
                let mut parts = vec![if kind.is_empty() { "signature".to_string() } else { kind }];
                if !system.is_empty() {
                    parts.push(format!("({system})"));
                }
                if a.get("reject_replays").and_then(Value::as_bool) == Some(true) {
                    parts.push("· replays refused".into());
                }
                parts.join(" ")
            },
        );
        let methods = list("methods");
        FlowRow {
            count: counts.get(&format!("{tenant}/{id}")).copied().unwrap_or(0),
            tenant,
            id,
            file: text(f, "file"),
            url,
            events: list("events"),
            methods: if methods.is_empty() && webhook { "POST".into() } else { methods },
            auth,
        }
    }
}

/// One window of the overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub name: &'static str,
    /// Entries read, and whether the window had more than that.
    pub read: usize,
    pub capped: bool,
    /// (outcome, count, share in %), most first.
    pub inbound: Vec<(String, usize, u32)>,
    pub deliveries: Vec<(String, usize, u32)>,
    pub p50: String,
    pub p99: String,
    pub delivered: usize,
    /// (flow or subscription, failed attempts), most first, at most 5.
    pub failing: Vec<(String, usize)>,
}

fn ranked(counts: BTreeMap<String, usize>) -> Vec<(String, usize, u32)> {
    let total: usize = counts.values().sum();
    let mut v: Vec<_> = counts
        .into_iter()
        .map(|(k, n)| {
            let share = if total == 0 { 0 } else { (n * 100).div_ceil(total) as u32 };
            (k, n, share.min(100))
        })
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn ms(v: Option<i64>) -> String {
    match v {
        None => "—".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

impl Window {
    /// The window's counts from its log entries (newest first or any
    /// order), `limit` the most that were asked for.
    pub fn of(name: &'static str, entries: &[Value], limit: usize) -> Self {
        let mut inbound = BTreeMap::new();
        let mut deliveries = BTreeMap::new();
        let mut failing: BTreeMap<String, usize> = BTreeMap::new();
        let mut accepted: BTreeMap<&str, i64> = BTreeMap::new();
        let mut first_delivered: BTreeMap<&str, i64> = BTreeMap::new();
        for e in entries {
            let kind = e.get("kind").and_then(Value::as_str).unwrap_or_default();
            let outcome = e.get("outcome").and_then(Value::as_str).unwrap_or("unknown").to_string();
            let at = e.get("at").and_then(Value::as_i64).unwrap_or(0);
            let event = e.get("event_id").and_then(Value::as_str).unwrap_or_default();
            match kind {
                "inbound" => {
                    if outcome == "accepted" && !event.is_empty() {
                        accepted.entry(event).and_modify(|t| *t = (*t).min(at)).or_insert(at);
                    }
                    *inbound.entry(outcome).or_insert(0) += 1;
                }
                "attempt" => {
                    let delivered = outcome == "success";
                    if delivered && !event.is_empty() {
                        first_delivered.entry(event).and_modify(|t| *t = (*t).min(at)).or_insert(at);
                    }
                    if !delivered {
                        let who = e
                            .pointer("/detail/subscription_id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or_else(|| e.get("flow_id").and_then(Value::as_str).map(str::to_string))
                            .unwrap_or_default();
                        if !who.is_empty() {
                            *failing.entry(who).or_insert(0) += 1;
                        }
                    }
                    *deliveries.entry(outcome).or_insert(0) += 1;
                }
                _ => {}
            }
        }
        let mut latencies: Vec<i64> = first_delivered
            .iter()
            .filter_map(|(ev, done)| accepted.get(ev).map(|start| (done - start).max(0)))
            .collect();
        latencies.sort_unstable();
        let pct = |p: usize| -> Option<i64> {
            (!latencies.is_empty()).then(|| latencies[((latencies.len() * p).div_ceil(100)).saturating_sub(1)])
        };
        let mut failing: Vec<(String, usize)> = failing.into_iter().collect();
        failing.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        failing.truncate(5);
        Window {
            name,
            read: entries.len(),
            capped: entries.len() >= limit,
            inbound: ranked(inbound),
            deliveries: ranked(deliveries),
            p50: ms(pct(50)),
            p99: ms(pct(99)),
            delivered: latencies.len(),
            failing,
        }
    }
}

/// A subscription row: what it is and which actions its status allows
/// (path segment, button label).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionRow {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub types: String,
    pub status: String,
    pub actions: Vec<(&'static str, &'static str)>,
}

impl SubscriptionRow {
    pub fn of(s: &Value) -> Self {
        let status = text(s, "status");
        let mut actions = match status.as_str() {
            "active" => vec![("disable", "Disable")],
            "disabled" => vec![("enable", "Enable"), ("recover", "Enable and send what was missed")],
            _ => vec![("verify", "Verify again")],
        };
        actions.extend([("rotate-secret", "Rotate secret"), ("delete", "Delete")]);
        SubscriptionRow {
            id: text(s, "id"),
            tenant: text(s, "tenant"),
            url: text(s, "url"),
            types: s
                .get("event_types")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            status,
            actions,
        }
    }
}

/// A dead delivery row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadRow {
    pub delivery_id: String,
    pub flow_id: String,
    pub run_id: String,
    /// Whether `run_id` names a flow's run (see [`Entry::has_run`]).
    pub has_run: bool,
    pub reason: String,
    pub time: String,
}

impl DeadRow {
    pub fn of(d: &Value) -> Self {
        DeadRow {
            delivery_id: text(d, "delivery_id"),
            flow_id: text(d, "flow_id"),
            run_id: text(d, "run_id"),
            has_run: text(d, "run_id").starts_with("run_"),
            reason: text(d, "reason"),
            time: time(d.get("at").and_then(Value::as_i64).unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_are_rfc3339_utc_to_the_millisecond() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_796_055_330_020), "2026-11-30T16:15:30.020Z");
        assert_eq!(time(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_flow_row_has_its_public_url_and_a_readable_auth() {
        let f = json!({"tenant": "acme", "id": "orders", "file": "f.yaml",
            "trigger": {"type": "webhook", "path": "/orders", "methods": ["POST", "PUT"],
                        "system": "stripe", "auth": {"secret": "s", "reject_replays": true}}});
        let counts = BTreeMap::from([("acme/orders".to_string(), 3)]);
        let row = FlowRow::of(&f, Some("http://127.0.0.1:8787"), &counts);
        assert_eq!(row.url.as_deref(), Some("http://127.0.0.1:8787/hooks/acme/orders"));
        assert_eq!(row.methods, "POST, PUT");
        assert_eq!(row.auth, "signature (stripe) · replays refused");
        assert_eq!(row.count, 3);
        let ev = json!({"tenant": "t", "id": "e", "trigger": {"type": "event", "events": ["a.*"]}});
        let row = FlowRow::of(&ev, None, &BTreeMap::new());
        assert_eq!((row.url, row.events.as_str(), row.auth.as_str()), (None, "a.*", "none"));
    }

    #[test]
    fn a_window_counts_outcomes_and_the_accept_to_delivery_latency() {
        let entries = vec![
            json!({"kind": "inbound", "outcome": "accepted", "event_id": "e1", "at": 1000}),
            json!({"kind": "inbound", "outcome": "accepted", "event_id": "e2", "at": 1000}),
            json!({"kind": "inbound", "outcome": "rejected_auth", "at": 1000}),
            json!({"kind": "attempt", "outcome": "retry", "event_id": "e1", "at": 1100, "flow_id": "f"}),
            json!({"kind": "attempt", "outcome": "success", "event_id": "e1", "at": 1250}),
            json!({"kind": "attempt", "outcome": "success", "event_id": "e2", "at": 3000}),
        ];
        let w = Window::of("hour", &entries, 10);
        assert_eq!(w.inbound, vec![("accepted".into(), 2, 67), ("rejected_auth".into(), 1, 34)]);
        assert_eq!(w.deliveries, vec![("success".into(), 2, 67), ("retry".into(), 1, 34)]);
        assert_eq!((w.p50.as_str(), w.p99.as_str(), w.delivered), ("250 ms", "2.0 s", 2));
        assert_eq!(w.failing, vec![("f".into(), 1)]);
        assert!(!w.capped && Window::of("hour", &entries, 6).capped);
    }

    #[test]
    fn an_entry_summarises_its_detail_and_is_found_by_its_text() {
        let e = Entry::of(&json!({"at": 0, "kind": "inbound", "outcome": "accepted", "flow_id": "f",
            "detail": {"method": "POST", "path": "/hooks/a/f", "body": "{\"n\": 1}"}}));
        assert_eq!(e.summary, "POST /hooks/a/f");
        assert!(e.contains("\"n\\\": 1") && e.contains("accepted") && !e.contains("absent"));
    }

    #[test]
    fn the_tail_sends_each_entry_once_late_ones_too_and_nothing_the_page_showed() {
        let e = |at: i64, n: u32| json!({"at": at, "kind": "inbound", "n": n});
        let mut t = TailCursor::new(1_000);
        // The page showed up to 1,000: an entry of that time is not sent.
        assert_eq!(t.fresh(&[e(1_000, 0), e(1_100, 1)]), vec![e(1_100, 1)]);
        assert_eq!(t.since(), 1_100 - TAIL_LOOKBACK_MS, "the next read looks back");
        // The same read again, and one stored late (stamped before the
        // newest sent): only the late one.
        assert_eq!(t.fresh(&[e(1_050, 2), e(1_100, 1), e(1_200, 3)]), vec![e(1_050, 2), e(1_200, 3)]);
        assert_eq!(t.at(), 1_200);
        // Two entries of one millisecond are two entries.
        assert_eq!(t.fresh(&[e(1_300, 4), e(1_300, 5)]).len(), 2);
        // What is past the window is forgotten (bounded), and not asked for.
        t.fresh(&[e(10_000, 6)]);
        assert!(t.seen.len() == 1 && t.since() == 10_000 - TAIL_LOOKBACK_MS);
        // A reconnect resumes after what was sent: nothing again.
        let mut resumed = TailCursor::new(t.at());
        assert!(resumed.fresh(&[e(10_000, 6)]).is_empty());
    }

    #[test]
    fn a_subscription_offers_what_its_status_allows() {
        let s = SubscriptionRow::of(&json!({"id": "sub_1", "status": "disabled", "event_types": ["a.*", "b"]}));
        assert_eq!(s.types, "a.*, b");
        assert_eq!(s.actions[0].0, "enable");
        assert!(s.actions.iter().any(|a| a.0 == "recover"));
        let a = SubscriptionRow::of(&json!({"id": "sub_1", "status": "active"}));
        assert_eq!(a.actions[0].0, "disable");
    }
}

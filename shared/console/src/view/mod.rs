//! Admin API JSON → what the templates show: no I/O, so each rule is a
//! unit test.

use std::collections::BTreeMap;

use hookflow_core::commit::DeadDelivery;
use hookflow_core::subscription::Subscription;
use serde::Serialize;
use serde_json::Value;

mod overview;
mod request;
mod tail;

pub use overview::Window;
pub use request::{RequestView, deliveries};
pub use tail::Tail;

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

/// A run page's header: what happened to the request, at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headline {
    /// `succeeded`, `failed`, `waiting` or `running` (the badge's class).
    pub state: String,
    /// `Succeeded`, `Failed at step send`, `Waiting on step send`, `Running`.
    pub title: String,
    /// The attempts, the reason, the answer and the time it took.
    pub detail: String,
}

impl Headline {
    /// From a run's stored state (`GET /v1/runs/{id}`'s `run`) and its log.
    pub fn of(run: &Value, log: &[Value]) -> Self {
        let status = run.get("status").cloned().unwrap_or(Value::Null);
        let state = status.get("state").and_then(Value::as_str).unwrap_or("running").to_string();
        let step = text(&status, "step");
        let attempts = |step: &str| {
            log.iter()
                .filter(|e| {
                    text(e, "kind") == "attempt" && e.pointer("/detail/step").and_then(Value::as_str) == Some(step)
                })
                .collect::<Vec<_>>()
        };
        let times: Vec<i64> = log.iter().filter_map(|e| e.get("at").and_then(Value::as_i64)).collect();
        let took = match (times.iter().min(), times.iter().max()) {
            (Some(a), Some(b)) => {
                hookflow_core::duration::human(std::time::Duration::from_millis((b - a).max(0) as u64))
            }
            _ => String::new(),
        };
        let answered = log.iter().rev().find_map(|e| {
            (e.pointer("/detail/decision").and_then(Value::as_str) == Some("respond"))
                .then(|| e.pointer("/detail/detail/status").map(|s| s.to_string()))
                .flatten()
        });
        let plural = |n: usize| if n == 1 { "1 attempt".to_string() } else { format!("{n} attempts") };
        let (title, detail) = match state.as_str() {
            "succeeded" => {
                let mut d = vec![format!("{} step(s) run", run.get("executed").and_then(Value::as_u64).unwrap_or(0))];
                d.extend(answered.map(|s| format!("answered {s}")));
                if !took.is_empty() {
                    d.push(format!("in {took}"));
                }
                ("Succeeded".to_string(), d.join(" · "))
            }
            "failed" => {
                // The attempts up to the failure; a replay of its dead
                // delivery afterwards is said apart.
                let ended = log
                    .iter()
                    .filter(|e| text(e, "kind") == "run")
                    .filter_map(|e| e.get("at").and_then(Value::as_i64))
                    .max()
                    .unwrap_or(i64::MAX);
                let tried = attempts(&step);
                let at = |e: &&Value| e.get("at").and_then(Value::as_i64).unwrap_or(0);
                let n = tried.iter().filter(|e| at(e) <= ended).count();
                let reason = text(&status, "reason");
                let mut detail = if n > 0 { format!("after {}: {reason}", plural(n)) } else { reason };
                if let Some(later) = tried.iter().rev().find(|e| at(e) > ended) {
                    detail.push_str(&format!(" · its delivery was replayed since: {}", text(later, "outcome")));
                }
                (format!("Failed at step {step}"), detail)
            }
            "waiting" => {
                let tried = attempts(&step);
                let detail = match tried.last() {
                    None => "its request is queued; no attempt yet".to_string(),
                    Some(last) => {
                        let code = last.pointer("/detail/response/status").map(|s| format!(" (status {s})"));
                        let what =
                            last.pointer("/detail/error_class").and_then(Value::as_str).map(|c| format!(" ({c})"));
                        format!(
                            "{} so far, the last {}{}; tried again on its schedule",
                            plural(tried.len()),
                            text(last, "outcome"),
                            code.or(what).unwrap_or_default()
                        )
                    }
                };
                (format!("Waiting on step {step}"), detail)
            }
            _ => ("Running".to_string(), "its next step is queued".to_string()),
        };
        Headline { state, title, detail }
    }
}

/// A run's timeline row: which step, what happened (an attempt numbered),
/// the one-line summary and the detail a click away.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    pub time: String,
    /// The step, or `request` / `run` for the entries about the whole.
    pub step: String,
    pub what: String,
    pub outcome: String,
    pub summary: String,
    pub detail: String,
}

impl Moment {
    pub fn of(e: &Value) -> Self {
        let entry = Entry::of(e);
        let d = e.get("detail").cloned().unwrap_or(Value::Null);
        let step = match entry.kind.as_str() {
            "inbound" => "request".to_string(),
            "run" => "run".to_string(),
            _ => text(&d, "step"),
        };
        let what = match (entry.kind.as_str(), d.get("attempt")) {
            ("attempt", Some(n)) => format!("attempt {n}: {}", entry.outcome),
            _ => entry.outcome.clone(),
        };
        let at = |path: &str| d.pointer(path).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
        let parts: Vec<String> = match entry.kind.as_str() {
            "attempt" => [
                at("/response/status").map(|s| format!("status {s}")),
                at("/duration_ms").map(|ms| format!("{ms} ms")),
                at("/error_class"),
                at("/error"),
            ]
            .into_iter()
            .flatten()
            .collect(),
            "step" => [at("/detail/request/method"), at("/detail/request/url"), at("/detail/error/message")]
                .into_iter()
                .flatten()
                .collect(),
            _ => Vec::new(),
        };
        let summary = if parts.is_empty() { entry.summary } else { parts.join(" ") };
        Moment { time: entry.time, step, what, outcome: entry.outcome, summary, detail: entry.detail }
    }
}

/// A flow as the flows page lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowView {
    pub tenant: String,
    pub id: String,
    pub file: String,
    /// The trigger's public URL (webhook triggers).
    pub url: Option<String>,
    /// The event types of an event trigger.
    pub events: String,
    pub methods: String,
    pub auth: String,
    /// What a test request must carry for the trigger's auth, as the
    /// send form prefills it: a header line with a placeholder naming the
    /// secret, or a hint where it cannot be typed (a signature).
    pub credential: Credential,
    /// Inbound requests in the last hour.
    pub count: usize,
}

/// A test request's credential (see [`FlowView::credential`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Credential {
    /// `X-Api-Key: <secret quote_api_key>`, to prefill the headers with.
    pub header: Option<String>,
    /// What to do with it.
    pub hint: String,
}

impl Credential {
    fn of(trigger: &Value) -> Self {
        let Some(auth) = trigger.get("auth") else {
            return Credential { header: None, hint: "The trigger checks no credential.".into() };
        };
        let secret = text(auth, "secret");
        let value = format!("<the value of secret {secret}>");
        match text(auth, "type").as_str() {
            "api_key" => {
                match (auth.get("header").and_then(Value::as_str), auth.get("query").and_then(Value::as_str)) {
                    (Some(h), _) => Credential {
                        header: Some(format!("{h}: {value}")),
                        hint: format!("Replace the placeholder in {h} with the secret {secret}."),
                    },
                    (None, Some(q)) => Credential {
                        header: None,
                        hint: format!("The key goes in the query: add ?{q}= and the secret {secret} to the URL."),
                    },
                    _ => Credential::default(),
                }
            }
            "bearer" => Credential {
                header: Some(format!("Authorization: Bearer {value}")),
                hint: format!("Replace the placeholder with the secret {secret}."),
            },
            "basic" => Credential {
                header: Some(format!("Authorization: Basic <base64 of {}:secret {secret}>", text(auth, "username"))),
                hint: "Replace the placeholder with username:password in base64.".into(),
            },
            "none" => Credential { header: None, hint: "The trigger checks no credential.".into() },
            _ => Credential {
                header: None,
                hint: format!(
                    "The trigger checks a signature made with the secret {secret}: send a request signed by \
                     its sender, or hookflow sign one."
                ),
            },
        }
    }
}

impl FlowView {
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
        FlowView {
            count: counts.get(&format!("{tenant}/{id}")).copied().unwrap_or(0),
            tenant,
            id,
            // The file's name: where it is on the serving machine is not
            // the reader's business (a table's `table@…` stays whole).
            file: {
                let file = text(f, "file");
                if file.starts_with("table@") {
                    file
                } else {
                    std::path::Path::new(&file).file_name().map_or(file.clone(), |n| n.to_string_lossy().into_owned())
                }
            },
            url,
            events: list("events"),
            methods: if methods.is_empty() && webhook { "POST".into() } else { methods },
            auth,
            credential: Credential::of(&t),
        }
    }
}

/// A line of a flow's source, with what validation says of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceLine {
    pub n: usize,
    pub text: String,
    /// `field: message` of each error or warning at this line.
    pub notes: Vec<Note>,
}

/// An error or a warning of validation, as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Note {
    pub error: bool,
    pub text: String,
}

impl Note {
    fn of(p: &Value, error: bool) -> Self {
        let field = text(p, "field");
        let message = text(p, "message");
        // The API's error message starts with its position; the line shows it.
        let message = match (p.get("line"), message.strip_prefix("line ")) {
            (Some(_), Some(rest)) => rest.split_once(": ").map_or(message.clone(), |(_, m)| m.to_string()),
            _ => message,
        };
        Note { error, text: if field.is_empty() { message } else { format!("{field}: {message}") } }
    }
}

/// A flow's source as numbered lines, each problem (`line` given) under its
/// line; and the problems of no line, for above the listing.
pub fn annotated(source: &str, errors: &[Value], warnings: &[Value]) -> (Vec<SourceLine>, Vec<Note>) {
    let mut lines: Vec<SourceLine> = source
        .lines()
        .enumerate()
        .map(|(i, l)| SourceLine { n: i + 1, text: l.to_string(), notes: Vec::new() })
        .collect();
    let mut loose = Vec::new();
    let all = errors.iter().map(|p| (p, true)).chain(warnings.iter().map(|p| (p, false)));
    for (p, error) in all {
        let note = Note::of(p, error);
        match p.get("line").and_then(Value::as_u64).map(|l| l as usize) {
            Some(l) if l >= 1 && l <= lines.len() => lines[l - 1].notes.push(note),
            _ => loose.push(note),
        }
    }
    (lines, loose)
}

/// The lines of a headers box (`Name: value` each; blank lines skipped),
/// or which line is not a header.
pub fn header_lines(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("headers, line {}: write `Name: value`", i + 1));
        };
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(out)
}

/// The log page's time range: `from` and `to` (RFC 3339, UTC unless it
/// says otherwise, or ms since the epoch) when given, else the last
/// `last` (`15m`, `1h`, `24h`, `7d`; 24 hours by default). `since` (ms),
/// the form of older links, still reads from that time.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub since: i64,
    /// Before this (ms); open (the live tail runs) when `None`.
    pub until: Option<i64>,
}

/// The choices of the log page's "last" menu: (value, label, ms).
pub const LAST: [(&str, &str, i64); 5] = [
    ("15m", "15 minutes", 900_000),
    ("1h", "hour", 3_600_000),
    ("24h", "24 hours", 86_400_000),
    ("7d", "7 days", 7 * 86_400_000),
    ("14d", "14 days", 14 * 86_400_000),
];

/// A time a person typed: ms since the epoch, or RFC 3339 (a time without
/// an offset is UTC); `None` for nothing; the error names the field.
pub fn time_of(field: &str, text: &str) -> Result<Option<i64>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if let Ok(ms) = t.parse::<i64>() {
        return if ms >= 0 { Ok(Some(ms)) } else { Err(format!("{field}: `{t}` is before the epoch")) };
    }
    humantime::parse_rfc3339_weak(t.trim_end_matches(['Z', 'z']))
        .ok()
        .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Some(d.as_millis() as i64))
        .ok_or_else(|| format!("{field}: `{t}` is not a time: write 2026-11-30T18:00:00Z (UTC) or ms since the epoch"))
}

impl Range {
    pub fn of(since: &str, last: &str, from: &str, to: &str, now: i64) -> Result<Self, String> {
        let (from, to) = (time_of("from", from)?, time_of("to", to)?);
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err("from: the range's start is not before its end".into());
        }
        let window = LAST.iter().find(|(v, _, _)| *v == last).map_or(86_400_000, |(_, _, ms)| *ms);
        let since = from.or_else(|| since.parse().ok()).unwrap_or(match to {
            Some(t) => t.saturating_sub(window),
            None => now.saturating_sub(window),
        });
        Ok(Range { since, until: to })
    }
}

/// A subscription as a page shows it: what it is and which actions its status allows
/// (path segment, button label).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubscriptionView {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub types: String,
    pub status: String,
    pub actions: Vec<(&'static str, &'static str)>,
}

impl SubscriptionView {
    pub fn of(s: &Subscription) -> Self {
        let status = s.status.as_str().to_string();
        let mut actions = match status.as_str() {
            "active" => vec![("disable", "Disable")],
            "disabled" => vec![("enable", "Enable"), ("recover", "Enable and send what was missed")],
            _ => vec![("verify", "Verify again")],
        };
        actions.extend([("rotate-secret", "Rotate secret"), ("delete", "Delete")]);
        SubscriptionView {
            id: s.id.clone(),
            tenant: s.tenant.clone(),
            url: s.url.clone(),
            types: s.event_types.join(", "),
            status,
            actions,
        }
    }
}

/// A dead delivery as the dead page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadView {
    pub delivery_id: String,
    pub tenant: String,
    pub flow_id: String,
    pub run_id: String,
    /// Whether `run_id` names a flow's run (see [`Entry::has_run`]).
    pub has_run: bool,
    pub reason: String,
    pub time: String,
}

impl DeadView {
    pub fn of(d: &DeadDelivery) -> Self {
        let r = &d.row;
        DeadView {
            delivery_id: r.delivery_id.clone(),
            tenant: r.tenant.clone(),
            flow_id: r.flow_id.clone(),
            run_id: r.run_id.clone(),
            has_run: r.run_id.starts_with("run_"),
            reason: r.reason.clone(),
            time: time(d.at),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::overview::Chart;
    use super::tail::{TAIL_LOOKBACK_MS, TailCursor};
    use super::*;

    #[test]
    fn a_run_s_headline_says_what_happened_to_its_request() {
        let attempt = |n: u64, outcome: &str, at: i64| {
            json!({"kind": "attempt", "outcome": outcome, "at": at,
                   "detail": {"step": "send", "attempt": n, "response": {"status": 503}}})
        };
        let failed = json!({"status": {"state": "failed", "step": "send", "reason": "gave up after 2 attempt(s); last status 503"}});
        let end = json!({"kind": "run", "outcome": "failed", "at": 2_600});
        let log = [attempt(1, "retry", 1_000), attempt(2, "dead", 2_500), end.clone()];
        let h = Headline::of(&failed, &log);
        assert_eq!(
            (h.state.as_str(), h.title.as_str(), h.detail.as_str()),
            ("failed", "Failed at step send", "after 2 attempts: gave up after 2 attempt(s); last status 503")
        );
        let replayed = [log[0].clone(), log[1].clone(), end, attempt(1, "success", 9_000)];
        assert!(Headline::of(&failed, &replayed).detail.ends_with(
            "after 2 attempts: gave up after 2 attempt(s); last status 503 · its delivery was replayed since: success"
        ));
        let waiting = json!({"status": {"state": "waiting", "step": "send", "delivery_id": "msg_1"}});
        let h = Headline::of(&waiting, &log[..1]);
        assert_eq!(h.title, "Waiting on step send");
        assert_eq!(h.detail, "1 attempt so far, the last retry (status 503); tried again on its schedule");
        let answered =
            json!({"kind": "step", "at": 1_250, "detail": {"decision": "respond", "detail": {"status": 201}}});
        let ok = json!({"status": {"state": "succeeded"}, "executed": 2});
        let h = Headline::of(&ok, &[attempt(1, "success", 1_000), answered]);
        assert_eq!((h.title.as_str(), h.detail.as_str()), ("Succeeded", "2 step(s) run · answered 201 · in 250ms"));
        assert_eq!(Headline::of(&json!({"status": {"state": "running"}}), &[]).title, "Running");
        let m = Moment::of(&attempt(2, "dead", 2_500));
        assert_eq!((m.step.as_str(), m.what.as_str(), m.summary.as_str()), ("send", "attempt 2: dead", "status 503"));
    }

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
        let row = FlowView::of(&f, Some("http://127.0.0.1:8787"), &counts);
        assert_eq!(row.url.as_deref(), Some("http://127.0.0.1:8787/hooks/acme/orders"));
        assert_eq!(row.methods, "POST, PUT");
        assert_eq!(row.auth, "signature (stripe) · replays refused");
        assert!(row.credential.header.is_none() && row.credential.hint.contains("signature made with the secret s"));
        let keyed = FlowView::of(
            &json!({"id": "q", "tenant": "t", "trigger": {"path": "q", "auth": {"type": "api_key", "header": "X-Api-Key", "secret": "k"}}}),
            None,
            &BTreeMap::new(),
        );
        assert_eq!(keyed.credential.header.as_deref(), Some("X-Api-Key: <the value of secret k>"));
        let placed =
            FlowView::of(&json!({"id": "q", "tenant": "t", "file": "/tmp/x/flows/q.yaml"}), None, &BTreeMap::new());
        assert_eq!(placed.file, "q.yaml", "no path of the serving machine");
        assert_eq!(row.count, 3);
        let ev = json!({"tenant": "t", "id": "e", "trigger": {"type": "event", "events": ["a.*"]}});
        let row = FlowView::of(&ev, None, &BTreeMap::new());
        assert_eq!((row.url, row.events.as_str(), row.auth.as_str()), (None, "a.*", "none"));
    }

    /// The summary the admin API answers for `entries` over `[since,
    /// until)` in buckets of `bucket_ms`.
    fn summary(entries: &[Value], since: i64, until: i64, bucket_ms: i64) -> hookflow_core::stats::Stats {
        let q = hookflow_core::stats::StatsQuery::new(None, since, until, bucket_ms).unwrap();
        let mut tally = hookflow_core::stats::Tally::new(&q);
        for e in entries {
            tally.entry(&serde_json::from_value(e.clone()).unwrap());
        }
        tally.finish()
    }

    #[test]
    fn a_window_shows_outcomes_their_shares_and_the_accept_to_delivery_latency() {
        let entries = vec![
            json!({"kind": "inbound", "outcome": "accepted", "event_id": "e1", "at": 1000}),
            json!({"kind": "inbound", "outcome": "accepted", "event_id": "e2", "at": 1000}),
            json!({"kind": "inbound", "outcome": "rejected_auth", "at": 1000}),
            json!({"kind": "attempt", "outcome": "retry", "event_id": "e1", "at": 1100, "flow_id": "f"}),
            json!({"kind": "attempt", "outcome": "success", "event_id": "e1", "at": 1250}),
            json!({"kind": "attempt", "outcome": "success", "event_id": "e2", "at": 3000}),
        ];
        let w = Window::of("hour", &summary(&entries, 0, 10_000, 5_000), "5 seconds");
        assert_eq!(w.inbound, vec![("accepted".into(), 2, 67, "good"), ("rejected_auth".into(), 1, 33, "bad")]);
        assert_eq!(w.deliveries, vec![("success".into(), 2, 67, "good"), ("retry".into(), 1, 33, "warn")]);
        assert_eq!((w.p50.as_str(), w.p99.as_str(), w.delivered), ("250 ms", "2.0 s", 2));
        assert_eq!(w.failing, vec![("f".into(), 1)]);
        assert_eq!((w.read, w.capped, w.bucket), (6, false, "5 seconds"));
    }

    #[test]
    fn shares_add_up_to_a_hundred_and_each_outcome_has_the_colour_of_its_meaning() {
        for counts in [vec![1, 1, 1], vec![2, 1], vec![1, 1, 1, 1, 1, 1, 1], vec![999, 1], vec![5]] {
            let entries: Vec<_> = counts
                .iter()
                .enumerate()
                .flat_map(|(i, &n)| {
                    (0..n).map(move |_| json!({"kind": "inbound", "outcome": format!("o{i}"), "at": 1000}))
                })
                .collect();
            let w = Window::of("hour", &summary(&entries, 0, 10_000, 5_000), "5 seconds");
            assert_eq!(w.inbound.iter().map(|r| r.2).sum::<u32>(), 100, "{counts:?}: {:?}", w.inbound);
        }
        let tones: Vec<_> =
            ["success", "accepted", "retry", "halt", "dead", "rejected_401", "failed"].map(overview::tone).into();
        assert_eq!(tones, ["good", "good", "warn", "bad", "bad", "bad", "bad"]);
    }

    #[test]
    fn charts_count_each_bucket_and_its_latencies() {
        let entries = vec![
            json!({"kind": "inbound", "outcome": "accepted", "event_id": "e1", "at": 1_000}),
            json!({"kind": "inbound", "outcome": "rejected_auth", "at": 1_500}),
            json!({"kind": "inbound", "outcome": "accepted", "event_id": "e2", "at": 2_100}),
            json!({"kind": "attempt", "outcome": "success", "event_id": "e1", "at": 1_250}),
            json!({"kind": "attempt", "outcome": "success", "event_id": "e2", "at": 2_900}),
            // Outside the window: not counted anywhere.
            json!({"kind": "inbound", "outcome": "accepted", "event_id": "e0", "at": 999}),
            json!({"kind": "inbound", "outcome": "accepted", "event_id": "e3", "at": 3_000}),
        ];
        let s = summary(&entries, 1_000, 3_000, 1_000);
        let [inbound, attempts, latency] = <[Chart; 3]>::try_from(Chart::of_window(&s)).unwrap();
        assert_eq!(inbound.x, vec![1, 2]);
        assert_eq!(
            inbound.series,
            vec![("accepted".into(), vec![Some(1), Some(1)]), ("rejected_auth".into(), vec![Some(1), Some(0)])]
        );
        assert_eq!(attempts.series, vec![("success".into(), vec![Some(1), Some(1)])]);
        assert_eq!(latency.series[0], ("p50".into(), vec![Some(250), Some(800)]));
        assert_eq!(
            (inbound.colours.as_slice(), attempts.colours.as_slice()),
            (&["#16a34a", "#dc2626"][..], &["#16a34a"][..])
        );
        assert_eq!(latency.colours, ["#2563eb", "#7c3aed"]);
        let quiet = Chart::of_window(&summary(&[], 0, 3_000, 1_000));
        assert_eq!(quiet[2].series[1].1, vec![None, None, None], "no delivery: no latency, not zero");
    }

    #[test]
    fn a_flow_source_shows_each_problem_under_its_line() {
        let source = "id: f\ntrigger: x\nsteps: []\n";
        let errors = [
            json!({"field": "trigger", "message": "line 2:10: not a trigger", "line": 2, "col": 10}),
            json!({"field": "", "message": "the file is empty"}),
        ];
        let warnings = [
            json!({"field": "steps", "message": "no steps", "line": 3, "col": 1}),
            json!({"field": "x", "message": "past the end", "line": 99, "col": 1}),
        ];
        let (lines, loose) = annotated(source, &errors, &warnings);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1].notes, vec![Note { error: true, text: "trigger: not a trigger".into() }]);
        assert_eq!(lines[2].notes, vec![Note { error: false, text: "steps: no steps".into() }]);
        assert!(lines[0].notes.is_empty());
        let loose: Vec<&str> = loose.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(loose, ["the file is empty", "x: past the end"]);
    }

    #[test]
    fn a_headers_box_is_read_line_by_line() {
        let h = header_lines("Content-Type: application/json\n\nX-Api-Key:  k:1 \n").unwrap();
        assert_eq!(h, vec![("Content-Type".into(), "application/json".into()), ("X-Api-Key".into(), "k:1".into())]);
        assert_eq!(header_lines("ok: 1\nnot a header").unwrap_err(), "headers, line 2: write `Name: value`");
    }

    #[test]
    fn a_time_range_is_the_last_window_or_what_was_typed() {
        let now = 1_796_055_330_020;
        assert_eq!(Range::of("", "", "", "", now).unwrap(), Range { since: now - 86_400_000, until: None });
        assert_eq!(Range::of("", "15m", "", "", now).unwrap().since, now - 900_000);
        let r = Range::of("", "1h", "2026-11-30T16:15:30.020Z", "2026-11-30 17:00:00", now).unwrap();
        assert_eq!((r.since, r.until), (now, Some(1_796_058_000_000)));
        // Only an end: the window before it.
        assert_eq!(Range::of("", "1h", "", "1000000000", now).unwrap().since, 1_000_000_000 - 3_600_000);
        assert_eq!(Range::of("5", "1h", "", "", now).unwrap().since, 5, "an older link's since");
        assert!(Range::of("", "", "yesterday", "", now).unwrap_err().starts_with("from: `yesterday`"));
        assert!(Range::of("", "", "20", "10", now).unwrap_err().contains("not before its end"));
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
    fn a_tail_by_seq_counts_everything_new_and_one_by_time_moves_to_seq() {
        let e = |seq: i64| json!({"at": seq * 10, "seq": seq});
        let mut t = Tail::parse("s5", 0);
        assert_eq!(t.query(100), "since=0&after_seq=5&limit=100");
        // The newest rows after the cursor, and the count of every new one.
        let (rows, count) = t.take(&json!({"entries": [e(9), e(10)], "count": 5}));
        assert_eq!((rows.len(), count, t.id()), (2, 5, "s10".to_string()));
        // Nothing new: the cursor stays.
        assert_eq!(t.take(&json!({"entries": [], "count": 0})).1, 0);
        assert_eq!(t.id(), "s10");
        // A time cursor (a page that read no entry) moves to seq at the
        // first answer that has one.
        let mut t = Tail::parse("t100", 0);
        assert_eq!(t.query(100), format!("since={}&limit=1000", 100 - TAIL_LOOKBACK_MS));
        let (rows, count) = t.take(&json!({"entries": [e(20), e(21)]}));
        assert_eq!((rows.len(), count, t.id()), (2, 2, "s21".to_string()));
        // Without seq (a deployment's log), it stays by time.
        let mut t = Tail::parse("junk", 7);
        assert_eq!(t.id(), "t7");
        t.take(&json!({"entries": [{"at": 50}]}));
        assert_eq!(t.id(), "t50");
    }

    /// Times from a query string are the sender's: the lowest `i64`
    /// panicked a debug build (`to - window` overflowed).
    #[test]
    fn a_range_of_hostile_times_is_refused_or_saturates_and_never_panics() {
        let low = i64::MIN.to_string();
        assert!(Range::of("", "", "", &low, 0).unwrap_err().contains("before the epoch"));
        assert!(time_of("from", "-1").is_err());
        let far = Range::of("", "", "", &i64::MAX.to_string(), 0).unwrap();
        assert_eq!(far.until, Some(i64::MAX));
        assert_eq!(Range::of("", "", "", "", i64::MIN).unwrap().since, i64::MIN, "saturates");
    }

    #[test]
    fn a_subscription_offers_what_its_status_allows() {
        let new = hookflow_core::subscription::NewSubscription {
            url: "https://receiver.example/h".into(),
            event_types: vec!["a.*".into(), "b".into()],
            ..Default::default()
        };
        let (sub, _) = new.create(0).unwrap();
        let s = SubscriptionView::of(&sub.clone().disabled_by_admin(1));
        assert_eq!(s.types, "a.*, b");
        assert_eq!(s.actions[0].0, "enable");
        assert!(s.actions.iter().any(|a| a.0 == "recover"));
        let a = SubscriptionView::of(&hookflow_core::subscription::Subscription {
            status: hookflow_core::subscription::Status::Active,
            ..sub
        });
        assert_eq!(a.actions[0].0, "disable");
    }
}

//! A row of the request log (`GET /v1/requests`) as the table shows it.

use hookflow_core::requests::{Deliveries, RequestRow, RowKind};
use serde::Serialize;

use crate::api::encode;

/// One request or published event: what it was, what became of it, and
/// where its detail is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestView {
    /// What its entries share (the live tail replaces the row by it).
    pub key: String,
    pub time: String,
    /// `tenant/flow`, or the tenant of a request that found no flow.
    pub flow: String,
    /// `POST /hooks/acme/orders`, or `event order.paid`.
    pub what: String,
    /// The badge's class: `succeeded`, `failed`, `waiting`, `running`, or
    /// `other` (a duplicate, a published event).
    pub tone: String,
    /// `Succeeded`, `Failed at send`, `Rejected`, `Published`.
    pub outcome: String,
    /// Why it failed or was rejected, or what it waits on.
    pub reason: String,
    /// The status code its caller was answered with, or `—`.
    pub status: String,
    /// How long its run took, or `—`.
    pub took: String,
    /// `2 delivered · 1 retrying (5 attempts)`, or `—`.
    pub deliveries: String,
    /// Where its detail is: the run's page, or its event's entries.
    pub href: String,
}

impl RequestView {
    pub fn of(r: &RequestRow) -> Self {
        let step = r.step.clone().unwrap_or_default();
        let (tone, outcome) = match r.outcome.as_str() {
            "succeeded" => ("succeeded", "Succeeded".to_string()),
            "failed" if step.is_empty() => ("failed", "Failed".to_string()),
            "failed" => ("failed", format!("Failed at {step}")),
            "waiting" if step.is_empty() => ("waiting", "Waiting".to_string()),
            "waiting" => ("waiting", format!("Waiting on {step}")),
            "running" => ("running", "Running".to_string()),
            "duplicate" => ("other", "Duplicate: answered as before".to_string()),
            "published" => ("other", "Published".to_string()),
            o if o.starts_with("rejected_") => ("failed", "Rejected".to_string()),
            o => ("other", o.to_string()),
        };
        let what = match r.kind {
            RowKind::Event => format!("event {}", r.event_type.as_deref().unwrap_or("")),
            RowKind::Request => format!("{} {}", r.method.as_deref().unwrap_or(""), r.path.as_deref().unwrap_or("")),
        };
        let tenant = r.tenant.as_deref().unwrap_or("");
        let flow = match &r.flow_id {
            Some(f) => format!("{tenant}/{f}"),
            None => tenant.to_string(),
        };
        let href = match &r.run_id {
            Some(run) => format!("/console/runs/{}", encode(run)),
            None => format!("/console/log?view=entries&event_id={}", encode(r.event_id.as_deref().unwrap_or(&r.key))),
        };
        RequestView {
            key: r.key.clone(),
            time: super::time(r.at),
            flow,
            what: what.trim().to_string(),
            tone: tone.into(),
            outcome,
            reason: r.reason.clone().unwrap_or_default(),
            status: r.status.map_or_else(|| "—".into(), |s| s.to_string()),
            took: r.duration_ms.map_or_else(
                || "—".into(),
                |ms| hookflow_core::duration::human(std::time::Duration::from_millis(ms.max(0) as u64)),
            ),
            deliveries: deliveries(&r.deliveries),
            href,
        }
    }

    /// Whether `needle` (lower case) is in any of the row's text.
    pub fn contains(&self, needle: &str) -> bool {
        needle.is_empty()
            || [&self.key, &self.flow, &self.what, &self.outcome, &self.reason, &self.status]
                .iter()
                .any(|f| f.to_lowercase().contains(needle))
    }
}

/// What became of a request's deliveries, in a few words.
pub fn deliveries(d: &Deliveries) -> String {
    let filtered = match d.filtered {
        0 => String::new(),
        n => format!("{n} filtered out"),
    };
    if d.total() == 0 {
        return if filtered.is_empty() { "—".into() } else { filtered };
    }
    let parts: Vec<String> = [(d.delivered, "delivered"), (d.pending, "pending"), (d.failed, "failed")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    let attempts = match d.attempts {
        0 => String::new(),
        1 => " (1 attempt)".into(),
        n => format!(" ({n} attempts)"),
    };
    let filtered = if filtered.is_empty() { filtered } else { format!(" · {filtered}") };
    format!("{}{attempts}{filtered}", parts.join(" · "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    impl RequestView {
        /// From a row of `GET /v1/requests`.
        fn from_json(v: &Value) -> Option<Self> {
            serde_json::from_value::<RequestRow>(v.clone()).ok().map(|r| RequestView::of(&r))
        }
    }

    #[test]
    fn a_row_says_what_became_of_the_request_and_links_its_detail() {
        let row = json!({
            "key": "run_1", "kind": "request", "at": 0, "tenant": "acme", "flow_id": "orders",
            "run_id": "run_1", "event_id": "evt_1", "method": "POST", "path": "/hooks/acme/orders",
            "outcome": "failed", "status": 202, "duration_ms": 61_000, "step": "send", "reason": "status 400 halts the step",
            "deliveries": {"delivered": 1, "pending": 0, "failed": 1, "attempts": 4}
        });
        let v = RequestView::from_json(&row).unwrap();
        assert_eq!((v.tone.as_str(), v.outcome.as_str()), ("failed", "Failed at send"));
        assert_eq!((v.status.as_str(), v.took.as_str()), ("202", "1m 1s"));
        assert_eq!(v.deliveries, "1 delivered · 1 failed (4 attempts)");
        assert_eq!((v.what.as_str(), v.flow.as_str()), ("POST /hooks/acme/orders", "acme/orders"));
        assert_eq!(v.href, "/console/runs/run_1");
        assert!(v.contains("halts"));
    }

    #[test]
    fn a_rejected_request_and_an_event_link_their_entries() {
        let rejected = json!({
            "key": "evt_2", "kind": "request", "at": 0, "tenant": "acme", "event_id": "evt_2",
            "method": "POST", "path": "/hooks/acme/x", "outcome": "rejected_401", "status": 401,
            "reason": "bad signature", "deliveries": {"delivered": 0, "pending": 0, "failed": 0, "attempts": 0}
        });
        let v = RequestView::from_json(&rejected).unwrap();
        assert_eq!((v.outcome.as_str(), v.status.as_str(), v.took.as_str()), ("Rejected", "401", "—"));
        assert_eq!(v.deliveries, "—");
        assert_eq!(v.href, "/console/log?view=entries&event_id=evt_2");
        let event = json!({
            "key": "evt_3", "kind": "event", "at": 0, "tenant": "default", "event_id": "evt_3",
            "event_type": "order.paid", "outcome": "published",
            "deliveries": {"delivered": 0, "pending": 2, "failed": 0, "attempts": 0}
        });
        let v = RequestView::from_json(&event).unwrap();
        assert_eq!(
            (v.what.as_str(), v.outcome.as_str(), v.deliveries.as_str()),
            ("event order.paid", "Published", "2 pending")
        );
    }
}

//! Published events: what an admin sends, what a subscription receives,
//! and the row that remembers an id for its window.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::commit::EventRow;
use crate::events::check_type;

use super::record::{DEFAULT_TENANT, FieldError, Subscription, check_tenant};

/// A published event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub tenant: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was published (ms).
    pub at: i64,
    pub data: Value,
}

/// What an admin publishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Dotted lowercase words: `payment.received`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Anything JSON; delivered as `data`.
    #[serde(default)]
    pub data: Value,
    /// Idempotency key: a repeat within 24 h is accepted once. Generated
    /// when absent. 1-128 of `A-Za-z0-9._:-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl NewEvent {
    pub fn into_event(self, now: i64) -> Result<Event, Vec<FieldError>> {
        let mut errs = Vec::new();
        if let Err(e) = check_type(&self.kind) {
            errs.push(FieldError::new("type", e));
        }
        if let Some(id) = &self.id
            && (id.is_empty()
                || id.len() > 128
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)))
        {
            errs.push(FieldError::new("id", "must be 1-128 of `A-Za-z0-9._:-`"));
        }
        if let Some(t) = &self.tenant
            && let Err(e) = check_tenant(t)
        {
            errs.push(FieldError::new("tenant", e));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Event {
            id: self.id.unwrap_or_else(|| format!("evt_{}", uuid::Uuid::now_v7().simple())),
            tenant: self.tenant.unwrap_or_else(|| DEFAULT_TENANT.into()),
            kind: self.kind,
            at: now,
            data: self.data,
        })
    }
}

impl Event {
    /// The delivered body: `{"type", "timestamp", "data"}`.
    pub fn envelope(&self) -> Value {
        json!({"type": self.kind, "timestamp": crate::duration::rfc3339(self.at), "data": self.data})
    }

    /// The operational event saying `sub` was disabled. `was` is when the
    /// record it changed was last updated: two workers disabling the same
    /// record at once build the same event id, and the store publishes it
    /// once (the loser's commit is refused and redone against the new state).
    pub fn disabled(sub: &Subscription, was: i64, now: i64) -> Event {
        Event {
            id: format!("evt_disabled_{}_{was}", sub.id),
            tenant: sub.tenant.clone(),
            kind: "subscription.disabled".into(),
            at: now,
            data: json!({
                "subscription_id": sub.id, "url": sub.url,
                "reason": sub.disabled_reason, "failing_since": sub.failing_since.map(crate::duration::rfc3339),
            }),
        }
    }
}

impl EventRow {
    pub fn of(e: &Event, idempotency: std::time::Duration) -> Self {
        EventRow {
            tenant: e.tenant.clone(),
            id: e.id.clone(),
            kind: e.kind.clone(),
            at: e.at,
            doc: serde_json::to_string(e).unwrap_or_default(),
            expires_at: e.at + idempotency.as_millis() as i64,
        }
    }
}

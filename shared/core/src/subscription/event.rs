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
    /// when absent — then a retry after a 5xx (which can follow a write
    /// that took) publishes a second event: send one to retry safely.
    /// 1-128 of `A-Za-z0-9._:-`.
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

    /// The event as a subscription's filter sees it: `{"id", "type",
    /// "tenant", "timestamp", "data"}`.
    pub fn filtered(&self) -> Value {
        json!({"id": self.id, "type": self.kind, "tenant": self.tenant,
               "timestamp": crate::duration::rfc3339(self.at), "data": self.data})
    }

    /// The id of the `subscription.disabled` event published when `sub`
    /// was disabled by its endpoint's health (`None`: not disabled).
    pub fn disabled_id(sub: &Subscription) -> Option<String> {
        sub.disabled_at.map(|at| format!("evt_disabled_{}_{at}", sub.id))
    }

    /// The operational event saying `sub` (the disabled record) was
    /// disabled. Its id names the subscription and when it was disabled
    /// ([`Event::disabled_id`]): the store takes one id once, and a worker
    /// that finds the record disabled can find the event its disabling
    /// published (to send again what that commit queued, if its send
    /// failed). Two workers cannot both disable one record: the store
    /// writes a subscription only over the version it was computed from.
    pub fn disabled(sub: &Subscription, now: i64) -> Event {
        Event {
            id: Event::disabled_id(sub).unwrap_or_else(|| format!("evt_disabled_{}_{now}", sub.id)),
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

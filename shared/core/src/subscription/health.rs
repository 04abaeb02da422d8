//! What an attempt means for its subscription: the gate before sending,
//! and the change after (verified, failed, failing, recovered, disabled),
//! with `subscription.disabled` when it disables one.

use serde_json::json;

use crate::engine::Health;
use crate::run::Purpose;

use super::event::Event;
use super::record::{Status, Subscription};
use super::settings::Settings;

impl Subscription {
    /// What `health` (the outcome of an attempt) changes, if anything.
    /// Returns the subscription as it should be stored, and whether this
    /// change disabled it.
    pub fn apply(&self, health: &Health, settings: &Settings, now: i64) -> Option<(Subscription, bool)> {
        let mut s = self.clone();
        let mut disabled = false;
        match health {
            Health::Verified => {
                if s.status != Status::Pending {
                    return None;
                }
                s.status = Status::Active;
                s.activated_at = now;
                s.verification = None;
            }
            Health::Unverified => {
                if s.status != Status::Pending {
                    return None;
                }
                s.status = Status::Failed;
            }
            Health::Delivered => {
                s.failing_since?;
                s.failing_since = None;
            }
            Health::Failed => {
                if s.status != Status::Active {
                    return None;
                }
                let since = *s.failing_since.get_or_insert(now);
                if now - since >= settings.disable_after.as_millis() as i64 {
                    let days = settings.disable_after.as_secs_f64() / 86_400.0;
                    s.disable(now, format!("every attempt failed for longer than {days:.3} days"));
                    disabled = true;
                } else if self.failing_since.is_some() {
                    return None;
                }
            }
            Health::Gone => {
                if s.status != Status::Active {
                    return None;
                }
                s.failing_since.get_or_insert(now);
                s.disable(now, "the endpoint answered 410 Gone".into());
                disabled = true;
            }
        }
        s.updated_at = now;
        Some((s, disabled))
    }
}

/// What a delivery's outcome changed for its subscription.
#[derive(Debug)]
pub struct HealthChange {
    /// The subscription as it is now.
    pub sub: Subscription,
    /// Its row and log entry, to add to the attempt's commit.
    pub commit: crate::commit::Commit,
    /// The operational log line saying so.
    pub line: crate::engine::LogLine,
    /// When the change disabled it: the `subscription.disabled` event, for
    /// the driver to fan out in the same commit.
    pub disabled: Option<Event>,
}

/// What `health` changes for `sub` (the record as read), or `None`.
pub fn health_change(sub: &Subscription, health: Health, settings: &Settings, now: i64) -> Option<HealthChange> {
    let (changed, disabled) = sub.apply(&health, settings, now)?;
    let commit = crate::commit::Commit {
        subscriptions: vec![crate::commit::SubscriptionRow::replacing(&changed, sub.updated_at)],
        log: vec![crate::commit::LogEntry::for_subscription(&changed, now)],
        ..Default::default()
    };
    // The status, or (still active) the start or end of a failure window.
    let message = match (changed.status == sub.status, changed.failing_since) {
        (false, _) => format!("subscription {}", changed.status.as_str()),
        (true, Some(_)) => "subscription failing".to_string(),
        (true, None) => "subscription recovered".to_string(),
    };
    let line = crate::engine::LogLine {
        level: if disabled { crate::engine::Level::Warn } else { crate::engine::Level::Info },
        message,
        fields: json!({
            "tenant": changed.tenant, "subscription_id": changed.id, "reason": changed.disabled_reason,
            "failing_since": changed.failing_since,
        }),
    };
    let disabled = disabled.then(|| Event::disabled(&changed, now));
    Some(HealthChange { sub: changed, commit, line, disabled })
}

/// What to do with a delivery before sending it, given its subscription as
/// stored now (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Send,
    /// Record it as a dead delivery (replayable): an event the endpoint
    /// missed because its subscription is not active.
    Dead(String),
    /// Drop it, logged: the subscription was deleted, or the verification
    /// round it belongs to is over.
    Drop(String),
}

/// The [`Gate`] of a delivery with `purpose`; flow steps always pass.
pub fn gate(purpose: &Purpose, sub: Option<&Subscription>) -> Gate {
    let Some(id) = purpose.subscription() else { return Gate::Send };
    let Some(sub) = sub.filter(|s| s.id == id) else { return Gate::Drop("its subscription was deleted".into()) };
    match purpose {
        Purpose::Verify { token, .. } => {
            if sub.status != Status::Pending || sub.verification.as_ref().is_none_or(|v| &v.token != token) {
                // A newer round (`verify`) or the end of this one: its
                // outcome must not fail a subscription another round verifies.
                return Gate::Drop("its verification round is over (verified, or replaced by a newer one)".into());
            }
            Gate::Send
        }
        _ if sub.status != Status::Active => Gate::Dead(format!("its subscription is {}", sub.status.as_str())),
        _ => Gate::Send,
    }
}

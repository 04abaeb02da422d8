//! How subscriptions are driven: retry schedules, the failure window, key
//! rotation, event id windows.

use std::time::Duration;

use crate::retry::{RetryPolicy, STANDARD_WEBHOOKS_SCHEDULE};

/// How subscriptions are driven; the defaults are the Standard Webhooks
/// recommendations, `hookflow dev` can shorten them for a demo or a test.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Retries of event deliveries.
    pub retry: RetryPolicy,
    /// Retries of the verification request; when it runs out the
    /// subscription is `failed`.
    pub verification: RetryPolicy,
    /// A subscription failing for longer than this is disabled.
    pub disable_after: Duration,
    /// How long a rotated-out key keeps signing.
    pub rotation_grace: Duration,
    /// How long a published event id is remembered (a repeat is accepted
    /// once).
    pub idempotency: Duration,
    /// Per attempt.
    pub timeout: Duration,
    /// How long after an enable a publish may still have missed the
    /// subscription (a publish in flight, a read not yet consistent): an
    /// enable's replay covers that long past the enable, and reads its last
    /// moments again that long after them.
    pub replay_settle: Duration,
    /// The AWS destinations (ARN patterns) subscriptions and steps may
    /// send to: the stack's `AllowedDestinationArns` (default none),
    /// `hookflow dev --destinations` (default all).
    pub destinations: crate::destination::Allowed,
}

impl Default for Settings {
    fn default() -> Self {
        let mut verification = RetryPolicy::schedule(&[
            Duration::from_secs(5),
            Duration::from_secs(60),
            Duration::from_secs(10 * 60),
            Duration::from_secs(3600),
            Duration::from_secs(4 * 3600),
            Duration::from_secs(8 * 3600),
            Duration::from_secs(12 * 3600),
        ]);
        verification.max_age = Some(Duration::from_secs(24 * 3600));
        Settings {
            retry: RetryPolicy::schedule(&STANDARD_WEBHOOKS_SCHEDULE),
            verification,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            rotation_grace: Duration::from_secs(24 * 3600),
            idempotency: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(15),
            replay_settle: Duration::from_secs(2),
            destinations: crate::destination::Allowed::none(),
        }
    }
}

impl Settings {
    /// With other retry delays (after the first attempt) for events and
    /// for verification requests; an empty list keeps the default.
    pub fn with_schedules(mut self, event: &[Duration], verification: &[Duration]) -> Self {
        if !event.is_empty() {
            self.retry = RetryPolicy::schedule(event);
        }
        if !verification.is_empty() {
            self.verification = RetryPolicy::schedule(verification);
        }
        self
    }
}

//! The outbox: what a commit must queue, written in the commit's own
//! transaction.
//!
//! DynamoDB and SQS take no transaction together, so a commit is written
//! first and its jobs are sent after. Between the two the process can die,
//! the Lambda time out, or the send fail (also after SQS took it). What
//! makes that safe: the messages are written, as an outbox, into an item
//! the commit writes anyway, in the same transaction as the state change —
//!
//! - a run's commit (the ingress accepting a request, the executor
//!   advancing a run): into the run's item, with the **cause** (the input
//!   that made the commit: its message's job id, or [`ACCEPTED`]);
//! - a publish (`POST /v1/events`, `subscription.disabled` fanned out by
//!   the dispatcher, the runs an event starts): into the event's item.
//!
//! The input whose commit it was comes back when the send did not finish
//! (an SQS message not deleted; the caller's retry with its idempotency
//! key; the same event id published again; the disabling delivery's
//! message) and finds its change already applied. Instead of dropping it,
//! it sends the outbox again ([`crate::store::Store::redrive`]). A run's
//! outbox is replaced by the run's next commit, which only an input its
//! last message caused can make; an event's is removed once sent.
//! Messages sent twice are harmless: job ids are derived, a delivery keeps
//! its `webhook-id`, a run ignores an input it has applied.

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::queue::Message;

/// The cause of the ingress's commit (a request accepted, its run stored).
pub const ACCEPTED: &str = "accepted";

/// What a commit queued, and what caused it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    /// The job id of the input that made the commit, or [`ACCEPTED`];
    /// empty for a publish (its event id says which it is).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cause: String,
    pub messages: Vec<Message>,
}

impl Outbox {
    /// Whether it was caused by `cause` (and so is that input's to send).
    pub fn caused_by(&self, cause: &str) -> bool {
        self.cause == cause
    }

    /// As stored (JSON text).
    pub fn to_text(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::Malformed(format!("outbox: {e}")))
    }

    /// As stored, read back.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text).map_err(|e| Error::Malformed(format!("outbox: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use hookflow_core::commit::JobKind;

    use super::*;

    #[test]
    fn an_outbox_reads_back_as_written_and_names_its_cause() {
        let m = Message {
            id: "d:msg_1_1".into(),
            kind: JobKind::Delivery,
            payload: "{\"delivery\":{}}".into(),
            not_before: 5,
            tenant: "acme".into(),
            group: None,
        };
        let o = Outbox { cause: "r:run_1:start".into(), messages: vec![m] };
        let back = Outbox::from_text(&o.to_text().unwrap()).unwrap();
        assert_eq!(back, o);
        assert!(back.caused_by("r:run_1:start"));
        assert!(!back.caused_by("r:run_1:msg_1_1"));
        assert!(matches!(Outbox::from_text("{"), Err(Error::Malformed(_))));
    }
}

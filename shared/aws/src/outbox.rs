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
//!
//! A run's outbox also carries the commit's log items that are not in the
//! run's item (the copy of an `inbound` entry under its tenant and hour):
//! they are written after the run, outside its write, and again by the
//! redo, under the same keys.

use hookflow_core::commit::{JobKind, LogEntry};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::queue::RawMessage;

/// The cause of the ingress's commit (a request accepted, its run stored).
pub const ACCEPTED: &str = "accepted";

/// What a commit queued, and what caused it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    /// The job id of the input that made the commit, or [`ACCEPTED`];
    /// empty for a publish (its event id says which it is).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cause: String,
    pub messages: Vec<RawMessage>,
    /// Log items to write once the commit is ([`LogCopy`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<LogCopy>,
}

/// A log entry written after its commit, with its key (so that writing it
/// again replaces it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogCopy {
    pub pk: String,
    pub sk: String,
    pub entry: LogEntry,
}

/// The stored form: a body that several deliveries send (an event fanned
/// out to its subscriptions) is kept once, in `bodies`, and each of those
/// deliveries names it by index. Compression alone does not share copies
/// more than 32 KiB apart (zlib's window), and an event's item must stay
/// under 400 KB.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    cause: String,
    messages: Vec<RawMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    bodies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    log: Vec<LogCopy>,
}

/// Bodies shorter than this are left in their message.
const SHARED_FROM: usize = 256;

/// Where a delivery job keeps its request's body.
const BODY: &str = "/delivery/request/body";

/// The key naming a shared body in place of the body.
const SHARED: &str = "outbox_body";

impl Outbox {
    /// Whether it was caused by `cause` (and so is that input's to send).
    pub fn caused_by(&self, cause: &str) -> bool {
        self.cause == cause
    }

    /// As stored (JSON text), a body sent by several deliveries kept once.
    pub fn to_text(&self) -> Result<String, Error> {
        let mut stored = Stored {
            cause: self.cause.clone(),
            messages: self.messages.clone(),
            bodies: Vec::new(),
            log: self.log.clone(),
        };
        if self.messages.len() > 1 {
            for m in stored.messages.iter_mut().filter(|m| m.kind == JobKind::Delivery) {
                let Ok(mut job) = serde_json::from_str::<Value>(&m.payload) else { continue };
                let Some(slot) = job.pointer_mut(BODY) else { continue };
                let Value::String(body) = slot else { continue };
                if body.len() < SHARED_FROM {
                    continue;
                }
                let index = match stored.bodies.iter().position(|b| b == body) {
                    Some(i) => i,
                    None => {
                        stored.bodies.push(std::mem::take(body));
                        stored.bodies.len() - 1
                    }
                };
                *slot = serde_json::json!({ SHARED: index });
                m.payload = job.to_string();
            }
        }
        serde_json::to_string(&stored).map_err(|e| Error::Malformed(format!("outbox: {e}")))
    }

    /// As stored, read back (shared bodies put back in their messages).
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let mut stored: Stored = serde_json::from_str(text).map_err(|e| Error::Malformed(format!("outbox: {e}")))?;
        if !stored.bodies.is_empty() {
            for m in &mut stored.messages {
                let Ok(mut job) = serde_json::from_str::<Value>(&m.payload) else { continue };
                let Some(slot) = job.pointer_mut(BODY) else { continue };
                let Some(index) = slot.get(SHARED).and_then(Value::as_u64) else { continue };
                let body = stored.bodies.get(index as usize).ok_or_else(|| {
                    Error::Malformed(format!("outbox: message {} names shared body {index}, not stored", m.id))
                })?;
                *slot = Value::String(body.clone());
                m.payload = job.to_string();
            }
        }
        Ok(Outbox { cause: stored.cause, messages: stored.messages, log: stored.log })
    }
}

#[cfg(test)]
mod tests {
    use hookflow_core::commit::NewJob;
    use hookflow_core::subscription::sample_delivery;

    use super::*;

    #[test]
    fn a_body_fanned_out_to_many_deliveries_is_stored_once() {
        let body = "x".repeat(40 * 1024);
        let job = |sub: usize| {
            let mut d = sample_delivery("run_1", &body);
            d.delivery.id = format!("msg_{sub}_evt_1");
            RawMessage::of_job(&NewJob { id: format!("d:msg_{sub}_evt_1"), ..NewJob::delivery(&d, 1) })
        };
        let o = Outbox { cause: String::new(), messages: (0..20).map(job).collect(), log: vec![] };
        let text = o.to_text().unwrap();
        assert!(text.len() < 2 * body.len(), "20 copies of a 40 KiB body in {} bytes", text.len());
        assert_eq!(Outbox::from_text(&text).unwrap(), o, "read back whole");
        // One message keeps its body in place; so does a short body.
        let one = Outbox { cause: "c".into(), messages: vec![job(1)], log: vec![] };
        assert!(one.to_text().unwrap().contains(&body));
        assert_eq!(Outbox::from_text(&one.to_text().unwrap()).unwrap(), one);
        // A message naming a body that is not there is refused.
        let broken = text.replace("outbox_body\\\":0", "outbox_body\\\":7");
        assert_ne!(broken, text);
        assert!(matches!(Outbox::from_text(&broken), Err(Error::Malformed(_))));
    }

    #[test]
    fn an_outbox_reads_back_as_written_and_names_its_cause() {
        let m = RawMessage::of_job(&NewJob::delivery(&sample_delivery("run_1", ""), 5));
        // A message this version cannot read (a newer version's) is kept
        // and sent again as it is: an outbox is never decoded.
        let newer = RawMessage { id: "d:msg_2_1".into(), payload: "{\"delivery\": {\"v\": 9}}".into(), ..m.clone() };
        let o = Outbox { cause: "r:run_1:start".into(), messages: vec![m, newer], log: vec![] };
        let back = Outbox::from_text(&o.to_text().unwrap()).unwrap();
        assert_eq!(back, o);
        assert!(back.caused_by("r:run_1:start"));
        assert!(!back.caused_by("r:run_1:msg_1_1"));
        assert!(matches!(Outbox::from_text("{"), Err(Error::Malformed(_))));
    }
}

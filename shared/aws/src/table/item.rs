//! One item of the table: a run's `doc` (state, outbox, kept log), an
//! ordered message's held state, the size DynamoDB counts, the condition
//! a write is made under.

use super::*;

/// What a run's item keeps in its one compressed `doc` attribute, as lines
/// (JSON text has no raw newline): the run's state, the outbox of its last
/// commit (empty when none), and its log kept with it (a JSON array; empty
/// when its entries are items of their own). One attribute, so that the
/// trigger's body — in the state, in the messages, in the `inbound` entry
/// — is compressed once (within zlib's 32 KiB window).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct RunDoc {
    pub state: String,
    pub outbox: String,
    pub log: String,
}

impl RunDoc {
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}", self.state, self.outbox, self.log)
    }

    /// A run's item read back; items written before `doc` keep `state` and
    /// `outbox` apart.
    pub fn of_item(item: &Item, id: &str) -> Result<Self, Error> {
        if let Some(doc) = get_text(item, "doc")? {
            let mut lines = doc.splitn(3, '\n');
            let state = lines.next().unwrap_or_default().to_string();
            let outbox = lines.next().unwrap_or_default().to_string();
            let log = lines.next().unwrap_or_default().to_string();
            return Ok(RunDoc { state, outbox, log });
        }
        let state = get_text(item, "state")?.ok_or_else(|| Error::Malformed(format!("run {id}: no state")))?;
        Ok(RunDoc { state, outbox: get_text(item, "outbox")?.unwrap_or_default(), log: String::new() })
    }

    /// The entries kept in the run's item.
    pub fn entries(&self) -> Result<Vec<LogEntry>, Error> {
        if self.log.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_str(&self.log).map_err(|e| Error::Malformed(format!("a run's kept log: {e}")))
    }
}

/// An ordered message's state between its attempts: what of its job
/// changes (the request does not, and stays in the message, which cannot
/// change), and when the next attempt is due.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    /// Attempts made so far ([`hookflow_core::commit::DeliveryJob::attempts`]).
    pub attempts: u32,
    /// When the first attempt was due (ms).
    pub first_at: i64,
    /// When the next one is (ms).
    pub due: i64,
    /// The slot it waits for under its subscription's pace, if it does
    /// ([`hookflow_core::commit::DeliveryJob::slot`]).
    pub slot: Option<hookflow_core::limit::Slot>,
    /// How long it has waited on its limits
    /// ([`hookflow_core::commit::DeliveryJob::waited_ms`]).
    pub waited_ms: u64,
}

/// What a commit does to an ordered message's held state
/// ([`crate::store::Store::apply_ordered`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// It is retried: its state until then.
    Keep { job_id: String, held: Held },
    /// It is done (delivered or dead): forget the state.
    Release(String),
}

/// How long a held state outlives its last write: longer than the ordered
/// queue keeps a message (14 days).
pub(super) const HELD_TTL: Duration = Duration::from_secs(15 * 86_400);

/// DynamoDB's largest item (400 KB, counted as 1024 bytes a KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The largest part of a dead delivery's compressed job (an item of its
/// own, well under [`MAX_ITEM_BYTES`]).
pub(super) const DEAD_PART: usize = 300 * 1024;

/// An item's size as DynamoDB counts it: each attribute's name and value
/// (strings and binaries by their bytes, numbers at most 21 bytes).
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    AttributeValue::B(b) => b.as_ref().len(),
                    AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
                    other => format!("{other:?}").len(),
                }
        })
        .sum()
}

/// The condition an item of a commit is written under.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cond {
    None,
    /// A run: only over an older revision.
    Newer(i64),
    /// A published event: only if its id is not live at this time (ms).
    EventFree(i64),
    /// A subscription: only over this version of it.
    Version(i64),
}

impl Cond {
    /// Its condition expression, the values it names, and the attribute
    /// name it names by placeholder (`until` is a reserved word).
    #[allow(clippy::type_complexity)]
    pub(super) fn expression(
        self,
    ) -> (Option<&'static str>, Vec<(&'static str, AttributeValue)>, Option<(&'static str, &'static str)>) {
        match self {
            Cond::None => (None, vec![], None),
            Cond::Newer(rev) => (
                Some("attribute_not_exists(pk) OR attribute_not_exists(revision) OR revision < :rev"),
                vec![(":rev", n(rev))],
                None,
            ),
            Cond::EventFree(at) => {
                (Some("attribute_not_exists(pk) OR #until <= :at"), vec![(":at", n(at))], Some(("#until", "until")))
            }
            // Over the version read, of an item that still exists (a write
            // must not bring back a deleted subscription).
            Cond::Version(prev) => (
                Some("attribute_exists(pk) AND (attribute_not_exists(version) OR version = :prev)"),
                vec![(":prev", n(prev))],
                None,
            ),
        }
    }

    /// The error of a commit whose item under this condition was refused.
    pub(super) fn refused(self, c: &Commit) -> Error {
        match self {
            Cond::EventFree(_) => {
                let id = c.event.as_ref().map_or("?", |e| e.id.as_str());
                Error::Duplicate(format!("event `{id}` was published already"))
            }
            Cond::Version(_) => Error::Conflict(
                "the subscription changed meanwhile (a delivery's outcome or another admin); read it and try again"
                    .into(),
            ),
            Cond::Newer(_) | Cond::None => {
                Error::Conflict(format!("run {} was written by another worker", c.runs.first().map_or("?", |r| &r.id)))
            }
        }
    }
}

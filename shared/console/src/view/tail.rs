//! The live tail's cursor: by `seq` where the log has a commit order (an
//! exact count), else by time with a look-back.

use serde_json::Value;

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
    pub(super) seen: std::collections::HashMap<String, i64>,
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

/// Where the live tail is: after an entry's `seq`, where the store numbers
/// its entries in commit order (`hookflow dev`: exact, nothing read twice,
/// a count of everything new however fast it comes), else after a time
/// with a look-back ([`TailCursor`]: a deployment's log).
#[derive(Debug, Clone)]
pub enum Tail {
    Seq(i64),
    Time(TailCursor),
}

impl Tail {
    /// From an event id or the page's link: `s123` (after that `seq`) or
    /// `t1796…` (after that time, ms); anything else starts now.
    pub fn parse(text: &str, now: i64) -> Tail {
        match (text.get(..1), text.get(1..).and_then(|n| n.parse::<i64>().ok())) {
            (Some("s"), Some(n)) => Tail::Seq(n),
            (Some("t"), Some(n)) => Tail::Time(TailCursor::new(n)),
            _ => Tail::Time(TailCursor::new(now)),
        }
    }

    /// The cursor as an event id ([`Tail::parse`] reads it back).
    pub fn id(&self) -> String {
        match self {
            Tail::Seq(n) => format!("s{n}"),
            Tail::Time(c) => format!("t{}", c.at()),
        }
    }

    /// The query of the next read (the filters aside): by `seq`, the
    /// newest `rows` after it and their count; by time, the look-back
    /// window (at most 1,000).
    pub fn query(&self, rows: usize) -> String {
        match self {
            Tail::Seq(n) => format!("since=0&after_seq={n}&limit={rows}"),
            Tail::Time(c) => format!("since={}&limit=1000", c.since()),
        }
    }

    /// The entries of an answer not sent yet (oldest first) and how many
    /// new entries there were in all; the cursor moved past them. A time
    /// cursor whose answer carries `seq` goes on by `seq`.
    pub fn take(&mut self, answer: &Value) -> (Vec<Value>, usize) {
        let listed = answer.get("entries").and_then(Value::as_array).cloned().unwrap_or_default();
        let newest_seq = listed.iter().filter_map(|e| e.get("seq").and_then(Value::as_i64)).max();
        match self {
            Tail::Seq(n) => {
                *n = newest_seq.unwrap_or(*n).max(*n);
                let count = answer.get("count").and_then(Value::as_u64).map_or(listed.len(), |c| c as usize);
                (listed, count)
            }
            Tail::Time(c) => {
                let fresh = c.fresh(&listed);
                if let Some(seq) = newest_seq {
                    *self = Tail::Seq(seq);
                }
                let count = fresh.len();
                (fresh, count)
            }
        }
    }
}

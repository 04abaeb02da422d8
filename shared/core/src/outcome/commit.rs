//! A unit of work: what one step of the engine changes, as data.
//!
//! Handling an inbound request, feeding an input to a run or finishing a
//! delivery attempt each produce one [`Commit`]: the run's new state, the
//! jobs it asks for, the request-log entries, an idempotency record, a dead
//! delivery. A store adapter applies it as one unit (SQLite: one
//! transaction; AWS: DynamoDB first, then the jobs on SQS, so a crash
//! between the two re-does a job rather than loses one — job ids are
//! derived from what they carry, so re-doing cannot fork a run).
//!
//! Rows arrive serialised (JSON text) and jobs typed ([`Payload`]); a store
//! encodes what it writes before its single writer writes it, in the task
//! that made the commit.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::run::{Delivery, Input, Run, RunStatus};

/// Which queue a job goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Feed an input to a run ([`RunJob`]).
    Run,
    /// Send one attempt of a delivery ([`DeliveryJob`]).
    Delivery,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Run => "run",
            JobKind::Delivery => "delivery",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "run" => Some(JobKind::Run),
            "delivery" => Some(JobKind::Delivery),
            _ => None,
        }
    }
}

/// A `run` job's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunJob {
    pub run_id: String,
    pub input: Input,
}

/// A `delivery` job's payload. Secrets are placeholders in it: it is safe to
/// store and to queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub delivery: Delivery,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the first attempt was due (ms).
    pub first_at: i64,
    /// The slot its next attempt holds under its destination's pace, if
    /// it waited for one ([`crate::limit::Slot`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<crate::limit::Slot>,
    /// How long it has waited on its destination's limits (ms): not
    /// counted in its age (`max_age`), as waiting spends no retry budget.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub waited_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl DeliveryJob {
    /// A delivery's first attempt, due at `first_at`.
    pub fn new(delivery: Delivery, first_at: i64) -> Self {
        DeliveryJob { delivery, attempts: 0, first_at, slot: None, waited_ms: 0 }
    }
}

/// What a job carries, typed: decoded once where bytes come in (a row of
/// the queue table, an SQS message) and encoded once where they go out.
/// Stored and queued as the JSON text of the inner job ([`Payload::text`]),
/// its kind beside it.
// Most jobs are deliveries: boxing the larger variant would cost each of
// them an allocation to spare the fewer run jobs some bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Run(RunJob),
    Delivery(DeliveryJob),
}

impl Payload {
    pub fn kind(&self) -> JobKind {
        match self {
            Payload::Run(_) => JobKind::Run,
            Payload::Delivery(_) => JobKind::Delivery,
        }
    }

    /// The JSON text it is stored and queued as (the inner job's).
    pub fn text(&self) -> String {
        match self {
            Payload::Run(j) => serde_json::to_string(j),
            Payload::Delivery(j) => serde_json::to_string(j),
        }
        .unwrap_or_default()
    }

    /// A stored or queued job of `kind` whose text is `text`.
    pub fn decode(kind: JobKind, text: &str) -> Result<Self, serde_json::Error> {
        Ok(match kind {
            JobKind::Run => Payload::Run(serde_json::from_str(text)?),
            JobKind::Delivery => Payload::Delivery(serde_json::from_str(text)?),
        })
    }

    pub fn as_delivery(&self) -> Option<&DeliveryJob> {
        match self {
            Payload::Delivery(d) => Some(d),
            Payload::Run(_) => None,
        }
    }

    pub fn as_run(&self) -> Option<&RunJob> {
        match self {
            Payload::Run(r) => Some(r),
            Payload::Delivery(_) => None,
        }
    }
}

/// A job to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Derived from what the job carries (`d:{delivery_id}`,
    /// `r:{run_id}:{cause}`), so adding it twice adds it once.
    pub id: String,
    pub payload: Payload,
    pub not_before: i64,
    /// The tenant: queues that group messages (SQS fair queues) group by it.
    pub tenant: String,
    /// Inserted already leased for this long (ms): the process that
    /// commits it runs it itself right after the commit; the lease hands it
    /// to another worker only if that process dies first. Adapters whose
    /// queue delivers on its own (SQS) ignore it.
    pub leased_for: Option<i64>,
    /// Jobs of one group are done one at a time, in the order they were
    /// added (a subscription's per-key ordering; an SQS FIFO message group).
    pub group: Option<String>,
}

impl NewJob {
    /// A job that feeds `input` to run `run_id`; `cause` names what it
    /// answers (`start`, a delivery id), making its id unique and stable.
    pub fn run(tenant: &str, run_id: &str, cause: &str, input: Input, not_before: i64) -> Self {
        NewJob {
            id: format!("r:{run_id}:{cause}"),
            payload: Payload::Run(RunJob { run_id: run_id.to_string(), input }),
            not_before,
            tenant: tenant.to_string(),
            leased_for: None,
            group: None,
        }
    }

    /// The first attempt of `delivery`, due at `now`.
    pub fn delivery(job: &DeliveryJob, now: i64) -> Self {
        NewJob {
            id: format!("d:{}", job.delivery.id),
            payload: Payload::Delivery(job.clone()),
            not_before: now,
            tenant: job.delivery.tenant.clone(),
            leased_for: None,
            group: None,
        }
    }

    pub fn kind(&self) -> JobKind {
        self.payload.kind()
    }
}

/// A run's row.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    pub tenant: String,
    pub flow_id: String,
    pub event_id: String,
    pub status: &'static str,
    /// The run's [`Run::revision`]: a store that checks it writes the row
    /// only over an older one.
    pub revision: u64,
    /// The run as JSON text.
    pub state: String,
}

impl RunRow {
    pub fn of(run: &Run) -> Self {
        let status = match &run.status {
            RunStatus::Running => "running",
            RunStatus::Waiting { .. } => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed { .. } => "failed",
        };
        RunRow {
            id: run.id.clone(),
            tenant: run.tenant.clone(),
            flow_id: run.flow_id.clone(),
            event_id: run.event_id.clone(),
            status,
            revision: run.revision,
            state: crate::run::stored_state(run),
        }
    }
}

/// A delivery that becomes dead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadRow {
    pub delivery_id: String,
    pub tenant: String,
    pub flow_id: String,
    pub run_id: String,
    pub reason: String,
    /// The delivery job (JSON text), kept for replay.
    #[serde(skip)]
    pub job: String,
}

impl DeadRow {
    /// The row of `job`, dead for `reason`.
    pub fn of(job: &DeliveryJob, reason: impl Into<String>) -> Self {
        let d = &job.delivery;
        DeadRow {
            delivery_id: d.id.clone(),
            tenant: d.tenant.clone(),
            flow_id: d.flow_id.clone(),
            run_id: d.run_id.clone(),
            reason: reason.into(),
            job: serde_json::to_string(job).unwrap_or_default(),
        }
    }

    /// The dead delivery queued again and the log entry that says so:
    /// attempts start over, the delivery id (the receiver's `webhook-id`)
    /// stays, so a receiver that did get an earlier attempt can tell.
    /// The job id is new, so the replay is not taken for the first job.
    pub fn replay(&self, now: i64) -> Result<(NewJob, LogEntry), serde_json::Error> {
        let mut job: DeliveryJob = serde_json::from_str(&self.job)?;
        job.attempts = 0;
        job.first_at = now;
        // Its slot was under the pace as it was then: a replay reserves
        // anew (a bulk replay is paced, not sent at once).
        (job.slot, job.waited_ms) = (None, 0);
        let mut new = NewJob::delivery(&job, now);
        new.id = format!("d:{}:replay:{now}", self.delivery_id);
        let entry = LogEntry {
            at: now,
            kind: EntryKind::Replay,
            tenant: Some(self.tenant.clone()),
            flow_id: Some(self.flow_id.clone()),
            run_id: Some(self.run_id.clone()),
            event_id: None,
            delivery_id: Some(self.delivery_id.clone()),
            outcome: Some("replayed".into()),
            detail: Value::Object(Default::default()),
            seq: None,
        };
        Ok((new, entry))
    }
}

/// A dead delivery as stored: the row of the commit that declared it
/// dead, and when (what `hookflow dead list` shows, and the admin API's
/// `GET /v1/dead` lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadDelivery {
    #[serde(flatten)]
    pub row: DeadRow,
    pub at: i64,
}

/// Which request-log entries a read wants: the one filter of the admin
/// API (`GET /v1/logs`), the stores and the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub tenant: Option<String>,
    pub flow_id: Option<String>,
    pub run_id: Option<String>,
    pub event_id: Option<String>,
    /// Only the attempts of this subscription's deliveries (its
    /// verification's too).
    pub subscription_id: Option<String>,
    /// At or after (ms).
    pub since: i64,
    /// Before (ms), if given.
    pub until: Option<i64>,
    /// Only entries stored after the one of this `seq` (stores that number
    /// their entries in commit order: SQLite): the live tail's cursor.
    pub after_seq: Option<i64>,
    /// Only entries up to this `seq` (not an API parameter: the API counts
    /// up to the newest entry it answers, so the count and the entries are
    /// of one moment).
    pub upto_seq: Option<i64>,
    /// Only failures: halted, retried, dead, rejected.
    pub failed_only: bool,
    /// Only the newest this many (all when `None`).
    pub limit: Option<usize>,
}

/// What a request-log entry is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A trigger request: accepted, rejected or a duplicate.
    #[default]
    Inbound,
    /// A step of a run.
    Step,
    /// A run finished.
    Run,
    /// One delivery attempt (or a delivery ended unsent).
    Attempt,
    /// A job the runtime could not run (dropped).
    Job,
    /// A dead delivery queued again.
    Replay,
    /// A subscription changed.
    Subscription,
    /// An event published.
    Event,
    /// A kind this version does not know (read from a newer store).
    #[serde(other)]
    Other,
}

impl EntryKind {
    pub const ALL: [EntryKind; 9] = [
        EntryKind::Inbound,
        EntryKind::Step,
        EntryKind::Run,
        EntryKind::Attempt,
        EntryKind::Job,
        EntryKind::Replay,
        EntryKind::Subscription,
        EntryKind::Event,
        EntryKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Inbound => "inbound",
            EntryKind::Step => "step",
            EntryKind::Run => "run",
            EntryKind::Attempt => "attempt",
            EntryKind::Job => "job",
            EntryKind::Replay => "replay",
            EntryKind::Subscription => "subscription",
            EntryKind::Event => "event",
            EntryKind::Other => "other",
        }
    }

    /// The kind a store wrote as text.
    pub fn parse(text: &str) -> EntryKind {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == text).unwrap_or(EntryKind::Other)
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request-log entry (read back by the stores that keep entries as
/// JSON, such as a run's item on AWS).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogEntry {
    pub at: i64,
    pub kind: EntryKind,
    pub tenant: Option<String>,
    pub flow_id: Option<String>,
    pub run_id: Option<String>,
    pub event_id: Option<String>,
    pub delivery_id: Option<String>,
    pub outcome: Option<String>,
    pub detail: Value,
    /// Its place in the store's order of commits, where the store has one
    /// (SQLite's `seq`): what the live tail reads after. Never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

impl LogEntry {
    /// An entry about `run`.
    pub fn for_run(run: &Run, at: i64, kind: EntryKind, outcome: &str, detail: Value) -> Self {
        LogEntry {
            at,
            kind,
            tenant: Some(run.tenant.clone()),
            flow_id: Some(run.flow_id.clone()),
            run_id: Some(run.id.clone()),
            event_id: Some(run.event_id.clone()),
            delivery_id: None,
            outcome: Some(outcome.into()),
            detail,
            seq: None,
        }
    }

    /// Outcomes that count as failures for `--status failed`.
    pub fn is_failure(&self) -> bool {
        self.outcome.as_deref().is_some_and(|o| {
            matches!(o, "halt" | "gone" | "retry" | "failed" | "dead" | "dropped") || o.starts_with("rejected_")
        })
    }
}

/// Changes made as one unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commit {
    /// The job that is finished (deleted) ...
    pub done: Option<String>,
    /// ... or rescheduled: (id, its next attempt, due at).
    pub reschedule: Option<(String, DeliveryJob, i64)>,
    pub runs: Vec<RunRow>,
    pub jobs: Vec<NewJob>,
    pub log: Vec<LogEntry>,
    /// (scope, reply as JSON text, expires at).
    pub idempotency: Option<(String, String, i64)>,
    pub dead: Option<DeadRow>,
    /// A published event, kept for its idempotency window and for replay
    /// to re-enabled subscriptions. A live event with the same tenant and
    /// id makes the store refuse the whole commit (a repeat publishes once).
    pub event: Option<EventRow>,
    /// Subscriptions created or changed.
    pub subscriptions: Vec<SubscriptionRow>,
}

/// A published event's row.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub tenant: String,
    pub id: String,
    pub kind: String,
    pub at: i64,
    /// The event as JSON text.
    pub doc: String,
    /// Until when a repeat of its id is refused (ms).
    pub expires_at: i64,
}

/// A subscription's row.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub id: String,
    pub tenant: String,
    pub status: &'static str,
    /// The subscription as JSON text.
    pub doc: String,
    /// Its `updated_at`: the version this row is.
    pub version: i64,
    /// The version it replaces: the store writes the row only over that
    /// version (an admin's change and a delivery's health change computed
    /// from the same record cannot both land); `None` writes it anyway
    /// (a new subscription).
    pub prev: Option<i64>,
}

impl Commit {
    /// Saves a run.
    pub fn run(&mut self, run: &Run) {
        self.runs.push(RunRow::of(run));
    }

    /// Adds `other`'s changes to this unit: its rows, jobs and log entries
    /// after these, and its single-valued parts where it has them.
    pub fn merge(&mut self, other: Commit) {
        let Commit { done, reschedule, runs, jobs, log, idempotency, dead, event, subscriptions } = other;
        self.runs.extend(runs);
        self.jobs.extend(jobs);
        self.log.extend(log);
        self.subscriptions.extend(subscriptions);
        self.done = done.or(self.done.take());
        self.reschedule = reschedule.or(self.reschedule.take());
        self.idempotency = idempotency.or(self.idempotency.take());
        self.dead = dead.or(self.dead.take());
        self.event = event.or(self.event.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_kinds_read_back_as_written() {
        for kind in EntryKind::ALL {
            assert_eq!(EntryKind::parse(kind.as_str()), kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(EntryKind::parse("from-a-newer-version"), EntryKind::Other);
    }

    #[test]
    fn a_replayed_dead_delivery_starts_afresh_its_slot_and_wait_forgotten() {
        let mut job = crate::subscription::sample_delivery("evt_1", "{}");
        job.attempts = 4;
        job.waited_ms = 9_000;
        let rate = crate::limit::RateLimit { per_second: 1.0, burst: 1 };
        job.slot = Some(crate::limit::Slot { at: 5, rate, epoch: 0 });
        let (new, _) = DeadRow::of(&job, "why").replay(100).unwrap();
        let again = new.payload.as_delivery().unwrap();
        assert_eq!((again.attempts, again.first_at, again.slot, again.waited_ms), (0, 100, None, 0));
    }

    #[test]
    fn merge_appends_lists_and_keeps_single_parts_where_set() {
        let entry = |kind: EntryKind| LogEntry { kind, ..Default::default() };
        let mut a = Commit { done: Some("j1".into()), log: vec![entry(EntryKind::Step)], ..Default::default() };
        let b = Commit {
            log: vec![entry(EntryKind::Run)],
            idempotency: Some(("s".into(), "{}".into(), 1)),
            ..Default::default()
        };
        a.merge(b);
        assert_eq!(a.log.iter().map(|e| e.kind).collect::<Vec<_>>(), [EntryKind::Step, EntryKind::Run]);
        assert_eq!(a.done.as_deref(), Some("j1"), "kept: the other had none");
        assert_eq!(a.idempotency.as_ref().map(|i| i.0.as_str()), Some("s"), "taken from the other");
    }
}

//! The queue: due jobs leased in `due_at` order (a group only at its head), leases released at start.

use hookflow_core::commit::{JobKind, Payload};
use hookflow_core::flow::MAX_STEP_TIMEOUT;

use super::*;

/// How long a leased job is held before another worker may take it: the
/// longest attempt ([`MAX_STEP_TIMEOUT`]) and a minute for its secrets and
/// its commit, so a job still in flight is never leased and sent again.
/// (A restart releases every lease at once: only this process holds them.)
pub const LEASE_MS: i64 = MAX_STEP_TIMEOUT.as_millis() as i64 + 60_000;

/// A parked job's due time: never.
const PARKED: i64 = i64::MAX;
/// A parked job's `leased` column (1: leased; 0: neither).
const PARKED_MARK: i64 = 2;

/// A job taken from the queue, its payload decoded ([`Leased::decode`]).
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    /// What it carries; a row this version cannot read is
    /// [`Undecodable`]: the runtime parks it ([`Store::park_job`]), never
    /// retries it in a loop.
    pub payload: Result<Payload, Undecodable>,
    /// How many times it has been leased, this time included.
    pub leases: i64,
    /// Its group, if it is ordered within one.
    pub group: Option<String>,
}

/// A queued job whose kind or payload this version cannot read.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    pub kind: String,
    /// The payload as stored.
    pub text: String,
    /// Why it could not be read.
    pub error: String,
}

/// A job as its row holds it, leased: decoded ([`Leased::decode`]) by the
/// task that runs it, so a job is allocated, read and freed on one thread.
#[derive(Debug, Clone)]
pub struct Leased {
    pub id: String,
    kind: String,
    payload: String,
    leases: i64,
    pub group: Option<String>,
}

impl Leased {
    /// The job, its payload decoded (or why it cannot be).
    pub fn decode(self) -> Job {
        let payload = match JobKind::parse(&self.kind) {
            Some(kind) => Payload::decode(kind, &self.payload).map_err(|e| e.to_string()),
            None => Err(format!("unknown job kind `{}`", self.kind)),
        }
        .map_err(|error| Undecodable { kind: self.kind, text: self.payload, error });
        Job { id: self.id, payload, leases: self.leases, group: self.group }
    }
}

pub(super) fn lease_jobs(conn: &Connection, now: i64, limit: usize, lease_ms: i64) -> Result<Vec<Leased>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE jobs SET due_at = ?1 + ?3, leased = 1, leases = leases + 1
             WHERE id IN (SELECT id FROM jobs j WHERE due_at <= ?1 AND {GROUP_HEAD} ORDER BY due_at LIMIT ?2)
             RETURNING id, kind, payload, leases, grp"
    ))?;
    let rows = stmt.query_map(params![now, limit as i64, lease_ms], |r| {
        Ok(Leased { id: r.get(0)?, kind: r.get(1)?, payload: r.get(2)?, leases: r.get(3)?, group: r.get(4)? })
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?);
    }
    Ok(out)
}

impl Store {
    /// Adds a job row as it is, bytes this version may not read included
    /// (for the tests of what the runtime does with those).
    #[cfg(test)]
    pub(crate) fn insert_raw_job(&self, id: &str, kind: &str, payload: &str) {
        self.conn()
            .execute(
                "INSERT INTO jobs (id, kind, payload, due_at, created_at) VALUES (?1, ?2, ?3, 0, 0)",
                params![id, kind, payload],
            )
            .expect("a job row");
    }

    /// The queue at `now`, for metrics: by kind, the jobs in progress (a
    /// worker's lease), those due and waiting for a worker, those due later,
    /// and how long the oldest waiting one has waited. A parked job is not
    /// in the queue.
    pub fn queue_gauges(&self, now: i64) -> Result<Vec<crate::metrics::Queued>, Error> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT kind, SUM(leased = 1), SUM(leased = 0 AND due_at <= ?1), SUM(leased = 0 AND due_at > ?1), \
                 MIN(CASE WHEN leased = 0 AND due_at <= ?1 THEN due_at END) \
                 FROM jobs WHERE leased != {PARKED_MARK} GROUP BY kind ORDER BY kind"
            ))
            .map_err(db)?;
        let rows = st
            .query_map([now], |r| {
                let oldest: Option<i64> = r.get(4)?;
                Ok(crate::metrics::Queued {
                    kind: r.get(0)?,
                    in_progress: r.get::<_, i64>(1)? as u64,
                    due: r.get::<_, i64>(2)? as u64,
                    scheduled: r.get::<_, i64>(3)? as u64,
                    oldest_due_s: oldest.map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0),
                })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// Makes every leased job due again (at start: no worker holds a
    /// lease), and every parked one: this version may read it.
    pub fn release_leases(&self) -> Result<(), Error> {
        let now = crate::now_ms();
        self.conn().execute("UPDATE jobs SET due_at = ?1, leased = 0 WHERE leased != 0", [now]).map(|_| ()).map_err(db)
    }

    /// Parks job `id`, one this version cannot read: kept whole, out of the
    /// queue's way (never due, not a group's head for the next due time),
    /// and due again at the next start ([`Store::release_leases`]), when a
    /// version that reads it may run it. Nothing of it is lost.
    pub fn park_job(&self, id: &str) -> Result<(), Error> {
        self.conn()
            .execute(&format!("UPDATE jobs SET due_at = {PARKED}, leased = {PARKED_MARK} WHERE id = ?1"), [id])
            .map(|_| ())
            .map_err(db)
    }

    /// Leases up to `limit` due jobs for `lease_ms`.
    pub async fn lease(&self, now: i64, limit: usize, lease_ms: i64) -> Result<Vec<Leased>, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(Op::Lease { now, limit, lease_ms, reply: tx })
            .map_err(|_| Error::Unavailable("the store writer has stopped".into()))?;
        rx.await.map_err(|_| Error::Unavailable("the store writer has stopped".into()))?
    }

    /// When the next job becomes due (ms), if any.
    pub fn next_due(&self) -> Result<Option<i64>, Error> {
        self.conn()
            .query_row(
                &format!("SELECT MIN(due_at) FROM jobs j WHERE {GROUP_HEAD} AND j.leased != {PARKED_MARK}"),
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(db)
    }
}

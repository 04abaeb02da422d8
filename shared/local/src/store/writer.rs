//! The one writer thread: every commit and lease waiting, applied in one transaction (group commit); the checkpointer beside it.

use hookflow_core::commit::{EntryKind, Payload};

use super::jobs::{Leased, lease_jobs};
use super::*;

pub(super) type Reply = Option<tokio::sync::oneshot::Sender<Result<(), Error>>>;

/// The writer thread: takes every commit waiting, applies them in one
/// transaction, and answers each. If the batch fails, each commit is applied
/// on its own so one bad commit cannot fail its neighbours.
/// What the writer thread does: commits, and leases (which are writes too:
/// doing them here keeps one writer, with no lock contention between two).
pub(super) enum Op {
    Commit(Box<Staged>, Reply),
    Lease { now: i64, limit: usize, lease_ms: i64, reply: tokio::sync::oneshot::Sender<Result<Vec<Leased>, Error>> },
}

/// How long the writer waits to grow a batch when ops keep coming.
pub(super) const LINGER: std::time::Duration = std::time::Duration::from_micros(500);

/// How long the writer waits for a lock another connection holds.
pub(super) const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(5000);

pub(super) fn writer(conn: Connection, wal: std::path::PathBuf, rx: std::sync::mpsc::Receiver<Op>) {
    let mut conn = conn;
    // When, and at what WAL size, a truncating checkpoint last could not
    // finish (a reader held an old snapshot, or the checkpointer thread the
    // checkpoint lock): the next waits for a second or 4 MiB more of WAL.
    let mut truncate_failed: Option<(std::time::Instant, u64)> = None;
    let mut last = std::time::Instant::now() - LINGER * 8;
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        // Under load, linger a moment for more: a transaction costs about
        // the same for one event as for fifty (it appends the same hot
        // pages to the WAL), so batching is what the throughput rests on.
        // Alone, an op is written at once.
        let busy = last.elapsed() < LINGER * 4;
        let deadline = std::time::Instant::now() + LINGER;
        while ops.len() < 512 {
            let next = if busy {
                rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).ok()
            } else {
                rx.try_recv().ok()
            };
            match next {
                Some(next) => ops.push(next),
                None => break,
            }
        }
        last = std::time::Instant::now();
        let mut batch = Vec::new();
        let mut leases = Vec::new();
        for op in ops {
            match op {
                Op::Commit(c, r) => batch.push((c, r)),
                Op::Lease { now, limit, lease_ms, reply } => leases.push((now, limit, lease_ms, reply)),
            }
        }
        write_batch(&mut conn, batch, leases);
        // Under sustained writes the checkpointer's passive checkpoints
        // never catch up, and SQLite starts the WAL over only after one
        // that does: past its bound, the writer truncates it itself,
        // between two batches (a pause of tens of milliseconds, only then).
        // A reader holding an old snapshot makes it wait at most 50 ms; one
        // that could not finish is tried again after a second or once the
        // WAL grew by a little more (so a long reader costs a short wait
        // now and then, and sustained writes still meet the bound).
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        let backing_off = truncate_failed
            .is_some_and(|(at, was)| at.elapsed() < std::time::Duration::from_secs(1) && size < was + WAL_MAX / 8);
        if !backing_off && size > WAL_MAX {
            let _ = conn.busy_timeout(std::time::Duration::from_millis(50));
            // Its row: (busy, WAL frames, frames checkpointed); busy = 1
            // when it could not finish.
            let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
            let _ = conn.busy_timeout(BUSY_TIMEOUT);
            truncate_failed = (!matches!(busy, Ok(0))).then(|| (std::time::Instant::now(), size));
        }
    }
}

/// The WAL's size past which the writer truncates it. Under sustained
/// writes a passive checkpoint never catches up with the writer, so SQLite
/// never starts the WAL over and it grew with the writes (529 MB after
/// 55,000 events); a `TRUNCATE` checkpoint copies the WAL into the database
/// and empties it.
pub(crate) const WAL_MAX: u64 = 32 * 1024 * 1024;

/// Checkpoints the WAL every 200 ms while the store lives. PASSIVE: it
/// copies what no reader still needs and never waits for the writer.
/// Past [`WAL_MAX`] it leaves the checkpoint lock to the writer's
/// truncating checkpoint.
pub(super) fn checkpointer(conn: Connection, wal: std::path::PathBuf, alive: std::sync::Weak<()>) {
    while alive.upgrade().is_some() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_MAX) {
            continue;
        }
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

pub(super) type LeaseOp = (i64, usize, i64, tokio::sync::oneshot::Sender<Result<Vec<Leased>, Error>>);

/// Applies a batch of commits and leases in one transaction (each
/// transaction appends every page it touches to the WAL, so one for the
/// whole batch is what keeps the bytes written per event low). If it fails,
/// each commit is applied on its own so one bad commit cannot fail its
/// neighbours, and the leases are taken after them.
pub(super) fn write_batch(conn: &mut Connection, batch: Vec<(Box<Staged>, Reply)>, leases: Vec<LeaseOp>) {
    let all: Vec<&Staged> = batch.iter().map(|(c, _)| c.as_ref()).collect();
    let together = (|| {
        let tx = conn.transaction()?;
        for c in &all {
            apply(&tx, c)?;
        }
        let leased: Vec<_> =
            leases.iter().map(|(now, limit, lease_ms, _)| lease_jobs(&tx, *now, *limit, *lease_ms)).collect();
        tx.commit()?;
        Ok::<_, Error>(leased)
    })();
    match together {
        Ok(leased) => {
            for (_, reply) in batch {
                if let Some(r) = reply {
                    let _ = r.send(Ok(()));
                }
            }
            for ((.., reply), jobs) in leases.into_iter().zip(leased) {
                let _ = reply.send(jobs);
            }
        }
        Err(_) => {
            for (c, reply) in batch {
                let one = transact(conn, &[c.as_ref()]);
                if let Some(r) = reply {
                    let _ = r.send(one);
                }
            }
            for (now, limit, lease_ms, reply) in leases {
                let _ = reply.send(lease_jobs(conn, now, limit, lease_ms));
            }
        }
    }
}

/// Applies `commits` in one transaction.
pub(super) fn transact(conn: &mut Connection, commits: &[&Staged]) -> Result<(), Error> {
    let tx = conn.transaction()?;
    for c in commits {
        apply(&tx, c)?;
    }
    Ok(tx.commit()?)
}

/// A log entry's detail as stored: an accepted request's body is kept once,
/// in its run (`trigger.raw_body`, the same text, credentials stripped), and
/// read back from there ([`super::log::with_bodies`]). The entry holds the
/// body cut to 16 KiB and marked `…`; the mark records how many characters
/// of the run's body the entry showed and whether it was cut, so the read
/// back is exactly what the entry held. Only when the run in this commit
/// has that body does the entry give its copy up.
fn stored_detail(l: &LogEntry, c: &Commit) -> String {
    let body = (l.kind == EntryKind::Inbound).then(|| l.detail.get("body").and_then(Value::as_str)).flatten();
    let run = l.run_id.as_deref().and_then(|id| c.runs.iter().find(|r| r.id == id));
    let (Some(body), Some(run)) = (body, run) else { return l.detail.to_string() };
    let Some(raw) = raw_body(&run.state) else { return l.detail.to_string() };
    // SQLite's `substr` stops at a NUL: such a body keeps its own copy.
    if body.contains('\0') {
        return l.detail.to_string();
    }
    let (shown, cut) = match body.strip_suffix('…') {
        Some(head) if raw.len() > head.len() && raw.starts_with(head) => (head, true),
        _ if raw == body => (body, false),
        _ => return l.detail.to_string(),
    };
    let mut d = l.detail.clone();
    if let Some(o) = d.as_object_mut() {
        o.remove("body");
        o.insert(BODY_IN_RUN.into(), serde_json::json!({"chars": shown.chars().count(), "cut": cut}));
    }
    d.to_string()
}

/// The `trigger.raw_body` of a run's stored state.
fn raw_body(state: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct State {
        trigger: Trigger,
    }
    #[derive(serde::Deserialize)]
    struct Trigger {
        raw_body: Option<String>,
    }
    serde_json::from_str::<State>(state).ok()?.trigger.raw_body
}

/// The mark of a log entry whose body is its run's.
pub(super) const BODY_IN_RUN: &str = "body_in_run";

/// A commit with its jobs encoded, by the task that made it: the single
/// writer only writes, and a commit waiting in its queue holds each job
/// once, as the text it stores (not the typed job beside it).
pub(crate) struct Staged {
    /// The commit, its jobs and reschedule taken out into the fields below.
    commit: Commit,
    jobs: Vec<StagedJob>,
    /// The rescheduled job: (id, its text, due at).
    reschedule: Option<(String, String, i64)>,
}

/// A job as its row takes it.
struct StagedJob {
    id: String,
    kind: &'static str,
    text: String,
    not_before: i64,
    leased_for: Option<i64>,
    group: Option<String>,
}

impl Staged {
    pub(crate) fn of(mut commit: Commit) -> Self {
        let jobs = std::mem::take(&mut commit.jobs)
            .into_iter()
            .map(|j| StagedJob {
                kind: j.kind().as_str(),
                text: j.payload.text(),
                id: j.id,
                not_before: j.not_before,
                leased_for: j.leased_for,
                group: j.group,
            })
            .collect();
        let reschedule = commit.reschedule.take().map(|(id, job, due)| (id, Payload::Delivery(job).text(), due));
        Staged { commit, jobs, reschedule }
    }
}

pub(super) fn apply(tx: &rusqlite::Transaction<'_>, staged: &Staged) -> Result<(), Error> {
    let c = &staged.commit;
    if let Some(id) = &c.done {
        exec(tx, "DELETE FROM jobs WHERE id = ?1", [id])?;
    }
    if let Some((id, payload, not_before)) = &staged.reschedule {
        exec(
            tx,
            "UPDATE jobs SET payload = ?2, due_at = ?3, leased = 0 WHERE id = ?1",
            params![id, payload, not_before],
        )?;
    }
    let now = crate::now_ms();
    for r in &c.runs {
        exec(
            tx,
            "INSERT INTO runs (id, tenant, flow_id, event_id, status, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (id) DO UPDATE SET status = ?5, state = ?6, updated_at = ?7",
            params![r.id, r.tenant, r.flow_id, r.event_id, r.status, r.state, now],
        )?;
    }
    for j in &staged.jobs {
        let (due, leased) = match j.leased_for {
            Some(ms) => (j.not_before + ms, 1),
            None => (j.not_before, 0),
        };
        exec(
            tx,
            "INSERT OR IGNORE INTO jobs (id, kind, payload, due_at, leased, leases, created_at, grp, ord, run_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7,
                     CASE WHEN ?7 IS NULL THEN NULL
                          ELSE (SELECT IFNULL(MAX(ord), 0) + 1 FROM jobs WHERE grp = ?7) END,
                     CASE WHEN json_valid(?3)
                          THEN COALESCE(json_extract(?3, '$.run_id'), json_extract(?3, '$.delivery.run_id')) END)",
            params![j.id, j.kind, j.text, due, leased, now, j.group],
        )?;
    }
    for l in &c.log {
        exec(
            tx,
            "INSERT INTO log (at, kind, tenant, flow_id, run_id, event_id, delivery_id, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                l.at,
                l.kind.as_str(),
                l.tenant,
                l.flow_id,
                l.run_id,
                l.event_id,
                l.delivery_id,
                l.outcome,
                stored_detail(l, c)
            ],
        )?;
    }
    if let Some((scope, reply, expires)) = &c.idempotency {
        exec(
            tx,
            "INSERT OR REPLACE INTO idempotency (scope, reply, expires_at) VALUES (?1, ?2, ?3)",
            params![scope, reply, expires],
        )?;
    }
    if let Some(e) = &c.event {
        // An expired event of the same id may be published again.
        exec(
            tx,
            "DELETE FROM events WHERE tenant = ?1 AND id = ?2 AND expires_at <= ?3",
            params![e.tenant, e.id, e.at],
        )?;
        exec(
            tx,
            "INSERT INTO events (tenant, id, type, at, doc, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.tenant, e.id, e.kind, e.at, e.doc, e.expires_at],
        )?;
    }
    for s in &c.subscriptions {
        // A change (`prev`) lands only over the version it was computed
        // from, on a row that still exists (it must not bring back a
        // deleted subscription); a new one is inserted.
        let sql = if s.prev.is_some() {
            "UPDATE subscriptions SET status = ?3, doc = ?4, updated_at = ?5, version = ?6
             WHERE id = ?1 AND tenant = ?2 AND (version IS NULL OR version = ?7)"
        } else {
            "INSERT INTO subscriptions (id, tenant, status, doc, updated_at, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET status = ?3, doc = ?4, updated_at = ?5, version = ?6 WHERE ?7 IS NULL"
        };
        let n = exec(tx, sql, params![s.id, s.tenant, s.status, s.doc, now, s.version, s.prev])?;
        if n == 0 {
            return Err(Error::Conflict(format!("subscription {} changed since it was read", s.id)));
        }
    }
    if let Some(d) = &c.dead {
        exec(
            tx,
            "INSERT OR REPLACE INTO dead (delivery_id, at, tenant, flow_id, run_id, reason, job)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![d.delivery_id, now, d.tenant, d.flow_id, d.run_id, d.reason, d.job],
        )?;
    }
    Ok(())
}

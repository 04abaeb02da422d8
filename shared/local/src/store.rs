//! The embedded store: one SQLite file holding runs, the job queue, the
//! request log, idempotency keys and dead deliveries.
//!
//! Every state change that matters is one transaction: a run's new state
//! together with the jobs its effects create and the job that caused it, so a
//! process killed at any instant either did all of it or none of it. The
//! queue is a table ordered by `due_at`: when a job is scheduled (retries
//! survive restarts) or, while a worker holds it, when its lease expires (a
//! job whose worker died becomes due again and is done again:
//! at-least-once). One indexed column keeps taking due jobs O(log n) however
//! long the backlog.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::Error;
pub use hookflow_core::commit::{Commit, DeadDelivery, DeadRow, LogEntry, NewJob, RunRow};
use hookflow_core::subscription::{Event, Subscription};

/// Columns added after the first release, added to older stores on open.
/// `grp`/`ord`: jobs of one group run one at a time, in `ord` order.
const MIGRATIONS: &[(&str, &str, &str)] = &[
    ("jobs", "grp", "ALTER TABLE jobs ADD COLUMN grp TEXT"),
    ("jobs", "ord", "ALTER TABLE jobs ADD COLUMN ord INTEGER"),
    ("subscriptions", "version", "ALTER TABLE subscriptions ADD COLUMN version INTEGER"),
];

const INDEXES: &str = "CREATE INDEX IF NOT EXISTS jobs_grp ON jobs (grp, ord) WHERE grp IS NOT NULL;";

/// A job of a group is due only when no earlier job of its group is left
/// (`j` is the candidate).
const GROUP_HEAD: &str = "(j.grp IS NULL OR NOT EXISTS (SELECT 1 FROM jobs k WHERE k.grp = j.grp AND k.ord < j.ord))";

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 5000;
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, flow_id TEXT NOT NULL, event_id TEXT NOT NULL,
    status TEXT NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL,
    due_at INTEGER NOT NULL, leased INTEGER NOT NULL DEFAULT 0,
    leases INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (due_at);
CREATE TABLE IF NOT EXISTS log (
    seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, kind TEXT NOT NULL,
    tenant TEXT, flow_id TEXT, run_id TEXT, event_id TEXT, delivery_id TEXT, outcome TEXT,
    detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS log_run ON log (run_id);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT PRIMARY KEY, reply TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, tenant TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL, updated_at INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keyrings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    tenant TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, at INTEGER NOT NULL, doc TEXT NOT NULL,
    expires_at INTEGER NOT NULL, PRIMARY KEY (tenant, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_at ON events (tenant, at);
CREATE TABLE IF NOT EXISTS dead (
    delivery_id TEXT PRIMARY KEY, at INTEGER NOT NULL, tenant TEXT NOT NULL, flow_id TEXT NOT NULL,
    run_id TEXT NOT NULL, reason TEXT NOT NULL, job TEXT NOT NULL);
"#;

/// A job taken from the queue.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub kind: String,
    /// The payload as stored (JSON text), parsed by the job's kind.
    pub payload: String,
    /// How many times it has been leased, this time included.
    pub leases: i64,
    /// Its group, if it is ordered within one.
    pub group: Option<String>,
}

/// Which log entries to read.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub flow_id: Option<String>,
    pub run_id: Option<String>,
    /// Only entries at or after this time (ms).
    pub since: i64,
    /// Only failures: halted, retried, dead, rejected.
    pub failed_only: bool,
}

/// Reads a row of `SELECT at, kind, tenant, flow_id, run_id, event_id,
/// delivery_id, outcome, detail FROM log`.
fn log_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogEntry> {
    Ok(LogEntry {
        at: r.get(0)?,
        kind: r.get(1)?,
        tenant: r.get(2)?,
        flow_id: r.get(3)?,
        run_id: r.get(4)?,
        event_id: r.get(5)?,
        delivery_id: r.get(6)?,
        outcome: r.get(7)?,
        detail: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or(Value::Null),
    })
}

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
    writer: std::sync::mpsc::Sender<Op>,
    /// The checkpointer runs while this lives.
    _alive: std::sync::Arc<()>,
}

/// Runs one statement, reusing its prepared form.
fn exec(tx: &rusqlite::Transaction<'_>, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(p)
}

fn db(e: rusqlite::Error) -> Error {
    e.into()
}

/// SQLite's failures by result code: a unique or primary-key constraint is
/// a duplicate (the only unique rows a commit inserts without `OR IGNORE`
/// are published events); everything else is the store not answering.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                Error::Duplicate(e.to_string())
            }
            _ => Error::Unavailable(e.to_string()),
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir/hookflow.db`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Unavailable(format!("{}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("hookflow.db")).map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        for (table, column, sql) in MIGRATIONS {
            let has: bool = conn
                .query_row(
                    &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                    [column],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(db)?
                > 0;
            if !has {
                conn.execute_batch(sql).map_err(db)?;
            }
        }
        conn.execute_batch(INDEXES).map_err(db)?;
        let write_conn = Connection::open(dir.join("hookflow.db")).map_err(db)?;
        // The writer never checkpoints (copying the WAL back into the
        // database and syncing it took 10-20 ms, stalling every commit behind
        // it); a second thread does, without blocking the writer.
        write_conn
            .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA wal_autocheckpoint = 0;")
            .map_err(db)?;
        let checkpoint_conn = Connection::open(dir.join("hookflow.db")).map_err(db)?;
        checkpoint_conn.execute_batch("PRAGMA busy_timeout = 5000;").map_err(db)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let alive = std::sync::Arc::new(());
        std::thread::Builder::new()
            .name("hookflow-store-writer".into())
            .spawn(move || writer(write_conn, rx))
            .map_err(|e| Error::Unavailable(format!("starting the writer: {e}")))?;
        std::thread::Builder::new()
            .name("hookflow-store-checkpoint".into())
            .spawn({
                let alive = std::sync::Arc::downgrade(&alive);
                move || checkpointer(checkpoint_conn, alive)
            })
            .map_err(|e| Error::Unavailable(format!("starting the checkpointer: {e}")))?;
        Ok(Store { conn: Mutex::new(conn), writer: tx, _alive: alive })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (its own
        // transactions roll back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `c` in one transaction, together with the commits other
    /// tasks are making at the same moment (group commit: one WAL append
    /// and one index update for many events).
    pub async fn commit(&self, c: Commit) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(Op::Commit(Box::new(c), Some(tx)))
            .map_err(|_| Error::Unavailable("the store writer has stopped".into()))?;
        rx.await.map_err(|_| Error::Unavailable("the store writer has stopped".into()))?
    }

    /// Queues `c` without waiting for it (log-only writes).
    pub fn commit_detached(&self, c: Commit) {
        let _ = self.writer.send(Op::Commit(Box::new(c), None));
    }
}

type Reply = Option<tokio::sync::oneshot::Sender<Result<(), Error>>>;

/// The writer thread: takes every commit waiting, applies them in one
/// transaction, and answers each. If the batch fails, each commit is applied
/// on its own so one bad commit cannot fail its neighbours.
/// What the writer thread does: commits, and leases (which are writes too:
/// doing them here keeps one writer, with no lock contention between two).
enum Op {
    Commit(Box<Commit>, Reply),
    Lease { now: i64, limit: usize, lease_ms: i64, reply: tokio::sync::oneshot::Sender<Result<Vec<Job>, Error>> },
}

fn lease_jobs(conn: &Connection, now: i64, limit: usize, lease_ms: i64) -> Result<Vec<Job>, Error> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE jobs SET due_at = ?1 + ?3, leased = 1, leases = leases + 1
             WHERE id IN (SELECT id FROM jobs j WHERE due_at <= ?1 AND {GROUP_HEAD} ORDER BY due_at LIMIT ?2)
             RETURNING id, kind, payload, leases, grp"
    ))?;
    let rows = stmt.query_map(params![now, limit as i64, lease_ms], |r| {
        Ok(Job { id: r.get(0)?, kind: r.get(1)?, payload: r.get(2)?, leases: r.get(3)?, group: r.get(4)? })
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?);
    }
    Ok(out)
}

/// How long the writer waits to grow a batch when ops keep coming.
const LINGER: std::time::Duration = std::time::Duration::from_micros(500);

fn writer(conn: Connection, rx: std::sync::mpsc::Receiver<Op>) {
    let mut conn = conn;
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
    }
}

/// Checkpoints the WAL every 200 ms while the store lives. PASSIVE: it
/// copies what no reader still needs and never waits for the writer.
fn checkpointer(conn: Connection, alive: std::sync::Weak<()>) {
    while alive.upgrade().is_some() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

type LeaseOp = (i64, usize, i64, tokio::sync::oneshot::Sender<Result<Vec<Job>, Error>>);

/// Applies a batch of commits and leases in one transaction (each
/// transaction appends every page it touches to the WAL, so one for the
/// whole batch is what keeps the bytes written per event low). If it fails,
/// each commit is applied on its own so one bad commit cannot fail its
/// neighbours, and the leases are taken after them.
fn write_batch(conn: &mut Connection, batch: Vec<(Box<Commit>, Reply)>, leases: Vec<LeaseOp>) {
    let all: Vec<&Commit> = batch.iter().map(|(c, _)| c.as_ref()).collect();
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
fn transact(conn: &mut Connection, commits: &[&Commit]) -> Result<(), Error> {
    let tx = conn.transaction()?;
    for c in commits {
        apply(&tx, c)?;
    }
    Ok(tx.commit()?)
}

fn apply(tx: &rusqlite::Transaction<'_>, c: &Commit) -> Result<(), Error> {
    if let Some(id) = &c.done {
        exec(tx, "DELETE FROM jobs WHERE id = ?1", [id])?;
    }
    if let Some((id, payload, not_before)) = &c.reschedule {
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
    for j in &c.jobs {
        let (due, leased) = match j.leased_for {
            Some(ms) => (j.not_before + ms, 1),
            None => (j.not_before, 0),
        };
        exec(
            tx,
            "INSERT OR IGNORE INTO jobs (id, kind, payload, due_at, leased, leases, created_at, grp, ord)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7,
                     CASE WHEN ?7 IS NULL THEN NULL
                          ELSE (SELECT IFNULL(MAX(ord), 0) + 1 FROM jobs WHERE grp = ?7) END)",
            params![j.id, j.kind.as_str(), j.payload, due, leased, now, j.group],
        )?;
    }
    for l in &c.log {
        exec(
            tx,
            "INSERT INTO log (at, kind, tenant, flow_id, run_id, event_id, delivery_id, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                l.at,
                l.kind,
                l.tenant,
                l.flow_id,
                l.run_id,
                l.event_id,
                l.delivery_id,
                l.outcome,
                l.detail.to_string()
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
        let n = exec(
            tx,
            "INSERT INTO subscriptions (id, tenant, status, doc, updated_at, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET status = ?3, doc = ?4, updated_at = ?5, version = ?6
             WHERE ?7 IS NULL OR subscriptions.version IS NULL OR subscriptions.version = ?7",
            params![s.id, s.tenant, s.status, s.doc, now, s.version, s.prev],
        )?;
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

impl Store {
    /// Makes every leased job due again (at start: no worker holds a lease).
    pub fn release_leases(&self) -> Result<(), Error> {
        let now = crate::now_ms();
        self.conn().execute("UPDATE jobs SET due_at = ?1, leased = 0 WHERE leased = 1", [now]).map(|_| ()).map_err(db)
    }

    /// Leases up to `limit` due jobs for `lease_ms`.
    pub async fn lease(&self, now: i64, limit: usize, lease_ms: i64) -> Result<Vec<Job>, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer
            .send(Op::Lease { now, limit, lease_ms, reply: tx })
            .map_err(|_| Error::Unavailable("the store writer has stopped".into()))?;
        rx.await.map_err(|_| Error::Unavailable("the store writer has stopped".into()))?
    }

    /// When the next job becomes due (ms), if any.
    pub fn next_due(&self) -> Result<Option<i64>, Error> {
        self.conn()
            .query_row(&format!("SELECT MIN(due_at) FROM jobs j WHERE {GROUP_HEAD}"), [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(db)
    }

    /// A subscription by id.
    pub fn subscription(&self, id: &str) -> Result<Option<Subscription>, Error> {
        self.conn()
            .query_row("SELECT doc FROM subscriptions WHERE id = ?1", [id], |r| r.get::<_, String>(0))
            .optional()
            .map_err(db)?
            .map(|s| serde_json::from_str(&s).map_err(|e| Error::Malformed(format!("subscription {id}: {e}"))))
            .transpose()
    }

    /// Subscriptions, oldest first: of one tenant, or all; only active ones
    /// if `active_only`.
    pub fn subscriptions(&self, tenant: Option<&str>, active_only: bool) -> Result<Vec<Subscription>, Error> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, doc FROM subscriptions WHERE (?1 IS NULL OR tenant = ?1) AND (?2 = 0 OR status = 'active')
                 ORDER BY id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![tenant, active_only as i64], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, doc) = row.map_err(db)?;
            out.push(serde_json::from_str(&doc).map_err(|e| Error::Malformed(format!("subscription {id}: {e}")))?);
        }
        Ok(out)
    }

    /// Deletes a subscription and its keyring; whether it existed.
    pub fn delete_subscription(&self, id: &str) -> Result<bool, Error> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let n = tx.execute("DELETE FROM subscriptions WHERE id = ?1", [id]).map_err(db)?;
        tx.execute("DELETE FROM keyrings WHERE name = ?1", [hookflow_core::subscription::keyring_name(id)])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(n > 0)
    }

    /// Writes a subscription's keyring (JSON text).
    pub fn put_keyring(&self, name: &str, value: &str) -> Result<(), Error> {
        self.conn()
            .execute("INSERT OR REPLACE INTO keyrings (name, value) VALUES (?1, ?2)", [name, value])
            .map(|_| ())
            .map_err(db)
    }

    pub fn keyring(&self, name: &str) -> Result<Option<String>, Error> {
        self.conn().query_row("SELECT value FROM keyrings WHERE name = ?1", [name], |r| r.get(0)).optional().map_err(db)
    }

    /// The event `id` of `tenant` if it is still inside its idempotency window.
    pub fn live_event(&self, tenant: &str, id: &str, now: i64) -> Result<Option<Event>, Error> {
        self.conn()
            .query_row(
                "SELECT doc FROM events WHERE tenant = ?1 AND id = ?2 AND expires_at > ?3",
                params![tenant, id, now],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(db)?
            .map(|s| serde_json::from_str(&s).map_err(|e| Error::Malformed(format!("event {id}: {e}"))))
            .transpose()
    }

    /// Events published at or after `since` (ms), oldest first, at most `limit`;
    /// of one tenant or all.
    pub fn events(&self, tenant: Option<&str>, since: i64, limit: usize) -> Result<Vec<Event>, Error> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT doc FROM events WHERE (?1 IS NULL OR tenant = ?1) AND at >= ?2 ORDER BY at, id LIMIT ?3",
            )
            .map_err(db)?;
        let rows = stmt.query_map(params![tenant, since, limit as i64], |r| r.get::<_, String>(0)).map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row.map_err(db)?).map_err(|e| Error::Malformed(format!("event: {e}")))?);
        }
        Ok(out)
    }

    /// Deletes events published before `before` (ms) whose idempotency
    /// window is over; returns how many.
    pub fn prune_events(&self, before: i64, now: i64) -> Result<usize, Error> {
        self.conn().execute("DELETE FROM events WHERE at < ?1 AND expires_at <= ?2", [before, now]).map_err(db)
    }

    /// A run's stored state.
    pub fn run(&self, id: &str) -> Result<Option<Value>, Error> {
        self.conn()
            .query_row("SELECT state FROM runs WHERE id = ?1", [id], |r| r.get::<_, String>(0))
            .optional()
            .map_err(db)?
            .map(|s| serde_json::from_str(&s).map_err(|e| Error::Malformed(e.to_string())))
            .transpose()
    }

    /// The reply stored for an idempotency scope, unless expired.
    pub fn idempotent_reply(&self, scope: &str, now: i64) -> Result<Option<Value>, Error> {
        self.conn()
            .query_row("SELECT reply FROM idempotency WHERE scope = ?1 AND expires_at > ?2", params![scope, now], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(db)?
            .map(|s| serde_json::from_str(&s).map_err(|e| Error::Malformed(e.to_string())))
            .transpose()
    }

    /// Log entries matching `f`, oldest first.
    pub fn query_log(&self, f: &LogFilter) -> Result<Vec<LogEntry>, Error> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT at, kind, tenant, flow_id, run_id, event_id, delivery_id, outcome, detail FROM log
                 WHERE (?1 IS NULL OR flow_id = ?1) AND (?2 IS NULL OR run_id = ?2) AND at >= ?3
                   AND (?4 = 0 OR outcome IN ('halt', 'gone', 'retry', 'failed', 'dead', 'dropped')
                        OR outcome LIKE 'rejected_%')
                 ORDER BY seq",
            )
            .map_err(db)?;
        let rows =
            stmt.query_map(params![f.flow_id, f.run_id, f.since, f.failed_only as i64], log_from_row).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// Deletes log entries older than `before` (ms); returns how many.
    pub fn prune_log(&self, before: i64) -> Result<usize, Error> {
        self.conn().execute("DELETE FROM log WHERE at < ?1", [before]).map_err(db)
    }

    /// Dead deliveries with their jobs: (delivery id, flow id, run id, reason, at, job).
    pub fn dead_jobs(&self, flow_id: Option<&str>) -> Result<Vec<DeadDelivery>, Error> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT delivery_id, tenant, flow_id, run_id, reason, at, job FROM dead
                 WHERE ?1 IS NULL OR flow_id = ?1 ORDER BY at",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([flow_id], |r| {
                Ok(DeadDelivery {
                    row: DeadRow {
                        delivery_id: r.get(0)?,
                        tenant: r.get(1)?,
                        flow_id: r.get(2)?,
                        run_id: r.get(3)?,
                        reason: r.get(4)?,
                        job: r.get(6)?,
                    },
                    at: r.get(5)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// Queues a dead delivery again (same `webhook-id`, attempts from zero)
    /// and removes it from the dead list, in one transaction.
    pub fn replay(&self, dead: &DeadDelivery) -> Result<(), Error> {
        let (job, entry) = dead
            .row
            .replay(crate::now_ms())
            .map_err(|e| Error::Malformed(format!("dead delivery {}: {e}", dead.row.delivery_id)))?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        exec(
            &tx,
            "INSERT INTO jobs (id, kind, payload, due_at, created_at) VALUES (?1, 'delivery', ?2, ?3, ?3)",
            params![job.id, job.payload, job.not_before],
        )
        .map_err(db)?;
        exec(&tx, "DELETE FROM dead WHERE delivery_id = ?1", [&dead.row.delivery_id]).map_err(db)?;
        exec(
            &tx,
            "INSERT INTO log (at, kind, tenant, flow_id, run_id, delivery_id, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '{}')",
            params![entry.at, entry.kind, entry.tenant, entry.flow_id, entry.run_id, entry.delivery_id, entry.outcome],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use hookflow_core::commit::{EventRow, JobKind};

    use super::*;

    fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("hookflow-store-{}", uuid::Uuid::now_v7().simple()));
        (Store::open(&dir).unwrap(), dir)
    }

    fn job(id: &str, group: Option<&str>, due: i64) -> NewJob {
        NewJob {
            id: id.into(),
            kind: JobKind::Delivery,
            payload: "{}".into(),
            not_before: due,
            tenant: "t".into(),
            leased_for: None,
            group: group.map(Into::into),
        }
    }

    fn ids(jobs: &[Job]) -> Vec<&str> {
        let mut v: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_group_is_leased_one_job_at_a_time_in_insertion_order() {
        let (s, dir) = store();
        // g:2 is due before g:1, but g:1 was added first.
        let jobs =
            vec![job("g1", Some("g"), 5), job("g2", Some("g"), 1), job("h1", Some("h"), 1), job("free", None, 1)];
        s.commit(Commit { jobs, ..Default::default() }).await.unwrap();
        assert_eq!(ids(&s.lease(10, 10, 1_000).await.unwrap()), ["free", "g1", "h1"]);
        assert!(s.lease(20, 10, 1_000).await.unwrap().is_empty(), "g2 waits while g1 is leased");
        // A retry of g1 (due later) keeps g2 waiting.
        s.commit(Commit { reschedule: Some(("g1".into(), "{}".into(), 500)), ..Default::default() }).await.unwrap();
        assert!(s.lease(30, 10, 1_000).await.unwrap().is_empty());
        assert_eq!(s.next_due().unwrap(), Some(500), "the next due is the group's head, not g2");
        s.commit(Commit { done: Some("g1".into()), ..Default::default() }).await.unwrap();
        assert_eq!(ids(&s.lease(40, 10, 1_000).await.unwrap()), ["g2"]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_subscription_change_lands_only_over_the_version_it_was_computed_from() {
        use hookflow_core::commit::SubscriptionRow;
        use hookflow_core::subscription::NewSubscription;
        let (s, dir) = store();
        let new = NewSubscription {
            url: "https://r.example/h".into(),
            event_types: vec!["a.b".into()],
            ..Default::default()
        };
        let (sub, _) = new.create(10).unwrap();
        let write = |row: SubscriptionRow| Commit { subscriptions: vec![row], ..Default::default() };
        s.commit(write(SubscriptionRow::of(&sub))).await.unwrap();
        let mut changed = sub.clone();
        changed.updated_at = 20;
        let err = s.commit(write(SubscriptionRow::replacing(&changed, 5))).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        s.commit(write(SubscriptionRow::replacing(&changed, 10))).await.unwrap();
        assert_eq!(s.subscription(&sub.id).unwrap().unwrap().updated_at, 20);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn an_event_id_is_refused_while_it_is_live() {
        let (s, dir) = store();
        let row = |at: i64| EventRow {
            tenant: "t".into(),
            id: "e1".into(),
            kind: "a.b".into(),
            at,
            doc: format!(r#"{{"id":"e1","tenant":"t","type":"a.b","at":{at},"data":null}}"#),
            expires_at: at + 100,
        };
        let with_job = |at: i64| Commit {
            event: Some(row(at)),
            jobs: vec![job(&format!("d{at}"), None, at)],
            ..Default::default()
        };
        s.commit(with_job(0)).await.unwrap();
        let err = s.commit(with_job(50)).await.unwrap_err();
        assert!(matches!(err, Error::Duplicate(_)), "{err}");
        assert_eq!(s.lease(60, 10, 1_000).await.unwrap().len(), 1, "the refused commit wrote no job");
        assert!(s.live_event("t", "e1", 99).unwrap().is_some());
        assert!(s.live_event("t", "e1", 100).unwrap().is_none());
        s.commit(with_job(150)).await.unwrap();
        std::fs::remove_dir_all(dir).ok();
    }
}

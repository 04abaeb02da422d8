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
//!
//! One concern a file: `writer` (the writer thread, group commit, the
//! checkpointer), `jobs` (the queue and its leases), `runs`, `log`,
//! `dead`, `subscriptions`, `events`. This file holds the schema, opening,
//! and the commit calls.

use std::path::Path;
use std::sync::Mutex;

use hookflow_core::subscription::{Event, Subscription};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::Error;

mod dead;
mod events;
mod flows;
mod jobs;
mod log;
mod runs;
mod sealed;
mod subscriptions;
mod writer;

pub use hookflow_core::commit::LogFilter;
pub use hookflow_core::commit::{Commit, DeadDelivery, DeadRow, LogEntry, NewJob, RunRow};
pub use jobs::{Job, LEASE_MS, Leased, Undecodable};
use writer::{Op, Staged, checkpointer};

/// Columns added after the first release, added to older stores on open.
/// `grp`/`ord`: jobs of one group run one at a time, in `ord` order.
const MIGRATIONS: &[(&str, &str, &str)] = &[
    ("jobs", "grp", "ALTER TABLE jobs ADD COLUMN grp TEXT"),
    ("jobs", "ord", "ALTER TABLE jobs ADD COLUMN ord INTEGER"),
    ("subscriptions", "version", "ALTER TABLE subscriptions ADD COLUMN version INTEGER"),
    // The run a job belongs to, so pruning keeps a run any job still needs
    // (`Store::prune_runs`); jobs without it are filled in at each start.
    ("jobs", "run_id", "ALTER TABLE jobs ADD COLUMN run_id TEXT"),
];

const INDEXES: &str = "CREATE INDEX IF NOT EXISTS jobs_grp ON jobs (grp, ord) WHERE grp IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_run ON jobs (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_finished ON runs (updated_at) WHERE status IN ('succeeded', 'failed');
CREATE INDEX IF NOT EXISTS dead_run ON dead (run_id);
CREATE INDEX IF NOT EXISTS dead_at ON dead (at, delivery_id);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);";

/// Indexes built only by the store's own process (under the directory's
/// lock): a large log's index is not built by a read command beside a
/// running `hookflow dev`, which would hold its writer up. By time,
/// covering what the log's summary counts (`Store::stats` reads no row but
/// a failed attempt's); it replaces `log_at (at)`.
const OWNER_INDEXES: &str =
    "CREATE INDEX IF NOT EXISTS log_at_kind ON log (at, kind, outcome, event_id, tenant, flow_id);
DROP INDEX IF EXISTS log_at;";

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
CREATE TABLE IF NOT EXISTS flows (
    version TEXT PRIMARY KEY, tenant TEXT NOT NULL, flow_id TEXT NOT NULL, file TEXT NOT NULL, text TEXT NOT NULL,
    at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead (
    delivery_id TEXT PRIMARY KEY, at INTEGER NOT NULL, tenant TEXT NOT NULL, flow_id TEXT NOT NULL,
    run_id TEXT NOT NULL, reason TEXT NOT NULL, job TEXT NOT NULL);
"#;

/// The writer's connection. `synchronous = FULL`: the WAL is synced at
/// every commit before the commit is answered (one sync a group commit,
/// however many events it holds), so a request answered 2xx survives an
/// OS crash or a power loss, not only the process dying (all `NORMAL`
/// promises: its last commits may roll back). The cost is measured in
/// docs/PERFORMANCE.md. The writer checkpoints only to bound the WAL
/// (copying the WAL back into the database and syncing it took 10-20 ms,
/// stalling every commit behind it): a second thread does it otherwise,
/// without blocking the writer ([`writer::WAL_MAX`]).
fn writer_connection(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path).map_err(db)?;
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0;").map_err(db)?;
    conn.busy_timeout(writer::BUSY_TIMEOUT).map_err(db)?;
    Ok(conn)
}

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct Store {
    conn: Mutex<Connection>,
    writer: std::sync::mpsc::Sender<Op>,
    /// The checkpointer runs while this lives.
    _alive: std::sync::Arc<()>,
    /// The data directory's lock, held while the store is open (none for
    /// a store opened beside the running one).
    _lock: Option<std::fs::File>,
    /// What keyrings are sealed with ([`sealed`]).
    sealer: Box<sealed::Sealer>,
}

/// The data directory, made owner-only when this creates it, and locked:
/// one process at a time (a second `hookflow dev` on the same directory
/// would release the first one's leases and send its in-flight work again).
/// Its database file is owner-only (SQLite gives the WAL and shared-memory
/// files the database's mode): it holds subscriptions' signing keys.
fn claim_dir(dir: &Path) -> Result<std::fs::File, Error> {
    let unusable = |e: std::io::Error| Error::Config(format!("data directory {}: {e}", dir.display()));
    // A directory that already held a store (not `--data .` or `/tmp`,
    // which are someone else's too): made owner-only below.
    let restored = dir.join("hookflow.db").exists();
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(unusable)?;
    }
    let owner_only = |path: &Path| -> Result<std::fs::File, Error> {
        let mut o = std::fs::OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let f = o.open(path).map_err(unusable)?;
        #[cfg(unix)]
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(unusable)?;
        Ok(f)
    };
    let lock = owner_only(&dir.join("hookflow.lock"))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::Config(format!(
                "another hookflow dev is using the data directory {} (it holds {}): stop it first, \
                 or give this one its own --data directory",
                dir.display(),
                dir.join("hookflow.lock").display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(unusable(e)),
    }
    owner_only(&dir.join("hookflow.db"))?;
    // Owner-only whatever a copy or a restore left: the directory, the
    // database's journals (the key file is checked, not changed:
    // `sealed::Sealer::open`).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if restored {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(unusable)?;
        }
        for journal in ["hookflow.db-wal", "hookflow.db-shm"] {
            let path = dir.join(journal);
            if path.exists() {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(unusable)?;
            }
        }
    }
    Ok(lock)
}

/// Runs one statement, reusing its prepared form.
fn exec(tx: &rusqlite::Transaction<'_>, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(p)
}

fn db(e: rusqlite::Error) -> Error {
    e.into()
}

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

/// Seals the keyrings stored before keyrings were sealed (each only if
/// unchanged since read).
fn seal_plain_keyrings(conn: &Connection, sealer: &sealed::Sealer) -> Result<(), Error> {
    let plain: Vec<(String, String)> = conn
        .prepare("SELECT name, value FROM keyrings")
        .and_then(|mut st| st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .map_err(db)?;
    for (name, value) in plain.into_iter().filter(|(_, v)| !sealed::Sealer::is_sealed(v)) {
        let sealed = sealer.seal(&name, &value)?;
        conn.execute("UPDATE keyrings SET value = ?2 WHERE name = ?1 AND value = ?3", [&name, &sealed, &value])
            .map_err(db)?;
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the store in `dir/hookflow.db` for the process
    /// that runs it (`hookflow dev`): the directory is locked while the
    /// store is open ([`claim_dir`]).
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let lock = claim_dir(dir)?;
        Self::open_with(dir, Some(lock))
    }

    /// Opens the store beside the process that runs it, without its lock:
    /// for the commands that read it (`hookflow logs`, `runs`) or queue a
    /// replay while `hookflow dev` runs.
    pub fn open_beside(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Unavailable(format!("{}: {e}", dir.display())))?;
        Self::open_with(dir, None)
    }

    fn open_with(dir: &Path, lock: Option<std::fs::File>) -> Result<Self, Error> {
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
        if lock.is_some() {
            conn.execute_batch(OWNER_INDEXES).map_err(db)?;
        }
        // The key is made by the store's own process, and only while no
        // keyring is sealed (a lost key is not silently replaced); a store
        // opened beside it writes no key and seals nothing.
        let missing = if lock.is_some() {
            let sealed: i64 = conn
                .query_row("SELECT COUNT(*) FROM keyrings WHERE value LIKE 'sealed:%'", [], |r| r.get(0))
                .map_err(db)?;
            if sealed > 0 { sealed::Missing::Refuse { sealed: sealed as usize } } else { sealed::Missing::Make }
        } else {
            sealed::Missing::Absent
        };
        let sealer = Box::new(sealed::Sealer::open(dir, missing)?);
        if lock.is_some() {
            seal_plain_keyrings(&conn, &sealer)?;
            // Jobs queued without their run (before the column, or by an
            // older `hookflow dev` after a newer command added it): named
            // now, at every start, so pruning never takes a run under them.
            conn.execute_batch(
                "UPDATE jobs SET run_id = COALESCE(json_extract(payload, '$.run_id'), \
                 json_extract(payload, '$.delivery.run_id')) WHERE run_id IS NULL AND json_valid(payload);",
            )
            .map_err(db)?;
        }
        let write_conn = writer_connection(&dir.join("hookflow.db"))?;
        let checkpoint_conn = Connection::open(dir.join("hookflow.db")).map_err(db)?;
        checkpoint_conn.execute_batch("PRAGMA busy_timeout = 5000;").map_err(db)?;
        let wal = dir.join("hookflow.db-wal");
        let (tx, rx) = std::sync::mpsc::channel();
        let alive = std::sync::Arc::new(());
        std::thread::Builder::new()
            .name("hookflow-store-writer".into())
            .spawn({
                let wal = wal.clone();
                move || writer::writer(write_conn, wal, rx)
            })
            .map_err(|e| Error::Unavailable(format!("starting the writer: {e}")))?;
        std::thread::Builder::new()
            .name("hookflow-store-checkpoint".into())
            .spawn({
                let alive = std::sync::Arc::downgrade(&alive);
                move || checkpointer(checkpoint_conn, wal, alive)
            })
            .map_err(|e| Error::Unavailable(format!("starting the checkpointer: {e}")))?;
        Ok(Store { conn: Mutex::new(conn), writer: tx, _alive: alive, _lock: lock, sealer })
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
            .send(Op::Commit(Box::new(Staged::of(c)), Some(tx)))
            .map_err(|_| Error::Unavailable("the store writer has stopped".into()))?;
        rx.await.map_err(|_| Error::Unavailable("the store writer has stopped".into()))?
    }

    /// Queues `c` without waiting for it (log-only writes).
    pub fn commit_detached(&self, c: Commit) {
        let _ = self.writer.send(Op::Commit(Box::new(Staged::of(c)), None));
    }
}

#[cfg(test)]
mod tests {
    use hookflow_core::commit::{EventRow, Payload};
    use hookflow_core::subscription::sample_delivery;

    use super::*;

    fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("hookflow-store-{}", uuid::Uuid::now_v7().simple()));
        (Store::open(&dir).unwrap(), dir)
    }

    #[test]
    fn keyrings_are_sealed_in_the_database_and_ones_stored_plain_are_sealed_on_open() {
        let (store, dir) = store();
        let ring = r#"{"keys":[{"secret":"whsec_c2VjcmV0LXZhbHVlLTEyMzQ1Njc4OTA="}]}"#;
        store.put_keyring("subscriptions/sub_a", ring).unwrap();
        // One stored before keyrings were sealed.
        store
            .conn()
            .execute("INSERT INTO keyrings (name, value) VALUES ('subscriptions/sub_old', ?1)", [ring])
            .unwrap();
        assert_eq!(store.keyring("subscriptions/sub_a").unwrap().as_deref(), Some(ring));
        assert_eq!(store.keyring("subscriptions/sub_old").unwrap().as_deref(), Some(ring), "read as it is");
        drop(store);
        let store = Store::open(&dir).unwrap();
        let raw: Vec<String> = store
            .conn()
            .prepare("SELECT value FROM keyrings")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(raw.len(), 2);
        assert!(raw.iter().all(|v| sealed::Sealer::is_sealed(v) && !v.contains("whsec_")), "{raw:?}");
        assert_eq!(store.keyring("subscriptions/sub_old").unwrap().as_deref(), Some(ring));
        // Beside the running store: the same keys, nothing written.
        let beside = Store::open_beside(&dir).unwrap();
        assert_eq!(beside.keyring("subscriptions/sub_a").unwrap().as_deref(), Some(ring));
        drop((store, beside));
        // The key lost: the store refuses to start (a new key would open
        // none of them), naming the file, and makes none.
        let key = std::fs::read(dir.join(sealed::KEY_FILE)).unwrap();
        std::fs::remove_file(dir.join(sealed::KEY_FILE)).unwrap();
        let err = Store::open(&dir).err().expect("refused").to_string();
        assert!(err.contains("keyring.key") && err.contains("2 subscription keyring"), "{err}");
        assert!(!dir.join(sealed::KEY_FILE).exists());
        // Beside it, with no key: still no key made, the rows unopened.
        let beside = Store::open_beside(&dir).unwrap();
        assert!(matches!(beside.keyring("subscriptions/sub_a"), Err(Error::Config(_))));
        assert!(!dir.join(sealed::KEY_FILE).exists());
        drop(beside);
        // Another key: the database alone does not open them (a typed
        // error the dispatcher treats as permanent).
        let other = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
        write_key(&dir, other.as_bytes());
        let store = Store::open(&dir).unwrap();
        let err = store.keyring("subscriptions/sub_a").unwrap_err();
        assert!(matches!(&err, Error::Malformed(m) if m.contains("keyring.key")), "{err}");
        drop(store);
        write_key(&dir, &key);
        assert_eq!(Store::open(&dir).unwrap().keyring("subscriptions/sub_a").unwrap().as_deref(), Some(ring));
    }

    /// Puts a key file back as a restore would: owner-only.
    fn write_key(dir: &Path, bytes: &[u8]) {
        std::fs::write(dir.join(sealed::KEY_FILE), bytes).unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(dir.join(sealed::KEY_FILE), std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }

    /// A data directory restored with 755 and its files 644 is made owner
    /// only again on start; a key file others can read is refused, naming
    /// the `chmod`.
    #[cfg(unix)]
    #[test]
    fn a_restored_data_directory_is_made_owner_only_and_a_readable_key_file_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (store, dir) = store();
        store.put_keyring("subscriptions/sub_a", "{}").unwrap();
        drop(store);
        let set = |p: &Path, mode: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        set(&dir, 0o755);
        for f in ["hookflow.db", "hookflow.db-wal", "hookflow.db-shm"] {
            std::fs::OpenOptions::new().create(true).append(true).open(dir.join(f)).unwrap();
            set(&dir.join(f), 0o644);
        }
        set(&dir.join(sealed::KEY_FILE), 0o644);
        let err = Store::open(&dir).err().expect("a key file others can read is refused").to_string();
        assert!(err.contains("keyring.key") && err.contains("chmod 600"), "{err}");
        set(&dir.join(sealed::KEY_FILE), 0o600);
        let store = Store::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        for f in ["hookflow.db", "hookflow.db-wal", "hookflow.db-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        drop(store);
        std::fs::remove_dir_all(dir).ok();
        // A directory that held no store (`--data .`) is someone else's
        // too: left as it is; the store's own files are owner-only.
        let shared = std::env::temp_dir().join(format!("hookflow-shared-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir(&shared).unwrap();
        set(&shared, 0o755);
        let store = Store::open(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755);
        assert_eq!(mode(&shared.join("hookflow.db")), 0o600);
        drop(store);
        std::fs::remove_dir_all(shared).ok();
    }

    #[test]
    fn the_data_directory_is_owner_only_and_one_process_at_a_time() {
        let (first, dir) = store();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700, "the directory it created");
            assert_eq!(mode(&dir.join("hookflow.db")), 0o600, "the database holds keyrings");
        }
        let err = Store::open(&dir).err().expect("a second store on the same directory");
        assert!(err.to_string().contains("another hookflow dev is using the data directory"), "{err}");
        drop(first);
        Store::open(&dir).expect("free again once the first is closed");
    }

    fn job(id: &str, group: Option<&str>, due: i64) -> NewJob {
        NewJob {
            id: id.into(),
            payload: Payload::Delivery(sample_delivery("r", "")),
            not_before: due,
            tenant: "t".into(),
            leased_for: None,
            group: group.map(Into::into),
        }
    }

    fn ids(jobs: &[Leased]) -> Vec<&str> {
        let mut v: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_job_is_decoded_once_when_leased_and_one_that_cannot_be_read_says_why() {
        let (s, dir) = store();
        let written = job("d:ok", None, 1);
        s.commit(Commit { jobs: vec![written.clone()], ..Default::default() }).await.unwrap();
        s.insert_raw_job("r:bad", "run", "{\"run_id\": 7");
        s.insert_raw_job("x:odd", "teleport", "{}");
        let mut leased: Vec<Job> = s.lease(10, 10, 1_000).await.unwrap().into_iter().map(Leased::decode).collect();
        leased.sort_by(|a, b| a.id.cmp(&b.id));
        let [ok, bad, odd] = &leased[..] else { panic!("{leased:?}") };
        assert_eq!(ok.payload, Ok(written.payload), "read back as written");
        let bad = bad.payload.as_ref().unwrap_err();
        assert_eq!((bad.kind.as_str(), bad.text.as_str()), ("run", "{\"run_id\": 7"));
        assert!(bad.error.contains("line 1"), "{}", bad.error);
        assert!(odd.payload.as_ref().unwrap_err().error.contains("unknown job kind `teleport`"));
        std::fs::remove_dir_all(dir).ok();
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
        let again = sample_delivery("r", "");
        s.commit(Commit { reschedule: Some(("g1".into(), again, 500)), ..Default::default() }).await.unwrap();
        assert!(s.lease(30, 10, 1_000).await.unwrap().is_empty());
        assert_eq!(s.next_due().unwrap(), Some(500), "the next due is the group's head, not g2");
        s.commit(Commit { done: Some("g1".into()), ..Default::default() }).await.unwrap();
        assert_eq!(ids(&s.lease(40, 10, 1_000).await.unwrap()), ["g2"]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_writer_syncs_each_commit_to_disk_before_it_is_answered() {
        // FULL (2): an OS crash or power loss cannot roll back a commit that
        // answered a caller; NORMAL (1) promised that for a process crash
        // only.
        let (_s, dir) = store();
        let conn = writer_connection(&dir.join("hookflow.db")).unwrap();
        assert_eq!(conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)).unwrap(), 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_job_in_flight_for_its_longest_attempt_is_not_leased_again() {
        let (s, dir) = store();
        s.commit(Commit { jobs: vec![job("slow", None, 1)], ..Default::default() }).await.unwrap();
        let lease = LEASE_MS;
        assert_eq!(ids(&s.lease(10, 10, lease).await.unwrap()), ["slow"]);
        // Its attempt may take the longest step timeout, then its secrets
        // and its commit some seconds more: still in flight, not sent twice.
        let in_flight = 10 + hookflow_core::flow::MAX_STEP_TIMEOUT.as_millis() as i64 + 30_000;
        assert!(s.lease(in_flight, 10, lease).await.unwrap().is_empty(), "leased again while in flight");
        assert_eq!(ids(&s.lease(10 + lease + 1, 10, lease).await.unwrap()), ["slow"], "a lost worker's job comes back");
        std::fs::remove_dir_all(dir).ok();
    }

    /// About 200 MB appended to the WAL by commits that never let up (as
    /// under sustained traffic): the WAL file stays within its bound, twice
    /// [`writer::WAL_MAX`] (what the writer appends between two checks
    /// included). Without the truncating checkpoint it grew with the writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_within_its_bound_under_sustained_writes() {
        use hookflow_core::commit::NewJob;
        let (s, dir) = store();
        let base = sample_delivery("r", "");
        let s = std::sync::Arc::new(s);
        let wal = dir.join("hookflow.db-wal");
        let pad: String = (0..4096).map(|i| char::from(b'a' + (i * 7 % 26) as u8)).collect();
        let mut largest = 0;
        for round in 0..80 {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..400 {
                let (s, mut job) = (s.clone(), base.clone());
                job.delivery.request.body = Some(format!("{pad}{round}-{i}"));
                set.spawn(async move {
                    let job = NewJob {
                        id: format!("j{round}-{i}"),
                        payload: Payload::Delivery(job),
                        not_before: i64::MAX,
                        tenant: "t".into(),
                        leased_for: None,
                        group: None,
                    };
                    s.commit(Commit { jobs: vec![job], ..Default::default() }).await
                });
            }
            while let Some(done) = set.join_next().await {
                done.unwrap().unwrap();
            }
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        let written = std::fs::metadata(dir.join("hookflow.db")).unwrap().len();
        assert!(written > BOUND, "the test wrote enough to pass the bound: {written} bytes");
        assert!(largest <= BOUND, "the WAL reached {largest} bytes (bound {BOUND})");
        std::fs::remove_dir_all(dir).ok();
    }

    const BOUND: u64 = 2 * writer::WAL_MAX;

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
        // Deleted meanwhile: a change computed over it does not bring it back.
        assert!(s.delete_subscription(&sub.id).unwrap());
        changed.updated_at = 30;
        let err = s.commit(write(SubscriptionRow::replacing(&changed, 20))).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(s.subscription(&sub.id).unwrap().is_none());
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

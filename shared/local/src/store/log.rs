//! The request log: filtered queries, pruning.

use super::*;

/// Which log entries to read.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub flow_id: Option<String>,
    pub run_id: Option<String>,
    /// Only entries at or after this time (ms).
    pub since: i64,
    /// Only failures: halted, retried, dead, rejected.
    pub failed_only: bool,
    pub tenant: Option<String>,
    pub event_id: Option<String>,
    /// Only the newest this many (all when `None`).
    pub limit: Option<usize>,
}

/// Entries deleted in one transaction by [`Store::prune_log`]: the writer
/// and the readers wait at most that long for it.
const PRUNE_CHUNK: i64 = 1_000;

/// Reads a row of `SELECT at, kind, tenant, flow_id, run_id, event_id,
/// delivery_id, outcome, detail FROM log`.
pub(super) fn log_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogEntry> {
    Ok(LogEntry {
        at: r.get(0)?,
        kind: hookflow_core::commit::EntryKind::parse(&r.get::<_, String>(1)?),
        tenant: r.get(2)?,
        flow_id: r.get(3)?,
        run_id: r.get(4)?,
        event_id: r.get(5)?,
        delivery_id: r.get(6)?,
        outcome: r.get(7)?,
        detail: serde_json::from_str(&r.get::<_, String>(8)?).unwrap_or(Value::Null),
    })
}

impl Store {
    /// Log entries matching `f`, oldest first: the newest `f.limit` of
    /// them, read newest first and stopped there (the log is never loaded
    /// whole to be cut afterwards). Only the filters given are in the SQL,
    /// so a run's timeline goes through the `run_id` index.
    pub fn query_log(&self, f: &LogFilter) -> Result<Vec<LogEntry>, Error> {
        let mut sql = String::from(
            "SELECT at, kind, tenant, flow_id, run_id, event_id, delivery_id, outcome, detail FROM log WHERE at >= ?",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![f.since.into()];
        for (column, value) in
            [("run_id", &f.run_id), ("flow_id", &f.flow_id), ("tenant", &f.tenant), ("event_id", &f.event_id)]
        {
            if let Some(v) = value {
                sql.push_str(&format!(" AND {column} = ?"));
                args.push(v.clone().into());
            }
        }
        if f.failed_only {
            sql.push_str(
                " AND (outcome IN ('halt', 'gone', 'retry', 'failed', 'dead', 'dropped') OR outcome LIKE 'rejected_%')",
            );
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        args.push(f.limit.map_or(-1, |n| n.min(i64::MAX as usize) as i64).into());
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), log_from_row).map_err(db)?;
        let mut entries: Vec<LogEntry> = rows.collect::<Result<_, _>>().map_err(db)?;
        entries.reverse();
        Ok(entries)
    }

    /// Deletes log entries older than `before` (ms); returns how many. In
    /// chunks of [`PRUNE_CHUNK`] through the `at` index, each its own short
    /// transaction with the read connection released between them, so
    /// neither the writer nor a request's read waits on a whole day's
    /// delete.
    pub fn prune_log(&self, before: i64) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let n = self
                .conn()
                .prepare_cached("DELETE FROM log WHERE seq IN (SELECT seq FROM log WHERE at < ?1 ORDER BY at LIMIT ?2)")
                .and_then(|mut stmt| stmt.execute(params![before, PRUNE_CHUNK]))
                .map_err(db)?;
            total += n;
            if (n as i64) < PRUNE_CHUNK {
                return Ok(total);
            }
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use hookflow_core::commit::{Commit, EntryKind};

    use super::*;

    fn entry(at: i64, tenant: &str) -> LogEntry {
        LogEntry {
            at,
            kind: EntryKind::Inbound,
            tenant: Some(tenant.into()),
            outcome: Some("accepted".into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_newest_entries_are_read_without_the_rest_and_pruning_uses_the_time_index() {
        let dir = std::env::temp_dir().join(format!("hookflow-log-{}", uuid::Uuid::now_v7().simple()));
        let s = Store::open(&dir).unwrap();
        let log = (0..2_500).map(|i| entry(i, if i % 2 == 0 { "a" } else { "b" })).collect();
        s.commit(Commit { log, ..Default::default() }).await.unwrap();

        let f = LogFilter { tenant: Some("a".into()), limit: Some(3), ..Default::default() };
        let got: Vec<i64> = s.query_log(&f).unwrap().iter().map(|e| e.at).collect();
        assert_eq!(got, [2_494, 2_496, 2_498], "the newest three of tenant a, oldest first");

        let plan = |sql: &str| -> String {
            s.conn()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map([], |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("; ")
        };
        let prune = plan("SELECT seq FROM log WHERE at < 10 ORDER BY at LIMIT 1000");
        assert!(prune.contains("log_at"), "the prune scans the whole log: {prune}");

        let run = plan("SELECT seq FROM log WHERE at >= 0 AND run_id = 'r' ORDER BY seq DESC");
        assert!(run.contains("log_run"), "a run's timeline scans the whole log: {run}");

        assert_eq!(s.prune_log(2_100).unwrap(), 2_100, "in chunks, all of them");
        assert_eq!(s.query_log(&LogFilter::default()).unwrap().len(), 400);
        std::fs::remove_dir_all(dir).ok();
    }
}

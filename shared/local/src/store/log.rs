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
}

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
}

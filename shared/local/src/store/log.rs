//! The request log: filtered queries, pruning.

use super::*;

/// The filter as SQL (`WHERE` without the word) and its arguments: only
/// the filters given, so a run's timeline goes through the `run_id`
/// index and a tail after a `seq` through the primary key.
fn sql(f: &LogFilter) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = String::from("1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    // No lower bound in time (a tail by `seq`, a run's timeline): none
    // in the SQL either, which could lead the planner to the `at` index.
    if f.since > 0 {
        sql.push_str(" AND at >= ?");
        args.push(f.since.into());
    }
    if let Some(after) = f.after_seq {
        sql.push_str(" AND seq > ?");
        args.push(after.into());
    }
    if let Some(upto) = f.upto_seq {
        sql.push_str(" AND seq <= ?");
        args.push(upto.into());
    }
    if let Some(until) = f.until {
        sql.push_str(" AND at < ?");
        args.push(until.into());
    }
    for (column, value) in
        [("run_id", &f.run_id), ("flow_id", &f.flow_id), ("tenant", &f.tenant), ("event_id", &f.event_id)]
    {
        if let Some(v) = value {
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(v.clone().into());
        }
    }
    if let Some(sub) = &f.subscription_id {
        sql.push_str(" AND kind = 'attempt' AND json_extract(detail, '$.subscription_id') = ?");
        args.push(sub.clone().into());
    }
    if f.failed_only {
        sql.push_str(
            " AND (outcome IN ('halt', 'gone', 'retry', 'failed', 'dead', 'dropped') OR outcome LIKE 'rejected_%')",
        );
    }
    (sql, args)
}

/// Entries deleted in one transaction by [`Store::prune_log`]: the writer
/// and the readers wait at most that long for it.
const PRUNE_CHUNK: i64 = 1_000;

/// Reads a row of `SELECT at, kind, tenant, flow_id, run_id, event_id,
/// delivery_id, outcome, detail, seq FROM log`.
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
        seq: Some(r.get(9)?),
    })
}

/// Puts back the bodies kept in their runs ([`super::writer`]'s
/// `stored_detail`): one read of the runs a chunk of entries needs (500
/// at a time), of at most the characters the entries showed (SQLite's
/// `substr` counts characters, as the mark does; never the whole body past
/// the entry's 16 KiB), each entry then cut to its own. A run no longer
/// there leaves the entry without its body.
pub(super) fn with_bodies(conn: &Connection, entries: &mut [LogEntry]) -> Result<(), Error> {
    const CHUNK: usize = 500;
    // (entry index, run, characters, cut) of each entry whose body is kept.
    let mut wanted: Vec<(usize, String, usize, bool)> = Vec::new();
    for (i, e) in entries.iter_mut().enumerate() {
        let Some(o) = e.detail.as_object_mut() else { continue };
        let Some(mark) = o.remove(super::writer::BODY_IN_RUN) else { continue };
        let Some(run) = e.run_id.clone() else { continue };
        let chars = mark.get("chars").and_then(Value::as_u64).unwrap_or(0) as usize;
        let cut = mark.get("cut").and_then(Value::as_bool).unwrap_or(false);
        wanted.push((i, run, chars, cut));
    }
    for chunk in wanted.chunks(CHUNK) {
        let most = chunk.iter().map(|w| w.2).max().unwrap_or(0) as i64;
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT id, substr(json_extract(state, '$.trigger.raw_body'), 1, ?) FROM runs WHERE id IN ({marks})"
        );
        let mut args: Vec<rusqlite::types::Value> = vec![most.into()];
        args.extend(chunk.iter().map(|w| rusqlite::types::Value::from(w.1.clone())));
        let mut stmt = conn.prepare(&sql).map_err(db)?;
        let bodies: std::collections::HashMap<String, String> = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(db)?
            .filter_map(|r| match r {
                Ok((id, Some(body))) => Some(Ok((id, body))),
                Ok((_, None)) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map_err(db)?;
        for (i, run, chars, cut) in chunk {
            let Some(body) = bodies.get(run) else { continue };
            let mut body: String = body.chars().take(*chars).collect();
            if *cut {
                body.push('…');
            }
            if let Some(o) = entries[*i].detail.as_object_mut() {
                o.insert("body".into(), Value::String(body));
            }
        }
    }
    Ok(())
}

impl Store {
    /// Log entries matching `f`, oldest first: the newest `f.limit` of
    /// them, read newest first and stopped there (the log is never loaded
    /// whole to be cut afterwards). Only the filters given are in the SQL,
    /// so a run's timeline goes through the `run_id` index.
    pub fn query_log(&self, f: &LogFilter) -> Result<Vec<LogEntry>, Error> {
        let (filter, mut args) = sql(f);
        let sql = format!(
            "SELECT at, kind, tenant, flow_id, run_id, event_id, delivery_id, outcome, detail, seq FROM log \
             WHERE {filter} ORDER BY seq DESC LIMIT ?"
        );
        args.push(f.limit.map_or(-1, |n| n.min(i64::MAX as usize) as i64).into());
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), log_from_row).map_err(db)?;
        let mut entries: Vec<LogEntry> = rows.collect::<Result<_, _>>().map_err(db)?;
        entries.reverse();
        with_bodies(&conn, &mut entries)?;
        Ok(entries)
    }

    /// How many log entries match `f` (its `limit` aside): the live tail's
    /// count of what it read after its cursor.
    pub fn count_log(&self, f: &LogFilter) -> Result<usize, Error> {
        let (filter, args) = sql(f);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!("SELECT count(*) FROM log WHERE {filter}")).map_err(db)?;
        let n: i64 = stmt.query_row(rusqlite::params_from_iter(args), |r| r.get(0)).map_err(db)?;
        Ok(n as usize)
    }

    /// Deletes log entries older than `before` (ms); returns how many. In
    /// chunks of [`PRUNE_CHUNK`] through the `at` index, each its own short
    /// transaction with the read connection released between them, so
    /// neither the writer nor a request's read waits on a whole day's
    /// delete.
    pub fn prune_log(&self, before: i64) -> Result<usize, Error> {
        self.delete_in_chunks(
            "DELETE FROM log WHERE seq IN (SELECT seq FROM log WHERE at < ?1 ORDER BY at LIMIT ?2)",
            before,
            PRUNE_CHUNK,
        )
    }

    /// Runs `sql` (a `DELETE` of at most `?2` rows matching `?1`) until it
    /// deletes fewer than `chunk`: each its own short transaction on the
    /// read connection, released between them; returns how many rows.
    pub(super) fn delete_in_chunks(&self, sql: &str, at: i64, chunk: i64) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let n = self.conn().prepare_cached(sql).and_then(|mut st| st.execute(params![at, chunk])).map_err(db)?;
            total += n;
            if (n as i64) < chunk {
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
    async fn an_accepted_requests_body_is_stored_once_in_its_run_and_read_back_into_its_entry() {
        let dir = std::env::temp_dir().join(format!("hookflow-log-{}", uuid::Uuid::now_v7().simple()));
        let s = Store::open(&dir).unwrap();
        let body = format!("{{\"pad\": \"{}\"}}", "MARK".repeat(500));
        let run = hookflow_core::commit::RunRow {
            id: "run_1".into(),
            tenant: "a".into(),
            flow_id: "f".into(),
            event_id: "evt_1".into(),
            status: "running",
            revision: 1,
            state: serde_json::json!({"trigger": {"raw_body": body}}).to_string(),
        };
        let accepted = LogEntry {
            run_id: Some("run_1".into()),
            detail: serde_json::json!({"method": "POST", "body": body}),
            ..entry(5, "a")
        };
        // A rejected request has no run: its body stays in its entry.
        let rejected = LogEntry { detail: serde_json::json!({"body": "kept"}), ..entry(6, "a") };
        // A body past the entry's 16 KiB: the entry showed its head, cut
        // (multi-byte characters: SQLite's substr counts characters).
        let long = "é".repeat(20_000);
        let big = hookflow_core::commit::RunRow {
            id: "run_2".into(),
            event_id: "evt_2".into(),
            state: serde_json::json!({"trigger": {"raw_body": long}}).to_string(),
            ..run.clone()
        };
        let head = format!("{}…", "é".repeat(8_192));
        let cut = LogEntry { run_id: Some("run_2".into()), detail: serde_json::json!({"body": head}), ..entry(7, "a") };
        // An entry whose body is not its run's (edited after) keeps its own.
        let other = LogEntry {
            run_id: Some("run_2".into()),
            detail: serde_json::json!({"body": "not the run's"}),
            ..entry(8, "a")
        };
        let c = Commit { runs: vec![run, big], log: vec![accepted, rejected, cut, other], ..Default::default() };
        s.commit(c).await.unwrap();
        let stored: i64 = s
            .conn()
            .query_row("SELECT SUM(LENGTH(detail) - LENGTH(REPLACE(detail, 'MARK', ''))) / 4 FROM log", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stored, 0, "the log holds no copy of the run's body");
        let got = s.query_log(&LogFilter { tenant: Some("a".into()), ..Default::default() }).unwrap();
        assert_eq!(got[0].detail, serde_json::json!({"method": "POST", "body": body}), "read back as it was");
        assert_eq!(got[1].detail, serde_json::json!({"body": "kept"}));
        assert_eq!(got[2].detail, serde_json::json!({"body": head}), "only the head the entry showed");
        assert_eq!(got[3].detail, serde_json::json!({"body": "not the run's"}));
        let stored: i64 = s.conn().query_row("SELECT MAX(LENGTH(detail)) FROM log", [], |r| r.get(0)).unwrap();
        assert!(stored < 100, "no entry keeps a copy of its run's body: {stored} characters");
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

//! The request log: filtered queries, its summary, pruning.

use super::*;
use hookflow_core::commit::EntryKind;
use hookflow_core::stats::{Stats, StatsQuery, Tally};

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

    /// The newest `f.limit` requests and published events `f` takes (by
    /// their own entry, newest first through the primary key), each with
    /// every entry of its run or event (through the `run_id` index), in
    /// commit order: what [`hookflow_core::requests::fold`] makes rows of.
    pub fn query_requests(&self, f: &LogFilter) -> Result<Vec<LogEntry>, Error> {
        let (filter, mut args) = sql(f);
        let sql = format!(
            "SELECT at, kind, tenant, flow_id, run_id, event_id, delivery_id, outcome, detail, seq FROM log \
             WHERE {filter} AND kind IN ('inbound', 'event') ORDER BY seq DESC LIMIT ?"
        );
        args.push(f.limit.map_or(-1, |n| n.min(i64::MAX as usize) as i64).into());
        let conn = self.conn();
        let heads: Vec<LogEntry> = {
            let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), log_from_row).map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)?
        };
        // A run's entries hold its request's; an event's deliveries carry
        // its id as their run.
        let keys: std::collections::BTreeSet<&str> =
            heads.iter().filter_map(|h| hookflow_core::requests::key(h)).collect();
        let mut entries: Vec<LogEntry> = heads.iter().filter(|h| h.run_id.is_none()).cloned().collect();
        let keys: Vec<&str> = keys.into_iter().collect();
        for chunk in keys.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT at, kind, tenant, flow_id, run_id, event_id, delivery_id, outcome, detail, seq FROM log \
                 WHERE run_id IN ({marks})"
            );
            let mut stmt = conn.prepare(&sql).map_err(db)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(chunk.iter()), log_from_row).map_err(db)?;
            for r in rows {
                entries.push(r.map_err(db)?);
            }
        }
        entries.sort_by_key(|e| e.seq);
        entries.dedup_by_key(|e| e.seq);
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

    /// The log summed up over `q` ([`Stats`]) by four aggregate queries
    /// over the `at` index: counts by kind, outcome and bucket; inbound
    /// requests by flow; failed attempts by subscription or flow; each
    /// delivered event's accept and first-delivery times. No entry's detail
    /// or body is read but a failed attempt's subscription id.
    pub fn stats(&self, q: &StatsQuery) -> Result<Stats, Error> {
        use rusqlite::types::Value as V;
        let mut tally = Tally::new(q);
        let tenant = if q.tenant.is_some() { " AND tenant = ?4" } else { "" };
        let args: Vec<V> = [V::from(q.since), V::from(q.until), V::from(q.bucket_ms)]
            .into_iter()
            .chain(q.tenant.clone().map(V::from))
            .collect();
        // Every query takes the same arguments, so each names `?3` (the
        // bucket): rusqlite refuses an argument a statement does not name.
        let window = format!("at >= ?1 AND at < ?2 AND ?3 > 0{tenant}");
        let conn = self.conn();
        let mut counts = conn
            .prepare_cached(&format!(
                "SELECT kind, coalesce(outcome, 'unknown'), (at - ?1) / ?3, count(*) FROM log \
                 WHERE {window} AND kind IN ('inbound', 'attempt') GROUP BY 1, 2, 3"
            ))
            .map_err(db)?;
        let mut rows = counts.query(rusqlite::params_from_iter(&args)).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let (kind, outcome): (String, String) = (r.get(0).map_err(db)?, r.get(1).map_err(db)?);
            let (bucket, n): (i64, i64) = (r.get(2).map_err(db)?, r.get(3).map_err(db)?);
            tally.count(EntryKind::parse(&kind), &outcome, q.since + bucket * q.bucket_ms, n as u64);
        }
        let mut flows = conn
            .prepare_cached(&format!(
                "SELECT tenant, flow_id, count(*) FROM log WHERE {window} AND kind = 'inbound' \
                 AND tenant IS NOT NULL AND flow_id IS NOT NULL GROUP BY 1, 2"
            ))
            .map_err(db)?;
        let mut rows = flows.query(rusqlite::params_from_iter(&args)).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let (t, f, n): (String, String, i64) =
                (r.get(0).map_err(db)?, r.get(1).map_err(db)?, r.get(2).map_err(db)?);
            tally.flow(&t, &f, n as u64);
        }
        let mut failing = conn
            .prepare_cached(&format!(
                "SELECT who, CASE WHEN instr(url, '?') > 0 THEN substr(url, 1, instr(url, '?') - 1) ELSE url END, \
                 count(*) FROM (SELECT CASE WHEN json_type(detail, '$.subscription_id') = 'text' \
                 THEN json_extract(detail, '$.subscription_id') ELSE flow_id END who, \
                 CAST(json_extract(detail, '$.request.url') AS TEXT) url FROM log \
                 WHERE {window} AND kind = 'attempt' AND outcome IS NOT 'success') GROUP BY 1, 2"
            ))
            .map_err(db)?;
        let mut rows = failing.query(rusqlite::params_from_iter(&args)).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let (who, url, n): (Option<String>, Option<String>, i64) =
                (r.get(0).map_err(db)?, r.get(1).map_err(db)?, r.get(2).map_err(db)?);
            let who = hookflow_core::stats::endpoint(url.as_deref(), who.as_deref().unwrap_or_default());
            tally.failed(&who, n as u64);
        }
        let mut timed = conn
            .prepare_cached(&format!(
                "SELECT a.event_id, a.t, d.t FROM \
                 (SELECT event_id, min(at) t FROM log WHERE {window} AND kind = 'inbound' AND outcome = 'accepted' \
                  AND event_id IS NOT NULL GROUP BY 1) a JOIN \
                 (SELECT event_id, min(at) t FROM log WHERE {window} AND kind = 'attempt' AND outcome = 'success' \
                  AND event_id IS NOT NULL GROUP BY 1) d USING (event_id) LIMIT {}",
                hookflow_core::stats::MAX_TIMED_EVENTS + 1
            ))
            .map_err(db)?;
        let mut rows = timed.query(rusqlite::params_from_iter(&args)).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let (event, accepted, delivered): (String, i64, i64) =
                (r.get(0).map_err(db)?, r.get(1).map_err(db)?, r.get(2).map_err(db)?);
            tally.accepted(&event, accepted);
            tally.delivered(&event, delivered);
        }
        Ok(tally.finish())
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
    use serde_json::json;

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
    async fn a_page_of_requests_holds_each_one_s_whole_run_however_late_its_entries_came() {
        let dir = std::env::temp_dir().join(format!("hookflow-log-{}", uuid::Uuid::now_v7().simple()));
        let s = Store::open(&dir).unwrap();
        let of = |at: i64, kind: EntryKind, run: &str, outcome: &str| LogEntry {
            kind,
            run_id: (!run.is_empty()).then(|| run.to_string()),
            outcome: Some(outcome.into()),
            ..entry(at, "a")
        };
        // Three requests, the oldest run's attempts logged after the newer
        // requests; a published event and its delivery.
        let mut log = vec![
            of(1, EntryKind::Inbound, "run_1", "accepted"),
            of(2, EntryKind::Inbound, "run_2", "accepted"),
            LogEntry { event_id: Some("evt_3".into()), ..of(3, EntryKind::Inbound, "", "rejected_401") },
            LogEntry { delivery_id: Some("d1".into()), ..of(4, EntryKind::Attempt, "run_1", "retry") },
            LogEntry { delivery_id: Some("d1".into()), ..of(5, EntryKind::Attempt, "run_1", "success") },
            of(6, EntryKind::Run, "run_1", "succeeded"),
            LogEntry { event_id: Some("evt_p".into()), ..of(7, EntryKind::Event, "", "published") },
            LogEntry { delivery_id: Some("m1".into()), ..of(8, EntryKind::Attempt, "evt_p", "success") },
        ];
        log.extend((9..200).map(|at| of(at, EntryKind::Step, "run_2", "set")));
        s.commit(Commit { log, ..Default::default() }).await.unwrap();
        let rows = |f: LogFilter| hookflow_core::requests::fold(&s.query_requests(&f).unwrap());
        let newest = rows(LogFilter { limit: Some(2), ..Default::default() });
        assert_eq!(newest.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["evt_p", "evt_3"]);
        assert_eq!(newest[0].deliveries.delivered, 1, "the event's delivery, by the event's id");
        // The next page, before the second's entry: run_1 whole, though
        // its entries came after newer requests'.
        let seq = newest[1].seq.unwrap();
        let older = rows(LogFilter { limit: Some(2), upto_seq: Some(seq - 1), ..Default::default() });
        assert_eq!(older.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["run_2", "run_1"]);
        assert_eq!((older[1].outcome.as_str(), older[1].duration_ms), ("succeeded", Some(5)));
        assert_eq!((older[1].deliveries.delivered, older[1].deliveries.attempts), (1, 0), "{:?}", older[1]);
        assert_eq!(older[0].outcome, "running");
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

    /// A log of every kind the overview counts, large bodies of control
    /// bytes in the rejected requests (the flood the overview must survive),
    /// two tenants.
    fn planted(n: i64) -> Vec<LogEntry> {
        let noise: String = (0..16 * 1024).map(|i| char::from((i % 31) as u8 + 1)).collect();
        let mut log = Vec::new();
        for i in 0..n {
            let (tenant, event) = (if i % 3 == 0 { "beta" } else { "acme" }, format!("evt_{i}"));
            let at = 1_000_000 + i * 37;
            let entry = |kind, outcome: &str, at: i64, detail| LogEntry {
                at,
                kind,
                tenant: Some(tenant.into()),
                flow_id: Some(format!("flow{}", i % 4)),
                event_id: Some(event.clone()),
                outcome: Some(outcome.into()),
                detail,
                ..Default::default()
            };
            log.push(entry(EntryKind::Inbound, "accepted", at, json!({})));
            log.push(entry(EntryKind::Inbound, "rejected_401", at + 1, json!({"body": noise})));
            if i % 5 == 0 {
                log.push(entry(
                    EntryKind::Attempt,
                    "retry",
                    at + 5,
                    match i % 3 {
                        0 => json!({"subscription_id": format!("sub_{}", i % 7)}),
                        1 => json!({"request": {"url": format!("https://h{}.example/in?key={i}", i % 4)}}),
                        _ => json!({"subscription_id": "sub_x", "request": {"url": "http://127.0.0.1:9/x#y"}}),
                    },
                ));
            }
            log.push(entry(EntryKind::Attempt, "success", at + 10 + i % 90, json!({})));
            log.push(entry(EntryKind::Run, "succeeded", at + 200, json!({})));
        }
        log
    }

    #[tokio::test]
    async fn the_summary_sql_counts_agree_with_one_folded_from_the_entries() {
        let dir = std::env::temp_dir().join(format!("hookflow-stats-{}", uuid::Uuid::now_v7().simple()));
        let store = Store::open(&dir).unwrap();
        let log = planted(600);
        store.commit(Commit { log: log.clone(), ..Default::default() }).await.unwrap();
        for tenant in [None, Some("acme".to_string())] {
            let q = StatsQuery::new(tenant.clone(), 1_000_000, 1_000_000 + 600 * 37 / 2, 1_000).unwrap();
            let counted = store.stats(&q).unwrap();
            let mut folded = Tally::new(&q);
            log.iter().for_each(|e| folded.entry(e));
            assert_eq!(counted, folded.finish(), "tenant {tenant:?}");
            assert!(counted.entries > 0 && counted.latency.delivered > 0 && !counted.failing.is_empty());
            let size = serde_json::to_string(&counted).unwrap().len();
            assert!(size < 64 * 1024, "the bodies stay out of the summary: {size} bytes");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! Dead deliveries: listed, replayed.

use super::*;

impl Store {
    /// How many dead deliveries are listed (metrics).
    pub fn dead_count(&self) -> Result<u64, Error> {
        self.conn().query_row("SELECT COUNT(*) FROM dead", [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(db)
    }

    /// Dead deliveries with their jobs: (delivery id, flow id, run id, reason, at, job).
    pub fn dead_jobs(&self, flow_id: Option<&str>) -> Result<Vec<DeadDelivery>, Error> {
        Ok(self.dead_page(flow_id, None, 0, usize::MAX, true)?.0)
    }

    /// A page of the dead deliveries (of one flow, if given), oldest
    /// first — after the row of `after` (`at`, delivery id), or past
    /// `offset` rows — and how many there are; with their jobs only if
    /// `jobs`.
    pub fn dead_page(
        &self,
        flow_id: Option<&str>,
        after: Option<(i64, &str)>,
        offset: usize,
        limit: usize,
        jobs: bool,
    ) -> Result<(Vec<DeadDelivery>, usize), Error> {
        let conn = self.conn();
        let sql = dead_page_sql(jobs);
        let (limit, offset) = (limit.min(i64::MAX as usize) as i64, offset.min(i64::MAX as usize) as i64);
        let (after_at, after_id) = (after.map(|a| a.0), after.map(|a| a.1));
        let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt.query_map(params![flow_id, limit, offset, after_at, after_id], dead_of).map_err(db)?;
        let page = rows.collect::<Result<_, _>>().map_err(db)?;
        let total: i64 = conn
            .prepare_cached("SELECT count(*) FROM dead WHERE ?1 IS NULL OR flow_id = ?1")
            .and_then(|mut st| st.query_row([flow_id], |r| r.get(0)))
            .map_err(db)?;
        Ok((page, total as usize))
    }

    /// Forgets dead deliveries that died before `before` (ms): the dead
    /// list's retention. How many.
    pub fn prune_dead(&self, before: i64) -> Result<usize, Error> {
        self.conn().execute("DELETE FROM dead WHERE at < ?1", [before]).map_err(db)
    }

    /// One dead delivery, with its job, by its id.
    pub fn dead_one(&self, delivery_id: &str) -> Result<Option<DeadDelivery>, Error> {
        self.conn()
            .prepare_cached(
                "SELECT delivery_id, tenant, flow_id, run_id, reason, at, job FROM dead WHERE delivery_id = ?1",
            )
            .and_then(|mut st| st.query_row([delivery_id], dead_of).optional())
            .map_err(db)
    }

    /// Queues a dead delivery again (same `webhook-id`, attempts from zero)
    /// and removes it from the dead list, in one transaction — only as it
    /// was read: replayed meanwhile (by another request, the CLI) it is
    /// not queued twice, and dead again since (a newer row) it stays.
    /// Whether it was queued.
    pub fn replay(&self, dead: &DeadDelivery) -> Result<bool, Error> {
        let (job, entry) = dead
            .row
            .replay(crate::now_ms())
            .map_err(|e| Error::Malformed(format!("dead delivery {}: {e}", dead.row.delivery_id)))?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let removed = tx
            .execute("DELETE FROM dead WHERE delivery_id = ?1 AND at = ?2", params![dead.row.delivery_id, dead.at])
            .map_err(db)?;
        if removed == 0 {
            return Ok(false);
        }
        exec(
            &tx,
            "INSERT INTO jobs (id, kind, payload, due_at, created_at, run_id) VALUES (?1, 'delivery', ?2, ?3, ?3, ?4)",
            params![job.id, job.payload.text(), job.not_before, dead.row.run_id],
        )
        .map_err(db)?;
        exec(
            &tx,
            "INSERT INTO log (at, kind, tenant, flow_id, run_id, delivery_id, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, '{}')",
            params![
                entry.at,
                entry.kind.as_str(),
                entry.tenant,
                entry.flow_id,
                entry.run_id,
                entry.delivery_id,
                entry.outcome
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(true)
    }
}

/// The statement of [`Store::dead_page`]: `?1` flow, `?2` limit, `?3`
/// offset, `?4` and `?5` the cursor's time and id.
fn dead_page_sql(jobs: bool) -> String {
    let job = if jobs { "job" } else { "''" };
    format!(
        "SELECT delivery_id, tenant, flow_id, run_id, reason, at, {job} FROM dead
         WHERE (?1 IS NULL OR flow_id = ?1) AND (?4 IS NULL OR at > ?4 OR (at = ?4 AND delivery_id > ?5))
         ORDER BY at, delivery_id LIMIT ?2 OFFSET ?3"
    )
}

/// A row of `SELECT delivery_id, tenant, flow_id, run_id, reason, at, job FROM dead`.
fn dead_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeadDelivery> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dead_deliveries_past_their_retention_are_forgotten_and_a_page_reads_through_its_index() {
        let dir = std::env::temp_dir().join(format!("hookflow-dead-{}", uuid::Uuid::now_v7().simple()));
        let s = Store::open(&dir).unwrap();
        for (id, at) in [("old", 1_000), ("edge", 2_000), ("new", 3_000)] {
            s.conn()
                .execute(
                    "INSERT INTO dead (delivery_id, at, tenant, flow_id, run_id, reason, job) \
                     VALUES (?1, ?2, 't', 'f', 'r', 'status 500', '{}')",
                    params![id, at],
                )
                .unwrap();
        }
        assert_eq!(s.prune_dead(2_000).unwrap(), 1, "older than the retention only");
        let (page, total) = s.dead_page(None, None, 0, 10, false).unwrap();
        assert_eq!(
            (page.iter().map(|d| d.row.delivery_id.as_str()).collect::<Vec<_>>(), total),
            (vec!["edge", "new"], 2)
        );
        // A page after a cursor is read in order through the index, not
        // sorted from the whole table.
        let plan: Vec<String> = s
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {}", dead_page_sql(false)))
            .unwrap()
            .query_map(params![None::<&str>, 5, 0, 1, "a"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan.iter().any(|p| p.contains("dead_at")), "{plan:?}");
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
    }
}

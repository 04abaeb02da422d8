//! Dead deliveries: listed, replayed.

use super::*;

impl Store {
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
        let job = if jobs { "job" } else { "''" };
        let sql = format!(
            "SELECT delivery_id, tenant, flow_id, run_id, reason, at, {job} FROM dead
             WHERE (?1 IS NULL OR flow_id = ?1) AND (?4 IS NULL OR at > ?4 OR (at = ?4 AND delivery_id > ?5))
             ORDER BY at, delivery_id LIMIT ?2 OFFSET ?3"
        );
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

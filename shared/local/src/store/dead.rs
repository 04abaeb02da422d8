//! Dead deliveries: listed, replayed.

use super::*;

impl Store {
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
            "INSERT INTO jobs (id, kind, payload, due_at, created_at, run_id) VALUES (?1, 'delivery', ?2, ?3, ?3, ?4)",
            params![job.id, job.payload, job.not_before, dead.row.run_id],
        )
        .map_err(db)?;
        exec(&tx, "DELETE FROM dead WHERE delivery_id = ?1", [&dead.row.delivery_id]).map_err(db)?;
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
        tx.commit().map_err(db)
    }
}

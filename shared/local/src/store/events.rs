//! Published events: an id's window, a tenant's events, pruning.

use super::*;

impl Store {
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
}

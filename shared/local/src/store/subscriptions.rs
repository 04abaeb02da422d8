//! Subscriptions and their keyrings.

use super::*;

impl Store {
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

    /// Writes a subscription's keyring (JSON text), sealed
    /// ([`super::sealed`]).
    pub fn put_keyring(&self, name: &str, value: &str) -> Result<(), Error> {
        let sealed = self.sealer.seal(name, value)?;
        self.conn()
            .execute("INSERT OR REPLACE INTO keyrings (name, value) VALUES (?1, ?2)", [name, sealed.as_str()])
            .map(|_| ())
            .map_err(db)
    }

    /// A subscription's keyring (JSON text), opened.
    pub fn keyring(&self, name: &str) -> Result<Option<String>, Error> {
        let stored: Option<String> = self
            .conn()
            .query_row("SELECT value FROM keyrings WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(db)?;
        stored.map(|v| self.sealer.open_value(name, &v)).transpose()
    }
}

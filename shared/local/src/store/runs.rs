//! Runs and the stored answers of idempotency keys.

use super::*;

impl Store {
    /// A run's stored state.
    pub fn run(&self, id: &str) -> Result<Option<Value>, Error> {
        self.conn()
            .query_row("SELECT state FROM runs WHERE id = ?1", [id], |r| r.get::<_, String>(0))
            .optional()
            .map_err(db)?
            .map(|s| {
                let mut state: Value = serde_json::from_str(&s).map_err(|e| Error::Malformed(e.to_string()))?;
                // Stored with the trigger's body once.
                if let Some(trigger) = state.get_mut("trigger") {
                    hookflow_core::run::expand_trigger(trigger);
                }
                Ok(state)
            })
            .transpose()
    }

    /// The reply stored for an idempotency scope, unless expired.
    pub fn idempotent_reply(&self, scope: &str, now: i64) -> Result<Option<Value>, Error> {
        self.conn()
            .query_row("SELECT reply FROM idempotency WHERE scope = ?1 AND expires_at > ?2", params![scope, now], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(db)?
            .map(|s| serde_json::from_str(&s).map_err(|e| Error::Malformed(e.to_string())))
            .transpose()
    }
}

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

    /// Deletes finished runs (succeeded or failed) last changed before
    /// `before`, but the ones a dead delivery still points to (a replay
    /// goes back to its run), and the idempotency answers expired by
    /// `now`; returns how many runs. In chunks like the log's
    /// ([`Store::prune_log`]): a run waiting on a step is never pruned.
    pub fn prune_runs(&self, before: i64, now: i64) -> Result<usize, Error> {
        let mut total = 0;
        loop {
            let n = self
                .conn()
                .prepare_cached(
                    "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE status IN ('succeeded', 'failed') \
                     AND updated_at < ?1 AND id NOT IN (SELECT run_id FROM dead) LIMIT ?2)",
                )
                .and_then(|mut st| st.execute(params![before, super::log::PRUNE_CHUNK]))
                .map_err(db)?;
            total += n;
            if (n as i64) < super::log::PRUNE_CHUNK {
                break;
            }
            std::thread::yield_now();
        }
        self.conn().execute("DELETE FROM idempotency WHERE expires_at <= ?1", [now]).map_err(db)?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use hookflow_core::commit::{Commit, RunRow};

    use super::*;

    fn run(id: &str, status: &'static str) -> RunRow {
        RunRow {
            id: id.into(),
            tenant: "t".into(),
            flow_id: "f".into(),
            event_id: format!("evt_{id}"),
            status,
            revision: 1,
            state: "{}".into(),
        }
    }

    #[tokio::test]
    async fn finished_runs_past_the_retention_are_pruned_but_waiting_and_dead_ones() {
        let dir = std::env::temp_dir().join(format!("hookflow-runs-{}", uuid::Uuid::now_v7().simple()));
        let s = Store::open(&dir).unwrap();
        let runs =
            vec![run("done", "succeeded"), run("failed", "failed"), run("waiting", "waiting"), run("dead", "failed")];
        s.commit(Commit { runs, idempotency: Some(("scope".into(), "{}".into(), 10)), ..Default::default() })
            .await
            .unwrap();
        s.conn()
            .execute(
                "INSERT INTO dead (delivery_id, at, tenant, flow_id, run_id, reason, job) \
                 VALUES ('d1', 1, 't', 'f', 'dead', 'r', '{}')",
                [],
            )
            .unwrap();
        let now = crate::now_ms();
        assert_eq!(s.prune_runs(now - 60_000, now).unwrap(), 0, "nothing older than the retention");
        assert_eq!(s.prune_runs(now + 60_000, now).unwrap(), 2);
        for (id, kept) in [("done", false), ("failed", false), ("waiting", true), ("dead", true)] {
            assert_eq!(s.run(id).unwrap().is_some(), kept, "{id}");
        }
        assert!(s.idempotent_reply("scope", 0).unwrap().is_none(), "the expired answer is gone");
    }
}

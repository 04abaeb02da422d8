//! Runs and the stored answers of idempotency keys.

use super::*;

/// Runs deleted in one transaction by [`Store::prune_runs`]: fewer than
/// log entries at a time, as a run keeps its request's body (up to the
/// trigger's `max_body`), so the writer waits on a short delete.
const RUNS_CHUNK: i64 = 100;

impl Store {
    /// Whether a run of this id is stored (its state not read).
    pub fn has_run(&self, id: &str) -> Result<bool, Error> {
        let found = self.conn().query_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(())).optional();
        Ok(found.map_err(db)?.is_some())
    }

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
    /// `before` that nothing needs any more — no job of theirs is queued
    /// (a delivery still retrying, a replay queued), no dead delivery
    /// points to them (its replay goes back to the run) — and the
    /// idempotency answers expired by `now`; returns how many runs. Through
    /// the `runs_finished`, `jobs_run` and `dead_run` indexes, in chunks
    /// like the log's ([`Store::prune_log`]): a run waiting on a step is
    /// never pruned. A job or dead row added for a run concurrently is
    /// either seen by the delete (one statement, one transaction) or added
    /// after it, by a commit that also writes the run (a replay's job comes
    /// from its dead row, which keeps the run until then).
    pub fn prune_runs(&self, before: i64, now: i64) -> Result<usize, Error> {
        let runs = self.delete_in_chunks(
            "DELETE FROM runs WHERE id IN (SELECT r.id FROM runs r INDEXED BY runs_finished \
             WHERE r.status IN ('succeeded', 'failed') AND r.updated_at < ?1 \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = r.id) \
             AND NOT EXISTS (SELECT 1 FROM dead d WHERE d.run_id = r.id) LIMIT ?2)",
            before,
            RUNS_CHUNK,
        )?;
        self.delete_in_chunks(
            "DELETE FROM idempotency WHERE scope IN (SELECT scope FROM idempotency WHERE expires_at <= ?1 LIMIT ?2)",
            now,
            RUNS_CHUNK,
        )?;
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use hookflow_core::commit::{Commit, DeliveryJob, NewJob, Payload, RunJob, RunRow};
    use hookflow_core::subscription::sample_delivery;

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
        let runs = vec![
            run("done", "succeeded"),
            run("failed", "failed"),
            run("waiting", "waiting"),
            run("dead", "failed"),
            run("retrying", "succeeded"),
            run("restarted", "failed"),
        ];
        // A finished run whose delivery still retries, one with a run job
        // queued: both are needed yet.
        let job = |id: &str, payload: Payload| NewJob {
            id: id.into(),
            payload,
            not_before: i64::MAX / 2,
            tenant: "t".into(),
            leased_for: None,
            group: None,
        };
        let retrying = Payload::Delivery(DeliveryJob { attempts: 3, ..sample_delivery("retrying", "") });
        let restart = RunJob { run_id: "restarted".into(), input: hookflow_core::run::Input::Start };
        let jobs = vec![job("d:1", retrying), job("r:restarted:x", Payload::Run(restart))];
        s.commit(Commit { runs, jobs, idempotency: Some(("scope".into(), "{}".into(), 10)), ..Default::default() })
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
        let kept = [("done", false), ("failed", false), ("waiting", true), ("dead", true)];
        for (id, kept) in kept.into_iter().chain([("retrying", true), ("restarted", true)]) {
            assert_eq!(s.run(id).unwrap().is_some(), kept, "{id}");
        }
        assert!(s.idempotent_reply("scope", 0).unwrap().is_none(), "the expired answer is gone");
        // Once the delivery is done, its run goes at the next prune.
        s.commit(Commit { done: Some("d:1".into()), ..Default::default() }).await.unwrap();
        assert_eq!(s.prune_runs(now + 60_000, now).unwrap(), 1);
        assert!(s.run("retrying").unwrap().is_none());
        // The prune reads through its index, not the whole table.
        let plan: Vec<String> = s
            .conn()
            .prepare(
                "EXPLAIN QUERY PLAN SELECT r.id FROM runs r INDEXED BY runs_finished \
                 WHERE r.status IN ('succeeded', 'failed') AND r.updated_at < 1",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan.iter().any(|p| p.contains("runs_finished")), "{plan:?}");
    }

    #[tokio::test]
    async fn a_replayed_dead_delivery_keeps_its_run_until_it_is_done() {
        use hookflow_core::commit::{DeadDelivery, DeadRow, DeliveryJob};
        use hookflow_core::request::OutboundRequest;
        use hookflow_core::retry::{RetryPolicy, RetrySpec};
        use hookflow_core::run::Delivery;
        let dir = std::env::temp_dir().join(format!("hookflow-runs-{}", uuid::Uuid::now_v7().simple()));
        let s = Store::open(&dir).unwrap();
        let delivery = Delivery {
            id: "msg_1".into(),
            run_id: "run_1".into(),
            event_id: "evt_1".into(),
            tenant: "t".into(),
            flow_id: "f".into(),
            step: "s".into(),
            request: OutboundRequest {
                method: hookflow_core::flow::Method::Post,
                url: hookflow_core::request::SecretText::plain("https://x.example/"),
                headers: vec![],
                body: None,
            },
            status_policy: Default::default(),
            retry: RetryPolicy::from_spec(&RetrySpec::default()),
            sign: None,
            timeout: std::time::Duration::from_secs(10),
            wait: false,
            purpose: Default::default(),
            secret_hosts: Default::default(),
            shaped: false,
            limit: None,
        };
        let job = DeliveryJob { attempts: 3, ..DeliveryJob::new(delivery, 0) };
        let row = DeadRow::of(&job, "status 500");
        s.commit(Commit { runs: vec![run("run_1", "succeeded")], dead: Some(row.clone()), ..Default::default() })
            .await
            .unwrap();
        let dead = s.dead_one(&row.delivery_id).unwrap().expect("the dead row");
        assert!(s.replay(&dead).unwrap(), "queued");
        // Replayed already (a second click, another tab): not queued twice.
        assert!(!s.replay(&dead).unwrap());
        assert!(!s.replay(&DeadDelivery { row, at: dead.at + 1 }).unwrap(), "only the row as it was read");
        let jobs: i64 = s.conn().query_row("SELECT count(*) FROM jobs", [], |r| r.get(0)).unwrap();
        assert_eq!(jobs, 1);
        let now = crate::now_ms();
        assert_eq!(s.prune_runs(now + 60_000, now).unwrap(), 0, "the replay's job needs its run");
        assert!(s.run("run_1").unwrap().is_some());
    }

    #[tokio::test]
    async fn jobs_queued_before_they_named_their_run_are_given_it_when_the_store_opens() {
        let dir = std::env::temp_dir().join(format!("hookflow-runs-{}", uuid::Uuid::now_v7().simple()));
        let s = Store::open(&dir).unwrap();
        // The table as it was: no run_id column.
        s.conn().execute_batch("DROP INDEX jobs_run; ALTER TABLE jobs DROP COLUMN run_id;").unwrap();
        s.conn()
            .execute(
                "INSERT INTO jobs (id, kind, payload, due_at, created_at) VALUES \
                 ('d:1', 'delivery', '{\"delivery\": {\"run_id\": \"run_a\"}}', 0, 0), \
                 ('r:run_b:start', 'run', '{\"run_id\": \"run_b\"}', 0, 0), ('odd', 'run', 'not json', 0, 0)",
                [],
            )
            .unwrap();
        drop(s);
        let s = Store::open(&dir).unwrap();
        let got: Vec<(String, Option<String>)> = s
            .conn()
            .prepare("SELECT id, run_id FROM jobs ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let want = [("d:1", Some("run_a")), ("odd", None), ("r:run_b:start", Some("run_b"))];
        assert_eq!(got, want.map(|(id, run)| (id.to_string(), run.map(String::from))));
    }
}

//! The embedded runtime as the pipelines' ports: the run pipeline's, the
//! delivery pipeline's (with the secrets of a delivery), and who hears of
//! a published event.

use std::time::Duration;

use hookflow_core::limit::RateLimit;
use hookflow_pipeline::Limiter;

use super::*;

/// The secrets of deliveries: subscription keyrings from the store, the
/// rest from the secrets file and environment.
pub struct DeliverySecrets<'a> {
    secrets: &'a Secrets,
    store: &'a Store,
    subs: &'a Subscriptions,
}

impl SecretStore for DeliverySecrets<'_> {
    async fn secret(&self, name: &str) -> Result<Option<String>, PortError> {
        if name.starts_with(KEYRING_PREFIX) {
            return self.subs.keyring(self.store, name).map(|k| k.map(|k| k.to_string())).map_err(|e| match e {
                // Sealed under another key: no retry opens it (the
                // delivery is dead at once; rotating the subscription's
                // secret makes a new keyring, and a replay sends it).
                Error::Malformed(m) => PortError::unreadable(m),
                e => PortError::transient(e.to_string()),
            });
        }
        Ok(self.secrets.get(name))
    }
}

const KEYRING_PREFIX: &str = "subscriptions/";

/// SQLite as the run pipeline's ports ([`hookflow_pipeline::run`]): a
/// job is done in the transaction that commits its input, so nothing is
/// ever found applied and unsent.
impl RunPorts for Runtime {
    type Error = Error;
    type Kept = ();

    fn now_ms(&self) -> i64 {
        now_ms()
    }

    async fn load(&self, run_id: &str) -> Result<Option<(Run, ())>, Error> {
        let Some(state) = self.store.run(run_id)? else { return Ok(None) };
        let run = serde_json::from_value(state).map_err(|e| Error::Malformed(format!("run {run_id}: {e}")))?;
        Ok(Some((run, ())))
    }

    async fn flow(&self, run: &Run) -> Result<Option<Arc<CompiledFlow>>, Error> {
        self.flow_of(run)
    }

    async fn dropped(&self, job_id: &str, job: &RunJob, why: &str) -> Result<(), Error> {
        self.drop_job(job_id, serde_json::to_value(job).unwrap_or_default(), why).await
    }

    fn lines(&self, lines: Vec<engine::LogLine>) {
        self.write_lines(lines);
    }

    /// The commit, the job done in it; then the deliveries it leased sent
    /// at once, the workers woken for the rest, a sync caller answered.
    async fn commit(&self, job_id: &str, run: &Run, out: engine::Outcome, _: ()) -> Result<(), Error> {
        let engine::Outcome { mut commit, replies, .. } = out;
        commit.done = Some(job_id.to_string());
        self.commit_and_send(commit).await?;
        for reply in replies {
            if let Some(tx) = self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(&run.id) {
                let _ = tx.send(reply);
            }
        }
        if run.status.is_finished() {
            // A sync caller still waiting learns the run ended unanswered.
            self.forget_reply(&run.id);
        }
        Ok(())
    }
}

/// The embedded runtime as the delivery pipeline's ports: subscriptions
/// and keyrings from the cache over the store, health changes one at a
/// time (under [`Subscriptions::health`], which admin saves take too).
/// Who hears of an event: the subscription cache (updated by each
/// subscription write right after its commit, so a read after a write sees
/// it) and the loaded flows.
impl Audience for Runtime {
    type Error = Error;

    fn now_ms(&self) -> i64 {
        now_ms()
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn audience(&self, tenant: &str) -> Result<(Vec<Arc<Subscription>>, Vec<Arc<CompiledFlow>>), Error> {
        let flows = self.flows();
        Ok((self.subs.list(Some(tenant), false), flows.event_flows().cloned().collect()))
    }

    async fn subscribers(&self, tenant: &str) -> Result<Vec<Arc<Subscription>>, Error> {
        Ok(self.subs.list(Some(tenant), true))
    }

    async fn queue(&self, jobs: Vec<NewJob>) -> Result<(), Error> {
        Runtime::queue(self, jobs).await
    }
}

/// The commit inserts the deliveries it can send at once leased, sends
/// them, and wakes the workers for the rest.
impl PublishPorts for Runtime {
    async fn published(&self, event: &Event) -> Result<Option<Repeat>, Error> {
        Ok(self.store.live_event(&event.tenant, &event.id, event.at)?.map(Repeat::Of))
    }

    async fn commit(&self, commit: Commit) -> Result<(), Error> {
        self.commit_and_send(commit).await
    }

    fn lines(&self, lines: Vec<engine::LogLine>) {
        self.write_lines(lines);
    }
}

impl DeliveryPorts for Runtime {
    type Secrets<'a> = DeliverySecrets<'a>;
    type Sender = Sender;
    type Guard = tokio::sync::OwnedMutexGuard<()>;

    /// From the cache; a miss is read from the store: a subscription's
    /// commit is visible to the workers (who may lease its verification
    /// job) a moment before `save_subscription` puts it in the cache, and
    /// a miss must not drop that job as "deleted". The store's answer is
    /// not cached here (a delete racing this read could be undone).
    async fn subscription(&self, id: &str) -> Result<Option<Arc<Subscription>>, Error> {
        if let Some(s) = self.subs.get(id) {
            return Ok(Some(s));
        }
        Ok(self.store.subscription(id)?.map(Arc::new))
    }

    fn secrets<'a>(&'a self, _sub: Option<&'a Subscription>) -> DeliverySecrets<'a> {
        DeliverySecrets { secrets: &self.secrets, store: &self.store, subs: &self.subs }
    }

    fn sender(&self) -> &Sender {
        &self.sender
    }

    async fn serialize(&self) -> Option<Self::Guard> {
        Some(self.subs.health.clone().lock_owned().await)
    }

    fn lines(&self, lines: Vec<engine::LogLine>) {
        self.write_lines(lines);
    }

    fn attempted(&self, a: &hookflow_pipeline::Counted<'_>) {
        let outcome = match a.summary {
            Some(engine::AttemptSummary::Delivered) => "delivered",
            Some(engine::AttemptSummary::Retried) => "retried",
            Some(engine::AttemptSummary::Dead) => "dead",
            None => "unclassified",
        };
        let delivered = matches!(a.summary, Some(engine::AttemptSummary::Delivered));
        self.metrics.attempt(crate::metrics::AttemptSeen {
            tenant: a.tenant,
            flow: a.flow_id,
            subscription: a.subscription.unwrap_or_default(),
            outcome,
            status: a.status,
            duration_ms: a.duration_ms,
            delivered_after_ms: delivered.then(|| a.at + a.duration_ms as i64 - a.first_at),
        });
    }
}

/// Destinations' limits, in this process's memory
/// ([`crate::limiter::Limiter`]).
impl Limiter for Runtime {
    type Permit = crate::limiter::Permit;

    fn epoch(&self) -> i64 {
        self.limiter.epoch()
    }

    async fn reserve(&self, key: &str, rate: &RateLimit) -> Result<Duration, PortError> {
        Ok(self.limiter.reserve(key, rate))
    }

    /// In memory: a process that dies holds nothing after it (`hold` is
    /// for drivers whose places outlive a worker).
    async fn enter(&self, key: &str, max: u32, _hold: Duration) -> Result<Result<Self::Permit, Duration>, PortError> {
        Ok(self.limiter.enter(key, max))
    }

    async fn leave(&self, permit: Self::Permit, took_ms: u64) {
        self.limiter.leave(permit, took_ms);
    }
}

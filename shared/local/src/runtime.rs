//! The runtime: loaded flows, and the workers that drive runs and
//! deliveries through the store's job queue.
//!
//! Two kinds of job:
//! - `run`: feed an input to a run (the run pipeline, [`hookflow_pipeline::run`]), then store the new run,
//!   the delivery jobs its `Send` effects ask for and the log, in one
//!   transaction with the job's removal;
//! - `delivery`: send one attempt; on success (or final failure) hand the
//!   outcome to the run as a new `run` job; on a retryable failure put the
//!   job back with the scheduled delay and the same `webhook-id`.
//!
//! A delivery due at once is not left for a worker to find: the commit that
//! creates it inserts it already leased, and the process that committed it
//! sends it straight away (while a worker permit is free). The lease is the
//! safety net: if the process dies first, the job becomes due when it
//! expires (or at the next start) and a worker sends it.
//!
//! Job ids are derived from what they carry (`d:{delivery_id}`,
//! `r:{run_id}:{delivery_id}`), and inserts ignore duplicates, so redoing a
//! job after a crash cannot fork a run.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use hookflow_core::CompiledFlow;
use hookflow_core::commit::{Commit, DeliveryJob, LogEntry, NewJob, Payload, RunJob, SubscriptionRow};
use hookflow_core::engine::{self, Level};
use hookflow_core::ports::{PortError, SecretStore};
use hookflow_core::run::{Reply, Run};
use hookflow_core::ssrf::TargetPolicy;
use hookflow_core::subscription::{Event, Settings, Subscription};
use hookflow_pipeline::delivery::{self, DeliveryPorts};
use hookflow_pipeline::publish::{self, Audience, PublishPorts, Repeat};
use hookflow_pipeline::run::{self, RunPorts};
use serde_json::{Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};

use crate::flows::Flows;
use crate::limiter::Limiter;
use crate::logger::Logger;
use crate::secrets::Secrets;
use crate::store::{Job, LEASE_MS, Leased, Store, Undecodable};
use crate::subscriptions::Subscriptions;
use crate::{Error, now_ms};

mod ports;

/// What `hookflow dev` sends deliveries with: HTTP through the SSRF-guarded
/// sender, an ARN with the AWS SDK configured from the environment
/// ([`hookflow_destinations`]).
pub type Sender = hookflow_destinations::Outbound<crate::sender::Sender>;

pub use ports::DeliverySecrets;

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub data_dir: PathBuf,
    pub target_policy: TargetPolicy,
    pub secrets: Secrets,
    pub logger: Logger,
    /// Jobs processed at once.
    pub concurrency: usize,
    /// Retry schedules and windows of subscriptions.
    pub subscriptions: Settings,
}

/// How many flow versions that are no longer loaded are kept compiled.
const VERSIONS_CACHED: usize = 64;

/// The embedded runtime, shared by the inbound server and the workers.
pub struct Runtime {
    /// Itself, for what a port given `&self` hands to tasks it spawns.
    me: Weak<Runtime>,
    pub store: Store,
    pub logger: Logger,
    pub secrets: Secrets,
    flows: RwLock<Arc<Flows>>,
    /// Flow versions runs started on that are no longer loaded, compiled
    /// from the store (a few: cleared past [`VERSIONS_CACHED`]).
    versions: Mutex<HashMap<String, Arc<CompiledFlow>>>,
    sender: Sender,
    wake: Notify,
    waiters: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    /// Idempotency keys claimed by requests in progress (the inbound
    /// port's `claim`).
    pub(crate) claims: Mutex<HashSet<String>>,
    /// Which requests to unknown trigger paths are logged.
    pub(crate) unknown_routes: hookflow_pipeline::Sampler,
    /// Jobs in progress, leased by the worker loop or sent directly.
    permits: Arc<Semaphore>,
    pub settings: Settings,
    /// Subscriptions and keyrings, cached over the store.
    pub subs: Subscriptions,
    /// Destinations' paces and places in flight.
    pub limiter: Limiter,
    /// What `--metrics` serves.
    pub metrics: crate::metrics::Metrics,
}

/// Why a publish was not done.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event's id was published inside its idempotency window.
    #[error("event `{0}` was published already")]
    Duplicate(String),
    #[error(transparent)]
    Runtime(#[from] Error),
}

pub use hookflow_admin::Published;

/// A delivery to send directly, with the worker permit it holds.
pub struct Ready {
    job_id: String,
    job: DeliveryJob,
    permit: OwnedSemaphorePermit,
}

impl Runtime {
    /// The metrics (`hookflow dev --metrics`), with the queue and the dead
    /// deliveries read from the store now.
    pub fn metrics_text(&self) -> Result<String, Error> {
        let gauges = crate::metrics::Gauges {
            queue: self.store.queue_gauges(now_ms())?,
            dead: self.store.dead_count()?,
            in_flight: self.limiter.in_flight(),
        };
        Ok(self.metrics.render(&gauges))
    }

    pub fn new(config: RuntimeConfig, flows: Flows) -> Result<Arc<Self>, Error> {
        let store = Store::open(&config.data_dir)?;
        // One process owns the embedded store: any lease left from a previous
        // process is stale, so its jobs are due again now.
        store.release_leases()?;
        let sender = Sender {
            http: crate::sender::Sender::new(config.target_policy).map_err(|e| Error::Config(e.to_string()))?,
            aws: hookflow_destinations::Destinations::from_env(config.subscriptions.destinations.clone()),
        };
        let subs = Subscriptions::load(&store)?;
        for f in flows.all() {
            store.keep_flow(f, now_ms())?;
        }
        Ok(Arc::new_cyclic(|me| Runtime {
            me: me.clone(),
            subs,
            store,
            logger: config.logger,
            secrets: config.secrets,
            flows: RwLock::new(Arc::new(flows)),
            versions: Mutex::new(HashMap::new()),
            sender,
            wake: Notify::new(),
            waiters: Mutex::new(HashMap::new()),
            claims: Mutex::new(HashSet::new()),
            unknown_routes: Default::default(),
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            settings: config.subscriptions,
            metrics: Default::default(),
            limiter: Limiter::default(),
        }))
    }

    /// The `Arc` this runtime lives in (one exists while `&self` does).
    fn arc(&self) -> Arc<Runtime> {
        self.me.upgrade().expect("a runtime lives in an Arc while it is used")
    }

    pub fn flows(&self) -> Arc<Flows> {
        self.flows.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the loaded flows (reload), keeping each version's text in
    /// the store first, for the runs it starts.
    pub fn set_flows(&self, flows: Flows) {
        for f in flows.all() {
            if let Err(e) = self.store.keep_flow(f, now_ms()) {
                self.logger.log(
                    Level::Error,
                    "flow version not kept: its runs go on with the current version if it changes",
                    json!({"file": f.file.display().to_string(), "error": e.to_string()}),
                );
            }
        }
        *self.flows.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(flows);
    }

    /// The flow version `run` started on ([`Run::flow_version`]): the
    /// loaded one if it is that version, else the version kept in the
    /// store. A run without a recorded version, or whose version is not
    /// kept, goes on with the loaded flow.
    fn flow_of(&self, run: &Run) -> Result<Option<Arc<CompiledFlow>>, Error> {
        let current = self.flows().by_id(&run.tenant, &run.flow_id);
        if run.flow_version.is_empty() || current.as_ref().is_some_and(|f| f.version == run.flow_version) {
            return Ok(current);
        }
        if let Some(f) = self.versions.lock().unwrap_or_else(|p| p.into_inner()).get(&run.flow_version) {
            return Ok(Some(f.clone()));
        }
        let Some((file, text)) = self.store.flow_version(&run.flow_version)? else { return Ok(current) };
        // A kept version this build no longer accepts goes on as the loaded
        // flow (the case of a run stored before versions were recorded).
        let Ok(flow) = hookflow_core::load_flow(std::path::Path::new(&file), &text) else { return Ok(current) };
        let flow = Arc::new(flow);
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        if versions.len() >= VERSIONS_CACHED {
            versions.clear();
        }
        versions.insert(run.flow_version.clone(), flow.clone());
        Ok(Some(flow))
    }

    /// Wakes the workers: new jobs are due. (One worker loop waits; a
    /// wake-up while it is busy is kept for its next wait.)
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Registers interest in a run's `respond` reply (sync triggers).
    pub fn wait_for_reply(&self, run_id: &str) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).insert(run_id.to_string(), tx);
        rx
    }

    pub fn forget_reply(&self, run_id: &str) {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(run_id);
    }

    /// Runs the workers until the process ends.
    pub async fn work(self: Arc<Self>) {
        let permits = self.permits.clone();
        loop {
            // The permits first, then as many jobs: a leased job starts at
            // once, while its lease is fresh, never after waiting for a
            // permit that direct dispatch took meanwhile (its lease could
            // run out mid-attempt and the job be sent twice at once).
            let free = permits.available_permits() as u32;
            let mut held = if free == 0 { None } else { permits.clone().try_acquire_many_owned(free).ok() };
            let jobs = match &held {
                Some(h) => self.store.lease(now_ms(), h.num_permits(), LEASE_MS).await,
                None => Ok(Vec::new()),
            };
            let jobs = match jobs {
                Ok(j) => j,
                Err(e) => {
                    self.logger.log(Level::Error, "leasing jobs failed", json!({"error": e.to_string()}));
                    drop(held);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if jobs.is_empty() {
                drop(held);
                let wait = match self.store.next_due() {
                    Ok(Some(due)) => (due - now_ms()).clamp(1, 250) as u64,
                    _ => 250,
                };
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                }
                continue;
            }
            for job in jobs {
                let Some(permit) = held.as_mut().and_then(|h| h.split(1)) else { return };
                let rt = self.clone();
                tokio::spawn(async move {
                    rt.process(job).await;
                    drop(permit);
                });
            }
        }
    }

    async fn process(self: &Arc<Self>, job: Leased) {
        let Job { id, payload, group, .. } = job.decode();
        let result = match payload {
            Ok(Payload::Run(run)) => run::step(self.as_ref(), &id, run).await,
            Ok(Payload::Delivery(dj)) => self.process_delivery(id.clone(), dj).await,
            Err(undecodable) => self.bury(&id, undecodable).await,
        };
        if let Err(e) = result {
            self.logger.log(Level::Error, "job failed; it will be retried", json!({"job": id, "error": e.to_string()}));
        }
        // The next job of its group is due once this one is done.
        if group.is_some() {
            self.wake();
        }
    }

    /// A job this version cannot read (one a newer version wrote, before a
    /// rollback) is dead to this process: parked whole, never retried in a
    /// loop, said in the log (an entry and an error line); the next start
    /// tries it again, so a version that reads it runs it
    /// ([`Store::park_job`]). Nothing of it is lost.
    async fn bury(&self, job_id: &str, u: Undecodable) -> Result<(), Error> {
        self.store.park_job(job_id)?;
        let reason = format!("its {} payload cannot be read: {}", u.kind, u.error);
        self.logger.log(
            Level::Error,
            "job dead: parked until the next start",
            json!({"job": job_id, "reason": reason}),
        );
        let entry = LogEntry {
            at: now_ms(),
            kind: hookflow_core::commit::EntryKind::Job,
            outcome: Some("dead".into()),
            detail: json!({
                "job": job_id, "kind": u.kind, "reason": reason, "parked": true,
                "payload": hookflow_core::text::head(&u.text, 4096),
            }),
            ..Default::default()
        };
        self.store.commit(Commit { log: vec![entry], ..Default::default() }).await
    }

    /// Commits `commit`, its deliveries due now inserted leased while a
    /// worker permit is free ([`lease_ready`](Self::lease_ready)) and sent
    /// from here once the commit is durable; the workers are woken for the
    /// jobs it queued otherwise.
    pub async fn commit_and_send(&self, mut commit: Commit) -> Result<(), Error> {
        let ready = self.lease_ready(&mut commit, 0);
        let queued = commit.jobs.len() > ready.len();
        // A run's end is written once (a finished run changes no more):
        // counted when it is durable.
        let ended: Vec<(String, String, &'static str)> = commit
            .runs
            .iter()
            .filter(|r| matches!(r.status, "succeeded" | "failed"))
            .map(|r| (r.tenant.clone(), r.flow_id.clone(), r.status))
            .collect();
        self.store.commit(commit).await?;
        for (tenant, flow, outcome) in ended {
            self.metrics.run(&tenant, &flow, outcome);
        }
        self.arc().dispatch(ready);
        if queued {
            self.wake();
        }
        Ok(())
    }

    /// Marks the delivery jobs of `commit` from `first` on as leased while
    /// worker permits are free, and returns them to
    /// [`dispatch`](Self::dispatch) once the commit is durable.
    pub fn lease_ready(&self, commit: &mut Commit, first: usize) -> Vec<Ready> {
        let mut ready = Vec::new();
        for job in commit.jobs.iter_mut().skip(first) {
            // A grouped job waits for its turn in the queue.
            let Payload::Delivery(dj) = &job.payload else { continue };
            if job.group.is_some() {
                continue;
            }
            let Ok(permit) = self.permits.clone().try_acquire_owned() else { break };
            job.leased_for = Some(LEASE_MS);
            ready.push(Ready { job_id: job.id.clone(), job: dj.clone(), permit });
        }
        ready
    }

    /// Writes the operational log lines of a step.
    pub fn write_lines(&self, lines: Vec<engine::LogLine>) {
        self.logger.lines(lines);
    }

    /// Sends deliveries that a durable commit inserted leased.
    pub fn dispatch(self: &Arc<Self>, ready: Vec<Ready>) {
        for Ready { job_id, job, permit } in ready {
            let rt = self.clone();
            tokio::spawn(async move {
                if let Err(e) = rt.process_delivery(job_id.clone(), job).await {
                    rt.logger.log(
                        Level::Error,
                        "job failed; it will be retried",
                        json!({"job": job_id, "error": e.to_string()}),
                    );
                }
                drop(permit);
            });
        }
    }

    async fn drop_job(&self, job_id: &str, payload: Value, why: &str) -> Result<(), Error> {
        self.logger.log(Level::Error, "job dropped", json!({"job": job_id, "reason": why}));
        let entry = LogEntry {
            at: now_ms(),
            kind: hookflow_core::commit::EntryKind::Job,
            outcome: Some("dropped".into()),
            detail: json!({"job": job_id, "reason": why, "payload": payload}),
            ..Default::default()
        };
        self.store.commit(Commit { done: Some(job_id.to_string()), log: vec![entry], ..Default::default() }).await
    }

    /// One attempt of a delivery job, through the one delivery pipeline
    /// ([`hookflow_pipeline::delivery`]); the commit inserts the deliveries
    /// it creates leased (sent at once by this process) and wakes the
    /// workers for the rest.
    async fn process_delivery(self: &Arc<Self>, job_id: String, dj: DeliveryJob) -> Result<(), Error> {
        let attempted = delivery::attempt(self.as_ref(), &job_id, dj).await?;
        delivery::commit(self.as_ref(), attempted, |mut commit, _now, changed| async move {
            let ready = self.lease_ready(&mut commit, 0);
            let wake = !commit.jobs.is_empty() || commit.reschedule.is_some();
            self.store.commit(commit).await?;
            if let Some(c) = &changed {
                self.subs.saved(c);
            }
            self.dispatch(ready);
            if wake {
                self.wake();
            }
            Ok(())
        })
        .await
    }

    /// Publishes `event` through the publish pipeline
    /// ([`hookflow_pipeline::publish`]): one delivery per matching active
    /// subscription, one run per flow it starts, all in one commit with the
    /// event row, which refuses a repeat of its id inside the idempotency
    /// window.
    pub async fn publish(self: &Arc<Self>, event: Event) -> Result<Published, PublishError> {
        match publish::publish(self.as_ref(), &event).await? {
            Some(p) => Ok(p),
            None => Err(PublishError::Duplicate(event.id)),
        }
    }

    /// Stores a subscription change (and the jobs it asks for) with a log
    /// entry.
    pub async fn save_subscription(
        self: &Arc<Self>,
        sub: &Subscription,
        prev: Option<i64>,
        jobs: Vec<NewJob>,
    ) -> Result<(), Error> {
        let now = now_ms();
        let row = match prev {
            Some(prev) => SubscriptionRow::replacing(sub, prev),
            None => SubscriptionRow::of(sub),
        };
        let mut commit = Commit { subscriptions: vec![row], jobs, ..Default::default() };
        commit.log.push(LogEntry::for_subscription(sub, now));
        let ready = self.lease_ready(&mut commit, 0);
        // Not between a delivery's health check and its write.
        let _health = self.subs.health.lock().await;
        self.store.commit(commit).await?;
        self.subs.saved(sub);
        self.dispatch(ready);
        self.wake();
        Ok(())
    }

    /// Queues `jobs` (a replay's deliveries, a publish's settling) in one
    /// commit, for the workers: not leased and sent from here, because a
    /// job of the same id may be queued already (its insert is then
    /// ignored, and a copy sent from here would race it).
    pub async fn queue(&self, jobs: Vec<NewJob>) -> Result<(), Error> {
        self.store.commit(Commit { jobs, ..Default::default() }).await?;
        self.wake();
        Ok(())
    }
}

/// A runtime's configuration for the crate's tests: data in `dir`, no
/// secrets, quiet logs, two workers, the default subscription settings.
#[cfg(test)]
pub(crate) fn test_config(dir: &std::path::Path) -> RuntimeConfig {
    RuntimeConfig {
        data_dir: dir.to_path_buf(),
        target_policy: TargetPolicy::default(),
        secrets: Secrets::default(),
        logger: Logger::new(Default::default(), std::iter::empty()),
        concurrency: 2,
        subscriptions: Settings::default(),
    }
}

#[cfg(test)]
mod tests {
    //! The publish pipeline on the embedded runtime, with an admin's
    //! enable landing between the publish's read and its write.

    use hookflow_core::engine::LogLine;
    use hookflow_core::subscription::NewSubscription;
    use serde_json::json;

    use super::*;
    use crate::store::LogFilter;

    /// The runtime's own ports, but an enable of `sub` is written right
    /// after the first read of the audience.
    struct EnableMeanwhile {
        rt: Arc<Runtime>,
        sub: Mutex<Option<Subscription>>,
    }

    impl Audience for EnableMeanwhile {
        type Error = Error;

        fn now_ms(&self) -> i64 {
            Audience::now_ms(self.rt.as_ref())
        }

        fn settings(&self) -> &Settings {
            Audience::settings(self.rt.as_ref())
        }

        async fn audience(&self, tenant: &str) -> Result<(Vec<Arc<Subscription>>, Vec<Arc<CompiledFlow>>), Error> {
            let read = self.rt.audience(tenant).await?;
            let sub = self.sub.lock().unwrap().take();
            if let Some(sub) = sub {
                self.rt.save_subscription(&sub.enabled(now_ms(), None), Some(sub.updated_at), Vec::new()).await?;
            }
            Ok(read)
        }

        async fn subscribers(&self, tenant: &str) -> Result<Vec<Arc<Subscription>>, Error> {
            self.rt.subscribers(tenant).await
        }

        async fn queue(&self, jobs: Vec<NewJob>) -> Result<(), Error> {
            Audience::queue(self.rt.as_ref(), jobs).await
        }
    }

    impl PublishPorts for EnableMeanwhile {
        async fn published(&self, event: &Event) -> Result<Option<Repeat>, Error> {
            self.rt.published(event).await
        }

        async fn commit(&self, commit: Commit) -> Result<(), Error> {
            PublishPorts::commit(self.rt.as_ref(), commit).await
        }

        fn lines(&self, _lines: Vec<LogLine>) {}
    }

    /// A runtime over a store of its own (no flows), and the store's folder.
    fn runtime() -> (Arc<Runtime>, PathBuf) {
        let dir = std::env::temp_dir().join(format!("hookflow-rt-{}", uuid::Uuid::now_v7().simple()));
        (Runtime::new(test_config(&dir), Flows::default()).unwrap(), dir)
    }

    /// A job whose row this version cannot read (a kind it does not know,
    /// a payload that is not its kind's: a newer version's) is dead to this
    /// process, with an entry that says why: neither skipped silently nor
    /// retried in a loop, and kept whole for the next start.
    #[tokio::test]
    async fn a_job_that_cannot_be_read_is_parked_whole_said_dead_and_tried_again_at_the_next_start() {
        let (rt, dir) = runtime();
        rt.store.insert_raw_job("r:run_1:start", "run", "{\"run_id\": ");
        rt.store.insert_raw_job("d:msg_1", "teleport", "{}");
        let worker = tokio::spawn(rt.clone().work());
        rt.wake();
        let dead = |rt: &Runtime| {
            let entries = rt.store.query_log(&LogFilter { failed_only: true, ..Default::default() }).unwrap();
            entries.into_iter().filter(|e| e.outcome.as_deref() == Some("dead")).collect::<Vec<_>>()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while dead(&rt).len() < 2 || rt.store.next_due().unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "dead: {:?}", dead(&rt));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let mut said: Vec<String> =
            dead(&rt).iter().map(|e| e.detail["reason"].as_str().unwrap().to_string()).collect();
        said.sort();
        assert!(said[0].starts_with("its run payload cannot be read"), "{said:?}");
        assert!(said[1].contains("unknown job kind `teleport`"), "{said:?}");
        worker.abort();
        // Kept whole: the next start makes both due again, as they were.
        rt.store.release_leases().unwrap();
        let mut again: Vec<Job> =
            rt.store.lease(now_ms(), 10, 1_000).await.unwrap().into_iter().map(Leased::decode).collect();
        again.sort_by(|a, b| a.id.cmp(&b.id));
        let texts: Vec<&str> = again.iter().map(|j| j.payload.as_ref().unwrap_err().text.as_str()).collect();
        assert_eq!(texts, ["{}", "{\"run_id\": "]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_subscription_enabled_during_a_publish_gets_its_event() {
        let (rt, dir) = runtime();
        let new = NewSubscription {
            url: "https://receiver.invalid/hook".into(),
            event_types: vec!["order.*".into()],
            ..Default::default()
        };
        let (mut sub, _) = new.create(now_ms()).unwrap();
        sub = sub.disabled_by_admin(now_ms());
        rt.save_subscription(&sub, None, Vec::new()).await.unwrap();
        let port = EnableMeanwhile { rt: rt.clone(), sub: Mutex::new(Some(sub.clone())) };
        let event = Event {
            id: "evt_meanwhile".into(),
            tenant: sub.tenant.clone(),
            kind: "order.paid".into(),
            at: now_ms(),
            data: json!({}),
        };
        let published = publish::publish(&port, &event).await.unwrap().expect("published");
        assert_eq!(published.deliveries, 0, "its first read saw the subscription disabled");
        // The delivery was queued by settling, for the workers (none runs
        // here: it waits in the queue).
        let delivery = format!("msg_{}_{}", sub.id.trim_start_matches("sub_"), event.id);
        let queued = rt.store.lease(now_ms() + 3_600_000, 100, 1_000).await.unwrap();
        let ids: Vec<&str> = queued.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, [format!("d:{delivery}")], "one delivery, to the subscription enabled meanwhile");
        drop(rt);
        let _ = std::fs::remove_dir_all(dir);
    }
}

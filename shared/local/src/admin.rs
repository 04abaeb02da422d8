//! The admin API's backend on the embedded runtime ([`hookflow_admin`]
//! has the routes): flows are the files of the flow directory,
//! subscriptions, keyrings and events the SQLite store's, through the
//! runtime's cache.

use std::path::PathBuf;
use std::sync::Arc;

use hookflow_admin::{Backend, BackendError, FlowInfo, LogFilter, Page, Published};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{DeadDelivery, LogEntry, NewJob};
use hookflow_core::flow::TriggerKind;
use hookflow_core::inbound::Accepted;
use hookflow_core::stats::{Stats, StatsQuery};
use hookflow_core::subscription::{Event, Keyring, Settings, Subscription};
use serde_json::Value;

use crate::flows::{Flows, load_dir};
use crate::runtime::{PublishError, Runtime};
use crate::{Error, now_ms};

/// `hookflow dev`'s admin backend.
pub struct DevBackend {
    pub rt: Arc<Runtime>,
    /// Where `PUT /v1/flows/...` writes flow files.
    pub flows_dir: PathBuf,
    /// Held while a replayed run is looked for and stored: the same replay
    /// asked twice at once stores one run (a second commit of it would
    /// write its first state over a run already moving).
    pub starting: tokio::sync::Mutex<()>,
}

impl DevBackend {
    pub fn new(rt: Arc<Runtime>, flows_dir: PathBuf) -> Self {
        DevBackend { rt, flows_dir, starting: tokio::sync::Mutex::new(()) }
    }
}

fn unavailable(e: Error) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

impl DevBackend {
    /// The file `flow` is written to (its own, or a new one), unless its
    /// route is another flow's.
    fn file_for(&self, flow: &CompiledFlow) -> Result<PathBuf, BackendError> {
        let (tenant, id) = (&flow.flow.tenant, &flow.flow.id);
        let file = self
            .rt
            .flows()
            .by_id(tenant, id)
            .map_or_else(|| self.flows_dir.join(format!("{tenant}.{id}.yaml")), |f| f.file.clone());
        if flow.flow.trigger.kind == TriggerKind::Webhook
            && let Some(other) = self.rt.flows().by_route(tenant, &flow.flow.trigger.path)
            && other.file != file
        {
            return Err(BackendError::Conflict {
                field: Some("trigger.path".into()),
                message: format!("flow `{}` uses the trigger {} already", other.flow.id, other.flow.trigger_path()),
            });
        }
        Ok(file)
    }

    /// Reloads the flows from the directory (after a write), so the change
    /// is live when the answer goes out.
    fn reload(&self) -> Result<(), BackendError> {
        let conflict = |message: String| BackendError::Conflict { field: None, message };
        let flows = load_dir(&self.flows_dir).map_err(|p| conflict(p.join("; ")))?;
        self.rt.set_flows(Flows::new(flows).map_err(|e| conflict(e.to_string()))?);
        Ok(())
    }
}

impl Backend for DevBackend {
    fn settings(&self) -> &Settings {
        &self.rt.settings
    }

    fn now_ms(&self) -> i64 {
        now_ms()
    }

    async fn flows(&self) -> Result<Vec<FlowInfo>, BackendError> {
        Ok(self.rt.flows().all().map(|f| FlowInfo::of(f, None)).collect())
    }

    async fn flow(&self, tenant: &str, id: &str) -> Result<Option<FlowInfo>, BackendError> {
        Ok(self.rt.flows().by_id(tenant, id).map(|f| {
            let source = std::fs::read_to_string(&f.file).unwrap_or_default();
            FlowInfo::of(&f, Some(source))
        }))
    }

    async fn check_flow(&self, flow: &CompiledFlow) -> Result<(), BackendError> {
        self.file_for(flow).map(|_| ())
    }

    async fn put_flow(&self, flow: &CompiledFlow, text: &str) -> Result<(FlowInfo, bool), BackendError> {
        let existing = self.rt.flows().by_id(&flow.flow.tenant, &flow.flow.id);
        let file = self.file_for(flow)?;
        std::fs::write(&file, text).map_err(|e| BackendError::Unavailable(format!("{}: {e}", file.display())))?;
        self.reload()?;
        let mut info = FlowInfo::of(flow, None);
        info.file = file.display().to_string();
        Ok((info, existing.is_none()))
    }

    async fn delete_flow(&self, tenant: &str, id: &str) -> Result<bool, BackendError> {
        let Some(flow) = self.rt.flows().by_id(tenant, id) else { return Ok(false) };
        std::fs::remove_file(&flow.file)
            .map_err(|e| BackendError::Unavailable(format!("{}: {e}", flow.file.display())))?;
        self.reload()?;
        Ok(true)
    }

    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, BackendError> {
        Ok(self.rt.subs.get(id).map(|s| (*s).clone()))
    }

    async fn subscriptions(&self, tenant: Option<&str>) -> Result<Vec<Subscription>, BackendError> {
        Ok(self.rt.subs.list(tenant, false).iter().map(|s| (**s).clone()).collect())
    }

    async fn save_subscription(
        &self,
        sub: &Subscription,
        prev: Option<i64>,
        jobs: Vec<NewJob>,
    ) -> Result<(), BackendError> {
        self.rt.save_subscription(sub, prev, jobs).await.map_err(|e| match e {
            Error::Conflict(_) => BackendError::Conflict {
                field: None,
                message: "the subscription changed meanwhile (a delivery's outcome); read it and try again".into(),
            },
            other => unavailable(other),
        })
    }

    async fn queue(&self, jobs: Vec<NewJob>) -> Result<(), BackendError> {
        self.rt.queue(jobs).await.map_err(unavailable)
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool, BackendError> {
        self.rt.subs.delete(&self.rt.store, id).map_err(unavailable)
    }

    async fn backlog(&self, sub: &Subscription) -> Result<hookflow_core::limit::Backlog, BackendError> {
        let (waiting, in_flight) = self.rt.limiter.backlog(&sub.id, sub.rate_limit.as_ref());
        Ok(hookflow_core::limit::Backlog { waiting, in_flight })
    }

    async fn keyring(&self, sub: &Subscription) -> Result<Option<Keyring>, BackendError> {
        // A keyring sealed under another key (`keyring.key` replaced)
        // is read as none, as one that does not parse is: rotating the
        // secret starts a new keyring instead of failing for good.
        let text = match self.rt.subs.keyring(&self.rt.store, &sub.keyring_name()) {
            Err(Error::Malformed(_)) => None,
            other => other.map_err(unavailable)?,
        };
        Ok(text.and_then(|t| Keyring::from_text(&t)))
    }

    async fn put_keyring(&self, sub: &Subscription, ring: &Keyring) -> Result<(), BackendError> {
        self.rt.subs.put_keyring(&self.rt.store, &sub.keyring_name(), &ring.to_text()).map_err(unavailable)
    }

    async fn publish(&self, event: Event) -> Result<Published, BackendError> {
        match self.rt.publish(event).await {
            Ok(p) => Ok(p),
            Err(PublishError::Duplicate(id)) => Err(BackendError::Duplicate(id)),
            Err(PublishError::Runtime(e)) => Err(unavailable(e)),
        }
    }

    async fn events(&self, tenant: Option<&str>, since: i64, limit: usize) -> Result<Vec<Event>, BackendError> {
        self.rt.store.events(tenant, since, limit).map_err(unavailable)
    }

    async fn logs(&self, q: LogFilter) -> Result<Vec<LogEntry>, BackendError> {
        self.rt.store.query_log(&q).map_err(unavailable)
    }

    async fn requests(&self, q: LogFilter) -> Result<Vec<LogEntry>, BackendError> {
        self.rt.store.query_requests(&q).map_err(unavailable)
    }

    async fn count_logs(&self, q: LogFilter) -> Result<Option<usize>, BackendError> {
        self.rt.store.count_log(&q).map(Some).map_err(unavailable)
    }

    /// Counted by SQLite: no entry is read.
    async fn stats(&self, q: StatsQuery) -> Result<Stats, BackendError> {
        self.rt.store.stats(&q).map_err(unavailable)
    }

    async fn run(&self, id: &str) -> Result<Option<(Value, Vec<LogEntry>)>, BackendError> {
        let Some(run) = self.rt.store.run(id).map_err(unavailable)? else { return Ok(None) };
        let filter = LogFilter { run_id: Some(id.to_string()), ..Default::default() };
        Ok(Some((run, self.rt.store.query_log(&filter).map_err(unavailable)?)))
    }

    async fn current_flow(&self, tenant: &str, id: &str) -> Result<Option<Arc<CompiledFlow>>, BackendError> {
        Ok(self.rt.flows().by_id(tenant, id))
    }

    /// One transaction: a run of that id stored already was all stored.
    async fn start_run(&self, accepted: Accepted) -> Result<bool, BackendError> {
        let _one_at_a_time = self.starting.lock().await;
        if self.rt.store.run(&accepted.run.id).map_err(unavailable)?.is_some() {
            return Ok(false);
        }
        self.rt.store.commit(accepted.outcome.commit).await.map_err(unavailable)?;
        self.rt.wake();
        Ok(true)
    }

    async fn dead(&self, flow_id: Option<&str>, page: Page) -> Result<(Vec<DeadDelivery>, usize), BackendError> {
        let after = page.after.as_ref().map(|(at, id)| (*at, id.as_str()));
        self.rt.store.dead_page(flow_id, after, page.offset, page.limit, false).map_err(unavailable)
    }

    async fn replay(&self, delivery_id: &str, _: Option<&str>) -> Result<bool, BackendError> {
        let Some(d) = self.rt.store.dead_one(delivery_id).map_err(unavailable)? else { return Ok(false) };
        let queued = self.rt.store.replay(&d).map_err(unavailable)?;
        self.rt.wake();
        Ok(queued)
    }
}

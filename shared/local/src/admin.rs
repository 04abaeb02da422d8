//! The admin API's backend on the embedded runtime ([`hookflow_admin`]
//! has the routes): flows are the files of the flow directory,
//! subscriptions, keyrings and events the SQLite store's, through the
//! runtime's cache.

use std::path::PathBuf;
use std::sync::Arc;

use hookflow_admin::backend::Fut;
use hookflow_admin::{Backend, BackendError, FlowInfo, LogFilter, Page, Published};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{DeadDelivery, LogEntry, NewJob};
use hookflow_core::flow::TriggerKind;
use hookflow_core::inbound::Accepted;
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

    fn flows(&self) -> Fut<'_, Vec<FlowInfo>> {
        Box::pin(async move { Ok(self.rt.flows().all().map(|f| FlowInfo::of(f, None)).collect()) })
    }

    fn flow<'a>(&'a self, tenant: &'a str, id: &'a str) -> Fut<'a, Option<FlowInfo>> {
        Box::pin(async move {
            Ok(self.rt.flows().by_id(tenant, id).map(|f| {
                let source = std::fs::read_to_string(&f.file).unwrap_or_default();
                FlowInfo::of(&f, Some(source))
            }))
        })
    }

    fn check_flow<'a>(&'a self, flow: &'a CompiledFlow) -> Fut<'a, ()> {
        Box::pin(async move { self.file_for(flow).map(|_| ()) })
    }

    fn put_flow<'a>(&'a self, flow: &'a CompiledFlow, text: &'a str) -> Fut<'a, (FlowInfo, bool)> {
        Box::pin(async move {
            let existing = self.rt.flows().by_id(&flow.flow.tenant, &flow.flow.id);
            let file = self.file_for(flow)?;
            std::fs::write(&file, text).map_err(|e| BackendError::Unavailable(format!("{}: {e}", file.display())))?;
            self.reload()?;
            let mut info = FlowInfo::of(flow, None);
            info.file = file.display().to_string();
            Ok((info, existing.is_none()))
        })
    }

    fn delete_flow<'a>(&'a self, tenant: &'a str, id: &'a str) -> Fut<'a, bool> {
        Box::pin(async move {
            let Some(flow) = self.rt.flows().by_id(tenant, id) else { return Ok(false) };
            std::fs::remove_file(&flow.file)
                .map_err(|e| BackendError::Unavailable(format!("{}: {e}", flow.file.display())))?;
            self.reload()?;
            Ok(true)
        })
    }

    fn subscription<'a>(&'a self, id: &'a str) -> Fut<'a, Option<Subscription>> {
        Box::pin(async move { Ok(self.rt.subs.get(id).map(|s| (*s).clone())) })
    }

    fn subscriptions<'a>(&'a self, tenant: Option<&'a str>) -> Fut<'a, Vec<Subscription>> {
        Box::pin(async move { Ok(self.rt.subs.list(tenant, false).iter().map(|s| (**s).clone()).collect()) })
    }

    fn save_subscription<'a>(&'a self, sub: &'a Subscription, prev: Option<i64>, jobs: Vec<NewJob>) -> Fut<'a, ()> {
        Box::pin(async move {
            self.rt.save_subscription(sub, prev, jobs).await.map_err(|e| match e {
                Error::Conflict(_) => BackendError::Conflict {
                    field: None,
                    message: "the subscription changed meanwhile (a delivery's outcome); read it and try again".into(),
                },
                other => unavailable(other),
            })
        })
    }

    fn queue(&self, jobs: Vec<NewJob>) -> Fut<'_, ()> {
        Box::pin(async move { self.rt.queue(jobs).await.map_err(unavailable) })
    }

    fn delete_subscription<'a>(&'a self, id: &'a str) -> Fut<'a, bool> {
        Box::pin(async move { self.rt.subs.delete(&self.rt.store, id).map_err(unavailable) })
    }

    fn keyring<'a>(&'a self, sub: &'a Subscription) -> Fut<'a, Option<Keyring>> {
        Box::pin(async move {
            // A keyring sealed under another key (`keyring.key` replaced)
            // is read as none, as one that does not parse is: rotating the
            // secret starts a new keyring instead of failing for good.
            let text = match self.rt.subs.keyring(&self.rt.store, &sub.keyring_name()) {
                Err(Error::Malformed(_)) => None,
                other => other.map_err(unavailable)?,
            };
            Ok(text.and_then(|t| Keyring::from_text(&t)))
        })
    }

    fn put_keyring<'a>(&'a self, sub: &'a Subscription, ring: &'a Keyring) -> Fut<'a, ()> {
        Box::pin(async move {
            self.rt.subs.put_keyring(&self.rt.store, &sub.keyring_name(), &ring.to_text()).map_err(unavailable)
        })
    }

    fn publish(&self, event: Event) -> Fut<'_, Published> {
        Box::pin(async move {
            match self.rt.publish(event).await {
                Ok(p) => Ok(p),
                Err(PublishError::Duplicate(id)) => Err(BackendError::Duplicate(id)),
                Err(PublishError::Runtime(e)) => Err(unavailable(e)),
            }
        })
    }

    fn events<'a>(&'a self, tenant: Option<&'a str>, since: i64, limit: usize) -> Fut<'a, Vec<Event>> {
        Box::pin(async move { self.rt.store.events(tenant, since, limit).map_err(unavailable) })
    }

    fn logs(&self, q: LogFilter) -> Fut<'_, Vec<LogEntry>> {
        Box::pin(async move { self.rt.store.query_log(&q).map_err(unavailable) })
    }

    fn count_logs(&self, q: LogFilter) -> Fut<'_, Option<usize>> {
        Box::pin(async move { self.rt.store.count_log(&q).map(Some).map_err(unavailable) })
    }

    fn run<'a>(&'a self, id: &'a str) -> Fut<'a, Option<(Value, Vec<LogEntry>)>> {
        Box::pin(async move {
            let Some(run) = self.rt.store.run(id).map_err(unavailable)? else { return Ok(None) };
            let filter = LogFilter { run_id: Some(id.to_string()), ..Default::default() };
            Ok(Some((run, self.rt.store.query_log(&filter).map_err(unavailable)?)))
        })
    }

    fn current_flow<'a>(&'a self, tenant: &'a str, id: &'a str) -> Fut<'a, Option<Arc<CompiledFlow>>> {
        Box::pin(async move { Ok(self.rt.flows().by_id(tenant, id)) })
    }

    /// One transaction: a run of that id stored already was all stored.
    fn start_run(&self, accepted: Accepted) -> Fut<'_, bool> {
        Box::pin(async move {
            let _one_at_a_time = self.starting.lock().await;
            if self.rt.store.run(&accepted.run.id).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            self.rt.store.commit(accepted.outcome.commit).await.map_err(unavailable)?;
            self.rt.wake();
            Ok(true)
        })
    }

    fn dead<'a>(&'a self, flow_id: Option<&'a str>, page: Page) -> Fut<'a, (Vec<DeadDelivery>, usize)> {
        Box::pin(async move {
            let after = page.after.as_ref().map(|(at, id)| (*at, id.as_str()));
            self.rt.store.dead_page(flow_id, after, page.offset, page.limit, false).map_err(unavailable)
        })
    }

    fn replay<'a>(&'a self, delivery_id: &'a str, _: Option<&'a str>) -> Fut<'a, bool> {
        Box::pin(async move {
            let Some(d) = self.rt.store.dead_one(delivery_id).map_err(unavailable)? else { return Ok(false) };
            let queued = self.rt.store.replay(&d).map_err(unavailable)?;
            self.rt.wake();
            Ok(queued)
        })
    }
}

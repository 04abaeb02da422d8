//! The admin API's backend on the embedded runtime ([`hookflow_admin`]
//! has the routes): flows are the files of the flow directory,
//! subscriptions, keyrings and events the SQLite store's, through the
//! runtime's cache.

use std::path::PathBuf;
use std::sync::Arc;

use hookflow_admin::backend::Fut;
use hookflow_admin::{Backend, BackendError, FlowInfo, LogQuery, Published};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{DeadDelivery, LogEntry, NewJob};
use hookflow_core::flow::TriggerKind;
use hookflow_core::subscription::{Event, Keyring, Settings, Subscription};
use serde_json::Value;

use crate::flows::{Flows, load_dir};
use crate::runtime::{PublishError, Runtime};
use crate::store::LogFilter;
use crate::{Error, now_ms};

/// `hookflow dev`'s admin backend.
pub struct DevBackend {
    pub rt: Arc<Runtime>,
    /// Where `PUT /v1/flows/...` writes flow files.
    pub flows_dir: PathBuf,
}

fn unavailable(e: Error) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

impl DevBackend {
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

    fn put_flow<'a>(&'a self, flow: &'a CompiledFlow, text: &'a str) -> Fut<'a, (FlowInfo, bool)> {
        Box::pin(async move {
            let (tenant, id) = (&flow.flow.tenant, &flow.flow.id);
            let existing = self.rt.flows().by_id(tenant, id);
            let file = existing
                .as_ref()
                .map_or_else(|| self.flows_dir.join(format!("{tenant}.{id}.yaml")), |f| f.file.clone());
            // The route must not clash with another flow's.
            if flow.flow.trigger.kind == TriggerKind::Webhook
                && let Some(other) = self.rt.flows().by_route(tenant, &flow.flow.trigger.path)
                && other.file != file
            {
                return Err(BackendError::Conflict {
                    field: Some("trigger.path".into()),
                    message: format!("flow `{}` uses the trigger {} already", other.flow.id, other.flow.trigger_path()),
                });
            }
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

    fn logs(&self, q: LogQuery) -> Fut<'_, Vec<LogEntry>> {
        Box::pin(async move {
            let filter = LogFilter {
                flow_id: q.flow_id,
                run_id: q.run_id,
                since: q.since,
                failed_only: q.failed_only,
                tenant: q.tenant,
                event_id: q.event_id,
                limit: Some(q.limit),
            };
            self.rt.store.query_log(&filter).map_err(unavailable)
        })
    }

    fn run<'a>(&'a self, id: &'a str) -> Fut<'a, Option<(Value, Vec<LogEntry>)>> {
        Box::pin(async move {
            let Some(run) = self.rt.store.run(id).map_err(unavailable)? else { return Ok(None) };
            let filter = LogFilter { run_id: Some(id.to_string()), ..Default::default() };
            Ok(Some((run, self.rt.store.query_log(&filter).map_err(unavailable)?)))
        })
    }

    fn dead<'a>(&'a self, flow_id: Option<&'a str>) -> Fut<'a, Vec<DeadDelivery>> {
        Box::pin(async move { self.rt.store.dead_jobs(flow_id).map_err(unavailable) })
    }

    fn replay<'a>(&'a self, delivery_id: &'a str) -> Fut<'a, bool> {
        Box::pin(async move {
            let dead = self.rt.store.dead_jobs(None).map_err(unavailable)?;
            let Some(d) = dead.into_iter().find(|d| d.row.delivery_id == delivery_id) else { return Ok(false) };
            self.rt.store.replay(&d).map_err(unavailable)?;
            self.rt.wake();
            Ok(true)
        })
    }
}

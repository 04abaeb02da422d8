//! The admin API's backend on AWS: subscriptions and events in the
//! DynamoDB table, keyrings in Secrets Manager, jobs on the SQS queues
//! ([`hookflow_admin`] has the routes, shared with `hookflow dev`).
//!
//! Not here yet (answered `501 unsupported`): deleting flows (`hookflow
//! apply` manages them). Listing reads the `FLOWS` partition: a flow put
//! before that partition existed is listed once it is put again.
//! `ordering: per_key` needs the FIFO queue of ordered deliveries
//! (`HOOKFLOW_ORDERED_QUEUE_URL`, which the template sets): without it,
//! such a subscription is refused with 501 rather than delivered out of
//! order.

use std::collections::BTreeSet;

use std::sync::Arc;

use crate::Error;
use crate::outbox::ACCEPTED;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::table::{DeadFilter, Requests};
use hookflow_admin::{Backend, BackendError, FlowInfo, LogFilter, Page, Published};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{Commit, DeadDelivery, LogEntry, NewJob, SubscriptionRow};
use hookflow_core::inbound::Accepted;
use hookflow_core::ports::{Clock, SystemClock};
use hookflow_core::subscription::{self, DEFAULT_TENANT, Event, Keyring, Settings, Subscription};
use hookflow_pipeline::{Audience, PublishPorts, Repeat};
use serde_json::{Value, json};

/// What the admin function needs, built once per container.
pub struct AwsBackend {
    pub store: Store,
    pub secrets: Secrets,
    pub settings: Settings,
}

impl AwsBackend {
    /// Whether run `id` is stored; if it is and its last commit was its
    /// start, what that commit queued is sent again (an input ignores a
    /// message it applied: harmless twice).
    async fn resend_stored(&self, id: &str, now: i64) -> Result<bool, BackendError> {
        let Some(stored) = self.store.table.load_stored(id).await.map_err(backend)? else { return Ok(false) };
        if stored.outbox.caused_by(ACCEPTED) {
            let _sent = self.store.redrive(&stored.outbox, now).await.map_err(backend)?;
        }
        Ok(true)
    }

    /// The attempts of a subscription's deliveries from `since` to `upto`:
    /// its verification's, then those of the events it selects, newest
    /// first, until `limit` are found or [`ATTEMPT_RUNS`] events were read
    /// (the hours that hold events, then one `Query` an event: the log is
    /// kept by run, a subscription's deliveries under their event).
    async fn subscription_attempts(
        &self,
        id: &str,
        since: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, BackendError> {
        let Some(sub) = self.subscription(id).await? else { return Ok(Vec::new()) };
        let (table, now) = (&self.store.table, self.now_ms());
        let mine = |entries: Vec<LogEntry>| -> Vec<LogEntry> {
            entries.into_iter().filter(|e| e.detail.get("subscription_id") == Some(&json!(id))).collect()
        };
        let mut out = mine(table.run_entries(&format!("verify_{id}"), now).await.map_err(backend)?);
        let events = table.recent_events(&sub.tenant, (since, upto), now, ATTEMPT_RUNS, |kind| sub.selects(kind)).await;
        for e in events.map_err(backend)? {
            if out.len() >= limit {
                break;
            }
            out.extend(mine(table.run_entries(&e.id, now).await.map_err(backend)?));
        }
        out.sort_by_key(|e| e.at);
        Ok(out)
    }

    /// Refuses what this deployment cannot honour.
    fn supported(&self, sub: &Subscription) -> Result<(), BackendError> {
        if sub.ordering == subscription::Ordering::PerKey && !self.store.queues.orders() {
            return Err(BackendError::Unsupported(
                "`ordering: per_key` needs the FIFO queue of ordered deliveries: set HOOKFLOW_ORDERED_QUEUE_URL \
                 (the SAM template does)"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn backend(e: Error) -> BackendError {
    match e {
        Error::Duplicate(m) => BackendError::Duplicate(m),
        Error::Conflict(m) => BackendError::Conflict { field: None, message: m },
        Error::TooLarge(m) => BackendError::TooLarge(m),
        other => BackendError::Unavailable(other.to_string()),
    }
}

/// A deployment's request log is read per tenant: one that names none
/// reads `default`'s.
/// Valid, but more than the AWS stack can run: 422.
fn limits(flow: &CompiledFlow) -> Result<(), BackendError> {
    let problems = crate::limits::problems(flow);
    if problems.is_empty() {
        return Ok(());
    }
    Err(BackendError::Invalid(
        problems.into_iter().map(|(field, message)| subscription::FieldError::new(field, message)).collect(),
    ))
}

/// The most events whose attempts one read of a subscription's attempts
/// looks at (a `Query` each).
const ATTEMPT_RUNS: usize = 200;

/// The most runs one page of the request log reads (a `Query` each, 16 at
/// a time): as many as the entries the largest page holds, so a page is
/// cut only by its `limit` (which `GET /v1/stats` reports as `capped`),
/// never short of it by its runs.
const PAGE_RUNS: usize = hookflow_admin::backend::STATS_READ;

fn tenant_or_default(t: Option<&str>) -> &str {
    t.unwrap_or(DEFAULT_TENANT)
}

impl AwsBackend {
    /// Every tenant with a log: those of the stored flows and of the
    /// subscriptions, and the default one.
    async fn tenants(&self) -> Result<BTreeSet<String>, BackendError> {
        let mut tenants = BTreeSet::from([DEFAULT_TENANT.to_string()]);
        tenants.extend(self.store.table.flow_ids().await.map_err(backend)?.into_iter().map(|(t, _)| t));
        tenants.extend(self.subscriptions(None).await?.into_iter().map(|s| s.tenant));
        Ok(tenants)
    }
}

impl Backend for AwsBackend {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    /// The flows' current versions, 16 reads at a time.
    async fn flows(&self) -> Result<Vec<FlowInfo>, BackendError> {
        use futures_util::StreamExt;
        let ids = self.store.table.flow_ids().await.map_err(backend)?;
        let read = futures_util::stream::iter(ids)
            .map(|(tenant, id)| async move { self.store.table.by_id(&tenant, &id).await })
            .buffered(16)
            .collect::<Vec<_>>()
            .await;
        // A stored flow that no longer loads is left out of the list
        // (`GET` of it says why), not the whole list failed.
        Ok(read
            .into_iter()
            .filter_map(|r| r.ok().flatten())
            .map(|flow| {
                let mut info = FlowInfo::of(&flow, None);
                info.file = format!("table@{}", flow.version);
                info
            })
            .collect())
    }

    async fn flow(&self, tenant: &str, id: &str) -> Result<Option<FlowInfo>, BackendError> {
        let Some((version, _, text)) = self.store.table.flow_text(tenant, id).await.map_err(backend)? else {
            return Ok(None);
        };
        let name = format!("{tenant}/{id}@v{version}");
        let flow = hookflow_core::load_flow(name.as_ref(), &text)
            .map_err(|e| BackendError::Unavailable(format!("flow {name} no longer loads: {e}")))?;
        Ok(Some(FlowInfo::of(&flow, Some(text))))
    }

    /// Valid, but more than the AWS stack can run (422), or a route
    /// another flow has (409) as this container's flow cache knows it (up
    /// to 30 s old: the save's conditional write decides).
    async fn check_flow(&self, flow: &CompiledFlow) -> Result<(), BackendError> {
        limits(flow)?;
        let (tenant, path) = (&flow.flow.tenant, &flow.flow.trigger.path);
        if flow.flow.trigger.kind == hookflow_core::flow::TriggerKind::Webhook
            && let Some(other) = self.store.table.by_route(tenant, path).await.map_err(backend)?
            && other.flow.id != flow.flow.id
        {
            return Err(BackendError::Conflict {
                field: Some("trigger.path".into()),
                message: format!("flow `{}` uses the trigger {} already", other.flow.id, other.flow.trigger_path()),
            });
        }
        Ok(())
    }

    async fn put_flow(&self, flow: &CompiledFlow, text: &str) -> Result<(FlowInfo, bool), BackendError> {
        // Valid, but more than the AWS stack can run: 422, nothing written.
        // (A route another flow has: the write's condition decides.)
        limits(flow)?;
        let version = self.store.table.put_flow(flow, text, self.now_ms()).await.map_err(|e| match e {
            Error::Conflict(m) => BackendError::Conflict { field: Some("trigger.path".into()), message: m },
            other => backend(other),
        })?;
        let mut info = FlowInfo::of(flow, None);
        info.file = format!("{}/{}@v{version}", flow.flow.tenant, flow.flow.id);
        Ok((info, version == 1))
    }

    async fn delete_flow(&self, _tenant: &str, _id: &str) -> Result<bool, BackendError> {
        Err(BackendError::Unsupported("deleting flows is not available on AWS yet".into()))
    }

    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, BackendError> {
        self.store.table.subscription(id).await.map_err(backend)
    }

    async fn subscriptions(&self, tenant: Option<&str>) -> Result<Vec<Subscription>, BackendError> {
        self.store.table.subscriptions(tenant, false).await.map_err(backend)
    }

    async fn save_subscription(
        &self,
        sub: &Subscription,
        prev: Option<i64>,
        jobs: Vec<NewJob>,
    ) -> Result<(), BackendError> {
        self.supported(sub)?;
        let now = self.now_ms();
        let row = match prev {
            Some(prev) => SubscriptionRow::replacing(sub, prev),
            None => SubscriptionRow::of(sub),
        };
        let commit = Commit {
            subscriptions: vec![row],
            jobs,
            log: vec![LogEntry::for_subscription(sub, now)],
            ..Default::default()
        };
        self.store.apply(commit, now).await.map_err(backend)
    }

    async fn queue(&self, jobs: Vec<NewJob>) -> Result<(), BackendError> {
        let commit = Commit { jobs, ..Default::default() };
        self.store.apply(commit, self.now_ms()).await.map_err(backend)
    }

    async fn delete_subscription(&self, id: &str) -> Result<bool, BackendError> {
        let existed = self.store.table.delete_subscription(id).await.map_err(backend)?;
        self.secrets.delete(&subscription::keyring_name(id)).await.map_err(backend)?;
        Ok(existed)
    }

    /// From the `subscription.disabled` event's outbox, if it is live
    /// ([`Store::redrive_event`]).
    async fn flush_disabled(&self, sub: &Subscription) -> Result<(), BackendError> {
        if let Some(id) = Event::disabled_id(sub) {
            self.store.redrive_event(&sub.tenant, &id, self.now_ms()).await.map_err(backend)?;
        }
        Ok(())
    }

    async fn backlog(&self, sub: &Subscription) -> Result<hookflow_core::limit::Backlog, BackendError> {
        if sub.limits().is_none() {
            return Ok(Default::default());
        }
        let (waiting, in_flight) =
            self.store.table.backlog(&sub.id, sub.rate_limit.as_ref(), self.now_ms()).await.map_err(backend)?;
        Ok(hookflow_core::limit::Backlog { waiting, in_flight })
    }

    async fn keyring(&self, sub: &Subscription) -> Result<Option<Keyring>, BackendError> {
        let text = self.secrets.get(&sub.keyring_name()).await.map_err(backend)?;
        Ok(text.and_then(|t| Keyring::from_text(&t)))
    }

    async fn put_keyring(&self, sub: &Subscription, ring: &Keyring) -> Result<(), BackendError> {
        self.supported(sub)?;
        self.secrets.put(&sub.keyring_name(), &ring.to_text()).await.map_err(backend)
    }

    async fn publish(&self, event: Event) -> Result<Published, BackendError> {
        match hookflow_pipeline::publish::publish(&Publisher(self), &event).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(BackendError::Duplicate(event.id)),
            Err(e) => Err(backend(e)),
        }
    }

    async fn events(&self, tenant: Option<&str>, since: i64, limit: usize) -> Result<Vec<Event>, BackendError> {
        let t = tenant_or_default(tenant);
        self.store.table.events(t, since, self.now_ms(), limit).await.map_err(backend)
    }

    async fn logs(&self, q: LogFilter) -> Result<Vec<LogEntry>, BackendError> {
        if q.after_seq.is_some() || q.upto_seq.is_some() {
            return Err(BackendError::Unsupported(
                "a deployment's log entries have no `seq` (a table has no commit order): page by `since` and `until`"
                    .into(),
            ));
        }
        let limit = q.limit.unwrap_or(usize::MAX);
        let now = self.now_ms();
        let upto = q.until.map_or(now, |u| u.min(now));
        let table = &self.store.table;
        // What an entry must be, but for `until`: on AWS a page is of
        // requests before `until`, each with its run's whole timeline (a
        // retry later than newer requests is shown with its request, on
        // that request's page).
        let matches = |e: &LogEntry| {
            e.at >= q.since
                && q.flow_id.as_ref().is_none_or(|f| e.flow_id.as_ref() == Some(f))
                && q.event_id.as_ref().is_none_or(|x| e.event_id.as_ref() == Some(x))
                && q.subscription_id.as_ref().is_none_or(|s| e.detail.get("subscription_id") == Some(&json!(s)))
                && (!q.failed_only || e.is_failure())
        };
        let keep = |e: &LogEntry| matches(e) && q.until.is_none_or(|u| e.at < u);
        let mut entries = match (&q.run_id, &q.subscription_id) {
            (Some(run), _) => table.run_entries(run, now).await.map_err(backend)?,
            (None, Some(sub)) => self.subscription_attempts(sub, q.since, upto, limit).await?,
            // An event's entries are kept where its id finds them.
            (None, None) if q.event_id.is_some() => {
                let event = q.event_id.as_deref().unwrap_or_default();
                let tenants = match &q.tenant {
                    Some(t) => BTreeSet::from([t.clone()]),
                    None => self.tenants().await?,
                };
                let mut all = Vec::new();
                for tenant in &tenants {
                    all.extend(table.event_entries(tenant, event, now).await.map_err(backend)?);
                }
                all.sort_by_key(|e| e.at);
                all
            }
            // The newest requests the filters take, with their runs; the
            // log is kept by tenant, so every tenant is read when the
            // query names none.
            (None, None) => {
                let tenants = match &q.tenant {
                    Some(t) => BTreeSet::from([t.clone()]),
                    None => self.tenants().await?,
                };
                let only = Requests { flow_id: q.flow_id.clone(), most: None };
                // `until` is exclusive, a page's bound inclusive.
                let requests = (q.since, q.until.map_or(upto, |u| u.saturating_sub(1).min(upto)));
                let mut all = Vec::new();
                for tenant in &tenants {
                    let page =
                        table.tenant_log_page(tenant, requests, now, limit, limit.min(PAGE_RUNS), &only, matches);
                    all.extend(page.await.map_err(backend)?);
                }
                all.sort_by_key(|e| e.at);
                let skip = all.len().saturating_sub(limit);
                return Ok(all.split_off(skip));
            }
        };
        entries.retain(keep);
        let skip = entries.len().saturating_sub(limit);
        Ok(entries.split_off(skip))
    }

    /// By tenant (every tenant when the filter names none): the newest
    /// requests of each tenant's hours, each with its run's items (one
    /// `Query` a run), a published event with its deliveries' (one
    /// `Query`); a run's own entries by its run.
    async fn requests(&self, q: LogFilter) -> Result<Vec<LogEntry>, BackendError> {
        let (table, now) = (&self.store.table, self.now_ms());
        if let Some(run) = &q.run_id {
            return table.run_entries(run, now).await.map_err(backend);
        }
        let most = q.limit.unwrap_or(PAGE_RUNS).min(PAGE_RUNS);
        let tenants = match &q.tenant {
            Some(t) => BTreeSet::from([t.clone()]),
            None => self.tenants().await?,
        };
        let only = Requests { flow_id: q.flow_id.clone(), most: Some(most) };
        let upto = q.until.map_or(now, |u| u.saturating_sub(1).min(now));
        let mut all = Vec::new();
        for tenant in &tenants {
            let page = table.tenant_log_page(tenant, (q.since, upto), now, usize::MAX, most, &only, |_| true);
            all.extend(page.await.map_err(backend)?);
        }
        let events: Vec<String> = all
            .iter()
            .filter(|e| e.kind == hookflow_core::commit::EntryKind::Event)
            .filter_map(|e| e.event_id.clone())
            .collect();
        for chunk in events.chunks(16) {
            let deliveries = futures_util::future::join_all(chunk.iter().map(|id| table.run_entries(id, now))).await;
            for d in deliveries {
                all.extend(d.map_err(backend)?);
            }
        }
        Ok(all)
    }

    async fn run(&self, id: &str) -> Result<Option<(Value, Vec<LogEntry>)>, BackendError> {
        let Some(run) = self.store.table.load_run(id).await.map_err(backend)? else { return Ok(None) };
        let log = self.store.table.run_entries(id, self.now_ms()).await.map_err(backend)?;
        Ok(Some((serde_json::to_value(run).unwrap_or_default(), log)))
    }

    async fn current_flow(&self, tenant: &str, id: &str) -> Result<Option<Arc<CompiledFlow>>, BackendError> {
        self.store.table.by_id(tenant, id).await.map_err(backend)
    }

    /// Written with its outbox as the ingress writes an accepted run: a
    /// send that failed is sent again by the same replay asked again.
    async fn start_run(&self, accepted: Accepted) -> Result<bool, BackendError> {
        let now = self.now_ms();
        let id = accepted.run.id.clone();
        if self.resend_stored(&id, now).await? {
            return Ok(false);
        }
        // A log copy not written (`unlogged`) leaves the run started:
        // only the tenant's listing misses the request, as at the ingress.
        match self.store.apply_from(accepted.outcome.commit, Some(ACCEPTED), Some(""), now).await {
            Ok(_applied) => Ok(true),
            // Written, by this request before its send failed, or by the
            // same replay at the same moment (the write is conditional):
            // what it queued is sent (again).
            Err(e) => match self.resend_stored(&id, now).await {
                Ok(true) => Ok(false),
                _ => Err(backend(e)),
            },
        }
    }

    /// A page from its cursor (one `Query`) and the count (`Select:
    /// COUNT`): never every row.
    async fn dead(&self, flow_id: Option<&str>, page: Page) -> Result<(Vec<DeadDelivery>, usize), BackendError> {
        let (table, now) = (&self.store.table, self.now_ms());
        let filter = DeadFilter { tenant: None, flow_id };
        let after = page.after.as_ref().map(|(at, id)| (*at, id.as_str()));
        let rows = table.dead_page(filter, after, page.offset, page.limit, now).await.map_err(backend)?;
        Ok((rows, table.dead_count(filter, now).await.map_err(backend)?))
    }

    async fn replay(&self, delivery_id: &str, tenant: Option<&str>) -> Result<bool, BackendError> {
        let table = &self.store.table;
        let tenant = match tenant {
            Some(t) => t.to_string(),
            None => match table.dead_tenant(delivery_id).await.map_err(backend)? {
                Some(t) => t,
                None => return Ok(false),
            },
        };
        let Some(d) = table.dead_one(&tenant, delivery_id).await.map_err(backend)? else { return Ok(false) };
        self.store.replay(&d, self.now_ms()).await.map_err(backend)?;
        Ok(true)
    }
}

/// The publish pipeline's ports on AWS: subscriptions and event flows from
/// the table, the commit through the outbox ([`Store::apply`]).
struct Publisher<'a>(&'a AwsBackend);

impl Audience for Publisher<'_> {
    type Error = Error;

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    fn settings(&self) -> &Settings {
        &self.0.settings
    }

    async fn audience(&self, tenant: &str) -> Result<(Vec<Arc<Subscription>>, Vec<Arc<CompiledFlow>>), Error> {
        let table = &self.0.store.table;
        let subs = table.subscriptions(Some(tenant), false).await?;
        Ok((subs.into_iter().map(Arc::new).collect(), table.event_flows(tenant).await?))
    }

    async fn subscribers(&self, tenant: &str) -> Result<Vec<Arc<Subscription>>, Error> {
        Ok(self.0.store.table.subscriptions_now(tenant).await?.into_iter().map(Arc::new).collect())
    }

    async fn queue(&self, jobs: Vec<NewJob>) -> Result<(), Error> {
        self.0.store.apply(Commit { jobs, ..Default::default() }, self.now_ms()).await
    }
}

impl PublishPorts for Publisher<'_> {
    /// A live id's first publish may have died before its send: what it
    /// left unsent goes now. The event as first published is its copy by
    /// time (an item written before its time was kept: unknown).
    async fn published(&self, event: &Event) -> Result<Option<Repeat>, Error> {
        let store = &self.0.store;
        let Some(at) = store.redrive_published(&event.tenant, &event.id, event.at).await? else { return Ok(None) };
        let first = match at {
            Some(at) => store.table.event_at(&event.tenant, &event.id, at).await?,
            None => None,
        };
        Ok(Some(first.map_or(Repeat::Unknown, Repeat::Of)))
    }

    async fn commit(&self, commit: Commit) -> Result<(), Error> {
        self.0.store.apply(commit, self.now_ms()).await
    }

    /// The admin function keeps no operational log: the request log has
    /// the publish.
    fn lines(&self, _lines: Vec<hookflow_core::engine::LogLine>) {}
}

//! What the admin API needs from a deployment: the port its routes call.
//!
//! `hookflow dev` implements it over the embedded runtime (SQLite, the flow
//! directory); the AWS admin function over DynamoDB, SQS and Secrets
//! Manager. The routes ([`crate::routes`]) parse, check and answer; every
//! decision about subscriptions is the core's.

use std::future::Future;

use std::sync::Arc;

use hookflow_core::CompiledFlow;
use hookflow_core::commit::{DeadDelivery, LogEntry, NewJob};
use hookflow_core::inbound::Accepted;
use hookflow_core::limit::Backlog;
use hookflow_core::stats::{Stats, StatsQuery, Tally};
use hookflow_core::subscription::{Event, FieldError, Keyring, Settings, Subscription};
use serde_json::Value;

/// A failure of the backend, as the API answers it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// A document is invalid: every problem, with its field.
    #[error("invalid")]
    Invalid(Vec<FieldError>),
    /// The change clashes with the state (`field` names what, if anything).
    #[error("{message}")]
    Conflict { field: Option<String>, message: String },
    /// The event's id was published inside its idempotency window.
    #[error("event `{0}` was published already")]
    Duplicate(String),
    /// This deployment cannot do it (yet).
    #[error("{0}")]
    Unsupported(String),
    /// What was asked is larger than the store can keep (a DynamoDB item
    /// over 400 KB): the same request again fails the same way.
    #[error("{0}")]
    TooLarge(String),
    /// The store failed; trying again may help.
    #[error("{0}")]
    Unavailable(String),
}

/// A loaded flow, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowInfo {
    pub tenant: String,
    pub id: String,
    /// Where it came from: a file, or `table@v3`.
    pub file: String,
    pub trigger: Value,
    /// The parsed flow and its text, for a single flow.
    pub flow: Option<Value>,
    pub source: Option<String>,
}

impl FlowInfo {
    pub fn of(f: &CompiledFlow, source: Option<String>) -> Self {
        FlowInfo {
            tenant: f.flow.tenant.clone(),
            id: f.flow.id.clone(),
            file: f.file.display().to_string(),
            trigger: serde_json::to_value(&f.flow.trigger).unwrap_or_default(),
            flow: source.as_ref().map(|_| serde_json::to_value(&f.flow).unwrap_or_default()),
            source,
        }
    }
}

pub use hookflow_core::commit::LogFilter;

pub use hookflow_core::subscription::Published;

/// A page of a list: after the row `after` names (its time and id: a
/// cursor that rows removed meanwhile do not shift), or past `offset`
/// rows; then at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
    pub after: Option<(i64, String)>,
}

/// The most entries [`Backend::stats`] reads where the store cannot count.
pub const STATS_READ: usize = 10_000;

/// The storage and runtime behind the admin API.
pub trait Backend: Send + Sync + 'static {
    /// Retry schedules and windows of subscriptions.
    fn settings(&self) -> &Settings;
    /// The time (ms).
    fn now_ms(&self) -> i64;

    fn flows(&self) -> impl Future<Output = Result<Vec<FlowInfo>, BackendError>> + Send;
    /// One flow, with its parsed form and source.
    fn flow(&self, tenant: &str, id: &str) -> impl Future<Output = Result<Option<FlowInfo>, BackendError>> + Send;
    /// Stores `flow` (validated, its tenant and id those of the URL) as
    /// written in `text`; whether it is new.
    fn put_flow(
        &self,
        flow: &CompiledFlow,
        text: &str,
    ) -> impl Future<Output = Result<(FlowInfo, bool), BackendError>> + Send;
    fn delete_flow(&self, tenant: &str, id: &str) -> impl Future<Output = Result<bool, BackendError>> + Send;
    /// What [`Backend::put_flow`] would refuse of `flow` beyond validation
    /// (a route another flow has, limits of the deployment), writing
    /// nothing: a dry run's verdict is the save's.
    fn check_flow(&self, _flow: &CompiledFlow) -> impl Future<Output = Result<(), BackendError>> + Send {
        async { Ok(()) }
    }

    fn subscription(&self, id: &str) -> impl Future<Output = Result<Option<Subscription>, BackendError>> + Send;
    /// Oldest first; of one tenant, or all.
    fn subscriptions(
        &self,
        tenant: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Subscription>, BackendError>> + Send;
    /// A page of them, by id: after `after`, at most `limit`. By default
    /// cut from [`Backend::subscriptions`]; a store that can read a page
    /// alone does.
    fn subscriptions_page(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Subscription>, BackendError>> + Send {
        async move {
            let mut all = self.subscriptions(tenant).await?;
            all.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(all.into_iter().filter(|s| after.is_none_or(|a| s.id.as_str() > a)).take(limit).collect())
        }
    }
    /// Stores a subscription and queues `jobs` (its verification request,
    /// replays) in one unit; only over the version `prev` (its
    /// `updated_at` when read) if given, else [`BackendError::Conflict`].
    fn save_subscription(
        &self,
        sub: &Subscription,
        prev: Option<i64>,
        jobs: Vec<NewJob>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Queues deliveries (a replay's page) with nothing else written.
    fn queue(&self, jobs: Vec<NewJob>) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Deletes a subscription and its keys; whether it existed.
    fn delete_subscription(&self, id: &str) -> impl Future<Output = Result<bool, BackendError>> + Send;
    /// Sends what the commit that disabled `sub` published and left unsent
    /// (its `subscription.disabled` fan-out, when the send after that
    /// commit failed), before `sub` is enabled or deleted: the delivery
    /// whose message comes back to send it would no longer find `sub`
    /// disabled. Nothing to do where a commit and its queue are one
    /// transaction (the default).
    fn flush_disabled(&self, _sub: &Subscription) -> impl Future<Output = Result<(), BackendError>> + Send {
        async { Ok(()) }
    }
    fn keyring(&self, sub: &Subscription) -> impl Future<Output = Result<Option<Keyring>, BackendError>> + Send;
    /// What waits on `sub`'s limits now.
    fn backlog(&self, sub: &Subscription) -> impl Future<Output = Result<Backlog, BackendError>> + Send;
    fn put_keyring(&self, sub: &Subscription, ring: &Keyring) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Fans `event` out: deliveries to matching active subscriptions, runs
    /// of flows it starts; [`BackendError::Duplicate`] for a live id.
    fn publish(&self, event: Event) -> impl Future<Output = Result<Published, BackendError>> + Send;
    /// Oldest first; of one tenant, or all.
    fn events(
        &self,
        tenant: Option<&str>,
        since: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Event>, BackendError>> + Send;

    fn logs(&self, q: LogFilter) -> impl Future<Output = Result<Vec<LogEntry>, BackendError>> + Send;
    /// The newest `q.limit` trigger requests and published events `q`
    /// takes (by their own entry: its time, tenant, flow; `failed_only`
    /// aside), each with every entry of its run or event, in any order:
    /// what [`hookflow_core::requests::fold`] makes rows of. The cost
    /// follows the requests read, never the history behind them.
    fn requests(&self, q: LogFilter) -> impl Future<Output = Result<Vec<LogEntry>, BackendError>> + Send;
    /// How many entries match `q` (its limit aside), where the store counts
    /// them cheaply; `None` elsewhere.
    fn count_logs(&self, _q: LogFilter) -> impl Future<Output = Result<Option<usize>, BackendError>> + Send {
        async { Ok(None) }
    }
    /// The request log summed up over `q`. By default from the entries
    /// [`Backend::logs`] answers, the newest [`STATS_READ`] at most (the
    /// summary then says `capped`): its answer stays small whatever the
    /// traffic, its read does not. A store that counts (SQLite) reads no
    /// entry.
    fn stats(&self, q: StatsQuery) -> impl Future<Output = Result<Stats, BackendError>> + Send {
        async move {
            let filter = LogFilter {
                tenant: q.tenant.clone(),
                since: q.since,
                until: Some(q.until),
                limit: Some(STATS_READ),
                ..Default::default()
            };
            let entries = self.logs(filter).await?;
            let mut tally = Tally::new(&q);
            if entries.len() >= STATS_READ {
                tally.capped();
            }
            entries.iter().for_each(|e| tally.entry(e));
            Ok(tally.finish())
        }
    }
    /// A run's state and its log.
    fn run(&self, id: &str) -> impl Future<Output = Result<Option<(Value, Vec<LogEntry>)>, BackendError>> + Send;
    /// The flow now at `tenant/id`, as runs name it (its version).
    fn current_flow(
        &self,
        tenant: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Arc<CompiledFlow>>, BackendError>> + Send;
    /// Stores a run the admin started (a replay, [`hookflow_core::inbound::replay`])
    /// and queues its jobs; whether it was new. A run of that id stored
    /// already (the same replay asked again after a failure) is not
    /// started twice: what its commit queued is sent again where the
    /// store and the queue are apart.
    fn start_run(&self, accepted: Accepted) -> impl Future<Output = Result<bool, BackendError>> + Send;
    /// A page of the dead deliveries (of one flow, if given), oldest
    /// first, and how many there are in all.
    fn dead(
        &self,
        flow_id: Option<&str>,
        page: Page,
    ) -> impl Future<Output = Result<(Vec<DeadDelivery>, usize), BackendError>> + Send;
    /// Queues a dead delivery again; whether there was one. `tenant`, when
    /// known, finds it by its key.
    fn replay(
        &self,
        delivery_id: &str,
        tenant: Option<&str>,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;
}

//! DynamoDB: flows and trigger routes, runs, the request log, idempotency
//! keys and dead deliveries, in one table (key shapes in [`crate::keys`]).
//!
//! The table's part of a [`Commit`] becomes one `TransactWriteItems` (the
//! run's new state with its log entries, idempotency record and dead
//! delivery: all or nothing), split in chunks of 100 items only when a
//! commit carries more. [`crate::store::Store`] sends its jobs after.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{Commit, DeadDelivery, DeadRow, EventRow, LogEntry, SubscriptionRow};
use hookflow_core::run::{Reply, Run};
use hookflow_core::subscription::{Event, Subscription};
use serde_json::Value;

use crate::cache::TtlCache;
use crate::{Error, keys};

type Item = HashMap<String, AttributeValue>;

/// Largest `detail` kept in a log item. DynamoDB items stop at 400 KB; a
/// longer detail is cut (and marked) in the log — the delivery itself,
/// which travels on SQS, is never cut.
pub const MAX_LOG_DETAIL: usize = 300 * 1024;

/// How long a loaded flow is used before it is read again (a container
/// sees `hookflow apply` within this time).
pub const FLOW_CACHE_TTL: Duration = Duration::from_secs(30);

/// The table, with a per-container cache of compiled flows.
#[derive(Clone)]
pub struct Table {
    client: Client,
    name: String,
    retention: Duration,
    flows: TtlCache<Option<Arc<CompiledFlow>>>,
}

pub use hookflow_core::ports::Claim;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n(item: &Item, k: &str) -> Option<i64> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>, retention_days: u32) -> Self {
        Table {
            client,
            name: name.into(),
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
            flows: TtlCache::new(FLOW_CACHE_TTL),
        }
    }

    fn expires_at(&self, now_ms: i64) -> i64 {
        now_ms / 1000 + self.retention.as_secs() as i64
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "GetItem", e))?;
        Ok(out.item)
    }

    // ---- flows ------------------------------------------------------------

    /// Stores `text` (a flow file, already validated by the caller) as the
    /// flow's next version, makes it current and points its trigger route
    /// at it. Refuses a route another flow of the tenant holds. Returns the
    /// new version.
    pub async fn put_flow(&self, flow: &CompiledFlow, text: &str, now_ms: i64) -> Result<u64, Error> {
        let f = &flow.flow;
        let current = self.get(keys::flow(&f.tenant, &f.id), keys::CURRENT).await?;
        let version = current.as_ref().and_then(|c| get_n(c, "version")).unwrap_or(0) as u64 + 1;
        let old_path = current.as_ref().and_then(|c| get_s(c, "path")).map(String::from);
        let path = f.trigger.path.trim_matches('/').to_string();
        let file = flow.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let body = |sk: String| {
            let mut item = key(keys::flow(&f.tenant, &f.id), sk);
            item.insert("version".into(), n(version as i64));
            item.insert("text".into(), s(text));
            item.insert("file".into(), s(file.clone()));
            item.insert("path".into(), s(path.clone()));
            item.insert("updated_at".into(), n(now_ms));
            item
        };
        let mut writes = vec![
            put(&self.name, body(keys::flow_version(version)), Some("attribute_not_exists(pk)"), &[])?,
            put(
                &self.name,
                body(keys::CURRENT.into()),
                Some(if version == 1 { "attribute_not_exists(pk)" } else { "version = :prev" }),
                &[(":prev", n(version as i64 - 1))],
            )?,
        ];
        let listed = key(keys::event_flows(&f.tenant), f.id.clone());
        if f.trigger.kind == hookflow_core::flow::TriggerKind::Event {
            // Found by a publish, not by a route.
            let mut item = listed;
            item.insert("events".into(), s(serde_json::to_string(&f.trigger.events).unwrap_or_default()));
            writes.push(put(&self.name, item, None, &[])?);
        } else {
            let mut route = key(keys::route(&f.tenant, &path), keys::ROUTE);
            route.insert("flow_id".into(), s(f.id.clone()));
            writes.push(put(
                &self.name,
                route,
                Some("attribute_not_exists(pk) OR flow_id = :id"),
                &[(":id", s(f.id.clone()))],
            )?);
            // No longer started by events, if it was.
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.name)
                .set_key(Some(listed))
                .build()
                .map_err(|e| Error::Malformed(e.to_string()))?;
            writes.push(TransactWriteItem::builder().delete(delete).build());
        }
        if let Some(old) = old_path.filter(|p| *p != path && !p.is_empty()) {
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.name)
                .set_key(Some(key(keys::route(&f.tenant, &old), keys::ROUTE)))
                .build()
                .map_err(|e| Error::Malformed(e.to_string()))?;
            writes.push(TransactWriteItem::builder().delete(delete).build());
        }
        self.client.transact_write_items().set_transact_items(Some(writes)).send().await.map_err(|e| {
            let cancelled = e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception());
            if cancelled {
                Error::Malformed(format!(
                    "flow `{}` of tenant `{}`: the trigger path `/{path}` belongs to another flow, or the flow changed meanwhile",
                    f.id, f.tenant
                ))
            } else {
                Error::aws("DynamoDB", "TransactWriteItems", e)
            }
        })?;
        self.flows.clear();
        Ok(version)
    }

    /// The tenant's flows with an event trigger (loaded through the flow
    /// cache).
    pub async fn event_flows(&self, tenant: &str) -> Result<Vec<Arc<CompiledFlow>>, Error> {
        let items = self.query_all("pk = :pk", None, &[(":pk", s(keys::event_flows(tenant)))]).await?;
        let mut out = Vec::new();
        for i in &items {
            let Some(id) = get_s(i, "sk") else { continue };
            if let Some(flow) = self.cached_flow(format!("id:{tenant}/{id}"), tenant, Some(id), None).await? {
                out.push(flow);
            }
        }
        Ok(out)
    }

    /// The current text and version of a flow.
    pub async fn flow_text(&self, tenant: &str, flow_id: &str) -> Result<Option<(u64, String, String)>, Error> {
        Ok(self.get(keys::flow(tenant, flow_id), keys::CURRENT).await?.map(|item| {
            (
                get_n(&item, "version").unwrap_or(0) as u64,
                get_s(&item, "file").unwrap_or("flow.yaml").to_string(),
                get_s(&item, "text").unwrap_or_default().to_string(),
            )
        }))
    }

    async fn cached_flow(
        &self,
        cache_key: String,
        tenant: &str,
        flow_id: Option<&str>,
        path: Option<&str>,
    ) -> Result<Option<Arc<CompiledFlow>>, Error> {
        if let Some(flow) = self.flows.get(&cache_key) {
            return Ok(flow);
        }
        let flow_id = match (flow_id, path) {
            (Some(id), _) => Some(id.to_string()),
            (None, Some(path)) => self
                .get(keys::route(tenant, path), keys::ROUTE)
                .await?
                .and_then(|r| get_s(&r, "flow_id").map(String::from)),
            (None, None) => None,
        };
        let flow = match flow_id {
            None => None,
            Some(id) => match self.flow_text(tenant, &id).await? {
                None => None,
                Some((version, file, text)) => {
                    let name = format!("dynamodb:{tenant}/{id}@v{version}/{file}");
                    Some(Arc::new(hookflow_core::load_flow(std::path::Path::new(&name), &text)?))
                }
            },
        };
        self.flows.put(cache_key, flow.clone());
        Ok(flow)
    }

    // ---- idempotency --------------------------------------------------------

    /// Claims an idempotency key: a conditional put that succeeds when the
    /// key is new or its record expired, and otherwise returns the record it
    /// found (in one request, as AWS Lambda Powertools does it). The claim
    /// holds for `in_progress` (a request that dies before answering frees
    /// its key then); the answered record, written with the run, holds for
    /// the trigger's whole window.
    pub async fn claim(&self, scope: &str, now_ms: i64, in_progress: Duration) -> Result<Claim, Error> {
        let mut item = key(keys::idempotency(scope), keys::IDEM);
        item.insert("status".into(), s("in_progress"));
        item.insert("expires_at".into(), n(now_ms / 1000 + in_progress.as_secs() as i64));
        let out = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(_) => Ok(Claim::Claimed),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(c)) => {
                    let old = c.item().cloned().unwrap_or_default();
                    match (get_s(&old, "status"), get_s(&old, "reply")) {
                        (Some("completed"), Some(reply)) => serde_json::from_str(reply)
                            .map(Claim::Completed)
                            .map_err(|e| Error::Malformed(format!("idempotency record {scope}: {e}"))),
                        _ => Ok(Claim::InProgress),
                    }
                }
                _ => Err(Error::aws("DynamoDB", "PutItem", e)),
            },
        }
    }

    /// Gives up a claim this request holds (it failed before answering), so
    /// the caller's retry is not answered 409.
    pub async fn release(&self, scope: &str) -> Result<(), Error> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(key(keys::idempotency(scope), keys::IDEM)))
            .condition_expression("#s = :p")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":p", s("in_progress"))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|x| x.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(Error::aws("DynamoDB", "DeleteItem", e)),
        }
    }

    // ---- items of a commit --------------------------------------------------

    /// A log entry's items: under its run, or under its tenant and hour
    /// when it has no run. A run's `inbound` entry gets a light copy (no
    /// headers or body) under its tenant and hour too, so that one `Query`
    /// per hour finds every request a tenant received (`hookflow logs`).
    fn log_items(&self, e: &LogEntry, n_in_commit: usize) -> Vec<Item> {
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let tenant_log = || {
            (
                keys::tenant_log(e.tenant.as_deref().unwrap_or("-"), e.at),
                keys::tenant_log_sort(e.at, n_in_commit, &unique),
            )
        };
        let Some(run) = &e.run_id else { return vec![self.log_item(e, tenant_log(), &e.detail)] };
        let mut items = vec![self.log_item(e, (keys::run(run), keys::run_log(e.at, n_in_commit, &unique)), &e.detail)];
        if e.kind == "inbound" {
            let light: serde_json::Map<String, Value> = ["method", "path", "source_ip"]
                .iter()
                .filter_map(|k| e.detail.get(*k).map(|v| (k.to_string(), v.clone())))
                .collect();
            items.push(self.log_item(e, tenant_log(), &Value::Object(light)));
        }
        items
    }

    fn log_item(&self, e: &LogEntry, (pk, sk): (String, String), detail: &Value) -> Item {
        let mut item = key(pk, sk);
        item.insert("kind".into(), s(e.kind.clone()));
        item.insert("at".into(), n(e.at));
        for (k, v) in [
            ("tenant", &e.tenant),
            ("flow_id", &e.flow_id),
            ("run_id", &e.run_id),
            ("event_id", &e.event_id),
            ("delivery_id", &e.delivery_id),
            ("outcome", &e.outcome),
        ] {
            if let Some(v) = v {
                item.insert(k.into(), s(v.clone()));
            }
        }
        let mut detail = detail.to_string();
        if detail.len() > MAX_LOG_DETAIL {
            let head = hookflow_core::text::head(&detail, MAX_LOG_DETAIL);
            detail = serde_json::json!({"truncated": true, "bytes": detail.len(), "head": head}).to_string();
        }
        item.insert("detail".into(), s(detail));
        item.insert("expires_at".into(), n(self.expires_at(e.at)));
        item
    }

    /// The commit's items, each with the condition it is written under.
    fn items(&self, c: &Commit, now_ms: i64) -> Vec<(Item, Cond)> {
        let mut items = Vec::new();
        for r in &c.runs {
            let mut item = key(keys::run(&r.id), keys::RUN);
            item.insert("tenant".into(), s(r.tenant.clone()));
            item.insert("flow_id".into(), s(r.flow_id.clone()));
            item.insert("event_id".into(), s(r.event_id.clone()));
            item.insert("status".into(), s(r.status));
            item.insert("state".into(), s(r.state.clone()));
            item.insert("updated_at".into(), n(now_ms));
            item.insert("expires_at".into(), n(self.expires_at(now_ms)));
            item.insert("revision".into(), n(r.revision as i64));
            items.push((item, Cond::Newer(r.revision as i64)));
        }
        for (i, e) in c.log.iter().enumerate() {
            items.extend(self.log_items(e, i).into_iter().map(|item| (item, Cond::None)));
        }
        if let Some(EventRow { tenant, id, kind, at, doc, expires_at }) = &c.event {
            let mut item = key(keys::event(tenant, id), keys::EVENT);
            item.insert("until".into(), n(*expires_at));
            item.insert("expires_at".into(), n(expires_at / 1000));
            items.push((item, Cond::EventFree(*at)));
            let mut copy = key(keys::events(tenant, *at), keys::events_sort(*at, id));
            copy.insert("type".into(), s(kind.clone()));
            copy.insert("doc".into(), s(doc.clone()));
            copy.insert("expires_at".into(), n(self.expires_at(*at)));
            items.push((copy, Cond::None));
        }
        for SubscriptionRow { id, tenant, status, doc, version, prev } in &c.subscriptions {
            let mut item = key(keys::SUBS.into(), id.clone());
            item.insert("tenant".into(), s(tenant.clone()));
            item.insert("status".into(), s(*status));
            item.insert("doc".into(), s(doc.clone()));
            item.insert("updated_at".into(), n(now_ms));
            item.insert("version".into(), n(*version));
            items.push((item, prev.map_or(Cond::None, Cond::Version)));
        }
        if let Some((scope, reply, expires)) = &c.idempotency {
            let mut item = key(keys::idempotency(scope), keys::IDEM);
            item.insert("status".into(), s("completed"));
            item.insert("reply".into(), s(reply.clone()));
            item.insert("expires_at".into(), n(expires / 1000));
            items.push((item, Cond::None));
        }
        if let Some(DeadRow { delivery_id, tenant, flow_id, run_id, reason, job }) = &c.dead {
            let mut item = key(keys::DEAD.into(), keys::dead(tenant, delivery_id));
            item.insert("tenant".into(), s(tenant.clone()));
            item.insert("delivery_id".into(), s(delivery_id.clone()));
            item.insert("flow_id".into(), s(flow_id.clone()));
            item.insert("run_id".into(), s(run_id.clone()));
            item.insert("reason".into(), s(reason.clone()));
            item.insert("job".into(), s(job.clone()));
            item.insert("at".into(), n(now_ms));
            items.push((item, Cond::None));
        }
        items
    }

    /// Writes the table's part of a commit (runs, log, idempotency, dead,
    /// the published event, subscriptions), in one transaction per 100
    /// items. A run is written only over an older revision: losing that race
    /// is [`Error::Conflict`]; an event id inside its idempotency window is
    /// [`Error::Duplicate`]; either way nothing of the transaction is written.
    pub async fn write(&self, c: &Commit, now_ms: i64) -> Result<(), Error> {
        self.write_holding(c, None, now_ms).await
    }

    /// [`Table::write`], with what the commit does to an ordered message's
    /// held state in the same transaction.
    pub async fn write_holding(&self, c: &Commit, hold: Option<Hold>, now_ms: i64) -> Result<(), Error> {
        const NEWER: &str = "attribute_not_exists(pk) OR attribute_not_exists(revision) OR revision < :rev";
        const FREE: &str = "attribute_not_exists(pk) OR #until <= :at";
        let mut writes = self
            .items(c, now_ms)
            .into_iter()
            .map(|(item, cond)| {
                let write = match cond {
                    Cond::Newer(rev) => put(&self.name, item, Some(NEWER), &[(":rev", n(rev))]),
                    Cond::Version(prev) => put(
                        &self.name,
                        item,
                        Some("attribute_not_exists(version) OR version = :prev"),
                        &[(":prev", n(prev))],
                    ),
                    Cond::EventFree(at) => put_named(&self.name, item, FREE, &[(":at", n(at))], ("#until", "until")),
                    Cond::None => put(&self.name, item, None, &[]),
                };
                write.map(|w| (w, cond))
            })
            .collect::<Result<Vec<_>, _>>()?;
        match hold {
            Some(Hold::Keep { job_id, held }) => {
                let mut item = key(keys::held(&job_id), keys::HELD);
                item.insert("attempts".into(), n(i64::from(held.attempts)));
                item.insert("first_at".into(), n(held.first_at));
                item.insert("due".into(), n(held.due));
                item.insert("expires_at".into(), n(now_ms / 1000 + HELD_TTL.as_secs() as i64));
                writes.push((put(&self.name, item, None, &[])?, Cond::None));
            }
            Some(Hold::Release(job_id)) => {
                let delete = Delete::builder()
                    .table_name(&self.name)
                    .set_key(Some(key(keys::held(&job_id), keys::HELD)))
                    .build()
                    .map_err(|e| Error::Malformed(e.to_string()))?;
                writes.push((TransactWriteItem::builder().delete(delete).build(), Cond::None));
            }
            None => {}
        }
        let (mut writes, conds): (Vec<TransactWriteItem>, Vec<Cond>) = writes.into_iter().unzip();
        let mut start = 0;
        while start < conds.len() {
            // The next (at most) 100 writes, moved out rather than copied.
            let rest = writes.split_off(writes.len().min(100));
            let items = std::mem::replace(&mut writes, rest);
            let chunk = &conds[start..start + items.len()];
            start += items.len();
            let sent = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
            if let Err(e) = sent {
                // Which item's condition failed: cancellation reasons come
                // in the order of the items.
                let failed = e.as_service_error().and_then(|s| match s {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => t
                        .cancellation_reasons()
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed")),
                    _ => None,
                });
                if let Some(i) = failed
                    && matches!(chunk[i], Cond::EventFree(_))
                {
                    let id = c.event.as_ref().map_or("?", |e| e.id.as_str());
                    return Err(Error::Duplicate(format!("event `{id}` was published already")));
                }
                if let Some(i) = failed
                    && matches!(chunk[i], Cond::Version(_))
                {
                    return Err(Error::Conflict(
                        "the subscription changed meanwhile (a delivery's outcome or another admin); read it and try again"
                            .into(),
                    ));
                }
                let conflict = failed.is_some()
                    || e.as_service_error().is_some_and(|s| {
                        s.is_transaction_canceled_exception() && format!("{s:?}").contains("ConditionalCheckFailed")
                    });
                return Err(if conflict {
                    Error::Conflict(format!(
                        "run {} was written by another worker",
                        c.runs.first().map_or("?", |r| &r.id)
                    ))
                } else {
                    Error::aws("DynamoDB", "TransactWriteItems", e)
                });
            }
        }
        Ok(())
    }

    /// Every item of a `Query` (all pages).
    async fn query_all(
        &self,
        condition: &str,
        filter: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> Result<Vec<Item>, Error> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression(condition)
                .set_filter_expression(filter.map(String::from))
                .set_exclusive_start_key(start);
            for (k, v) in values {
                q = q.expression_attribute_values(*k, v.clone());
            }
            let page = q.send().await.map_err(|e| Error::aws("DynamoDB", "Query", e))?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(out);
            }
        }
    }

    /// Log entries of a run, oldest first, without expired ones.
    pub async fn run_entries(&self, run_id: &str, now_ms: i64) -> Result<Vec<LogEntry>, Error> {
        let items = self
            .query_all(
                "pk = :pk AND begins_with(sk, :log)",
                Some("expires_at > :now"),
                &[(":pk", s(keys::run(run_id))), (":log", s("LOG#")), (":now", n(now_ms / 1000))],
            )
            .await?;
        Ok(items.iter().map(entry_of).collect())
    }

    /// The requests a tenant received from `since_ms` on (every inbound
    /// entry: rejected, duplicate, accepted with its run id), oldest first,
    /// plus any other entry without a run; one `Query` per hour.
    async fn tenant_entries(&self, tenant: &str, since_ms: i64, now_ms: i64) -> Result<Vec<LogEntry>, Error> {
        let mut out = Vec::new();
        self.by_hour(
            |at| keys::tenant_log(tenant, at),
            since_ms,
            now_ms,
            |items| {
                out.extend(items.iter().map(entry_of));
                Ok(true)
            },
        )
        .await?;
        Ok(out)
    }

    /// Queries the hourly partitions `partition(hour)` from `since_ms` (within
    /// the retention) to `now_ms`, oldest first, handing each hour's
    /// unexpired items to `take` until it answers `false`.
    async fn by_hour(
        &self,
        partition: impl Fn(i64) -> String,
        since_ms: i64,
        now_ms: i64,
        mut take: impl FnMut(Vec<Item>) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let first_hour = since_ms.max(now_ms - self.retention.as_millis() as i64) / 3_600_000;
        for hour in first_hour..=now_ms / 3_600_000 {
            let items = self
                .query_all(
                    "pk = :pk AND sk >= :since",
                    Some("expires_at > :now"),
                    &[
                        (":pk", s(partition(hour * 3_600_000))),
                        (":since", s(format!("{since_ms:013}"))),
                        (":now", n(now_ms / 1000)),
                    ],
                )
                .await?;
            if !take(items)? {
                break;
            }
        }
        Ok(())
    }

    /// What a tenant's request log holds from `since_ms` on, oldest first:
    /// every request it received and, for those that started a run, the
    /// run's whole timeline (one `Query` per hour and one per run, at most
    /// `max_runs` runs, the newest).
    pub async fn tenant_log(
        &self,
        tenant: &str,
        since_ms: i64,
        now_ms: i64,
        max_runs: usize,
    ) -> Result<Vec<LogEntry>, Error> {
        let requests = self.tenant_entries(tenant, since_ms, now_ms).await?;
        let mut runs: Vec<&str> = requests.iter().filter_map(|e| e.run_id.as_deref()).collect();
        runs.dedup();
        let skip = runs.len().saturating_sub(max_runs);
        let mut out: Vec<LogEntry> = requests.iter().filter(|e| e.run_id.is_none()).cloned().collect();
        for run in &runs[skip..] {
            out.extend(self.run_entries(run, now_ms).await?);
        }
        out.sort_by_key(|e| e.at);
        Ok(out)
    }

    /// Dead deliveries (of one tenant, if given), oldest first.
    pub async fn dead(&self, tenant: Option<&str>) -> Result<Vec<DeadDelivery>, Error> {
        let items = match tenant {
            Some(t) => {
                self.query_all(
                    "pk = :pk AND begins_with(sk, :t)",
                    None,
                    &[(":pk", s(keys::DEAD)), (":t", s(format!("{t}#")))],
                )
                .await?
            }
            None => self.query_all("pk = :pk", None, &[(":pk", s(keys::DEAD))]).await?,
        };
        let mut dead: Vec<DeadDelivery> = items
            .iter()
            .map(|i| DeadDelivery {
                row: DeadRow {
                    delivery_id: get_s(i, "delivery_id").unwrap_or_default().into(),
                    tenant: get_s(i, "tenant").unwrap_or_default().into(),
                    flow_id: get_s(i, "flow_id").unwrap_or_default().into(),
                    run_id: get_s(i, "run_id").unwrap_or_default().into(),
                    reason: get_s(i, "reason").unwrap_or_default().into(),
                    job: get_s(i, "job").unwrap_or_default().into(),
                },
                at: get_n(i, "at").unwrap_or(0),
            })
            .collect();
        dead.sort_by_key(|d| d.at);
        Ok(dead)
    }

    /// Subscriptions, by id: of one tenant (or all), only active ones if
    /// `active_only`. One `Query` of the `SUBS` partition.
    pub async fn subscriptions(&self, tenant: Option<&str>, active_only: bool) -> Result<Vec<Subscription>, Error> {
        let items = self.query_all("pk = :pk", None, &[(":pk", s(keys::SUBS))]).await?;
        let mut out = Vec::new();
        for i in &items {
            if tenant.is_some_and(|t| get_s(i, "tenant") != Some(t))
                || (active_only && get_s(i, "status") != Some("active"))
            {
                continue;
            }
            out.push(subscription_of(i)?);
        }
        Ok(out)
    }

    pub async fn subscription(&self, id: &str) -> Result<Option<Subscription>, Error> {
        self.get(keys::SUBS.into(), id).await?.map(|i| subscription_of(&i)).transpose()
    }

    /// Deletes a subscription; whether it existed.
    pub async fn delete_subscription(&self, id: &str) -> Result<bool, Error> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(keys::SUBS))
            .key("sk", s(id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Whether event `id` of `tenant` is inside its idempotency window.
    pub async fn live_event(&self, tenant: &str, id: &str, now_ms: i64) -> Result<bool, Error> {
        Ok(self
            .get(keys::event(tenant, id), keys::EVENT)
            .await?
            .is_some_and(|i| get_n(&i, "until").unwrap_or(0) > now_ms))
    }

    /// A tenant's events published from `since_ms` on, oldest first, at most
    /// `limit` (one `Query` per hour, inside the retention).
    pub async fn events(&self, tenant: &str, since_ms: i64, now_ms: i64, limit: usize) -> Result<Vec<Event>, Error> {
        let mut out: Vec<Event> = Vec::new();
        self.by_hour(
            |at| keys::events(tenant, at),
            since_ms,
            now_ms,
            |items| {
                for i in &items {
                    let doc = get_s(i, "doc").unwrap_or_default();
                    out.push(serde_json::from_str(doc).map_err(|e| Error::Malformed(format!("event item: {e}")))?);
                    if out.len() >= limit {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )
        .await?;
        Ok(out)
    }

    /// An ordered message's held state ([`Hold::Keep`]), if it has been
    /// attempted before.
    pub async fn held(&self, job_id: &str) -> Result<Option<Held>, Error> {
        let Some(item) = self.get(keys::held(job_id), keys::HELD).await? else {
            return Ok(None);
        };
        match (get_n(&item, "attempts"), get_n(&item, "first_at"), get_n(&item, "due")) {
            (Some(attempts), Some(first_at), Some(due)) => {
                Ok(Some(Held { attempts: attempts.try_into().unwrap_or(u32::MAX), first_at, due }))
            }
            _ => Err(Error::Malformed(format!("held state of {job_id}: attempts, first_at or due missing"))),
        }
    }

    /// Removes a dead delivery (after its replay was queued).
    pub async fn forget_dead(&self, tenant: &str, delivery_id: &str) -> Result<(), Error> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(keys::DEAD))
            .key("sk", s(keys::dead(tenant, delivery_id)))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "DeleteItem", e))?;
        Ok(())
    }
}

fn subscription_of(item: &Item) -> Result<Subscription, Error> {
    let doc = get_s(item, "doc").unwrap_or_default();
    serde_json::from_str(doc).map_err(|e| Error::Malformed(format!("subscription item: {e}")))
}

fn entry_of(item: &Item) -> LogEntry {
    let opt = |k: &str| get_s(item, k).map(String::from);
    LogEntry {
        at: get_n(item, "at").unwrap_or(0),
        kind: opt("kind").unwrap_or_default(),
        tenant: opt("tenant"),
        flow_id: opt("flow_id"),
        run_id: opt("run_id"),
        event_id: opt("event_id"),
        delivery_id: opt("delivery_id"),
        outcome: opt("outcome"),
        detail: get_s(item, "detail").and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null),
    }
}

/// An ordered message's state between its attempts: what of its job
/// changes (the request does not, and stays in the message, which cannot
/// change), and when the next attempt is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Attempts made so far ([`hookflow_core::commit::DeliveryJob::attempts`]).
    pub attempts: u32,
    /// When the first attempt was due (ms).
    pub first_at: i64,
    /// When the next one is (ms).
    pub due: i64,
}

/// What a commit does to an ordered message's held state
/// ([`crate::store::Store::apply_ordered`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// It is retried: its state until then.
    Keep { job_id: String, held: Held },
    /// It is done (delivered or dead): forget the state.
    Release(String),
}

/// How long a held state outlives its last write: longer than the ordered
/// queue keeps a message (14 days).
const HELD_TTL: Duration = Duration::from_secs(15 * 86_400);

/// The condition an item of a commit is written under.
#[derive(Debug, Clone, Copy)]
enum Cond {
    None,
    /// A run: only over an older revision.
    Newer(i64),
    /// A published event: only if its id is not live at this time (ms).
    EventFree(i64),
    /// A subscription: only over this version of it.
    Version(i64),
}

/// A conditional put whose condition names an attribute by placeholder
/// (`until` is a reserved word).
fn put_named(
    table: &str,
    item: Item,
    condition: &str,
    values: &[(&str, AttributeValue)],
    name: (&str, &str),
) -> Result<TransactWriteItem, Error> {
    let mut p = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition)
        .expression_attribute_names(name.0, name.1);
    for (k, v) in values {
        p = p.expression_attribute_values(*k, v.clone());
    }
    Ok(TransactWriteItem::builder().put(p.build().map_err(|e| Error::Malformed(e.to_string()))?).build())
}

fn put(
    table: &str,
    item: Item,
    condition: Option<&str>,
    values: &[(&str, AttributeValue)],
) -> Result<TransactWriteItem, Error> {
    let mut p =
        Put::builder().table_name(table).set_item(Some(item)).set_condition_expression(condition.map(String::from));
    for (k, v) in values {
        p = p.expression_attribute_values(*k, v.clone());
    }
    Ok(TransactWriteItem::builder().put(p.build().map_err(|e| Error::Malformed(e.to_string()))?).build())
}

impl Table {
    /// The current flow whose trigger is at `path` of `tenant` (cached).
    pub async fn by_route(&self, tenant: &str, path: &str) -> Result<Option<Arc<CompiledFlow>>, Error> {
        let path = path.trim_matches('/');
        self.cached_flow(format!("route:{tenant}/{path}"), tenant, None, Some(path)).await
    }

    /// The current version of flow `id` of `tenant` (cached).
    pub async fn by_id(&self, tenant: &str, id: &str) -> Result<Option<Arc<CompiledFlow>>, Error> {
        self.cached_flow(format!("id:{tenant}/{id}"), tenant, Some(id), None).await
    }

    /// A run's stored state.
    pub async fn load_run(&self, id: &str) -> Result<Option<Run>, Error> {
        let Some(item) = self.get(keys::run(id), keys::RUN).await? else { return Ok(None) };
        let state = get_s(&item, "state").ok_or_else(|| Error::Malformed(format!("run {id}: no state")))?;
        serde_json::from_str(state).map(Some).map_err(|e| Error::Malformed(format!("run {id}: {e}")))
    }

    /// The reply stored under an idempotency scope, unless it expired or
    /// the request is still in progress.
    pub async fn idempotent_reply(&self, scope: &str, now_ms: i64) -> Result<Option<Reply>, Error> {
        let Some(item) = self.get(keys::idempotency(scope), keys::IDEM).await? else { return Ok(None) };
        // TTL deletion lags: an expired record is no record.
        if get_n(&item, "expires_at").is_some_and(|e| e <= now_ms / 1000) || get_s(&item, "status") != Some("completed")
        {
            return Ok(None);
        }
        Ok(get_s(&item, "reply").and_then(|r| serde_json::from_str(r).ok()))
    }
}

//! DynamoDB: flows and trigger routes, runs, the request log, idempotency
//! keys and dead deliveries, in one table (key shapes in [`crate::keys`]).
//!
//! The table's part of a [`Commit`] is one write, all or nothing: a
//! conditional `PutItem` when it is one item (a run with its outbox and
//! its log entries kept in its item), else one `TransactWriteItems` (split
//! in chunks of 100 items only when a commit carries more).
//! [`crate::store::Store`] sends its jobs after.
//!
//! One entity a file: `flows`, `idempotency`, `runs`, `log`, `dead`,
//! `subscriptions`, `events`, `limits`, and `write` (the items of a commit and the
//! transactions that write them). This file holds the table, its cache and
//! the item helpers they share.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, PutRequest, ReturnValuesOnConditionCheckFailure, TransactWriteItem, WriteRequest,
};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{Commit, DeadDelivery, DeadRow, EventRow, LogEntry, SubscriptionRow};
use hookflow_core::run::{Reply, Run};
use hookflow_core::subscription::{Event, Subscription};
use serde_json::Value;

use crate::cache::TtlCache;
use crate::outbox::{LogCopy, Outbox};
use crate::{Error, keys};

mod dead;
mod events;
mod flows;
mod hours;
mod idempotency;
mod item;
mod limits;
mod log;
mod runs;
mod subscriptions;
mod write;

pub use dead::DeadFilter;
pub use hookflow_core::ports::Claim;
pub use item::{Held, Hold};
pub use limits::Lease;
pub use log::Requests;
pub use runs::StoredRun;
pub use write::EMBEDDED_LOG_MAX;

type Item = HashMap<String, AttributeValue>;

/// Largest `detail` kept in a log item. DynamoDB items stop at 400 KB; a
/// longer detail is cut (and marked) in the log — the delivery itself,
/// which travels on SQS, is never cut.
pub const MAX_LOG_DETAIL: usize = 300 * 1024;

/// How long a loaded flow is used before it is read again (a container
/// sees `hookflow apply` within this time).
pub const FLOW_CACHE_TTL: Duration = Duration::from_secs(30);

/// The most the flow cache holds (its keys and per-entry overhead; the
/// compiled flows themselves are shared and exist once per real flow): a
/// flood of requests to unknown trigger paths, each cached as a miss,
/// stays within it.
pub const FLOW_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// The table, with a per-container cache of compiled flows.
#[derive(Clone)]
pub struct Table {
    client: Client,
    name: String,
    retention: Duration,
    /// How long a dead delivery stays listed and replayable.
    dead_retention: Duration,
    /// Whether this container saw the earlier version's dead rows listed.
    dead_migrated: Arc<std::sync::atomic::AtomicBool>,
    flows: TtlCache<Option<Arc<CompiledFlow>>>,
    /// Subscription id → tenant (never changes; bounded).
    sub_tenants: Arc<quick_cache::sync::Cache<String, String>>,
    /// Ids of subscriptions read from the old `SUBS` partition, which are
    /// written back there (bounded).
    legacy_ids: Arc<quick_cache::sync::Cache<String, ()>>,
    /// When this container last found the old `SUBS` partition empty.
    legacy_empty_at: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// The hours' index entries this container wrote (bounded).
    marked: Arc<quick_cache::sync::Cache<String, ()>>,
    /// Whether this container wrote (or found) `HOURS`/`SINCE`.
    since_written: Arc<std::sync::atomic::AtomicBool>,
    /// `HOURS`/`SINCE` and the table's creation, in hours, once read.
    since: Arc<std::sync::Mutex<Option<i64>>>,
    created: Arc<std::sync::Mutex<Option<i64>>>,
    /// Which limits' states were ahead of the clock when last seen here
    /// (bounded): the case [`Table::reserve`] tries first.
    busy: Arc<quick_cache::sync::Cache<String, bool>>,
}

/// How long a dead delivery stays listed and replayable unless the
/// deployment says otherwise (`HOOKFLOW_DEAD_RETENTION_DAYS`).
pub const DEAD_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// How many subscription ids' tenants a container remembers.
const SUB_TENANTS_CACHED: usize = 10_000;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

/// Texts from this long on are stored compressed ([`text`]).
const COMPRESS_FROM: usize = 1024;

/// The most a compressed attribute may inflate to: a bound against an item
/// crafted to inflate without end.
const MAX_INFLATED: usize = 8 * 1024 * 1024;

/// A large text (a run's state, an outbox, a log entry's detail, a dead
/// delivery's job, an event): zlib-compressed as a binary attribute from
/// [`COMPRESS_FROM`] bytes on, when that is smaller. JSON shrinks 2.5–4×,
/// and DynamoDB bills writes by the KB (docs/PERFORMANCE.md, "Cost").
/// [`get_text`] reads either form, so items written before read as ever.
fn text(v: String) -> AttributeValue {
    if v.len() < COMPRESS_FROM {
        return s(v);
    }
    let z = miniz_oxide::deflate::compress_to_vec_zlib(v.as_bytes(), 6);
    if z.len() >= v.len() {
        return s(v);
    }
    AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(z))
}

/// A text attribute written by [`text`] (or as a plain string).
fn get_text(item: &Item, k: &str) -> Result<Option<String>, Error> {
    match item.get(k) {
        None => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(AttributeValue::B(b)) => {
            let raw =
                miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(b.as_ref(), MAX_INFLATED).map_err(|e| {
                    Error::Malformed(format!("attribute {k}: not a zlib stream within the size limit ({e})"))
                })?;
            String::from_utf8(raw).map(Some).map_err(|_| Error::Malformed(format!("attribute {k}: not UTF-8")))
        }
        Some(_) => Err(Error::Malformed(format!("attribute {k}: neither a string nor compressed text"))),
    }
}

fn get_n(item: &Item, k: &str) -> Option<i64> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
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

/// Whether a read sees every write finished before it (twice the read
/// capacity of an eventually consistent one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Eventual,
    Consistent,
}

impl Table {
    pub fn new(client: Client, name: impl Into<String>, retention_days: u32) -> Self {
        Table {
            client,
            name: name.into(),
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
            dead_retention: DEAD_RETENTION,
            dead_migrated: Arc::default(),
            flows: TtlCache::new(FLOW_CACHE_TTL, FLOW_CACHE_BYTES),
            sub_tenants: Arc::new(quick_cache::sync::Cache::new(SUB_TENANTS_CACHED)),
            legacy_ids: Arc::new(quick_cache::sync::Cache::new(SUB_TENANTS_CACHED)),
            legacy_empty_at: Arc::default(),
            marked: Arc::new(quick_cache::sync::Cache::new(hours::MARKED_CACHED)),
            since_written: Arc::default(),
            since: Arc::default(),
            created: Arc::default(),
            busy: Arc::new(quick_cache::sync::Cache::new(SUB_TENANTS_CACHED)),
        }
    }

    /// The table, whose dead deliveries are kept for `days`.
    pub fn with_dead_retention(mut self, days: u32) -> Self {
        self.dead_retention = Duration::from_secs(u64::from(days) * 86_400);
        self
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

    /// Every item of a `Query` (all pages).
    async fn query_all(
        &self,
        condition: &str,
        filter: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> Result<Vec<Item>, Error> {
        self.query_upto(condition, filter, values, usize::MAX, Read::Eventual).await
    }

    /// [`Table::query_all`], stopping once `max` items are read (pages of
    /// at most `max` evaluated items: a bounded read of a large partition).
    async fn query_upto(
        &self,
        condition: &str,
        filter: Option<&str>,
        values: &[(&str, AttributeValue)],
        max: usize,
        read: Read,
    ) -> Result<Vec<Item>, Error> {
        self.query_pages(condition, filter, values, (max, max), read).await
    }

    /// [`Table::query_all`] in pages of `page` evaluated items, stopping
    /// once `max` items are read.
    async fn query_pages(
        &self,
        condition: &str,
        filter: Option<&str>,
        values: &[(&str, AttributeValue)],
        (page_size, max): (usize, usize),
        read: Read,
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
                .set_limit((page_size < 10_000).then_some(page_size as i32))
                .consistent_read(read == Read::Consistent)
                .set_exclusive_start_key(start);
            for (k, v) in values {
                q = q.expression_attribute_values(*k, v.clone());
            }
            let page = q.send().await.map_err(|e| Error::aws("DynamoDB", "Query", e))?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() || out.len() >= max {
                return Ok(out);
            }
        }
    }
}

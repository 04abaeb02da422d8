//! The index of hours: which hours hold a tenant's log entries or events,
//! so a read by time queries those hours only (never one `Query` per hour
//! of the retention, 8,760 at 365 days).
//!
//! A writer puts an hour's index entry (`HOURS#{KIND}#{tenant}`,
//! `{hour:010}`) before the first item it writes into that hour, once per
//! container (remembered in a bounded set): an entry without items is an
//! empty hour read once, never an item without its entry. Hours written by
//! a version before the index are read one by one: those from the table's
//! creation to the hour after `HOURS`/`SINCE` (when this version first
//! wrote an entry; the hour after, for functions of the earlier version
//! still running during the stack update). A rollback to such a version
//! writes hours past it: deleting `HOURS`/`SINCE` after the next deploy
//! has every hour from the table's creation read that way (README,
//! "Upgrading").

use std::collections::{BTreeSet, VecDeque};

use super::*;
use crate::keys::Hourly;

/// How many index entries a container remembers having written (a key an
/// hour and tenant: ~60 bytes each).
pub(super) const MARKED_CACHED: usize = 10_000;

const HOUR_MS: i64 = 3_600_000;

/// How long an hour's index entry is kept at least: the longest retention
/// the template allows, and a day.
const INDEX_KEPT: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

impl Table {
    /// Puts the index entries of the hourly partitions among `pks` that
    /// this container has not written yet (and, once per container, the
    /// `SINCE` item). Called before the items are written.
    /// `items` are (partition, the flow of a request in it).
    pub(super) async fn mark_hours<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<(), Error> {
        let mut new: Vec<(String, i64)> = items
            .into_iter()
            .filter_map(|(pk, flow)| Some((Hourly::index_of(pk)?, pk, flow)))
            .flat_map(|((index, hour), pk, flow)| {
                // A request's hour in its flow's index too.
                let of_flow = flow.filter(|_| pk.starts_with("LOG#")).and_then(|f| {
                    let tenant = pk.strip_prefix("LOG#")?.rsplit_once('#')?.0;
                    Some((Hourly::flow_index(tenant, f), hour))
                });
                std::iter::once((index, hour)).chain(of_flow)
            })
            .filter(|(index, hour)| self.marked.get(&format!("{index}#{hour}")).is_none())
            .collect();
        new.sort();
        new.dedup();
        if new.is_empty() {
            return Ok(());
        }
        if !self.since_written.load(std::sync::atomic::Ordering::Relaxed) {
            let mut since = key(keys::HOURS.into(), keys::SINCE);
            since.insert(
                "hour".into(),
                n(hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock).div_euclid(HOUR_MS)),
            );
            let put = self
                .client
                .put_item()
                .table_name(&self.name)
                .set_item(Some(since))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match put {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(Error::aws("DynamoDB", "PutItem", e)),
            }
            self.since_written.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let items = new
            .iter()
            .map(|(index, hour)| {
                // As long as any writer's items of the hour may live (a
                // writer of a shorter retention, the CLI's, must not end
                // an entry a longer one still needs): readers keep to
                // their own retention.
                let keep = self.retention.max(INDEX_KEPT).as_secs() as i64;
                let mut item = key(index.clone(), keys::hour_sort(*hour));
                item.insert("expires_at".into(), n((hour + 1) * 3_600 + keep));
                item
            })
            .collect();
        self.put_all(items, "hour index").await?;
        for (index, hour) in new {
            self.marked.insert(format!("{index}#{hour}"), ());
        }
        Ok(())
    }

    /// The hours from `from_ms` to `to_ms` (within the retention) that may
    /// hold `tenant`'s `kind` items, oldest first: those the index lists,
    /// and those written before it (see the module's documentation).
    /// With `flow`, the hours the index lists for that flow's requests
    /// ([`Hourly::Log`]; the unindexed hours are read all the same).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn hours(
        &self,
        kind: Hourly,
        tenant: &str,
        flow: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        now_ms: i64,
        read: Read,
    ) -> Result<Vec<i64>, Error> {
        let first = from_ms.max(now_ms - self.retention.as_millis() as i64).div_euclid(HOUR_MS);
        let last = to_ms.div_euclid(HOUR_MS);
        if first > last {
            return Ok(Vec::new());
        }
        let listed = self
            .query_upto(
                "pk = :pk AND sk BETWEEN :first AND :last",
                None,
                &[
                    (":pk", s(flow.map_or_else(|| kind.index(tenant), |f| Hourly::flow_index(tenant, f)))),
                    (":first", s(keys::hour_sort(first))),
                    (":last", s(keys::hour_sort(last))),
                ],
                usize::MAX,
                read,
            )
            .await?;
        let mut hours: BTreeSet<i64> =
            listed.iter().filter_map(|i| get_s(i, "sk")).filter_map(|h| h.parse().ok()).collect();
        // Nothing is older than the table; without `SINCE`, no writer of
        // this version has written yet.
        let created = self.created_hour().await?;
        let legacy_to = self.index_since().await?.map_or(last, |since| since + 1);
        hours.extend(created.max(first)..=legacy_to.min(last));
        Ok(hours.into_iter().collect())
    }

    /// The hour from which every hourly write is indexed (`None`: no
    /// writer of this version has written yet). Kept once read.
    async fn index_since(&self) -> Result<Option<i64>, Error> {
        if let Some(h) = *self.since.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(Some(h));
        }
        let found = self.get(keys::HOURS.into(), keys::SINCE).await?.and_then(|i| get_n(&i, "hour"));
        if let Some(h) = found {
            *self.since.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
        }
        Ok(found)
    }

    /// The hour the table was created (`DescribeTable`, once per
    /// container): no item is older.
    async fn created_hour(&self) -> Result<i64, Error> {
        if let Some(h) = *self.created.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(h);
        }
        let out = self
            .client
            .describe_table()
            .table_name(&self.name)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "DescribeTable", e))?;
        let secs = out.table.and_then(|t| t.creation_date_time).map_or(0, |t| t.secs());
        let h = (secs * 1000).div_euclid(HOUR_MS);
        *self.created.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
        Ok(h)
    }

    /// The pages of `tenant`'s `kind` items from `since_ms` to `upto_ms`
    /// (both included), hour after hour, newest first or oldest first, each
    /// page at most `page` items, unexpired ones only (plus `filter`, an
    /// expression on the items, with its values).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn hour_pages(
        &self,
        (kind, flow): (Hourly, Option<&str>),
        tenant: &str,
        (since_ms, upto_ms): (i64, i64),
        now_ms: i64,
        newest_first: bool,
        read: Read,
        page: usize,
    ) -> Result<HourPages<'_>, Error> {
        let mut hours: VecDeque<i64> = if since_ms > upto_ms {
            VecDeque::new()
        } else {
            self.hours(kind, tenant, flow, since_ms, upto_ms, now_ms, read).await?.into()
        };
        if newest_first {
            hours.make_contiguous().reverse();
        }
        Ok(HourPages {
            table: self,
            kind,
            tenant: tenant.to_string(),
            hours,
            start: None,
            since: since_ms,
            upto: upto_ms,
            now: now_ms,
            newest_first,
            read,
            page,
            filter: None,
        })
    }
}

/// What [`Table::hour_pages`] reads, a page at a time.
pub(super) struct HourPages<'a> {
    table: &'a Table,
    kind: Hourly,
    tenant: String,
    /// The hours left, the one being read first.
    hours: VecDeque<i64>,
    /// Where the hour being read goes on (`None`: from its start).
    start: Option<Item>,
    since: i64,
    upto: i64,
    now: i64,
    newest_first: bool,
    read: Read,
    page: usize,
    filter: Option<(String, Vec<(String, AttributeValue)>)>,
}

impl HourPages<'_> {
    /// Only items `expression` takes (DynamoDB still reads, and bills,
    /// those it leaves out).
    pub(super) fn only(mut self, expression: &str, values: Vec<(String, AttributeValue)>) -> Self {
        self.filter = Some((expression.to_string(), values));
        self
    }

    /// The next page (`None`: every hour was read). A page may be empty
    /// (an hour of expired items only) without being the last.
    pub(super) async fn next(&mut self) -> Result<Option<Vec<Item>>, Error> {
        let Some(&hour) = self.hours.front() else { return Ok(None) };
        let mut filter = "expires_at > :now".to_string();
        let mut q = self
            .table
            .client
            .query()
            .table_name(&self.table.name)
            .key_condition_expression("pk = :pk AND sk BETWEEN :since AND :upto")
            .expression_attribute_values(":pk", s(self.kind.partition(&self.tenant, hour)))
            .expression_attribute_values(":since", s(format!("{:013}", self.since.max(0))))
            // `~` sorts after every character of a sort key's rest.
            .expression_attribute_values(":upto", s(format!("{:013}~", self.upto.max(0))))
            .expression_attribute_values(":now", n(self.now / 1000))
            .scan_index_forward(!self.newest_first)
            .consistent_read(self.read == Read::Consistent)
            // A floor: a small `Limit` would crawl expired items TTL has
            // not deleted yet, a few at a time.
            .limit(self.page.clamp(100, 10_000) as i32)
            .set_exclusive_start_key(self.start.take());
        if let Some((expression, values)) = &self.filter {
            filter = format!("{filter} AND ({expression})");
            for (k, v) in values {
                q = q.expression_attribute_values(k.as_str(), v.clone());
            }
        }
        let out = q.filter_expression(filter).send().await.map_err(|e| Error::aws("DynamoDB", "Query", e))?;
        self.start = out.last_evaluated_key;
        if self.start.is_none() {
            self.hours.pop_front();
        }
        Ok(Some(out.items.unwrap_or_default()))
    }
}

//! The table's part of a commit: its items and conditions, written in transactions of up to 100 items; an ordered message's held state.

use super::item::{Cond, DEAD_PART, HELD_TTL, Held, Hold, MAX_ITEM_BYTES, RunDoc, item_size};
use super::*;

impl Table {
    /// A log entry's items: under its run, or under its tenant and hour
    /// when it has no run; with `copy`, a run's `inbound` entry also gets
    /// its light copy ([`Table::tenant_copy`]).
    pub(super) fn log_items(&self, e: &LogEntry, n_in_commit: usize, copy: bool) -> Vec<Item> {
        let Some(run) = &e.run_id else {
            let unique = uuid::Uuid::now_v7().simple().to_string();
            let tenant = e.tenant.as_deref().unwrap_or("-");
            let sk = keys::tenant_log_sort(e.at, n_in_commit, &unique);
            let mut items = vec![self.log_item(e, (keys::tenant_log(tenant, e.at), sk.clone()), &e.detail)];
            // Found by its event too (`Table::event_entries`).
            if let Some(event) = &e.event_id {
                items.push(self.log_item(e, (keys::event_log(tenant, event), sk), &e.detail));
            }
            return items;
        };
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let mut items = vec![self.log_item(e, (keys::run(run), keys::run_log(e.at, n_in_commit, &unique)), &e.detail)];
        if copy && let Some(c) = tenant_copy(e, n_in_commit) {
            items.push(self.log_item(&c.entry, (c.pk, c.sk), &c.entry.detail));
        }
        items
    }

    /// The light copies (no headers or body) of a commit's `inbound`
    /// entries of runs, under their tenant and hour, so that one `Query`
    /// per hour finds every request a tenant received (`hookflow logs`).
    pub fn tenant_copies(log: &[LogEntry]) -> Vec<LogCopy> {
        log.iter().enumerate().filter_map(|(i, e)| tenant_copy(e, i)).collect()
    }

    /// Writes log items kept in an outbox ([`crate::outbox`]): after their
    /// commit, and again by its redo (the same keys: written twice, kept
    /// once).
    pub async fn write_copies(&self, copies: &[LogCopy]) -> Result<(), Error> {
        self.mark_hours(copies.iter().map(|c| (c.pk.as_str(), c.entry.flow_id.as_deref()))).await?;
        let items =
            copies.iter().map(|c| self.log_item(&c.entry, (c.pk.clone(), c.sk.clone()), &c.entry.detail)).collect();
        self.put_all(items, "log items").await
    }

    /// Puts `items` (unconditionally, each written twice is kept once), 25
    /// a `BatchWriteItem`.
    pub(super) async fn put_all(&self, items: Vec<Item>, what: &str) -> Result<(), Error> {
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let mut requests: Vec<WriteRequest> = items
                .by_ref()
                .take(25)
                .map(|item| {
                    let put = PutRequest::builder().set_item(Some(item)).build();
                    put.map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| Error::Malformed(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            // What DynamoDB leaves unprocessed (throttling) is sent again, a
            // few times; then the redo is left to do it.
            for attempt in 0..4 {
                if requests.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.name, std::mem::take(&mut requests))
                    .send()
                    .await
                    .map_err(|e| Error::aws("DynamoDB", "BatchWriteItem", e))?;
                requests = out.unprocessed_items.and_then(|mut u| u.remove(&self.name)).unwrap_or_default();
            }
            if !requests.is_empty() {
                return Err(Error::Aws {
                    service: "DynamoDB",
                    operation: "BatchWriteItem",
                    message: format!("{} {what} left unprocessed (throttled)", requests.len()),
                    transient: true,
                });
            }
        }
        Ok(())
    }

    pub(super) fn log_item(&self, e: &LogEntry, (pk, sk): (String, String), detail: &Value) -> Item {
        let mut item = key(pk, sk);
        item.insert("kind".into(), s(e.kind.as_str()));
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
        item.insert("detail".into(), text(detail));
        item.insert("expires_at".into(), n(self.expires_at(e.at)));
        item
    }

    /// The commit's items, each with the condition it is written under;
    /// the outbox goes into the published event's item, else into the
    /// run's when the commit writes one run ([`crate::outbox`]).
    ///
    /// `prior`: the log kept in the run's item as it was read (JSON, `""`
    /// for a new run), when the commit writes one run. Its entries of that
    /// run are then kept in the run's item with the earlier ones (one
    /// write, compressed with the state they repeat: [`RunDoc`]) while
    /// they fit [`EMBEDDED_LOG_MAX`]; without it, and past that, each entry
    /// is an item of its own.
    ///
    /// A writer of a run already written must pass its kept log: without
    /// it the item is written without one (the entries kept so far lost).
    /// `embed_new: false` leaves the kept log as it was and makes the
    /// commit's entries items of their own.
    pub(super) fn items(
        &self,
        c: &Commit,
        outbox: Option<&Outbox>,
        prior: Option<&str>,
        embed_new: bool,
        now_ms: i64,
    ) -> Result<Vec<(Item, Cond)>, Error> {
        let unsent = outbox.is_some_and(|o| !o.messages.is_empty());
        // A run is kept while an attempt it queued may still be made.
        let ladder = outbox.map_or(0, |o| o.messages.iter().filter_map(|m| ladder_ms(m, now_ms)).max().unwrap_or(0));
        let outbox = outbox.map(Outbox::to_text).transpose()?;
        let in_run = c.event.is_none() && c.runs.len() == 1;
        let run_id = c.runs.first().filter(|_| in_run).map(|r| r.id.as_str());
        let own = |e: &LogEntry| run_id.is_some() && e.run_id.as_deref() == run_id;
        let embedded = match prior.filter(|_| in_run && embed_new) {
            Some(prior) => embed(prior, c.log.iter().filter(|e| own(e)))?,
            None => None,
        };
        let mut items = Vec::new();
        for r in &c.runs {
            let mut item = key(keys::run(&r.id), keys::RUN);
            item.insert("tenant".into(), s(r.tenant.clone()));
            item.insert("flow_id".into(), s(r.flow_id.clone()));
            item.insert("event_id".into(), s(r.event_id.clone()));
            item.insert("status".into(), s(r.status));
            let doc = RunDoc {
                state: r.state.clone(),
                outbox: outbox.clone().filter(|_| in_run).unwrap_or_default(),
                log: match (&embedded, prior.filter(|_| in_run)) {
                    (Some(log), _) => log.clone(),
                    (None, Some(prior)) => prior.to_string(),
                    (None, None) => String::new(),
                },
            };
            item.insert("doc".into(), text(doc.to_text()));
            item.insert("updated_at".into(), n(now_ms));
            item.insert("expires_at".into(), n(self.expires_at(now_ms + ladder)));
            item.insert("revision".into(), n(r.revision as i64));
            items.push((item, Cond::Newer(r.revision as i64)));
        }
        // A run's outbox carries the tenant copies ([`Table::tenant_copies`]).
        let copies_here = !(in_run && outbox.is_some());
        let is_embedded = embedded.is_some();
        for (i, e) in c.log.iter().enumerate() {
            if is_embedded && own(e) {
                if copies_here && let Some(c) = tenant_copy(e, i) {
                    items.push((self.log_item(&c.entry, (c.pk, c.sk), &c.entry.detail), Cond::None));
                }
                continue;
            }
            items.extend(self.log_items(e, i, copies_here).into_iter().map(|item| (item, Cond::None)));
        }
        if let Some(EventRow { tenant, id, kind, at, doc, expires_at }) = &c.event {
            let mut item = key(keys::event(tenant, id), keys::EVENT);
            item.insert("until".into(), n(*expires_at));
            item.insert("at".into(), n(*at));
            item.insert("expires_at".into(), n(expires_at / 1000));
            if let Some(o) = &outbox {
                item.insert("outbox".into(), text(o.clone()));
            }
            items.push((item, Cond::EventFree(*at)));
            let mut copy = key(keys::events(tenant, *at), keys::events_sort(*at, id));
            copy.insert("type".into(), s(kind.clone()));
            copy.insert("doc".into(), text(doc.clone()));
            copy.insert("expires_at".into(), n(self.expires_at(*at)));
            items.push((copy, Cond::None));
        }
        let mut listed = std::collections::HashSet::new();
        for SubscriptionRow { id, tenant, status, doc, version, prev } in &c.subscriptions {
            if prev.is_none() {
                // A new subscription: where its id finds its tenant, and its
                // tenant in the list of tenants (both never change).
                let mut by_id = key(keys::sub_ref(id), keys::SUBREF);
                by_id.insert("tenant".into(), s(tenant.clone()));
                items.push((by_id, Cond::None));
                if listed.insert(tenant) {
                    items.push((key(keys::SUB_TENANTS.into(), tenant.clone()), Cond::None));
                }
            }
            let mut item = key(self.subscription_pk(id, tenant), id.clone());
            item.insert("tenant".into(), s(tenant.clone()));
            item.insert("status".into(), s(*status));
            item.insert("doc".into(), s(doc.clone()));
            item.insert("updated_at".into(), n(now_ms));
            item.insert("version".into(), n(*version));
            items.push((item, prev.map_or(Cond::None, Cond::Version)));
        }
        if let Some((scope, reply, expires)) = &c.idempotency {
            let mut item = key(keys::idempotency(scope), keys::IDEM);
            // `accepted` until the run's messages are confirmed queued
            // (`Table::idempotency_sent`): a retry with the key then sends
            // them again; `completed` when there is nothing to send.
            item.insert("status".into(), s(if unsent { "accepted" } else { "completed" }));
            item.insert("reply".into(), s(reply.clone()));
            item.insert("expires_at".into(), n(expires / 1000));
            // The retry of a request whose send failed finds its run's
            // outbox through it.
            if let Some(run) = c.runs.first() {
                item.insert("run_id".into(), s(run.id.clone()));
            }
            items.push((item, Cond::None));
        }
        if let Some(DeadRow { delivery_id, tenant, flow_id, run_id, reason, job }) = &c.dead {
            let expires = n(now_ms / 1000 + self.dead_retention.as_secs() as i64);
            let mut item = key(keys::DEAD.into(), keys::dead(tenant, delivery_id));
            item.insert("tenant".into(), s(tenant.clone()));
            item.insert("delivery_id".into(), s(delivery_id.clone()));
            item.insert("flow_id".into(), s(flow_id.clone()));
            item.insert("run_id".into(), s(run_id.clone()));
            item.insert("reason".into(), s(reason.clone()));
            item.insert("at".into(), n(now_ms));
            item.insert("expires_at".into(), expires.clone());
            // The job apart, compressed, in parts that each fit an item:
            // the list reads the rows only, a replay reads its parts.
            let z = miniz_oxide::deflate::compress_to_vec_zlib(job.as_bytes(), 6);
            item.insert("parts".into(), n(z.chunks(DEAD_PART).count() as i64));
            // Listed by time, and found by id alone.
            let mut listed = item.clone();
            listed.extend(key(keys::DEAD_AT.into(), keys::dead_listed(now_ms, tenant, delivery_id)));
            let mut by_id = key(keys::dead_ref(delivery_id), keys::DEAD_REF);
            by_id.insert("tenant".into(), s(tenant.clone()));
            by_id.insert("expires_at".into(), expires.clone());
            items.extend([(item, Cond::None), (listed, Cond::None), (by_id, Cond::None)]);
            for (i, part) in z.chunks(DEAD_PART).enumerate() {
                let mut item = key(keys::dead_job(tenant, delivery_id), keys::dead_part(i));
                item.insert("z".into(), AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(part)));
                item.insert("expires_at".into(), expires.clone());
                items.push((item, Cond::None));
            }
        }
        Ok(items)
    }

    /// Writes the table's part of a commit (runs, log, idempotency, dead,
    /// the published event, subscriptions), in one transaction per 100
    /// items. A run is written only over an older revision: losing that race
    /// is [`Error::Conflict`]; an event id inside its idempotency window is
    /// [`Error::Duplicate`]; either way nothing of the transaction is written.
    pub async fn write(&self, c: &Commit, now_ms: i64) -> Result<(), Error> {
        self.write_holding(c, None, None, None, now_ms).await
    }

    /// [`Table::write`], with the commit's outbox ([`crate::outbox`]), the
    /// log its run's item keeps (`prior`, see [`Table::items`]) and what
    /// the commit does to an ordered message's held state, in the same
    /// write. A commit of one item is one (conditional) `PutItem`: as
    /// atomic as a transaction of one, at half the price; the SDK's retry
    /// of one that was written but whose answer was lost finds its own
    /// item and is answered as the first. A transaction carries a
    /// `ClientRequestToken` for the same reason.
    pub async fn write_holding(
        &self,
        c: &Commit,
        hold: Option<Hold>,
        outbox: Option<&Outbox>,
        prior: Option<&str>,
        now_ms: i64,
    ) -> Result<(), Error> {
        let mut items = self.items(c, outbox, prior, true, now_ms)?;
        if prior.is_some() && too_large(&items).is_some() {
            // The run's item with its new entries kept would not fit: the
            // entries go to items of their own.
            items = self.items(c, outbox, prior, false, now_ms)?;
        }
        if let Some(e) = too_large(&items) {
            return Err(e);
        }
        // An hour's index entry before its first item: never an item an
        // hourly read cannot find.
        self.mark_hours(items.iter().filter_map(|(item, _)| Some((get_s(item, "pk")?, get_s(item, "flow_id")))))
            .await?;
        if hold.is_none() && items.len() == 1 {
            let Some((item, cond)) = items.pop() else { return Ok(()) };
            return self.put_one(c, item, cond).await;
        }
        if hold.is_none() && is_log_only(c) {
            // Log entries alone (a rejected request and its copy by event):
            // each item stands alone, no transaction needed (half the price).
            return self.put_all(items.into_iter().map(|(item, _)| item).collect(), "log items").await;
        }
        let mut writes = items
            .into_iter()
            .map(|(item, cond)| {
                let (condition, values, name) = cond.expression();
                let write = match name {
                    Some(name) => put_named(&self.name, item, condition.unwrap_or_default(), &values, name),
                    None => put(&self.name, item, condition, &values),
                };
                write.map(|w| (w, cond))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(d) = &c.dead
            && let Some(old) = self.get(keys::DEAD.into(), &keys::dead(&d.tenant, &d.delivery_id)).await?
            && let Some(at) = get_n(&old, "at").filter(|at| *at != now_ms)
        {
            // Dead again before a replay forgot it: its earlier listing
            // goes with the new row's write (one row, listed once).
            let delete = Delete::builder()
                .table_name(&self.name)
                .set_key(Some(key(keys::DEAD_AT.into(), keys::dead_listed(at, &d.tenant, &d.delivery_id))))
                .build()
                .map_err(|e| Error::Malformed(e.to_string()))?;
            writes.push((TransactWriteItem::builder().delete(delete).build(), Cond::None));
        }
        match hold {
            Some(Hold::Keep { job_id, held }) => {
                let mut item = key(keys::held(&job_id), keys::HELD);
                item.insert("attempts".into(), n(i64::from(held.attempts)));
                item.insert("first_at".into(), n(held.first_at));
                item.insert("due".into(), n(held.due));
                if let Some(slot) = held.slot {
                    item.insert("slot".into(), s(serde_json::to_string(&slot).unwrap_or_default()));
                }
                if held.waited_ms > 0 {
                    item.insert("waited_ms".into(), n(held.waited_ms as i64));
                }
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
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .client_request_token(uuid::Uuid::now_v7().simple().to_string())
                .send()
                .await;
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
                if let Some(i) = failed {
                    return Err(chunk[i].refused(c));
                }
                let conflict = e.as_service_error().is_some_and(|s| {
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

    /// A commit of one item, as one `PutItem` under the item's condition
    /// (a failed condition returns the stored item, to tell our own earlier
    /// write from another's).
    async fn put_one(&self, c: &Commit, item: Item, cond: Cond) -> Result<(), Error> {
        let (condition, values, name) = cond.expression();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item.clone()))
            .set_condition_expression(condition.map(String::from))
            .set_return_values_on_condition_check_failure(
                condition.is_some().then_some(ReturnValuesOnConditionCheckFailure::AllOld),
            );
        for (k, v) in values {
            put = put.expression_attribute_values(k, v);
        }
        if let Some((placeholder, attribute)) = name {
            put = put.expression_attribute_names(placeholder, attribute);
        }
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                // Our own write, answered once already (the SDK's retry of a
                // put whose answer was lost): done.
                Some(PutItemError::ConditionalCheckFailedException(f)) if f.item() == Some(&item) => Ok(()),
                Some(PutItemError::ConditionalCheckFailedException(_)) => Err(cond.refused(c)),
                _ => Err(Error::aws("DynamoDB", "PutItem", e)),
            },
        }
    }

    /// An ordered message's held state ([`Hold::Keep`]), if it has been
    /// attempted before.
    pub async fn held(&self, job_id: &str) -> Result<Option<Held>, Error> {
        let Some(item) = self.get(keys::held(job_id), keys::HELD).await? else {
            return Ok(None);
        };
        match (get_n(&item, "attempts"), get_n(&item, "first_at"), get_n(&item, "due")) {
            (Some(attempts), Some(first_at), Some(due)) => {
                // A slot this version cannot read is reserved again.
                let slot = get_s(&item, "slot").and_then(|t| serde_json::from_str(t).ok());
                let waited_ms = get_n(&item, "waited_ms").unwrap_or(0).max(0) as u64;
                Ok(Some(Held { attempts: attempts.try_into().unwrap_or(u32::MAX), first_at, due, slot, waited_ms }))
            }
            _ => Err(Error::Malformed(format!("held state of {job_id}: attempts, first_at or due missing"))),
        }
    }
}

/// How long after `now_ms` the last attempt of the delivery `m` carries
/// could be made (its first due time, its retry ladder at its longest, each
/// attempt at its timeout); `None` for another kind of message.
fn ladder_ms(m: &crate::queue::RawMessage, now_ms: i64) -> Option<i64> {
    // Only what the ladder needs: the request in the job is skipped, not
    // built again.
    #[derive(serde::Deserialize)]
    struct Job {
        delivery: Ladder,
    }
    #[derive(serde::Deserialize)]
    struct Ladder {
        retry: hookflow_core::retry::RetryPolicy,
        timeout: Duration,
    }
    if m.kind != hookflow_core::commit::JobKind::Delivery {
        return None;
    }
    let Job { delivery: d } = serde_json::from_str(&m.payload).ok()?;
    let attempts = d.timeout.saturating_mul(d.retry.max_attempts);
    let span = (d.retry.longest_span() + attempts).as_millis().min(i64::MAX as u128) as i64;
    Some((m.not_before - now_ms).max(0).saturating_add(span))
}

/// The first item of a commit over DynamoDB's item limit, as the error.
fn too_large(items: &[(Item, Cond)]) -> Option<Error> {
    items.iter().find_map(|(item, _)| {
        let size = item_size(item);
        (size > MAX_ITEM_BYTES).then(|| {
            let name = get_s(item, "pk").unwrap_or("?");
            Error::TooLarge(format!(
                "the item {name} would be {size} bytes (compressed), over DynamoDB's {MAX_ITEM_BYTES}-byte item \
                 limit: a run's state or an event, with what its commit queues, must fit one item (a body this \
                 large cannot be stored; lower the trigger's max_body)"
            ))
        })
    })
}

/// The most of a run's log kept in the run's item, as JSON before
/// compression: beyond it, later entries are items of their own (a long
/// run's item is rewritten by every commit, and stops at 400 KB).
pub const EMBEDDED_LOG_MAX: usize = 64 * 1024;

/// A run's log as kept in its item with `entries` added, or `None` when
/// that would pass [`EMBEDDED_LOG_MAX`].
///
/// A kept log that does not read back (not written by this version) is
/// carried on as it is, and the entries become items of their own: it
/// must not stop the run.
fn embed<'a>(prior: &str, entries: impl Iterator<Item = &'a LogEntry>) -> Result<Option<String>, Error> {
    let mut log: Vec<Value> = if prior.is_empty() {
        Vec::new()
    } else {
        match serde_json::from_str(prior) {
            Ok(log) => log,
            Err(_) => return Ok(None),
        }
    };
    for e in entries {
        log.push(serde_json::to_value(e).map_err(|e| Error::Malformed(format!("log entry: {e}")))?);
    }
    let text = Value::Array(log).to_string();
    Ok((text.len() <= EMBEDDED_LOG_MAX).then_some(text))
}

/// Whether a commit is log entries and nothing else.
fn is_log_only(c: &Commit) -> bool {
    let Commit { done, reschedule, runs, jobs, log, idempotency, dead, event, subscriptions } = c;
    !log.is_empty()
        && done.is_none()
        && reschedule.is_none()
        && runs.is_empty()
        && jobs.is_empty()
        && idempotency.is_none()
        && dead.is_none()
        && event.is_none()
        && subscriptions.is_empty()
}

/// The light copy of a run's `inbound` entry under its tenant and hour.
fn tenant_copy(e: &LogEntry, n_in_commit: usize) -> Option<LogCopy> {
    if e.kind != hookflow_core::commit::EntryKind::Inbound || e.run_id.is_none() {
        return None;
    }
    let light: serde_json::Map<String, Value> = ["method", "path", "source_ip"]
        .iter()
        .filter_map(|k| e.detail.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let unique = uuid::Uuid::now_v7().simple().to_string();
    Some(LogCopy {
        pk: keys::tenant_log(e.tenant.as_deref().unwrap_or("-"), e.at),
        sk: keys::tenant_log_sort(e.at, n_in_commit, &unique),
        entry: LogEntry { detail: Value::Object(light), ..e.clone() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_log_grows_to_its_bound_and_one_that_does_not_read_back_is_left_as_it_is() {
        let e = LogEntry { at: 5, detail: serde_json::json!({"a": 1}), ..Default::default() };
        let one = embed("", [&e].into_iter()).unwrap().expect("fits");
        let two = embed(&one, [&e].into_iter()).unwrap().expect("fits");
        let back: Vec<LogEntry> = serde_json::from_str(&two).unwrap();
        assert_eq!(back, vec![e.clone(), e.clone()]);
        let big = LogEntry { detail: serde_json::json!({"b": "x".repeat(EMBEDDED_LOG_MAX)}), ..e.clone() };
        assert_eq!(embed(&one, [&big].into_iter()).unwrap(), None, "past the bound");
        assert_eq!(embed("{not json", [&e].into_iter()).unwrap(), None, "not this version's: not touched");
    }

    #[test]
    fn an_item_is_measured_as_dynamodb_counts_it() {
        let mut item = key("RUN#r".into(), "RUN");
        assert_eq!(item_size(&item), 2 + 5 + 2 + 3);
        item.insert("revision".into(), n(12345));
        assert_eq!(item_size(&item), 12 + 8 + 4);
        item.insert("state".into(), s("é".repeat(10)));
        assert_eq!(item_size(&item), 24 + 5 + 20);
    }

    #[test]
    fn long_texts_are_stored_compressed_and_read_back_and_a_bomb_is_refused() {
        let short = "{\"a\":1}".to_string();
        assert!(matches!(text(short.clone()), AttributeValue::S(ref v) if *v == short));
        let long = serde_json::json!({"items": (0..200).map(|i| format!("item {i}")).collect::<Vec<_>>()}).to_string();
        let stored = text(long.clone());
        let AttributeValue::B(b) = &stored else { panic!("not compressed: {stored:?}") };
        assert!(b.as_ref().len() < long.len() / 2, "{} of {}", b.as_ref().len(), long.len());
        let item = Item::from([("t".to_string(), stored)]);
        assert_eq!(get_text(&item, "t").unwrap().as_deref(), Some(long.as_str()));
        // Past the inflation bound: refused, not inflated.
        let bomb = miniz_oxide::deflate::compress_to_vec_zlib(&vec![b'x'; MAX_INFLATED + 1], 6);
        let item = Item::from([("t".to_string(), AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bomb)))]);
        assert!(matches!(get_text(&item, "t"), Err(Error::Malformed(_))));
    }
}

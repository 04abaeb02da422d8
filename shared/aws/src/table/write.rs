//! The table's part of a commit: its items and conditions, written in transactions of up to 100 items; an ordered message's held state.

use super::*;

impl Table {
    /// A log entry's items: under its run, or under its tenant and hour
    /// when it has no run. A run's `inbound` entry gets a light copy (no
    /// headers or body) under its tenant and hour too, so that one `Query`
    /// per hour finds every request a tenant received (`hookflow logs`).
    pub(super) fn log_items(&self, e: &LogEntry, n_in_commit: usize) -> Vec<Item> {
        let unique = uuid::Uuid::now_v7().simple().to_string();
        let tenant_log = || {
            (
                keys::tenant_log(e.tenant.as_deref().unwrap_or("-"), e.at),
                keys::tenant_log_sort(e.at, n_in_commit, &unique),
            )
        };
        let Some(run) = &e.run_id else { return vec![self.log_item(e, tenant_log(), &e.detail)] };
        let mut items = vec![self.log_item(e, (keys::run(run), keys::run_log(e.at, n_in_commit, &unique)), &e.detail)];
        if e.kind == hookflow_core::commit::EntryKind::Inbound {
            let light: serde_json::Map<String, Value> = ["method", "path", "source_ip"]
                .iter()
                .filter_map(|k| e.detail.get(*k).map(|v| (k.to_string(), v.clone())))
                .collect();
            items.push(self.log_item(e, tenant_log(), &Value::Object(light)));
        }
        items
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
    pub(super) fn items(&self, c: &Commit, outbox: Option<&Outbox>, now_ms: i64) -> Result<Vec<(Item, Cond)>, Error> {
        let unsent = outbox.is_some_and(|o| !o.messages.is_empty());
        let outbox = outbox.map(Outbox::to_text).transpose()?;
        let in_run = c.event.is_none() && c.runs.len() == 1;
        let mut items = Vec::new();
        for r in &c.runs {
            let mut item = key(keys::run(&r.id), keys::RUN);
            item.insert("tenant".into(), s(r.tenant.clone()));
            item.insert("flow_id".into(), s(r.flow_id.clone()));
            item.insert("event_id".into(), s(r.event_id.clone()));
            item.insert("status".into(), s(r.status));
            item.insert("state".into(), text(r.state.clone()));
            item.insert("updated_at".into(), n(now_ms));
            item.insert("expires_at".into(), n(self.expires_at(now_ms)));
            item.insert("revision".into(), n(r.revision as i64));
            if let Some(o) = outbox.as_ref().filter(|_| in_run) {
                item.insert("outbox".into(), text(o.clone()));
            }
            items.push((item, Cond::Newer(r.revision as i64)));
        }
        for (i, e) in c.log.iter().enumerate() {
            items.extend(self.log_items(e, i).into_iter().map(|item| (item, Cond::None)));
        }
        if let Some(EventRow { tenant, id, kind, at, doc, expires_at }) = &c.event {
            let mut item = key(keys::event(tenant, id), keys::EVENT);
            item.insert("until".into(), n(*expires_at));
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
            let mut item = key(keys::DEAD.into(), keys::dead(tenant, delivery_id));
            item.insert("tenant".into(), s(tenant.clone()));
            item.insert("delivery_id".into(), s(delivery_id.clone()));
            item.insert("flow_id".into(), s(flow_id.clone()));
            item.insert("run_id".into(), s(run_id.clone()));
            item.insert("reason".into(), s(reason.clone()));
            item.insert("job".into(), text(job.clone()));
            item.insert("at".into(), n(now_ms));
            items.push((item, Cond::None));
        }
        Ok(items)
    }

    /// Writes the table's part of a commit (runs, log, idempotency, dead,
    /// the published event, subscriptions), in one transaction per 100
    /// items. A run is written only over an older revision: losing that race
    /// is [`Error::Conflict`]; an event id inside its idempotency window is
    /// [`Error::Duplicate`]; either way nothing of the transaction is written.
    pub async fn write(&self, c: &Commit, now_ms: i64) -> Result<(), Error> {
        self.write_holding(c, None, None, now_ms).await
    }

    /// [`Table::write`], with the commit's outbox ([`crate::outbox`]) and
    /// what the commit does to an ordered message's held state, in the same
    /// transaction. Each transaction carries a `ClientRequestToken`: the
    /// SDK's retry of one that committed but whose answer was lost is
    /// answered as the first was, not refused as a conflict.
    pub async fn write_holding(
        &self,
        c: &Commit,
        hold: Option<Hold>,
        outbox: Option<&Outbox>,
        now_ms: i64,
    ) -> Result<(), Error> {
        const NEWER: &str = "attribute_not_exists(pk) OR attribute_not_exists(revision) OR revision < :rev";
        const FREE: &str = "attribute_not_exists(pk) OR #until <= :at";
        let mut items = self.items(c, outbox, now_ms)?;
        for (item, _) in &items {
            let size = item_size(item);
            if size > MAX_ITEM_BYTES {
                let name = get_s(item, "pk").unwrap_or("?");
                return Err(Error::TooLarge(format!(
                    "the item {name} would be {size} bytes (compressed), over DynamoDB's {MAX_ITEM_BYTES}-byte \
                     item limit: a run's state or an event, with what its commit queues, must fit one item (a \
                     body this large cannot be stored; lower the trigger's max_body)"
                )));
            }
        }
        if hold.is_none() && items.len() == 1 && matches!(items[0].1, Cond::None) {
            // One unconditional item (a rejected request's log entry, a
            // duplicate's): a `PutItem` is as atomic as a transaction of one
            // and costs half as much (1 write unit per KB, not 2).
            if let Some((item, _)) = items.pop() {
                self.client
                    .put_item()
                    .table_name(&self.name)
                    .set_item(Some(item))
                    .send()
                    .await
                    .map_err(|e| Error::aws("DynamoDB", "PutItem", e))?;
            }
            return Ok(());
        }
        let mut writes = items
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
pub(super) const HELD_TTL: Duration = Duration::from_secs(15 * 86_400);

/// DynamoDB's largest item (400 KB, counted as 1024 bytes a KB).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// An item's size as DynamoDB counts it: each attribute's name and value
/// (strings and binaries by their bytes, numbers at most 21 bytes).
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    AttributeValue::B(b) => b.as_ref().len(),
                    AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
                    other => format!("{other:?}").len(),
                }
        })
        .sum()
}

/// The condition an item of a commit is written under.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cond {
    None,
    /// A run: only over an older revision.
    Newer(i64),
    /// A published event: only if its id is not live at this time (ms).
    EventFree(i64),
    /// A subscription: only over this version of it.
    Version(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! Dead deliveries: listed across tenants, forgotten once replayed. A row
//! says what, why and when; its job is apart ([`Table::dead_job`]).

use super::*;

/// How many of an earlier version's dead rows one read lists
/// ([`Table::migrate_dead`]): a `Query` page and 120 `BatchWriteItem`s.
pub const MIGRATED_A_READ: usize = 1_000;

fn mark_done(rows: &[Item]) -> bool {
    rows.len() < MIGRATED_A_READ
}

/// Which dead deliveries a read lists.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadFilter<'a> {
    pub tenant: Option<&'a str>,
    pub flow_id: Option<&'a str>,
}

impl DeadFilter<'_> {
    /// The filter expression and its values (expired rows left out: TTL
    /// deletes them days late).
    fn expression(&self, now_ms: i64) -> (String, Vec<(&'static str, AttributeValue)>) {
        let mut terms = vec!["(attribute_not_exists(expires_at) OR expires_at > :now)".to_string()];
        let mut values = vec![(":now", n(now_ms / 1000))];
        if let Some(t) = self.tenant {
            terms.push("tenant = :tenant".into());
            values.push((":tenant", s(t)));
        }
        if let Some(f) = self.flow_id {
            terms.push("flow_id = :flow".into());
            values.push((":flow", s(f)));
        }
        (terms.join(" AND "), values)
    }
}

impl Table {
    /// Every dead delivery (of one tenant, if given), oldest first.
    pub async fn dead(&self, tenant: Option<&str>) -> Result<Vec<DeadDelivery>, Error> {
        let now = hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock);
        self.dead_page(DeadFilter { tenant, flow_id: None }, None, 0, usize::MAX, now).await
    }

    /// A page of dead deliveries, oldest first: after `after` (time, id),
    /// past `offset` of them, at most `limit`. One `Query` (a page of 1 MB)
    /// from the cursor: the rows before it are never read.
    pub async fn dead_page(
        &self,
        filter: DeadFilter<'_>,
        after: Option<(i64, &str)>,
        offset: usize,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<DeadDelivery>, Error> {
        self.migrate_dead().await?;
        let from = after.map_or_else(|| "0".to_string(), |(at, id)| format!("{at:013}#{id}#~"));
        let (expression, mut values) = filter.expression(now_ms);
        values.extend([(":pk", s(keys::DEAD_AT)), (":from", s(from))]);
        let want = offset.saturating_add(limit);
        // `Limit` counts the rows read before the filter: a filtered page
        // reads 1,000 at a time rather than crawl.
        let page = if filter.tenant.is_some() || filter.flow_id.is_some() { want.max(1_000) } else { want };
        let items = self
            .query_pages("pk = :pk AND sk >= :from", Some(&expression), &values, (page, want), Read::Eventual)
            .await?;
        items.iter().skip(offset).take(limit).map(dead_of).collect()
    }

    /// How many dead deliveries `filter` takes, counted by the table
    /// (`Select: COUNT`, a request per 1 MB of rows; none sent here).
    pub async fn dead_count(&self, filter: DeadFilter<'_>, now_ms: i64) -> Result<usize, Error> {
        self.migrate_dead().await?;
        let (expression, values) = filter.expression(now_ms);
        let (mut total, mut start) = (0usize, None);
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(keys::DEAD_AT))
                .filter_expression(&expression)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start);
            for (k, v) in &values {
                q = q.expression_attribute_values(*k, v.clone());
            }
            let page = q.send().await.map_err(|e| Error::aws("DynamoDB", "Query", e))?;
            total += page.count.max(0) as usize;
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(total);
            }
        }
    }

    /// One dead delivery's row, by its key (`GetItem`; `None` once past
    /// its retention).
    pub async fn dead_one(&self, tenant: &str, delivery_id: &str) -> Result<Option<DeadDelivery>, Error> {
        let now = hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock);
        let Some(item) = self.get(keys::DEAD.into(), &keys::dead(tenant, delivery_id)).await? else { return Ok(None) };
        if get_n(&item, "expires_at").is_some_and(|e| e <= now / 1000) {
            return Ok(None);
        }
        dead_of(&item).map(Some)
    }

    /// The tenant of dead delivery `delivery_id` (`GetItem`).
    pub async fn dead_tenant(&self, delivery_id: &str) -> Result<Option<String>, Error> {
        self.migrate_dead().await?;
        let item = self.get(keys::dead_ref(delivery_id), keys::DEAD_REF).await?;
        Ok(item.as_ref().and_then(|i| get_s(i, "tenant")).map(String::from))
    }

    /// Lists the dead rows an earlier version wrote (in [`keys::DEAD`]
    /// only) by time and by id, [`MIGRATED_A_READ`] rows a read, resuming
    /// where the last read stopped (`DEADMIGRATED` holds the cursor, then
    /// `done`): the first reads after the update list them all, each
    /// bounded in time. They expire a dead retention after this.
    async fn migrate_dead(&self) -> Result<(), Error> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.dead_migrated.load(Relaxed) {
            return Ok(());
        }
        let mark = self.get(keys::DEAD_MIGRATED.into(), keys::DEAD_MIGRATED).await?;
        if mark.as_ref().is_some_and(|m| m.contains_key("done")) {
            self.dead_migrated.store(true, Relaxed);
            return Ok(());
        }
        let rows = match mark.as_ref().and_then(|m| get_s(m, "cursor")) {
            Some(from) => {
                let values = [(":pk", s(keys::DEAD)), (":from", s(from))];
                self.query_upto("pk = :pk AND sk > :from", None, &values, MIGRATED_A_READ, Read::Eventual).await?
            }
            None => {
                let values = [(":pk", s(keys::DEAD))];
                self.query_upto("pk = :pk", None, &values, MIGRATED_A_READ, Read::Eventual).await?
            }
        };
        let now = hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock);
        let expires = n(now / 1000 + self.dead_retention.as_secs() as i64);
        let mut items = Vec::with_capacity(rows.len() * 3);
        for mut row in rows.iter().take(MIGRATED_A_READ).cloned() {
            let tenant = get_s(&row, "tenant").unwrap_or_default().to_string();
            let id = get_s(&row, "delivery_id").unwrap_or_default().to_string();
            row.entry("expires_at".into()).or_insert_with(|| expires.clone());
            let mut by_id = key(keys::dead_ref(&id), keys::DEAD_REF);
            by_id.insert("tenant".into(), s(tenant.clone()));
            by_id.insert("expires_at".into(), row["expires_at"].clone());
            let mut listed = row.clone();
            listed.extend(key(keys::DEAD_AT.into(), keys::dead_listed(get_n(&row, "at").unwrap_or(0), &tenant, &id)));
            items.extend([row, listed, by_id]);
        }
        self.put_all(items, "dead rows listed").await?;
        let mut mark = key(keys::DEAD_MIGRATED.into(), keys::DEAD_MIGRATED);
        match rows.get(MIGRATED_A_READ - 1).filter(|_| rows.len() >= MIGRATED_A_READ) {
            Some(last) => {
                mark.insert("cursor".into(), s(get_s(last, "sk").unwrap_or_default()));
            }
            None => {
                mark.insert("done".into(), AttributeValue::Bool(true));
            }
        }
        self.put_all(vec![mark], "the migration's mark").await?;
        self.dead_migrated.store(mark_done(&rows), Relaxed);
        Ok(())
    }

    /// A dead delivery's job, from its parts (`None`: none kept). Read
    /// consistently: a replay may follow the write at once.
    pub async fn dead_job(&self, tenant: &str, delivery_id: &str) -> Result<Option<String>, Error> {
        let mut parts = self.dead_parts(tenant, delivery_id).await?;
        if parts.is_empty() {
            return Ok(None);
        }
        parts.sort_by(|a, b| get_s(a, "sk").cmp(&get_s(b, "sk")));
        let mut z = Vec::new();
        for p in &parts {
            match p.get("z") {
                Some(AttributeValue::B(b)) => z.extend_from_slice(b.as_ref()),
                _ => {
                    return Err(Error::Malformed(format!(
                        "dead delivery {delivery_id}: a part of its job is unreadable"
                    )));
                }
            }
        }
        let raw = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&z, MAX_INFLATED).map_err(|e| {
            Error::Malformed(format!(
                "dead delivery {delivery_id}: its job is not a zlib stream within the limit ({e})"
            ))
        })?;
        String::from_utf8(raw)
            .map(Some)
            .map_err(|_| Error::Malformed(format!("dead delivery {delivery_id}: its job is not UTF-8")))
    }

    /// The parts of a dead delivery's job, read consistently, every page.
    async fn dead_parts(&self, tenant: &str, delivery_id: &str) -> Result<Vec<Item>, Error> {
        let pk = s(keys::dead_job(tenant, delivery_id));
        self.query_upto("pk = :pk", None, &[(":pk", pk)], usize::MAX, Read::Consistent).await
    }

    /// Removes a dead delivery and its job, in one transaction (after its
    /// replay was queued); only as it was listed: a delivery that died
    /// again since (a newer row) stays.
    pub async fn forget_dead(&self, dead: &DeadDelivery) -> Result<(), Error> {
        let (tenant, id) = (&dead.row.tenant, &dead.row.delivery_id);
        let row = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.name)
            .set_key(Some(key(keys::DEAD.into(), keys::dead(tenant, id))))
            .condition_expression("attribute_not_exists(pk) OR #at = :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", n(dead.at))
            .build()
            .map_err(|e| Error::Malformed(e.to_string()))?;
        let delete = |pk: String, sk: String| {
            aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.name)
                .set_key(Some(key(pk, sk)))
                .build()
                .map(|d| TransactWriteItem::builder().delete(d).build())
                .map_err(|e| Error::Malformed(e.to_string()))
        };
        let listed = (keys::DEAD_AT.to_string(), keys::dead_listed(dead.at, tenant, id));
        let mut deletes = vec![
            TransactWriteItem::builder().delete(row).build(),
            delete(listed.0.clone(), listed.1.clone())?,
            delete(keys::dead_ref(id), keys::DEAD_REF.into())?,
        ];
        for part in self.dead_parts(tenant, id).await? {
            deletes.push(delete(keys::dead_job(tenant, id), get_s(&part, "sk").unwrap_or_default().to_string())?);
        }
        match self.client.transact_write_items().set_transact_items(Some(deletes)).send().await {
            Ok(_) => Ok(()),
            // Dead again since it was listed: its new row and job stay, the
            // listing as it was read goes.
            Err(e)
                if e.as_service_error().is_some_and(|s| match s {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => {
                        t.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                    }
                    _ => false,
                }) =>
            {
                self.client
                    .delete_item()
                    .table_name(&self.name)
                    .set_key(Some(key(listed.0, listed.1)))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| Error::aws("DynamoDB", "DeleteItem", e))
            }
            Err(e) => Err(Error::aws("DynamoDB", "TransactWriteItems", e)),
        }
    }
}

fn dead_of(i: &Item) -> Result<DeadDelivery, Error> {
    Ok(DeadDelivery {
        row: DeadRow {
            delivery_id: get_s(i, "delivery_id").unwrap_or_default().into(),
            tenant: get_s(i, "tenant").unwrap_or_default().into(),
            flow_id: get_s(i, "flow_id").unwrap_or_default().into(),
            run_id: get_s(i, "run_id").unwrap_or_default().into(),
            reason: get_s(i, "reason").unwrap_or_default().into(),
            // Rows written before jobs were kept apart hold it.
            job: get_text(i, "job")?.unwrap_or_default(),
        },
        at: get_n(i, "at").unwrap_or(0),
    })
}

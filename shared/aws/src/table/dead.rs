//! Dead deliveries: listed across tenants, forgotten once replayed. A row
//! says what, why and when; its job is apart ([`Table::dead_job`]).

use super::*;

impl Table {
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
        let mut dead: Vec<DeadDelivery> = items.iter().map(dead_of).collect::<Result<_, _>>()?;
        dead.sort_by_key(|d| d.at);
        Ok(dead)
    }

    /// One dead delivery's row, by its key (`GetItem`).
    pub async fn dead_one(&self, tenant: &str, delivery_id: &str) -> Result<Option<DeadDelivery>, Error> {
        self.get(keys::DEAD.into(), &keys::dead(tenant, delivery_id)).await?.as_ref().map(dead_of).transpose()
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
        let mut deletes = vec![TransactWriteItem::builder().delete(row).build()];
        for part in self.dead_parts(tenant, id).await? {
            let sk = get_s(&part, "sk").unwrap_or_default().to_string();
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.name)
                .set_key(Some(key(keys::dead_job(tenant, id), sk)))
                .build()
                .map_err(|e| Error::Malformed(e.to_string()))?;
            deletes.push(TransactWriteItem::builder().delete(delete).build());
        }
        match self.client.transact_write_items().set_transact_items(Some(deletes)).send().await {
            Ok(_) => Ok(()),
            // Dead again since it was listed: its new row and job stay.
            Err(e)
                if e.as_service_error().is_some_and(|s| match s {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => {
                        t.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                    }
                    _ => false,
                }) =>
            {
                Ok(())
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

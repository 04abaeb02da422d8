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
        let mut dead: Vec<DeadDelivery> = items
            .iter()
            .map(|i| -> Result<DeadDelivery, Error> {
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
            })
            .collect::<Result<_, _>>()?;
        dead.sort_by_key(|d| d.at);
        Ok(dead)
    }

    /// A dead delivery's job, from its parts (`None`: none kept).
    pub async fn dead_job(&self, tenant: &str, delivery_id: &str) -> Result<Option<String>, Error> {
        let mut parts = self.query_all("pk = :pk", None, &[(":pk", s(keys::dead_job(tenant, delivery_id)))]).await?;
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

    /// Removes a dead delivery and its job (after its replay was queued).
    pub async fn forget_dead(&self, tenant: &str, delivery_id: &str) -> Result<(), Error> {
        let old = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(keys::DEAD))
            .key("sk", s(keys::dead(tenant, delivery_id)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "DeleteItem", e))?;
        let parts = old.attributes.as_ref().and_then(|a| get_n(a, "parts")).unwrap_or(0);
        for i in 0..parts.max(0) as usize {
            self.client
                .delete_item()
                .table_name(&self.name)
                .key("pk", s(keys::dead_job(tenant, delivery_id)))
                .key("sk", s(keys::dead_part(i)))
                .send()
                .await
                .map_err(|e| Error::aws("DynamoDB", "DeleteItem", e))?;
        }
        Ok(())
    }
}

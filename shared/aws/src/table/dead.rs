//! Dead deliveries: listed across tenants, forgotten once replayed.

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
                        job: get_text(i, "job")?.unwrap_or_default(),
                    },
                    at: get_n(i, "at").unwrap_or(0),
                })
            })
            .collect::<Result<_, _>>()?;
        dead.sort_by_key(|d| d.at);
        Ok(dead)
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

//! Subscriptions: a partition per tenant (a publish reads its tenant's
//! only), found by id through a reference item that never changes.
//!
//! Subscriptions written before partitions per tenant sit in one `SUBS`
//! partition; a read that finds one there moves it ([`Table::moved`]), so
//! every write, which follows a read, lands in the new place. Once a
//! container has seen that partition empty it stops looking.

use std::sync::atomic::Ordering;

use super::*;

impl Table {
    /// Subscriptions, by id: of one tenant (or all), only active ones if
    /// `active_only`. One `Query` of the tenant's partition (all tenants:
    /// one of the tenant list, then one per tenant).
    pub async fn subscriptions(&self, tenant: Option<&str>, active_only: bool) -> Result<Vec<Subscription>, Error> {
        let tenants = match tenant {
            Some(t) => vec![t.to_string()],
            None => {
                let items = self.query_all("pk = :pk", None, &[(":pk", s(keys::SUB_TENANTS))]).await?;
                items.iter().filter_map(|i| get_s(i, "sk").map(String::from)).collect()
            }
        };
        let mut out = self.legacy(tenant).await?;
        for t in &tenants {
            let items = self.query_all("pk = :pk", None, &[(":pk", s(keys::subs(t)))]).await?;
            for i in &items {
                let sub = subscription_of(i)?;
                if !out.iter().any(|o: &Subscription| o.id == sub.id) {
                    out.push(sub);
                }
            }
        }
        out.retain(|s| !active_only || s.status == hookflow_core::subscription::Status::Active);
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// One subscription: its tenant from its reference (cached), then its
    /// item.
    pub async fn subscription(&self, id: &str) -> Result<Option<Subscription>, Error> {
        let tenant = match self.sub_tenants.get(id) {
            Some(t) => t,
            None => match self.get(keys::sub_ref(id), keys::SUBREF).await? {
                Some(r) => {
                    let t = get_s(&r, "tenant").unwrap_or_default().to_string();
                    self.sub_tenants.insert(id.to_string(), t.clone());
                    t
                }
                None => {
                    let Some(old) = self.get(keys::LEGACY_SUBS.into(), id).await? else { return Ok(None) };
                    return self.moved(&old).await.map(Some);
                }
            },
        };
        self.get(keys::subs(&tenant), id).await?.map(|i| subscription_of(&i)).transpose()
    }

    /// Deletes a subscription (its reference stays: an id is never
    /// reused); whether it existed.
    pub async fn delete_subscription(&self, id: &str) -> Result<bool, Error> {
        let Some(sub) = self.subscription(id).await? else { return Ok(false) };
        let out = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(keys::subs(&sub.tenant)))
            .key("sk", s(id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Subscriptions still in the old `SUBS` partition (of `tenant`, or
    /// all), each moved to its tenant's partition as it is read.
    async fn legacy(&self, tenant: Option<&str>) -> Result<Vec<Subscription>, Error> {
        if self.legacy_empty.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        let items = self.query_all("pk = :pk", None, &[(":pk", s(keys::LEGACY_SUBS))]).await?;
        if items.is_empty() {
            self.legacy_empty.store(true, Ordering::Relaxed);
        }
        let mut out = Vec::new();
        for i in items.iter().filter(|i| tenant.is_none_or(|t| get_s(i, "tenant") == Some(t))) {
            out.push(self.moved(i).await?);
        }
        Ok(out)
    }

    /// Moves a subscription from the old partition to its tenant's, with
    /// its reference, in one transaction: only if it is not there yet and
    /// the old item is as read (else another reader moved it, or it
    /// changed: either way the new place is the one to read).
    async fn moved(&self, old: &Item) -> Result<Subscription, Error> {
        let sub = subscription_of(old)?;
        let mut item = old.clone();
        item.insert("pk".into(), s(keys::subs(&sub.tenant)));
        let mut by_id = key(keys::sub_ref(&sub.id), keys::SUBREF);
        by_id.insert("tenant".into(), s(sub.tenant.clone()));
        let version = old.get("version").cloned().unwrap_or_else(|| n(0));
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.name)
            .set_key(Some(key(keys::LEGACY_SUBS.into(), sub.id.clone())))
            .condition_expression("attribute_not_exists(version) OR version = :v")
            .expression_attribute_values(":v", version)
            .build()
            .map_err(|e| Error::Malformed(e.to_string()))?;
        let writes = vec![
            put(&self.name, item, Some("attribute_not_exists(pk)"), &[])?,
            put(&self.name, by_id, None, &[])?,
            put(&self.name, key(keys::SUB_TENANTS.into(), sub.tenant.clone()), None, &[])?,
            TransactWriteItem::builder().delete(delete).build(),
        ];
        match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => Ok(sub),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                let now = self.get(keys::subs(&sub.tenant), &sub.id).await?;
                Ok(now.map(|i| subscription_of(&i)).transpose()?.unwrap_or(sub))
            }
            Err(e) => Err(Error::aws("DynamoDB", "TransactWriteItems", e)),
        }
    }
}

pub(super) fn subscription_of(item: &Item) -> Result<Subscription, Error> {
    let doc = get_s(item, "doc").unwrap_or_default();
    serde_json::from_str(doc).map_err(|e| Error::Malformed(format!("subscription item: {e}")))
}

//! Subscriptions: a partition per tenant (a publish reads its tenant's
//! only), found by id through a reference item that never changes.
//!
//! Subscriptions written before partitions per tenant stay in the one
//! `SUBS` partition, read and written there: a read remembers which ids
//! live there ([`Table::legacy_ids`]), so the write that follows it lands
//! in the same place. Nothing moves them: code of the previous version,
//! still running during a deploy (or after a rollback), reads them there.
//! A container that found that partition empty stops reading it for
//! [`LEGACY_RECHECK`].

use std::time::{Duration, Instant};

use super::*;

/// How long a container that found the old `SUBS` partition empty skips
/// it (a function of the previous version, during a deploy, may still
/// write a subscription there).
pub const LEGACY_RECHECK: Duration = Duration::from_secs(60);

impl Table {
    /// Subscriptions, by id: of one tenant (or all), only active ones if
    /// `active_only`. One `Query` of the tenant's partition (all tenants:
    /// one of the tenant list, then one per tenant), and of the old `SUBS`
    /// partition while it holds any.
    pub async fn subscriptions(&self, tenant: Option<&str>, active_only: bool) -> Result<Vec<Subscription>, Error> {
        self.read_subscriptions(tenant, active_only, Read::Eventual).await
    }

    /// [`Table::subscriptions`] of `tenant`, read consistently: every
    /// subscription write finished before is seen (a publish's settling
    /// read, after its write).
    pub async fn subscriptions_now(&self, tenant: &str) -> Result<Vec<Subscription>, Error> {
        self.read_subscriptions(Some(tenant), true, Read::Consistent).await
    }

    async fn read_subscriptions(
        &self,
        tenant: Option<&str>,
        active_only: bool,
        read: Read,
    ) -> Result<Vec<Subscription>, Error> {
        let tenants = match tenant {
            Some(t) => vec![t.to_string()],
            None => {
                let items = self.query_all("pk = :pk", None, &[(":pk", s(keys::SUB_TENANTS))]).await?;
                items.iter().filter_map(|i| get_s(i, "sk").map(String::from)).collect()
            }
        };
        let mut out = Vec::new();
        for t in &tenants {
            for i in &self.query_upto("pk = :pk", None, &[(":pk", s(keys::subs(t)))], usize::MAX, read).await? {
                out.push(subscription_of(i)?);
            }
        }
        // After the tenants' own: of one id in both places, the sort (stable)
        // and the dedup keep the tenant's.
        out.extend(self.legacy(tenant, read).await?);
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        out.retain(|s| !active_only || s.status == hookflow_core::subscription::Status::Active);
        Ok(out)
    }

    /// One subscription: its tenant from its reference (cached), then its
    /// item; one without a reference is looked for in the old partition.
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
                    self.legacy_ids.insert(id.to_string(), ());
                    return subscription_of(&old).map(Some);
                }
            },
        };
        self.get(keys::subs(&tenant), id).await?.map(|i| subscription_of(&i)).transpose()
    }

    /// The partition a subscription's item is in: its tenant's, or the old
    /// one if it was read there.
    pub(super) fn subscription_pk(&self, id: &str, tenant: &str) -> String {
        if self.legacy_ids.get(id).is_some() { keys::LEGACY_SUBS.to_string() } else { keys::subs(tenant) }
    }

    /// Deletes a subscription (its reference stays: an id is never
    /// reused); whether it existed.
    pub async fn delete_subscription(&self, id: &str) -> Result<bool, Error> {
        let Some(sub) = self.subscription(id).await? else { return Ok(false) };
        let out = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(self.subscription_pk(id, &sub.tenant)))
            .key("sk", s(id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    /// Subscriptions still in the old `SUBS` partition (of `tenant`, or
    /// all), their ids remembered as living there.
    async fn legacy(&self, tenant: Option<&str>, read: Read) -> Result<Vec<Subscription>, Error> {
        let skip = self
            .legacy_empty_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < LEGACY_RECHECK);
        if skip {
            return Ok(Vec::new());
        }
        let items = self.query_upto("pk = :pk", None, &[(":pk", s(keys::LEGACY_SUBS))], usize::MAX, read).await?;
        *self.legacy_empty_at.lock().unwrap_or_else(|p| p.into_inner()) = items.is_empty().then(Instant::now);
        let mut out = Vec::new();
        for i in items.iter().filter(|i| tenant.is_none_or(|t| get_s(i, "tenant") == Some(t))) {
            let sub = subscription_of(i)?;
            self.legacy_ids.insert(sub.id.clone(), ());
            out.push(sub);
        }
        Ok(out)
    }
}

pub(super) fn subscription_of(item: &Item) -> Result<Subscription, Error> {
    let doc = get_s(item, "doc").unwrap_or_default();
    serde_json::from_str(doc).map_err(|e| Error::Malformed(format!("subscription item: {e}")))
}

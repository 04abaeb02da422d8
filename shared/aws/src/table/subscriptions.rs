//! Subscriptions: one partition, read whole.

use super::*;

impl Table {
    /// Subscriptions, by id: of one tenant (or all), only active ones if
    /// `active_only`. One `Query` of the `SUBS` partition.
    pub async fn subscriptions(&self, tenant: Option<&str>, active_only: bool) -> Result<Vec<Subscription>, Error> {
        let items = self.query_all("pk = :pk", None, &[(":pk", s(keys::SUBS))]).await?;
        let mut out = Vec::new();
        for i in &items {
            if tenant.is_some_and(|t| get_s(i, "tenant") != Some(t))
                || (active_only && get_s(i, "status") != Some("active"))
            {
                continue;
            }
            out.push(subscription_of(i)?);
        }
        Ok(out)
    }

    pub async fn subscription(&self, id: &str) -> Result<Option<Subscription>, Error> {
        self.get(keys::SUBS.into(), id).await?.map(|i| subscription_of(&i)).transpose()
    }

    /// Deletes a subscription; whether it existed.
    pub async fn delete_subscription(&self, id: &str) -> Result<bool, Error> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key("pk", s(keys::SUBS))
            .key("sk", s(id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

pub(super) fn subscription_of(item: &Item) -> Result<Subscription, Error> {
    let doc = get_s(item, "doc").unwrap_or_default();
    serde_json::from_str(doc).map_err(|e| Error::Malformed(format!("subscription item: {e}")))
}

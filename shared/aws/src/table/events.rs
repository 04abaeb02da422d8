//! Published events: an id's window, a tenant's events by hour.

use super::*;
use crate::keys::Hourly;

impl Table {
    /// Whether event `id` of `tenant` is inside its idempotency window.
    pub async fn live_event(&self, tenant: &str, id: &str, now_ms: i64) -> Result<bool, Error> {
        Ok(self.published(tenant, id, now_ms).await?.is_some())
    }

    /// Event `id` of `tenant`, if inside its idempotency window: what its
    /// publish has left to send ([`crate::outbox`]; empty once sent).
    pub async fn published(&self, tenant: &str, id: &str, now_ms: i64) -> Result<Option<Outbox>, Error> {
        Ok(self.published_at(tenant, id, now_ms).await?.map(|(outbox, _)| outbox))
    }

    /// [`Table::published`], and when the event was stamped (`None`: an
    /// item written before the time was kept in it).
    pub async fn published_at(
        &self,
        tenant: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<(Outbox, Option<i64>)>, Error> {
        let Some(item) = self.get(keys::event(tenant, id), keys::EVENT).await? else { return Ok(None) };
        if get_n(&item, "until").unwrap_or(0) <= now_ms {
            return Ok(None);
        }
        let outbox = get_text(&item, "outbox")?.as_deref().map(Outbox::from_text).transpose()?.unwrap_or_default();
        Ok(Some((outbox, get_n(&item, "at"))))
    }

    /// Event `id` of `tenant` published at `at`, as stored (its copy by
    /// time, read consistently).
    pub async fn event_at(&self, tenant: &str, id: &str, at: i64) -> Result<Option<Event>, Error> {
        let Some(item) = self.get(keys::events(tenant, at), &keys::events_sort(at, id)).await? else { return Ok(None) };
        event_of(&item).map(Some)
    }

    /// Forgets a published event's outbox: its messages were sent.
    pub async fn sent_event(&self, tenant: &str, id: &str) -> Result<(), Error> {
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key(keys::event(tenant, id), keys::EVENT)))
            .update_expression("REMOVE outbox")
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map(|_| ())
            .or_else(|e| match e.as_service_error() {
                Some(x) if x.is_conditional_check_failed_exception() => Ok(()),
                _ => Err(Error::aws("DynamoDB", "UpdateItem", e)),
            })
    }

    /// A tenant's events published from `since_ms` on, oldest first, at most
    /// `limit` (the hours that hold events, inside the retention), read
    /// consistently: an enable's replay must see every event written
    /// before its read ([`hookflow_pipeline`]'s publish settles the rest).
    /// Events stamped up to an hour ahead of `now_ms` (another function's
    /// clock) are read too.
    pub async fn events(&self, tenant: &str, since_ms: i64, now_ms: i64, limit: usize) -> Result<Vec<Event>, Error> {
        let range = (since_ms, now_ms + 3_600_000);
        let mut pages =
            self.hour_pages((Hourly::Events, None), tenant, range, now_ms, false, Read::Consistent, limit).await?;
        let mut out: Vec<Event> = Vec::new();
        while let Some(items) = pages.next().await? {
            for i in &items {
                out.push(event_of(i)?);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// A tenant's events from `upto_ms` back to `since_ms`, newest first,
    /// at most `max` of those whose type `selects` takes.
    pub async fn recent_events(
        &self,
        tenant: &str,
        (since_ms, upto_ms): (i64, i64),
        now_ms: i64,
        max: usize,
        selects: impl Fn(&str) -> bool,
    ) -> Result<Vec<Event>, Error> {
        let mut pages = self
            .hour_pages((Hourly::Events, None), tenant, (since_ms, upto_ms), now_ms, true, Read::Eventual, max)
            .await?;
        let mut out: Vec<Event> = Vec::new();
        while let Some(items) = pages.next().await? {
            for i in items.iter().filter(|i| selects(get_s(i, "type").unwrap_or_default())) {
                out.push(event_of(i)?);
                if out.len() >= max {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }
}

fn event_of(i: &Item) -> Result<Event, Error> {
    let doc = get_text(i, "doc")?.unwrap_or_default();
    serde_json::from_str(&doc).map_err(|e| Error::Malformed(format!("event item: {e}")))
}

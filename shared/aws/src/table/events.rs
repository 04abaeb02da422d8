//! Published events: an id's window, a tenant's events by hour.

use super::*;

impl Table {
    /// Whether event `id` of `tenant` is inside its idempotency window.
    pub async fn live_event(&self, tenant: &str, id: &str, now_ms: i64) -> Result<bool, Error> {
        Ok(self
            .get(keys::event(tenant, id), keys::EVENT)
            .await?
            .is_some_and(|i| get_n(&i, "until").unwrap_or(0) > now_ms))
    }

    /// A tenant's events published from `since_ms` on, oldest first, at most
    /// `limit` (one `Query` per hour, inside the retention).
    pub async fn events(&self, tenant: &str, since_ms: i64, now_ms: i64, limit: usize) -> Result<Vec<Event>, Error> {
        let mut out: Vec<Event> = Vec::new();
        self.by_hour(
            |at| keys::events(tenant, at),
            since_ms,
            now_ms,
            |items| {
                for i in &items {
                    let doc = get_s(i, "doc").unwrap_or_default();
                    out.push(serde_json::from_str(doc).map_err(|e| Error::Malformed(format!("event item: {e}")))?);
                    if out.len() >= limit {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )
        .await?;
        Ok(out)
    }
}

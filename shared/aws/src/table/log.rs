//! The request log: a run's entries, a tenant's requests by hour.

use super::item::RunDoc;
use super::*;

impl Table {
    /// Log entries of a run, oldest first, without expired ones: those its
    /// item keeps and those of their own, in one `Query`.
    pub async fn run_entries(&self, run_id: &str, now_ms: i64) -> Result<Vec<LogEntry>, Error> {
        let items = self
            .query_all(
                "pk = :pk",
                Some("expires_at > :now"),
                &[(":pk", s(keys::run(run_id))), (":now", n(now_ms / 1000))],
            )
            .await?;
        let mut out = Vec::new();
        for item in &items {
            if get_s(item, "sk") == Some(keys::RUN) {
                // An unreadable kept log is shown as none rather than
                // failing the listing.
                out.extend(RunDoc::of_item(item, run_id).and_then(|d| d.entries()).unwrap_or_default());
            } else {
                out.push(entry_of(item));
            }
        }
        out.sort_by_key(|e| e.at);
        Ok(out)
    }

    /// The requests a tenant received from `since_ms` on (every inbound
    /// entry: rejected, duplicate, accepted with its run id), oldest first,
    /// plus any other entry without a run; one `Query` per hour.
    pub(super) async fn tenant_entries(
        &self,
        tenant: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<LogEntry>, Error> {
        let mut out = Vec::new();
        self.by_hour(
            Read::Eventual,
            |at| keys::tenant_log(tenant, at),
            since_ms,
            now_ms,
            usize::MAX,
            |items| {
                out.extend(items.iter().map(entry_of));
                Ok(true)
            },
        )
        .await?;
        Ok(out)
    }

    /// What a tenant's request log holds from `since_ms` on, oldest first:
    /// every request it received and, for those that started a run, the
    /// run's whole timeline (one `Query` per hour and one per run, at most
    /// `max_runs` runs, the newest).
    pub async fn tenant_log(
        &self,
        tenant: &str,
        since_ms: i64,
        now_ms: i64,
        max_runs: usize,
    ) -> Result<Vec<LogEntry>, Error> {
        self.tenant_log_of(tenant, since_ms, now_ms, max_runs, |_| true).await
    }

    /// [`Table::tenant_log`] of the requests `keep` takes (a flow's, an
    /// event's): only their runs are read (one `Query` each), not every
    /// run of the window's.
    pub async fn tenant_log_of(
        &self,
        tenant: &str,
        since_ms: i64,
        now_ms: i64,
        max_runs: usize,
        keep: impl Fn(&LogEntry) -> bool,
    ) -> Result<Vec<LogEntry>, Error> {
        let mut requests = self.tenant_entries(tenant, since_ms, now_ms).await?;
        requests.retain(|e| keep(e));
        let mut runs: Vec<&str> = requests.iter().filter_map(|e| e.run_id.as_deref()).collect();
        runs.dedup();
        let skip = runs.len().saturating_sub(max_runs);
        let mut out: Vec<LogEntry> = requests.iter().filter(|e| e.run_id.is_none()).cloned().collect();
        for run in &runs[skip..] {
            out.extend(self.run_entries(run, now_ms).await?);
        }
        out.sort_by_key(|e| e.at);
        Ok(out)
    }
}

pub(super) fn entry_of(item: &Item) -> LogEntry {
    let opt = |k: &str| get_s(item, k).map(String::from);
    LogEntry {
        at: get_n(item, "at").unwrap_or(0),
        kind: hookflow_core::commit::EntryKind::parse(get_s(item, "kind").unwrap_or_default()),
        tenant: opt("tenant"),
        flow_id: opt("flow_id"),
        run_id: opt("run_id"),
        event_id: opt("event_id"),
        delivery_id: opt("delivery_id"),
        outcome: opt("outcome"),
        // An unreadable detail is shown as none rather than failing the listing.
        detail: get_text(item, "detail")
            .ok()
            .flatten()
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(Value::Null),
        seq: None,
    }
}

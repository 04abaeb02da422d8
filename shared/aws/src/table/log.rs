//! The request log: a run's entries, a tenant's requests by hour.

use super::item::RunDoc;
use super::*;
use crate::keys::Hourly;

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

    /// A tenant's request log from `since_ms` on, oldest first: the
    /// newest requests (rejected, duplicate, accepted) and, for those that
    /// started a run, the run's timeline, at most `max_runs` runs.
    pub async fn tenant_log(
        &self,
        tenant: &str,
        since_ms: i64,
        now_ms: i64,
        max_runs: usize,
    ) -> Result<Vec<LogEntry>, Error> {
        self.tenant_log_page(tenant, (since_ms, now_ms), now_ms, usize::MAX, max_runs, &Requests::default(), |_| true)
            .await
    }

    /// A page of a tenant's request log, oldest first: its requests from
    /// `upto_ms` back to `since_ms`, newest first, each with its run's
    /// timeline (one `Query` a run, 16 at a time), until `limit` entries
    /// `keep` takes are found or `max_runs` runs were read. Only the hours
    /// that hold requests are read ([`Table::hours`]), and a page's cost
    /// follows the requests it reads, never the history behind them.
    #[allow(clippy::too_many_arguments)]
    pub async fn tenant_log_page(
        &self,
        tenant: &str,
        (since_ms, upto_ms): (i64, i64),
        now_ms: i64,
        limit: usize,
        max_runs: usize,
        only: &Requests,
        keep: impl Fn(&LogEntry) -> bool,
    ) -> Result<Vec<LogEntry>, Error> {
        let mut pages = self
            .hour_pages(
                (Hourly::Log, only.flow_id.as_deref()),
                tenant,
                (since_ms, upto_ms),
                now_ms,
                true,
                Read::Eventual,
                limit.min(1_000),
            )
            .await?;
        if let Some((expression, values)) = only.expression() {
            pages = pages.only(&expression, values);
        }
        let mut out = Vec::new();
        let mut runs: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut heads = 0;
        'pages: while let Some(items) = pages.next().await? {
            let requests: Vec<LogEntry> = items.iter().map(entry_of).collect();
            for chunk in requests.chunks(16) {
                heads += chunk.iter().filter(|e| hookflow_core::requests::is_head(e)).count();
                let mut new = Vec::new();
                for run in chunk.iter().filter_map(|e| e.run_id.as_deref()) {
                    if runs.len() < max_runs && runs.insert(run.to_string()) {
                        new.push(run);
                    }
                }
                let timelines =
                    futures_util::future::join_all(new.into_iter().map(|run| self.run_entries(run, now_ms))).await;
                for timeline in timelines {
                    out.extend(timeline?.into_iter().filter(&keep));
                }
                out.extend(chunk.iter().filter(|e| e.run_id.is_none() && keep(e)).cloned());
                if out.len() >= limit || runs.len() >= max_runs || only.most.is_some_and(|most| heads >= most) {
                    break 'pages;
                }
            }
        }
        out.sort_by_key(|e| e.at);
        let skip = out.len().saturating_sub(limit);
        Ok(out.split_off(skip))
    }

    /// Every log entry of event `event_id` of `tenant`, oldest first: the
    /// run-less ones kept by event (a rejected or duplicate request, its
    /// publish: one `Query`) and those of its runs (one `Query` each):
    /// the run its trigger request started (`evt_{id}` → `run_{id}`), the
    /// deliveries of a published event (under the event's id), the runs
    /// its publish started. Never the tenant's hours.
    pub async fn event_entries(&self, tenant: &str, event_id: &str, now_ms: i64) -> Result<Vec<LogEntry>, Error> {
        let own = self
            .query_all(
                "pk = :pk",
                Some("expires_at > :now"),
                &[(":pk", s(keys::event_log(tenant, event_id))), (":now", n(now_ms / 1000))],
            )
            .await?;
        let mut out: Vec<LogEntry> = own.iter().map(entry_of).collect();
        let mut runs = std::collections::BTreeSet::from([event_id.to_string()]);
        runs.extend(keys::run_of_event(event_id));
        for e in &out {
            let started = e.detail.get("runs").and_then(Value::as_array).into_iter().flatten();
            runs.extend(started.filter_map(Value::as_str).map(String::from));
        }
        let timelines = futures_util::future::join_all(runs.iter().map(|r| self.run_entries(r, now_ms))).await;
        for timeline in timelines {
            out.extend(timeline?.into_iter().filter(|e| e.event_id.as_deref() == Some(event_id)));
        }
        out.sort_by_key(|e| e.at);
        Ok(out)
    }
}

/// Which requests a read of the request log takes, as the table filters
/// them (a flow's: only the hours its index lists are read).
#[derive(Debug, Clone, Default)]
pub struct Requests {
    pub flow_id: Option<String>,
    /// The most requests (and published events) read, if bounded.
    pub most: Option<usize>,
}

impl Requests {
    fn expression(&self) -> Option<(String, Vec<(String, AttributeValue)>)> {
        let f = self.flow_id.as_ref()?;
        Some(("flow_id = :flow_id".into(), vec![(":flow_id".into(), s(f.clone()))]))
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

//! `hookflow dev`: the inbound server and the workers in one process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hookflow_core::engine::Level;
use serde_json::json;

use crate::flows::{Flows, load_dir};
use crate::runtime::Runtime;

pub use crate::server::{Limits, serve, serve_metrics};

/// Newest modification time of the flow directory and its files.
fn dir_stamp(dir: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(dir).ok()?.modified().ok()?;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
            newest = newest.max(t);
        }
    }
    Some(newest)
}

/// Reloads the flows when the directory changes; an invalid change is
/// reported and the running flows stay.
pub async fn watch(rt: Arc<Runtime>, dir: PathBuf, addr: SocketAddr) {
    let mut last = dir_stamp(&dir);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = dir_stamp(&dir);
        if now == last {
            continue;
        }
        last = now;
        let loaded = load_dir(&dir).inspect(|list| {
            for w in list.iter().flat_map(|c| &c.warnings) {
                rt.logger.log(Level::Warn, "flow warning", json!({"warning": w.to_string()}));
            }
        });
        match loaded.and_then(|f| Flows::new(f).map_err(|e| vec![e.to_string()])) {
            Ok(flows) => {
                let n = flows.all().count();
                rt.set_flows(flows);
                let triggers = triggers(&rt, addr);
                rt.logger.log(Level::Info, "flows reloaded", json!({"flows": n, "triggers": triggers}));
            }
            Err(problems) => {
                rt.logger.log(Level::Error, "flows not reloaded: invalid", json!({"problems": problems}));
            }
        }
    }
}

/// Every trigger: `METHODS URL` (`EVENT types -> tenant/flow` for an
/// event's), sorted.
fn triggers(rt: &Runtime, addr: SocketAddr) -> Vec<String> {
    let mut urls: Vec<String> = rt
        .flows()
        .all()
        .map(|f| match f.flow.trigger.kind {
            hookflow_core::flow::TriggerKind::Event => {
                format!("EVENT {} -> {}/{}", f.flow.trigger.events.join("|"), f.flow.tenant, f.flow.id)
            }
            hookflow_core::flow::TriggerKind::Webhook => format!(
                "{} http://{addr}{}",
                f.flow.trigger.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join("|"),
                f.flow.trigger_path()
            ),
        })
        .collect();
    urls.sort();
    urls
}

/// The startup banner: one line with every trigger's URL.
pub fn banner(rt: &Runtime, addr: SocketAddr) -> String {
    let urls = triggers(rt, addr);
    if urls.is_empty() {
        return format!(
            "hookflow dev listening on http://{addr}; no flows yet: add a flow file (.yaml) to the flows \
             directory, it is loaded without a restart"
        );
    }
    format!("hookflow dev listening on http://{addr}; triggers: {}", urls.join(", "))
}

/// Deletes request-log entries, published events and finished runs older
/// than `retention` (and expired idempotency answers), and dead deliveries
/// older than `dead_retention`, hourly, on a blocking thread (in chunks:
/// `Store::prune_log`, `Store::prune_runs`), off the async workers.
pub async fn prune(rt: Arc<Runtime>, retention: Duration, dead_retention: Duration) {
    loop {
        let now = crate::now_ms();
        let before = now - retention.as_millis() as i64;
        let dead_before = now.saturating_sub(dead_retention.as_millis().min(i64::MAX as u128) as i64);
        let rt2 = rt.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            let now = crate::now_ms();
            // The dead first: a run one still needs is kept.
            let dead = rt2.store.prune_dead(dead_before);
            (dead, rt2.store.prune_events(before, now), rt2.store.prune_runs(before, now), rt2.store.prune_log(before))
        })
        .await;
        if let Ok((dead, events, runs, log)) = pruned {
            match dead {
                Ok(0) => {}
                Ok(n) => {
                    rt.logger.log(Level::Info, "dead deliveries past their retention forgotten", json!({"dead": n}))
                }
                Err(e) => rt.logger.log(Level::Error, "dead pruning failed", json!({"error": e.to_string()})),
            }
            if let Err(e) = events {
                rt.logger.log(Level::Error, "event pruning failed", json!({"error": e.to_string()}));
            }
            match runs {
                Ok(0) => {}
                Ok(n) => rt.logger.log(Level::Info, "finished runs pruned", json!({"runs": n})),
                Err(e) => rt.logger.log(Level::Error, "run pruning failed", json!({"error": e.to_string()})),
            }
            match log {
                Ok(0) => {}
                Ok(n) => rt.logger.log(Level::Info, "request log pruned", json!({"entries": n})),
                Err(e) => rt.logger.log(Level::Error, "request log pruning failed", json!({"error": e.to_string()})),
            }
        }
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

//! "Replay everything matching the filter": the dead deliveries matching
//! a filter at the moment of the click, replayed one admin API request
//! each in a task of the console's, whose progress a page follows.
//!
//! The ids are read first, every page of them after the last row of the
//! page before (a cursor that rows replayed meanwhile do not shift), so
//! the replay is of that list: a delivery that dies again while the task
//! runs is not replayed twice by it. A delivery replayed meanwhile
//! elsewhere (404) is counted as gone, not failed. The first other
//! failure stops the task and is shown; what was queued stays queued. One
//! task runs at a time, whatever its filter (two would replay the rows
//! they share twice): a second click follows the running one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::api::{Api, encode};

/// The replays a console keeps the progress of (the oldest is forgotten).
const KEPT: usize = 20;
/// Dead deliveries listed a request while reading the ids.
const LIST_PAGE: usize = 1_000;

/// One replay's progress.
#[derive(Default)]
pub struct Progress {
    /// The flow it replays the dead deliveries of (empty: all).
    pub flow_id: String,
    pub total: AtomicUsize,
    pub replayed: AtomicUsize,
    /// Replayed meanwhile by someone else.
    pub gone: AtomicUsize,
    pub finished: AtomicBool,
    pub failure: Mutex<Option<String>>,
}

impl Progress {
    pub fn state(&self) -> Value {
        json!({
            "flow_id": self.flow_id,
            "total": self.total.load(Ordering::Relaxed),
            "replayed": self.replayed.load(Ordering::Relaxed),
            "gone": self.gone.load(Ordering::Relaxed),
            "finished": self.finished.load(Ordering::Relaxed),
            "failure": self.failure.lock().map(|f| f.clone()).unwrap_or(None),
        })
    }
}

/// The console's replays, newest last.
#[derive(Default)]
pub struct Replays {
    kept: Mutex<VecDeque<(String, Arc<Progress>)>>,
}

impl Replays {
    pub fn get(&self, id: &str) -> Option<Arc<Progress>> {
        self.kept.lock().ok()?.iter().find(|(k, _)| k == id).map(|(_, p)| p.clone())
    }

    /// Starts replaying every dead delivery of `flow_id` (all if empty);
    /// the replay's id — that of the one running, if one is.
    pub fn start(&self, api: Api, flow_id: String) -> String {
        let id = crate::session::random_token();
        let progress = Arc::new(Progress { flow_id: flow_id.clone(), ..Progress::default() });
        if let Ok(mut kept) = self.kept.lock() {
            if let Some((running, _)) = kept.iter().find(|(_, p)| !p.finished.load(Ordering::Relaxed)) {
                return running.clone();
            }
            // Only finished ones are forgotten (none other runs).
            while kept.len() >= KEPT {
                kept.pop_front();
            }
            kept.push_back((id.clone(), progress.clone()));
        }
        tokio::spawn(async move {
            // In a task of its own: a panic is a failure shown, and the
            // replay still ends (a second click is not held forever).
            let p = progress.clone();
            let outcome = tokio::spawn(async move { run(&api, &flow_id, &p).await }).await;
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(e) => Some(format!("the replay stopped: {e}")),
            };
            if let (Some(e), Ok(mut f)) = (failure, progress.failure.lock()) {
                *f = Some(e);
            }
            progress.finished.store(true, Ordering::Relaxed);
        });
        id
    }
}

async fn run(api: &Api, flow_id: &str, p: &Progress) -> Result<(), String> {
    let filter = if flow_id.is_empty() { String::new() } else { format!("&flow_id={}", encode(flow_id)) };
    let mut all: Vec<(String, String)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut after = String::new();
    loop {
        let page = api
            .get(&format!("/v1/dead?limit={LIST_PAGE}{filter}{after}"))
            .await
            .map_err(|f| format!("listing the dead deliveries: {f}"))?;
        let rows = page.get("dead").and_then(Value::as_array).cloned().unwrap_or_default();
        for r in &rows {
            let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            // Dead again while listed (a newer row, later in the order): once.
            if seen.insert(field("delivery_id")) {
                all.push((field("delivery_id"), field("tenant")));
            }
        }
        p.total.store(all.len(), Ordering::Relaxed);
        let Some(last) = rows.last().filter(|_| rows.len() == LIST_PAGE) else { break };
        let at = last.get("at").and_then(Value::as_i64).unwrap_or(0);
        let id = last.get("delivery_id").and_then(Value::as_str).unwrap_or_default();
        after = format!("&after_at={at}&after_id={}", encode(id));
    }
    for (id, tenant) in &all {
        let path = format!("/v1/dead/{}/replay?tenant={}", encode(id), encode(tenant));
        match api.post(&path, &json!({})).await {
            Ok(_) => p.replayed.fetch_add(1, Ordering::Relaxed),
            Err(f) if f.status == StatusCode::NOT_FOUND => p.gone.fetch_add(1, Ordering::Relaxed),
            Err(f) => return Err(format!("replaying {id}: {f}")),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use axum::Router;
    use axum::extract::RawQuery;
    use axum::routing::{get, post};

    use super::*;

    /// An admin API with `n` dead deliveries listed `page` at a time after
    /// the cursor given, and a count of the replays asked for.
    fn api(n: usize, replays: Arc<AtomicUsize>) -> Api {
        let list = move |RawQuery(q): RawQuery| async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let q = q.unwrap_or_default();
            let after = q.split('&').find_map(|p| p.strip_prefix("after_at=")).map_or(-1, |v| v.parse().unwrap());
            let rows: Vec<Value> = (0..n as i64)
                .filter(|at| *at > after)
                .take(LIST_PAGE)
                .map(|at| json!({"delivery_id": format!("msg_{at:05}"), "tenant": "t", "at": at}))
                .collect();
            axum::Json(json!({"dead": rows, "total": n}))
        };
        let router = Router::new().route("/v1/dead", get(list)).route(
            "/v1/dead/{id}/replay",
            post(move || {
                let r = replays.clone();
                async move {
                    r.fetch_add(1, Ordering::Relaxed);
                    axum::Json(json!({}))
                }
            }),
        );
        Api::new(router, "t".into())
    }

    #[tokio::test]
    async fn every_page_is_replayed_once_and_a_second_click_follows_the_first() {
        let replays = Arc::new(AtomicUsize::new(0));
        let r = Replays::default();
        let first = r.start(api(2_500, replays.clone()), "f".into());
        assert_eq!(r.start(api(2_500, replays.clone()), "f".into()), first, "the running one, not a second");
        // Another filter too: two at once would replay shared rows twice.
        assert_eq!(r.start(api(2_500, replays.clone()), "".into()), first);
        let p = r.get(&first).unwrap();
        for _ in 0..200 {
            if p.finished.load(Ordering::Relaxed) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(p.state()["total"], 2_500, "three pages, by cursor");
        assert_eq!(p.state()["replayed"], 2_500);
        assert_eq!(replays.load(Ordering::Relaxed), 2_500, "each once");
        // Finished: a new click is a new replay.
        assert_ne!(r.start(api(0, replays), "f".into()), first);
    }
}

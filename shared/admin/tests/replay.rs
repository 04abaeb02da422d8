//! Enable with replay, through the router, over an in-memory backend whose
//! queue and writes fail when told: a replay stopped anywhere is resumed by
//! the same request, and every missed event is queued at least once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use hookflow_admin::axum::body::{Body, to_bytes};
use hookflow_admin::axum::http::Request;
use hookflow_admin::{Admin, Backend, BackendError, FlowInfo, LogFilter, Published, router};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{DeadDelivery, LogEntry, NewJob};
use hookflow_core::subscription::{Event, Keyring, NewSubscription, Settings, Subscription};
use serde_json::{Value, json};
use tower::ServiceExt;

/// What the backend holds, and the faults it injects.
#[derive(Default)]
struct Memory {
    subs: Mutex<HashMap<String, Subscription>>,
    /// Oldest first.
    events: Mutex<Vec<Event>>,
    /// An event whose publish was in flight: it lands (with its earlier
    /// time) when the first page is queued.
    late: Mutex<Option<Event>>,
    /// Every job queued, in order (a job queued twice is here twice).
    queued: Mutex<Vec<NewJob>>,
    /// The clock (ms), moved by `tick` on each reading.
    clock: AtomicI64,
    tick: i64,
    /// How far the clock moves during the next subscription write (a slow
    /// one), once.
    slow_save: AtomicI64,
    /// Calls to `queue` / `save_subscription` so far, and which (1-based)
    /// fail.
    queues: AtomicI64,
    saves: AtomicI64,
    fail_queue: Mutex<Vec<i64>>,
    fail_save: Mutex<Vec<i64>>,
    /// How many of the next subscription writes another writer beats (the
    /// endpoint's health moving the record first).
    beaten: AtomicI64,
    settings: Settings,
}

fn down<T>(what: &str) -> Result<T, BackendError> {
    Err(BackendError::Unsupported(format!("{what}: not in this test")))
}

/// The backend: a handle on the memory the test reads too.
struct Handle(Arc<Memory>);

impl std::ops::Deref for Handle {
    type Target = Memory;
    fn deref(&self) -> &Memory {
        &self.0
    }
}

impl Backend for Handle {
    fn settings(&self) -> &Settings {
        &self.settings
    }
    fn now_ms(&self) -> i64 {
        self.clock.fetch_add(self.tick, Ordering::SeqCst)
    }
    async fn flows(&self) -> Result<Vec<FlowInfo>, BackendError> {
        down("flows")
    }
    async fn flow(&self, _: &str, _: &str) -> Result<Option<FlowInfo>, BackendError> {
        down("flow")
    }
    async fn put_flow(&self, _: &CompiledFlow, _: &str) -> Result<(FlowInfo, bool), BackendError> {
        down("put_flow")
    }
    async fn delete_flow(&self, _: &str, _: &str) -> Result<bool, BackendError> {
        down("delete_flow")
    }
    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, BackendError> {
        Ok(self.subs.lock().unwrap().get(id).cloned())
    }
    async fn subscriptions(&self, _: Option<&str>) -> Result<Vec<Subscription>, BackendError> {
        Ok(self.subs.lock().unwrap().values().cloned().collect())
    }
    async fn save_subscription(
        &self,
        sub: &Subscription,
        prev: Option<i64>,
        jobs: Vec<NewJob>,
    ) -> Result<(), BackendError> {
        let n = self.saves.fetch_add(1, Ordering::SeqCst) + 1;
        self.clock.fetch_add(self.slow_save.swap(0, Ordering::SeqCst), Ordering::SeqCst);
        if self.fail_save.lock().unwrap().contains(&n) {
            return Err(BackendError::Unavailable(format!("save {n} failed")));
        }
        let mut subs = self.subs.lock().unwrap();
        if self.beaten.fetch_sub(1, Ordering::SeqCst) > 0
            && let Some(s) = subs.get_mut(&sub.id)
        {
            s.updated_at += 1;
            s.failing_since = Some(s.updated_at);
        }
        if prev.is_some() && subs.get(&sub.id).map(|s| s.updated_at) != prev {
            return Err(BackendError::Conflict { field: None, message: "changed".into() });
        }
        subs.insert(sub.id.clone(), sub.clone());
        self.queued.lock().unwrap().extend(jobs);
        Ok(())
    }
    async fn queue(&self, jobs: Vec<NewJob>) -> Result<(), BackendError> {
        let n = self.queues.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_queue.lock().unwrap().contains(&n) {
            return Err(BackendError::Unavailable(format!("queue {n} failed")));
        }
        if let Some(e) = self.late.lock().unwrap().take() {
            let mut events = self.events.lock().unwrap();
            events.push(e);
            events.sort_by_key(|e| e.at);
        }
        self.queued.lock().unwrap().extend(jobs);
        Ok(())
    }
    async fn delete_subscription(&self, _: &str) -> Result<bool, BackendError> {
        down("delete_subscription")
    }
    async fn keyring(&self, _: &Subscription) -> Result<Option<Keyring>, BackendError> {
        down("keyring")
    }
    async fn backlog(&self, _: &Subscription) -> Result<hookflow_core::limit::Backlog, BackendError> {
        down("backlog")
    }
    async fn put_keyring(&self, _: &Subscription, _: &Keyring) -> Result<(), BackendError> {
        down("put_keyring")
    }
    async fn publish(&self, _: Event) -> Result<Published, BackendError> {
        down("publish")
    }
    async fn events(&self, tenant: Option<&str>, since: i64, limit: usize) -> Result<Vec<Event>, BackendError> {
        Ok(self
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.at >= since && tenant.is_none_or(|t| t == e.tenant))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn logs(&self, _: LogFilter) -> Result<Vec<LogEntry>, BackendError> {
        down("logs")
    }
    async fn requests(&self, _: LogFilter) -> Result<Vec<LogEntry>, BackendError> {
        down("requests")
    }
    async fn run(&self, _: &str) -> Result<Option<(Value, Vec<LogEntry>)>, BackendError> {
        down("run")
    }
    async fn current_flow(&self, _: &str, _: &str) -> Result<Option<Arc<CompiledFlow>>, BackendError> {
        down("flows")
    }
    async fn start_run(&self, _: hookflow_core::inbound::Accepted) -> Result<bool, BackendError> {
        down("runs")
    }
    async fn dead(&self, _: Option<&str>, _: hookflow_admin::Page) -> Result<(Vec<DeadDelivery>, usize), BackendError> {
        down("dead")
    }
    async fn replay(&self, _: &str, _: Option<&str>) -> Result<bool, BackendError> {
        down("replay")
    }
}

/// A disabled subscription to `order.*` that missed `n` matching events
/// (one a millisecond from t=2000, with an unmatched one every tenth).
fn world(n: usize, tick: i64) -> (Arc<Memory>, String) {
    world_settling(n, tick, std::time::Duration::ZERO)
}

fn world_settling(n: usize, tick: i64, settle: std::time::Duration) -> (Arc<Memory>, String) {
    let new = NewSubscription {
        url: "https://example.com/hook".into(),
        event_types: vec!["order.*".into()],
        ..Default::default()
    };
    let (sub, _) = new.create(1_000).unwrap();
    let sub = sub.disabled_by_admin(1_500);
    let mut events = Vec::new();
    for i in 0..n + n / 9 {
        let kind = if i % 10 == 9 { "invoice.paid" } else { "order.placed" };
        events.push(Event {
            id: format!("evt_{i}"),
            tenant: sub.tenant.clone(),
            kind: kind.into(),
            at: 2_000 + i as i64,
            data: json!({"i": i}),
        });
    }
    let id = sub.id.clone();
    let memory = Memory {
        subs: Mutex::new(HashMap::from([(id.clone(), sub)])),
        events: Mutex::new(events),
        clock: AtomicI64::new(100_000),
        tick,
        settings: Settings { replay_settle: settle, ..Default::default() },
        ..Default::default()
    };
    (Arc::new(memory), id)
}

async fn enable(m: &Arc<Memory>, id: &str, replay: bool) -> (u16, Value) {
    enable_with(m, id, json!({ "replay": replay })).await
}

async fn enable_with(m: &Arc<Memory>, id: &str, body: Value) -> (u16, Value) {
    call(m, Request::post(format!("/v1/subscriptions/{id}/enable")), body).await
}

/// A JSON request through the router over `m`: its status and JSON answer.
async fn call(m: &Arc<Memory>, req: hookflow_admin::axum::http::request::Builder, body: Value) -> (u16, Value) {
    let app = router(Arc::new(Admin { backend: Handle(m.clone()), token: None }));
    let req = req.header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
    let res = app.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let body = to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// How many times each matching event was queued, by delivery (its
/// `webhook-id`; a replay's job has an id of its own).
fn queued(m: &Memory) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for job in m.queued.lock().unwrap().iter() {
        let delivery = job.payload.as_delivery().map_or_else(|| job.id.clone(), |d| d.delivery.id.clone());
        *seen.entry(delivery).or_insert(0) += 1;
    }
    seen
}

fn matching(m: &Memory) -> usize {
    m.events.lock().unwrap().iter().filter(|e| e.kind.starts_with("order.")).count()
}

/// Every matching event was queued at least once.
fn all_queued(m: &Memory) -> bool {
    let seen = queued(m);
    m.events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.kind.starts_with("order."))
        .all(|e| seen.keys().any(|id| id.ends_with(&format!("_{}", e.id))))
}

#[tokio::test]
async fn a_replay_whose_second_page_failed_to_queue_is_resumed_by_the_same_request() {
    let (m, id) = world(2_500, 1);
    m.fail_queue.lock().unwrap().push(2);
    let (status, out) = enable(&m, &id, true).await;
    assert_eq!(status, 503, "{out}");
    let sub = m.subs.lock().unwrap()[&id].clone();
    assert_eq!(sub.status.as_str(), "active", "the enable itself stands");
    let cursor = sub.replay.expect("the unfinished part is on the subscription");
    assert_eq!(queued(&m).len(), 900, "the first page: 1,000 events read, 900 of them matching");
    // Each a job of the replay's own (an ordered queue would drop one
    // named as the original within five minutes), the delivery unchanged.
    for job in m.queued.lock().unwrap().iter() {
        let delivery = &job.payload.as_delivery().unwrap().delivery.id;
        assert!(job.id.starts_with("d:replay:") && job.id.ends_with(delivery.as_str()), "{} for {delivery}", job.id);
    }
    assert_eq!(cursor.next, m.events.lock().unwrap()[999].at, "from the last event read");

    let (status, out) = enable(&m, &id, true).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["replay_pending"].as_bool(), Some(false), "{out}");
    assert_eq!(queued(&m).len(), matching(&m), "every missed event queued");
    assert!(all_queued(&m));
    // Each read starts at the last event of the one before (an event of the
    // same millisecond may follow it): only those are queued twice.
    assert!(queued(&m).values().all(|&n| n <= 2));
    assert!(
        queued(&m).values().filter(|&&n| n == 2).count() <= 2,
        "{:?}",
        queued(&m).values().filter(|&&n| n == 2).count()
    );
    assert!(m.subs.lock().unwrap()[&id].replay.is_none());
    // Done: a third request is a conflict again, as for any active one.
    assert_eq!(enable(&m, &id, true).await.0, 409);
}

#[tokio::test]
async fn a_recovery_sends_again_every_selected_event_since_the_time_chosen_active_or_disabled() {
    let (m, id) = world(30, 1);
    let since = m.events.lock().unwrap()[20].at;
    let after =
        |m: &Memory| m.events.lock().unwrap().iter().filter(|e| e.at >= since && e.kind.starts_with("order.")).count();
    // Refused: without replay, in the future.
    assert_eq!(enable_with(&m, &id, json!({"since": since})).await.1["error"]["field"], "since");
    let (status, out) = enable_with(&m, &id, json!({"replay": true, "since": 10_000_000})).await;
    assert_eq!((status, out["error"]["field"].as_str()), (422, Some("since")));
    // Disabled: enabled with the events since the time chosen — but never
    // later than what it missed since its disabling (1,500, before every
    // event): a recovery does not leave out an event it was never sent.
    let (status, out) = enable_with(&m, &id, json!({"replay": true, "since": since})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["missed_since"], 1_500);
    assert_eq!(queued(&m).len(), matching(&m), "every event it missed");
    assert_eq!(m.subs.lock().unwrap()[&id].status.as_str(), "active");
    m.queued.lock().unwrap().clear();
    // Active (its endpoint lost them): the events since the time chosen
    // again, same ids.
    let (status, out) = enable_with(&m, &id, json!({"replay": true, "since": since})).await;
    assert_eq!((status, out["replayed"].as_u64()), (200, Some(after(&m) as u64)), "{out}");
    assert_eq!(queued(&m).len(), after(&m), "only the events since the time chosen");
    let (status, _) = enable_with(&m, &id, json!({"replay": true, "since": since})).await;
    assert_eq!(status, 200);
    assert!(queued(&m).values().all(|&n| n == 2), "the same deliveries (ids) sent again");
    // A plain enable of an active subscription is still a conflict.
    assert_eq!(enable(&m, &id, true).await.0, 409);
}

#[tokio::test]
async fn a_page_queued_whose_progress_failed_to_save_is_sent_again_never_skipped() {
    let (m, id) = world(1_500, 1);
    // Save 1 enables, save 2 ends its window later (with no settling time
    // the enable is always seen after its window ended); save 3 would
    // record the first page as queued.
    m.fail_save.lock().unwrap().push(3);
    assert_eq!(enable(&m, &id, true).await.0, 503);
    assert_eq!(m.subs.lock().unwrap()[&id].replay.unwrap().next, 1_500, "the cursor did not move");
    let (status, out) = enable(&m, &id, true).await;
    assert_eq!((status, out["replay_pending"].as_bool()), (200, Some(false)), "{out}");
    assert!(all_queued(&m));
    assert_eq!(queued(&m).values().filter(|&&n| n == 2).count(), 900, "the first page twice, same ids");
}

#[tokio::test]
async fn a_replay_longer_than_its_time_budget_answers_pending_and_goes_on() {
    // Each clock reading moves 4 s: the budget (10 s) ends after a page.
    let (m, id) = world(3_000, 4_000);
    let mut rounds = 0;
    loop {
        let (status, out) = enable(&m, &id, true).await;
        assert_eq!(status, 200, "{out}");
        rounds += 1;
        assert!(out["replayed"].as_u64().unwrap() <= 1_000, "{out}");
        if !out["replay_pending"].as_bool().unwrap() {
            break;
        }
        assert!(out["subscription"]["replay"]["next"].is_i64(), "{out}");
        assert!(rounds < 10);
    }
    assert!(rounds >= 3, "{rounds}");
    assert!(all_queued(&m));
}

#[tokio::test]
async fn disabled_again_mid_replay_the_next_enable_starts_where_the_replay_stopped() {
    let (m, id) = world(2_500, 1);
    m.fail_queue.lock().unwrap().push(2);
    assert_eq!(enable(&m, &id, true).await.0, 503);
    let stopped = m.subs.lock().unwrap()[&id].replay.unwrap().next;
    // A delivery's 410 disables it again before anyone resumes.
    {
        let mut subs = m.subs.lock().unwrap();
        let s = subs[&id].disabled_by_admin(m.clock.load(Ordering::SeqCst));
        subs.insert(id.clone(), s);
    }
    let (status, out) = enable(&m, &id, true).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["missed_since"].as_i64(), Some(stopped), "{out}");
    assert!(all_queued(&m));
}

#[tokio::test(start_paused = true)]
async fn an_event_whose_publish_was_in_flight_at_the_enable_is_replayed_by_the_last_pass() {
    // Its publish read the subscription as disabled (no fan-out) and its
    // write lands after the replay's first read, with a time before the
    // cursor: the last pass, after the settling time, reads it.
    let (m, id) = world_settling(20, 1, std::time::Duration::from_secs(2));
    let now = m.clock.load(Ordering::SeqCst);
    let late = Event {
        id: "evt_late".into(),
        tenant: "default".into(),
        kind: "order.placed".into(),
        at: now - 500,
        data: json!({}),
    };
    *m.late.lock().unwrap() = Some(late);
    let (status, out) = enable(&m, &id, true).await;
    assert_eq!((status, out["replay_pending"].as_bool()), (200, Some(false)), "{out}");
    assert!(queued(&m).keys().any(|k| k.ends_with("_evt_late")), "{:?}", queued(&m));
    assert!(all_queued(&m));
}

#[tokio::test(start_paused = true)]
async fn an_enable_whose_write_outlasts_the_settling_time_replays_what_was_published_meanwhile() {
    // The enable's write takes 5 s to be seen (the settling time is 2 s);
    // an event published 3 s in read the subscription as disabled in both
    // of its reads, before the write was visible: the window, which would
    // have ended 2 s after the enable began, ends 2 s after it was seen.
    let (m, id) = world_settling(20, 1, std::time::Duration::from_secs(2));
    let now = m.clock.load(Ordering::SeqCst);
    m.slow_save.store(5_000, Ordering::SeqCst);
    m.events.lock().unwrap().push(Event {
        id: "evt_meanwhile".into(),
        tenant: "default".into(),
        kind: "order.placed".into(),
        at: now + 3_000,
        data: json!({}),
    });
    let (status, out) = enable(&m, &id, true).await;
    assert_eq!((status, out["replay_pending"].as_bool()), (200, Some(false)), "{out}");
    assert!(queued(&m).keys().any(|k| k.ends_with("_evt_meanwhile")), "{:?}", queued(&m));
    assert!(all_queued(&m));
}

#[tokio::test]
async fn an_enable_without_replay_counts_and_sends_nothing() {
    let (m, id) = world(50, 1);
    let (status, out) = enable(&m, &id, false).await;
    assert_eq!((status, out["missed"].as_u64(), out["replayed"].as_u64()), (200, Some(50), Some(0)), "{out}");
    assert!(queued(&m).is_empty());
    assert_eq!(enable(&m, &id, true).await.0, 409, "nothing left to resume");
}

async fn patch(m: &Arc<Memory>, id: &str, body: Value) -> (u16, Value) {
    call(m, Request::patch(format!("/v1/subscriptions/{id}")), body).await
}

#[tokio::test]
async fn a_change_raced_by_the_endpoint_s_health_is_applied_over_it_and_loses_nothing() {
    let (m, id) = world(0, 1);
    // Two writes of the record's health land first: the change is read
    // again and applied over them, the health kept.
    m.beaten.store(2, Ordering::SeqCst);
    let (status, out) = patch(&m, &id, json!({"filter": {"data": {"n": {"$gt": 1}}}})).await;
    assert_eq!(status, 200, "{out}");
    let stored = m.subs.lock().unwrap()[&id].clone();
    assert!(stored.filter.is_some() && stored.failing_since.is_some(), "{stored:?}");
    // A record that keeps changing: the caller is told, to try again.
    m.beaten.store(100, Ordering::SeqCst);
    let (status, out) = patch(&m, &id, json!({"description": "x"})).await;
    assert_eq!((status, out["error"]["code"].as_str()), (409, Some("conflict")), "{out}");
}

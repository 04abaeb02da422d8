//! The delivery pipeline: one attempt of one delivery, from the gate to
//! the commit. Both drivers run every delivery through it — `hookflow
//! dev`'s workers and the dispatcher Lambda (standard and FIFO queues) —
//! so a flow step, a subscription's event and a verification request
//! behave the same everywhere:
//!
//! 1. **gate**: a subscription's delivery reads its subscription; one
//!    disabled goes dead (replayable), one deleted or a verification
//!    round that is over is dropped — [`subscription::gate`];
//! 2. **limits**: an event for a subscription with a `rate_limit` (or a
//!    flow step to a host its flow limits) takes a slot under its pace, one
//!    with `max_in_flight` a place in flight; one that must wait goes back
//!    to the queue until then, its attempt unspent ([`crate::limits`]);
//! 3. **secrets**: the values its placeholders and signature name —
//!    [`crate::secrets::resolve`];
//! 4. **send**: one attempt through the [`Sender`] port (SSRF guard,
//!    signing, timeout);
//! 5. **classify**: delivered, retry after a delay, or dead —
//!    [`engine::after_attempt`];
//! 6. **health**: what the attempt says about a subscription's endpoint,
//!    applied to its record ([`subscription::health_change`]), with
//!    `subscription.disabled` fanned out in the same commit when it
//!    disables it;
//! 7. **commit**: by the driver's `apply` (a transaction; on AWS the
//!    table's write and the queue's send, or an ordered message's held
//!    state). A subscription write that lost to another worker is made
//!    again over the record as it is now (up to three times), never the
//!    attempt.
//!
//! [`attempt`] does 1–5, [`commit`] 6–7.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use hookflow_core::commit::{Commit, DeliveryJob};
use hookflow_core::engine::{self, AttemptSummary, Level, LogLine};
use hookflow_core::ports::{Classify, ErrorKind, SecretStore, Sender};
use hookflow_core::subscription::{self, Gate, Health, Subscription};

use crate::limits::{Admission, Limiter};
use crate::publish::{Audience, settle};

/// What the delivery pipeline needs from a driver (its [`Audience`]
/// hears of `subscription.disabled`; its [`Limiter`] keeps destinations'
/// limits).
pub trait DeliveryPorts: Audience + Limiter {
    /// The secrets of one delivery (a subscription's keyring as its record
    /// names it, the rest by name).
    type Secrets<'a>: SecretStore
    where
        Self: 'a;
    type Sender: Sender;
    /// Held while a subscription's health change is computed and written,
    /// where the driver serialises them.
    type Guard: Send;

    /// A subscription by id.
    fn subscription(&self, id: &str) -> impl Future<Output = Result<Option<Arc<Subscription>>, Self::Error>> + Send;

    /// The secret store for a delivery of `sub` (or of a flow step).
    fn secrets<'a>(&'a self, sub: Option<&'a Subscription>) -> Self::Secrets<'a>;

    fn sender(&self) -> &Self::Sender;

    /// Serialises health changes: `Some` holds them one at a time (the
    /// pipeline then reads the subscription again under it, so it computes
    /// over the latest record); `None` leaves it to the store's conditional
    /// write (a change computed over an older record loses, and is
    /// recomputed).
    fn serialize(&self) -> impl Future<Output = Option<Self::Guard>> + Send;

    /// A delivery found `sub` disabled: the driver sends again what the
    /// commit that disabled it published, if that send did not finish (on
    /// AWS the publish's outbox; a driver whose commit and queue are one
    /// transaction has nothing to do).
    fn found_disabled(&self, _sub: &Subscription) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Writes operational log lines.
    fn lines(&self, lines: Vec<LogLine>);

    /// Counts an attempt (metrics), if the driver has any.
    fn attempted(&self, _attempt: &Counted<'_>) {}
}

/// One attempt as a driver's metrics count it.
#[derive(Debug, Clone, Copy)]
pub struct Counted<'a> {
    pub tenant: &'a str,
    pub flow_id: &'a str,
    /// The subscription, for an event's or a verification's delivery.
    pub subscription: Option<&'a str>,
    /// Delivered, retried or dead (`None`: not classified).
    pub summary: Option<AttemptSummary>,
    /// The response's status, if one came.
    pub status: Option<u16>,
    pub duration_ms: u64,
    /// When its first attempt was due (ms): its acceptance.
    pub first_at: i64,
    /// When this attempt started (ms).
    pub at: i64,
}

/// An attempt made (or refused by the gate): its commit, and the
/// subscription as read with what the attempt says about its endpoint.
#[derive(Debug)]
pub struct Attempted {
    pub commit: Commit,
    health: Option<(Arc<Subscription>, Health)>,
}

/// One attempt of delivery `job` (job `job_id`): gate, secrets, send,
/// classify. Nothing is sent to a subscription the gate stops. An error
/// (a store or secret store that did not answer) sent nothing: the job is
/// tried again. An event delivery whose keyring cannot be read as it is
/// ([`PortError::unreadable`]) is dead, sending nothing.
pub async fn attempt<P: DeliveryPorts>(p: &P, job_id: &str, mut job: DeliveryJob) -> Result<Attempted, P::Error> {
    let now = p.now_ms();
    let sub = match job.delivery.purpose.subscription() {
        Some(id) => p.subscription(id).await?,
        None => None,
    };
    let unsent = match subscription::gate(&job.delivery.purpose, sub.as_deref()) {
        Gate::Send => None,
        Gate::Dead(why) => Some((why, true)),
        Gate::Drop(why) => Some((why, false)),
    };
    if let Some((why, dead)) = unsent {
        if let Some(s) = sub.as_deref().filter(|s| s.status == subscription::Status::Disabled) {
            p.found_disabled(s).await?;
        }
        let out = engine::unsent(job_id.to_string(), &job, &why, dead, now);
        p.lines(out.lines);
        return Ok(Attempted { commit: out.commit, health: None });
    }
    // An event's first attempt: the subscription's transform reshapes it
    // (or drops it) once; what it makes is kept with the job, so its
    // retries and replays send the same request. A transform that fails
    // makes this delivery dead, naming why; no retry would fix it.
    if let Some(t) = sub.as_deref().and_then(|s| s.transform.as_ref())
        && matches!(job.delivery.purpose, hookflow_core::run::Purpose::Event { .. })
        && !job.delivery.shaped
    {
        let unsent = match t.shape(&job.delivery) {
            Ok(subscription::Shaped::Send(request)) => {
                job.delivery.request = request;
                job.delivery.shaped = true;
                None
            }
            Ok(subscription::Shaped::Drop) => Some(("dropped by the subscription's transform".to_string(), false)),
            Err(why) => Some((format!("its transform failed: {why}"), true)),
        };
        if let Some((why, dead)) = unsent {
            let mut out = engine::unsent(job_id.to_string(), &job, &why, dead, now);
            // Not for this endpoint: a decision like a filter's, no failure.
            if !dead {
                out.commit.log.iter_mut().for_each(|e| e.outcome = Some("skipped".into()));
            }
            p.lines(out.lines);
            return Ok(Attempted { commit: out.commit, health: None });
        }
    }
    // Its destination's limits: a delivery over them waits in the queue,
    // its attempt unspent, and comes back holding its slot.
    let limited = crate::limits::of(&job, sub.as_deref());
    let admitted = match crate::limits::admit(p, limited, &mut job, p.now_ms()).await {
        Ok(admitted) => admitted,
        // A limiter that did not answer: the delivery waits a moment in
        // the queue rather than fail its message (whose receives are
        // counted), its attempt unspent.
        Err(e) => {
            p.lines(vec![LogLine {
                level: Level::Warn,
                message: "a destination's limits could not be read; the delivery waits and tries again".into(),
                fields: serde_json::json!({"delivery_id": job.delivery.id, "error": e.message}),
            }]);
            Admission::Wait(LIMITER_DOWN_WAIT)
        }
    };
    let permit = match admitted {
        Admission::Go(permit) => permit,
        Admission::Wait(wait) => {
            let until = p.now_ms() + wait.as_millis() as i64;
            let commit = Commit { reschedule: Some((job_id.to_string(), job, until)), ..Default::default() };
            return Ok(Attempted { commit, health: None });
        }
    };
    let attempted = sent(p, job_id, job, sub, now).await;
    if let Some(permit) = permit {
        let took = attempted.as_ref().map_or(0, |(_, took)| *took);
        p.leave(permit, took).await;
    }
    attempted.map(|(a, _)| a)
}

/// How long a delivery waits when its limiter did not answer.
const LIMITER_DOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Secrets, send, classify: the attempt made, and how long it took.
async fn sent<P: DeliveryPorts>(
    p: &P,
    job_id: &str,
    job: DeliveryJob,
    sub: Option<Arc<Subscription>>,
    now: i64,
) -> Result<(Attempted, u64), P::Error> {
    let values: HashMap<String, String> = match crate::secrets::resolve(&p.secrets(sub.as_deref()), &job.delivery).await
    {
        Ok(values) => values,
        // An event's keyring no retry will read (sealed under another
        // key): dead now, replayable once a new secret is made, instead of
        // retried through the whole schedule. (Any other secret failure is
        // retried: a flow step's run waits on its outcome, a verification
        // ends in the subscription's health.)
        Err(e) if e.unreadable && matches!(job.delivery.purpose, hookflow_core::run::Purpose::Event { .. }) => {
            let why = format!("its secrets cannot be read: {}", e.message);
            let out = engine::unsent(job_id.to_string(), &job, &why, true, now);
            p.lines(out.lines);
            return Ok((Attempted { commit: out.commit, health: None }, 0));
        }
        Err(e) => return Err(e.into()),
    };
    let attempt = p.sender().send(&job.delivery, &values).await;
    // What the metrics label it by (the job goes to the decision).
    let d = &job.delivery;
    let labels = (d.tenant.clone(), d.flow_id.clone(), d.purpose.subscription().map(str::to_string), job.first_at);
    let step = engine::after_attempt(job_id.to_string(), job, &attempt, p.now_ms(), &mut rand::rng());
    p.lines(step.lines);
    p.attempted(&Counted {
        tenant: &labels.0,
        flow_id: &labels.1,
        subscription: labels.2.as_deref(),
        summary: step.decision,
        status: attempt.result.response.as_ref().map(|r| r.status),
        duration_ms: attempt.duration_ms,
        first_at: labels.3,
        at: now,
    });
    let health = sub.zip(step.health.map(|(_, h)| h));
    Ok((Attempted { commit: step.commit, health }, attempt.duration_ms))
}

/// Delivery `job` given up unsent, for `why` (see
/// [`engine::given_up`]): its commit, to apply with [`commit`] like an
/// attempt's.
pub fn given_up<P: DeliveryPorts>(p: &P, job_id: &str, job: &DeliveryJob, why: &str) -> Attempted {
    let out = engine::given_up(job_id.to_string(), job, why, p.now_ms());
    p.lines(out.lines);
    Attempted { commit: out.commit, health: None }
}

/// Applies an attempt's commit with `apply` (given the commit, the time,
/// and the subscription as the commit changes it), together with what the
/// attempt changes about its subscription and `subscription.disabled` when
/// it disables it. A change that loses to another worker's
/// ([`ErrorKind::Conflict`]) is computed again over the record as it is
/// now, up to three times, rather than the attempt redone.
pub async fn commit<P, T, F, Fut>(p: &P, attempted: Attempted, apply: F) -> Result<T, P::Error>
where
    P: DeliveryPorts,
    F: Fn(Commit, i64, Option<Subscription>) -> Fut,
    Fut: Future<Output = Result<T, P::Error>>,
{
    let Attempted { commit, health } = attempted;
    let Some((mut sub, health)) = health else {
        return apply(commit, p.now_ms(), None).await;
    };
    // Most outcomes change nothing: a cheap check before serialising.
    if sub.apply(&health, p.settings(), p.now_ms()).is_none() {
        return apply(commit, p.now_ms(), None).await;
    }
    let guard = p.serialize().await;
    if guard.is_some() {
        // Under the lock the latest record is the one to change.
        match p.subscription(&sub.id).await? {
            Some(latest) => sub = latest,
            None => return apply(commit, p.now_ms(), None).await,
        }
    }
    let mut tries = 0;
    loop {
        tries += 1;
        let now = p.now_ms();
        let mut all = commit.clone();
        let mut lines = Vec::new();
        let mut changed = None;
        let mut published = None;
        if let Some(h) = subscription::health_change(&sub, health, p.settings(), now) {
            lines.push(h.line);
            all.merge(h.commit);
            if let Some(event) = h.disabled {
                // Published in the same commit; two workers disabling the
                // same version build the same event id, and the store takes
                // it once.
                let (others, flows) = p.audience(&event.tenant).await?;
                let publication = subscription::publish(
                    &event,
                    others.iter().filter(|s| s.id != h.sub.id).map(|s| s.as_ref()),
                    flows.iter().map(|f| f.as_ref()),
                    p.settings(),
                    now,
                );
                lines.extend(publication.outcome.lines);
                all.merge(publication.outcome.commit);
                let mut reached = publication.reached;
                reached.insert(h.sub.id.clone());
                published = Some((event, reached));
            }
            changed = Some(h.sub);
        }
        match apply(all, now, changed).await {
            Err(e) if e.kind() == ErrorKind::Conflict && tries < 3 => match p.subscription(&sub.id).await? {
                Some(stored) => sub = stored,
                None => return apply(commit, p.now_ms(), None).await,
            },
            done => {
                drop(guard);
                let value = done?;
                p.lines(lines);
                // A subscription enabled since `audience` was read. The
                // commit is durable: a failure here is logged, not the
                // attempt's (its message redone would find its subscription
                // disabled, or enabled again, and go dead or be sent again).
                if let Some((event, reached)) = published
                    && let Err(e) = settle(p, &event, Some(&reached)).await
                {
                    p.lines(vec![LogLine {
                        level: Level::Error,
                        message: "subscription.disabled not sent to subscriptions enabled during its publish".into(),
                        fields: serde_json::json!({"event_id": event.id, "error": e.to_string()}),
                    }]);
                }
                return Ok(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The delivery pipeline on ports held in memory: what is sent, what
    //! is committed, and what happens when a write loses.

    use std::collections::{HashMap, VecDeque};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hookflow_core::CompiledFlow;
    use hookflow_core::attempt::{Attempt, AttemptResult};
    use hookflow_core::commit::{JobKind, NewJob};
    use hookflow_core::limit::{RateLimit, Slot};
    use hookflow_core::ports::PortError;
    use hookflow_core::run::{CapturedResponse, Delivery};
    use hookflow_core::subscription::Settings;
    use hookflow_core::subscription::{Event, NewSubscription, Status};
    use serde_json::json;
    use std::time::Duration;

    use super::*;
    use crate::testing::Fault;

    const NOW: i64 = 1_800_000_000_000;

    /// Answers each send with the next status.
    #[derive(Default)]
    struct Receiver {
        answers: Mutex<VecDeque<u16>>,
        sent: AtomicUsize,
    }

    impl Sender for Receiver {
        async fn send(&self, _d: &Delivery, _secrets: &HashMap<String, String>) -> Attempt {
            self.sent.fetch_add(1, Ordering::SeqCst);
            let status = self.answers.lock().unwrap().pop_front().unwrap_or(200);
            let response = CapturedResponse { status, headers: Default::default(), body: json!(null) };
            Attempt {
                result: AttemptResult { response: Some(response), retry_after: None, error: None },
                duration_ms: 3,
            }
        }
    }

    struct Vault {
        down: bool,
        unreadable: bool,
    }

    impl SecretStore for Vault {
        async fn secret(&self, _name: &str) -> Result<Option<String>, PortError> {
            if self.down {
                Err(PortError::transient("secrets down"))
            } else if self.unreadable {
                Err(PortError::unreadable("keyring subscriptions/x: cannot be opened"))
            } else {
                Ok(Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()))
            }
        }
    }

    /// The health lock of a serialising driver: says when it is let go.
    struct Held(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for Held {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[derive(Default)]
    struct Fake {
        subs: Mutex<HashMap<String, Arc<Subscription>>>,
        receiver: Receiver,
        secrets_down: bool,
        secrets_unreadable: bool,
        serialises: bool,
        released: Arc<std::sync::atomic::AtomicBool>,
        reads: AtomicUsize,
        settings: Settings,
        /// Subscriptions a delivery found disabled ([`DeliveryPorts::found_disabled`]).
        found_disabled: Mutex<Vec<String>>,
        /// Jobs queued after a commit ([`Audience::queue`]).
        queued: Mutex<Vec<NewJob>>,
        /// Pacing state by key (µs), reservations made, places in flight.
        tats: Mutex<HashMap<String, i64>>,
        reserved: AtomicUsize,
        in_flight: AtomicUsize,
        left: Mutex<Vec<u64>>,
        epoch: i64,
        limiter_down: bool,
    }

    impl Audience for Fake {
        type Error = Fault;

        fn now_ms(&self) -> i64 {
            NOW
        }

        fn settings(&self) -> &Settings {
            &self.settings
        }

        async fn audience(&self, tenant: &str) -> Result<(Vec<Arc<Subscription>>, Vec<Arc<CompiledFlow>>), Fault> {
            Ok((self.subscribers(tenant).await?, Vec::new()))
        }

        async fn subscribers(&self, tenant: &str) -> Result<Vec<Arc<Subscription>>, Fault> {
            let subs = self.subs.lock().unwrap();
            let mut active: Vec<_> =
                subs.values().filter(|s| s.tenant == tenant && s.status == Status::Active).cloned().collect();
            active.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(active)
        }

        async fn queue(&self, jobs: Vec<NewJob>) -> Result<(), Fault> {
            self.queued.lock().unwrap().extend(jobs);
            Ok(())
        }
    }

    impl DeliveryPorts for Fake {
        type Secrets<'a> = Vault;
        type Sender = Receiver;
        type Guard = Held;

        async fn subscription(&self, id: &str) -> Result<Option<Arc<Subscription>>, Fault> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.subs.lock().unwrap().get(id).cloned())
        }

        fn secrets<'a>(&'a self, _sub: Option<&'a Subscription>) -> Vault {
            Vault { down: self.secrets_down, unreadable: self.secrets_unreadable }
        }

        fn sender(&self) -> &Receiver {
            &self.receiver
        }

        async fn serialize(&self) -> Option<Held> {
            self.serialises.then(|| Held(self.released.clone()))
        }

        async fn found_disabled(&self, sub: &Subscription) -> Result<(), Fault> {
            self.found_disabled.lock().unwrap().push(sub.id.clone());
            Ok(())
        }

        fn lines(&self, _lines: Vec<LogLine>) {}
    }

    impl Limiter for Fake {
        type Permit = ();

        fn epoch(&self) -> i64 {
            self.epoch
        }

        async fn reserve(&self, key: &str, rate: &RateLimit) -> Result<Duration, PortError> {
            if self.limiter_down {
                return Err(PortError::transient("throttled"));
            }
            self.reserved.fetch_add(1, Ordering::SeqCst);
            let mut tats = self.tats.lock().unwrap();
            let (slot, tat) = hookflow_core::limit::reserve(tats.get(key).copied(), NOW * 1000, rate);
            tats.insert(key.to_string(), tat);
            Ok(Duration::from_micros((slot - NOW * 1000) as u64))
        }

        async fn enter(&self, _key: &str, max: u32, _hold: Duration) -> Result<Result<(), Duration>, PortError> {
            if self.in_flight.load(Ordering::SeqCst) >= max as usize {
                return Ok(Err(Duration::from_millis(250)));
            }
            self.in_flight.fetch_add(1, Ordering::SeqCst);
            Ok(Ok(()))
        }

        async fn leave(&self, _permit: (), took_ms: u64) {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.left.lock().unwrap().push(took_ms);
        }
    }

    fn active(fake: &Fake) -> Arc<Subscription> {
        active_for(fake, "order.*")
    }

    fn active_for(fake: &Fake, types: &str) -> Arc<Subscription> {
        let new = NewSubscription {
            url: "https://receiver.example/hook".into(),
            event_types: vec![types.into()],
            ..Default::default()
        };
        let (mut sub, _) = new.create(NOW - 60_000).unwrap();
        sub.status = Status::Active;
        let sub = Arc::new(sub);
        fake.subs.lock().unwrap().insert(sub.id.clone(), sub.clone());
        sub
    }

    /// The delivery job of an `order.paid` event for `sub`.
    fn job_for(sub: &Subscription) -> (String, DeliveryJob) {
        let event = Event {
            id: "evt_1".into(),
            tenant: sub.tenant.clone(),
            kind: "order.paid".into(),
            at: NOW,
            data: json!({}),
        };
        let p = subscription::publish(&event, [sub], [], &Settings::default(), NOW);
        let job = p.outcome.commit.jobs.into_iter().find(|j| j.kind() == JobKind::Delivery).unwrap();
        (job.id, job.payload.as_delivery().unwrap().clone())
    }

    /// Commits with `apply` and returns what it was handed, failing the
    /// first `lose` calls with a conflict.
    async fn commit_all(fake: &Fake, attempted: Attempted, lose: usize) -> (Result<(), Fault>, Vec<Commit>) {
        let seen = Mutex::new(Vec::new());
        let result = commit(fake, attempted, |c, _now, _changed| {
            let mut seen = seen.lock().unwrap();
            seen.push(c);
            let fail = seen.len() <= lose;
            async move { if fail { Err(Fault(ErrorKind::Conflict)) } else { Ok(()) } }
        })
        .await;
        (result, seen.into_inner().unwrap())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_delivery_to_a_disabled_subscription_goes_dead_unsent_and_one_to_a_deleted_one_is_dropped() {
        let fake = Fake::default();
        let sub = active(&fake);
        let (id, job) = job_for(&sub);
        let mut disabled = (*sub).clone();
        disabled.status = Status::Disabled;
        fake.subs.lock().unwrap().insert(sub.id.clone(), Arc::new(disabled));
        let attempted = attempt(&fake, &id, job.clone()).await.unwrap();
        assert!(attempted.commit.dead.is_some(), "dead, so an enable can replay it");
        assert_eq!(attempted.commit.done.as_deref(), Some(id.as_str()));
        // The driver hears of it (on AWS: to send again the fan-out of the
        // commit that disabled it, if that send did not finish).
        assert_eq!(*fake.found_disabled.lock().unwrap(), vec![sub.id.to_string()]);

        fake.subs.lock().unwrap().clear();
        let attempted = attempt(&fake, &id, job).await.unwrap();
        assert!(attempted.commit.dead.is_none());
        assert_eq!(attempted.commit.done.as_deref(), Some(id.as_str()));
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 0, "nothing is sent past the gate");
        assert_eq!(fake.found_disabled.lock().unwrap().len(), 1, "a deleted one is not disabled");
    }

    /// `sub` with a pace of `per_second` (and `max_in_flight`).
    fn limited(fake: &Fake, sub: &Subscription, per_second: f64, max_in_flight: Option<u32>) -> Arc<Subscription> {
        let mut s = sub.clone();
        s.rate_limit = Some(RateLimit { per_second, burst: 1 });
        s.max_in_flight = max_in_flight;
        let s = Arc::new(s);
        fake.subs.lock().unwrap().insert(s.id.clone(), s.clone());
        s
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_delivery_over_its_pace_waits_in_the_queue_unspent_and_comes_back_holding_its_slot() {
        let fake = Fake::default();
        let sub = active(&fake);
        limited(&fake, &sub, 2.0, None);
        let (id, job) = job_for(&sub);
        // The first goes at once; the second's slot is half a second on.
        attempt(&fake, &id, job.clone()).await.unwrap();
        let waited = attempt(&fake, &id, job.clone()).await.unwrap();
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 1, "the one over the pace is not sent");
        let (again, next, due) = waited.commit.reschedule.clone().expect("back in the queue");
        assert_eq!((again.as_str(), due), (id.as_str(), NOW + 500));
        assert_eq!(next.attempts, 0, "no attempt spent");
        assert!(waited.commit.log.is_empty() && waited.commit.done.is_none() && waited.commit.dead.is_none());
        assert_eq!(next.slot.map(|s| s.at), Some(NOW + 500));
        // Back at its slot: sent without reserving again.
        let reserved = fake.reserved.load(Ordering::SeqCst);
        let sent = attempt(&fake, &id, next.clone()).await.unwrap();
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 2);
        assert_eq!(fake.reserved.load(Ordering::SeqCst), reserved, "its slot held");
        assert_eq!(sent.commit.done.as_deref(), Some(id.as_str()));
        // The limit changed while it waited: the slot is reserved again,
        // in the new pace's own state (idle: it goes), not behind the old
        // pace's backlog (and so after a restart: another epoch).
        limited(&fake, &sub, 1.0, None);
        attempt(&fake, &id, next.clone()).await.unwrap();
        assert_eq!(fake.reserved.load(Ordering::SeqCst), reserved + 1);
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 3, "the new pace is idle");
        // A slot taken up long after its time is stale: reserved again.
        let mut stale = next.clone();
        stale.slot = Some(Slot { at: NOW - 60_000, ..next.slot.unwrap() });
        limited(&fake, &sub, 2.0, None);
        let again = attempt(&fake, &id, stale).await.unwrap();
        assert_eq!(fake.reserved.load(Ordering::SeqCst), reserved + 2);
        assert!(again.commit.reschedule.is_some(), "behind the slots made since");
        assert!(again.commit.reschedule.unwrap().1.waited_ms >= 500, "its wait counted, not its age");
        // The limit removed: it goes.
        let mut plain = (*sub).clone();
        plain.rate_limit = None;
        fake.subs.lock().unwrap().insert(sub.id.clone(), Arc::new(plain));
        attempt(&fake, &id, next).await.unwrap();
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_limiter_that_does_not_answer_makes_the_delivery_wait_not_fail_and_nothing_is_sent() {
        let fake = Fake { limiter_down: true, ..Default::default() };
        let sub = active(&fake);
        limited(&fake, &sub, 2.0, None);
        let (id, job) = job_for(&sub);
        let waited = attempt(&fake, &id, job).await.expect("not a failed message (whose receives are counted)");
        let (_, next, due) = waited.commit.reschedule.expect("back in the queue");
        assert_eq!((due, next.attempts), (NOW + 1_000, 0));
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_delivery_finding_every_place_in_flight_taken_waits_and_a_sent_one_gives_its_place_back() {
        let fake = Fake::default();
        let sub = active(&fake);
        limited(&fake, &sub, 1000.0, Some(1));
        let (id, job) = job_for(&sub);
        fake.in_flight.store(1, Ordering::SeqCst);
        let waited = attempt(&fake, &id, job.clone()).await.unwrap();
        let (_, next, due) = waited.commit.reschedule.expect("back in the queue");
        assert_eq!((due, next.attempts), (NOW + 250, 0));
        assert!(next.slot.is_some(), "the slot it reserved is kept: it does not reserve twice");
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 0);
        fake.in_flight.store(0, Ordering::SeqCst);
        let sent = attempt(&fake, &id, next).await.unwrap();
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 1);
        assert_eq!(fake.in_flight.load(Ordering::SeqCst), 0, "its place given back");
        assert_eq!(*fake.left.lock().unwrap(), [3], "with the attempt's time");
        assert_eq!(sent.commit.done.as_deref(), Some(id.as_str()));
        // A flow's step is not held back by a subscription's limits.
        fake.in_flight.store(1, Ordering::SeqCst);
        let mut step = job;
        step.delivery.purpose = hookflow_core::run::Purpose::Step;
        let _ = attempt(&fake, &id, step).await.unwrap();
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_flow_step_never_gets_a_subscriptions_keyring() {
        let fake = Fake::default();
        let sub = active(&fake);
        let (_, job) = job_for(&sub);
        let vault = Vault { down: false, unreadable: false };
        let mut d = job.delivery;
        let keyring = sub.keyring_name();
        assert!(crate::secrets::resolve(&vault, &d).await.unwrap().contains_key(&keyring), "the event's own");
        // The same name on a flow's step (a flow stored before validation
        // refused it): left out, as if missing.
        d.purpose = hookflow_core::run::Purpose::Step;
        assert!(!crate::secrets::resolve(&vault, &d).await.unwrap().contains_key(&keyring));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_secret_store_that_does_not_answer_fails_the_job_before_anything_is_sent() {
        let fake = Fake { secrets_down: true, ..Default::default() };
        let sub = active(&fake);
        let (id, job) = job_for(&sub);
        let err = attempt(&fake, &id, job).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_secret_no_retry_can_read_makes_the_delivery_dead_at_once_and_sends_nothing() {
        let fake = Fake { secrets_unreadable: true, ..Default::default() };
        let sub = active(&fake);
        let (id, job) = job_for(&sub);
        let delivery_id = job.delivery.id.clone();
        let attempted = attempt(&fake, &id, job).await.unwrap();
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 0);
        let dead = attempted.commit.dead.as_ref().expect("dead, replayable");
        assert_eq!(dead.delivery_id, delivery_id);
        assert!(dead.reason.contains("cannot be opened"), "{}", dead.reason);
        assert_eq!(attempted.commit.done.as_deref(), Some(id.as_str()), "the job is finished, not retried");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_410_disables_the_subscription_and_tells_the_others_in_the_same_commit() {
        let fake = Fake::default();
        let gone = active(&fake);
        let other = active_for(&fake, "subscription.*");
        active_for(&fake, "invoice.*");
        fake.receiver.answers.lock().unwrap().push_back(410);
        let (id, job) = job_for(&gone);
        let attempted = attempt(&fake, &id, job).await.unwrap();
        let (result, commits) = commit_all(&fake, attempted, 0).await;
        result.unwrap();
        let c = &commits[0];
        let row = c.subscriptions.iter().find(|r| r.id == gone.id).expect("the subscription's new row");
        assert_eq!(row.status, "disabled");
        assert_eq!(row.prev, Some(gone.updated_at), "written only over the record it was computed from");
        let told: Vec<DeliveryJob> = c.jobs.iter().filter_map(|j| j.payload.as_delivery().cloned()).collect();
        assert_eq!(told.len(), 1);
        assert_eq!(told[0].delivery.purpose.subscription(), Some(other.id.as_str()));
        assert!(c.event.is_some(), "the subscription.disabled event row is in the same commit");
        assert_eq!(c.done.as_deref(), Some(id.as_str()));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_subscription_enabled_while_the_disabling_commit_is_written_is_told_after_it() {
        let fake = Fake::default();
        let gone = active(&fake);
        let told = active_for(&fake, "subscription.*");
        let mut late = (*active_for(&fake, "subscription.*")).clone();
        late.status = Status::Disabled;
        fake.subs.lock().unwrap().insert(late.id.clone(), Arc::new(late.clone()));
        fake.receiver.answers.lock().unwrap().push_back(410);
        let (id, job) = job_for(&gone);
        let attempted = attempt(&fake, &id, job).await.unwrap();
        let seen = Mutex::new(Vec::new());
        commit(&fake, attempted, |c, _now, _changed| {
            // An admin enables `late` after the audience was read, before
            // this commit is written.
            let enabled = late.enabled(NOW + 1, None);
            fake.subs.lock().unwrap().insert(late.id.clone(), Arc::new(enabled));
            seen.lock().unwrap().push(c);
            async { Ok::<_, Fault>(()) }
        })
        .await
        .unwrap();
        let to = |jobs: &[NewJob]| -> Vec<String> {
            jobs.iter()
                .filter_map(|j| j.payload.as_delivery())
                .filter_map(|d| d.delivery.purpose.subscription().map(String::from))
                .collect()
        };
        assert_eq!(to(&seen.lock().unwrap()[0].jobs), vec![told.id.clone()], "the commit tells the one it read");
        assert_eq!(
            to(&fake.queued.lock().unwrap()),
            vec![late.id.clone()],
            "settling tells the one enabled meanwhile, once"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_health_change_that_loses_is_made_again_over_the_stored_record_and_the_attempt_is_not_resent() {
        let fake = Fake::default();
        let sub = active(&fake);
        fake.receiver.answers.lock().unwrap().push_back(500);
        let (id, job) = job_for(&sub);
        let attempted = attempt(&fake, &id, job).await.unwrap();
        // Meanwhile another worker's change landed.
        let mut newer = (*sub).clone();
        newer.updated_at += 5;
        fake.subs.lock().unwrap().insert(sub.id.clone(), Arc::new(newer.clone()));
        let (result, commits) = commit_all(&fake, attempted, 1).await;
        result.unwrap();
        assert_eq!(commits.len(), 2);
        let prev = |c: &Commit| c.subscriptions.iter().find(|r| r.id == sub.id).and_then(|r| r.prev);
        assert_eq!(prev(&commits[0]), Some(sub.updated_at));
        assert_eq!(prev(&commits[1]), Some(newer.updated_at), "recomputed over the record as stored");
        assert!(commits[1].reschedule.is_some(), "the attempt's own retry is kept");
        assert_eq!(fake.receiver.sent.load(Ordering::SeqCst), 1, "sent once");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn three_lost_writes_fail_the_job_and_an_unchanged_outcome_takes_no_lock_or_read() {
        let fake = Fake::default();
        let sub = active(&fake);
        fake.receiver.answers.lock().unwrap().push_back(500);
        let (id, job) = job_for(&sub);
        let attempted = attempt(&fake, &id, job).await.unwrap();
        let (result, commits) = commit_all(&fake, attempted, 3).await;
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Conflict);
        assert_eq!(commits.len(), 3);

        // Delivered to a healthy endpoint: nothing about it changes.
        let fake = Fake { serialises: true, ..Default::default() };
        let sub = active(&fake);
        let (id, job) = job_for(&sub);
        let attempted = attempt(&fake, &id, job).await.unwrap();
        let reads = fake.reads.load(Ordering::SeqCst);
        let (result, commits) = commit_all(&fake, attempted, 0).await;
        result.unwrap();
        assert!(commits[0].subscriptions.is_empty());
        assert_eq!(fake.reads.load(Ordering::SeqCst), reads, "no second read");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_serialising_driver_computes_the_change_over_the_latest_record() {
        let fake = Fake { serialises: true, ..Default::default() };
        let sub = active(&fake);
        fake.receiver.answers.lock().unwrap().push_back(500);
        let (id, job) = job_for(&sub);
        let attempted = attempt(&fake, &id, job).await.unwrap();
        let mut newer = (*sub).clone();
        newer.updated_at += 7;
        fake.subs.lock().unwrap().insert(sub.id.clone(), Arc::new(newer.clone()));
        let released = fake.released.clone();
        let held_while_applied = std::sync::atomic::AtomicBool::new(false);
        let seen = Mutex::new(Vec::new());
        commit(&fake, attempted, |c, _now, changed| {
            // The driver's write (and its cache update) happen under the lock.
            held_while_applied.store(!released.load(Ordering::SeqCst), Ordering::SeqCst);
            assert!(changed.is_some(), "the changed record is handed to the driver");
            seen.lock().unwrap().push(c);
            async { Ok::<_, Fault>(()) }
        })
        .await
        .unwrap();
        let commits = seen.into_inner().unwrap();
        assert_eq!(commits.len(), 1, "no lost write to redo");
        assert_eq!(commits[0].subscriptions[0].prev, Some(newer.updated_at));
        assert!(held_while_applied.load(Ordering::SeqCst), "the lock is held while the change is written");
        assert!(fake.released.load(Ordering::SeqCst), "and let go after");
    }
}

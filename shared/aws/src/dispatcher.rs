//! The dispatcher: one SQS batch of deliveries in, attempts out.
//!
//! Messages of a batch are sent concurrently with partial batch responses
//! ([`crate::batch`]). A message that arrives before its `not_before` (a delay past SQS's
//! 15-minute cap) is sent on with what remains.
//!
//! Each attempt goes through the one delivery pipeline
//! ([`hookflow_pipeline::delivery`], the same as `hookflow dev`): gate,
//! secrets, send, classify, endpoint health, commit. This file is the SQS
//! glue around it and the AWS adapters as its ports.
//!
//! **The invocation's deadline.** A send starts only when its timeout and
//! [`crate::AFTER_SEND`] fit in the time the invocation has left
//! (`handle_by`): what does not is handed back to the queue unstarted
//! (after two hand-backs it is made with the time there is), so a function
//! timeout cutting a batch short, and its finished neighbours sent again,
//! is unlikely (the work before a send is not timed). A step's timeout is
//! at most [`crate::MAX_STEP_TIMEOUT`] (`hookflow apply` and the
//! admin API refuse more; an older flow's longer one is held to it).
//!
//! A batch of the ordered queue (per-key ordered subscriptions, FIFO) goes
//! group by group, in order ([`each_in_order`]). Its message stays in the
//! queue until its delivery is done: between attempts the table holds its
//! progress (attempts made, when the next is due: [`Store::apply_ordered`])
//! and the message is kept invisible until then, holding back the rest of
//! its key.
//!
//! **What the queues do on their own.** SQS drops a message its retention
//! outlived and moves one received `maxReceiveCount` times to its
//! dead-letter queue; neither may lose an accepted event. An ordered
//! delivery's retries end by [`keep_until`] (its queue's retention less a
//! margin), and one still queued then is given up unsent: dead, listed and
//! replayable ([`delivery::given_up`]). A message of a dead-letter queue
//! (`HOOKFLOW_DEAD_LETTER_ARNS`) is read back the same way
//! ([`Dispatcher::dead_lettered`]), so the receive limit — which the
//! ordered queue's followers spend on every hand-back — decides nothing
//! but where a message is given up from.

use std::sync::Arc;
use std::time::Duration;

use crate::AFTER_SEND;
use crate::batch::{Handled, Received, each_in_order, each_message, is_ordered, source};
use crate::queue::{RawMessage, is_due};
use crate::sdk::Sender;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::table::{Held, Lease};
use crate::{Error, metrics};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookflow_core::CompiledFlow;
use hookflow_core::commit::{Commit, DeadRow, DeliveryJob, JobKind, NewJob, Payload};
use hookflow_core::engine::{AttemptSummary, Level, LogLine};
use hookflow_core::limit::RateLimit;
use hookflow_core::ports::{Clock, PortError, SecretStore, SystemClock};
use hookflow_core::subscription::{Settings, Subscription};
use hookflow_io::Logger;
use hookflow_pipeline::delivery::{self, DeliveryPorts};
use hookflow_pipeline::{Audience, Limiter};
use serde_json::json;

/// Secrets for one delivery: a subscription's keyring as of the version
/// its record names (a rotation is seen at once, not after the cache's
/// five minutes), the rest through the cache.
pub struct Keyrings<'a> {
    secrets: &'a Secrets,
    sub: Option<&'a Subscription>,
}

impl SecretStore for Keyrings<'_> {
    async fn secret(&self, name: &str) -> Result<Option<String>, PortError> {
        match self.sub {
            Some(sub) if name == sub.keyring_name() => {
                Ok(self.secrets.get_versioned(name, sub.keys_version.max(sub.created_at)).await?)
            }
            _ => self.secrets.secret(name).await,
        }
    }
}

/// What the dispatcher needs, built once per container.
pub struct Dispatcher {
    pub store: Store,
    pub secrets: Secrets,
    pub sender: Sender,
    pub logger: Logger,
    /// Subscriptions' retry schedules and health window.
    pub settings: Settings,
    /// How long the ordered queue keeps a message
    /// ([`crate::AwsConfig::ordered_retention`]).
    pub ordered_retention: std::time::Duration,
    /// The dead-letter queues read back into dead deliveries
    /// ([`crate::AwsConfig::dead_letter_arns`]).
    pub dead_letter_arns: Vec<String>,
}

impl Dispatcher {
    /// Handles one SQS batch, with no deadline.
    pub async fn handle(self: &Arc<Self>, event: SqsEvent) -> SqsBatchResponse {
        self.handle_by(event, None).await
    }

    /// Handles one SQS batch within an invocation that ends at
    /// `deadline_ms` (wall clock, from the Lambda context).
    pub async fn handle_by(self: &Arc<Self>, event: SqsEvent, deadline_ms: Option<i64>) -> SqsBatchResponse {
        if source(&event).is_some_and(|arn| self.dead_letter_arns.iter().any(|d| d == arn)) {
            return each_message(event, &self.logger, |m| {
                let me = self.clone();
                async move { me.dead_lettered(&m).await }
            })
            .await;
        }
        if is_ordered(&event) {
            let me = self.clone();
            return each_in_order(event, &self.logger, &self.store.queues, move |m| {
                let me = me.clone();
                async move { me.ordered(&m, deadline_ms).await }
            })
            .await;
        }
        each_message(event, &self.logger, |m| {
            let me = self.clone();
            async move { me.one(&m, deadline_ms).await }
        })
        .await
    }

    /// One message: postpone it, or send one attempt and apply what
    /// follows; or, with too little time left, hand it back unstarted.
    async fn one(&self, received: &Received, deadline_ms: Option<i64>) -> Result<(), Error> {
        let raw = delivery_message(&received.body)?;
        let now = SystemClock.now_ms();
        // Sent on as it came, if it came early.
        if self.store.queues.postpone(&raw, now).await? {
            return Ok(());
        }
        let m = raw.decode()?;
        let mut job = job_of(m.payload, &m.id)?;
        if let Some(Late { left_ms, needs_ms }) = too_late(job.delivery.timeout, deadline_ms, now) {
            if received.receives <= HAND_BACKS {
                // Visible again at once (else after the queue's visibility
                // timeout). Each hand-back counts as a receive.
                let _ = self.store.queues.hand_back(std::slice::from_ref(&received.receipt)).await;
                return Err(Error::NotStarted(format!(
                    "message {}: {left_ms} ms left in the invocation, its attempt may take {needs_ms} ms",
                    m.id
                )));
            }
            // Handed back before and short of time again: made now with
            // the time there is, rather than handed back until the DLQ
            // takes it unsent.
            let cut = std::time::Duration::from_millis((left_ms - AFTER_SEND.as_millis() as i64).max(1000) as u64);
            self.logger.log(
                Level::Warn,
                "attempt made with its timeout cut to the invocation's time left",
                json!({"message_id": m.id, "timeout_ms": cut.as_millis() as u64, "receives": received.receives}),
            );
            job.delivery.timeout = job.delivery.timeout.min(cut);
        }
        let attempted = delivery::attempt(self, &m.id, job).await?;
        let store = &self.store;
        delivery::commit(self, attempted, |c, now, _| store.apply(c, now)).await
    }

    /// One message of the ordered queue: its held state says which attempt
    /// is next and when; an attempt that is not the last one keeps the
    /// message. Its retries end by [`keep_until`], and past that it is
    /// given up unsent, before the queue would drop it.
    async fn ordered(&self, received: &Received, deadline_ms: Option<i64>) -> Result<Handled, Error> {
        let Resumed { id, not_before, held, mut job } = self.resumed(&received.body).await?;
        let (store, id) = (&self.store, id.as_str());
        let apply = |c: Commit, now: i64, _: Option<Subscription>| store.apply_ordered(c, id, held.is_some(), now);
        let until = received.sent_at.map_or(i64::MAX, |sent| keep_until(sent, self.ordered_retention));
        let now = SystemClock.now_ms();
        if now >= until {
            let why = format!(
                "given up unsent: held behind its key's earlier deliveries until the ordered queue's retention ({}) \
                 nearly ran out",
                hookflow_core::duration::Span(self.ordered_retention)
            );
            delivery::commit(self, delivery::given_up(self, id, &job, &why), apply).await?;
            return Ok(Handled::Done);
        }
        let due = held.map_or(not_before, |h| h.due).min(until);
        if !is_due(due, now) {
            return Ok(Handled::Later(wait(due, now)));
        }
        if too_late(job.delivery.timeout, deadline_ms, now).is_some() {
            // Back to the queue at once, its group held behind it (a fresh
            // invocation has the time for one attempt: 20 s + 5 s of its 30).
            return Ok(Handled::Later(std::time::Duration::ZERO));
        }
        let max_age = job.delivery.retry.max_age;
        retries_until(&mut job, until);
        let mut attempted = delivery::attempt(self, id, job).await?;
        if let Some(dead) = attempted.commit.dead.as_mut() {
            // Replayed, it gets its own retries, not what this queue left.
            with_max_age(dead, max_age);
        }
        let retry = delivery::commit(self, attempted, apply).await?;
        Ok(match retry {
            Some(due) => Handled::Later(wait(due, SystemClock.now_ms())),
            None => Handled::Done,
        })
    }

    /// A delivery message of the ordered queue or a dead-letter queue, its
    /// job resumed from its held state (attempts made, when the first was
    /// due) when it has one.
    async fn resumed(&self, body: &str) -> Result<Resumed, Error> {
        let m = delivery_message(body)?.decode()?;
        let held = self.store.table.held(&m.id).await?;
        let mut job = job_of(m.payload, &m.id)?;
        if let Some(h) = held {
            (job.attempts, job.first_at, job.slot, job.waited_ms) = (h.attempts, h.first_at, h.slot, h.waited_ms);
        }
        Ok(Resumed { id: m.id, not_before: m.not_before, held, job })
    }

    /// A message of a dead-letter queue: its delivery given up — dead,
    /// listed and replayable (its `webhook-id` kept). It may have been
    /// sent already (a commit that kept failing after its send), or have a
    /// live copy (an outbox sent again past the FIFO queue's five minutes
    /// of deduplication): at least once, same `webhook-id`. So an ordered
    /// one's held state is read (its attempts) but left to its expiry: it
    /// may be the live copy's. One that is not a delivery this version can
    /// read fails, and stays in the queue under its alarm.
    async fn dead_lettered(&self, received: &Received) -> Result<(), Error> {
        let Resumed { id, job, .. } = self.resumed(&received.body).await?;
        let why = "given up: its message reached a dead-letter queue (received as often as its queue allows \
                   without an end)";
        let given = delivery::given_up(self, &id, &job, why);
        let store = &self.store;
        delivery::commit(self, given, |c, now, _| store.apply(c, now)).await
    }
}

/// A delivery message as [`Dispatcher::resumed`] reads it.
struct Resumed {
    id: String,
    not_before: i64,
    held: Option<Held>,
    job: DeliveryJob,
}

/// When an ordered message sent at `sent_at` (ms) must be done with: its
/// queue drops it `retention` after it was sent, and a margin (a quarter
/// of that, at most a day) leaves time to give up a stuck key's whole
/// backlog one message after another before then.
pub fn keep_until(sent_at: i64, retention: std::time::Duration) -> i64 {
    let keep = retention.as_millis().min(i64::MAX as u128) as i64;
    sent_at.saturating_add(keep - (keep / 4).min(86_400_000))
}

/// `dead`'s job with its retry policy's `max_age` put back.
fn with_max_age(dead: &mut DeadRow, max_age: Option<std::time::Duration>) {
    if let Ok(mut job) = serde_json::from_str::<DeliveryJob>(&dead.job) {
        job.delivery.retry.max_age = max_age;
        dead.job = serde_json::to_string(&job).unwrap_or_else(|_| dead.job.clone());
    }
}

/// Ends `job`'s retries by `until` (ms): its policy's `max_age` held to
/// what is left from its first attempt, so that a retry that would be due
/// later makes the delivery dead instead (`gave up after N attempt(s)`).
fn retries_until(job: &mut DeliveryJob, until: i64) {
    let left = std::time::Duration::from_millis(until.saturating_sub(job.first_at).max(0) as u64);
    let retry = &mut job.delivery.retry;
    retry.max_age = Some(retry.max_age.map_or(left, |max| max.min(left)));
}

/// How often a message short of time is handed back before it is made
/// anyway with the time there is (the queue moves a message to its DLQ
/// after 5 receives).
const HAND_BACKS: u32 = 2;

/// An attempt that does not fit the invocation's time left.
struct Late {
    left_ms: i64,
    needs_ms: i64,
}

/// Whether an attempt cannot start at `now_ms` in an invocation ending at
/// `deadline_ms`: its `timeout` (held to [`crate::MAX_STEP_TIMEOUT`]
/// by `job_of`) and [`AFTER_SEND`] do not fit.
fn too_late(timeout: std::time::Duration, deadline_ms: Option<i64>, now_ms: i64) -> Option<Late> {
    let left_ms = deadline_ms? - now_ms;
    let needs_ms = (timeout + AFTER_SEND).as_millis() as i64;
    (left_ms < needs_ms).then_some(Late { left_ms, needs_ms })
}

/// DynamoDB, Secrets Manager and the sender as the delivery pipeline's
/// ports. Health changes are not serialised here: the table's conditional
/// write refuses one computed over an older record, and the pipeline
/// computes it again.
/// Who hears of `subscription.disabled`: the table's subscriptions and
/// event flows; the ones a disabling commit missed are queued through the
/// outbox ([`Store::apply`]).
impl Audience for Dispatcher {
    type Error = Error;

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn audience(&self, tenant: &str) -> Result<(Vec<Arc<Subscription>>, Vec<Arc<CompiledFlow>>), Error> {
        let subs = self.store.table.subscriptions(Some(tenant), false).await?;
        let flows = self.store.table.event_flows(tenant).await?;
        Ok((subs.into_iter().map(Arc::new).collect(), flows))
    }

    async fn subscribers(&self, tenant: &str) -> Result<Vec<Arc<Subscription>>, Error> {
        Ok(self.store.table.subscriptions_now(tenant).await?.into_iter().map(Arc::new).collect())
    }

    async fn queue(&self, jobs: Vec<NewJob>) -> Result<(), Error> {
        self.store.apply(Commit { jobs, ..Default::default() }, self.now_ms()).await
    }
}

impl DeliveryPorts for Dispatcher {
    type Secrets<'a> = Keyrings<'a>;
    type Sender = Sender;
    type Guard = ();

    async fn subscription(&self, id: &str) -> Result<Option<Arc<Subscription>>, Error> {
        Ok(self.store.table.subscription(id).await?.map(Arc::new))
    }

    fn secrets<'a>(&'a self, sub: Option<&'a Subscription>) -> Keyrings<'a> {
        Keyrings { secrets: &self.secrets, sub }
    }

    fn sender(&self) -> &Sender {
        &self.sender
    }

    async fn serialize(&self) -> Option<()> {
        None
    }

    /// The message that disabled `sub` comes back when its commit's send
    /// failed: its `subscription.disabled` fan-out is sent again from the
    /// event's outbox ([`crate::outbox`]).
    async fn found_disabled(&self, sub: &Subscription) -> Result<(), Error> {
        if let Some(id) = hookflow_core::subscription::Event::disabled_id(sub) {
            self.store.redrive_event(&sub.tenant, &id, SystemClock.now_ms()).await?;
        }
        Ok(())
    }

    fn lines(&self, lines: Vec<LogLine>) {
        self.logger.lines(lines);
    }

    fn attempted(&self, a: &hookflow_pipeline::Counted<'_>) {
        let (summary, duration_ms, at) = (a.summary, a.duration_ms, a.at);
        let outcome = match summary {
            Some(AttemptSummary::Delivered) => "succeeded",
            Some(AttemptSummary::Retried) => "retried",
            _ => "dead",
        };
        self.logger.raw(&metrics::delivery(outcome, duration_ms, at));
    }
}

/// The limits every dispatcher shares, in the table.
impl Limiter for Dispatcher {
    type Permit = Lease;

    fn epoch(&self) -> i64 {
        self.store.table.epoch()
    }

    async fn reserve(&self, key: &str, rate: &RateLimit) -> Result<Duration, PortError> {
        Limiter::reserve(&self.store.table, key, rate).await
    }

    async fn enter(&self, key: &str, max: u32, hold: Duration) -> Result<Result<Lease, Duration>, PortError> {
        Limiter::enter(&self.store.table, key, max, hold).await
    }

    async fn leave(&self, lease: Lease, took_ms: u64) {
        Limiter::leave(&self.store.table, lease, took_ms).await
    }
}

/// A message of a deliveries queue, as it came.
fn delivery_message(body: &str) -> Result<RawMessage, Error> {
    let m = RawMessage::parse(body)?;
    if m.kind != JobKind::Delivery {
        return Err(Error::Malformed(format!("message {}: a {} job on a deliveries queue", m.id, m.kind.as_str())));
    }
    Ok(m)
}

/// The delivery a message carries, its timeout held to
/// [`crate::MAX_STEP_TIMEOUT`] (a flow applied before the limit).
fn job_of(payload: Payload, id: &str) -> Result<DeliveryJob, Error> {
    let Payload::Delivery(mut job) = payload else {
        return Err(Error::Malformed(format!("message {id}: not a delivery")));
    };
    job.delivery.timeout = job.delivery.timeout.min(crate::MAX_STEP_TIMEOUT);
    Ok(job)
}

/// From `now` until `due` (ms).
fn wait(due: i64, now: i64) -> std::time::Duration {
    std::time::Duration::from_millis((due - now).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_step_on_aws_fits_a_fresh_invocation_with_time_to_spare() {
        let longest = crate::MAX_STEP_TIMEOUT;
        // The template's 30 s, less up to 4 s of a cold start and reads.
        assert!(too_late(longest, Some(26_000), 0).is_none());
        assert!(too_late(longest, Some(24_999), 0).is_some());
        assert!(too_late(longest, None, 0).is_none(), "no deadline, no limit");
    }
}

//! The dispatcher: one SQS batch of deliveries in, attempts out.
//!
//! Messages of a batch are sent concurrently with partial batch responses
//! ([`hookflow_aws::batch`]). A message that arrives before its `not_before` (a delay past SQS's
//! 15-minute cap) is sent on with what remains.
//!
//! A subscription's delivery (an event, a verification request) reads its
//! subscription first ([`subscription::gate`]: not sent to a disabled or
//! deleted one) and writes what the attempt says about the endpoint
//! ([`subscription::health_change`]) in the attempt's commit, with
//! `subscription.disabled` fanned out when it disables one.
//!
//! A batch of the ordered queue (per-key ordered subscriptions, FIFO) goes
//! group by group, in order ([`each_in_order`]). Its message stays in the
//! queue until its delivery is done: between attempts the table holds its
//! progress (attempts made, when the next is due: [`Store::apply_ordered`])
//! and the message is kept invisible until then, holding back the rest of
//! its key.

use std::future::Future;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookflow_aws::batch::{Handled, each_in_order, each_message, is_ordered};
use hookflow_aws::queue::{Message, is_due};
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_aws::{Error, metrics};
use hookflow_core::commit::{Commit, DeliveryJob, JobKind};
use hookflow_core::engine::{self, AttemptSummary};
use hookflow_core::ports::{Clock, PortError, SecretStore, SystemClock};
use hookflow_core::subscription::{self, Gate, Health, Settings, Subscription};
use hookflow_io::Logger;
use hookflow_io::sender::{Sender, resolve_secrets};

/// Secrets for one delivery: a subscription's keyring as of the version
/// its record names (a rotation is seen at once, not after the cache's
/// five minutes), the rest through the cache.
struct Keyrings<'a> {
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
}

impl Dispatcher {
    /// Handles one SQS batch.
    pub async fn handle(self: &Arc<Self>, event: SqsEvent) -> SqsBatchResponse {
        if is_ordered(&event) {
            let me = self.clone();
            return each_in_order(event, &self.logger, &self.store.queues, move |body| {
                let me = me.clone();
                async move { me.ordered(&body).await }
            })
            .await;
        }
        each_message(event, &self.logger, |body| {
            let me = self.clone();
            async move { me.one(&body).await }
        })
        .await
    }

    /// One message: postpone it, or send one attempt and apply what follows.
    async fn one(&self, body: &str) -> Result<(), Error> {
        let m = delivery_message(body)?;
        if self.store.queues.postpone(&m, SystemClock.now_ms()).await? {
            return Ok(());
        }
        let attempted = self.attempt(&m.id, job_of(&m)?).await?;
        let store = &self.store;
        self.commit(attempted, |c, now| store.apply(c, now)).await
    }

    /// One message of the ordered queue: its held state says which attempt
    /// is next and when; an attempt that is not the last one keeps the
    /// message.
    async fn ordered(&self, body: &str) -> Result<Handled, Error> {
        let m = delivery_message(body)?;
        let held = self.store.table.held(&m.id).await?;
        let due = held.map_or(m.not_before, |h| h.due);
        let now = SystemClock.now_ms();
        if !is_due(due, now) {
            return Ok(Handled::Later(wait(due, now)));
        }
        let mut job = job_of(&m)?;
        if let Some(h) = held {
            (job.attempts, job.first_at) = (h.attempts, h.first_at);
        }
        let attempted = self.attempt(&m.id, job).await?;
        let (store, id) = (&self.store, m.id.as_str());
        let retry = self.commit(attempted, |c, now| store.apply_ordered(c, id, held.is_some(), now)).await?;
        Ok(match retry {
            Some(due) => Handled::Later(wait(due, SystemClock.now_ms())),
            None => Handled::Done,
        })
    }

    /// One attempt of delivery `job` (job `id`): what it writes, and what
    /// it says about its subscription. Nothing is sent to a subscription
    /// the gate stops.
    async fn attempt(&self, id: &str, job: DeliveryJob) -> Result<Attempted, Error> {
        let now = SystemClock.now_ms();
        let sub = match job.delivery.purpose.subscription() {
            Some(id) => self.store.table.subscription(id).await?,
            None => None,
        };
        let unsent = match subscription::gate(&job.delivery.purpose, sub.as_ref()) {
            Gate::Send => None,
            Gate::Dead(why) => Some((why, true)),
            Gate::Drop(why) => Some((why, false)),
        };
        if let Some((why, dead)) = unsent {
            let out = engine::unsent(id.to_string(), &job, &why, dead, now);
            for line in out.lines {
                self.logger.log(line.level, &line.message, line.fields);
            }
            return Ok(Attempted { commit: out.commit, health: None });
        }
        let store = Keyrings { secrets: &self.secrets, sub: sub.as_ref() };
        let secrets = resolve_secrets(&store, &job.delivery).await.map_err(|e| Error::Aws {
            service: "Secrets Manager",
            operation: "GetSecretValue",
            message: e.message,
            transient: e.transient,
        })?;
        let attempt = self.sender.send(&job.delivery, &secrets).await;
        let step = engine::after_attempt(id.to_string(), job, &attempt, SystemClock.now_ms(), &mut rand::rng());
        for line in step.lines {
            self.logger.log(line.level, &line.message, line.fields);
        }
        let outcome = match step.decision {
            Some(AttemptSummary::Delivered) => "succeeded",
            Some(AttemptSummary::Retried) => "retried",
            _ => "dead",
        };
        self.logger.raw(&metrics::delivery(outcome, attempt.duration_ms, now));
        let health = sub.zip(step.health.map(|(_, h)| h));
        Ok(Attempted { commit: step.commit, health })
    }

    /// Applies an attempt's commit with `apply`, together with what the
    /// attempt changes about its subscription (and `subscription.disabled`
    /// when it disables it). Another dispatcher may change the subscription
    /// meanwhile (its own deliveries' outcomes): the write then loses
    /// ([`Error::Conflict`]) and is made again over the record as it is
    /// now, up to three times, rather than the attempt redone.
    async fn commit<T, F, Fut>(&self, attempted: Attempted, apply: F) -> Result<T, Error>
    where
        F: Fn(Commit, i64) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let Attempted { commit, health } = attempted;
        let Some((mut sub, health)) = health else {
            return apply(commit, SystemClock.now_ms()).await;
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let now = SystemClock.now_ms();
            let mut all = commit.clone();
            let mut lines = Vec::new();
            if let Some(h) = subscription::health_change(&sub, health, &self.settings, now) {
                lines.push(h.line);
                all.merge(h.commit);
                if let Some(event) = h.disabled {
                    // Published in the same commit; two dispatchers
                    // disabling the same version build the same event id,
                    // and the table takes it once.
                    let others = self.store.table.subscriptions(Some(&event.tenant), true).await?;
                    let flows = self.store.table.event_flows(&event.tenant).await?;
                    let p = subscription::publish(
                        &event,
                        others.iter().filter(|s| s.id != h.sub.id),
                        flows.iter().map(|f| f.as_ref()),
                        &self.settings,
                        now,
                    );
                    lines.extend(p.outcome.lines);
                    all.merge(p.outcome.commit);
                }
            }
            match apply(all, now).await {
                Err(Error::Conflict(_)) if tries < 3 => match self.store.table.subscription(&sub.id).await? {
                    Some(now_stored) => sub = now_stored,
                    None => return apply(commit, SystemClock.now_ms()).await,
                },
                done => {
                    if done.is_ok() {
                        for line in lines {
                            self.logger.log(line.level, &line.message, line.fields);
                        }
                    }
                    return done;
                }
            }
        }
    }
}

/// An attempt made (or refused by the gate): its commit, and the
/// subscription as read with what the attempt says about its endpoint.
struct Attempted {
    commit: Commit,
    health: Option<(Subscription, Health)>,
}

/// A message of a deliveries queue.
fn delivery_message(body: &str) -> Result<Message, Error> {
    let m = Message::parse(body)?;
    if m.kind != JobKind::Delivery {
        return Err(Error::Malformed(format!("message {}: a {} job on a deliveries queue", m.id, m.kind.as_str())));
    }
    Ok(m)
}

/// The delivery job a message carries.
fn job_of(m: &Message) -> Result<DeliveryJob, Error> {
    serde_json::from_str(&m.payload).map_err(|e| Error::Malformed(format!("message {}: {e}", m.id)))
}

/// From `now` until `due` (ms).
fn wait(due: i64, now: i64) -> std::time::Duration {
    std::time::Duration::from_millis((due - now).max(0) as u64)
}

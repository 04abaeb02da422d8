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

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookflow_aws::batch::each_message;
use hookflow_aws::queue::Message;
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_aws::{Error, metrics};
use hookflow_core::commit::{DeliveryJob, JobKind};
use hookflow_core::engine::{self, AttemptSummary};
use hookflow_core::ports::{Clock, PortError, SecretStore, SystemClock};
use hookflow_core::subscription::{self, Gate, Settings};
use hookflow_io::Logger;
use hookflow_io::sender::{Sender, resolve_secrets};

/// Secrets for one delivery: a subscription's keyring as of the version
/// its record names (a rotation is seen at once, not after the cache's
/// five minutes), the rest through the cache.
struct Keyrings<'a> {
    secrets: &'a Secrets,
    sub: Option<&'a hookflow_core::subscription::Subscription>,
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
        each_message(event, &self.logger, |body| {
            let me = self.clone();
            async move { me.one(&body).await }
        })
        .await
    }

    /// One message: postpone it, or send one attempt and apply what follows.
    async fn one(&self, body: &str) -> Result<(), Error> {
        let now = SystemClock.now_ms();
        let m = Message::parse(body)?;
        if m.kind != JobKind::Delivery {
            return Err(Error::Malformed(format!(
                "message {}: a {} job on the deliveries queue",
                m.id,
                m.kind.as_str()
            )));
        }
        if self.store.queues.postpone(&m, now).await? {
            return Ok(());
        }
        let job: DeliveryJob =
            serde_json::from_str(&m.payload).map_err(|e| Error::Malformed(format!("message {}: {e}", m.id)))?;
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
            let out = engine::unsent(m.id, &job, &why, dead, now);
            for line in out.lines {
                self.logger.log(line.level, &line.message, line.fields);
            }
            return self.store.apply(out.commit, now).await;
        }
        let store = Keyrings { secrets: &self.secrets, sub: sub.as_ref() };
        let secrets = resolve_secrets(&store, &job.delivery).await.map_err(|e| Error::Aws {
            service: "Secrets Manager",
            operation: "GetSecretValue",
            message: e.message,
            transient: e.transient,
        })?;
        let attempt = self.sender.send(&job.delivery, &secrets).await;
        let step = engine::after_attempt(m.id, job, &attempt, SystemClock.now_ms(), &mut rand::rng());
        for line in step.lines {
            self.logger.log(line.level, &line.message, line.fields);
        }
        let outcome = match step.decision {
            Some(AttemptSummary::Delivered) => "succeeded",
            Some(AttemptSummary::Retried) => "retried",
            _ => "dead",
        };
        self.logger.raw(&metrics::delivery(outcome, attempt.duration_ms, now));
        let now = SystemClock.now_ms();
        let mut commit = step.commit;
        if let (Some(sub), Some((_, health))) = (&sub, step.health)
            && let Some(h) = subscription::health_change(sub, health, &self.settings, now)
        {
            self.logger.log(h.line.level, &h.line.message, h.line.fields);
            commit.merge(h.commit);
            if let Some(event) = h.disabled {
                // Published in the same commit; two dispatchers disabling
                // the same version build the same event id, and the table
                // takes it once.
                let others = self.store.table.subscriptions(Some(&event.tenant), true).await?;
                let flows = self.store.table.event_flows(&event.tenant).await?;
                let p = subscription::publish(
                    &event,
                    others.iter().filter(|s| s.id != h.sub.id),
                    flows.iter().map(|f| f.as_ref()),
                    &self.settings,
                    now,
                );
                for line in p.outcome.lines {
                    self.logger.log(line.level, &line.message, line.fields);
                }
                commit.merge(p.outcome.commit);
            }
        }
        self.store.apply(commit, now).await
    }
}

//! The dispatcher: one SQS batch of deliveries in, attempts out.
//!
//! Messages of a batch are sent concurrently with partial batch responses
//! ([`hookflow_aws::batch`]). A message that arrives before its `not_before` (a delay past SQS's
//! 15-minute cap) is sent on with what remains.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use hookflow_aws::batch::each_message;
use hookflow_aws::queue::Message;
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_aws::{Error, metrics};
use hookflow_core::commit::{DeliveryJob, JobKind};
use hookflow_core::engine::{self, AttemptSummary};
use hookflow_core::ports::{Clock, SystemClock};
use hookflow_io::Logger;
use hookflow_io::sender::{Sender, resolve_secrets};

/// What the dispatcher needs, built once per container.
pub struct Dispatcher {
    pub store: Store,
    pub secrets: Secrets,
    pub sender: Sender,
    pub logger: Logger,
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
        let secrets = resolve_secrets(&self.secrets, &job.delivery).await.map_err(|e| Error::Aws {
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
        self.store.apply(step.commit, SystemClock.now_ms()).await
    }
}

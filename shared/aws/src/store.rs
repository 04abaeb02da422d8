//! The table and the queues together as the engine's run store.
//!
//! A [`Commit`] is applied in order: the table's part in one transaction
//! ([`Table::write`]), then its jobs on SQS — and a rescheduled delivery as
//! a new message due at its retry time (SQS consumers delete the message
//! they were given; nothing else needs doing for a job that is done). If
//! the process dies between the two, the message that caused the commit is
//! not deleted, comes back, and the commit is made again: job ids and the
//! run's state make that redo harmless.
//!
//! An ordered delivery (a message of the FIFO queue) is applied with
//! [`Store::apply_ordered`]: its retry cannot be a new message, which would
//! join the end of its group.

use hookflow_core::commit::{Commit, DeadDelivery, JobKind, NewJob};

use crate::Error;
use crate::queue::Queues;
use crate::table::{Held, Hold, Table};

/// DynamoDB + SQS.
#[derive(Clone)]
pub struct Store {
    pub table: Table,
    pub queues: Queues,
}

impl Store {
    /// The table and queues `config` names, on clients made from `sdk`.
    pub fn from_config(sdk: &aws_config::SdkConfig, config: &crate::AwsConfig) -> Self {
        Store {
            table: Table::new(aws_sdk_dynamodb::Client::new(sdk), &config.table, config.retention_days),
            queues: Queues::new(aws_sdk_sqs::Client::new(sdk), &config.runs_queue_url, &config.deliveries_queue_url)
                .with_ordered(config.ordered_queue_url.clone()),
        }
    }

    /// Applies `c` at `now_ms`.
    /// A job too large for a message refuses the whole commit before any
    /// of it is written ([`Error::TooLarge`]).
    pub async fn apply(&self, mut c: Commit, now_ms: i64) -> Result<(), Error> {
        let mut jobs = std::mem::take(&mut c.jobs);
        if let Some((id, payload, due)) = c.reschedule.take() {
            let tenant = serde_json::from_str::<hookflow_core::commit::DeliveryJob>(&payload)
                .map(|d| d.delivery.tenant)
                .unwrap_or_default();
            jobs.push(NewJob {
                id,
                kind: JobKind::Delivery,
                payload,
                not_before: due,
                tenant,
                leased_for: None,
                group: None,
            });
        }
        let messages = self.queues.prepare(&jobs)?;
        self.table.write(&c, now_ms).await?;
        self.queues.send_prepared(messages, now_ms).await
    }

    /// Applies the commit of an attempt of the ordered message `job_id`
    /// (`was_held`: it had a held state). A retry becomes the message's
    /// held state ([`Hold::Keep`], in the commit's transaction) and the
    /// answer is when it is due: the message stays in the queue, in its
    /// place. Otherwise the held state is released and the answer is
    /// `None`: the message can go.
    pub async fn apply_ordered(
        &self,
        mut c: Commit,
        job_id: &str,
        was_held: bool,
        now_ms: i64,
    ) -> Result<Option<i64>, Error> {
        let retry = match c.reschedule.take() {
            Some((_, payload, due)) => {
                // Only the counters: the request in the payload is skipped,
                // not built again.
                #[derive(serde::Deserialize)]
                struct Progress {
                    attempts: u32,
                    first_at: i64,
                }
                let p: Progress =
                    serde_json::from_str(&payload).map_err(|e| Error::Malformed(format!("retry of {job_id}: {e}")))?;
                Some(Held { attempts: p.attempts, first_at: p.first_at, due })
            }
            None => None,
        };
        let hold = match retry {
            Some(held) => Some(Hold::Keep { job_id: job_id.to_string(), held }),
            None => was_held.then(|| Hold::Release(job_id.to_string())),
        };
        let messages = self.queues.prepare(&c.jobs)?;
        self.table.write_holding(&c, hold, now_ms).await?;
        self.queues.send_prepared(messages, now_ms).await?;
        Ok(retry.map(|held| held.due))
    }
}

impl Store {
    /// Queues a dead delivery again (same delivery id, attempts from zero)
    /// and removes it from the dead list. The job is queued first: a
    /// failure in between leaves the delivery listed, and replaying it
    /// again sends it twice under one `webhook-id` rather than never.
    pub async fn replay(&self, dead: &DeadDelivery, now_ms: i64) -> Result<(), Error> {
        let (job, entry) = dead
            .row
            .replay(now_ms)
            .map_err(|e| Error::Malformed(format!("dead delivery {}: {e}", dead.row.delivery_id)))?;
        self.apply(Commit { jobs: vec![job], log: vec![entry], ..Default::default() }, now_ms).await?;
        self.table.forget_dead(&dead.row.tenant, &dead.row.delivery_id).await
    }
}

//! The table and the queues together as the engine's run store.
//!
//! A [`Commit`] is applied in order: the table's part in one write
//! ([`Table::write`]), then its jobs on SQS — and a rescheduled delivery as
//! a new message due at its retry time (SQS consumers delete the message
//! they were given; nothing else needs doing for a job that is done).
//!
//! **Between the two writes.** When the send fails after the table write
//! (or the process dies between them), the input that caused the commit
//! comes back. A dispatcher's attempt is simply made again (its commit
//! changes no state an input waits on). A run's commit and a publish
//! change state for good, so their messages are also written, as an
//! outbox, in the same transaction ([`crate::outbox`]), and the input that
//! finds its change already applied sends them again ([`Store::redrive`]).
//! The messages of a run's commit go last-one-last: the delivery the run
//! waits on is sent only after the others were taken, so the run cannot
//! move on (and replace the outbox) while an earlier message is unsent.
//!
//! An ordered delivery (a message of the FIFO queue) is applied with
//! [`Store::apply_ordered`]: its retry cannot be a new message, which would
//! join the end of its group.

use hookflow_core::commit::{Commit, DeadDelivery, NewJob, Payload};

use crate::Error;
use crate::outbox::Outbox;
use crate::queue::{Outgoing, Queues};
use crate::table::{Held, Hold, Table};

/// A commit applied, or an outbox sent again.
#[derive(Debug, Default)]
#[must_use]
pub struct Applied {
    /// How many messages were sent.
    pub messages: usize,
    /// The log items of the outbox (a request's copy under its tenant)
    /// that could not be written: the commit stands without them, and a
    /// redo of its input writes them again. The caller logs it.
    pub unlogged: Option<Error>,
}

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
            table: Table::new(aws_sdk_dynamodb::Client::new(sdk), &config.table, config.retention_days)
                .with_dead_retention(config.dead_retention_days),
            queues: Queues::new(aws_sdk_sqs::Client::new(sdk), &config.runs_queue_url, &config.deliveries_queue_url)
                .with_ordered(config.ordered_queue_url.clone()),
        }
    }

    /// Applies `c` at `now_ms` (a commit no input waits on twice: a
    /// dispatcher's attempt, an admin's change). A publish in it keeps its
    /// outbox all the same.
    /// A job too large for a message refuses the whole commit before any
    /// of it is written ([`Error::TooLarge`]).
    /// A run in it must be new (a run already written is written through
    /// [`Store::apply_from`] with the log its item keeps).
    pub async fn apply(&self, c: Commit, now_ms: i64) -> Result<(), Error> {
        self.apply_from(c, None, None, now_ms).await.map(|_| ())
    }

    /// Applies `c`, made by the input `cause` (the job id of the message
    /// that carried it, or [`crate::outbox::ACCEPTED`]): a commit of one
    /// run keeps its messages in the run's item, for that input to send
    /// again if it comes back ([`Store::redrive`]), and its log there too
    /// when `prior` is the log the item kept as it was read
    /// ([`crate::table::StoredRun::log`]; `Some("")` for a new run).
    ///
    /// Once the commit is written and its messages sent, it stands: log
    /// items its outbox carries that could not be written are reported in
    /// [`Applied::unlogged`], not as a failure (which would have the
    /// caller retry a request that was accepted).
    pub async fn apply_from(
        &self,
        mut c: Commit,
        cause: Option<&str>,
        prior: Option<&str>,
        now_ms: i64,
    ) -> Result<Applied, Error> {
        let mut jobs = std::mem::take(&mut c.jobs);
        if let Some((id, next, due)) = c.reschedule.take() {
            let tenant = next.delivery.tenant.clone();
            jobs.push(NewJob {
                id,
                payload: Payload::Delivery(next),
                not_before: due,
                tenant,
                leased_for: None,
                group: None,
            });
        }
        let messages = self.queues.prepare(&jobs)?;
        let messages_n = messages.len();
        let of_run = c.event.is_none() && c.runs.len() == 1 && cause.is_some();
        let outbox = outbox(&c, cause, &messages);
        self.table.write_holding(&c, None, outbox.as_ref(), prior, now_ms).await?;
        let sent = !messages.is_empty();
        let send = async {
            if of_run {
                self.send_last_one_last(messages, now_ms).await
            } else {
                self.send_published(&c, messages, now_ms).await
            }
        };
        // The log items the outbox carries, beside the send (neither waits
        // on the other; the redo does both again).
        let copies = outbox.as_ref().map_or(&[][..], |o| &o.log[..]);
        let (sent_result, copied) = tokio::join!(send, self.table.write_copies(copies));
        sent_result?;
        let unlogged = copied.err();
        // A key whose copy is unwritten stays `accepted`: a retry with it
        // writes the copy again (and sends the messages again, harmless).
        if let Some((scope, ..)) = c.idempotency.as_ref().filter(|_| sent && unlogged.is_none()) {
            let _ = self.table.idempotency_sent(scope).await;
        }
        Ok(Applied { messages: messages_n, unlogged })
    }

    /// Sends what a commit queued; a publish's outbox is then forgotten
    /// (best effort: one left behind is sent again only if the same event
    /// id is published again, under the same `webhook-id`s).
    async fn send_published(&self, c: &Commit, messages: Outgoing, now_ms: i64) -> Result<(), Error> {
        let sent = !messages.is_empty();
        self.queues.send_prepared(messages, now_ms).await?;
        if let Some(e) = c.event.as_ref().filter(|_| sent) {
            let _ = self.table.sent_event(&e.tenant, &e.id).await;
        }
        Ok(())
    }

    /// A run's messages: the last (the delivery the run waits on, if any)
    /// only once the others were taken, so the run cannot move on while an
    /// earlier one is unsent.
    async fn send_last_one_last(&self, messages: Outgoing, now_ms: i64) -> Result<(), Error> {
        if messages.len() < 2 {
            return self.queues.send_prepared(messages, now_ms).await;
        }
        let (rest, last) = messages.split_last();
        self.queues.send_prepared(rest, now_ms).await?;
        self.queues.send_prepared(last, now_ms).await
    }

    /// Sends an outbox again: its commit was written, its send may not
    /// have finished ([`crate::outbox`]); a run's last one last; and
    /// writes its log items again (those it could not are reported, as by
    /// [`Store::apply_from`]).
    pub async fn redrive(&self, outbox: &Outbox, now_ms: i64) -> Result<Applied, Error> {
        let send = async { self.send_last_one_last(Outgoing::of_messages(&outbox.messages)?, now_ms).await };
        let (sent, copied) = tokio::join!(send, self.table.write_copies(&outbox.log));
        sent?;
        Ok(Applied { messages: outbox.messages.len(), unlogged: copied.err() })
    }

    /// Sends again what the publish of event `id` left unsent, if its
    /// window is live; then forgets it. Returns whether the event is live.
    pub async fn redrive_event(&self, tenant: &str, id: &str, now_ms: i64) -> Result<bool, Error> {
        Ok(self.redrive_published(tenant, id, now_ms).await?.is_some())
    }

    /// [`Store::redrive_event`], answering when the event was stamped if
    /// it is live (`Some(None)`: live, written before its time was kept).
    pub async fn redrive_published(&self, tenant: &str, id: &str, now_ms: i64) -> Result<Option<Option<i64>>, Error> {
        let Some((outbox, at)) = self.table.published_at(tenant, id, now_ms).await? else { return Ok(None) };
        if self.redrive(&outbox, now_ms).await?.messages > 0 {
            let _ = self.table.sent_event(tenant, id).await;
        }
        Ok(Some(at))
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
            Some((_, next, due)) => {
                let (attempts, first_at, slot, waited_ms) = (next.attempts, next.first_at, next.slot, next.waited_ms);
                Some(Held { attempts, first_at, due, slot, waited_ms })
            }
            None => None,
        };
        let hold = match retry {
            Some(held) => Some(Hold::Keep { job_id: job_id.to_string(), held }),
            None => was_held.then(|| Hold::Release(job_id.to_string())),
        };
        let messages = self.queues.prepare(&c.jobs)?;
        self.table.write_holding(&c, hold, outbox(&c, None, &messages).as_ref(), None, now_ms).await?;
        self.send_published(&c, messages, now_ms).await?;
        Ok(retry.map(|held| held.due))
    }
}

impl Store {
    /// Queues a dead delivery again (same delivery id, attempts from zero)
    /// and removes it from the dead list. The job is queued first: a
    /// failure in between leaves the delivery listed, and replaying it
    /// again sends it twice under one `webhook-id` rather than never.
    pub async fn replay(&self, dead: &DeadDelivery, now_ms: i64) -> Result<(), Error> {
        let mut row = dead.row.clone();
        if row.job.is_empty() {
            row.job = self.table.dead_job(&row.tenant, &row.delivery_id).await?.ok_or_else(|| {
                Error::Malformed(format!("dead delivery {}: its job is not in the table", row.delivery_id))
            })?;
        }
        let (job, entry) =
            row.replay(now_ms).map_err(|e| Error::Malformed(format!("dead delivery {}: {e}", dead.row.delivery_id)))?;
        self.apply(Commit { jobs: vec![job], log: vec![entry], ..Default::default() }, now_ms).await?;
        self.table.forget_dead(dead).await
    }
}

/// The outbox a commit keeps ([`crate::outbox`]): a publish's, or one
/// run's when an input caused it (with the tenant copies of its log).
fn outbox(c: &Commit, cause: Option<&str>, messages: &Outgoing) -> Option<Outbox> {
    let of_run = c.event.is_none() && c.runs.len() == 1 && cause.is_some();
    let keeps = (c.event.is_some() && !messages.is_empty()) || of_run;
    keeps.then(|| Outbox {
        cause: cause.unwrap_or_default().to_string(),
        messages: messages.messages(),
        log: if of_run { Table::tenant_copies(&c.log) } else { Vec::new() },
    })
}

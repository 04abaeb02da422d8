//! SQS: the `runs` queue (inputs for the executor) and the `deliveries`
//! queue (attempts for the dispatcher), standard queues each with a DLQ.
//!
//! **Delays past 15 minutes.** SQS delays a message by at most 900 s, and
//! the retry ladder goes to hours. A job carries its `not_before`; it is
//! sent with the delay capped at 900 s, and a consumer that receives it
//! early sends it again with what remains ([`Queues::postpone`]) and
//! deletes the early copy: a 5-hour wait is 20 hops. The longest ladder
//! (the default 15 attempts over about 72 hours) fits the queues' 4-day
//! retention because each hop is a new message.
//!
//! **Size.** The queues take SQS's largest message, 1 MiB (the template's
//! `MaximumMessageSize`). A job carries its rendered request, whose body
//! templates cap at 1 MiB, so a job can still be larger; such a commit is
//! refused before anything of it is written ([`Queues::prepare`]): the
//! ingress answers 413, a later step fails its message, which SQS retries
//! and then moves to the DLQ. Batches are cut at 1 MiB as well as at ten.
//!
//! **Fairness.** Every message carries `MessageGroupId = tenant` (SQS fair
//! queues): a tenant with a backlog does not hold back the others.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use hookflow_core::commit::{JobKind, NewJob};
use serde::{Deserialize, Serialize};

use crate::Error;

/// SQS's largest delay.
pub const MAX_DELAY_SECS: i64 = 900;

/// SQS's largest message, and largest batch.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// A job as an SQS message body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub kind: JobKind,
    /// JSON text of the job's payload.
    pub payload: String,
    /// Not to be done before (ms).
    pub not_before: i64,
    /// The tenant (the message group).
    pub tenant: String,
}

impl Message {
    pub fn of(job: &NewJob) -> Self {
        Message {
            id: job.id.clone(),
            kind: job.kind,
            payload: job.payload.clone(),
            not_before: job.not_before,
            tenant: job.tenant.clone(),
        }
    }

    pub fn parse(body: &str) -> Result<Self, Error> {
        serde_json::from_str(body).map_err(|e| Error::Malformed(format!("queue message: {e}")))
    }

    /// The delay to send it with at `now_ms`: whole seconds, rounded to
    /// the nearest (a consumer takes a message up to a second early as
    /// due), capped at 900.
    pub fn delay_secs(&self, now_ms: i64) -> i32 {
        let ms = (self.not_before - now_ms).max(0);
        ((ms + 500) / 1000).min(MAX_DELAY_SECS) as i32
    }
}

/// A message's body: its JSON text.
fn body(m: &Message) -> Result<String, Error> {
    serde_json::to_string(m).map_err(|e| Error::Malformed(e.to_string()))
}

/// Jobs as messages ready to send, checked against the size limit.
#[derive(Debug, Default)]
pub struct Outgoing(Vec<(Message, String)>);

/// The two queues.
#[derive(Clone)]
pub struct Queues {
    client: Client,
    runs_url: String,
    deliveries_url: String,
    /// Send `MessageGroupId` (fair queues). On by default; off for an
    /// emulator that refuses it on standard queues.
    pub fair: bool,
}

impl Queues {
    pub fn new(client: Client, runs_url: impl Into<String>, deliveries_url: impl Into<String>) -> Self {
        Queues { client, runs_url: runs_url.into(), deliveries_url: deliveries_url.into(), fair: true }
    }

    pub fn url(&self, kind: JobKind) -> &str {
        match kind {
            JobKind::Run => &self.runs_url,
            JobKind::Delivery => &self.deliveries_url,
        }
    }

    /// The jobs as message bodies, each serialised once; refuses the first
    /// that does not fit in a message.
    pub fn prepare(jobs: &[NewJob]) -> Result<Outgoing, Error> {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let m = Message::of(job);
            let b = body(&m)?;
            if b.len() > MAX_MESSAGE_BYTES {
                return Err(Error::TooLarge(format!(
                    "job {} is {} bytes, over SQS's {MAX_MESSAGE_BYTES}-byte message limit",
                    job.id,
                    b.len()
                )));
            }
            out.push((m, b));
        }
        Ok(Outgoing(out))
    }

    /// Sends jobs, each to its kind's queue ([`Queues::prepare`], then
    /// [`Queues::send_prepared`]).
    pub async fn send(&self, jobs: &[NewJob], now_ms: i64) -> Result<(), Error> {
        self.send_prepared(Self::prepare(jobs)?, now_ms).await
    }

    /// Sends prepared messages, each to its kind's queue, in batches of at
    /// most ten messages and 1 MiB.
    pub async fn send_prepared(&self, messages: Outgoing, now_ms: i64) -> Result<(), Error> {
        let (runs, deliveries): (Vec<_>, Vec<_>) = messages.0.into_iter().partition(|(m, _)| m.kind == JobKind::Run);
        for (kind, of_kind) in [(JobKind::Run, runs), (JobKind::Delivery, deliveries)] {
            let mut batch: Vec<(Message, String)> = Vec::new();
            let mut bytes = 0;
            for (m, b) in of_kind {
                if batch.len() == 10 || (!batch.is_empty() && bytes + b.len() > MAX_MESSAGE_BYTES) {
                    self.send_batch(kind, &std::mem::take(&mut batch), now_ms).await?;
                    bytes = 0;
                }
                bytes += b.len();
                batch.push((m, b));
            }
            if !batch.is_empty() {
                self.send_batch(kind, &batch, now_ms).await?;
            }
        }
        Ok(())
    }

    async fn send_batch(&self, kind: JobKind, messages: &[(Message, String)], now_ms: i64) -> Result<(), Error> {
        let mut entries = Vec::new();
        for (i, (m, body)) in messages.iter().enumerate() {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body.clone())
                .delay_seconds(m.delay_secs(now_ms));
            if self.fair {
                entry = entry.message_group_id(m.tenant.clone());
            }
            entries.push(entry.build().map_err(|e| Error::Malformed(e.to_string()))?);
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(self.url(kind))
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| Error::aws("SQS", "SendMessageBatch", e))?;
        if let Some(failed) = out.failed().first() {
            return Err(Error::Aws {
                service: "SQS",
                operation: "SendMessageBatch",
                message: format!(
                    "{} of {} messages refused, e.g. {}: {}",
                    out.failed().len(),
                    messages.len(),
                    failed.code(),
                    failed.message().unwrap_or("")
                ),
                transient: !failed.sender_fault(),
            });
        }
        Ok(())
    }

    /// A message received before its `not_before`: sends it again with the
    /// remaining delay. Returns `false` (nothing sent) when it is due.
    pub async fn postpone(&self, m: &Message, now_ms: i64) -> Result<bool, Error> {
        if m.not_before <= now_ms + 1000 {
            return Ok(false);
        }
        self.send_batch(m.kind, &[(m.clone(), body(m)?)], now_ms).await?;
        Ok(true)
    }
}

impl hookflow_core::ports::Queue for Queues {
    async fn enqueue(&self, jobs: Vec<NewJob>, now_ms: i64) -> Result<(), hookflow_core::ports::PortError> {
        Ok(self.send(&jobs, now_ms).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(not_before: i64) -> Message {
        Message { id: "d:1".into(), kind: JobKind::Delivery, payload: "{}".into(), not_before, tenant: "acme".into() }
    }

    #[test]
    fn delays_are_capped_and_rounded_up() {
        assert_eq!(msg(0).delay_secs(1_000), 0);
        assert_eq!(msg(1_400).delay_secs(1_000), 0);
        assert_eq!(msg(1_500).delay_secs(1_000), 1);
        assert_eq!(msg(5 * 3_600_000).delay_secs(0), 900);
        // A 5-hour wait takes 20 hops of at most 900 s.
        let (mut now, mut hops) = (0, 0);
        while msg(5 * 3_600_000).not_before > now + 1000 {
            now += i64::from(msg(5 * 3_600_000).delay_secs(now)) * 1000;
            hops += 1;
        }
        assert_eq!(hops, 20);
    }
}

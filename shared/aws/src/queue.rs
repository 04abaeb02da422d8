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
//!
//! **Order.** A job with a [`NewJob::group`] (a per-key ordered
//! subscription's delivery) goes to the third queue, `ordered`: a FIFO
//! queue whose message group is the job's group, so SQS hands out one
//! message of a group at a time, oldest first. Such a message stays in the
//! queue across its retries, keeping its place (the dispatcher holds its
//! state in the table and its place in the group by its visibility —
//! [`crate::store::Store::apply_ordered`]); FIFO queues take no
//! per-message delay, so nothing ordered is ever postponed by re-sending.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, SendMessageBatchRequestEntry,
};
use hookflow_core::commit::{JobKind, NewJob, Payload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// SQS's largest delay.
pub const MAX_DELAY_SECS: i64 = 900;

/// The longest a received message can be kept invisible (SQS: 12 hours),
/// less a minute for the time since it was received.
pub const MAX_VISIBILITY_SECS: i64 = 12 * 3600 - 60;

/// SQS's largest message, and largest batch.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// A job as an SQS message, its payload typed: what a function works on,
/// decoded once from a [`RawMessage`] ([`Message::parse`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub payload: Payload,
    /// Not to be done before (ms).
    pub not_before: i64,
    /// The tenant (the message group).
    pub tenant: String,
    /// The ordering group ([`NewJob::group`]): it goes to the FIFO queue.
    pub group: Option<String>,
}

impl Message {
    pub fn kind(&self) -> JobKind {
        self.payload.kind()
    }

    /// A message body, decoded.
    pub fn parse(body: &str) -> Result<Self, Error> {
        RawMessage::parse(body)?.decode()
    }
}

/// A message as its body (and an outbox) holds it: the job's JSON text
/// beside its kind. What is only passed on — a message sent on after an
/// early arrival, an outbox sent again — stays in this form and goes out
/// as it came: nothing is decoded that is not used, and a field a newer
/// version wrote survives the hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawMessage {
    pub id: String,
    pub kind: JobKind,
    pub payload: String,
    /// Not to be done before (ms).
    pub not_before: i64,
    /// The tenant (the message group).
    pub tenant: String,
    /// The ordering group ([`NewJob::group`]): it goes to the FIFO queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl RawMessage {
    /// A job to send: its payload encoded, once.
    pub fn of_job(job: &NewJob) -> Self {
        RawMessage {
            id: job.id.clone(),
            kind: job.kind(),
            payload: job.payload.text(),
            not_before: job.not_before,
            tenant: job.tenant.clone(),
            group: job.group.clone(),
        }
    }

    pub fn parse(body: &str) -> Result<Self, Error> {
        serde_json::from_str(body).map_err(|e| Error::Malformed(format!("queue message: {e}")))
    }

    /// The message, its payload decoded.
    pub fn decode(self) -> Result<Message, Error> {
        let payload = Payload::decode(self.kind, &self.payload)
            .map_err(|e| Error::Malformed(format!("message {}: its {} payload: {e}", self.id, self.kind.as_str())))?;
        Ok(Message { id: self.id, payload, not_before: self.not_before, tenant: self.tenant, group: self.group })
    }

    /// The queue it goes to.
    fn lane(&self) -> Lane {
        match (self.kind, &self.group) {
            (JobKind::Run, _) => Lane::Runs,
            (JobKind::Delivery, None) => Lane::Deliveries,
            (JobKind::Delivery, Some(_)) => Lane::Ordered,
        }
    }

    /// The delay to send it with at `now_ms`: whole seconds, rounded to
    /// the nearest (a consumer takes a message up to a second early as
    /// due), capped at 900.
    pub fn delay_secs(&self, now_ms: i64) -> i32 {
        let ms = (self.not_before - now_ms).max(0);
        ((ms + 500) / 1000).min(MAX_DELAY_SECS) as i32
    }
}

/// The three queues (as an index: [`Queues::send_prepared`] sorts
/// messages by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Runs = 0,
    Deliveries = 1,
    Ordered = 2,
}

/// `text` as a FIFO `MessageGroupId` or `MessageDeduplicationId`: itself
/// when SQS takes it (1 to 128 ASCII letters, digits and punctuation), its
/// SHA-256 in hex otherwise (a rendered key may hold anything).
pub fn fifo_id(text: &str) -> String {
    let fits = (1..=128).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
    if fits {
        return text.to_string();
    }
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A message's body: its JSON text.
fn body(m: &RawMessage) -> Result<String, Error> {
    serde_json::to_string(m).map_err(|e| Error::Malformed(e.to_string()))
}

/// Jobs as messages ready to send, checked against the size limit.
#[derive(Debug, Default)]
pub struct Outgoing(Vec<(RawMessage, String)>);

impl Outgoing {
    /// Messages already checked (an outbox sent again).
    pub fn of_messages(messages: &[RawMessage]) -> Result<Self, Error> {
        messages.iter().map(|m| Ok((m.clone(), body(m)?))).collect::<Result<_, _>>().map(Outgoing)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages (for an outbox).
    pub fn messages(&self) -> Vec<RawMessage> {
        self.0.iter().map(|(m, _)| m.clone()).collect()
    }

    /// The last message apart from the rest.
    pub fn split_last(mut self) -> (Outgoing, Outgoing) {
        let last = self.0.pop().into_iter().collect();
        (self, Outgoing(last))
    }
}

/// The queues.
#[derive(Clone)]
pub struct Queues {
    client: Client,
    runs_url: String,
    deliveries_url: String,
    /// The FIFO queue of ordered deliveries; without one, a grouped job is
    /// refused ([`Error::Config`]) rather than delivered out of order.
    ordered_url: Option<String>,
    /// Send `MessageGroupId` (fair queues). On by default; off for an
    /// emulator that refuses it on standard queues.
    pub fair: bool,
}

impl Queues {
    pub fn new(client: Client, runs_url: impl Into<String>, deliveries_url: impl Into<String>) -> Self {
        Queues {
            client,
            runs_url: runs_url.into(),
            deliveries_url: deliveries_url.into(),
            ordered_url: None,
            fair: true,
        }
    }

    /// With the FIFO queue of ordered deliveries.
    pub fn with_ordered(mut self, url: Option<String>) -> Self {
        self.ordered_url = url;
        self
    }

    /// Whether per-key ordered deliveries can be queued.
    pub fn orders(&self) -> bool {
        self.ordered_url.is_some()
    }

    fn lane_url(&self, lane: Lane) -> Result<&str, Error> {
        match lane {
            Lane::Runs => Ok(&self.runs_url),
            Lane::Deliveries => Ok(&self.deliveries_url),
            Lane::Ordered => self.ordered_url.as_deref().ok_or_else(|| {
                Error::Config("a per-key ordered delivery needs the FIFO queue: set HOOKFLOW_ORDERED_QUEUE_URL".into())
            }),
        }
    }

    /// The jobs as message bodies, each serialised once; refuses the first
    /// that does not fit in a message, or that has no queue here (a
    /// grouped job without the FIFO queue) — before anything is written
    /// or sent.
    pub fn prepare(&self, jobs: &[NewJob]) -> Result<Outgoing, Error> {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let m = RawMessage::of_job(job);
            self.lane_url(m.lane())?;
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
        self.send_prepared(self.prepare(jobs)?, now_ms).await
    }

    /// Sends prepared messages, each to its queue, in batches of at most
    /// ten messages and 1 MiB. Ordered messages keep their order: a FIFO
    /// batch is taken in entry order.
    pub async fn send_prepared(&self, messages: Outgoing, now_ms: i64) -> Result<(), Error> {
        let mut by_lane: [Vec<(RawMessage, String)>; 3] = Default::default();
        for (m, b) in messages.0 {
            by_lane[m.lane() as usize].push((m, b));
        }
        for (lane, of_lane) in [Lane::Runs, Lane::Deliveries, Lane::Ordered].into_iter().zip(by_lane) {
            let mut batch: Vec<(RawMessage, String)> = Vec::new();
            let mut bytes = 0;
            for (m, b) in of_lane {
                if batch.len() == 10 || (!batch.is_empty() && bytes + b.len() > MAX_MESSAGE_BYTES) {
                    self.send_batch(lane, &std::mem::take(&mut batch), now_ms).await?;
                    bytes = 0;
                }
                bytes += b.len();
                batch.push((m, b));
            }
            if !batch.is_empty() {
                self.send_batch(lane, &batch, now_ms).await?;
            }
        }
        Ok(())
    }

    async fn send_batch(&self, lane: Lane, messages: &[(RawMessage, String)], now_ms: i64) -> Result<(), Error> {
        let url = self.lane_url(lane)?;
        let mut entries = Vec::new();
        for (i, (m, body)) in messages.iter().enumerate() {
            let mut entry = SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body.clone());
            entry = match (&m.group, lane) {
                // FIFO: the group orders; the job id makes a redone
                // commit's copy a duplicate SQS drops (within 5 minutes).
                (Some(group), Lane::Ordered) => {
                    entry.message_group_id(fifo_id(group)).message_deduplication_id(fifo_id(&m.id))
                }
                _ if self.fair => entry.delay_seconds(m.delay_secs(now_ms)).message_group_id(m.tenant.clone()),
                _ => entry.delay_seconds(m.delay_secs(now_ms)),
            };
            entries.push(entry.build().map_err(|e| Error::Malformed(e.to_string()))?);
        }
        let out = self
            .client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| Error::aws("SQS", "SendMessageBatch", e))?;
        refused("SendMessageBatch", out.failed(), messages.len())
    }

    /// A message received before its `not_before`: sends it again with the
    /// remaining delay. Returns `false` (nothing sent) when it is due.
    pub async fn postpone(&self, m: &RawMessage, now_ms: i64) -> Result<bool, Error> {
        if is_due(m.not_before, now_ms) {
            return Ok(false);
        }
        self.send_batch(m.lane(), &[(m.clone(), body(m)?)], now_ms).await?;
        Ok(true)
    }
}

impl Queues {
    /// Keeps messages of the ordered queue invisible for the given seconds
    /// each (receipt handle, seconds; 0 makes one visible at once), capped
    /// at SQS's 12 hours.
    pub async fn set_visibility(&self, messages: &[(String, i64)]) -> Result<(), Error> {
        self.change_visibility(Lane::Ordered, messages).await
    }

    /// Makes messages of the deliveries queue (receipt handles) visible
    /// again at once: handed back unstarted.
    pub async fn hand_back(&self, receipts: &[String]) -> Result<(), Error> {
        let messages: Vec<(String, i64)> = receipts.iter().map(|r| (r.clone(), 0)).collect();
        self.change_visibility(Lane::Deliveries, &messages).await
    }

    async fn change_visibility(&self, lane: Lane, messages: &[(String, i64)]) -> Result<(), Error> {
        let url = self.lane_url(lane)?;
        for chunk in messages.chunks(10) {
            let mut entries = Vec::new();
            for (i, (handle, secs)) in chunk.iter().enumerate() {
                entries.push(
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .visibility_timeout((*secs).clamp(0, MAX_VISIBILITY_SECS) as i32)
                        .build()
                        .map_err(|e| Error::Malformed(e.to_string()))?,
                );
            }
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| Error::aws("SQS", "ChangeMessageVisibilityBatch", e))?;
            refused("ChangeMessageVisibilityBatch", out.failed(), chunk.len())?;
        }
        Ok(())
    }
}

/// A batch call's entries SQS refused (`failed` of `of`), as an error.
fn refused(operation: &'static str, failed: &[BatchResultErrorEntry], of: usize) -> Result<(), Error> {
    let Some(first) = failed.first() else { return Ok(()) };
    Err(Error::Aws {
        service: "SQS",
        operation,
        message: format!(
            "{} of {of} entries refused, e.g. {}: {}",
            failed.len(),
            first.code(),
            first.message().unwrap_or("")
        ),
        transient: !first.sender_fault(),
    })
}

/// Whether a job due at `not_before` is due at `now_ms`: a consumer takes
/// it up to a second early (SQS delays are whole seconds).
pub fn is_due(not_before: i64, now_ms: i64) -> bool {
    not_before <= now_ms + 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(not_before: i64) -> RawMessage {
        RawMessage {
            id: "d:1".into(),
            kind: JobKind::Delivery,
            payload: "{}".into(),
            not_before,
            tenant: "acme".into(),
            group: None,
        }
    }

    #[test]
    fn fifo_ids_are_the_text_when_sqs_takes_it_else_its_hash() {
        assert_eq!(fifo_id("sub_1:customer-42"), "sub_1:customer-42");
        for odd in ["sub_1:Zoë", "sub_1:a b", "", &"k".repeat(129)] {
            let id = fifo_id(odd);
            assert_eq!(id.len(), 64, "{odd:?}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(fifo_id("sub_1:a b"), fifo_id("sub_1:a  b"));
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

//! An SQS batch as the Lambda event source mapping hands it over: each
//! message on its own task, concurrently; the answer lists only the
//! messages that failed (`ReportBatchItemFailures`), so one poisoned
//! message never fails its neighbours. It is received again, and after the
//! queue's `maxReceiveCount` moves to the DLQ.
//!
//! A batch of the ordered (FIFO) queue goes through [`each_in_order`]
//! instead: one message group after another would be slow and all at once
//! would break the order, so groups go concurrently and each group's
//! messages one after another.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use hookflow_core::engine::Level;
use serde_json::json;
use tokio::task::JoinSet;

use crate::Error;
use crate::queue::Queues;

/// The ARN of the queue `event` comes from.
pub fn source(event: &SqsEvent) -> Option<&str> {
    event.records.first().and_then(|r| r.event_source_arn.as_deref())
}

/// Whether `event` comes from a FIFO queue (its source's name ends in
/// `.fifo`).
pub fn is_ordered(event: &SqsEvent) -> bool {
    source(event).is_some_and(|arn| arn.ends_with(".fifo"))
}

/// What became of one message of an ordered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Done with: the message goes.
    Done,
    /// To be handled again after this long: the message stays, and holds
    /// its group until then.
    Later(Duration),
}

/// Runs `one(body)` for the messages of an ordered batch: each message
/// group on its own task, its messages one after another in batch order.
/// The first message of a group that is not done (an error, a panic, or
/// [`Handled::Later`]) stops its group: it and every later message of the
/// group are reported failed. A `Later` one is kept invisible for its
/// wait; the later ones are made visible at once, so the group waits on its
/// first message only (SQS hands out nothing of a group while one of its
/// messages is in flight). One that failed keeps the queue's visibility
/// timeout.
pub async fn each_in_order<F, Fut>(
    event: SqsEvent,
    log: &hookflow_io::Logger,
    queues: &Queues,
    one: F,
) -> SqsBatchResponse
where
    F: Fn(Received) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Handled, Error>> + Send + 'static,
{
    let mut groups: Vec<(String, Vec<SqsMessage>)> = Vec::new();
    for record in event.records {
        let group = record.attributes.get("MessageGroupId").cloned().unwrap_or_default();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, records)) => records.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    let mut tasks = JoinSet::new();
    let mut ids = HashMap::new();
    for (_, records) in groups {
        let all: Vec<String> = records.iter().map(|r| r.message_id.clone().unwrap_or_default()).collect();
        let (one, log, queues) = (one.clone(), log.clone(), queues.clone());
        let handle = tasks.spawn(async move {
            let mut failed = Vec::new();
            let mut visibility = Vec::new();
            let mut stopped = false;
            for r in records {
                let id = r.message_id.clone().unwrap_or_default();
                let receipt = r.receipt_handle.clone().unwrap_or_default();
                if stopped {
                    failed.push(id);
                    visibility.push((receipt, 0));
                    continue;
                }
                match one(Received::of(r)).await {
                    Ok(Handled::Done) => continue,
                    Ok(Handled::Later(wait)) => visibility.push((receipt, wait.as_millis().div_ceil(1000) as i64)),
                    Err(e) => failed_message(&log, &id, &e.to_string()),
                }
                failed.push(id);
                stopped = true;
            }
            if let Err(e) = queues.set_visibility(&visibility).await {
                // They come back after the queue's visibility timeout.
                log.log(Level::Warn, "could not set when held messages come back", json!({"error": e.to_string()}));
            }
            failed
        });
        ids.insert(handle.id(), all);
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next_with_id().await {
        match done {
            Ok((_, failed)) => failures.extend(failed),
            Err(e) => {
                let all = ids.remove(&e.id()).unwrap_or_default();
                for id in &all {
                    failed_message(log, id, &format!("the task failed: {e}"));
                }
                failures.extend(all);
            }
        }
    }
    response(failures)
}

/// Logs that message `id` failed.
fn failed_message(log: &hookflow_io::Logger, id: &str, error: &str) {
    log.log(Level::Error, "message failed; SQS will deliver it again", json!({"message_id": id, "error": error}));
}

/// The answer naming the `failed` messages.
fn response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

/// One message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub body: String,
    /// How many times SQS has handed it out (`ApproximateReceiveCount`):
    /// 1 the first time; more when an earlier try did not finish.
    pub receives: u32,
    /// Its receipt handle (to make it visible again at once).
    pub receipt: String,
    /// When it was sent to its queue (`SentTimestamp`, ms): the queue's
    /// retention counts from then. `None` when the event does not say.
    pub sent_at: Option<i64>,
}

impl Received {
    fn of(record: SqsMessage) -> Self {
        let number = |k: &str| record.attributes.get(k).and_then(|n| n.parse::<i64>().ok());
        let receives = number("ApproximateReceiveCount").map_or(1, |n| n.clamp(1, u32::MAX as i64) as u32);
        let sent_at = number("SentTimestamp");
        Received {
            body: record.body.unwrap_or_default(),
            receives,
            receipt: record.receipt_handle.unwrap_or_default(),
            sent_at,
        }
    }
}

/// Runs `one(message)` for every message of `event` concurrently and
/// reports the failures (an error or a panic) by message id, logging each.
pub async fn each_message<F, Fut>(event: SqsEvent, log: &hookflow_io::Logger, one: F) -> SqsBatchResponse
where
    F: Fn(Received) -> Fut,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut ids = HashMap::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let handle = tasks.spawn(one(Received::of(record)));
        ids.insert(handle.id(), id);
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next_with_id().await {
        let (task, error) = match done {
            Ok((task, Ok(()))) => (task, None),
            Ok((task, Err(Error::NotStarted(why)))) => {
                // Not a failure of the message: it was not tried.
                let message_id = ids.get(&task).cloned().unwrap_or_default();
                log.log(
                    Level::Info,
                    "message not started; back to the queue",
                    json!({"message_id": message_id, "why": why}),
                );
                failures.push(message_id);
                continue;
            }
            Ok((task, Err(e))) => (task, Some(e.to_string())),
            Err(e) => (e.id(), Some(format!("the task failed: {e}"))),
        };
        if let Some(error) = error {
            let message_id = ids.get(&task).cloned().unwrap_or_default();
            failed_message(log, &message_id, &error);
            failures.push(message_id);
        }
    }
    response(failures)
}

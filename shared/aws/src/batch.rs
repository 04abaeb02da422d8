//! An SQS batch as the Lambda event source mapping hands it over: each
//! message on its own task, concurrently; the answer lists only the
//! messages that failed (`ReportBatchItemFailures`), so one poisoned
//! message never fails its neighbours. It is received again, and after the
//! queue's `maxReceiveCount` moves to the DLQ.

use std::collections::HashMap;
use std::future::Future;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::json;
use tokio::task::JoinSet;

use crate::Error;

/// Runs `one(body)` for every message of `event` concurrently and reports
/// the failures (an error or a panic) by message id, logging each.
pub async fn each_message<F, Fut>(event: SqsEvent, log: &hookflow_io::Logger, one: F) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), Error>> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    let mut ids = HashMap::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let handle = tasks.spawn(one(record.body.unwrap_or_default()));
        ids.insert(handle.id(), id);
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next_with_id().await {
        let (task, error) = match done {
            Ok((task, Ok(()))) => (task, None),
            Ok((task, Err(e))) => (task, Some(e.to_string())),
            Err(e) => (e.id(), Some(format!("the task failed: {e}"))),
        };
        if let Some(error) = error {
            let message_id = ids.get(&task).cloned().unwrap_or_default();
            log.log(
                "error",
                "message failed; SQS will deliver it again",
                json!({"message_id": message_id, "error": error}),
            );
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            failures.push(failure);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

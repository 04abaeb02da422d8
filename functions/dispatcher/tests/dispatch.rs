//! The dispatcher's handler against moto's server (DynamoDB, SQS, Secrets
//! Manager) and real HTTP receivers on 127.0.0.1. The test plays the SQS
//! event source mapping: it receives from the queue, hands the batch to the
//! handler, and deletes what the handler did not report as failed.

mod common;

use common::{delivery, world};
use hookflow_aws::testing::Receiver;
use hookflow_core::commit::NewJob;

#[tokio::test]
async fn a_poisoned_message_fails_alone_and_the_others_are_delivered_signed_with_the_secret() {
    let w = world("dp").await;
    let (receiver, url) = Receiver::start(&[], "ok").await;
    let jobs: Vec<NewJob> = (1..=3).map(|n| delivery(&url, n)).collect();
    w.dispatcher.store.queues.send(&jobs, 0).await.unwrap();
    w.send_raw("this is not a job").await;
    let (received, failed) = w.poll().await;
    assert_eq!((received, failed), (4, 1), "only the poisoned message fails");
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3);
    for req in &seen {
        let lower = req.to_ascii_lowercase();
        assert!(lower.contains("authorization: bearer tok-secret-1"), "{req}");
        assert!(lower.contains("webhook-signature: v1,"), "{req}");
    }
    // The attempts are in the request log; no secret value is stored.
    let items = w.ddb.scan().table_name(&w.p.table).send().await.unwrap();
    let text = format!("{:?}", items.items());
    assert_eq!(text.matches("\"attempt\"").count(), 3, "three attempt entries");
    assert!(!text.contains("tok-SECRET-1") && !text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
}

#[tokio::test]
async fn a_500_is_retried_with_the_same_webhook_id_through_the_queue() {
    let w = world("dr").await;
    let (receiver, url) = Receiver::start(&[500], "ok").await;
    w.dispatcher.store.queues.send(&[delivery(&url, 7)], 0).await.unwrap();
    assert_eq!(w.poll().await, (1, 0), "a failed attempt is not a failed message: it is rescheduled");
    let queued =
        w.sqs.receive_message().queue_url(&w.p.deliveries_queue_url).visibility_timeout(0).send().await.unwrap();
    let queued = queued.messages.unwrap_or_default();
    assert_eq!(queued.len(), 1, "the retry is queued");
    for m in queued {
        let body = m.body().unwrap_or_default();
        assert!(body.contains("partner_token") && !body.contains("tok-SECRET-1"), "{body}");
        assert!(!body.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{body}");
    }
    // The retry is a new message, due after the 100 ms schedule.
    let mut polls = 0;
    while receiver.seen().len() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        w.poll().await;
        polls += 1;
        assert!(polls < 25, "the retry never came");
    }
    let ids: Vec<String> = receiver
        .seen()
        .iter()
        .map(|r| r.lines().find(|l| l.to_ascii_lowercase().starts_with("webhook-id:")).unwrap().to_string())
        .collect();
    assert_eq!(ids[0], ids[1], "the retry keeps its webhook-id");
    let m = w.sqs.receive_message().queue_url(&w.p.deliveries_queue_url).send().await.unwrap();
    assert!(m.messages.unwrap_or_default().is_empty(), "nothing left after the 200");
}

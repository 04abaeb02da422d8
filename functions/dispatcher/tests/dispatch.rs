//! The dispatcher's handler against moto's server (DynamoDB, SQS, Secrets
//! Manager) and real HTTP receivers on 127.0.0.1. The test plays the SQS
//! event source mapping: it receives from the queue, hands the batch to the
//! handler, and deletes what the handler did not report as failed.

use std::sync::Arc;

use dispatcher::Dispatcher;
use hookflow_aws::provision;
use hookflow_aws::queue::Queues;
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_aws::table::Table;
use hookflow_aws::testing::{Receiver, poll, sdk};
use hookflow_core::commit::{DeliveryJob, NewJob};
use hookflow_core::run::{Effect, InboundRequest, Input, Run, advance};
use hookflow_core::ssrf::TargetPolicy;
use hookflow_io::{Format, Logger, Sender};

fn flow_text(url: &str) -> String {
    format!(
        r#"
id: partner-sync
tenant: acme
trigger: {{ type: webhook, path: partner/in }}
steps:
  - id: deliver
    type: http
    url: {url}
    headers: {{ Authorization: "Bearer {{{{ secrets.partner_token }}}}" }}
    body: {{ json: {{ id: "{{{{ trigger.body.id }}}}" }} }}
    retry: {{ schedule: [100ms] }}
    sign: {{ secret: signing_key }}
"#
    )
}

fn delivery(url: &str, n: u32) -> NewJob {
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), &flow_text(url)).unwrap();
    let request = InboundRequest { method: "POST".into(), body: format!(r#"{{"id": {n}}}"#), ..Default::default() };
    let run = Run::new(&flow.flow, format!("run_{n}_{}", std::process::id()), format!("evt_{n}"), &request);
    let (_, effects) = advance(&flow, run, Input::Start).unwrap();
    let d = effects.into_iter().find_map(|e| if let Effect::Send(d) = e { Some(*d) } else { None }).unwrap();
    NewJob::delivery(&DeliveryJob { delivery: d, attempts: 0, first_at: 0 }, 0)
}

struct World {
    dispatcher: Arc<Dispatcher>,
    sqs: aws_sdk_sqs::Client,
    p: provision::Provisioned,
    ddb: aws_sdk_dynamodb::Client,
}

async fn world(prefix: &str) -> World {
    let conf = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let prefix = format!("{prefix}{}", std::process::id());
    let p = provision::create(&ddb, &sqs, &prefix, 5).await.unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let secrets_prefix = format!("{prefix}/");
    sm.create_secret()
        .name(format!("{secrets_prefix}partner_token"))
        .secret_string("tok-SECRET-1")
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name(format!("{secrets_prefix}signing_key"))
        .secret_string("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .send()
        .await
        .unwrap();
    let dispatcher = Arc::new(Dispatcher {
        store: Store {
            table: Table::new(ddb.clone(), &p.table, 14),
            queues: Queues::new(sqs.clone(), &p.runs_queue_url, &p.deliveries_queue_url),
        },
        secrets: Secrets::new(sm, &secrets_prefix),
        sender: Sender::new(TargetPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()])).unwrap(),
        logger: Logger::new(Format::Json, std::iter::empty()),
    });
    World { dispatcher, sqs, p, ddb }
}

impl World {
    /// One poll of the event source mapping.
    async fn poll(&self) -> (usize, usize) {
        poll(&self.sqs, &self.p.deliveries_queue_url, |event| self.dispatcher.handle(event)).await
    }

    async fn send_raw(&self, body: &str) {
        self.sqs.send_message().queue_url(&self.p.deliveries_queue_url).message_body(body).send().await.unwrap();
    }
}

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

//! The executor's handler against moto's server: a run input from the runs
//! queue advances the run stored in DynamoDB and queues its delivery; the
//! same message delivered twice does not advance the run twice, and sends
//! again what its commit queued (the same delivery, one webhook-id).
//!
//! Two copies handled *at the same time* are kept apart by DynamoDB's
//! conditional write (a run is written only over an older revision). moto
//! does not make a transaction atomic against a concurrent one, so the
//! copies are handed over one after the other here, and the conditional
//! write is checked on its own: a second write of the same revision loses.

use std::sync::Arc;

use hookflow_aws::executor::Executor;
use hookflow_aws::provision;
use hookflow_aws::queue::{Message, Queues, RawMessage};
use hookflow_aws::store::Store;
use hookflow_aws::table::Table;
use hookflow_aws::testing::{poll_at_most, sdk};
use hookflow_core::commit::{Commit, JobKind, NewJob};
use hookflow_core::run::{InboundRequest, Input, Run};
use hookflow_io::{Format, Logger};

const FLOW: &str = r#"
id: partner-sync
tenant: acme
trigger: { type: webhook, path: partner/in }
steps:
  - id: total
    type: set
    vars: { total: "{{ trigger.body.qty * 2 }}" }
  - id: deliver
    type: http
    url: https://partner.example/hook
    body: { json: { total: "{{ vars.total }}" } }
"#;

/// A provisioned table and queues with the flow applied, and an executor
/// on them.
struct World {
    sqs: aws_sdk_sqs::Client,
    p: provision::Provisioned,
    table: Table,
    flow: hookflow_core::CompiledFlow,
    executor: Arc<Executor>,
}

async fn world(prefix: &str) -> World {
    let conf = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let p = provision::create(&ddb, &sqs, &format!("{prefix}{}", std::process::id()), 5).await.unwrap();
    let table = Table::new(ddb, &p.table, 14);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    table.put_flow(&flow, FLOW, 0).await.unwrap();
    let executor = Arc::new(Executor {
        store: Store {
            table: table.clone(),
            queues: Queues::new(sqs.clone(), &p.runs_queue_url, &p.deliveries_queue_url),
        },
        logger: Logger::new(Format::Json, std::iter::empty()),
    });
    World { sqs, p, table, flow, executor }
}

#[tokio::test]
async fn a_start_advances_the_run_once_and_queues_its_delivery() {
    let World { sqs, p, table, flow, executor } = world("ex").await;

    let request = InboundRequest { method: "POST".into(), body: r#"{"qty": 21}"#.into(), ..Default::default() };
    let run = Run::new(&flow.flow, "run_ex_1", "evt_ex_1", &request);
    let mut commit = Commit::default();
    commit.run(&run);
    table.write(&commit, 0).await.unwrap();
    let start = NewJob::run("acme", &run.id, "start", Input::Start, 0);
    executor.store.queues.send(&[start.clone(), start], 0).await.unwrap();

    // The same start, received twice (at-least-once), one after the other.
    let mut handled = 0;
    while handled < 2 {
        let (received, failed) = poll_at_most(&sqs, &p.runs_queue_url, 1, |e| executor.handle(e)).await;
        assert_eq!(failed, 0, "a duplicate start does not fail");
        handled += received;
    }
    let stored = table.load_run(&run.id).await.unwrap().unwrap();
    assert!(
        matches!(&stored.status, hookflow_core::run::RunStatus::Waiting { step, .. } if step == "deliver"),
        "{:?}",
        stored.status
    );
    assert_eq!(stored.revision, 1, "one start applied");
    assert_eq!(stored.vars["total"], 42);
    let got = sqs
        .receive_message()
        .queue_url(&p.deliveries_queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    // The second copy found the start applied by it: it sends the run's
    // outbox again (a copy cannot be told from the message back after a
    // send that failed) — the same delivery, so one webhook-id.
    assert_eq!(got.len(), 2, "the delivery, and the copy's re-send of it");
    let ids: Vec<String> = got.iter().map(|m| Message::parse(m.body().unwrap()).unwrap().id).collect();
    assert_eq!(ids[0], ids[1], "one delivery id: {ids:?}");
    let m = Message::parse(got[0].body().unwrap()).unwrap();
    assert_eq!(m.kind(), JobKind::Delivery);
    let body = m.payload.as_delivery().unwrap().delivery.request.body.clone().unwrap_or_default();
    assert!(body.contains(r#""total":42"#), "{body}");
    let log = table
        .run_entries(&run.id, hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock))
        .await
        .unwrap();
    assert!(log.iter().any(|e| e.kind == hookflow_core::commit::EntryKind::Step), "{log:?}");

    // The conditional write: the same revision written again loses, and
    // nothing of its transaction is written.
    let mut again = Commit::default();
    again.run(&stored);
    again.log.push(hookflow_core::commit::LogEntry::for_run(
        &stored,
        1,
        hookflow_core::commit::EntryKind::Step,
        "again",
        serde_json::json!({}),
    ));
    let err = table.write(&again, 1).await.unwrap_err();
    assert!(matches!(err, hookflow_aws::Error::Conflict(_)), "{err}");
    let after = table
        .run_entries(&run.id, hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock))
        .await
        .unwrap();
    assert_eq!(after.len(), log.len(), "the losing transaction wrote its log entry");
}

/// The start as the event source mapping hands it over, received `receives`
/// times.
fn received(body: &str, receives: u32) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
    m.message_id = Some(format!("m{receives}"));
    m.body = Some(body.to_string());
    m.attributes.insert("ApproximateReceiveCount".into(), receives.to_string());
    let mut e = aws_lambda_events::event::sqs::SqsEvent::default();
    e.records = vec![m];
    e
}

#[tokio::test]
async fn a_start_whose_delivery_was_never_queued_queues_it_when_its_message_comes_back() {
    let World { sqs, p, table, flow, executor } = world("ey").await;
    let request = InboundRequest { method: "POST".into(), body: r#"{"qty": 1}"#.into(), ..Default::default() };
    let run = Run::new(&flow.flow, "run_ey_1", "evt_ey_1", &request);
    let mut commit = Commit::default();
    commit.run(&run);
    table.write(&commit, 0).await.unwrap();
    let body =
        serde_json::to_string(&RawMessage::of_job(&NewJob::run("acme", &run.id, "start", Input::Start, 0))).unwrap();
    let deliveries = || async {
        let got = sqs.receive_message().queue_url(&p.deliveries_queue_url).max_number_of_messages(10).send().await;
        got.unwrap().messages.unwrap_or_default()
    };

    // The start is applied and its delivery sent; the delivery is then lost
    // to the run (taken off the queue here, as a send that failed after
    // the table write would never have put it there).
    assert!(executor.handle(received(&body, 1)).await.batch_item_failures.is_empty());
    let first = deliveries().await;
    assert_eq!(first.len(), 1);
    // The message back after a try that did not finish (or moved back from
    // the DLQ, with its receive count anew): the run's outbox, made by this
    // start, is sent again — the same delivery.
    assert!(executor.handle(received(&body, 1)).await.batch_item_failures.is_empty());
    let again = deliveries().await;
    assert_eq!(again.len(), 1, "the delivery queued again");
    let (a, b) = (Message::parse(first[0].body().unwrap()).unwrap(), Message::parse(again[0].body().unwrap()).unwrap());
    assert_eq!((a.id, a.payload), (b.id, b.payload), "the same delivery (same webhook-id)");
    assert_eq!(table.load_run(&run.id).await.unwrap().unwrap().revision, 1, "the run did not start twice");
}

#[tokio::test]
async fn a_run_goes_on_with_the_flow_version_it_started_on() {
    let World { sqs, p, table, executor, .. } = world("ev").await;
    let v1 = table.by_id("acme", "partner-sync").await.unwrap().unwrap();
    assert_eq!(v1.version, "v1", "the table's number");
    // The flow is edited (a new version is current) while runs wait.
    let edited = FLOW.replace("https://partner.example/hook", "https://edited.example/hook");
    let v2 = hookflow_core::load_flow("partner-sync.yaml".as_ref(), &edited).unwrap();
    assert_eq!(table.put_flow(&v2, &edited, 1).await.unwrap(), 2);

    let request = InboundRequest { method: "POST".into(), body: r#"{"qty": 1}"#.into(), ..Default::default() };
    let accepted = hookflow_core::inbound::accept(&v1, &request, ("run_ev_0", "evt_ev_0"), 0, None).run;
    assert_eq!(accepted.flow_version, "v1", "a run records the version it starts on");
    let mut started = Run::new(&v1.flow, "run_ev_1", "evt_ev_1", &request);
    started.flow_version.clone_from(&v1.version);
    // A run stored before versions were recorded goes on with the current one.
    let unversioned = Run::new(&v1.flow, "run_ev_2", "evt_ev_2", &request);
    for run in [&started, &unversioned] {
        let mut commit = Commit::default();
        commit.run(run);
        table.write(&commit, 0).await.unwrap();
        executor.store.queues.send(&[NewJob::run("acme", &run.id, "start", Input::Start, 0)], 0).await.unwrap();
    }
    let mut handled = 0;
    while handled < 2 {
        let (received, failed) = poll_at_most(&sqs, &p.runs_queue_url, 2, |e| executor.handle(e)).await;
        assert_eq!(failed, 0);
        handled += received;
    }
    let mut urls = std::collections::BTreeMap::new();
    while urls.len() < 2 {
        let got = sqs.receive_message().queue_url(&p.deliveries_queue_url).max_number_of_messages(10).send().await;
        for m in got.unwrap().messages.unwrap_or_default() {
            let m = Message::parse(m.body().unwrap()).unwrap();
            let job = m.payload.as_delivery().unwrap().clone();
            urls.insert(job.delivery.run_id.clone(), serde_json::to_value(&job.delivery.request.url).unwrap());
        }
    }
    assert_eq!(urls["run_ev_1"], "https://partner.example/hook", "the version it started on");
    assert_eq!(urls["run_ev_2"], "https://edited.example/hook", "the current version");
}

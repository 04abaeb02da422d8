//! The executor's handler against moto's server: a run input from the runs
//! queue advances the run stored in DynamoDB and queues its delivery; the
//! same message delivered twice changes nothing the second time.
//!
//! Two copies handled *at the same time* are kept apart by DynamoDB's
//! conditional write (a run is written only over an older revision). moto
//! does not make a transaction atomic against a concurrent one, so the
//! copies are handed over one after the other here, and the conditional
//! write is checked on its own: a second write of the same revision loses.

use std::sync::Arc;

use executor::Executor;
use hookflow_aws::provision;
use hookflow_aws::queue::{Message, Queues};
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

#[tokio::test]
async fn a_start_advances_the_run_once_and_queues_its_delivery() {
    let conf = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let p = provision::create(&ddb, &sqs, &format!("ex{}", std::process::id()), 5).await.unwrap();
    let table = Table::new(ddb.clone(), &p.table, 14);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    table.put_flow(&flow, FLOW, 0).await.unwrap();
    let executor = Arc::new(Executor {
        store: Store {
            table: table.clone(),
            queues: Queues::new(sqs.clone(), &p.runs_queue_url, &p.deliveries_queue_url),
        },
        logger: Logger::new(Format::Json, std::iter::empty()),
    });

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
        assert_eq!(failed, 0, "a duplicate start is dropped, not failed");
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
    assert_eq!(got.len(), 1, "one delivery, though the start came twice");
    let m = Message::parse(got[0].body().unwrap()).unwrap();
    assert_eq!(m.kind, JobKind::Delivery);
    assert!(m.payload.contains(r#"\"total\":42"#), "{}", m.payload);
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

//! The AWS adapters against moto's server (the AWS API emulator from PyPI,
//! `moto[server]`), started on a free loopback port.
//!
//! `scripts/test` installs moto into `.venv`; set `MOTO_ENDPOINT` to use a
//! server already running instead.

use std::time::Duration;

use hookflow_aws::provision::{self, Provisioned};
use hookflow_aws::queue::{Message, Queues, RawMessage};
use hookflow_aws::secrets::Secrets;
use hookflow_aws::table::{Claim, Table};
use hookflow_aws::testing::sdk;
use hookflow_core::commit::{Commit, DeliveryJob, JobKind, LogEntry, NewJob, Payload};
use hookflow_core::ports::SecretStore;
use hookflow_core::run::{InboundRequest, Input, Reply, Run};

/// A fresh set of resources under a unique prefix.
async fn setup(max_receives: u32) -> (aws_config::SdkConfig, Provisioned) {
    let conf = sdk().await;
    let prefix = format!("t{}", uuid_like());
    let p = provision::create(
        &aws_sdk_dynamodb::Client::new(&conf),
        &aws_sdk_sqs::Client::new(&conf),
        &prefix,
        max_receives,
    )
    .await
    .expect("provisioning in moto");
    (conf, p)
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}x{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

const FLOW: &str = r#"
id: partner-sync
tenant: acme
trigger: { type: webhook, path: partner/in }
steps:
  - id: deliver
    type: http
    url: https://partner.example/hook
    headers: { Authorization: "Bearer {{ secrets.partner_token }}" }
    body: { json: { id: "{{ trigger.body.id }}" } }
"#;

fn run_of(flow: &hookflow_core::CompiledFlow) -> Run {
    let request = InboundRequest {
        method: "POST".into(),
        path: "/hooks/acme/partner/in".into(),
        headers: Default::default(),
        query: Default::default(),
        body: r#"{"id": 7}"#.into(),
        source_ip: "192.0.2.1".into(),
        received_at: "2026-11-23T00:00:00.000Z".into(),
    };
    Run::new(&flow.flow, format!("run_{}", uuid_like()), "evt_1", &request)
}

#[tokio::test]
async fn flows_are_versioned_and_found_by_route() {
    let (conf, p) = setup(5).await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    assert_eq!(table.put_flow(&flow, FLOW, now_ms()).await.unwrap(), 1);
    assert_eq!(table.put_flow(&flow, FLOW, now_ms()).await.unwrap(), 2);
    let found = table.by_route("acme", "/partner/in/").await.unwrap().expect("route found");
    assert_eq!(found.flow.id, "partner-sync");
    assert!(found.file.to_string_lossy().contains("@v2"), "{}", found.file.display());
    assert!(table.by_route("acme", "other").await.unwrap().is_none());
    assert!(table.by_route("other-tenant", "partner/in").await.unwrap().is_none());
    assert_eq!(table.by_id("acme", "partner-sync").await.unwrap().unwrap().flow.id, "partner-sync");

    // Another flow may not take the route.
    let thief = FLOW.replace("id: partner-sync", "id: thief");
    let thief_flow = hookflow_core::load_flow("thief.yaml".as_ref(), &thief).unwrap();
    let e = table.put_flow(&thief_flow, &thief, now_ms()).await.unwrap_err();
    assert!(e.to_string().contains("belongs to another flow"), "{e}");
}

#[tokio::test]
async fn commit_stores_run_and_log_and_cuts_oversized_detail() {
    let (conf, p) = setup(5).await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let run = run_of(&flow);
    let (run, effects) = hookflow_core::run::advance(&flow, run, Input::Start).unwrap();
    let mut commit = Commit::default();
    commit.run(&run);
    let now = now_ms();
    for (i, e) in effects.iter().enumerate() {
        if let hookflow_core::run::Effect::Log(ev) = e {
            commit.log.push(LogEntry::for_run(
                &run,
                now + i as i64,
                hookflow_core::commit::EntryKind::Step,
                &ev.decision,
                serde_json::to_value(ev).unwrap(),
            ));
        }
    }
    commit.log.push(LogEntry::for_run(
        &run,
        now - 1,
        hookflow_core::commit::EntryKind::Inbound,
        "accepted",
        serde_json::json!({"big": "x".repeat(400 * 1024)}),
    ));
    table.write(&commit, now_ms()).await.unwrap();

    let loaded = table.load_run(&run.id).await.unwrap().expect("run stored");
    assert_eq!(loaded.id, run.id);
    let log = table.run_entries(&run.id, now_ms()).await.unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    // Oldest first; the oversized detail is cut and marked, not dropped.
    assert_eq!(log[0].kind, hookflow_core::commit::EntryKind::Inbound);
    assert_eq!(log[0].detail["truncated"], true);
    assert_eq!(log[1].kind, hookflow_core::commit::EntryKind::Step);
}

#[tokio::test]
async fn a_commit_of_more_than_100_items_is_written_in_transactions_of_100() {
    let (conf, p) = setup(5).await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let run = run_of(&flow);
    let mut commit = Commit::default();
    commit.run(&run);
    let now = now_ms();
    for i in 0..250 {
        commit.log.push(LogEntry::for_run(
            &run,
            now + i,
            hookflow_core::commit::EntryKind::Step,
            "ok",
            serde_json::json!({"n": i}),
        ));
    }
    table.write(&commit, now_ms()).await.unwrap();
    let log = table.run_entries(&run.id, now_ms()).await.unwrap();
    assert_eq!(log.len(), 250);
    assert!(log.iter().enumerate().all(|(i, e)| e.detail["n"] == i), "every entry, in order");
}

/// A publish's commit over 100 items goes in transactions of 100, the
/// event's item last: when that last one fails (here its id is live), the
/// earlier ones are written but nothing is sent, and the error is the
/// caller's (a 5xx, or `duplicate` as here) — no delivery of a publish that
/// did not take.
#[tokio::test]
async fn a_large_commit_whose_last_transaction_fails_sends_nothing() {
    use hookflow_core::commit::EventRow;
    use hookflow_core::subscription::NewEvent;

    let (conf, p) = setup(5).await;
    let store = store_of(&conf, &p);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let now = now_ms();
    let event = NewEvent {
        kind: "big.one".into(),
        id: Some("e-big".into()),
        tenant: Some("acme".into()),
        ..Default::default()
    }
    .into_event(now)
    .unwrap();
    let window = Duration::from_secs(600);
    let first = Commit { event: Some(EventRow::of(&event, window)), ..Default::default() };
    store.apply(first, now).await.unwrap();
    // The same id again, with 250 log entries and a delivery to send.
    let mut big =
        Commit { event: Some(EventRow::of(&event, window)), jobs: vec![delivery_job(&flow)], ..Default::default() };
    let run = run_of(&flow);
    for i in 0..250 {
        big.log.push(LogEntry::for_run(
            &run,
            now + i,
            hookflow_core::commit::EntryKind::Step,
            "ok",
            serde_json::json!({"n": i}),
        ));
    }
    let err = store.apply(big, now).await.unwrap_err();
    assert!(matches!(err, hookflow_aws::Error::Duplicate(_)), "{err}");
    let sqs = aws_sdk_sqs::Client::new(&conf);
    assert!(receive(&sqs, &p.deliveries_queue_url).await.is_empty(), "nothing sent for a commit that failed");
}

#[tokio::test]
async fn jobs_go_to_their_queue_in_batches_of_ten_in_order() {
    let (conf, p) = setup(5).await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let now = now_ms();
    let job = delivery_job(&flow);
    let mut jobs = Vec::new();
    for i in 0..25 {
        jobs.push(NewJob { id: format!("d:plain:{i}"), ..job.clone() });
        jobs.push(NewJob { id: format!("d:ordered:{i}"), group: Some("sub_1:k".into()), ..job.clone() });
        jobs.push(NewJob::run("acme", &format!("run_{i}"), "start", Input::Start, now));
    }
    Queues::new(sqs.clone(), &p.runs_queue_url, &p.deliveries_queue_url)
        .send(&jobs, now)
        .await
        .expect_err("grouped jobs without the FIFO queue are refused");
    p.queues(&sqs).send(&jobs, now).await.unwrap();
    let drain = async |url: &str| {
        let mut ids = Vec::new();
        loop {
            let got = receive(&sqs, url).await;
            if got.is_empty() {
                return ids;
            }
            for m in &got {
                ids.push(Message::parse(m.body().unwrap()).unwrap().id);
                sqs.delete_message().queue_url(url).receipt_handle(m.receipt_handle().unwrap()).send().await.unwrap();
            }
        }
    };
    let ordered = drain(&p.ordered_queue_url).await;
    assert_eq!(ordered, (0..25).map(|i| format!("d:ordered:{i}")).collect::<Vec<_>>(), "one group, in order");
    let mut plain = drain(&p.deliveries_queue_url).await;
    plain.sort();
    let mut want: Vec<String> = (0..25).map(|i| format!("d:plain:{i}")).collect();
    want.sort();
    assert_eq!(plain, want);
    assert_eq!(drain(&p.runs_queue_url).await.len(), 25);
}

#[tokio::test]
async fn expired_log_entries_and_idempotency_records_are_not_read() {
    let (conf, p) = setup(5).await;
    // Retention of one day: an entry from two days ago has expired, though
    // moto (like DynamoDB, for a while) still holds the item.
    let table = Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 1);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let run = run_of(&flow);
    let now = now_ms();
    let mut commit = Commit::default();
    commit.log.push(LogEntry::for_run(
        &run,
        now - 2 * 86_400_000,
        hookflow_core::commit::EntryKind::Inbound,
        "accepted",
        serde_json::json!({}),
    ));
    commit.log.push(LogEntry::for_run(
        &run,
        now,
        hookflow_core::commit::EntryKind::Step,
        "send",
        serde_json::json!({}),
    ));
    commit.idempotency = Some(("acme/partner-sync/old".into(), r#"{"status":202,"headers":[]}"#.into(), now - 1000));
    table.write(&commit, now_ms()).await.unwrap();
    let log = table.run_entries(&run.id, now_ms()).await.unwrap();
    assert_eq!(log.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["step"]);
    assert_eq!(table.idempotent_reply("acme/partner-sync/old", now).await.unwrap(), None);
    let items = aws_sdk_dynamodb::Client::new(&conf).scan().table_name(&p.table).send().await.unwrap();
    // The run's two entries, the inbound entry's copy under the tenant's
    // hour, and the idempotency record (besides the index of hours).
    let kept = items.items().iter().filter(|i| !i["pk"].as_s().unwrap().starts_with("HOURS")).count();
    assert_eq!(kept, 4, "the expired items are still there; reads skip them");
    let tenant = table.tenant_log("acme", now - 3 * 86_400_000, now, 10).await.unwrap();
    assert!(tenant.is_empty(), "the expired request is not listed: {tenant:?}");
}

#[tokio::test]
async fn a_commit_of_one_log_entry_is_one_put_and_reads_back_under_its_tenant() {
    let (conf, p) = setup(5).await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14);
    let now = now_ms();
    let rejected = LogEntry {
        at: now,
        kind: hookflow_core::commit::EntryKind::Inbound,
        tenant: Some("acme".into()),
        event_id: Some("evt_r1".into()),
        outcome: Some("rejected_404".into()),
        detail: serde_json::json!({"path": "/hooks/acme/nope", "status": 404}),
        ..Default::default()
    };
    table.write(&Commit { log: vec![rejected.clone()], ..Default::default() }, now).await.unwrap();
    let listed = table.tenant_log("acme", now - 60_000, now + 1, 10).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!((listed[0].outcome.as_deref(), &listed[0].detail), (Some("rejected_404"), &rejected.detail));
}

#[tokio::test]
async fn idempotency_claim_is_conditional_and_returns_the_old_record() {
    let (conf, p) = setup(5).await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14);
    let now = now_ms();
    let window = Duration::from_secs(3600);
    assert_eq!(table.claim("acme/f/k1", now, window).await.unwrap(), Claim::Claimed);
    assert_eq!(table.claim("acme/f/k1", now, window).await.unwrap(), Claim::InProgress);
    let reply =
        Reply { status: 202, headers: vec![("x-a".into(), "1".into())], body: Some("{\"event_id\":\"e\"}".into()) };
    let commit = Commit {
        idempotency: Some(("acme/f/k1".into(), serde_json::to_string(&reply).unwrap(), now + 3_600_000)),
        ..Default::default()
    };
    table.write(&commit, now_ms()).await.unwrap();
    assert_eq!(table.claim("acme/f/k1", now, window).await.unwrap(), Claim::Completed(reply.clone()));
    table.release("acme/f/k1").await.unwrap();
    assert_eq!(
        table.claim("acme/f/k1", now, window).await.unwrap(),
        Claim::Completed(reply.clone()),
        "an answered record is not given up"
    );
    assert_eq!(table.idempotent_reply("acme/f/k1", now).await.unwrap(), Some(reply));
    // Once the window is over, the key may be claimed again.
    assert_eq!(table.claim("acme/f/k1", now + 3_601_000, window).await.unwrap(), Claim::Claimed);

    // A claim given up (the request failed before answering) frees the key
    // at once.
    assert_eq!(table.claim("acme/f/k2", now, window).await.unwrap(), Claim::Claimed);
    table.release("acme/f/k2").await.unwrap();
    assert_eq!(table.claim("acme/f/k2", now, window).await.unwrap(), Claim::Claimed);
}

fn delivery_job(flow: &hookflow_core::CompiledFlow) -> NewJob {
    let (_, effects) = hookflow_core::run::advance(flow, run_of(flow), Input::Start).unwrap();
    let d = effects
        .into_iter()
        .find_map(|e| match e {
            hookflow_core::run::Effect::Send(d) => Some(*d),
            _ => None,
        })
        .unwrap();
    NewJob::delivery(&DeliveryJob::new(d, 0), now_ms())
}

async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap().messages.unwrap_or_default()
}

#[tokio::test]
async fn queue_sends_jobs_by_kind_and_chains_long_delays() {
    let (conf, p) = setup(5).await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queues = Queues::new(sqs.clone(), &p.runs_queue_url, &p.deliveries_queue_url);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let now = now_ms();
    let job = delivery_job(&flow);
    let run_job = NewJob::run("acme", "run_1", "start", Input::Start, now);
    queues.send(&[job.clone(), run_job.clone()], now).await.unwrap();
    let got = receive(&sqs, &p.deliveries_queue_url).await;
    assert_eq!(got.len(), 1);
    let m = Message::parse(got[0].body().unwrap()).unwrap();
    assert_eq!((m.kind(), m.id.as_str(), m.tenant.as_str()), (JobKind::Delivery, job.id.as_str(), "acme"));
    let runs = receive(&sqs, &p.runs_queue_url).await;
    assert_eq!(Message::parse(runs[0].body().unwrap()).unwrap().id, run_job.id);

    // Five hours ahead: sent with SQS's largest delay, not visible now; a
    // consumer that gets it early sends it on with the remaining delay.
    let later = NewJob { id: "d:later".into(), not_before: now + 5 * 3_600_000, ..job.clone() };
    queues.send(std::slice::from_ref(&later), now).await.unwrap();
    assert!(receive(&sqs, &p.deliveries_queue_url).await.is_empty(), "delayed message visible at once");
    let early = RawMessage::of_job(&later);
    assert_eq!(early.delay_secs(now), 900);
    assert!(queues.postpone(&early, now + 900_000).await.unwrap(), "an early message is sent on");
    let due = RawMessage { not_before: now, ..early };
    assert!(!queues.postpone(&due, now).await.unwrap(), "a due message is done, not sent on");
}

#[tokio::test]
async fn a_message_received_too_often_moves_to_the_dlq() {
    let (conf, p) = setup(2).await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queues = Queues::new(sqs.clone(), &p.runs_queue_url, &p.deliveries_queue_url);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    queues.send(&[delivery_job(&flow)], now_ms()).await.unwrap();
    // Received and never deleted (the consumer failed it), twice.
    for _ in 0..2 {
        let got = receive(&sqs, &p.deliveries_queue_url).await;
        assert_eq!(got.len(), 1);
        sqs.change_message_visibility()
            .queue_url(&p.deliveries_queue_url)
            .receipt_handle(got[0].receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    assert!(receive(&sqs, &p.deliveries_queue_url).await.is_empty(), "moved on the third receive");
    let dead = receive(&sqs, &p.deliveries_dlq_url).await;
    assert_eq!(dead.len(), 1, "the poisoned message is in the DLQ");
}

#[tokio::test]
async fn secrets_by_name_under_the_prefix_with_json_keys_and_a_clear_missing() {
    let conf = sdk().await;
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let prefix = format!("hookflow-{}/", uuid_like());
    sm.create_secret().name(format!("{prefix}partner-token")).secret_string("tok-123").send().await.unwrap();
    sm.create_secret()
        .name(format!("{prefix}partner"))
        .secret_string(r#"{"user": "u1", "password": "p@ss"}"#)
        .send()
        .await
        .unwrap();
    sm.create_secret().name(format!("{prefix}plain")).secret_string("not json").send().await.unwrap();
    let secrets = Secrets::new(sm.clone(), &prefix);
    assert_eq!(secrets.secret("partner-token").await.unwrap().as_deref(), Some("tok-123"));
    assert_eq!(secrets.secret("partner#password").await.unwrap().as_deref(), Some("p@ss"));
    assert_eq!(secrets.secret("partner#nope").await.unwrap(), None);
    assert_eq!(secrets.secret("missing").await.unwrap(), None, "a missing secret is None, not an error");
    let e = secrets.secret("plain#key").await.unwrap_err();
    assert!(e.message.contains("secret `plain` is not JSON"), "{e}");
    // Cached: a change shows only after the cache is cleared (or its TTL).
    sm.put_secret_value().secret_id(format!("{prefix}partner-token")).secret_string("tok-456").send().await.unwrap();
    assert_eq!(secrets.secret("partner-token").await.unwrap().as_deref(), Some("tok-123"));
    secrets.clear();
    assert_eq!(secrets.secret("partner-token").await.unwrap().as_deref(), Some("tok-456"));
}

#[tokio::test]
async fn jobs_up_to_a_mebibyte_are_queued_whole_and_a_larger_one_refuses_its_commit_before_writing() {
    let (conf, p) = setup(5).await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let store = store_of(&conf, &p);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let now = now_ms();
    // Three jobs of 600 KiB: over SQS's old 256 KiB limit, and too many for
    // one 1 MiB batch; each arrives whole.
    let big = |id: &str, size: usize| NewJob {
        id: id.into(),
        payload: Payload::Delivery(hookflow_core::subscription::sample_delivery("run_big", &"x".repeat(size))),
        ..delivery_job(&flow)
    };
    let jobs: Vec<NewJob> = (0..3).map(|i| big(&format!("d:big{i}"), 600 * 1024)).collect();
    store.apply(Commit { jobs: jobs.clone(), ..Default::default() }, now).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(receive(&sqs, &p.deliveries_queue_url).await);
    }
    let mut ids: Vec<String> = got
        .iter()
        .map(|m| {
            let m = Message::parse(m.body().unwrap()).unwrap();
            let sent = jobs.iter().find(|j| j.id == m.id).expect("a job sent");
            assert_eq!(m.payload, sent.payload, "a job arrived whole");
            m.id
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["d:big0", "d:big1", "d:big2"]);

    // Over 1 MiB: refused, and nothing of the commit is written.
    let run = run_of(&flow);
    let commit = Commit {
        jobs: vec![big("d:huge", 1024 * 1024)],
        log: vec![LogEntry::for_run(
            &run,
            now,
            hookflow_core::commit::EntryKind::Inbound,
            "accepted",
            serde_json::json!({}),
        )],
        ..Default::default()
    };
    let err = store.apply(commit, now).await.unwrap_err();
    assert!(matches!(err, hookflow_aws::Error::TooLarge(_)), "{err}");
    assert!(err.to_string().contains("d:huge"), "{err}");
    assert!(table_is_empty(&ddb, &p.table).await, "the refused commit wrote its log entry");
    assert!(receive(&sqs, &p.deliveries_queue_url).await.is_empty());
}

/// The table and the two standard queues of `p` as a store.
fn store_of(conf: &aws_config::SdkConfig, p: &Provisioned) -> hookflow_aws::store::Store {
    hookflow_aws::store::Store {
        table: Table::new(aws_sdk_dynamodb::Client::new(conf), &p.table, 14),
        queues: Queues::new(aws_sdk_sqs::Client::new(conf), &p.runs_queue_url, &p.deliveries_queue_url),
    }
}

/// `n` pseudo-random hex digits (xorshift from `seed`): text that does not
/// compress below half.
fn noise(n: usize, seed: u64) -> String {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x & 15) as u32, 16).unwrap_or('0')
        })
        .collect()
}

async fn table_is_empty(ddb: &aws_sdk_dynamodb::Client, table: &str) -> bool {
    ddb.scan().table_name(table).send().await.unwrap().count() == 0
}

#[tokio::test]
async fn subscriptions_and_published_events_with_a_live_id_refusing_its_commit() {
    use hookflow_core::commit::{EventRow, SubscriptionRow};
    use hookflow_core::subscription::{NewEvent, NewSubscription, Status};

    let (conf, p) = setup(5).await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14);
    let now = now_ms();
    let new = |tenant: &str| NewSubscription {
        url: "https://r.example/hook".into(),
        event_types: vec!["contact.*".into()],
        tenant: Some(tenant.into()),
        ..Default::default()
    };
    let (mut a, _) = new("acme").create(now).unwrap();
    let (b, _) = new("other").create(now).unwrap();
    a.status = Status::Active;
    let rows = vec![SubscriptionRow::of(&a), SubscriptionRow::of(&b)];
    table.write(&Commit { subscriptions: rows, ..Default::default() }, now).await.unwrap();
    assert_eq!(table.subscription(&a.id).await.unwrap().as_ref(), Some(&a));
    let ids = |subs: Vec<hookflow_core::subscription::Subscription>| subs.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(table.subscriptions(Some("acme"), true).await.unwrap()), [a.id.clone()]);
    assert!(table.subscriptions(Some("other"), true).await.unwrap().is_empty(), "pending is not active");
    assert_eq!(table.subscriptions(None, false).await.unwrap().len(), 2);
    // A change is written only over the version it was computed from.
    let mut changed = a.clone();
    changed.updated_at = now + 1;
    let stale = Commit { subscriptions: vec![SubscriptionRow::replacing(&changed, now - 1)], ..Default::default() };
    assert!(matches!(table.write(&stale, now).await.unwrap_err(), hookflow_aws::Error::Conflict(_)));
    let fresh =
        Commit { subscriptions: vec![SubscriptionRow::replacing(&changed, a.updated_at)], ..Default::default() };
    table.write(&fresh, now).await.unwrap();
    assert_eq!(table.subscription(&a.id).await.unwrap().unwrap().updated_at, now + 1);

    let event = NewEvent {
        kind: "contact.created".into(),
        id: Some("e1".into()),
        tenant: Some("acme".into()),
        ..Default::default()
    }
    .into_event(now)
    .unwrap();
    let window = Duration::from_secs(60);
    let publish = |job: &str| Commit {
        event: Some(EventRow::of(&event, window)),
        log: vec![LogEntry {
            at: now,
            kind: hookflow_core::commit::EntryKind::Event,
            run_id: Some(format!("r-{job}")),
            ..Default::default()
        }],
        ..Default::default()
    };
    table.write(&publish("1"), now).await.unwrap();
    assert!(table.live_event("acme", "e1", now).await.unwrap());
    assert!(!table.live_event("acme", "e1", now + 60_000).await.unwrap(), "the window is over");
    let err = table.write(&publish("2"), now).await.unwrap_err();
    assert!(matches!(err, hookflow_aws::Error::Duplicate(_)), "{err}");
    assert!(table.run_entries("r-2", now).await.unwrap().is_empty(), "nothing of the refused commit was written");
    let listed = table.events("acme", now - 1, now, 10).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&event));
    // Past the window the id may be published again.
    let mut later = publish("3");
    later.event.as_mut().unwrap().at = now + 60_000;
    table.write(&later, now).await.unwrap();

    assert!(table.delete_subscription(&b.id).await.unwrap());
    assert!(!table.delete_subscription(&b.id).await.unwrap());
    assert!(table.subscription(&b.id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_run_commit_keeps_its_messages_as_its_outbox_and_they_can_be_sent_again() {
    let (conf, p) = setup(5).await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let store = store_of(&conf, &p);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let (run, _) = hookflow_core::run::advance(&flow, run_of(&flow), Input::Start).unwrap();
    let mut commit = Commit { jobs: vec![delivery_job(&flow)], ..Default::default() };
    commit.run(&run);
    let now = now_ms();
    let _ = store.apply_from(commit, Some("r:x:start"), Some(""), now).await.unwrap();
    let outbox = store.table.load_stored(&run.id).await.unwrap().map(|s| s.outbox).expect("run stored");
    assert!(outbox.caused_by("r:x:start"));
    assert_eq!(outbox.messages.len(), 1);
    assert_eq!(receive(&sqs, &p.deliveries_queue_url).await.len(), 1, "sent once by the commit");
    // The input comes back: what its commit queued is sent again, whole.
    assert_eq!(store.redrive(&outbox, now).await.unwrap().messages, 1);
    let again = receive(&sqs, &p.deliveries_queue_url).await;
    assert_eq!(RawMessage::parse(again[0].body().unwrap()).unwrap(), outbox.messages[0]);
    // A commit without a cause (a dispatcher's) keeps no outbox.
    let mut plain = Commit::default();
    let mut later = run.clone();
    later.revision += 1;
    plain.run(&later);
    let kept = store.table.load_stored(&run.id).await.unwrap().unwrap().log;
    let _ = store.apply_from(plain, None, Some(&kept), now).await.unwrap();
    let outbox = store.table.load_stored(&run.id).await.unwrap().map(|s| s.outbox).unwrap();
    assert_eq!(outbox, hookflow_aws::outbox::Outbox::default());
}

#[tokio::test]
async fn a_publish_keeps_its_fan_out_until_sent_and_an_item_over_400_kb_is_refused_before_writing() {
    let (conf, p) = setup(5).await;
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let store = store_of(&conf, &p);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let now = now_ms();
    let event =
        hookflow_core::subscription::NewEvent { kind: "a.b".into(), id: Some("e1".into()), ..Default::default() }
            .into_event(now)
            .unwrap();
    let row = hookflow_core::commit::EventRow::of(&event, Duration::from_secs(3600));
    let commit = Commit { event: Some(row), jobs: vec![delivery_job(&flow)], ..Default::default() };
    store.apply(commit, now).await.unwrap();
    assert_eq!(receive(&sqs, &p.deliveries_queue_url).await.len(), 1);
    let left = store.table.published(&event.tenant, "e1", now).await.unwrap().expect("live");
    assert!(left.messages.is_empty(), "sent, then forgotten: {left:?}");
    assert!(store.redrive_event(&event.tenant, "e1", now).await.unwrap(), "live");
    assert!(receive(&sqs, &p.deliveries_queue_url).await.is_empty(), "nothing sent twice");

    // An event of 40 KB of noise to 20 subscriptions: its outbox keeps the
    // body once, and the event's item fits.
    let body = noise(40 * 1024, 0x2545_F491_4F6C_DD1D);
    let wide =
        hookflow_core::subscription::NewEvent { kind: "a.b".into(), id: Some("e2".into()), ..Default::default() }
            .into_event(now)
            .unwrap();
    let jobs: Vec<NewJob> = (0..20)
        .map(|sub| {
            let mut job = delivery_job(&flow);
            if let Payload::Delivery(d) = &mut job.payload {
                d.delivery.request.body = Some(body.clone());
            }
            job.id = format!("d:msg_{sub}_e2");
            job
        })
        .collect();
    let row = hookflow_core::commit::EventRow::of(&wide, Duration::from_secs(3600));
    store.apply(Commit { event: Some(row), jobs, ..Default::default() }, now).await.unwrap();
    let mut got = 0;
    for _ in 0..4 {
        got += receive(&sqs, &p.deliveries_queue_url).await.len();
    }
    assert_eq!(got, 20, "the fan-out queued");

    // A run whose item would pass 400 KB even compressed (900 KB of
    // pseudo-random hex): refused, nothing written.
    let mut run = run_of(&flow);
    run.trigger["raw_body"] = serde_json::Value::String(noise(900 * 1024, 0x9E37_79B9_7F4A_7C15));
    let mut commit = Commit::default();
    commit.run(&run);
    let err = store.apply_from(commit, Some("accepted"), Some(""), now).await.unwrap_err();
    assert!(matches!(err, hookflow_aws::Error::TooLarge(_)), "{err}");
    assert!(err.to_string().contains(&run.id), "names the item: {err}");
    assert!(store.table.load_run(&run.id).await.unwrap().is_none());
}

/// An entry of `run` of `kind` at `at`, with `detail`.
fn entry(run: &Run, at: i64, kind: hookflow_core::commit::EntryKind, detail: serde_json::Value) -> LogEntry {
    LogEntry::for_run(run, at, kind, "accepted", detail)
}

#[tokio::test]
async fn a_runs_log_is_kept_in_its_item_its_tenant_copy_rewritten_by_the_redo_and_a_long_log_spills() {
    use hookflow_core::commit::EntryKind;
    let (conf, p) = setup(5).await;
    let store = store_of(&conf, &p);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let (run, _) = hookflow_core::run::advance(&flow, run_of(&flow), Input::Start).unwrap();
    let now = now_ms();
    let inbound = entry(
        &run,
        now,
        EntryKind::Inbound,
        serde_json::json!({"method": "POST", "path": "/hooks/a",
        "headers": {"x": "y"}, "body": "the body"}),
    );
    let mut commit = Commit { jobs: vec![delivery_job(&flow)], log: vec![inbound.clone()], ..Default::default() };
    commit.run(&run);
    commit.log.push(entry(&run, now + 1, EntryKind::Step, serde_json::json!({"step": "s"})));
    // The commit is written, and the process dies before its tenant copy
    // is: the run's entries are there (in its item), the request is not
    // yet listed under its tenant.
    let copies = Table::tenant_copies(&commit.log);
    assert_eq!(copies.len(), 1, "one inbound entry, one copy");
    let outbox = hookflow_aws::outbox::Outbox { cause: "accepted".into(), messages: vec![], log: copies };
    store.table.write_holding(&commit, None, Some(&outbox), Some(""), now).await.unwrap();
    let kept = store.table.run_entries(&run.id, now).await.unwrap();
    assert_eq!(kept, commit.log, "both entries, kept in the run's item");
    assert!(store.table.tenant_log(&run.tenant, now - 1000, now + 1000, 10).await.unwrap().is_empty());
    // The input comes back and sends the outbox again: the copy is
    // written, twice under one key, so listed once.
    let stored = store.table.load_stored(&run.id).await.unwrap().expect("run stored");
    assert_eq!(stored.outbox, outbox);
    let _ = store.redrive(&stored.outbox, now).await.unwrap();
    let _ = store.redrive(&stored.outbox, now).await.unwrap();
    let listed = store.table.tenant_log(&run.tenant, now - 1000, now + 1000, 10).await.unwrap();
    assert_eq!(listed, kept, "the run found through its request");
    let copies = aws_sdk_dynamodb::Client::new(&conf)
        .query()
        .table_name(&p.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("LOG#{}#{}", run.tenant, now / 3_600_000)),
        )
        .send()
        .await
        .unwrap();
    let items = copies.items();
    assert_eq!(items.len(), 1, "written twice, kept once: {items:?}");
    assert!(!format!("{items:?}").contains("the body"), "a light copy: {items:?}");

    // The next commit carries the kept log on, and adds its entries.
    let mut next = run.clone();
    next.revision += 1;
    let mut commit = Commit::default();
    commit.run(&next);
    commit.log.push(entry(&next, now + 2, EntryKind::Run, serde_json::json!({"n": 3})));
    let _ = store.apply_from(commit, Some("r:x:1"), Some(&stored.log), now).await.unwrap();
    let kept = store.table.run_entries(&run.id, now).await.unwrap();
    assert_eq!(kept.iter().map(|e| e.at - now).collect::<Vec<_>>(), [0, 1, 2]);

    // An entry that would take the kept log past its bound is an item of
    // its own; the kept ones stay, and all are listed in order.
    let stored = store.table.load_stored(&run.id).await.unwrap().unwrap();
    let mut last = next.clone();
    last.revision += 1;
    let mut commit = Commit::default();
    commit.run(&last);
    let big = "z".repeat(hookflow_aws::table::EMBEDDED_LOG_MAX);
    commit.log.push(entry(&last, now + 3, EntryKind::Step, serde_json::json!({"big": big})));
    let _ = store.apply_from(commit, Some("r:x:2"), Some(&stored.log), now).await.unwrap();
    let after = store.table.load_stored(&run.id).await.unwrap().unwrap();
    assert_eq!(after.log, stored.log, "the kept log is carried on unchanged");
    let kept = store.table.run_entries(&run.id, now).await.unwrap();
    assert_eq!(kept.iter().map(|e| e.at - now).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert_eq!(kept[3].detail["big"].as_str().map(str::len), Some(big.len()));
}

#[tokio::test]
async fn a_one_item_commit_written_again_after_its_answer_was_lost_is_done_and_another_writer_conflicts() {
    let (conf, p) = setup(5).await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let run = run_of(&flow);
    let mut commit = Commit::default();
    commit.run(&run);
    let now = now_ms();
    table.write_holding(&commit, None, None, Some(""), now).await.unwrap();
    // The SDK's retry of the same put (its first answer lost): it finds
    // its own item, and is answered as written.
    table.write_holding(&commit, None, None, Some(""), now).await.unwrap();
    // Another writer of the same revision loses.
    let mut other = run.clone();
    other.trigger["raw_body"] = serde_json::Value::String("another".into());
    let mut commit = Commit::default();
    commit.run(&other);
    let err = table.write_holding(&commit, None, None, Some(""), now).await.unwrap_err();
    assert!(matches!(err, hookflow_aws::Error::Conflict(_)), "{err}");
    assert_eq!(table.load_run(&run.id).await.unwrap().unwrap().trigger, run.trigger);
}

#[tokio::test]
async fn a_run_written_before_its_log_was_kept_in_its_item_reads_back_and_lists_its_entries() {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    let (conf, p) = setup(5).await;
    let table = Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let run = run_of(&flow);
    let now = now_ms();
    // The item as the previous version wrote it: `state` and `outbox`
    // apart, its entries items of their own.
    aws_sdk_dynamodb::Client::new(&conf)
        .put_item()
        .table_name(&p.table)
        .item("pk", S(format!("RUN#{}", run.id)))
        .item("sk", S("RUN".into()))
        .item("state", S(serde_json::to_string(&run).unwrap()))
        .item("outbox", S(r#"{"cause":"accepted","messages":[]}"#.into()))
        .item("revision", N(run.revision.to_string()))
        .item("expires_at", N((now / 1000 + 3600).to_string()))
        .send()
        .await
        .unwrap();
    let old = entry(&run, now, hookflow_core::commit::EntryKind::Step, serde_json::json!({"old": true}));
    table.write(&Commit { log: vec![old.clone()], ..Default::default() }, now).await.unwrap();
    let stored = table.load_stored(&run.id).await.unwrap().expect("read back");
    assert_eq!(stored.run.id, run.id);
    assert!(stored.outbox.caused_by("accepted"));
    assert_eq!(stored.log, "", "nothing kept in the item yet");
    assert_eq!(table.run_entries(&run.id, now).await.unwrap(), vec![old]);
}

#[tokio::test]
async fn entries_that_would_take_the_runs_item_past_400_kb_become_items_of_their_own() {
    use hookflow_core::commit::EntryKind;
    let (conf, p) = setup(5).await;
    let store = store_of(&conf, &p);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let mut run = run_of(&flow);
    // A state of ~399 KB compressed (pseudo-random hex: 0.57 of its size),
    // that fits.
    run.trigger["raw_body"] = serde_json::Value::String(noise(680 * 1024, 0x5851_F42D_4C95_7F2D));
    let mut commit = Commit::default();
    commit.run(&run);
    let now = now_ms();
    let _ = store.apply_from(commit, Some("accepted"), Some(""), now).await.unwrap();
    // An entry the kept log would take (under its 64 KiB of JSON), but
    // with which the item would pass 400 KB: its own item instead.
    let stored = store.table.load_stored(&run.id).await.unwrap().unwrap();
    let mut next = run.clone();
    next.revision += 1;
    let mut commit = Commit::default();
    commit.run(&next);
    let detail = serde_json::json!({"response": noise(60 * 1024, 0x2545_F491_4F6C_DD1D)});
    commit.log.push(entry(&next, now + 1, EntryKind::Step, detail));
    let _ = store.apply_from(commit, Some("r:x:1"), Some(&stored.log), now).await.unwrap();
    let after = store.table.load_stored(&run.id).await.unwrap().unwrap();
    assert_eq!(after.run.revision, next.revision, "the run moved on");
    assert_eq!(after.log, stored.log, "the kept log as it was");
    assert_eq!(store.table.run_entries(&run.id, now).await.unwrap().len(), 1, "the entry as an item");
}

#[tokio::test]
async fn a_run_waiting_on_a_delivery_is_kept_until_its_last_attempt_could_be_made_then_for_the_retention() {
    let (conf, p) = setup(5).await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    // One day of retention, shorter than the default ladder's three.
    let store = hookflow_aws::store::Store { table: Table::new(ddb.clone(), &p.table, 1), ..store_of(&conf, &p) };
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let (run, _) = hookflow_core::run::advance(&flow, run_of(&flow), Input::Start).unwrap();
    let job = delivery_job(&flow);
    let dj: DeliveryJob = job.payload.as_delivery().unwrap().clone();
    let span = dj.delivery.retry.longest_span();
    assert!(span > Duration::from_secs(70 * 3600), "the default ladder: {span:?}");
    let expires = || async {
        let item = ddb
            .get_item()
            .table_name(&p.table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("RUN#{}", run.id)))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("RUN".into()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        item["expires_at"].as_n().unwrap().parse::<i64>().unwrap()
    };
    let now = now_ms();
    let mut commit = Commit { jobs: vec![job], ..Default::default() };
    commit.run(&run);
    let _ = store.apply_from(commit, Some("accepted"), Some(""), now).await.unwrap();
    let day = 86_400;
    assert!(expires().await >= now / 1000 + span.as_secs() as i64 + day, "kept past its last attempt");
    // Its last commit queues nothing: kept for the retention from then.
    let stored = store.table.load_stored(&run.id).await.unwrap().unwrap();
    let mut done = run.clone();
    done.revision += 1;
    let mut commit = Commit::default();
    commit.run(&done);
    let _ = store.apply_from(commit, Some("r:x:1"), Some(&stored.log), now).await.unwrap();
    assert_eq!(expires().await, now / 1000 + day);
}

#[tokio::test]
async fn a_dead_delivery_keeps_its_job_apart_so_its_row_stays_small_and_a_large_one_still_replays() {
    let (conf, p) = setup(5).await;
    let store = store_of(&conf, &p);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let job = delivery_job(&flow);
    let mut d: DeliveryJob = job.payload.as_delivery().unwrap().clone();
    // 900 KB that does not compress below half: the job is larger than an
    // item may be, so it goes in parts.
    d.delivery.request.body = Some(noise(900 * 1024, 11));
    let row = hookflow_core::commit::DeadRow::of(&d, "status 400");
    let id = row.delivery_id.clone();
    store.table.write(&Commit { dead: Some(row), ..Default::default() }, now_ms()).await.unwrap();

    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let items = ddb.scan().table_name(&p.table).send().await.unwrap().items.unwrap_or_default();
    let listed = items.iter().find(|i| i["pk"].as_s().is_ok_and(|pk| pk == "DEAD")).expect("the row");
    assert!(!listed.contains_key("job"), "the row holds no job");
    let parts = items.iter().filter(|i| i["pk"].as_s().is_ok_and(|pk| pk.starts_with("DEADJOB#"))).count();
    assert!(parts >= 2, "{parts} parts");

    let dead = store.table.dead(None).await.unwrap();
    assert_eq!((dead.len(), dead[0].row.job.as_str()), (1, ""), "listed without its job");
    store.replay(&dead[0], now_ms()).await.unwrap();
    let got = receive(&aws_sdk_sqs::Client::new(&conf), &p.deliveries_queue_url).await;
    let m = Message::parse(got[0].body().unwrap()).unwrap();
    let back: DeliveryJob = m.payload.as_delivery().unwrap().clone();
    assert_eq!((back.delivery.id, back.delivery.request.body), (id, d.delivery.request.body), "the same delivery");
    assert!(store.table.dead(None).await.unwrap().is_empty());
    let left = ddb.scan().table_name(&p.table).send().await.unwrap().items.unwrap_or_default();
    assert!(
        !left.iter().any(|i| i["pk"]
            .as_s()
            .is_ok_and(|pk| pk == "DEAD" || pk == "DEADAT" || pk.starts_with("DEAD") && pk.contains('#'))),
        "the row, its listing, its reference and its parts are forgotten"
    );
}

/// A replayed dead delivery that dies again before its row is forgotten
/// keeps its newer row: `forget_dead` deletes only the row it listed (its
/// `at`), so the second death is still listed and replayable.
#[tokio::test]
async fn forgetting_a_dead_delivery_leaves_a_newer_death_of_it_listed() {
    let (conf, p) = setup(5).await;
    let store = store_of(&conf, &p);
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), FLOW).unwrap();
    let d: DeliveryJob = delivery_job(&flow).payload.as_delivery().unwrap().clone();
    let first = hookflow_core::commit::DeadRow::of(&d, "status 400");
    // Now: a dead row expires after the dead retention.
    let t = now_ms();
    store.table.write(&Commit { dead: Some(first), ..Default::default() }, t).await.unwrap();
    let listed = store.table.dead(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    // Replayed, and dead again before the replay forgot the first row.
    let again = hookflow_core::commit::DeadRow::of(&d, "status 500, again");
    store.table.write(&Commit { dead: Some(again), ..Default::default() }, t + 1_000).await.unwrap();
    let now_listed = store.table.dead(None).await.unwrap();
    assert_eq!(now_listed.iter().map(|d| d.at).collect::<Vec<_>>(), [t + 1_000], "listed once, as it died last");
    store.table.forget_dead(&listed[0]).await.unwrap();
    let left = store.table.dead(None).await.unwrap();
    assert_eq!(left.len(), 1, "the newer death stays listed");
    assert_eq!((left[0].at, left[0].row.reason.as_str()), (t + 1_000, "status 500, again"));
    // Forgetting the row as it is listed now does forget it.
    store.table.forget_dead(&left[0]).await.unwrap();
    assert!(store.table.dead(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_tenants_subscriptions_are_its_own_partition_and_old_ones_are_read_and_written_where_they_are() {
    use hookflow_core::commit::SubscriptionRow;
    use hookflow_core::subscription::{NewSubscription, Status};

    let (conf, p) = setup(5).await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let table = Table::new(ddb.clone(), &p.table, 14);
    let now = now_ms();
    let new = |tenant: &str| {
        let (mut s, _) = NewSubscription {
            url: "https://r.example/hook".into(),
            event_types: vec!["contact.*".into()],
            tenant: Some(tenant.into()),
            ..Default::default()
        }
        .create(now)
        .unwrap();
        s.status = Status::Active;
        s
    };
    let mine = new("small");
    let crowd: Vec<_> = (0..30).map(|_| new("big")).collect();
    let mut rows = vec![SubscriptionRow::of(&mine)];
    rows.extend(crowd.iter().map(SubscriptionRow::of));
    table.write(&Commit { subscriptions: rows, ..Default::default() }, now).await.unwrap();
    let partition = |pk: String| {
        let ddb = ddb.clone();
        let table = p.table.clone();
        async move {
            let q = ddb.query().table_name(table).key_condition_expression("pk = :pk");
            q.expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(pk))
                .send()
                .await
                .unwrap()
                .count()
        }
    };
    // A publish of `small` reads its own partition: one item, whatever the
    // other tenant has.
    assert_eq!(partition("SUBS#small".into()).await, 1);
    assert_eq!(partition("SUBS#big".into()).await, 30);
    assert_eq!(table.subscriptions(Some("small"), true).await.unwrap(), vec![mine.clone()]);
    assert_eq!(table.subscriptions(None, false).await.unwrap().len(), 31, "every tenant's, through the tenant list");
    assert_eq!(table.subscription(&crowd[7].id).await.unwrap().as_ref(), Some(&crowd[7]), "by id");

    // A subscription written by the previous version, in the one `SUBS`
    // partition, stays there (code of that version may still run during a
    // deploy): it is listed, read by id and written in place.
    let old = new("small");
    let mut item = std::collections::HashMap::new();
    for (k, v) in [("pk", "SUBS"), ("sk", old.id.as_str()), ("tenant", "small"), ("status", "active")] {
        item.insert(k.to_string(), aws_sdk_dynamodb::types::AttributeValue::S(v.into()));
    }
    item.insert("doc".into(), aws_sdk_dynamodb::types::AttributeValue::S(serde_json::to_string(&old).unwrap()));
    item.insert("version".into(), aws_sdk_dynamodb::types::AttributeValue::N(old.updated_at.to_string()));
    ddb.put_item().table_name(&p.table).set_item(Some(item)).send().await.unwrap();
    let fresh = Table::new(ddb.clone(), &p.table, 14);
    let listed = fresh.subscriptions(Some("small"), true).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(fresh.subscription(&old.id).await.unwrap().as_ref(), Some(&old));
    // A change lands where it is, over the version read.
    let mut changed = old.clone();
    changed.updated_at = now + 5;
    let write =
        Commit { subscriptions: vec![SubscriptionRow::replacing(&changed, old.updated_at)], ..Default::default() };
    fresh.write(&write, now).await.unwrap();
    assert_eq!((partition("SUBS".into()).await, partition("SUBS#small".into()).await), (1, 1), "nothing moved");
    assert_eq!(fresh.subscription(&old.id).await.unwrap().unwrap().updated_at, now + 5);
    assert!(fresh.delete_subscription(&old.id).await.unwrap());
    assert_eq!(partition("SUBS".into()).await, 0);
    assert_eq!(fresh.subscriptions(Some("small"), false).await.unwrap(), vec![mine.clone()]);

    // A change computed over a subscription deleted meanwhile does not
    // bring it back: a conflict (the caller reads it again, and finds none).
    assert!(table.delete_subscription(&mine.id).await.unwrap());
    let mut late = mine.clone();
    late.updated_at = now + 9;
    let write =
        Commit { subscriptions: vec![SubscriptionRow::replacing(&late, mine.updated_at)], ..Default::default() };
    assert!(matches!(table.write(&write, now).await.unwrap_err(), hookflow_aws::Error::Conflict(_)));
    assert!(table.subscription(&mine.id).await.unwrap().is_none());
}

/// The item `pk` (sort key `LIMIT`) as stored.
async fn limit_item(
    conf: &aws_config::SdkConfig,
    table: &str,
    pk: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let got = aws_sdk_dynamodb::Client::new(conf)
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S("LIMIT".into()))
        .send()
        .await
        .unwrap();
    got.item.expect("the limit's item")
}

fn num(item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, k: &str) -> i64 {
    item[k].as_n().unwrap().parse().unwrap()
}

#[tokio::test]
async fn limits_are_shared_by_every_container_no_slot_twice_and_a_dead_holders_place_is_free_again() {
    use hookflow_core::limit::RateLimit;
    let (conf, p) = setup(5).await;
    // Two containers: two tables (each its own memory of the keys' cases).
    let (a, b) = (
        Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14),
        Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14),
    );
    let rate = RateLimit { per_second: 10.0, burst: 1 };
    let now_us = now_ms() * 1000;
    let tasks = (0..30).map(|i| {
        let t = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move { t.reserve(&rate.pace_key("sub_x"), &rate, now_us).await })
    });
    let mut slots: Vec<i64> = Vec::new();
    for t in tasks {
        slots.push(t.await.unwrap().expect("a slot"));
    }
    slots.sort();
    let gaps: std::collections::BTreeSet<i64> = slots.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(slots[0], now_us, "the first goes at once");
    assert_eq!(gaps.into_iter().collect::<Vec<_>>(), [100_000], "30 slots, each its own, one interval apart");
    let (waiting, _) = a.backlog("sub_x", Some(&rate), now_us / 1000).await.unwrap();
    assert_eq!(waiting, 30, "the backlog read off the state");
    // Past the backlog the key is idle again: the next slot is now.
    let later = now_us + 10_000_000;
    assert_eq!(b.reserve(&rate.pace_key("sub_x"), &rate, later).await.unwrap(), later);

    // A slow pace's backlog reaching past the item's 30 days of keeping:
    // the item is kept to the backlog's end.
    let daily = RateLimit { per_second: 1.0 / 86_400.0, burst: 1 };
    for _ in 0..20 {
        a.reserve(&daily.pace_key("sub_d"), &daily, now_us).await.unwrap();
    }
    let item = limit_item(&conf, &p.table, &format!("LIMIT#{}", daily.pace_key("sub_d"))).await;
    let (tat, expires) = (num(&item, "tat") / 1_000_000, num(&item, "expires_at"));
    assert!(tat > now_us / 1_000_000 + 19 * 86_400, "twenty days of backlog");
    assert!(expires >= tat + 29 * 86_400, "kept past the backlog's end: {expires} for {tat}");

    // Places in flight: two of two taken, the third waits in line.
    let now = now_ms();
    let first = a.enter("sub_y", 2, now, now + 60_000).await.unwrap().expect("a place");
    let _second = b.enter("sub_y", 2, now, now + 60_000).await.unwrap().expect("a place");
    let back_at = a.enter("sub_y", 2, now, now + 60_000).await.unwrap().expect_err("full");
    assert!(back_at > now, "comes back later: {back_at}");
    assert_eq!(a.backlog("sub_y", None, now).await.unwrap().1, 2);
    a.leave(first, 40).await.unwrap();
    let third = b.enter("sub_y", 2, now, now + 60_000).await.unwrap().expect("the place given back");
    // A holder that died: its place is free once its time is up.
    let after = now + 61_000;
    let _fourth = a.enter("sub_y", 2, after, after + 60_000).await.unwrap().expect("past its time");
    // Leaving a place another has taken since frees nothing of theirs.
    b.leave(third, 10).await.unwrap();
    assert_eq!(a.backlog("sub_y", None, after).await.unwrap().1, 1, "the new holder keeps its place");
}

/// AWS destinations: what the senders put on an SQS queue, an SNS topic
/// and an EventBridge bus, and what comes back when they cannot.
mod destinations {
    use std::collections::HashMap;

    use hookflow_core::attempt::AttemptError;
    use hookflow_core::destination::Allowed;
    use hookflow_core::ports::Sender as _;
    use hookflow_core::request::{OutboundRequest, SecretText};
    use hookflow_core::run::{Delivery, Purpose};
    use hookflow_core::ssrf::TargetPolicy;
    use serde_json::{Value, json};

    use super::{sdk, uuid_like};

    const ACCOUNT: &str = "123456789012";

    fn delivery(arn: &str, body: &str, headers: &[(&str, &str)]) -> Delivery {
        Delivery {
            id: format!("msg_{}", uuid_like()),
            run_id: "evt_1".into(),
            event_id: "evt_1".into(),
            tenant: "acme".into(),
            flow_id: String::new(),
            step: "order.paid".into(),
            request: OutboundRequest {
                method: hookflow_core::flow::Method::Post,
                url: SecretText::plain(arn),
                headers: headers.iter().map(|(k, v)| (k.to_string(), SecretText::plain(*v))).collect(),
                body: Some(body.into()),
            },
            status_policy: Default::default(),
            retry: Default::default(),
            sign: None,
            timeout: std::time::Duration::from_secs(10),
            wait: false,
            purpose: Purpose::Event { subscription: "sub_1".into() },
            secret_hosts: Default::default(),
            shaped: false,
            limit: None,
        }
    }

    async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
        let mut req = sqs.create_queue().queue_name(name);
        if name.ends_with(".fifo") {
            req = req.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
        }
        let url = req.send().await.unwrap().queue_url.unwrap();
        (url, format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}"))
    }

    async fn received(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        out.messages.unwrap_or_default()
    }

    fn attributes(m: &aws_sdk_sqs::types::Message) -> HashMap<String, String> {
        let attrs = m.message_attributes.clone().unwrap_or_default();
        attrs.into_iter().map(|(k, v)| (k, v.string_value.unwrap_or_default())).collect()
    }

    #[tokio::test]
    async fn a_queue_message_is_the_body_with_the_headers_as_attributes_and_its_id_is_the_response() {
        let conf = sdk().await;
        let sqs = aws_sdk_sqs::Client::new(&conf);
        let (url, arn) = queue(&sqs, &format!("dest{}", uuid_like())).await;
        let sender = hookflow_aws::sdk::sender_with(&conf, TargetPolicy::public_only(), Allowed::all()).unwrap();
        let d = delivery(
            &arn,
            r#"{"type":"order.paid"}"#,
            &[("webhook-id", "msg_9"), ("X-Team", "crm"), ("user-agent", "h")],
        );
        let a = sender.send(&d, &HashMap::new()).await;
        let response = a.result.response.expect("AWS's answer");
        assert_eq!(response.status, 200, "{response:?}");
        let [m] = &received(&sqs, &url).await[..] else { panic!("one message") };
        assert_eq!(m.body(), Some(r#"{"type":"order.paid"}"#));
        assert_eq!(response.body["message_id"], json!(m.message_id()), "the log keeps AWS's id");
        let attrs = attributes(m);
        assert_eq!(attrs.get("webhook-id").map(String::as_str), Some("msg_9"));
        assert_eq!(attrs.get("x-team").map(String::as_str), Some("crm"));
        assert!(!attrs.contains_key("user-agent"), "HTTP's own headers stay out: {attrs:?}");

        // A FIFO queue dedupes the same webhook-id sent twice (a redelivered
        // delivery), grouped by the subscription.
        let (url, arn) = queue(&sqs, &format!("dest{}.fifo", uuid_like())).await;
        let d = delivery(&arn, "{}", &[]);
        for _ in 0..2 {
            assert_eq!(sender.send(&d, &HashMap::new()).await.result.response.unwrap().status, 200);
        }
        let [m] = &received(&sqs, &url).await[..] else { panic!("one message for two sends") };
        let system = m.attributes.clone().unwrap_or_default();
        use aws_sdk_sqs::types::MessageSystemAttributeName as A;
        assert_eq!(system.get(&A::MessageGroupId).map(String::as_str), Some("sub_1"));
        assert_eq!(system.get(&A::MessageDeduplicationId), Some(&d.id));
    }

    #[tokio::test]
    async fn sns_and_eventbridge_reach_a_queue_behind_them() {
        let conf = sdk().await;
        let sqs = aws_sdk_sqs::Client::new(&conf);
        let sns = aws_sdk_sns::Client::new(&conf);
        let events = aws_sdk_eventbridge::Client::new(&conf);
        let sender = hookflow_aws::sdk::sender_with(&conf, TargetPolicy::public_only(), Allowed::all()).unwrap();

        let (from_topic, from_topic_arn) = queue(&sqs, &format!("fromsns{}", uuid_like())).await;
        let topic = sns.create_topic().name(format!("t{}", uuid_like())).send().await.unwrap().topic_arn.unwrap();
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(&from_topic_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .unwrap();
        let d = delivery(&topic, r#"{"n":1}"#, &[("webhook-id", "msg_sns")]);
        let r = sender.send(&d, &HashMap::new()).await.result.response.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body["message_id"].as_str().is_some_and(|id| !id.is_empty()), "{r:?}");
        let [m] = &received(&sqs, &from_topic).await[..] else { panic!("the topic's message in its queue") };
        assert_eq!(m.body(), Some(r#"{"n":1}"#));
        assert_eq!(attributes(m).get("webhook-id").map(String::as_str), Some("msg_sns"));

        let (from_bus, from_bus_arn) = queue(&sqs, &format!("frombus{}", uuid_like())).await;
        let bus = format!("b{}", uuid_like());
        events.create_event_bus().name(&bus).send().await.unwrap();
        let rule = format!("r{}", uuid_like());
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus)
            .event_pattern(r#"{"source": ["hookflow"]}"#)
            .send()
            .await
            .unwrap();
        let target = aws_sdk_eventbridge::types::Target::builder().id("q").arn(&from_bus_arn).build().unwrap();
        events.put_targets().rule(&rule).event_bus_name(&bus).targets(target).send().await.unwrap();
        let arn = format!("arn:aws:events:us-east-1:{ACCOUNT}:event-bus/{bus}");
        let d =
            delivery(&arn, r#"{"type":"order.paid","data":{"n":2}}"#, &[("webhook-id", "msg_eb"), ("x-team", "crm")]);
        let r = sender.send(&d, &HashMap::new()).await.result.response.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let [m] = &received(&sqs, &from_bus).await[..] else { panic!("the bus's event in the rule's queue") };
        let event: Value = serde_json::from_str(m.body().unwrap()).unwrap();
        assert_eq!((event["source"].as_str(), event["detail-type"].as_str()), (Some("hookflow"), Some("order.paid")));
        assert_eq!(event["id"], r.body["message_id"], "the log keeps the event's id");
        assert_eq!(
            event["detail"],
            json!({"webhook-id": "msg_eb", "webhook-timestamp": null, "headers": {"x-team": "crm"},
                   "body": {"type": "order.paid", "data": {"n": 2}}})
        );
    }

    #[tokio::test]
    async fn what_cannot_be_sent_says_why_and_aws_errors_are_answers() {
        let conf = sdk().await;
        let sqs = aws_sdk_sqs::Client::new(&conf);
        let (_, arn) = queue(&sqs, &format!("dest{}", uuid_like())).await;
        let only = Allowed::parse(&format!("arn:aws:sqs:us-east-1:{ACCOUNT}:dest*"));
        let sender = hookflow_aws::sdk::sender_with(&conf, TargetPolicy::public_only(), only).unwrap();
        let secrets = HashMap::new();

        // Not among the allowed: refused before any call.
        let other = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:other");
        let a = sender.send(&delivery(&other, "{}", &[]), &secrets).await;
        let (class, why) = a.result.error.unwrap();
        assert_eq!(class, AttemptError::Request);
        assert!(why.contains("AllowedDestinationArns"), "{why}");

        // Over 256 KiB: refused, naming the size and the limit.
        let big = "x".repeat(1_048_577);
        let (class, why) = sender.send(&delivery(&arn, &big, &[]), &secrets).await.result.error.unwrap();
        assert_eq!(class, AttemptError::Request);
        assert!(why.contains("1048577 bytes, over SQS's limit of 1048576"), "{why}");

        // A queue that does not exist: AWS's answer, a 4xx the policy classifies.
        let missing = format!("arn:aws:sqs:us-east-1:{ACCOUNT}:dest-missing-{}", uuid_like());
        let r = sender.send(&delivery(&missing, "{}", &[]), &secrets).await.result.response.unwrap();
        assert!((400..500).contains(&r.status), "{r:?}");
        assert!(r.body["error"].as_str().unwrap().contains("NonExistentQueue"), "{r:?}");
    }
}

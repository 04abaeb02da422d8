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
    let text = hookflow_aws::testing::readable(items.items());
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

#[tokio::test]
async fn a_410_disables_the_subscription_and_publishes_subscription_disabled_to_the_others() {
    use hookflow_core::commit::{Commit, DeliveryJob, SubscriptionRow};
    use hookflow_core::run::Purpose;
    use hookflow_core::subscription::{NewEvent, NewSubscription, Settings, Status, Subscription};

    let w = world("ds").await;
    let (gone, gone_url) = Receiver::start(&[410], "gone").await;
    let (_watcher, watcher_url) = Receiver::start(&[], "ok").await;
    let table = &w.dispatcher.store.table;
    let sm = &w.dispatcher.secrets;
    let subscribe = async |url: &str, types: &[&str]| -> Subscription {
        let new = NewSubscription {
            url: url.into(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        let (mut sub, ring) = new.create(1_000).unwrap();
        sub.status = Status::Active;
        sm.put(&sub.keyring_name(), &ring.to_text()).await.unwrap();
        let c = Commit { subscriptions: vec![SubscriptionRow::of(&sub)], ..Default::default() };
        table.write(&c, 1_000).await.unwrap();
        sub
    };
    let target = subscribe(&gone_url, &["order.*"]).await;
    let watcher = subscribe(&watcher_url, &["subscription.disabled"]).await;
    let event = NewEvent { kind: "order.created".into(), ..Default::default() }.into_event(2_000).unwrap();
    let job = target.event_job(&event, &event.envelope().to_string(), &Settings::default(), 2_000);
    w.dispatcher.store.queues.send(&[job], 2_000).await.unwrap();
    assert_eq!(w.poll().await, (1, 0));
    assert_eq!(gone.seen().len(), 1, "410 is not retried");
    assert!(gone.seen()[0].to_ascii_lowercase().contains("webhook-signature: v1,"), "signed with the keyring");

    let after = table.subscription(&target.id).await.unwrap().unwrap();
    assert_eq!(after.status, Status::Disabled);
    assert!(after.disabled_reason.unwrap().contains("410"));
    // `subscription.disabled` was published to the watcher in the same commit.
    let got = w.sqs.receive_message().queue_url(&w.p.deliveries_queue_url).max_number_of_messages(10).send().await;
    let jobs: Vec<DeliveryJob> = got
        .unwrap()
        .messages
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let msg = hookflow_aws::queue::Message::parse(m.body().unwrap()).unwrap();
            msg.payload.as_delivery().unwrap().clone()
        })
        .collect();
    let [disabled] = &jobs[..] else { panic!("one subscription.disabled delivery: {jobs:?}") };
    assert_eq!(disabled.delivery.purpose, Purpose::Event { subscription: watcher.id.clone() });
    assert!(disabled.delivery.request.body.as_deref().unwrap().contains("\"subscription.disabled\""));

    // A delivery still queued for the disabled subscription is not sent: it
    // becomes a dead delivery (replayable).
    let again = NewEvent { kind: "order.paid".into(), ..Default::default() }.into_event(3_000).unwrap();
    let late = target.event_job(&again, &again.envelope().to_string(), &Settings::default(), 3_000);
    w.sqs.purge_queue().queue_url(&w.p.deliveries_queue_url).send().await.ok();
    w.dispatcher.store.queues.send(&[late], 3_000).await.unwrap();
    assert_eq!(w.poll().await, (1, 0));
    assert_eq!(gone.seen().len(), 1, "nothing more was sent");
    let dead = table.dead(None).await.unwrap();
    let mut reasons: Vec<&str> = dead.iter().map(|d| d.row.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons, ["its subscription is disabled", "status 410: the endpoint is gone"]);
}

#[tokio::test]
async fn ordered_deliveries_hold_their_key_through_a_retry_while_other_keys_flow() {
    use hookflow_core::subscription::NewEvent;

    let w = world("do").await;
    let (receiver, url) = Receiver::start(&[500], "ok").await;
    let sub = ordered_subscription(&w, &url).await;
    let publish = async |n: u32, k: &str| {
        let data = serde_json::json!({"n": n, "k": k});
        let event = NewEvent { kind: "order.paid".into(), data, ..Default::default() }.into_event(2_000).unwrap();
        let job = sub.event_job(&event, &event.envelope().to_string(), &w.dispatcher.settings, 2_000);
        assert!(job.group.is_some());
        w.dispatcher.store.queues.send(&[job], 2_000).await.unwrap();
    };
    // The request bodies' `n`, in arrival order, with their webhook-id.
    let arrived = || -> Vec<(u64, String)> {
        receiver
            .seen()
            .iter()
            .map(|req| {
                let (head, body) = req.split_once("\r\n\r\n").unwrap();
                let id = head.lines().find_map(|l| l.strip_prefix("webhook-id: ")).unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(body).unwrap();
                (v["data"]["n"].as_u64().unwrap(), id.to_string())
            })
            .collect()
    };

    publish(0, "a").await;
    publish(1, "a").await;
    assert_eq!(w.poll().await, (0, 0), "nothing ordered is on the standard queue");
    // One batch holds both; the first answers 500 and is held for its
    // retry, the second is handed back behind it.
    assert_eq!(w.poll_ordered().await, (2, 2));
    assert_eq!(arrived().iter().map(|a| a.0).collect::<Vec<_>>(), [0]);
    // Another key is not held back by `a`'s retry.
    publish(2, "b").await;
    assert_eq!(w.poll_ordered().await, (1, 0), "only `b`: `a` waits for its head");
    let mut polls = 0;
    while arrived().len() < 4 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        w.poll_ordered().await;
        polls += 1;
        assert!(polls < 30, "the retry never came: {:?}", arrived());
    }
    let got = arrived();
    assert_eq!(got.iter().map(|a| a.0).collect::<Vec<_>>(), [0, 2, 0, 1], "{got:?}");
    assert_eq!(got[0].1, got[2].1, "the retry is the same message (webhook-id)");
    // Done: no held state is left, and the queue is empty.
    let items = w.ddb.scan().table_name(&w.p.table).send().await.unwrap();
    assert!(!hookflow_aws::testing::readable(items.items()).contains("HELD#"), "held state released");
    assert_eq!(w.poll_ordered().await, (0, 0));
}

#[tokio::test]
async fn a_subscription_changed_during_an_attempt_gets_the_health_change_over_the_new_record_without_a_resend() {
    use hookflow_core::commit::{Commit, SubscriptionRow};
    use hookflow_core::subscription::{NewEvent, NewSubscription, Status};

    let w = world("dc").await;
    // Slow enough for the test to change the record meanwhile.
    let (receiver, url) = Receiver::start_slow(&[500], "no", std::time::Duration::from_millis(700)).await;
    let table = w.dispatcher.store.table.clone();
    let new = NewSubscription { url, event_types: vec!["order.*".into()], ..Default::default() };
    let (mut sub, ring) = new.create(1_000).unwrap();
    sub.status = Status::Active;
    w.dispatcher.secrets.put(&sub.keyring_name(), &ring.to_text()).await.unwrap();
    table.write(&Commit { subscriptions: vec![SubscriptionRow::of(&sub)], ..Default::default() }, 1_000).await.unwrap();
    let event = NewEvent { kind: "order.paid".into(), ..Default::default() }.into_event(2_000).unwrap();
    let job = sub.event_job(&event, &event.envelope().to_string(), &w.dispatcher.settings, 2_000);
    w.dispatcher.store.queues.send(&[job], 2_000).await.unwrap();

    let polling = {
        let (sqs, url, dispatcher) = (w.sqs.clone(), w.p.deliveries_queue_url.clone(), w.dispatcher.clone());
        tokio::spawn(async move { hookflow_aws::testing::poll(&sqs, &url, |e| dispatcher.handle(e)).await })
    };
    let mut waited = 0;
    while receiver.seen().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
        assert!(waited < 200, "the attempt never arrived");
    }
    // An admin changes the subscription while the attempt is in flight.
    let mut changed = sub.clone();
    changed.description = "changed meanwhile".into();
    changed.updated_at += 1;
    let row = SubscriptionRow::replacing(&changed, sub.updated_at);
    table.write(&Commit { subscriptions: vec![row], ..Default::default() }, 3_000).await.unwrap();

    assert_eq!(polling.await.unwrap(), (1, 0), "the message is done, not redone");
    assert_eq!(receiver.seen().len(), 1, "the attempt was not sent again");
    let stored = table.subscription(&sub.id).await.unwrap().unwrap();
    assert_eq!(stored.description, "changed meanwhile", "the admin's change stays");
    assert!(stored.failing_since.is_some(), "the failure is recorded over it");
}

/// `job` with its attempt's timeout set to `t`.
fn with_timeout(job: NewJob, t: std::time::Duration) -> NewJob {
    let mut dj = job.payload.as_delivery().unwrap().clone();
    dj.delivery.timeout = t;
    NewJob::delivery(&dj, 0)
}

#[tokio::test]
async fn an_attempt_that_cannot_finish_before_the_deadline_is_handed_back_unstarted_and_its_neighbours_sent_once() {
    use std::time::Duration;
    let w = world("dl").await;
    let (receiver, url) = Receiver::start(&[], "ok").await;
    let mut jobs: Vec<NewJob> = (1..=2).map(|n| with_timeout(delivery(&url, n), Duration::from_secs(1))).collect();
    jobs.push(with_timeout(delivery(&url, 3), Duration::from_secs(20)));
    w.dispatcher.store.queues.send(&jobs, 0).await.unwrap();
    // The invocation has 10 s left: a 20 s attempt (and the time kept for
    // its commit) cannot finish in it; the 1 s ones can.
    let deadline = hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock) + 10_000;
    let dispatcher = w.dispatcher.clone();
    let (received, failed) = hookflow_aws::testing::poll(&w.sqs, &w.p.deliveries_queue_url, move |e| async move {
        dispatcher.handle_by(e, Some(deadline)).await
    })
    .await;
    assert_eq!((received, failed), (3, 1), "the late one handed back");
    assert_eq!(receiver.seen().len(), 2, "the neighbours sent, the late one not started");
    // Handed back visible at once; short of time again, handed back again
    // (its second receive); the third time it is made with the time there
    // is, not handed back until the DLQ takes it unsent.
    for (round, expect) in [(2, (1, 1)), (3, (1, 0))] {
        let dispatcher = w.dispatcher.clone();
        let deadline = hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock) + 10_000;
        let got = hookflow_aws::testing::poll(&w.sqs, &w.p.deliveries_queue_url, move |e| async move {
            dispatcher.handle_by(e, Some(deadline)).await
        })
        .await;
        assert_eq!(got, expect, "receive {round}: came back at once");
    }
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let ids: std::collections::HashSet<String> = seen
        .iter()
        .filter_map(|r| r.lines().find(|l| l.to_ascii_lowercase().starts_with("webhook-id:")).map(String::from))
        .collect();
    assert_eq!(ids.len(), 3, "three deliveries, each once: {ids:?}");
    assert_eq!(w.poll().await, (0, 0), "nothing left");
}

/// The subscription of the ordered tests: `per_key` on `data.k`, active,
/// its keyring in Secrets Manager.
async fn ordered_subscription(w: &common::World, url: &str) -> hookflow_core::subscription::Subscription {
    use hookflow_core::subscription::{NewSubscription, Ordering};
    active_subscription(
        w,
        NewSubscription {
            url: url.to_string(),
            event_types: vec!["order.*".into()],
            ordering: Ordering::PerKey,
            key: Some("{{ data.k }}".into()),
            ..Default::default()
        },
    )
    .await
}

/// `new`, made active, its keys in the secret store.
async fn active_subscription(
    w: &common::World,
    new: hookflow_core::subscription::NewSubscription,
) -> hookflow_core::subscription::Subscription {
    use hookflow_core::commit::{Commit, SubscriptionRow};
    use hookflow_core::subscription::Status;
    let (mut sub, ring) = new.create(1_000).unwrap();
    sub.status = Status::Active;
    w.dispatcher.secrets.put(&sub.keyring_name(), &ring.to_text()).await.unwrap();
    let table = &w.dispatcher.store.table;
    table.write(&Commit { subscriptions: vec![SubscriptionRow::of(&sub)], ..Default::default() }, 1_000).await.unwrap();
    sub
}

#[tokio::test]
async fn an_ordered_delivery_ends_dead_and_listed_before_its_queue_would_drop_it() {
    use hookflow_core::subscription::{NewEvent, Settings};

    let w = world("dk").await;
    let (receiver, url) = Receiver::start(&[500], "ok").await;
    let sub = ordered_subscription(&w, &url).await;
    // Retries an hour apart: the queue's retention ends them first.
    let hourly = Settings::default().with_schedules(&[std::time::Duration::from_secs(3600)], &[]);
    for n in 0..2 {
        let data = serde_json::json!({"n": n, "k": "a"});
        let event = NewEvent { kind: "order.paid".into(), data, ..Default::default() }.into_event(2_000).unwrap();
        let job = sub.event_job(&event, &event.envelope().to_string(), &hourly, 2_000);
        w.dispatcher.store.queues.send(&[job], 2_000).await.unwrap();
    }
    // As if the queue had held them for most of its retention (14 days,
    // given up a day before): the head has ten minutes left, less than
    // its retry's hour; the one behind it is a minute past its limit.
    let now = hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock);
    let day = 86_400_000;
    let polled = hookflow_aws::testing::poll(&w.sqs, &w.p.ordered_queue_url, |mut event| {
        assert_eq!(event.records.len(), 2, "one batch holds the key's two messages");
        for (r, sent) in event.records.iter_mut().zip([now - 13 * day + 600_000, now - 13 * day - 60_000]) {
            r.attributes.insert("SentTimestamp".into(), sent.to_string());
        }
        w.dispatcher.handle(event)
    })
    .await;
    assert_eq!(polled, (2, 0), "both done with: neither is left for the queue to drop");
    assert_eq!(receiver.seen().len(), 1, "the head attempted once; the one past its limit not at all");
    let dead = w.dispatcher.store.table.dead(Some(&sub.tenant)).await.unwrap();
    let reasons: Vec<&str> = dead.iter().map(|d| d.row.reason.as_str()).collect();
    assert_eq!(dead.len(), 2, "both listed, replayable: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("gave up after 1 attempt")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("retention (14days) nearly ran out")), "{reasons:?}");
    // Replayed, each gets its own retries again, not what the queue left.
    for d in &dead {
        let job = w.dispatcher.store.table.dead_job(&d.row.tenant, &d.row.delivery_id).await.unwrap().unwrap();
        let job: hookflow_core::commit::DeliveryJob = serde_json::from_str(&job).unwrap();
        assert_eq!(job.delivery.retry.max_age, None, "{}", d.row.reason);
    }
    let items = w.ddb.scan().table_name(&w.p.table).send().await.unwrap();
    assert!(!hookflow_aws::testing::readable(items.items()).contains("HELD#"), "no held state left");
    assert_eq!(w.poll_ordered().await, (0, 0));
}

#[tokio::test]
async fn a_delivery_in_a_dead_letter_queue_is_read_back_as_a_dead_delivery_and_replays_with_its_id() {
    let w = world("dq").await;
    let (receiver, url) = Receiver::start(&[], "ok").await;
    let job = delivery(&url, 7);
    let delivery_id = job.payload.as_delivery().unwrap().delivery.id.clone();
    // What the queue's redrive does: the message, as it was sent, moved to
    // the DLQ.
    w.dispatcher.store.queues.send(&[job], 0).await.unwrap();
    let sqs = &w.sqs;
    let got = sqs.receive_message().queue_url(&w.p.deliveries_queue_url).send().await.unwrap();
    let [m] = got.messages() else { panic!("one message: {got:?}") };
    sqs.send_message().queue_url(&w.p.deliveries_dlq_url).message_body(m.body().unwrap()).send().await.unwrap();
    sqs.delete_message()
        .queue_url(&w.p.deliveries_queue_url)
        .receipt_handle(m.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();

    let polled = hookflow_aws::testing::poll(sqs, &w.p.deliveries_dlq_url, |e| w.dispatcher.handle(e)).await;
    assert_eq!(polled, (1, 0), "read back and deleted");
    let table = &w.dispatcher.store.table;
    let dead = table.dead(Some("acme")).await.unwrap();
    let [d] = &dead[..] else { panic!("listed: {dead:?}") };
    assert_eq!(d.row.delivery_id, delivery_id);
    assert!(d.row.reason.contains("dead-letter queue"), "{}", d.row.reason);
    assert!(receiver.seen().is_empty(), "reading back sends nothing");

    w.dispatcher.store.replay(d, 1).await.unwrap();
    assert_eq!(w.poll().await, (1, 0));
    let seen = receiver.seen();
    let [req] = &seen[..] else { panic!("replayed once: {seen:?}") };
    assert!(req.contains(&format!("webhook-id: {delivery_id}")), "the same webhook-id: {req}");
    assert!(table.dead(Some("acme")).await.unwrap().is_empty(), "forgotten once replayed");
}

/// An active subscription to `url` paced at `per_second`, ordered by
/// `data.k` when `ordered`.
async fn paced_subscription(
    w: &common::World,
    url: &str,
    per_second: f64,
    ordered: bool,
) -> hookflow_core::subscription::Subscription {
    use hookflow_core::limit::RateLimit;
    use hookflow_core::subscription::{NewSubscription, Ordering};
    let new = NewSubscription {
        url: url.to_string(),
        event_types: vec!["order.*".into()],
        ordering: if ordered { Ordering::PerKey } else { Ordering::None },
        key: ordered.then(|| "{{ data.k }}".into()),
        rate_limit: Some(RateLimit { per_second, burst: 1 }),
        ..Default::default()
    };
    active_subscription(w, new).await
}

#[tokio::test]
async fn a_paced_subscription_s_deliveries_wait_in_the_queue_unspent_on_both_queues_and_all_arrive() {
    use hookflow_core::subscription::NewEvent;

    let w = world("dz").await;
    let (receiver, url) = Receiver::start(&[], "ok").await;
    let plain = paced_subscription(&w, &url, 0.5, false).await;
    let ordered = paced_subscription(&w, &url, 0.5, true).await;
    let now = hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock);
    let mut ids = Vec::new();
    for (sub, n) in [(&plain, 0), (&plain, 1), (&plain, 2), (&ordered, 10), (&ordered, 11)] {
        let data = serde_json::json!({"n": n, "k": "a"});
        let event = NewEvent { kind: "order.paid".into(), data, ..Default::default() }.into_event(now).unwrap();
        let job = sub.event_job(&event, &event.envelope().to_string(), &w.dispatcher.settings, now);
        ids.push(job.id.clone());
        w.dispatcher.store.queues.send(&[job], now).await.unwrap();
    }
    assert_eq!(w.poll().await, (3, 0), "waiting is not failing");
    assert_eq!(receiver.seen().len(), 1, "one slot now; the others wait for theirs");
    assert_eq!(w.poll_ordered().await.0, 2);
    assert_eq!(receiver.seen().len(), 2, "and the ordered one's first");
    // The ordered one waiting keeps its slot and its wait in its held
    // state (not counted in its age), its attempts unspent.
    let held = w.dispatcher.store.table.held(&ids[4]).await.unwrap().expect("held while it waits");
    assert!(held.slot.is_some() && held.waited_ms > 0 && held.attempts == 0, "{held:?}");
    let arrived = || -> Vec<u64> {
        receiver
            .seen()
            .iter()
            .map(|req| {
                let body = req.split_once("\r\n\r\n").unwrap().1;
                serde_json::from_str::<serde_json::Value>(body).unwrap()["data"]["n"].as_u64().unwrap()
            })
            .collect()
    };
    let mut polls = 0;
    while arrived().len() < 5 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        w.poll().await;
        w.poll_ordered().await;
        polls += 1;
        assert!(polls < 30, "a waiting delivery never came: {:?}", arrived());
    }
    let got = arrived();
    let ordered_got: Vec<u64> = got.iter().copied().filter(|n| *n >= 10).collect();
    assert_eq!(ordered_got, [10, 11], "its key's order kept while it waited");
    let mut plain_got: Vec<u64> = got.iter().copied().filter(|n| *n < 10).collect();
    plain_got.sort();
    assert_eq!(plain_got, [0, 1, 2], "each once");
    // Waiting spent no attempt: one attempt entry a delivery, all first.
    let items = w.ddb.scan().table_name(&w.p.table).send().await.unwrap();
    let text = hookflow_aws::testing::readable(items.items());
    assert_eq!(text.matches(r#"attempt\":1"#).count(), 5, "one attempt entry a delivery: {text}");
    assert!(!text.contains(r#"attempt\":2"#), "no delivery took a second attempt");
    assert_eq!(w.poll().await, (0, 0));
    assert_eq!(w.poll_ordered().await, (0, 0));
}

/// A subscription to an SQS queue: its events arrive as messages (the
/// envelope, the `webhook-id` and the headers as attributes), the message
/// id in its attempt's log entry. The same delivery received twice (the
/// queue's at-least-once) sends twice with the same `webhook-id`; to a
/// FIFO queue, which dedupes by it, once.
#[tokio::test]
async fn a_subscription_to_an_sqs_queue_gets_messages_and_a_redelivery_keeps_the_webhook_id() {
    use hookflow_core::subscription::{NewEvent, NewSubscription, Status};

    let w = world("dd").await;
    let mut urls = Vec::new();
    let mut subs = Vec::new();
    for name in [format!("{}-dest", w.p.table), format!("{}-dest.fifo", w.p.table)] {
        let mut req = w.sqs.create_queue().queue_name(&name);
        if name.ends_with(".fifo") {
            req = req.attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true");
        }
        urls.push(req.send().await.unwrap().queue_url.unwrap());
        let headers = serde_json::json!({"X-Team": "crm"}).as_object().cloned().unwrap();
        let new = NewSubscription {
            url: format!("arn:aws:sqs:us-east-1:123456789012:{name}"),
            event_types: vec!["order.*".into()],
            headers,
            ..Default::default()
        };
        let sub = active_subscription(&w, new).await;
        assert_eq!(sub.status, Status::Active);
        subs.push(sub);
    }
    let now = hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock);
    let data = serde_json::json!({"n": 1});
    let event = NewEvent { kind: "order.paid".into(), data, ..Default::default() }.into_event(now).unwrap();
    let body = event.envelope().to_string();
    for sub in &subs {
        let job = sub.event_job(&event, &body, &w.dispatcher.settings, now);
        // The same message twice: a redelivery after a send whose commit was lost.
        w.dispatcher.store.queues.send(std::slice::from_ref(&job), now).await.unwrap();
        w.dispatcher.store.queues.send(&[job], now).await.unwrap();
    }
    let mut handled = 0;
    for _ in 0..10 {
        handled += w.poll().await.0;
        if handled >= 4 {
            break;
        }
    }
    assert_eq!(handled, 4);
    let messages = |url: String| {
        let sqs = w.sqs.clone();
        async move {
            let out = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            out.messages.unwrap_or_default()
        }
    };
    let plain = messages(urls[0].clone()).await;
    assert_eq!(plain.len(), 2, "at least once: both receipts sent");
    let ids: Vec<String> = plain
        .iter()
        .map(|m| m.message_attributes().unwrap()["webhook-id"].string_value().unwrap().to_string())
        .collect();
    assert_eq!(ids[0], ids[1], "with one webhook-id");
    for m in &plain {
        assert_eq!(m.body(), Some(body.as_str()));
        let attrs = m.message_attributes().unwrap();
        assert_eq!(attrs["x-team"].string_value(), Some("crm"));
        assert!(attrs["webhook-signature"].string_value().unwrap().starts_with("v1,"), "signed: {attrs:?}");
    }
    assert_eq!(messages(urls[1].clone()).await.len(), 1, "the FIFO queue deduped the webhook-id");
    let items = w.ddb.scan().table_name(&w.p.table).send().await.unwrap();
    let text = hookflow_aws::testing::readable(items.items());
    assert!(text.contains(plain[0].message_id().unwrap()), "the attempt's log has AWS's message id: {text}");
}

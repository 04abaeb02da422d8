//! Admin reads against a large history in moto: each costs what its page
//! returns, never the history behind it (#25 item 3). The requests are
//! counted as the SDK sends them ([`Counted`]).

use hookflow_aws::outbox::LogCopy;
use hookflow_aws::table::{Requests, Table};
use hookflow_aws::testing::{Counted, sdk};
use hookflow_aws::{keys, provision};
use hookflow_core::commit::{Commit, EntryKind, EventRow, LogEntry};

/// One test at a time: moto copies every table for each transaction, and
/// a write to another table during that copy fails it (a 500).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A fresh table in moto.
async fn table_name(conf: &aws_config::SdkConfig) -> String {
    let prefix = format!("h{}x{}", std::process::id(), now_ms() % 1_000_000);
    let p = provision::create(&aws_sdk_dynamodb::Client::new(conf), &aws_sdk_sqs::Client::new(conf), &prefix, 5)
        .await
        .expect("provisioning in moto");
    p.table
}

fn rejected(tenant: &str, flow: &str, at: i64) -> LogEntry {
    LogEntry {
        at,
        kind: EntryKind::Inbound,
        tenant: Some(tenant.into()),
        flow_id: Some(flow.into()),
        event_id: Some(format!("evt_{at}")),
        outcome: Some("rejected_401".into()),
        detail: serde_json::json!({"status": 401}),
        ..Default::default()
    }
}

/// 20,000 requests of tenant `acme` (100 in each of 200 hours spread over
/// the last 300 days, one of each hour for flow `rare`, one in a fifth of
/// the hours for flow `sparse`), and an event in each of those hours. The
/// requests are written as the outbox's copies are (`BatchWriteItem`: moto
/// copies the whole table for each transaction), their hours indexed as
/// every write does.
async fn plant(table: &Table, now: i64) -> Vec<i64> {
    let hours: Vec<i64> = (1..=200).map(|i| (now - i * 36 * HOUR).div_euclid(HOUR)).collect();
    for &h in &hours {
        let at = h * HOUR + 500;
        let event = EventRow {
            tenant: "acme".into(),
            id: format!("evt_{h}"),
            kind: "order.created".into(),
            at,
            doc: serde_json::json!({"id": format!("evt_{h}"), "type": "order.created", "tenant": "acme", "at": at,
                                    "data": {}})
            .to_string(),
            expires_at: now + DAY,
        };
        table.write(&Commit { event: Some(event), ..Default::default() }, now).await.expect("planting an event");
    }
    let copies: Vec<LogCopy> = hours
        .iter()
        .flat_map(|h| (0..100).map(move |i| (h, i)))
        .map(|(h, i)| {
            let flow = match i {
                7 => "rare",
                8 if h % 5 == 0 => "sparse",
                _ => "busy",
            };
            let entry = rejected("acme", flow, h * HOUR + i * 1_000);
            let (pk, sk) = (keys::tenant_log("acme", entry.at), keys::tenant_log_sort(entry.at, 0, "x"));
            LogCopy { pk, sk, entry }
        })
        .collect();
    table.write_copies(&copies).await.expect("planting requests");
    hours
}

#[tokio::test]
async fn a_page_of_the_log_or_of_events_reads_the_hours_it_returns_not_a_year_of_hours() {
    let _one_at_a_time = SERIAL.lock().await;
    let conf = sdk().await;
    let name = table_name(&conf).await;
    let now = now_ms();
    let writer = Table::new(aws_sdk_dynamodb::Client::new(&conf), &name, 365);
    let mut hours = plant(&writer, now).await;
    hours.sort();

    // A reader of its own (another function's container: nothing cached).
    let counted = Counted::default();
    let reader = Table::new(counted.client(&conf), &name, 365);
    let year = (now - 365 * DAY, now);
    let all = Requests::default();
    let page = reader.tenant_log_page("acme", year, now, 50, 500, &all, |_| true).await.unwrap();
    let first = counted.take();
    assert_eq!(page.len(), 50);
    let newest = *hours.last().unwrap();
    assert!(page.iter().all(|e| e.at.div_euclid(HOUR) == newest), "the newest hour's requests");
    assert_eq!(page.last().unwrap().at, newest * HOUR + 99_000, "the newest request last");
    // The first read learns the table's creation and the index's start
    // (kept after), reads the index and the newest hour; the hours written
    // since the index began (this one and the next, none here) are read
    // as an earlier version wrote them.
    assert!(first.len() <= 7, "a page of 50 costs a few requests, not one an hour: {first:?}");
    assert_eq!(first.iter().filter(|op| *op == "DescribeTable").count(), 1, "{first:?}");

    // The next page (older than the first's oldest): the same few reads.
    let until = page[0].at - 1;
    let older = reader.tenant_log_page("acme", (year.0, until), now, 50, 500, &all, |_| true).await.unwrap();
    let second = counted.take();
    assert_eq!(older.len(), 50);
    assert!(older.iter().all(|e| e.at <= until && e.at.div_euclid(HOUR) == newest));
    assert!(second.len() <= 4, "{second:?}");
    assert!(!second.iter().any(|op| op == "DescribeTable" || op == "GetItem"), "kept: {second:?}");

    // One row a request (`GET /v1/requests`): the newest 20 requests, the
    // read stopped there (a chunk of 16 at most past it), however many
    // entries its filter would keep.
    let heads = Requests { flow_id: None, most: Some(20) };
    let page = reader.tenant_log_page("acme", year, now, usize::MAX, 20, &heads, |_| true).await.unwrap();
    let reads = counted.take();
    assert!((20..=32).contains(&page.len()), "the newest requests, not the year's: {}", page.len());
    assert!(page.iter().all(|e| e.at.div_euclid(HOUR) == newest));
    assert!(reads.len() <= 4, "{reads:?}");

    // A flow seen once an hour: the index skips the hours without
    // requests; the table filters the hours it reads.
    let rare = Requests { flow_id: Some("rare".into()), most: None };
    let page = reader.tenant_log_page("acme", year, now, 5, 500, &rare, |_| true).await.unwrap();
    let reads = counted.take();
    assert_eq!(page.iter().map(|e| e.at.div_euclid(HOUR)).collect::<Vec<_>>(), hours[hours.len() - 5..]);
    assert!(page.iter().all(|e| e.flow_id.as_deref() == Some("rare")));
    assert!(reads.len() <= 12, "five hours read, and the index: {reads:?}");

    // A flow seen in a few hours of the 200: its own index lists them.
    let sparse = Requests { flow_id: Some("sparse".into()), most: None };
    let page = reader.tenant_log_page("acme", year, now, 50, 500, &sparse, |_| true).await.unwrap();
    let reads = counted.take();
    let expected: Vec<i64> = hours.iter().copied().filter(|h| h % 5 == 0).collect();
    assert!(!expected.is_empty());
    assert_eq!(page.iter().map(|e| e.at.div_euclid(HOUR)).collect::<Vec<_>>(), expected);
    assert!(reads.len() <= expected.len() + 5, "its hours and the index, not 200 hours: {reads:?}");

    // An event's entries, found by its id alone: a rejected request (kept
    // by event), an accepted one (its run, named by its event id), a
    // publish (kept by event; its deliveries under its id, the run it
    // started named in it).
    let entry = |kind: EntryKind, event: &str, run: Option<&str>, outcome: &str, detail: serde_json::Value| LogEntry {
        at: now - 10,
        kind,
        tenant: Some("acme".into()),
        flow_id: Some("f".into()),
        run_id: run.map(String::from),
        event_id: Some(event.into()),
        outcome: Some(outcome.into()),
        detail,
        ..Default::default()
    };
    let accepted_run = keys::run_of_event("evt_a1").unwrap();
    let commits = [
        entry(EntryKind::Inbound, "evt_r1", None, "rejected_401", serde_json::json!({})),
        entry(EntryKind::Inbound, "evt_a1", Some(&accepted_run), "accepted", serde_json::json!({})),
        entry(EntryKind::Step, "evt_a1", Some(&accepted_run), "sent", serde_json::json!({})),
        entry(EntryKind::Event, "evt_p1", None, "published", serde_json::json!({"runs": ["run_started"]})),
        entry(EntryKind::Attempt, "evt_p1", Some("evt_p1"), "success", serde_json::json!({})),
        entry(EntryKind::Step, "evt_p1", Some("run_started"), "sent", serde_json::json!({})),
    ];
    for e in commits {
        writer.write(&Commit { log: vec![e], ..Default::default() }, now).await.unwrap();
    }
    counted.take();
    for (event, outcomes) in [
        ("evt_r1", vec!["rejected_401"]),
        ("evt_a1", vec!["accepted", "sent"]),
        ("evt_p1", vec!["published", "success", "sent"]),
    ] {
        let found = reader.event_entries("acme", event, now).await.unwrap();
        let mut got: Vec<&str> = found.iter().filter_map(|e| e.outcome.as_deref()).collect();
        got.sort();
        let mut want = outcomes.clone();
        want.sort();
        assert_eq!(got, want, "{event}");
        let reads = counted.take();
        assert!(reads.len() <= 4, "{event}: its own reads, not the tenant's hours: {reads:?}");
    }

    // Events, oldest first (an enable's replay) and newest first.
    let events = reader.events("acme", year.0, now, 10).await.unwrap();
    let reads = counted.take();
    assert_eq!(
        events.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        hours[..10].iter().map(|h| format!("evt_{h}")).collect::<Vec<_>>()
    );
    assert!(reads.len() <= 15, "ten hours and the index: {reads:?}");
    let recent = reader.recent_events("acme", year, now, 3, |kind| kind == "order.created").await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        hours.iter().rev().take(3).map(|h| format!("evt_{h}")).collect::<Vec<_>>()
    );
    assert!(counted.take().len() <= 6);
}

#[tokio::test]
async fn hours_written_before_the_index_are_read_one_by_one_until_it_begins() {
    let _one_at_a_time = SERIAL.lock().await;
    let conf = sdk().await;
    let name = table_name(&conf).await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let now = now_ms();
    // A request as an earlier version writes it: no index entry.
    let unindexed = |at: i64, sk: &str| {
        use aws_sdk_dynamodb::types::AttributeValue::{N, S};
        let item = std::collections::HashMap::from([
            ("pk".to_string(), S(keys::tenant_log("acme", at))),
            ("sk".to_string(), S(format!("{at:013}#000#{sk}"))),
            ("at".to_string(), N(at.to_string())),
            ("kind".to_string(), S("inbound".into())),
            ("tenant".to_string(), S("acme".into())),
            ("outcome".to_string(), S("rejected_401".into())),
            ("expires_at".to_string(), N((now / 1000 + 86_400).to_string())),
        ]);
        ddb.put_item().table_name(&name).set_item(Some(item)).send()
    };
    unindexed(now, "a").await.unwrap();
    let all = Requests::default();
    let ats = |page: Vec<LogEntry>| page.iter().map(|e| e.at).collect::<Vec<_>>();
    let reader = Table::new(ddb.clone(), &name, 14);
    let listed = reader.tenant_log_page("acme", (now - DAY, now), now, 10, 10, &all, |_| true).await.unwrap();
    assert_eq!(ats(listed), [now], "no index yet: every hour since the table's creation is read");

    // This version writes: the index begins at its hour. Functions of the
    // earlier version still running during the update write into the next
    // hour, unindexed, and are read; an hour later than that is not (a
    // rollback's: README, "Upgrading").
    let writer = Table::new(ddb.clone(), &name, 14);
    let new = rejected("acme", "f", now + 1);
    writer.write(&Commit { log: vec![new.clone()], ..Default::default() }, now).await.unwrap();
    let since = ddb
        .get_item()
        .table_name(&name)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("HOURS".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("SINCE".into()))
        .send()
        .await
        .unwrap();
    let since: i64 = since.item.unwrap()["hour"].as_n().unwrap().parse().unwrap();
    let (late, lost) = ((since + 1) * HOUR + 5, (since + 2) * HOUR + 5);
    unindexed(late, "b").await.unwrap();
    unindexed(lost, "c").await.unwrap();
    let ahead = (since + 3) * HOUR;
    let reader = Table::new(ddb.clone(), &name, 14);
    let listed = reader.tenant_log_page("acme", (now - DAY, ahead), ahead, 10, 10, &all, |_| true).await.unwrap();
    assert_eq!(ats(listed), [now, now + 1, late]);
    // `since` after `until`: nothing, not an error.
    let none = reader.tenant_log_page("acme", (now, now - 1), now, 10, 10, &all, |_| true).await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_page_of_dead_deliveries_is_read_from_its_cursor_and_the_earlier_versions_rows_are_listed_once() {
    let _one_at_a_time = SERIAL.lock().await;
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    use hookflow_aws::table::DeadFilter;
    let conf = sdk().await;
    let name = table_name(&conf).await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let now = now_ms();
    // 3,000 dead rows as the earlier version wrote them (`DEAD` only, no
    // expiry), 600 bytes of reason each: 1.8 MB, more than one `Query`
    // page. The last ten are past a retention (this version's rows).
    let row = |i: i64| {
        let s = |v: String| AttributeValue::S(v);
        let mut item = std::collections::HashMap::from([
            ("pk".to_string(), s("DEAD".into())),
            ("sk".to_string(), s(format!("acme#d{i:05}"))),
            ("tenant".to_string(), s("acme".into())),
            ("delivery_id".to_string(), s(format!("d{i:05}"))),
            ("flow_id".to_string(), s(if i % 100 == 0 { "rare" } else { "busy" }.into())),
            ("run_id".to_string(), s(format!("run_{i}"))),
            ("reason".to_string(), s(format!("status 500 {}", "x".repeat(600)))),
            ("at".to_string(), AttributeValue::N((now - 10_000 + i).to_string())),
        ]);
        if i >= 2_990 {
            item.insert("expires_at".into(), AttributeValue::N((now / 1000 - 1).to_string()));
        }
        item
    };
    let rows: Vec<WriteRequest> = (0..3_000)
        .map(|i| {
            WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(row(i))).build().unwrap()).build()
        })
        .collect();
    for chunk in rows.chunks(25) {
        ddb.batch_write_item().request_items(&name, chunk.to_vec()).send().await.unwrap();
    }

    let counted = Counted::default();
    let reader = Table::new(counted.client(&conf), &name, 14);
    let all = DeadFilter::default();
    let first = reader.dead_page(all, None, 0, 20, now).await.unwrap();
    let ids = |page: &[hookflow_core::commit::DeadDelivery]| {
        page.iter().map(|d| d.row.delivery_id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), (0..20).map(|i| format!("d{i:05}")).collect::<Vec<_>>());
    // The old rows are listed 1,000 a read (each read bounded in time),
    // the first read's the oldest; then never again.
    let mut reads = vec![counted.take()];
    while reads.last().unwrap().iter().any(|op| op == "BatchWriteItem") {
        assert!(reads.len() <= 5, "{} reads to list 3,000 rows", reads.len());
        reader.dead_page(all, None, 0, 1, now).await.unwrap();
        reads.push(counted.take());
    }
    let batches: Vec<usize> =
        reads.iter().map(|read| read.iter().filter(|op| *op == "BatchWriteItem").count()).collect();
    // Three reads of 1,000 rows (each row, its listing and its reference:
    // 120 batches, and the mark); the fourth finds none left and marks it
    // done; the fifth reads the mark.
    assert_eq!(batches, [121, 121, 121, 1, 0]);

    // From a cursor in the middle: one `Query`, whatever lies before it.
    let at = |i: i64| now - 10_000 + i;
    let page = reader.dead_page(all, Some((at(1_500), "d01500")), 0, 20, now).await.unwrap();
    assert_eq!(ids(&page), (1_501..1_521).map(|i| format!("d{i:05}")).collect::<Vec<_>>());
    assert_eq!(counted.take(), ["Query"], "one page, one request");
    // The count is the table's (no row sent back); expired rows are not
    // listed or counted, and a flow's rows are filtered by the table.
    assert_eq!(reader.dead_count(all, now).await.unwrap(), 2_990);
    let last = reader.dead_page(all, Some((at(2_985), "d02985")), 0, 20, now).await.unwrap();
    assert_eq!(ids(&last), ["d02986", "d02987", "d02988", "d02989"]);
    let rare = DeadFilter { tenant: None, flow_id: Some("rare") };
    assert_eq!(reader.dead_count(rare, now).await.unwrap(), 30);
    assert_eq!(reader.dead_page(rare, None, 3, 2, now).await.unwrap()[0].row.delivery_id, "d00300");
    counted.take();

    // A replay by id alone finds the tenant with one `GetItem`; forgetting
    // the row takes its listing and reference with it.
    assert_eq!(reader.dead_tenant("d01234").await.unwrap().as_deref(), Some("acme"));
    assert_eq!(counted.take(), ["GetItem"]);
    let one = reader.dead_one("acme", "d01234").await.unwrap().expect("the row");
    reader.forget_dead(&one).await.unwrap();
    assert_eq!(reader.dead_tenant("d01234").await.unwrap(), None);
    let around = reader.dead_page(all, Some((at(1_233), "d01233")), 0, 2, now).await.unwrap();
    assert_eq!(ids(&around), ["d01235", "d01236"]);
    // A new container does not list the old rows again.
    let counted = Counted::default();
    let other = Table::new(counted.client(&conf), &name, 14);
    assert_eq!(other.dead_page(all, None, 0, 1, now).await.unwrap().len(), 1);
    assert_eq!(counted.take(), ["GetItem", "Query"]);
}

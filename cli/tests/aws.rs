//! `hookflow local-aws up` and `hookflow apply` against moto's server.

use std::process::Command;

fn hookflow(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(args)
        .env("AWS_ENDPOINT_URL", hookflow_aws::testing::moto_endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("HOOKFLOW_TABLE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn apply_validates_diffs_writes_versions_and_prints_trigger_urls() {
    let prefix = format!("cli{}", std::process::id());
    let (code, out, err) = hookflow(&["local-aws", "up", "--prefix", &prefix]);
    assert_eq!(code, 0, "{err}");
    let table = format!("{prefix}-table");
    assert!(out.contains(&format!("export HOOKFLOW_TABLE={table}")), "{out}");

    let dir = tempdir();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello.yaml"), dir.join("hello.yaml")).unwrap();
    let flows = dir.to_str().unwrap();

    let (code, out, _) = hookflow(&["apply", "--flows", flows, "--table", &table, "--dry-run"]);
    assert_eq!(code, 0);
    assert!(out.contains(": new") && out.contains("+ id:"), "{out}");

    let api = "https://abc.execute-api.eu-west-1.amazonaws.com";
    let (code, out, err) = hookflow(&["apply", "--flows", flows, "--table", &table, "--api-url", api]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": v1") && out.contains(&format!("{api}/hooks/")), "{out}");
    let (_, out, _) = hookflow(&["apply", "--flows", flows, "--table", &table]);
    assert!(out.contains("unchanged (v1)"), "{out}");

    // An edit shows as a diff, then becomes v2.
    let text = std::fs::read_to_string(dir.join("hello.yaml")).unwrap();
    std::fs::write(dir.join("hello.yaml"), format!("{text}\n# edited\n")).unwrap();
    let (_, out, _) = hookflow(&["apply", "--flows", flows, "--table", &table, "--dry-run"]);
    assert!(out.contains("v1 -> v2") && out.contains("+ # edited"), "{out}");
    let (_, out, _) = hookflow(&["apply", "--flows", flows, "--table", &table]);
    assert!(out.contains(": v2"), "{out}");

    // One invalid flow: nothing is written, and the error names file and line.
    std::fs::write(
        dir.join("bad.yaml"),
        "id: bad\ntenant: t\ntrigger: { type: webhook, path: x }\nsteps: [{ id: a, type: nope }]\n",
    )
    .unwrap();
    std::fs::write(dir.join("hello.yaml"), format!("{text}\n# edited again\n")).unwrap();
    let (code, out, err) = hookflow(&["apply", "--flows", flows, "--table", &table]);
    assert_eq!(code, 1);
    assert!(out.contains("bad.yaml:4:"), "{out}");
    assert!(err.contains("nothing applied"), "{err}");
    let (_, out, _) =
        hookflow(&["apply", "--flows", dir.join("hello.yaml").to_str().unwrap(), "--table", &table, "--dry-run"]);
    assert!(out.contains("v2 -> v3"), "hello was not written: {out}");
}

#[test]
fn local_aws_up_refuses_without_an_emulator_endpoint() {
    let out = Command::new(env!("CARGO_BIN_EXE_hookflow"))
        .args(["local-aws", "up"])
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AWS_ENDPOINT_URL is not set"));
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hookflow-apply-{}-{}", std::process::id(), hookflow_local_now()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hookflow_local_now() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

const FORWARD: &str = r#"
id: orders
tenant: acme
trigger: { type: webhook, path: orders }
steps:
  - id: forward
    type: http
    url: https://partner.example/orders
    body: { json: { id: "{{ trigger.body.id }}" } }
"#;

/// A run with its delivery declared dead, and a rejected request, written
/// by the same code the functions use.
async fn seed(p: &hookflow_aws::provision::Provisioned) -> (String, String) {
    use hookflow_core::commit::{DeadRow, JobKind, LogEntry};
    let conf = hookflow_aws::testing::sdk().await;
    let store = hookflow_aws::store::Store {
        table: hookflow_aws::table::Table::new(aws_sdk_dynamodb::Client::new(&conf), &p.table, 14),
        queues: hookflow_aws::queue::Queues::new(
            aws_sdk_sqs::Client::new(&conf),
            &p.runs_queue_url,
            &p.deliveries_queue_url,
        ),
    };
    let flow = hookflow_core::load_flow("orders.yaml".as_ref(), FORWARD).unwrap();
    let request = hookflow_core::run::InboundRequest {
        method: "POST".into(),
        path: "/hooks/acme/orders".into(),
        body: r#"{"id": 7}"#.into(),
        source_ip: "203.0.113.9".into(),
        received_at: "2026-11-24T00:00:00Z".into(),
        ..Default::default()
    };
    let now = hookflow_local::now_ms();
    let accepted = hookflow_core::inbound::accept(&flow, &request, ("run_cli1", "evt_cli1"), now, None);
    let mut commit = accepted.outcome.commit;
    let job = commit.jobs.iter().find(|j| j.kind() == JobKind::Delivery).expect("a delivery job").clone();
    let delivery = job.payload.as_delivery().unwrap().clone();
    commit.jobs.clear(); // it "ran out of attempts": dead, not queued
    commit.dead = Some(DeadRow {
        delivery_id: delivery.delivery.id.clone(),
        tenant: "acme".into(),
        flow_id: "orders".into(),
        run_id: "run_cli1".into(),
        reason: "halted on 400".into(),
        job: job.payload.text(),
    });
    commit.log.push(LogEntry {
        at: now + 1,
        kind: hookflow_core::commit::EntryKind::Inbound,
        tenant: Some("acme".into()),
        event_id: Some("evt_cli2".into()),
        outcome: Some("rejected_404".into()),
        detail: serde_json::json!({"method": "POST", "path": "/hooks/acme/nope", "reason": "not found"}),
        ..Default::default()
    });
    store.apply(commit, now).await.unwrap();
    (delivery.delivery.id, p.deliveries_queue_url.clone())
}

#[test]
fn logs_runs_and_dead_deliveries_read_from_the_table_and_replay_through_the_queue() {
    let prefix = format!("rec{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (p, sqs) = rt.block_on(async {
        let conf = hookflow_aws::testing::sdk().await;
        let ddb = aws_sdk_dynamodb::Client::new(&conf);
        let sqs = aws_sdk_sqs::Client::new(&conf);
        (hookflow_aws::provision::create(&ddb, &sqs, &prefix, 5).await.unwrap(), sqs)
    });
    let (delivery_id, queue) = rt.block_on(seed(&p));
    let table = p.table.as_str();

    // The tenant's requests, with the run's timeline, newest first
    // (`--reverse`: oldest first).
    let (code, out, err) = hookflow(&["logs", "--table", table, "--tenant", "acme"]);
    assert_eq!(code, 0, "{err}");
    let accepted = out.find("accepted").expect("the accepted request");
    let rejected = out.find("rejected_404").expect("the rejected request");
    assert!(rejected < accepted, "{out}");
    let (_, oldest_first, _) = hookflow(&["logs", "--table", table, "--tenant", "acme", "--reverse"]);
    assert!(oldest_first.find("accepted") < oldest_first.find("rejected_404"), "{oldest_first}");
    assert!(out.contains("step forward"), "the run's steps are in the log: {out}");
    let (_, failed, _) = hookflow(&["logs", "--table", table, "--tenant", "acme", "--status", "failed"]);
    assert!(failed.contains("rejected_404") && !failed.contains("accepted"), "{failed}");
    let (code, _, err) = hookflow(&["logs", "--table", table]);
    assert_eq!(code, 2);
    assert!(err.contains("--tenant"), "{err}");

    let (code, out, err) = hookflow(&["runs", "show", "run_cli1", "--table", table, "--json"]);
    assert_eq!(code, 0, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["run"]["flow_id"], "orders");
    assert!(shown["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "inbound"), "{out}");
    assert_eq!(hookflow(&["runs", "show", "run_nope", "--table", table]).0, 1);

    let (code, out, _) = hookflow(&["dead", "list", "--table", table, "--json"]);
    assert_eq!(code, 0);
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(all.len(), 1, "one dead delivery: {out}");
    let listed = &all[0];
    assert_eq!(
        (listed["delivery_id"].as_str(), listed["reason"].as_str()),
        (Some(&*delivery_id), Some("halted on 400"))
    );
    assert!(listed.get("job").is_none(), "the job is not printed");

    let (code, _, err) = hookflow(&["dead", "replay", &delivery_id, "--table", table]);
    assert_eq!(code, 2, "a replay needs the queue");
    assert!(err.contains("--deliveries-queue-url"), "{err}");
    let (code, out, err) =
        hookflow(&["dead", "replay", &delivery_id, "--table", table, "--deliveries-queue-url", &queue]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), [delivery_id.as_str(), "run", "run_cli1"], "what to follow");
    let queued = rt.block_on(async {
        let got = sqs.receive_message().queue_url(&queue).wait_time_seconds(1).send().await.unwrap();
        got.messages.unwrap_or_default()
    });
    assert_eq!(queued.len(), 1);
    let message = hookflow_aws::queue::Message::parse(queued[0].body().unwrap()).unwrap();
    let job = message.payload.as_delivery().unwrap().clone();
    assert_eq!((job.delivery.id.as_str(), job.attempts), (delivery_id.as_str(), 0), "same webhook-id, attempts anew");
    assert!(hookflow(&["dead", "list", "--table", table]).1.trim().is_empty(), "replayed = no longer dead");
    assert_eq!(hookflow(&["dead", "list", "--table", table, "--json"]).1.trim(), "[]");
    let (_, out, _) = hookflow(&["logs", "--table", table, "--run", "run_cli1"]);
    assert!(out.contains("replayed"), "{out}");
}

//! The admin function's router fed API Gateway HTTP API (payload v2)
//! events, decoded by lambda_http as on Lambda, against moto's server:
//! subscriptions in the table, keyrings in Secrets Manager, the
//! verification request and fan-out deliveries on the deliveries queue.

use std::sync::Arc;

use hookflow_admin::{Admin, Router};
use hookflow_aws::admin::AwsBackend;
use hookflow_aws::provision;
use hookflow_aws::queue::{Message, Queues};
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_aws::table::Table;
use hookflow_aws::testing::sdk;
use hookflow_core::commit::DeliveryJob;
use hookflow_core::run::Purpose;
use hookflow_core::subscription::{Keyring, Status};
use lambda_http::request::LambdaRequest;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Env {
    router: Router,
    sqs: aws_sdk_sqs::Client,
    deliveries: String,
    ordered: String,
    sm: aws_sdk_secretsmanager::Client,
    prefix: String,
    table: Table,
}

/// The admin function over moto; `ordered`: with the FIFO queue of
/// ordered deliveries configured.
async fn setup(ordered: bool) -> Env {
    setup_named(ordered, "").await
}

/// [`setup`] with resources of its own (`name` in their names): tests
/// run at once and must not read each other's queues.
async fn setup_named(ordered: bool, name: &str) -> Env {
    let conf = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let prefix = format!("adm{}{}{name}", std::process::id(), if ordered { "o" } else { "" });
    let p = provision::create(&ddb, &sqs, &prefix, 5).await.unwrap();
    let table = Table::new(ddb.clone(), &p.table, 14);
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let backend = AwsBackend {
        store: Store {
            table: table.clone(),
            queues: Queues::new(sqs.clone(), &p.runs_queue_url, &p.deliveries_queue_url)
                .with_ordered(ordered.then(|| p.ordered_queue_url.clone())),
        },
        secrets: Secrets::new(sm.clone(), format!("{prefix}/")),
        settings: Default::default(),
    };
    let router = hookflow_admin::router(Arc::new(Admin { backend, token: None }));
    Env { router, sqs, deliveries: p.deliveries_queue_url, ordered: p.ordered_queue_url, sm, prefix, table }
}

/// An HTTP API payload v2 event for the admin API, as API Gateway sends it
/// after IAM authorisation.
fn event(method: &str, path: &str, body: Option<Value>) -> lambda_http::Request {
    // A query goes where API Gateway puts it.
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let v = json!({
        "version": "2.0",
        "routeKey": "ANY /v1/{proxy+}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json"},
        "pathParameters": {"proxy": path.trim_start_matches("/v1/")},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "admin"},
            "requestId": "r1", "routeKey": "ANY /v1/{proxy+}", "stage": "$default",
            "time": "24/Nov/2026:00:00:00 +0000", "timeEpoch": 1795478400000u64
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    });
    let ev: LambdaRequest = serde_json::from_value(v).expect("an API Gateway v2 event");
    ev.into()
}

/// An event with a raw (YAML) body.
fn raw_event(method: &str, path: &str, body: &str) -> lambda_http::Request {
    let mut req = event(method, path, None);
    *req.body_mut() = lambda_http::Body::Text(body.to_string());
    req
}

async fn call(env: &Env, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let r = env.router.clone().oneshot(event(method, path, body)).await.unwrap();
    let status = r.status().as_u16();
    let bytes = axum_body(r).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn axum_body(r: hookflow_admin::axum::response::Response) -> Vec<u8> {
    hookflow_admin::axum::body::to_bytes(r.into_body(), usize::MAX).await.unwrap().to_vec()
}

async fn queued(env: &Env) -> Vec<DeliveryJob> {
    let got = env.sqs.receive_message().queue_url(&env.deliveries).max_number_of_messages(10).send().await.unwrap();
    got.messages
        .unwrap_or_default()
        .iter()
        .map(|m| Message::parse(m.body().unwrap()).unwrap().payload.as_delivery().unwrap().clone())
        .collect()
}

async fn keyring(env: &Env, id: &str) -> Keyring {
    let name = format!("{}/subscriptions/{id}", env.prefix);
    let v = env.sm.get_secret_value().secret_id(name).send().await.unwrap();
    Keyring::from_text(v.secret_string().unwrap()).unwrap()
}

#[tokio::test]
async fn subscriptions_keyrings_and_events_on_aws() {
    let env = setup(false).await;
    let (status, sub) = call(
        &env,
        "POST",
        "/v1/subscriptions",
        Some(json!({"url": "https://r.example/hook", "event_types": ["contact.*"]})),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().unwrap().to_string();
    let secret = sub["secret"].as_str().unwrap().to_string();
    assert_eq!(sub["status"], "pending");
    // The key is in Secrets Manager, not in the table or the queue.
    assert_eq!(keyring(&env, &id).await.keys[0].secret, secret);
    let [verify] = &queued(&env).await[..] else { panic!("one verification request queued") };
    assert!(matches!(verify.delivery.purpose, Purpose::Verify { .. }));
    assert!(!serde_json::to_string(verify).unwrap().contains(&secret));
    let stored = env.table.subscription(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Pending);

    // Nothing is sent to a pending subscription.
    let (status, out) = call(&env, "POST", "/v1/events", Some(json!({"type": "contact.created", "id": "e1"}))).await;
    assert_eq!((status, out["deliveries"].clone()), (202, json!(0)));
    // Verified (as the dispatcher will record it), it receives events; a
    // repeated id is accepted once.
    let mut active = stored.clone();
    active.status = Status::Active;
    env.table
        .write(
            &hookflow_core::commit::Commit {
                subscriptions: vec![hookflow_core::commit::SubscriptionRow::of(&active)],
                ..Default::default()
            },
            0,
        )
        .await
        .unwrap();
    let (status, out) =
        call(&env, "POST", "/v1/events", Some(json!({"type": "contact.updated", "id": "e2", "data": {"n": 1}}))).await;
    assert_eq!((status, out["deliveries"].clone()), (202, json!(1)));
    let (status, out) = call(&env, "POST", "/v1/events", Some(json!({"type": "contact.updated", "id": "e2"}))).await;
    assert_eq!((status, out["duplicate"].clone()), (200, json!(true)));
    let [delivery] = &queued(&env).await[..] else { panic!("one delivery") };
    assert_eq!(delivery.delivery.purpose, Purpose::Event { subscription: id.clone() });
    let body: Value = serde_json::from_str(delivery.delivery.request.body.as_deref().unwrap()).unwrap();
    assert_eq!((body["type"].clone(), body["data"].clone()), (json!("contact.updated"), json!({"n": 1})));
    let (_, listed) = call(&env, "GET", "/v1/events", None).await;
    assert_eq!(listed["events"].as_array().unwrap().len(), 2);

    // A flow with an event trigger, put through the API, is started by a publish.
    let flow = "id: on-contact\ntenant: default\ntrigger: { type: event, events: [contact.*] }\nsteps:\n  - { id: s, type: set, vars: { x: 1 } }\n";
    let put = env.router.clone().oneshot(raw_event("PUT", "/v1/flows/default/on-contact", flow)).await.unwrap();
    assert_eq!(put.status().as_u16(), 201);
    let (status, out) =
        call(&env, "POST", "/v1/events", Some(json!({"type": "contact.deleted", "data": {"n": 2}}))).await;
    assert_eq!(status, 202, "{out}");
    let [run] = &out["runs"].as_array().unwrap()[..] else { panic!("one run: {out}") };
    let (status, shown) = call(&env, "GET", &format!("/v1/runs/{}", run.as_str().unwrap()), None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["run"]["trigger"]["body"]["data"], json!({"n": 2}), "the run's trigger is the event");
    queued(&env).await;

    // Rotation keeps the old key for its grace period.
    let (status, rotated) = call(&env, "POST", &format!("/v1/subscriptions/{id}/rotate-secret"), None).await;
    assert_eq!(status, 200);
    let ring = keyring(&env, &id).await;
    assert_eq!(ring.keys.len(), 2);
    assert_eq!(ring.keys[1].secret, rotated["secret"].as_str().unwrap());
    assert!(ring.keys[0].expires_at.is_some());

    // Errors keep their shape; what AWS cannot do yet says so.
    let (status, err) = call(&env, "POST", "/v1/subscriptions", Some(json!({"url": "x", "event_types": []}))).await;
    assert_eq!((status, err["error"]["field"].clone()), (422, json!("url")));
    // Flows put are listed (the console's flows page), and one runs dry.
    let (status, listed) = call(&env, "GET", "/v1/flows", None).await;
    assert_eq!(status, 200, "{listed}");
    let flows = listed["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 1, "{listed}");
    assert_eq!((flows[0]["tenant"].clone(), flows[0]["id"].clone()), (json!("default"), json!("on-contact")));
    assert_eq!(flows[0]["file"], json!("table@v1"));
    let request = json!({"request": {"body": {"type": "contact.x"}}});
    let (status, dry) = call(&env, "POST", "/v1/flows/default/on-contact/test", Some(request)).await;
    assert_eq!((status, dry["failed"].clone()), (200, json!(false)), "{dry}");
    assert_eq!(call(&env, "POST", "/v1/flows/default/absent/test", None).await.0, 404);

    assert_eq!(call(&env, "DELETE", &format!("/v1/subscriptions/{id}"), None).await.0, 204);
    assert_eq!(call(&env, "GET", &format!("/v1/subscriptions/{id}"), None).await.0, 404);
    let gone = env.sm.get_secret_value().secret_id(format!("{}/subscriptions/{id}", env.prefix)).send().await;
    assert!(gone.is_err(), "the keyring is deleted with the subscription");
}

/// Marks subscription `id` active, as the dispatcher records a verified one.
async fn activate(env: &Env, id: &str) {
    let mut active = env.table.subscription(id).await.unwrap().unwrap();
    active.status = Status::Active;
    let row = hookflow_core::commit::SubscriptionRow::of(&active);
    env.table
        .write(&hookflow_core::commit::Commit { subscriptions: vec![row], ..Default::default() }, 0)
        .await
        .unwrap();
}

#[tokio::test]
async fn per_key_ordered_events_go_to_the_fifo_queue_grouped_by_key_in_publish_order() {
    let ordered =
        json!({"url": "https://r.example/o", "event_types": ["order.*"], "ordering": "per_key", "key": "{{ data.k }}"});
    // Without the FIFO queue: refused, not delivered out of order.
    let plain = setup(false).await;
    let (status, err) = call(&plain, "POST", "/v1/subscriptions", Some(ordered.clone())).await;
    assert_eq!((status, err["error"]["code"].clone()), (501, json!("unsupported")), "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("HOOKFLOW_ORDERED_QUEUE_URL"), "{err}");

    let env = setup(true).await;
    let (status, sub) = call(&env, "POST", "/v1/subscriptions", Some(ordered)).await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().unwrap().to_string();
    let [verify] = &queued(&env).await[..] else { panic!("the verification request, unordered") };
    assert!(matches!(verify.delivery.purpose, Purpose::Verify { .. }));
    activate(&env, &id).await;
    for (n, k) in ["a", "b", "a", "Zoë's key"].iter().enumerate() {
        let (status, out) =
            call(&env, "POST", "/v1/events", Some(json!({"type": "order.paid", "data": {"k": k, "n": n}}))).await;
        assert_eq!((status, out["deliveries"].clone()), (202, json!(1)), "{out}");
    }
    assert!(queued(&env).await.is_empty(), "nothing ordered on the standard queue");
    // The FIFO queue hands out the first message of each group; all of
    // them with a visibility of 0 shows the order within each group.
    let mut got = Vec::new();
    for _ in 0..10 {
        let out = env
            .sqs
            .receive_message()
            .queue_url(&env.ordered)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let group =
                m.attributes().unwrap()[&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId].clone();
            let job: DeliveryJob = Message::parse(m.body().unwrap()).unwrap().payload.as_delivery().unwrap().clone();
            let body: Value = serde_json::from_str(job.delivery.request.body.as_deref().unwrap()).unwrap();
            got.push((group, body["data"]["n"].as_i64().unwrap()));
            env.sqs
                .delete_message()
                .queue_url(&env.ordered)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if got.len() == 4 {
            break;
        }
    }
    let of = |g: &str| got.iter().filter(|(group, _)| group == g).map(|(_, n)| *n).collect::<Vec<_>>();
    assert_eq!(of(&format!("{id}:a")), vec![0, 2], "{got:?}");
    assert_eq!(of(&format!("{id}:b")), vec![1], "{got:?}");
    let odd = hookflow_aws::queue::fifo_id(&format!("{id}:Zoë's key"));
    assert_eq!((odd.len(), of(&odd)), (64, vec![3]), "a key SQS does not take is hashed: {got:?}");
}

#[tokio::test]
async fn a_deployments_log_refuses_seq_paging_and_reads_a_subscriptions_attempts_within_the_retention() {
    let env = setup_named(false, "log").await;
    // Entries of a table have no commit order: paging by it is refused,
    // not answered with the same page again.
    let (status, out) = call(&env, "GET", "/v1/logs?after_seq=1", None).await;
    assert_eq!((status, out["error"]["code"].as_str()), (501, Some("unsupported")), "{out}");
    assert_eq!(call(&env, "GET", "/v1/logs?before_seq=5", None).await.0, 501);
    // A subscription's attempts without `since`: read back no further than
    // the retention (before, hour by hour to 1970: ~490,000 queries).
    let (_, sub) =
        call(&env, "POST", "/v1/subscriptions", Some(json!({"url": "https://r.example/h", "event_types": ["a.*"]})))
            .await;
    let id = sub["id"].as_str().unwrap();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        call(&env, "GET", &format!("/v1/logs?subscription_id={id}"), None),
    )
    .await
    .expect("answered within a minute");
    assert_eq!(read.0, 200, "{}", read.1);
    assert_eq!(read.1["entries"], json!([]), "no attempt was made (no dispatcher here)");
}

/// An event whose item would pass DynamoDB's 400 KB (data that does not
/// compress) is refused with 413 naming the limit — never 503, which a
/// well-behaved client sends again forever — and nothing is stored.
#[tokio::test]
async fn an_event_too_large_for_the_table_is_413_never_503() {
    let env = setup_named(false, "big").await;
    // 700 KiB of 6-bit noise: zlib keeps about three quarters of it, well
    // over 400 KB.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let noise: String = (0..700 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(alphabet[(x % 64) as usize])
        })
        .collect();
    let big = json!({"type": "big.one", "tenant": "big", "id": "evt_big", "data": {"blob": noise}});
    let (status, body) = call(&env, "POST", "/v1/events", Some(big)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_large");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("409600-byte item limit"), "names the limit: {message}");
    let (status, listed) = call(&env, "GET", "/v1/events?tenant=big", None).await;
    assert_eq!((status, listed["events"].as_array().map(Vec::len)), (200, Some(0)), "nothing stored: {listed}");
}

/// A new subscription whose verification request fails to send (the
/// queue's send fails after the table's write) answers 503; the
/// subscription stays `pending`, and verifying it again sends the request.
#[tokio::test]
async fn a_verification_that_fails_to_send_is_503_and_leaves_the_subscription_pending_to_verify_again() {
    let env = setup_named(false, "verif").await;
    let gone = format!("{}-gone", env.deliveries);
    let backend = AwsBackend {
        store: Store { table: env.table.clone(), queues: Queues::new(env.sqs.clone(), &gone, &gone) },
        secrets: Secrets::new(env.sm.clone(), format!("{}/", env.prefix)),
        settings: Default::default(),
    };
    let broken = Env {
        router: hookflow_admin::router(Arc::new(Admin { backend, token: None })),
        sqs: env.sqs.clone(),
        deliveries: env.deliveries.clone(),
        ordered: env.ordered.clone(),
        sm: env.sm.clone(),
        prefix: env.prefix.clone(),
        table: env.table.clone(),
    };
    let url = "https://r.example/verify-fails";
    let (status, body) =
        call(&broken, "POST", "/v1/subscriptions", Some(json!({"url": url, "event_types": ["a.*"]}))).await;
    assert_eq!(status, 503, "{body}");
    let (_, listed) = call(&env, "GET", "/v1/subscriptions", None).await;
    let sub = listed["subscriptions"].as_array().unwrap().iter().find(|s| s["url"] == url).expect("written").clone();
    assert_eq!(sub["status"], "pending", "{sub}");
    assert!(queued(&env).await.is_empty(), "nothing was sent");
    let id = sub["id"].as_str().unwrap();
    let (status, _) = call(&env, "POST", &format!("/v1/subscriptions/{id}/verify"), None).await;
    assert_eq!(status, 202);
    let jobs = queued(&env).await;
    assert!(
        jobs.iter().any(|j| matches!(&j.delivery.purpose, Purpose::Verify { subscription, .. } if subscription == id)),
        "the verification request is queued: {jobs:?}"
    );
}

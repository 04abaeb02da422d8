//! The ingress handler fed API Gateway HTTP API (payload v2) events — JSON
//! as API Gateway sends it, base64 bodies included, decoded by lambda_http
//! — against moto's server and a receiver on 127.0.0.1.

use base64::Engine;
use hookflow_aws::ingress::Ingress;
use hookflow_aws::provision::{self, Provisioned};
use hookflow_aws::queue::{Message, Queues};
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_aws::table::Table;
use hookflow_aws::testing::{Receiver, sdk};
use hookflow_core::destination::Allowed;
use hookflow_core::ssrf::TargetPolicy;
use hookflow_io::{Format, Logger};
use lambda_http::request::LambdaRequest;
use serde_json::{Value, json};

async fn setup(
    prefix: &str,
    flows: &[String],
) -> (Ingress, Provisioned, aws_sdk_sqs::Client, aws_sdk_dynamodb::Client) {
    let conf = sdk().await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let prefix = format!("{prefix}{}", std::process::id());
    let p = provision::create(&ddb, &sqs, &prefix, 5).await.unwrap();
    let table = Table::new(ddb.clone(), &p.table, 14);
    for (i, text) in flows.iter().enumerate() {
        let flow = hookflow_core::load_flow(format!("f{i}.yaml").as_ref(), text).unwrap();
        table.put_flow(&flow, text, 0).await.unwrap();
    }
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    sm.create_secret().name(format!("{prefix}/inbound_key")).secret_string("k-123").send().await.unwrap();
    let ingress = Ingress {
        store: Store { table, queues: Queues::new(sqs.clone(), &p.runs_queue_url, &p.deliveries_queue_url) },
        secrets: Secrets::new(sm, format!("{prefix}/")),
        sender: hookflow_aws::sdk::sender_with(
            &conf,
            TargetPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]),
            Allowed::all(),
        )
        .unwrap(),
        logger: Logger::new(Format::Json, std::iter::empty()),
        unknown_routes: Default::default(),
    };
    (ingress, p, sqs, ddb)
}

/// An HTTP API payload v2 event, as API Gateway sends it.
fn event(method: &str, path: &str, headers: Value, body: &str) -> lambda_http::Request {
    let (tenant, proxy) = path.trim_start_matches("/hooks/").split_once('/').unwrap();
    let v = json!({
        "version": "2.0",
        "routeKey": "ANY /hooks/{tenant}/{proxy+}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "pathParameters": {"tenant": tenant, "proxy": proxy},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "partner"},
            "requestId": "r1", "routeKey": "ANY /hooks/{tenant}/{proxy+}", "stage": "$default",
            "time": "23/Nov/2026:00:00:00 +0000", "timeEpoch": 1795478400000u64
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    });
    let ev: LambdaRequest = serde_json::from_value(v).expect("an API Gateway v2 event");
    ev.into()
}

fn answer(r: lambda_http::Response<lambda_http::Body>) -> (u16, Value) {
    let status = r.status().as_u16();
    let body = serde_json::from_slice(r.body().as_ref()).unwrap_or(Value::Null);
    (status, body)
}

async fn queued(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<Message> {
    let got = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
    got.messages.unwrap_or_default().iter().map(|m| Message::parse(m.body().unwrap()).unwrap()).collect()
}

const ASYNC: &str = r#"
id: orders
tenant: acme
trigger:
  type: webhook
  path: orders
  auth: { type: api_key, header: X-Api-Key, secret: inbound_key }
  idempotency: { header: Idempotency-Key }
steps:
  - id: forward
    type: http
    url: https://partner.example/orders
    body: { json: { id: "{{ trigger.body.id }}" } }
"#;

#[tokio::test]
async fn an_async_trigger_answers_202_after_storing_the_run_and_queueing_its_delivery() {
    let (ingress, p, sqs, ddb) = setup("ia", &[ASYNC.to_string()]).await;
    let headers = json!({"content-type": "application/json", "x-api-key": "k-123", "idempotency-key": "order-1"});
    let (status, body) =
        answer(ingress::handle(&ingress, event("POST", "/hooks/acme/orders", headers.clone(), r#"{"id": 7}"#)).await);
    assert_eq!(status, 202, "{body}");
    let event_id = body["event_id"].as_str().unwrap().to_string();
    let jobs = queued(&sqs, &p.deliveries_queue_url).await;
    assert_eq!(jobs.len(), 1);
    let body = jobs[0].payload.as_delivery().unwrap().delivery.request.body.clone().unwrap_or_default();
    assert!(body.contains(r#""id":7"#), "{body}");

    // The same idempotency key: the first answer again, no second run.
    let (status, again) =
        answer(ingress::handle(&ingress, event("POST", "/hooks/acme/orders", headers, r#"{"id": 7}"#)).await);
    assert_eq!((status, again["event_id"].as_str()), (202, Some(event_id.as_str())));
    assert!(queued(&sqs, &p.deliveries_queue_url).await.is_empty(), "no second delivery");

    // Rejections answer with their reason and are in the request log;
    // the API key is nowhere in the table.
    let (status, _) = answer(
        ingress::handle(&ingress, event("POST", "/hooks/acme/orders", json!({"x-api-key": "wrong"}), "{}")).await,
    );
    assert_eq!(status, 401);
    let r = ingress::handle(&ingress, event("GET", "/hooks/acme/orders", json!({}), "")).await;
    assert_eq!((r.status().as_u16(), r.headers()["allow"].to_str().unwrap()), (405, "POST"));
    let (status, body) = answer(ingress::handle(&ingress, event("POST", "/hooks/acme/nope", json!({}), "{}")).await);
    assert_eq!((status, body["error"].as_str()), (404, Some("not found")));
    let items = hookflow_aws::testing::readable(ddb.scan().table_name(&p.table).send().await.unwrap().items());
    for outcome in ["rejected_401", "rejected_405", "rejected_404", "accepted", "duplicate"] {
        assert!(items.contains(outcome), "no {outcome} entry in the log");
    }
    assert!(!items.contains("k-123"), "the inbound API key was stored");
}

#[tokio::test]
async fn a_sync_trigger_answers_with_its_respond_step_built_from_a_step_response() {
    let (receiver, url) = Receiver::start(&[], r#"{"price": 42}"#).await;
    let flow = format!(
        r#"
id: quote
tenant: acme
trigger:
  type: webhook
  path: quote
  respond: {{ mode: sync, timeout: 5s }}
steps:
  - id: price
    type: http
    url: {url}
    body: {{ json: {{ sku: "{{{{ trigger.body.sku }}}}" }} }}
    wait_for_response: true
  - id: answer
    type: respond
    status: 200
    body: {{ json: {{ sku: "{{{{ trigger.body.sku }}}}", price: "{{{{ steps.price.response.body.price }}}}" }} }}
"#
    );
    let (ingress, p, sqs, _) = setup("is", &[flow]).await;
    let (status, body) = answer(
        ingress::handle(
            &ingress,
            event("POST", "/hooks/acme/quote", json!({"content-type": "application/json"}), r#"{"sku": "a-1"}"#),
        )
        .await,
    );
    assert_eq!((status, &body), (200, &json!({"sku": "a-1", "price": 42})));
    assert_eq!(receiver.seen().len(), 1, "the step was sent once, inline");
    assert!(queued(&sqs, &p.deliveries_queue_url).await.is_empty(), "nothing left for the dispatcher");
}

#[tokio::test]
async fn a_sync_trigger_s_step_to_a_limited_host_waits_for_its_slot_inline_or_goes_to_the_queue_holding_it() {
    let (receiver, url) = Receiver::start(&[], r#"{"price": 42}"#).await;
    let flow = |id: &str, per_second: f64| {
        format!(
            r#"
id: {id}
tenant: acme
trigger: {{ type: webhook, path: {id}, respond: {{ mode: sync, timeout: 2s }} }}
limits:
  127.0.0.1: {{ rate_limit: {{ per_second: {per_second} }} }}
steps:
  - {{ id: price, type: http, url: {url}, wait_for_response: true }}
  - {{ id: answer, type: respond, status: 200, body: {{ json: {{ price: "{{{{ steps.price.response.body.price }}}}" }} }} }}
"#
        )
    };
    let (ingress, p, sqs, _) = setup("il", &[flow("paced", 4.0), flow("slow", 0.1)]).await;
    let call = |path: &'static str| {
        let ingress = &ingress;
        async move {
            let req = event("POST", path, json!({"content-type": "application/json"}), "{}");
            answer(ingress::handle(ingress, req).await)
        }
    };
    // Three at once to a host paced at 4 a second: each answered, the
    // later ones after waiting for their slots (250 ms apart).
    let started = std::time::Instant::now();
    let (a, b, c) = tokio::join!(call("/hooks/acme/paced"), call("/hooks/acme/paced"), call("/hooks/acme/paced"));
    for (status, body) in [a, b, c] {
        assert_eq!((status, body), (200, json!({"price": 42})));
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(450), "paced: {:?}", started.elapsed());
    assert_eq!(receiver.seen().len(), 3);
    // A host paced at one in ten seconds: the second call's slot is past
    // its 2 s answer; it is answered 504 and the step goes to the queue,
    // due at its slot and holding it.
    assert_eq!(call("/hooks/acme/slow").await.0, 200);
    assert_eq!(call("/hooks/acme/slow").await.0, 504);
    assert_eq!(receiver.seen().len(), 4, "the second was not sent inline");
    // Queued, delayed to its slot (seconds away), not visible before.
    assert!(queued(&sqs, &p.deliveries_queue_url).await.is_empty());
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&p.deliveries_queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed));
    assert_eq!(delayed.map(String::as_str), Some("1"), "the step waits in the queue for its slot");
}

const ENFORCED: &str = r#"
id: signup
tenant: acme
trigger:
  type: webhook
  path: signup
  expect:
    enforce: true
    body:
      schema:
        type: object
        required: [email]
        properties: { email: { type: string } }
steps:
  - id: forward
    type: http
    url: https://partner.example/signup
"#;

#[tokio::test]
async fn an_enforced_shape_refuses_a_body_that_does_not_match_with_422_naming_where() {
    let (ingress, p, sqs, ddb) = setup("ie", &[ENFORCED.to_string()]).await;
    let json_ct = json!({"content-type": "application/json"});
    let (status, body) = answer(
        ingress::handle(&ingress, event("POST", "/hooks/acme/signup", json_ct.clone(), r#"{"email": 5}"#)).await,
    );
    assert_eq!(status, 422, "{body}");
    let reason = body["error"].as_str().unwrap();
    assert!(reason.contains("/email"), "{reason}");
    assert!(queued(&sqs, &p.deliveries_queue_url).await.is_empty(), "a refused body was queued");
    let items = hookflow_aws::testing::readable(ddb.scan().table_name(&p.table).send().await.unwrap().items());
    assert!(items.contains("rejected_422"), "the refusal is not in the request log");

    let (status, body) = answer(
        ingress::handle(&ingress, event("POST", "/hooks/acme/signup", json_ct, r#"{"email": "a@example.com"}"#)).await,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(queued(&sqs, &p.deliveries_queue_url).await.len(), 1);
}

/// A key left `accepted` (its completion write failed) whose run has moved
/// on, or is gone, is completed by the next duplicate: the one after it
/// reads no run item.
#[tokio::test]
async fn a_key_left_accepted_whose_run_moved_on_is_completed_by_the_next_duplicate() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use hookflow_pipeline::inbound::InboundPorts;

    let (ingress, p, _, ddb) = setup("acc", &[]).await;
    let scope = "acme/orders/k-accepted";
    let s = |v: &str| AttributeValue::S(v.to_string());
    let expires = hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock) / 1000 + 3600;
    ddb.put_item()
        .table_name(&p.table)
        .item("pk", s(&hookflow_aws::keys::idempotency(scope)))
        .item("sk", s(hookflow_aws::keys::IDEM))
        .item("status", s("accepted"))
        .item("reply", s(r#"{"status":202,"headers":[],"body":"{}"}"#))
        .item("run_id", s("run_gone"))
        .item("expires_at", AttributeValue::N(expires.to_string()))
        .send()
        .await
        .unwrap();
    let status = || async {
        let got = ddb
            .get_item()
            .table_name(&p.table)
            .key("pk", s(&hookflow_aws::keys::idempotency(scope)))
            .key("sk", s(hookflow_aws::keys::IDEM))
            .send()
            .await
            .unwrap();
        got.item.unwrap()["status"].as_s().unwrap().clone()
    };
    let claim = ingress.claim(scope, 0).await.unwrap();
    assert!(matches!(claim, hookflow_core::ports::Claim::Completed(_)), "{claim:?}");
    assert_eq!(status().await, "completed", "finished on this read");
}

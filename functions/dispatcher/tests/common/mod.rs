//! What the dispatcher's tests and its batch benchmark share: a world
//! on moto's server (tables, queues, secrets) and deliveries to send.
#![allow(dead_code)]

use std::sync::Arc;

use hookflow_aws::dispatcher::Dispatcher;
use hookflow_aws::provision;
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_aws::table::Table;
use hookflow_aws::testing::{poll, sdk};
use hookflow_core::commit::{DeliveryJob, NewJob};
use hookflow_core::destination::Allowed;
use hookflow_core::run::{Effect, InboundRequest, Input, Run, advance};
use hookflow_core::ssrf::TargetPolicy;
use hookflow_io::{Format, Logger};

pub fn flow_text(url: &str) -> String {
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

pub fn delivery(url: &str, n: u32) -> NewJob {
    let flow = hookflow_core::load_flow("partner-sync.yaml".as_ref(), &flow_text(url)).unwrap();
    let request = InboundRequest { method: "POST".into(), body: format!(r#"{{"id": {n}}}"#), ..Default::default() };
    let run = Run::new(&flow.flow, format!("run_{n}_{}", std::process::id()), format!("evt_{n}"), &request);
    let (_, effects) = advance(&flow, run, Input::Start).unwrap();
    let d = effects.into_iter().find_map(|e| if let Effect::Send(d) = e { Some(*d) } else { None }).unwrap();
    NewJob::delivery(&DeliveryJob::new(d, 0), 0)
}

pub struct World {
    pub dispatcher: Arc<Dispatcher>,
    pub sqs: aws_sdk_sqs::Client,
    pub p: provision::Provisioned,
    pub ddb: aws_sdk_dynamodb::Client,
    pub secrets_prefix: String,
}

pub async fn world(prefix: &str) -> World {
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
        store: Store { table: Table::new(ddb.clone(), &p.table, 14), queues: p.queues(&sqs) },
        secrets: Secrets::new(sm, &secrets_prefix),
        sender: hookflow_aws::sdk::sender_with(
            &conf,
            TargetPolicy::allowing(vec!["127.0.0.0/8".parse().unwrap()]),
            Allowed::all(),
        )
        .unwrap(),
        logger: Logger::new(Format::Json, std::iter::empty()),
        // Subscription retries after 100 ms (the tests' receivers fail on
        // purpose).
        settings: hookflow_core::subscription::Settings::default()
            .with_schedules(&[std::time::Duration::from_millis(100)], &[]),
        ordered_retention: std::time::Duration::from_secs(14 * 86_400),
        dead_letter_arns: p.dead_letter_arns.clone(),
    });
    World { dispatcher, sqs, p, ddb, secrets_prefix }
}

impl World {
    /// One poll of the event source mapping.
    pub async fn poll(&self) -> (usize, usize) {
        poll(&self.sqs, &self.p.deliveries_queue_url, |event| self.dispatcher.handle(event)).await
    }

    /// One poll of the ordered queue's event source mapping.
    pub async fn poll_ordered(&self) -> (usize, usize) {
        poll(&self.sqs, &self.p.ordered_queue_url, |event| self.dispatcher.handle(event)).await
    }

    pub async fn send_raw(&self, body: &str) {
        self.sqs.send_message().queue_url(&self.p.deliveries_queue_url).message_body(body).send().await.unwrap();
    }
}

//! AWS destinations: a delivery whose URL is an ARN
//! ([`hookflow_core::destination`]) sent with the AWS SDK — SQS
//! `SendMessage`, SNS `Publish`, EventBridge `PutEvents` — and every other
//! delivery through the HTTP sender beside it ([`Outbound`]). Both drivers
//! send through an [`Outbound`]: `hookflow dev` with the SDK configured
//! from the environment (`AWS_ENDPOINT_URL` for an emulator), the
//! functions with the SDK configuration they load at init.
//!
//! An attempt here is an attempt like an HTTP request's: AWS's answer is
//! the response (`200 {"message_id"}`; an error `{"error", "message"}`
//! with the status AWS gave, throttling as `429`, AWS's own failures as
//! `5xx`), classified by the delivery's status policy, retried on its
//! schedule, dead when it runs out. What cannot be sent at all (a
//! destination the deployment does not allow, a message over its service's
//! limit or with too many attributes) is a request error: dead at once,
//! naming why.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use hookflow_core::attempt::{Attempt, AttemptError, AttemptResult};
use hookflow_core::destination::{self, Allowed, Arn, Message, Sending, Service};
use hookflow_core::ports::Sender;
use hookflow_core::run::{CapturedResponse, Delivery};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// A client of one service in one region.
#[derive(Clone)]
enum Client {
    Sqs(aws_sdk_sqs::Client),
    Sns(aws_sdk_sns::Client),
    Events(aws_sdk_eventbridge::Client),
}

/// Sends to SQS, SNS and EventBridge, to the destinations `allowed`.
pub struct Destinations {
    allowed: Allowed,
    /// Given, or loaded from the environment at the first send.
    conf: OnceCell<SdkConfig>,
    clients: Mutex<HashMap<(Service, String), Client>>,
}

impl std::fmt::Debug for Destinations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destinations").field("allowed", &self.allowed).finish_non_exhaustive()
    }
}

impl Destinations {
    /// With the SDK configuration a function loaded at init.
    pub fn new(conf: SdkConfig, allowed: Allowed) -> Destinations {
        Destinations { allowed, conf: OnceCell::new_with(Some(conf)), clients: Mutex::default() }
    }

    /// With the SDK configuration from the environment, loaded at the
    /// first send (`hookflow dev`: no AWS needed until a destination is
    /// used).
    pub fn from_env(allowed: Allowed) -> Destinations {
        Destinations { allowed, conf: OnceCell::new(), clients: Mutex::default() }
    }

    pub fn allowed(&self) -> &Allowed {
        &self.allowed
    }

    async fn client(&self, arn: &Arn) -> Client {
        let key = (arn.service, arn.region.clone());
        if let Some(c) = self.clients.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return c.clone();
        }
        let conf = self
            .conf
            .get_or_init(|| async { aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await })
            .await;
        let region = aws_config::Region::new(arn.region.clone());
        let client = match arn.service {
            Service::Sqs => Client::Sqs(aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(conf).region(region).build(),
            )),
            Service::Sns => Client::Sns(aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(conf).region(region).build(),
            )),
            Service::EventBridge => Client::Events(aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(conf).region(region).build(),
            )),
        };
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).insert(key, client.clone());
        client
    }

    /// One attempt of `d` (whose URL is an ARN) with the secret values it
    /// uses.
    pub async fn send(&self, d: &Delivery, secrets: &HashMap<String, String>) -> Attempt {
        let start = Instant::now();
        let result = self.attempt(d, secrets).await;
        Attempt { result, duration_ms: start.elapsed().as_millis() as u64 }
    }

    async fn attempt(&self, d: &Delivery, secrets: &HashMap<String, String>) -> AttemptResult {
        let mut lookup = |name: &str| secrets.get(name).cloned().ok_or_else(|| name.to_string());
        let unset = |name: String| error(AttemptError::Secret, format!("secret `{name}` is not set"));
        let target = match d.request.url.resolve(&mut lookup) {
            Ok(t) => t,
            Err(name) => return unset(name),
        };
        let arn = match self.allowed.check(&target) {
            Ok(arn) => arn,
            Err(why) => return error(AttemptError::Request, why),
        };
        // A secret bound to hosts goes to none of these.
        if let Some(why) = d.secret_refused(&target) {
            return error(AttemptError::Ssrf, why);
        }
        let mut headers = Vec::with_capacity(d.request.headers.len() + 3);
        for (name, value) in &d.request.headers {
            match value.resolve(&mut lookup) {
                Ok(v) => headers.push((name.clone(), v)),
                Err(name) => return unset(name),
            }
        }
        let body = d.request.body.clone().unwrap_or_default();
        let ts = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |t| t.as_secs() as i64);
        match d.signature(secrets, body.as_bytes(), ts) {
            Ok(signed) => headers.extend(signed),
            Err(why) => return error(AttemptError::Secret, why),
        }
        let group = match d.purpose.subscription() {
            Some(sub) => sub.to_string(),
            None => format!("{}/{}", d.tenant, d.flow_id),
        };
        let sending = Sending { id: &d.id, group: &group, detail_type: &d.step };
        let message = match destination::message(&arn, sending, headers, body) {
            Ok(m) => m,
            Err(why) => return error(AttemptError::Request, why),
        };
        let client = self.client(&arn).await;
        match tokio::time::timeout(d.timeout, put(&client, &arn, message)).await {
            Ok(result) => result,
            Err(_) => {
                error(AttemptError::Timeout, format!("{} did not answer within {:?}", arn.service.as_str(), d.timeout))
            }
        }
    }
}

/// An SQS `SendMessage` or SNS `Publish` request `req` with `String`
/// attributes (`$value` the service's attribute type), sent: AWS's answer.
macro_rules! with_attributes {
    ($req:expr, $value:ty, $attributes:expr) => {{
        let mut req = $req;
        for (name, value) in $attributes {
            match <$value>::builder().data_type("String").string_value(value).build() {
                Ok(v) => req = req.message_attributes(name, v),
                Err(e) => return error(AttemptError::Request, e.to_string()),
            }
        }
        match req.send().await {
            Ok(out) => sent(json!({"message_id": out.message_id, "sequence_number": out.sequence_number})),
            Err(e) => failed(e),
        }
    }};
}

/// The one call that sends `message`.
async fn put(client: &Client, arn: &Arn, message: Message) -> AttemptResult {
    match (client, message) {
        (Client::Sqs(c), Message::Queue { body, attributes, group, dedup }) => {
            let req = c.send_message().queue_url(arn.queue_url()).message_body(body);
            let req = req.set_message_group_id(group).set_message_deduplication_id(dedup);
            with_attributes!(req, aws_sdk_sqs::types::MessageAttributeValue, attributes)
        }
        (Client::Sns(c), Message::Queue { body, attributes, group, dedup }) => {
            let req = c.publish().topic_arn(arn.to_string()).message(body);
            let req = req.set_message_group_id(group).set_message_deduplication_id(dedup);
            with_attributes!(req, aws_sdk_sns::types::MessageAttributeValue, attributes)
        }
        (Client::Events(c), Message::Bus { source, detail_type, detail }) => {
            let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(arn.to_string())
                .source(source)
                .detail_type(detail_type)
                .detail(detail)
                .build();
            match c.put_events().entries(entry).send().await {
                Ok(out) => match out.entries().first() {
                    Some(e) if e.error_code().is_none() => sent(json!({"message_id": e.event_id()})),
                    Some(e) => {
                        let code = e.error_code().unwrap_or_default();
                        answered(status_of(code, 400), code, e.error_message().unwrap_or_default())
                    }
                    None => error(AttemptError::Connect, "EventBridge answered with no entry".into()),
                },
                Err(e) => failed(e),
            }
        }
        // A client is chosen by the ARN's service, as the message is.
        _ => error(AttemptError::Request, format!("no {} message for `{arn}`", arn.service.as_str())),
    }
}

/// The status an error AWS answered stands for: throttling (`Throttling`,
/// `KMS.ThrottlingException`, `RequestThrottled`, …) is `429` and AWS's
/// own passing failures (`InternalFailure`, `ServiceUnavailable`, …) are
/// `5xx` whatever status carried them (a `PutEvents` entry's error comes
/// in a `200`), so both are retried like a receiver's; anything else keeps
/// AWS's status (a missing queue, no permission: `4xx`).
fn status_of(code: &str, status: u16) -> u16 {
    let lower = code.to_ascii_lowercase();
    if lower.contains("throttl") || lower.contains("toomanyrequests") || lower.contains("overlimit") {
        return 429;
    }
    if lower.contains("internal") || lower.contains("serviceunavailable") || lower.contains("unavailable") {
        return status.max(500);
    }
    status
}

fn sent(body: Value) -> AttemptResult {
    let response = CapturedResponse { status: 200, headers: Default::default(), body };
    AttemptResult { response: Some(response), retry_after: None, error: None }
}

fn answered(status: u16, code: &str, message: &str) -> AttemptResult {
    let body = json!({"error": code, "message": message});
    AttemptResult {
        response: Some(CapturedResponse { status, headers: Default::default(), body }),
        retry_after: None,
        error: None,
    }
}

fn error(class: AttemptError, message: String) -> AttemptResult {
    AttemptResult { response: None, retry_after: None, error: Some((class, message)) }
}

/// An SDK error as an attempt's result: AWS's answer when it gave one,
/// else why nothing came back.
fn failed<E>(e: SdkError<E, HttpResponse>) -> AttemptResult
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
    match e {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("Unknown").to_string();
            let message = ctx.err().message().unwrap_or_default().to_string();
            answered(status_of(&code, ctx.raw().status().as_u16()), &code, &message)
        }
        SdkError::TimeoutError(_) => error(AttemptError::Timeout, text),
        // No answer: retried. A request the SDK could not make (no
        // credentials or region yet, among others) is retried too: it may
        // be configured before the schedule runs out, and dead only then.
        _ => error(AttemptError::Connect, text),
    }
}

/// Every delivery's sender: an ARN to [`Destinations`], anything else to
/// the HTTP sender `H`.
#[derive(Debug)]
pub struct Outbound<H> {
    pub http: H,
    pub aws: Destinations,
}

impl<H: Sender> Sender for Outbound<H> {
    async fn send(&self, d: &Delivery, secrets: &HashMap<String, String>) -> Attempt {
        if d.to_aws() { self.aws.send(d, secrets).await } else { self.http.send(d, secrets).await }
    }
}

#[cfg(test)]
mod tests {
    use super::status_of;

    #[test]
    fn throttling_is_429_and_aws_s_passing_failures_are_5xx_whatever_carried_them() {
        for code in ["Throttling", "ThrottlingException", "KMS.ThrottlingException", "RequestThrottled", "KmsThrottled"]
        {
            assert_eq!(status_of(code, 400), 429, "{code}");
        }
        // A PutEvents entry's error comes in a 200: read as 400 unless it is AWS's own.
        assert_eq!(status_of("InternalFailure", 400), 500);
        assert_eq!(status_of("ServiceUnavailable", 400), 500);
        assert_eq!(status_of("InternalError", 503), 503);
        assert_eq!(status_of("AWS.SimpleQueueService.NonExistentQueue", 400), 400);
        assert_eq!(status_of("AccessDenied", 403), 403);
    }
}

//! AWS destinations: an SQS queue, an SNS topic or an EventBridge bus,
//! named by ARN where a delivery would otherwise name a URL.
//!
//! A delivery to one is an ordinary [`Delivery`] whose request's URL is the
//! ARN: its retries, dead deliveries, replays, limits and log are the same
//! as an HTTP request's. What differs is only how it is sent, decided here
//! (pure) and done by the drivers' sender (`hookflow-destinations`):
//!
//! - **SQS / SNS**: the body is the message; each header is a `String`
//!   message attribute (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature`, `content-type` and the subscription's or step's
//!   own), at most [`MAX_ATTRIBUTES`]. A FIFO queue or topic gets the
//!   `webhook-id` as its deduplication id and a message group (the step's
//!   `group`, else the subscription or the flow).
//! - **EventBridge**: one entry whose `detail` is an envelope
//!   `{"webhook-id", "webhook-timestamp", "headers", "body"}` (the body as
//!   JSON when it is JSON), `detail-type` the event type (or the step's),
//!   `source` `hookflow` (or the step's). No signature: EventBridge's
//!   own permissions prove where an event came from.
//!
//! Each is at most [`MAX_MESSAGE`] bytes as AWS counts them; a bigger one
//! is refused before it is sent (its delivery dead, naming the size).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// SNS and EventBridge take at most 256 KiB a message or entry.
pub const MAX_MESSAGE: usize = 256 * 1024;
/// SQS takes up to 1 MiB (a queue's `MaximumMessageSize`, which may be
/// lower: SQS then refuses the message itself, and the delivery is dead
/// with its answer).
pub const MAX_SQS_MESSAGE: usize = 1024 * 1024;
/// SQS takes at most 10 message attributes (and SNS as many to SQS).
pub const MAX_ATTRIBUTES: usize = 10;
/// The attributes every event delivery has (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature`, `content-type`): what is left
/// of [`MAX_ATTRIBUTES`] for a subscription's own headers.
pub const OWN_ATTRIBUTES: usize = MAX_ATTRIBUTES - 4;

/// Header names a step sets to steer an EventBridge entry or a FIFO
/// message, taken out of the attributes.
pub const DETAIL_TYPE: &str = "x-hookflow-detail-type";
pub const SOURCE: &str = "x-hookflow-source";
pub const GROUP: &str = "x-hookflow-message-group";

/// Which AWS service a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Sqs,
    Sns,
    EventBridge,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Sqs => "SQS",
            Service::Sns => "SNS",
            Service::EventBridge => "EventBridge",
        }
    }
}

/// A destination's ARN, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn {
    pub service: Service,
    pub partition: String,
    pub region: String,
    pub account: String,
    /// The queue's or topic's name, or the bus's.
    pub name: String,
}

/// Whether `text` names an AWS destination rather than a URL.
pub fn is_arn(text: &str) -> bool {
    text.starts_with("arn:")
}

impl Arn {
    /// `arn:aws:sqs:REGION:ACCOUNT:QUEUE`, `arn:aws:sns:REGION:ACCOUNT:TOPIC`
    /// or `arn:aws:events:REGION:ACCOUNT:event-bus/BUS`.
    pub fn parse(text: &str) -> Result<Arn, String> {
        let shape = "an ARN of an SQS queue (`arn:aws:sqs:us-east-1:123456789012:orders`), an SNS topic \
                     (`arn:aws:sns:…:TOPIC`) or an EventBridge bus (`arn:aws:events:…:event-bus/BUS`)";
        let parts: Vec<&str> = text.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(format!("`{text}` is not {shape}"));
        };
        if arn != "arn" || !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
            return Err(format!("`{text}` is not {shape}"));
        }
        if !matches!(service, "sqs" | "sns" | "events") {
            return Err(format!("`{text}`: `{service}` is not sqs, sns or events; {shape}"));
        }
        let region_ok = !region.is_empty()
            && region.len() <= 32
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(format!("`{text}`: `{region}` is not a region (like `us-east-1`)"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("`{text}`: `{account}` is not an account id (12 digits)"));
        }
        let name_ok = |name: &str, max: usize| {
            let stem = name.strip_suffix(".fifo").unwrap_or(name);
            !stem.is_empty()
                && name.len() <= max
                && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let (service, name) = match service {
            "sqs" if name_ok(resource, 80) => (Service::Sqs, resource),
            "sns" if name_ok(resource, 256) => (Service::Sns, resource),
            "events" => match resource.strip_prefix("event-bus/") {
                Some(bus)
                    if !bus.is_empty()
                        && bus.len() <= 256
                        && bus.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)) =>
                {
                    (Service::EventBridge, bus)
                }
                _ => return Err(format!("`{text}`: an EventBridge destination is `…:event-bus/NAME`")),
            },
            "sqs" | "sns" => {
                return Err(format!(
                    "`{text}`: `{resource}` is not a queue or topic name (letters, digits, `-`, `_`, an optional `.fifo`)"
                ));
            }
            _ => return Err(format!("`{text}`: `{service}` is not sqs, sns or events; {shape}")),
        };
        Ok(Arn {
            service,
            partition: partition.into(),
            region: region.into(),
            account: account.into(),
            name: name.into(),
        })
    }

    /// A FIFO queue or topic (its messages need a group and a
    /// deduplication id).
    pub fn fifo(&self) -> bool {
        self.service != Service::EventBridge && self.name.ends_with(".fifo")
    }

    /// The queue's URL, which SQS's `SendMessage` takes (built, not looked
    /// up: no `GetQueueUrl` call, and no permission for it).
    pub fn queue_url(&self) -> String {
        let domain = if self.partition == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" };
        format!("https://sqs.{}.{domain}/{}/{}", self.region, self.account, self.name)
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.service {
            Service::EventBridge => {
                write!(f, "arn:{}:events:{}:{}:event-bus/{}", self.partition, self.region, self.account, self.name)
            }
            s => write!(
                f,
                "arn:{}:{}:{}:{}:{}",
                self.partition,
                s.as_str().to_ascii_lowercase(),
                self.region,
                self.account,
                self.name
            ),
        }
    }
}

/// The destinations a deployment may send to: ARN patterns where `*`
/// matches any run of characters and `?` one (as IAM's), from the stack's
/// `AllowedDestinationArns` (default: none) or `hookflow dev
/// --destinations` (default: all) — never the deployment's own queues,
/// whatever the patterns say: a message there would be read as a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowed {
    patterns: Vec<String>,
    /// The deployment's own queues, by account and name.
    own: Vec<(String, String)>,
}

impl Allowed {
    /// None allowed.
    pub fn none() -> Allowed {
        Allowed::default()
    }

    /// Every destination allowed.
    pub fn all() -> Allowed {
        Allowed { patterns: vec!["*".into()], own: Vec::new() }
    }

    /// Patterns separated by commas (blanks ignored).
    pub fn parse(list: &str) -> Allowed {
        let patterns = list.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect();
        Allowed { patterns, own: Vec::new() }
    }

    /// Never the queues named by `queues` (their URLs, `…/ACCOUNT/NAME`,
    /// or ARNs), whatever the patterns allow.
    pub fn except_own<'a>(mut self, queues: impl IntoIterator<Item = &'a str>) -> Allowed {
        for q in queues {
            let parts: Vec<&str> = match q.strip_prefix("arn:") {
                Some(_) => q.rsplitn(3, ':').take(2).collect(),
                None => q.trim_end_matches('/').rsplitn(3, '/').take(2).collect(),
            };
            if let [name, account] = parts[..] {
                self.own.push((account.to_string(), name.to_string()));
            }
        }
        self
    }

    pub fn allows(&self, arn: &str) -> bool {
        self.patterns.iter().any(|p| glob(p.as_bytes(), arn.as_bytes()))
    }

    /// `arn` parsed, if this allows it; why not otherwise.
    pub fn check(&self, arn: &str) -> Result<Arn, String> {
        let parsed = Arn::parse(arn)?;
        if parsed.service == Service::Sqs && self.own.iter().any(|(a, n)| *a == parsed.account && *n == parsed.name) {
            return Err(format!(
                "`{arn}` is one of this deployment's own queues: a message there would be taken for a job"
            ));
        }
        if !self.allows(arn) {
            return Err(format!(
                "`{arn}` is not among the destinations this deployment allows: add it (or a pattern) to the \
                 stack's AllowedDestinationArns parameter (`hookflow dev --destinations`)"
            ));
        }
        Ok(parsed)
    }
}

/// IAM-style wildcards: `*` any run, `?` one character.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = si;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// One message, ready for its service's API.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// SQS `SendMessage` / SNS `Publish`.
    Queue {
        body: String,
        attributes: Vec<(String, String)>,
        /// FIFO only.
        group: Option<String>,
        dedup: Option<String>,
    },
    /// EventBridge `PutEvents`, one entry.
    Bus { source: String, detail_type: String, detail: String },
}

/// What a delivery is, for its message: its `webhook-id`, and what its
/// FIFO group and EventBridge detail type are when it names none (the
/// subscription or the flow; the event type or the step).
#[derive(Debug, Clone, Copy)]
pub struct Sending<'a> {
    pub id: &'a str,
    pub group: &'a str,
    pub detail_type: &'a str,
}

/// The message a delivery makes for `arn`, from its resolved `headers`
/// (the signature's among them) and `body`; why it cannot be sent
/// otherwise (too big, too many attributes, an attribute name AWS
/// refuses).
pub fn message(arn: &Arn, d: Sending<'_>, headers: Vec<(String, String)>, body: String) -> Result<Message, String> {
    let mut own = Vec::new();
    let (mut detail_type, mut source, mut group) = (None, None, None);
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            DETAIL_TYPE => detail_type = Some(value),
            SOURCE => source = Some(value),
            GROUP => group = Some(value),
            // What HTTP alone means.
            "user-agent" | "content-length" | "host" => {}
            _ => own.push((name, value)),
        }
    }
    match arn.service {
        Service::Sqs | Service::Sns => {
            if own.len() > MAX_ATTRIBUTES {
                return Err(format!(
                    "{} takes at most {MAX_ATTRIBUTES} message attributes; this message has {} ({})",
                    arn.service.as_str(),
                    own.len(),
                    own.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
            if let Some((name, _)) = own.iter().find(|(k, _)| !attribute_name_ok(k)) {
                return Err(format!("`{name}` cannot be a message attribute's name"));
            }
            if let Some((name, _)) = own.iter().find(|(_, v)| v.is_empty()) {
                return Err(format!("message attribute `{name}` is empty, which {} refuses", arn.service.as_str()));
            }
            let size = body.len() + own.iter().map(|(k, v)| k.len() + "String".len() + v.len()).sum::<usize>();
            too_big(arn, size)?;
            let fifo = arn.fifo();
            let group = fifo.then(|| fifo_id(group.filter(|g| !g.is_empty()).as_deref().unwrap_or(d.group)));
            let dedup = fifo.then(|| fifo_id(d.id));
            Ok(Message::Queue { body, attributes: own, group, dedup })
        }
        Service::EventBridge => {
            let id = own.iter().position(|(k, _)| k == "webhook-id").map(|i| own.remove(i).1);
            let ts = own.iter().position(|(k, _)| k == "webhook-timestamp").map(|i| own.remove(i).1);
            own.retain(|(k, _)| k != "webhook-signature");
            let parsed = serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body));
            let headers: Map<String, Value> = own.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let detail = json!({
                "webhook-id": id.unwrap_or_else(|| d.id.to_string()),
                "webhook-timestamp": ts.and_then(|t| t.parse::<i64>().ok()),
                "headers": headers,
                "body": parsed,
            })
            .to_string();
            let detail_type = detail_type.unwrap_or_else(|| d.detail_type.to_string());
            let source = source.unwrap_or_else(|| "hookflow".into());
            too_big(arn, detail.len() + detail_type.len() + source.len())?;
            Ok(Message::Bus { source, detail_type, detail })
        }
    }
}

fn too_big(arn: &Arn, size: usize) -> Result<(), String> {
    let (max, said) = if arn.service == Service::Sqs { (MAX_SQS_MESSAGE, "1 MiB") } else { (MAX_MESSAGE, "256 KiB") };
    if size > max {
        return Err(format!(
            "the message is {size} bytes, over {}'s limit of {max} ({said}); nothing was sent",
            arn.service.as_str()
        ));
    }
    Ok(())
}

/// SQS's and SNS's rule for attribute names: up to 256 of letters, digits,
/// `_ - .`, no `..`, no leading or trailing `.`, not starting `aws.` or
/// `amazon.`.
pub fn attribute_name_ok(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && !name.contains("..")
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.")
}

/// A FIFO message group or deduplication id: at most 128 printable ASCII
/// characters, no space; anything else (a customer's name as a group,
/// a long id) is hashed, the same text to the same id.
fn fifo_id(id: &str) -> String {
    if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
        return id.to_string();
    }
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str) -> Sending<'_> {
        Sending { id, group: "acme/orders", detail_type: "order.paid" }
    }

    #[test]
    fn parses_the_three_kinds_and_names_what_is_wrong() {
        let q = Arn::parse("arn:aws:sqs:eu-west-1:123456789012:orders.fifo").unwrap();
        assert_eq!(
            (q.service, q.region.as_str(), q.name.as_str(), q.fifo()),
            (Service::Sqs, "eu-west-1", "orders.fifo", true)
        );
        assert_eq!(q.queue_url(), "https://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo");
        let t = Arn::parse("arn:aws:sns:us-east-1:123456789012:alerts").unwrap();
        assert_eq!((t.service, t.fifo()), (Service::Sns, false));
        let b = Arn::parse("arn:aws:events:us-east-1:123456789012:event-bus/default").unwrap();
        assert_eq!((b.service, b.name.as_str()), (Service::EventBridge, "default"));
        for arn in [&q, &t, &b] {
            assert_eq!(Arn::parse(&arn.to_string()).as_ref(), Ok(arn));
        }
        for (bad, says) in [
            ("arn:aws:sqs:us-east-1:12345:q", "account id"),
            ("arn:aws:lambda:us-east-1:123456789012:function:f", "`lambda` is not sqs, sns or events"),
            ("arn:aws:events:us-east-1:123456789012:rule/r", "event-bus/NAME"),
            ("arn:aws:sqs:US_EAST:123456789012:q", "not a region"),
            ("arn:aws:sqs:us-east-1:123456789012:q q", "not a queue or topic name"),
            ("arn:aws:sqs:us-east-1", "is not an ARN"),
        ] {
            let e = Arn::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn allowed_patterns_are_iam_wildcards_and_none_by_default() {
        let arn = "arn:aws:sqs:us-east-1:123456789012:orders";
        assert!(!Allowed::default().allows(arn));
        assert!(Allowed::all().allows(arn));
        let a = Allowed::parse(" arn:aws:sqs:us-east-1:123456789012:ord* , arn:aws:sns:*:123456789012:a?c ");
        assert!(a.allows(arn));
        assert!(a.allows("arn:aws:sns:eu-west-1:123456789012:abc"));
        assert!(!a.allows("arn:aws:sns:eu-west-1:123456789012:abbc"));
        assert!(!a.allows("arn:aws:sqs:us-east-1:123456789012:invoices"));
        let e = a.check("arn:aws:sqs:us-east-1:123456789012:invoices").unwrap_err();
        assert!(e.contains("AllowedDestinationArns"), "{e}");
    }

    #[test]
    fn a_queue_message_carries_the_headers_as_attributes() {
        let arn = Arn::parse("arn:aws:sqs:us-east-1:123456789012:q").unwrap();
        let headers = vec![
            ("webhook-id".to_string(), "msg_1".to_string()),
            ("User-Agent".into(), "hookflow".into()),
            ("X-Team".into(), "crm".into()),
        ];
        let m = message(&arn, delivery("msg_1"), headers, "{}".into()).unwrap();
        assert_eq!(
            m,
            Message::Queue {
                body: "{}".into(),
                attributes: vec![("webhook-id".into(), "msg_1".into()), ("x-team".into(), "crm".into())],
                group: None,
                dedup: None,
            }
        );
        // FIFO: the webhook-id dedupes, the subscription (or flow) groups.
        let fifo = Arn::parse("arn:aws:sqs:us-east-1:123456789012:q.fifo").unwrap();
        let Message::Queue { group, dedup, .. } = message(&fifo, delivery("msg_1"), vec![], "{}".into()).unwrap()
        else {
            panic!()
        };
        assert_eq!((group.as_deref(), dedup.as_deref()), (Some("acme/orders"), Some("msg_1")));
        let long = "m".repeat(200);
        let Message::Queue { dedup, .. } = message(&fifo, delivery(&long), vec![], "{}".into()).unwrap() else {
            panic!()
        };
        assert_eq!(dedup.unwrap().len(), 64);
    }

    #[test]
    fn too_big_or_too_many_is_refused_with_the_reason() {
        let arn = Arn::parse("arn:aws:sns:us-east-1:123456789012:t").unwrap();
        let e = message(&arn, delivery("m"), vec![], "x".repeat(MAX_MESSAGE + 1)).unwrap_err();
        assert!(e.contains("262145 bytes, over SNS's limit"), "{e}");
        assert!(message(&arn, delivery("m"), vec![], "x".repeat(MAX_MESSAGE)).is_ok());
        let many = (0..11).map(|i| (format!("h{i}"), "v".to_string())).collect();
        let e = message(&arn, delivery("m"), many, "{}".into()).unwrap_err();
        assert!(e.contains("at most 10 message attributes"), "{e}");
        let e = message(&arn, delivery("m"), vec![("aws.x".into(), "v".into())], "{}".into()).unwrap_err();
        assert!(e.contains("`aws.x`"), "{e}");
        let e = message(&arn, delivery("m"), vec![("x-team".into(), String::new())], "{}".into()).unwrap_err();
        assert!(e.contains("`x-team` is empty"), "{e}");
        // SQS takes up to 1 MiB (what a queue allows past that is its own).
        let queue = Arn::parse("arn:aws:sqs:us-east-1:123456789012:q").unwrap();
        assert!(message(&queue, delivery("m"), vec![], "x".repeat(MAX_MESSAGE + 1)).is_ok());
        let e = message(&queue, delivery("m"), vec![], "x".repeat(MAX_SQS_MESSAGE + 1)).unwrap_err();
        assert!(e.contains("over SQS's limit of 1048576 (1 MiB)"), "{e}");
    }

    #[test]
    fn a_fifo_group_that_aws_would_refuse_is_hashed_the_same_each_time() {
        let fifo = Arn::parse("arn:aws:sns:us-east-1:123456789012:t.fifo").unwrap();
        let group = |g: &str| {
            let Message::Queue { group, .. } =
                message(&fifo, delivery("m"), vec![(GROUP.into(), g.into())], "{}".into()).unwrap()
            else {
                panic!()
            };
            group.unwrap()
        };
        assert_eq!(group("c-1"), "c-1");
        let spaced = group("Jane Doe");
        assert_eq!((spaced.len(), spaced == group("Jane Doe")), (64, true));
        assert_eq!(group(&"g".repeat(129)).len(), 64);
        assert_eq!(group(""), "acme/orders", "an empty group is the default one");
    }

    #[test]
    fn the_deployments_own_queues_are_never_a_destination() {
        let a = Allowed::parse("arn:aws:sqs:*:123456789012:*").except_own([
            "https://sqs.us-east-1.amazonaws.com/123456789012/hookflow-DeliveriesQueue-X",
            "arn:aws:sqs:us-east-1:123456789012:hookflow-DeliveriesDLQ-Y",
        ]);
        for own in ["hookflow-DeliveriesQueue-X", "hookflow-DeliveriesDLQ-Y"] {
            let e = a.check(&format!("arn:aws:sqs:us-east-1:123456789012:{own}")).unwrap_err();
            assert!(e.contains("this deployment's own queues"), "{e}");
        }
        assert!(a.check("arn:aws:sqs:us-east-1:123456789012:orders").is_ok());
        assert!(a.check("arn:aws:sqs:us-east-1:210987654321:hookflow-DeliveriesQueue-X").is_err(), "not allowed");
    }

    #[test]
    fn an_eventbridge_entry_wraps_the_body_with_its_id() {
        let arn = Arn::parse("arn:aws:events:us-east-1:123456789012:event-bus/default").unwrap();
        let headers = vec![
            ("webhook-id".to_string(), "msg_1".to_string()),
            ("webhook-timestamp".into(), "1700000000".into()),
            ("webhook-signature".into(), "v1,xyz".into()),
            ("content-type".into(), "application/json".into()),
            (SOURCE.into(), "acme.orders".into()),
        ];
        let Message::Bus { source, detail_type, detail } =
            message(&arn, delivery("msg_1"), headers, r#"{"type":"order.paid","data":{"n":1}}"#.into()).unwrap()
        else {
            panic!()
        };
        assert_eq!((source.as_str(), detail_type.as_str()), ("acme.orders", "order.paid"));
        let detail: Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(
            detail,
            json!({"webhook-id": "msg_1", "webhook-timestamp": 1700000000, "headers": {"content-type": "application/json"},
                   "body": {"type": "order.paid", "data": {"n": 1}}})
        );
    }
}

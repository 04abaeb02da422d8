//! The flow file model: what users write, as Rust types.
//!
//! These types are the single source of truth for the flow language: serde
//! reads them, `schemars` turns them into the published JSON Schema
//! (`docs/flow.schema.json`), and [`crate::validate`] checks the rules types
//! cannot express. Field names follow `DESIGN.md`; every struct denies unknown
//! fields so a typo is an error, not a silently ignored setting.

pub mod schema;
pub mod source;
pub mod validate;

use std::collections::BTreeMap;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::duration::Span;
use crate::retry::RetrySpec;
use crate::signature::{Algorithm, Encoding, HmacScheme, System};
use crate::status::StatusPolicy;

/// An insertion-ordered JSON object (serde_json's `preserve_order`), so
/// headers and bodies keep the order the user wrote them in.
pub type OrderedMap = serde_json::Map<String, Value>;

/// A flow: a trigger and the steps it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Hookflow flow")]
pub struct Flow {
    /// Unique per tenant: `[a-z0-9][a-z0-9_-]*`.
    pub id: String,
    /// Owner of the flow; the first segment of its trigger URL.
    pub tenant: String,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub trigger: Trigger,
    /// Signs every `http` step that does not say otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<SignSpec>,
    /// Where secrets may be sent: by secret name, the hosts a request that
    /// carries it may go to. A step whose URL's host comes from data can
    /// otherwise be made to send its credentials anywhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretRule>,
    /// How fast its `http` steps may send to a host (`api.partner.example`,
    /// or `*.partner.example` for every name under it): `rate_limit:
    /// {per_second, burst}` and `max_in_flight`. What is over waits in the
    /// queue, spending no attempt. The flows of a tenant that limit the
    /// same host share its limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, crate::limit::Limits>,
    /// The steps, run in order.
    pub steps: Vec<Step>,
}

/// The hosts a secret may be sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRule {
    /// Host names (`api.partner.example`) or every name under a domain
    /// (`*.partner.example`); the port does not matter.
    pub hosts: Vec<String>,
}

impl SecretRule {
    /// Whether a request to `host` may carry the secret.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|p| {
            let p = p.to_ascii_lowercase();
            match p.strip_prefix("*.") {
                Some(domain) => {
                    host.len() > domain.len() && host.ends_with(domain) && {
                        let dot = host.len() - domain.len() - 1;
                        host.as_bytes()[dot] == b'.'
                    }
                }
                None => host == p,
            }
        })
    }
}

/// What starts the flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// `webhook` (an HTTP endpoint, the default) or `event` (events
    /// published through the admin API).
    #[serde(rename = "type", default)]
    pub kind: TriggerKind,
    /// A human-readable label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The sending system; fills in its signature scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<System>,
    /// URL suffix after `/hooks/{tenant}/`: `[A-Za-z0-9._~/-]`, no spaces.
    /// Required for `webhook`, not allowed for `event`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// For `type: event`: patterns of the event types that start the flow
    /// (`payment.received`, `contact.*`, `contact.**`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Allowed methods (default `[POST]`).
    #[serde(default = "default_methods")]
    pub methods: Vec<Method>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<InboundAuth>,
    /// Source networks allowed to call (CIDR); empty allows all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub ip_allowlist: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<Idempotency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
    #[serde(default)]
    pub respond: TriggerRespond,
    /// Largest accepted body in bytes (default 262144); larger gets 413.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    #[default]
    Webhook,
    /// Started by published events: `trigger.body` is the event
    /// (`{"type", "timestamp", "data"}`).
    Event,
}

/// HTTP methods a trigger accepts and a step sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

fn default_methods() -> Vec<Method> {
    vec![Method::Post]
}

/// Inbound authentication. `type` may be left out when `system:` implies it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundAuth {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<AuthKind>,
    /// Name of the secret holding the key, password, token or signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Header carrying the credential or signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Query parameter carrying an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// User name for `basic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// HMAC digest (default sha256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<Algorithm>,
    /// HMAC encoding (default hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// Text before the MAC, e.g. `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// What is signed: `{body}` (default) or e.g. `{timestamp}.{body}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Header with the signed timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// Accepted clock skew for signed timestamps (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Span>,
    /// Remember each signed request (its `webhook-id`, or its signature)
    /// while its signature is valid: the same request again is answered
    /// as the first was and starts no run. For signature schemes only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reject_replays: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    None,
    ApiKey,
    Basic,
    Bearer,
    Hmac,
    StandardWebhooks,
}

/// Deduplication of repeated deliveries by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Idempotency {
    /// Header holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Dotted path in the JSON body holding the key, e.g. `event.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// How long a key is remembered (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Span>,
}

/// The shape the trigger expects. Advisory unless `enforce: true`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ExpectBody>,
    /// Reject (422) bodies that do not match `body.schema`, and (400)
    /// bodies declared JSON that do not parse (otherwise let through as
    /// text, with a warning in the log).
    #[serde(default)]
    pub enforce: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectBody {
    /// A JSON Schema for the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// An example body: `hookflow test --sample` runs the flow on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<Value>,
}

/// How the trigger answers its caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRespond {
    /// `async` answers at once; `sync` waits for the flow's `respond` step.
    #[serde(default)]
    pub mode: RespondMode,
    /// Status of the immediate answer (200, 201, 202 or 204; default 202).
    #[serde(default = "default_async_status")]
    pub status: u16,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub headers: OrderedMap,
    /// Body of the immediate answer (default `{"event_id": …}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    /// How long a sync trigger waits for `respond` (default 10s, max 25s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,
}

impl Default for TriggerRespond {
    fn default() -> Self {
        TriggerRespond {
            mode: RespondMode::Async,
            status: default_async_status(),
            headers: OrderedMap::new(),
            body: None,
            timeout: None,
        }
    }
}

fn default_async_status() -> u16 {
    202
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RespondMode {
    #[default]
    Async,
    Sync,
}

/// One step of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// Unique within the flow: `[A-Za-z_][A-Za-z0-9_]*`, used as `steps.<id>`.
    pub id: String,
    /// Run the step only when this expression is true.
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// What happens when the step fails (default `stop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    #[serde(flatten)]
    pub action: Action,
}

/// What a step does, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Send a webhook.
    Http(HttpStep),
    /// Send a request with no body.
    Ping(HttpStep),
    /// Answer the caller of a sync trigger.
    Respond(RespondStep),
    /// Compute variables (`vars.*`).
    Set(SetStep),
    /// Send a message to an SQS queue.
    Sqs(AwsStep),
    /// Publish a message to an SNS topic.
    Sns(AwsStep),
    /// Put an event on an EventBridge bus.
    Eventbridge(AwsStep),
}

impl Action {
    pub fn type_name(&self) -> &'static str {
        match self {
            Action::Http(_) => "http",
            Action::Ping(_) => "ping",
            Action::Respond(_) => "respond",
            Action::Set(_) => "set",
            Action::Sqs(_) => "sqs",
            Action::Sns(_) => "sns",
            Action::Eventbridge(_) => "eventbridge",
        }
    }

    /// The request a sending step makes: an `http` or `ping` step's own, an
    /// AWS step's as the request to its ARN ([`AwsStep::as_http`]).
    pub fn http(&self) -> Option<std::borrow::Cow<'_, HttpStep>> {
        match self {
            Action::Http(h) | Action::Ping(h) => Some(std::borrow::Cow::Borrowed(h)),
            Action::Sqs(a) | Action::Sns(a) | Action::Eventbridge(a) => Some(std::borrow::Cow::Owned(a.as_http())),
            _ => None,
        }
    }

    /// An AWS step, with the service its `type` names.
    pub fn aws(&self) -> Option<(crate::destination::Service, &AwsStep)> {
        use crate::destination::Service;
        match self {
            Action::Sqs(a) => Some((Service::Sqs, a)),
            Action::Sns(a) => Some((Service::Sns, a)),
            Action::Eventbridge(a) => Some((Service::EventBridge, a)),
            _ => None,
        }
    }
}

/// A message to an AWS destination (`type: sqs`, `sns` or `eventbridge`),
/// sent, retried and logged as an `http` step's request is; the response
/// is `{"message_id"}` (EventBridge: the event's id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsStep {
    /// The queue's, topic's or bus's ARN (not templated: the deployment
    /// allows destinations by ARN).
    pub arn: String,
    /// The message: exactly one of `json`, `form`, `raw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    /// Message attributes (templated; SQS and SNS take at most 10 with
    /// `content-type`); on EventBridge, the envelope's `headers`.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub attributes: OrderedMap,
    /// A FIFO queue's or topic's message group (templated; default the
    /// flow: one order for all its messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// EventBridge: the entry's `detail-type` (templated; default the
    /// step's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_type: Option<String>,
    /// EventBridge: the entry's `source` (templated; default `hookflow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Which of AWS's answers succeed, are retried or halt (as an `http`
    /// step's; throttling is `429`, AWS's own failures `5xx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Per-attempt timeout (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,
    /// Wait for AWS's answer before the next step (default true); then
    /// `steps.<id>.response.body.message_id`.
    #[serde(default = "yes")]
    pub wait_for_response: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleResponse>,
}

impl AwsStep {
    /// The request this step makes: a `POST` to its ARN, its attributes
    /// (and the group, detail type and source, by the names
    /// [`crate::destination`] takes out) as headers, never signed.
    pub fn as_http(&self) -> HttpStep {
        use crate::destination::{DETAIL_TYPE, GROUP, SOURCE};
        let mut headers = self.attributes.clone();
        for (name, value) in [(GROUP, &self.group), (DETAIL_TYPE, &self.detail_type), (SOURCE, &self.source)] {
            if let Some(v) = value {
                headers.insert(name.into(), Value::String(v.clone()));
            }
        }
        HttpStep {
            method: Method::Post,
            url: self.arn.clone(),
            params: OrderedMap::new(),
            query: OrderedMap::new(),
            headers,
            auth: None,
            body: self.body.clone(),
            status: self.status.clone(),
            retry: self.retry.clone(),
            timeout: self.timeout,
            sign: Some(StepSign::Off(false)),
            wait_for_response: self.wait_for_response,
            sample: self.sample.clone(),
        }
    }
}

/// `stop` (fail the run), `continue`, or `{goto: STEP_ID}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    Stop,
    Continue,
    Goto(String),
}

/// The longest a step's attempt may take (`timeout`): the connection, the
/// request and the whole response. A driver holds an attempt's job longer
/// than this (the embedded runtime's lease) so it is never sent twice at
/// once.
pub const MAX_STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// An outbound request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    /// Default POST.
    #[serde(default = "default_step_method")]
    pub method: Method,
    /// Target URL (templated); `{name}` segments are filled from `params`.
    pub url: String,
    /// Endpoint parameters, each percent-encoded as one path segment.
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub params: OrderedMap,
    /// Query string parameters (templated).
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub query: OrderedMap,
    /// Request headers (templated).
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub headers: OrderedMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<OutboundAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Per-attempt timeout (default 10s, at most 5m; at most 20s on AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,
    /// Sign this request; `false` turns off the flow's `sign`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<StepSign>,
    /// Wait for the response before the next step (default true); it is
    /// then available as `steps.<id>.response`.
    #[serde(default = "yes")]
    pub wait_for_response: bool,
    /// The response a dry run assumes for this step (`hookflow test
    /// --sample`, the console's Test with sample data) when none is given:
    /// what the receiver typically answers. Never used by a real run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleResponse>,
}

/// A stand-in response for dry runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleResponse {
    /// Default 200.
    #[serde(default = "default_sample_status")]
    pub status: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body, as JSON (a string is taken as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

fn default_sample_status() -> u16 {
    200
}

fn default_step_method() -> Method {
    Method::Post
}

fn yes() -> bool {
    true
}

/// Credentials for an outbound request; values may use `secrets.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutboundAuth {
    Bearer { token: String },
    Basic { username: String, password: String },
}

/// A request or response body: exactly one of `json`, `form`, `raw`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// A JSON document; a string leaf that is exactly one `{{ expr }}` keeps
    /// the expression's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// `application/x-www-form-urlencoded` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<OrderedMap>,
    /// Text sent as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Content type for `raw` (default `text/plain; charset=utf-8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// `sign:` on a step: a signing spec, or `false` to not sign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StepSign {
    Off(bool),
    Spec(SignSpec),
}

/// How to sign outbound requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignSpec {
    /// Secret name. For Standard Webhooks it holds one or more
    /// space-separated `whsec_` secrets.
    pub secret: String,
    /// `standard_webhooks` (default) or `hmac`.
    #[serde(default)]
    pub scheme: SignScheme,
    /// For `scheme: hmac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<HmacScheme>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignScheme {
    #[default]
    StandardWebhooks,
    Hmac,
}

/// Answer the caller of a sync trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RespondStep {
    /// A status code, or a template that renders to one.
    #[serde(default = "default_respond_status")]
    pub status: StatusValue,
    #[serde(default, skip_serializing_if = "OrderedMap::is_empty")]
    pub headers: OrderedMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

fn default_respond_status() -> StatusValue {
    StatusValue::Code(200)
}

/// A status code or an expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StatusValue {
    Code(u16),
    Template(String),
}

/// Compute variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetStep {
    /// Variable name -> value (templated JSON).
    pub vars: OrderedMap,
}

impl Flow {
    /// Index of the step with `id`.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }

    /// Whether a published event of `event_type` (of this flow's tenant)
    /// starts the flow: an event trigger one of whose patterns selects it.
    pub fn started_by(&self, event_type: &str) -> bool {
        self.trigger.kind == TriggerKind::Event && crate::events::selected(&self.trigger.events, event_type)
    }

    /// The trigger's URL path: `/hooks/{tenant}/{path}`.
    pub fn trigger_path(&self) -> String {
        format!("/hooks/{}/{}", self.tenant, self.trigger.path.trim_start_matches('/'))
    }
}

#[cfg(test)]
mod secret_rule_tests {
    use super::SecretRule;

    #[test]
    fn a_rule_allows_its_hosts_and_the_names_under_a_wildcard_only() {
        let r = SecretRule { hosts: vec!["api.partner.example".into(), "*.hooks.example".into()] };
        for ok in ["api.partner.example", "API.Partner.Example.", "a.hooks.example", "x.y.hooks.example"] {
            assert!(r.allows(ok), "{ok}");
        }
        for no in ["partner.example", "evil.example", "api.partner.example.evil", "hooks.example", "xhooks.example"] {
            assert!(!r.allows(no), "{no}");
        }
    }
}

//! The subscription record and its lifecycle: created pending, verified
//! active, disabled and enabled by an admin, verified again.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use rand::RngCore;

use crate::commit::{LogEntry, SubscriptionRow};
use crate::destination;
use crate::events::Pattern;
use crate::keyring::Keyring;
pub use crate::keyring::Signing;
use crate::template::Templates;

use std::collections::BTreeMap;

use super::custom_headers::HeaderValue;
use super::filter::Filter;
use super::transform::Transform;
use crate::limit::{Limits, RateLimit};

/// Where a subscription is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created; the verification request has not been echoed yet.
    Pending,
    /// Receives events.
    Active,
    /// The endpoint never echoed the verification token.
    Failed,
    /// Turned off by a `410 Gone`, by failing longer than the health
    /// window, or by an admin.
    Disabled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Failed => "failed",
            Status::Disabled => "disabled",
        }
    }
}

/// Delivery order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// Deliveries go out concurrently (the default, and the fastest).
    #[default]
    None,
    /// Deliveries with the same key go out one at a time, in publish order.
    PerKey,
}

/// The verification request in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub token: String,
    /// When the current round of attempts started (ms).
    pub started_at: i64,
}

/// A subscription as stored (its keys are not in it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub status: Status,
    #[serde(default)]
    pub signing: Signing,
    #[serde(default)]
    pub ordering: Ordering,
    /// The ordering key template (`{{ data.customer_id }}`), for `per_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Which of the selected events it gets ([`Filter`]); all without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Headers added to each of its requests (secrets by name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderValue>,
    /// How each event is reshaped for its endpoint ([`Transform`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
    /// How fast its endpoint is sent to ([`crate::limit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// How many of its requests may be in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// Since when every attempt has failed (ms); cleared by a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<i64>,
    /// When and why it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// When its keys last changed (ms; 0: since creation). Senders that
    /// cache keyrings read them again when this is newer than their copy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keys_version: i64,
    /// When it last became active (verified, or enabled; ms; 0: before
    /// this was kept). A repeat of a publish sends its event to the ones
    /// active since the event was stamped ([`super::missed`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub activated_at: i64,
    /// Missed events still to be sent again, after an enable with replay
    /// that stopped before the end (a time budget, a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
}

/// The part of an enable-with-replay not yet sent: the matching events
/// published in `[next, until)` (ms). Moved only after a page's deliveries
/// were queued, so a stop anywhere sends a page twice (same `webhook-id`s),
/// never skips one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// The publish time of the first event not known to be queued.
    pub next: i64,
    /// Where the window began (the last pass reads no earlier).
    #[serde(default)]
    pub from: i64,
    /// When the subscription was enabled, plus the settling time
    /// ([`Settings::replay_settle`](super::Settings::replay_settle)).
    pub until: i64,
    /// The window was read to its end once; this is the second reading of
    /// its last moments, for publishes that were in flight.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last_pass: bool,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// What an admin asks for when subscribing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// The endpoint: an absolute `http` or `https` URL, or the ARN of an
    /// SQS queue, SNS topic or EventBridge bus the deployment allows
    /// (`arn:aws:sqs:us-east-1:123456789012:orders`; active at once, no
    /// verification request).
    pub url: String,
    /// Patterns of the event types to receive: `payment.received`,
    /// `contact.*` (one word), `contact.**` (one or more words).
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// Free-form labels, returned as given.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// The tenant whose events it receives (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default)]
    pub signing: Signing,
    #[serde(default)]
    pub ordering: Ordering,
    /// For `ordering: per_key`: a template over the event
    /// (`{{ data.customer_id }}`) whose value orders deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Only the selected events this matches: operators `$eq $neq $gt
    /// $gte $lt $lte $in $nin $exist $startsWith $endsWith $or $and $not`
    /// over `{"id", "type", "tenant", "timestamp", "data"}`, by example
    /// elsewhere (`{"data": {"amount": {"$gte": 100}}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub filter: Option<Value>,
    /// Headers added to each of its requests: `{"X-Team": "crm"}`; a
    /// credential by its secret's name, never its value:
    /// `{"Authorization": {"secret": "crm_token", "prefix": "Bearer "}}`.
    /// Not the Standard Webhooks, body or hop-by-hop headers; at most 20.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub headers: Map<String, Value>,
    /// Each event reshaped for the endpoint before it is signed and sent:
    /// `{"body": {"json": {"text": "Order {{ data.id }} paid"}}, "method":
    /// "PUT", "headers": {…}, "drop": "{{ data.test | default(false) }}"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Transform>,
    /// At most `per_second` requests a second to the endpoint, `burst` at
    /// once after a pause (default 1). What is over waits in the queue,
    /// spending no attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// At most this many requests in flight to the endpoint at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
}

/// What an admin changes in a subscription (`PATCH`): the fields given;
/// `filter: null` removes the filter. Its endpoint, signing and ordering
/// stay (a new endpoint is a new subscription, verified).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// A new filter, or `null` for none.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub filter: Option<Value>,
    /// New headers (all of them: `{}` or `null` for none).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub headers: Option<Value>,
    /// A new transform, or `null` for none.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Transform>")]
    pub transform: Option<Value>,
    /// A new pace, or `null` for none. Deliveries waiting under the old
    /// one take the new one from then on.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<RateLimit>")]
    pub rate_limit: Option<Value>,
    /// A new bound on requests in flight, or `null` for none.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<u32>")]
    pub max_in_flight: Option<Value>,
}

/// A field given, `null` included (`Some(Value::Null)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl SubscriptionUpdate {
    /// `sub` with the changes, checked as a new one's fields are (every
    /// problem at once); its version moves on.
    pub fn apply(&self, sub: &Subscription, now: i64) -> Result<Subscription, Vec<FieldError>> {
        let mut errs = Vec::new();
        let mut s = sub.clone();
        if let Some(types) = &self.event_types {
            check_types(types, &mut errs);
            s.event_types.clone_from(types);
        }
        if let Some(d) = &self.description {
            check_description(d, &mut errs);
            s.description.clone_from(d);
        }
        if let Some(m) = &self.metadata {
            s.metadata.clone_from(m);
        }
        match &self.filter {
            None => {}
            Some(Value::Null) => s.filter = None,
            Some(f) => match Filter::parse("filter", f) {
                Ok(f) => s.filter = Some(f),
                Err(e) => errs.extend(e),
            },
        }
        match &self.headers {
            None => {}
            Some(Value::Null) => s.headers.clear(),
            Some(Value::Object(h)) => match super::custom_headers::parse(h) {
                Ok(h) => s.headers = h,
                Err(e) => errs.extend(e),
            },
            Some(_) => errs.push(FieldError::new("headers", "must be an object of header names, or null")),
        }
        match &self.transform {
            None => {}
            Some(Value::Null) => s.transform = None,
            Some(t) => match serde_json::from_value::<Transform>(t.clone()) {
                Ok(t) => match t.compile() {
                    Ok(_) => s.transform = Some(t),
                    Err(e) => errs.extend(e),
                },
                Err(e) => errs.push(FieldError::new("transform", e.to_string())),
            },
        }
        match &self.rate_limit {
            None => {}
            Some(Value::Null) => s.rate_limit = None,
            Some(r) => match serde_json::from_value::<RateLimit>(r.clone()) {
                Ok(r) => s.rate_limit = Some(r),
                Err(e) => errs.push(FieldError::new("rate_limit", e.to_string())),
            },
        }
        match &self.max_in_flight {
            None => {}
            Some(Value::Null) => s.max_in_flight = None,
            Some(m) => match serde_json::from_value::<u32>(m.clone()) {
                Ok(m) => s.max_in_flight = Some(m),
                Err(e) => errs.push(FieldError::new("max_in_flight", format!("must be a whole number: {e}"))),
            },
        }
        errs.extend(s.limits().check("").into_iter().map(|(f, m)| FieldError::new(f, m)));
        if self.headers.is_some() || self.transform.is_some() {
            check_attributes(&s.url, &s.headers, s.transform.as_ref(), &mut errs);
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        s.updated_at = now.max(sub.updated_at + 1);
        Ok(s)
    }
}

fn check_types(types: &[String], errs: &mut Vec<FieldError>) {
    if types.is_empty() {
        errs.push(FieldError::new("event_types", "list at least one event type or pattern"));
    }
    for (i, p) in types.iter().enumerate() {
        if let Err(e) = Pattern::parse(p) {
            errs.push(FieldError::new(format!("event_types[{i}]"), e));
        }
    }
}

fn check_description(d: &str, errs: &mut Vec<FieldError>) {
    if d.len() > 1024 {
        errs.push(FieldError::new("description", "is longer than 1024 characters"));
    }
}

/// A refused field: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// Where in a document (1-based line and column), when it has lines.
    pub line: Option<usize>,
    pub col: Option<usize>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into(), line: None, col: None }
    }

    /// The error at a line and column of its document.
    pub fn at(mut self, line: usize, col: usize) -> Self {
        (self.line, self.col) = (Some(line), Some(col));
        self
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The tenant of events and subscriptions that name none.
pub const DEFAULT_TENANT: &str = "default";

/// Checks a tenant name: what flows allow.
pub fn check_tenant(t: &str) -> Result<(), String> {
    if !crate::validate::is_slug(t) {
        return Err(format!("`{t}` is not a valid tenant: use lower-case letters, digits, `-` and `_` (at most 64)"));
    }
    Ok(())
}

/// An endpoint URL: what an `http` step's URL must be, at most 2048 long;
/// or an AWS destination's ARN.
fn check_url(url: &str) -> Result<(), String> {
    if url.len() > 2048 {
        return Err("is longer than 2048 characters".into());
    }
    if destination::is_arn(url) {
        return destination::Arn::parse(url).map(|_| ());
    }
    crate::request::check_url_text(url)
}

/// An AWS destination's headers (its own and its transform's) become
/// message attributes: as many as are left beside the four every event
/// has, named as SQS and SNS allow, not empty, and never a secret (a queue
/// is no place for a credential: its messages are read, archived, logged).
fn check_attributes(
    url: &str,
    headers: &BTreeMap<String, HeaderValue>,
    transform: Option<&Transform>,
    errs: &mut Vec<FieldError>,
) {
    if !destination::is_arn(url) {
        return;
    }
    let shaped = transform.map(|t| &t.headers);
    let count = headers.len() + shaped.map_or(0, |h| h.keys().filter(|k| !headers.contains_key(*k)).count());
    if count > destination::OWN_ATTRIBUTES {
        errs.push(FieldError::new(
            "headers",
            format!(
                "an AWS destination's headers (with its transform's) are message attributes: at most {} \
                 beside webhook-id, webhook-timestamp, webhook-signature and content-type",
                destination::OWN_ATTRIBUTES
            ),
        ));
    }
    for (name, value) in headers {
        let field = format!("headers.{name}");
        if !destination::attribute_name_ok(name) {
            errs.push(FieldError::new(field, "is not a name SQS or SNS takes for a message attribute"));
        } else if matches!(value, HeaderValue::Secret { .. }) {
            errs.push(FieldError::new(
                field,
                "an AWS destination's attributes carry no secret: its messages are read, archived and logged",
            ));
        } else if matches!(value, HeaderValue::Text(t) if t.is_empty()) {
            errs.push(FieldError::new(field, "is empty, which SQS and SNS refuse"));
        }
    }
    for name in shaped.into_iter().flat_map(|h| h.keys()).filter(|n| !destination::attribute_name_ok(n)) {
        errs.push(FieldError::new(
            format!("transform.headers.{name}"),
            "is not a name SQS or SNS takes for a message attribute",
        ));
    }
}

/// A 128-bit random token as hex (ids and verification tokens).
fn random_hex() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    crate::signature::hex(&b)
}

impl NewSubscription {
    /// Checks every field; all problems at once.
    pub fn check(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Vec::new();
        if let Err(e) = check_url(&self.url) {
            errs.push(FieldError::new("url", e));
        }
        check_types(&self.event_types, &mut errs);
        if let Some(t) = &self.tenant
            && let Err(e) = check_tenant(t)
        {
            errs.push(FieldError::new("tenant", e));
        }
        check_description(&self.description, &mut errs);
        if let Some(f) = &self.filter
            && let Err(e) = Filter::parse("filter", f)
        {
            errs.extend(e);
        }
        match super::custom_headers::parse(&self.headers) {
            Ok(headers) => check_attributes(&self.url, &headers, self.transform.as_ref(), &mut errs),
            Err(e) => errs.extend(e),
        }
        if let Some(Err(e)) = self.transform.as_ref().map(Transform::compile) {
            errs.extend(e);
        }
        let limits = Limits { rate_limit: self.rate_limit, max_in_flight: self.max_in_flight };
        errs.extend(limits.check("").into_iter().map(|(f, m)| FieldError::new(f, m)));
        match (self.ordering, &self.key) {
            (Ordering::PerKey, None) => errs.push(FieldError::new(
                "key",
                "`ordering: per_key` needs a key template, e.g. `{{ data.customer_id }}`",
            )),
            (Ordering::None, Some(_)) => {
                errs.push(FieldError::new("key", "a key is only used with `ordering: per_key`"))
            }
            (Ordering::PerKey, Some(k)) => {
                if let Err(e) = Templates::new().add(k) {
                    errs.push(FieldError::new("key", e.to_string()));
                }
            }
            (Ordering::None, None) => {}
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// The new subscription (pending, with a verification token) and its
    /// keyring. An AWS destination is active at once: it cannot echo a
    /// token, and the deployment's allowed ARNs are the consent a
    /// verification request asks for.
    pub fn create(self, now: i64) -> Result<(Subscription, Keyring), Vec<FieldError>> {
        self.check()?;
        let aws = destination::is_arn(&self.url);
        let filter = self.filter.as_ref().map(|f| Filter::parse("filter", f)).transpose()?;
        let headers = super::custom_headers::parse(&self.headers)?;
        let sub = Subscription {
            id: format!("sub_{}", uuid::Uuid::now_v7().simple()),
            tenant: self.tenant.unwrap_or_else(|| DEFAULT_TENANT.into()),
            url: self.url,
            event_types: self.event_types,
            description: self.description,
            metadata: self.metadata,
            status: if aws { Status::Active } else { Status::Pending },
            signing: self.signing,
            ordering: self.ordering,
            key: self.key,
            filter,
            headers,
            transform: self.transform,
            rate_limit: self.rate_limit,
            max_in_flight: self.max_in_flight,
            created_at: now,
            updated_at: now,
            verification: (!aws).then(|| Verification { token: random_hex(), started_at: now }),
            activated_at: if aws { now } else { 0 },
            failing_since: None,
            disabled_at: None,
            disabled_reason: None,
            keys_version: 0,
            replay: None,
        };
        let keyring = Keyring::new(sub.signing);
        Ok((sub, keyring))
    }
}

/// The keyring's secret-store name for subscription `id`.
pub fn keyring_name(id: &str) -> String {
    format!("{}{id}", crate::keyring::KEYRINGS)
}

impl Subscription {
    /// The secret-store name of its keyring.
    pub fn keyring_name(&self) -> String {
        keyring_name(&self.id)
    }

    /// How fast its endpoint may be sent to.
    pub fn limits(&self) -> Limits {
        Limits { rate_limit: self.rate_limit, max_in_flight: self.max_in_flight }
    }

    /// Whether it receives `event_type`.
    pub fn selects(&self, event_type: &str) -> bool {
        crate::events::selected(&self.event_types, event_type)
    }

    /// Whether it takes `event`: selects its type, and its filter (if
    /// any) passes it.
    pub fn takes(&self, event: &super::Event) -> bool {
        self.selects(&event.kind) && self.passes(event)
    }

    /// Whether its filter (if any) passes `event`, its type aside.
    pub fn passes(&self, event: &super::Event) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(&event.filtered()))
    }

    /// [`Subscription::passes`] with the event as filters see it made once
    /// for many subscriptions (a fan-out), and only if one has a filter.
    pub(super) fn passes_seen(&self, seen: &std::cell::OnceCell<Value>, event: &super::Event) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(seen.get_or_init(|| event.filtered())))
    }

    pub(super) fn disable(&mut self, now: i64, reason: String) {
        self.status = Status::Disabled;
        self.disabled_at = Some(now);
        self.disabled_reason = Some(reason);
    }

    /// Disabled by an admin.
    pub fn disabled_by_admin(&self, now: i64) -> Subscription {
        let mut s = self.clone();
        s.disable(now, "disabled by an admin".into());
        s.updated_at = now;
        s
    }

    /// Active again (from disabled), health reset. With `replay_until`,
    /// the events it missed up to then are to be sent again: those since
    /// it was disabled, or since where an earlier replay stopped.
    pub fn enabled(&self, now: i64, replay_until: Option<i64>) -> Subscription {
        let mut s = self.clone();
        let from = self.missed_since();
        s.replay = replay_until.map(|until| Replay { next: from, from, until, last_pass: false });
        s.status = Status::Active;
        s.activated_at = now;
        s.failing_since = None;
        s.disabled_at = None;
        s.disabled_reason = None;
        s.updated_at = now;
        s
    }

    /// Active, replaying every selected event published from `since` to
    /// `until` (a recovery: the endpoint lost what it was sent, or a
    /// disabled subscription is enabled with what it missed since an
    /// earlier time than its disabling).
    ///
    /// A disabled subscription's window starts no later than what it
    /// missed ([`Subscription::missed_since`]): a recovery never leaves out
    /// an event it was never sent.
    pub fn recovering(&self, since: i64, until: i64, now: i64) -> Subscription {
        let since = if self.status == Status::Disabled { since.min(self.missed_since()) } else { since };
        let mut s = if self.status == Status::Disabled { self.enabled(now, Some(until)) } else { self.clone() };
        s.replay = Some(Replay { next: since, from: since, until, last_pass: false });
        s.updated_at = now.max(self.updated_at + 1);
        s
    }

    /// Since when a disabled subscription has missed events: since it was
    /// disabled, or since where an unfinished replay stopped.
    pub fn missed_since(&self) -> i64 {
        let disabled = self.disabled_at.unwrap_or(self.updated_at);
        self.replay.map_or(disabled, |r| r.next.min(disabled))
    }

    /// Pending again with a fresh verification round (the `verify` action).
    pub fn reverify(&self, now: i64) -> Subscription {
        let mut s = self.clone();
        s.status = Status::Pending;
        s.verification = Some(Verification { token: random_hex(), started_at: now });
        s.updated_at = now;
        s
    }
}

impl SubscriptionRow {
    /// A new subscription's row.
    pub fn of(s: &Subscription) -> Self {
        SubscriptionRow {
            id: s.id.clone(),
            tenant: s.tenant.clone(),
            status: s.status.as_str(),
            doc: serde_json::to_string(s).unwrap_or_default(),
            version: s.updated_at,
            prev: None,
        }
    }

    /// `s` as a change of the version `prev`.
    pub fn replacing(s: &Subscription, prev: i64) -> Self {
        SubscriptionRow { prev: Some(prev), ..Self::of(s) }
    }
}

impl LogEntry {
    /// An entry saying subscription `s` changed (created, verified,
    /// failed, disabled, enabled).
    pub fn for_subscription(s: &Subscription, at: i64) -> Self {
        LogEntry {
            at,
            kind: crate::commit::EntryKind::Subscription,
            tenant: Some(s.tenant.clone()),
            outcome: Some(s.status.as_str().into()),
            detail: serde_json::json!({"subscription_id": s.id, "url": s.url, "reason": s.disabled_reason}),
            ..Default::default()
        }
    }
}

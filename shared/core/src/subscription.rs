//! Subscriptions: endpoints that receive published events.
//!
//! The lifecycle, as pure functions over data the store keeps:
//!
//! ```text
//!  create ──> pending ──(endpoint echoes the token)──> active ──(410, or failing
//!               │                                        ▲      longer than the window)──> disabled
//!               └──(no echo before the verification      └──────────── enable ─────────────┘
//!                   schedule runs out)──> failed ──(verify: send again)──> pending
//! ```
//!
//! A subscription's signing keys are a [`Keyring`], kept by the secret
//! store under [`Subscription::keyring_name`], never in the subscription
//! record, a job or a log: deliveries carry the *name* and the sender
//! resolves it at send time like any other secret. Rotation appends a key
//! and gives the old one an expiry; while both are valid each delivery
//! carries both signatures (space-separated, as the Standard Webhooks spec
//! asks).
//!
//! [`fan_out`] turns one published event into one delivery per matching
//! active subscription; the deliveries then go through the same sender,
//! [`crate::attempt::decide`], retries and request log as a flow's steps.
//! What an attempt means for the subscription's health is [`Health`], and
//! [`Subscription::apply`] decides what changes.

use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::commit::{DeliveryJob, NewJob};
use crate::events::{Pattern, check_type};
use crate::flow::{Method, SignScheme, SignSpec};
use crate::request::{OutboundRequest, SecretText, USER_AGENT};
use crate::retry::{RetryPolicy, STANDARD_WEBHOOKS_SCHEDULE};
use crate::run::{Delivery, Purpose};
use crate::signature::{SignatureError, SigningKey, WebhookSecret};
use crate::status::{StatusPolicy, StatusRange};
use crate::template::{Context, Templates};

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

/// How deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Signing {
    /// `v1`: HMAC-SHA256 with a `whsec_` secret the endpoint also holds.
    #[default]
    HmacSha256,
    /// `v1a`: ed25519; the endpoint verifies with the public key (`whpk_`).
    Ed25519,
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
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// What an admin asks for when subscribing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// The endpoint: an absolute `http` or `https` URL.
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
}

/// A refused field: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
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

/// An endpoint URL: what an `http` step's URL must be, at most 2048 long.
fn check_url(url: &str) -> Result<(), String> {
    if url.len() > 2048 {
        return Err("is longer than 2048 characters".into());
    }
    crate::request::check_url_text(url)
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
        if self.event_types.is_empty() {
            errs.push(FieldError::new("event_types", "list at least one event type or pattern"));
        }
        for (i, p) in self.event_types.iter().enumerate() {
            if let Err(e) = Pattern::parse(p) {
                errs.push(FieldError::new(format!("event_types[{i}]"), e));
            }
        }
        if let Some(t) = &self.tenant
            && let Err(e) = check_tenant(t)
        {
            errs.push(FieldError::new("tenant", e));
        }
        if self.description.len() > 1024 {
            errs.push(FieldError::new("description", "is longer than 1024 characters"));
        }
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
    /// keyring.
    pub fn create(self, now: i64) -> Result<(Subscription, Keyring), Vec<FieldError>> {
        self.check()?;
        let sub = Subscription {
            id: format!("sub_{}", uuid::Uuid::now_v7().simple()),
            tenant: self.tenant.unwrap_or_else(|| DEFAULT_TENANT.into()),
            url: self.url,
            event_types: self.event_types,
            description: self.description,
            metadata: self.metadata,
            status: Status::Pending,
            signing: self.signing,
            ordering: self.ordering,
            key: self.key,
            created_at: now,
            updated_at: now,
            verification: Some(Verification { token: random_hex(), started_at: now }),
            failing_since: None,
            disabled_at: None,
            disabled_reason: None,
            keys_version: 0,
        };
        let keyring = Keyring::new(sub.signing);
        Ok((sub, keyring))
    }
}

/// How subscriptions are driven; the defaults are the Standard Webhooks
/// recommendations, `hookflow dev` can shorten them for a demo or a test.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Retries of event deliveries.
    pub retry: RetryPolicy,
    /// Retries of the verification request; when it runs out the
    /// subscription is `failed`.
    pub verification: RetryPolicy,
    /// A subscription failing for longer than this is disabled.
    pub disable_after: Duration,
    /// How long a rotated-out key keeps signing.
    pub rotation_grace: Duration,
    /// How long a published event id is remembered (a repeat is accepted
    /// once).
    pub idempotency: Duration,
    /// Per attempt.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        let mut verification = RetryPolicy::schedule(&[
            Duration::from_secs(5),
            Duration::from_secs(60),
            Duration::from_secs(10 * 60),
            Duration::from_secs(3600),
            Duration::from_secs(4 * 3600),
            Duration::from_secs(8 * 3600),
            Duration::from_secs(12 * 3600),
        ]);
        verification.max_age = Some(Duration::from_secs(24 * 3600));
        Settings {
            retry: RetryPolicy::schedule(&STANDARD_WEBHOOKS_SCHEDULE),
            verification,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            rotation_grace: Duration::from_secs(24 * 3600),
            idempotency: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(15),
        }
    }
}

impl Settings {
    /// With other retry delays (after the first attempt) for events and
    /// for verification requests; an empty list keeps the default.
    pub fn with_schedules(mut self, event: &[Duration], verification: &[Duration]) -> Self {
        if !event.is_empty() {
            self.retry = RetryPolicy::schedule(event);
        }
        if !verification.is_empty() {
            self.verification = RetryPolicy::schedule(verification);
        }
        self
    }
}

/// One signing key of a subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// `whsec_…` (HMAC) or `whsk_…` (ed25519).
    pub secret: String,
    /// When it stops signing (ms); `None` while it is the current key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// A subscription's signing keys, newest last. Kept in the secret store as
/// JSON text; [`crate::request::signature_headers`] signs with every key
/// not yet expired.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyring {
    pub keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

/// What the admin gets back once: the secret (HMAC) or the public key
/// (ed25519; the private key never leaves Hookflow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Secret(String),
    PublicKey(String),
}

impl Keyring {
    fn fresh(signing: Signing) -> Key {
        let secret = match signing {
            Signing::HmacSha256 => WebhookSecret::generate().expose(),
            Signing::Ed25519 => SigningKey::generate().expose(),
        };
        Key { secret, expires_at: None }
    }

    pub fn new(signing: Signing) -> Self {
        Keyring { keys: vec![Self::fresh(signing)] }
    }

    /// The current key's credential for the endpoint's owner.
    pub fn credential(&self) -> Option<Credential> {
        let key = self.keys.last()?;
        if key.secret.starts_with("whsk_") {
            SigningKey::parse(&key.secret).ok().map(|k| Credential::PublicKey(k.public()))
        } else {
            Some(Credential::Secret(key.secret.clone()))
        }
    }

    /// The public keys (`whpk_`) of the ed25519 keys still signing at `now`.
    pub fn public_keys(&self, now: i64) -> Vec<String> {
        self.valid(now).filter_map(|k| SigningKey::parse(&k.secret).ok()).map(|k| k.public()).collect()
    }

    /// A new current key; the old ones sign until `now + grace` (keys that
    /// have expired already are dropped).
    pub fn rotate(&mut self, signing: Signing, now: i64, grace: Duration) {
        self.keys.retain(|k| k.expires_at.is_none_or(|at| at > now));
        let until = now + grace.as_millis() as i64;
        for k in &mut self.keys {
            k.expires_at = Some(k.expires_at.map_or(until, |at| at.min(until)));
        }
        self.keys.push(Self::fresh(signing));
    }

    fn valid(&self, now: i64) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(move |k| k.expires_at.is_none_or(|at| at > now))
    }

    /// The `webhook-signature` value at `timestamp` (seconds): one entry
    /// per key still valid then, newest first.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, SignatureError> {
        let mut out = Vec::new();
        for k in self.valid(timestamp * 1000).collect::<Vec<_>>().into_iter().rev() {
            if k.secret.starts_with("whsk_") {
                out.push(SigningKey::parse(&k.secret)?.sign(msg_id, timestamp, body));
            } else {
                out.push(WebhookSecret::parse(&k.secret)?.sign(msg_id, timestamp, body));
            }
        }
        if out.is_empty() {
            return Err(SignatureError::BadSecret("the subscription has no valid signing key".into()));
        }
        Ok(out.join(" "))
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The keyring in a secret value, if the value is one.
    pub fn from_text(text: &str) -> Option<Self> {
        if !text.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str(text).ok()
    }
}

/// A published event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub tenant: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was published (ms).
    pub at: i64,
    pub data: Value,
}

/// What an admin publishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Dotted lowercase words: `payment.received`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Anything JSON; delivered as `data`.
    #[serde(default)]
    pub data: Value,
    /// Idempotency key: a repeat within 24 h is accepted once. Generated
    /// when absent. 1-128 of `A-Za-z0-9._:-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl NewEvent {
    pub fn into_event(self, now: i64) -> Result<Event, Vec<FieldError>> {
        let mut errs = Vec::new();
        if let Err(e) = check_type(&self.kind) {
            errs.push(FieldError::new("type", e));
        }
        if let Some(id) = &self.id
            && (id.is_empty()
                || id.len() > 128
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)))
        {
            errs.push(FieldError::new("id", "must be 1-128 of `A-Za-z0-9._:-`"));
        }
        if let Some(t) = &self.tenant
            && let Err(e) = check_tenant(t)
        {
            errs.push(FieldError::new("tenant", e));
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Event {
            id: self.id.unwrap_or_else(|| format!("evt_{}", uuid::Uuid::now_v7().simple())),
            tenant: self.tenant.unwrap_or_else(|| DEFAULT_TENANT.into()),
            kind: self.kind,
            at: now,
            data: self.data,
        })
    }
}

impl Event {
    /// The delivered body: `{"type", "timestamp", "data"}`.
    pub fn envelope(&self) -> Value {
        json!({"type": self.kind, "timestamp": crate::duration::rfc3339(self.at), "data": self.data})
    }

    /// The operational event saying `sub` was disabled. `was` is when the
    /// record it changed was last updated: two workers disabling the same
    /// record at once build the same event id, and the store publishes it
    /// once (the loser's commit is refused and redone against the new state).
    pub fn disabled(sub: &Subscription, was: i64, now: i64) -> Event {
        Event {
            id: format!("evt_disabled_{}_{was}", sub.id),
            tenant: sub.tenant.clone(),
            kind: "subscription.disabled".into(),
            at: now,
            data: json!({
                "subscription_id": sub.id, "url": sub.url,
                "reason": sub.disabled_reason, "failing_since": sub.failing_since.map(crate::duration::rfc3339),
            }),
        }
    }
}

/// Deliveries of subscriptions: 2xx succeeds, `410 Gone` disables, every
/// other answer is retried (Standard Webhooks: any non-2xx is a failure).
fn status_policy() -> StatusPolicy {
    StatusPolicy {
        success: Some(vec![StatusRange::new(200, 299)]),
        retry: Some(vec![StatusRange::new(100, 599)]),
        halt: Some(vec![StatusRange::new(410, 410)]),
    }
}

impl Subscription {
    /// The secret-store name of its keyring.
    pub fn keyring_name(&self) -> String {
        keyring_name(&self.id)
    }

    /// Whether it receives `event_type`.
    pub fn selects(&self, event_type: &str) -> bool {
        crate::events::selected(&self.event_types, event_type)
    }

    fn delivery(&self, id: String, event_id: &str, step: &str, body: String, purpose: Purpose) -> Delivery {
        Delivery {
            id,
            run_id: event_id.to_string(),
            event_id: event_id.to_string(),
            tenant: self.tenant.clone(),
            flow_id: String::new(),
            step: step.to_string(),
            request: OutboundRequest {
                method: Method::Post,
                url: SecretText::plain(&self.url),
                headers: vec![
                    ("content-type".into(), SecretText::plain("application/json")),
                    ("user-agent".into(), SecretText::plain(USER_AGENT)),
                ],
                body: Some(body),
            },
            status_policy: status_policy(),
            retry: RetryPolicy::default(),
            sign: Some(SignSpec { secret: self.keyring_name(), scheme: SignScheme::StandardWebhooks, hmac: None }),
            timeout: Duration::from_secs(15),
            wait: false,
            purpose,
        }
    }

    /// The verification request: a signed POST of
    /// `{"type": "webhook.verification", "token"}`, retried on `settings.verification`.
    pub fn verification_job(&self, settings: &Settings, now: i64) -> Option<NewJob> {
        let v = self.verification.as_ref()?;
        let body = json!({"type": "webhook.verification", "token": v.token}).to_string();
        let purpose = Purpose::Verify { subscription: self.id.clone(), token: v.token.clone() };
        let id = format!("msg_verify_{}_{}", self.id, v.started_at);
        let mut d = self.delivery(id, &format!("verify_{}", self.id), "webhook.verification", body, purpose);
        d.retry = settings.verification.clone();
        d.timeout = settings.timeout;
        Some(NewJob::delivery(&DeliveryJob { delivery: d, attempts: 0, first_at: now }, now))
    }

    /// The delivery of `event` to this subscription; with per-key ordering
    /// its queue group is the subscription and the rendered key.
    pub fn event_job(&self, event: &Event, body: &str, settings: &Settings, now: i64) -> NewJob {
        let purpose = Purpose::Event { subscription: self.id.clone() };
        let id = format!("msg_{}_{}", self.id.trim_start_matches("sub_"), event.id);
        let mut d = self.delivery(id, &event.id, &event.kind, body.to_string(), purpose);
        d.retry = settings.retry.clone();
        d.timeout = settings.timeout;
        let mut job = NewJob::delivery(&DeliveryJob { delivery: d, attempts: 0, first_at: now }, now);
        if self.ordering == Ordering::PerKey {
            job.group = Some(format!("{}:{}", self.id, self.order_key(event)));
        }
        job
    }

    /// The rendered ordering key; a key that fails to render is empty (all
    /// such events share one order).
    fn order_key(&self, event: &Event) -> String {
        let Some(source) = &self.key else { return String::new() };
        let mut t = Templates::new();
        if t.add(source).is_err() {
            return String::new();
        }
        let ctx = Context::new(
            json!({"type": event.kind, "id": event.id, "data": event.data}).as_object().cloned().unwrap_or_default(),
        );
        t.render_text(source, &ctx).unwrap_or_default()
    }

    /// What `health` (the outcome of an attempt) changes, if anything.
    /// Returns the subscription as it should be stored, and whether this
    /// change disabled it.
    pub fn apply(&self, health: &Health, settings: &Settings, now: i64) -> Option<(Subscription, bool)> {
        let mut s = self.clone();
        let mut disabled = false;
        match health {
            Health::Verified => {
                if s.status != Status::Pending {
                    return None;
                }
                s.status = Status::Active;
                s.verification = None;
            }
            Health::Unverified => {
                if s.status != Status::Pending {
                    return None;
                }
                s.status = Status::Failed;
            }
            Health::Delivered => {
                s.failing_since?;
                s.failing_since = None;
            }
            Health::Failed => {
                if s.status != Status::Active {
                    return None;
                }
                let since = *s.failing_since.get_or_insert(now);
                if now - since >= settings.disable_after.as_millis() as i64 {
                    let days = settings.disable_after.as_secs_f64() / 86_400.0;
                    s.disable(now, format!("every attempt failed for longer than {days:.3} days"));
                    disabled = true;
                } else if self.failing_since.is_some() {
                    return None;
                }
            }
            Health::Gone => {
                if s.status != Status::Active {
                    return None;
                }
                s.failing_since.get_or_insert(now);
                s.disable(now, "the endpoint answered 410 Gone".into());
                disabled = true;
            }
        }
        s.updated_at = now;
        Some((s, disabled))
    }

    fn disable(&mut self, now: i64, reason: String) {
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

    /// Active again (from disabled), health reset.
    pub fn enabled(&self, now: i64) -> Subscription {
        let mut s = self.clone();
        s.status = Status::Active;
        s.failing_since = None;
        s.disabled_at = None;
        s.disabled_reason = None;
        s.updated_at = now;
        s
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

/// What a delivery's outcome changed for its subscription.
#[derive(Debug)]
pub struct HealthChange {
    /// The subscription as it is now.
    pub sub: Subscription,
    /// Its row and log entry, to add to the attempt's commit.
    pub commit: crate::commit::Commit,
    /// The operational log line saying so.
    pub line: crate::engine::LogLine,
    /// When the change disabled it: the `subscription.disabled` event, for
    /// the driver to fan out in the same commit.
    pub disabled: Option<Event>,
}

/// What `health` changes for `sub` (the record as read), or `None`.
pub fn health_change(sub: &Subscription, health: Health, settings: &Settings, now: i64) -> Option<HealthChange> {
    let (changed, disabled) = sub.apply(&health, settings, now)?;
    let commit = crate::commit::Commit {
        subscriptions: vec![crate::commit::SubscriptionRow::replacing(&changed, sub.updated_at)],
        log: vec![crate::commit::LogEntry::for_subscription(&changed, now)],
        ..Default::default()
    };
    // The status, or (still active) the start or end of a failure window.
    let message = match (changed.status == sub.status, changed.failing_since) {
        (false, _) => format!("subscription {}", changed.status.as_str()),
        (true, Some(_)) => "subscription failing".to_string(),
        (true, None) => "subscription recovered".to_string(),
    };
    let line = crate::engine::LogLine {
        level: if disabled { "warn" } else { "info" },
        message,
        fields: json!({
            "tenant": changed.tenant, "subscription_id": changed.id, "reason": changed.disabled_reason,
            "failing_since": changed.failing_since,
        }),
    };
    let disabled = disabled.then(|| Event::disabled(&changed, sub.updated_at, now));
    Some(HealthChange { sub: changed, commit, line, disabled })
}

/// The keyring's secret-store name for subscription `id`.
pub fn keyring_name(id: &str) -> String {
    format!("subscriptions/{id}")
}

/// What an attempt says about a subscription's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The verification token was echoed.
    Verified,
    /// The verification attempts ran out.
    Unverified,
    /// An event was delivered.
    Delivered,
    /// An attempt failed (retried or not).
    Failed,
    /// `410 Gone`.
    Gone,
}

/// What to do with a delivery before sending it, given its subscription as
/// stored now (`None`: deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Send,
    /// Record it as a dead delivery (replayable): an event the endpoint
    /// missed because its subscription is not active.
    Dead(String),
    /// Drop it, logged: the subscription was deleted, or the verification
    /// round it belongs to is over.
    Drop(String),
}

/// The [`Gate`] of a delivery with `purpose`; flow steps always pass.
pub fn gate(purpose: &Purpose, sub: Option<&Subscription>) -> Gate {
    let Some(id) = purpose.subscription() else { return Gate::Send };
    let Some(sub) = sub.filter(|s| s.id == id) else { return Gate::Drop("its subscription was deleted".into()) };
    match purpose {
        Purpose::Verify { token, .. } => {
            if sub.status != Status::Pending || sub.verification.as_ref().is_none_or(|v| &v.token != token) {
                // A newer round (`verify`) or the end of this one: its
                // outcome must not fail a subscription another round verifies.
                return Gate::Drop("its verification round is over (verified, or replaced by a newer one)".into());
            }
            Gate::Send
        }
        _ if sub.status != Status::Active => Gate::Dead(format!("its subscription is {}", sub.status.as_str())),
        _ => Gate::Send,
    }
}

/// Whether a verification response echoes `token`: a JSON body
/// `{"token": …}` or the token as plain text.
pub fn echoes(body: &Value, token: &str) -> bool {
    match body {
        Value::String(s) => s.trim() == token,
        Value::Object(o) => o.get("token").and_then(Value::as_str) == Some(token),
        _ => false,
    }
}

/// What publishing an event does, as one unit of work.
#[derive(Debug, Default)]
pub struct Publication {
    /// The event's row (its id's window), a delivery per matching active
    /// subscription, a run per flow it starts (with their first steps), and
    /// the log entries.
    pub outcome: crate::engine::Outcome,
    pub deliveries: usize,
    pub runs: Vec<String>,
}

/// Publishes `event` to `subs` (any; only the tenant's active matching ones
/// receive it) and to `flows` (those whose event trigger selects it).
pub fn publish<'a, 'b>(
    event: &Event,
    subs: impl IntoIterator<Item = &'a Subscription>,
    flows: impl IntoIterator<Item = &'b crate::CompiledFlow>,
    settings: &Settings,
    now: i64,
) -> Publication {
    let mut p = Publication::default();
    let commit = &mut p.outcome.commit;
    commit.event = Some(crate::commit::EventRow::of(event, settings.idempotency));
    commit.jobs = fan_out(event, subs, settings, now);
    p.deliveries = commit.jobs.len();
    let request = crate::run::InboundRequest {
        method: "EVENT".into(),
        path: event.kind.clone(),
        body: event.envelope().to_string(),
        received_at: crate::duration::rfc3339(now),
        ..Default::default()
    };
    for flow in flows {
        if flow.flow.tenant != event.tenant || !flow.flow.started_by(&event.kind) {
            continue;
        }
        let run_id = format!("run_{}", uuid::Uuid::now_v7().simple());
        let accepted = crate::inbound::accept(flow, &request, (&run_id, &event.id), now, None);
        p.outcome.commit.merge(accepted.outcome.commit);
        p.outcome.lines.extend(accepted.outcome.lines);
        p.runs.push(run_id);
    }
    p.outcome.commit.log.push(crate::commit::LogEntry {
        at: now,
        kind: "event".into(),
        tenant: Some(event.tenant.clone()),
        event_id: Some(event.id.clone()),
        outcome: Some("published".into()),
        detail: json!({"type": event.kind, "deliveries": p.deliveries, "runs": p.runs}),
        ..Default::default()
    });
    p.outcome.lines.push(crate::engine::LogLine {
        level: "info",
        message: "event published".into(),
        fields: json!({"tenant": event.tenant, "event_id": event.id, "type": event.kind,
                       "deliveries": p.deliveries, "runs": p.runs.len()}),
    });
    p
}

/// One delivery job per active subscription of the event's tenant that
/// selects its type, with the body serialised once.
pub fn fan_out<'a>(
    event: &Event,
    subs: impl IntoIterator<Item = &'a Subscription>,
    settings: &Settings,
    now: i64,
) -> Vec<NewJob> {
    let body = event.envelope().to_string();
    subs.into_iter()
        .filter(|s| s.status == Status::Active && s.tenant == event.tenant && s.selects(&event.kind))
        .map(|s| s.event_job(event, &body, settings, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attempt::{AttemptResult, Decision, decide};
    use crate::run::CapturedResponse;
    use rand::SeedableRng;

    fn new(url: &str, types: &[&str]) -> NewSubscription {
        NewSubscription {
            url: url.into(),
            event_types: types.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn active(types: &[&str]) -> Subscription {
        let (mut s, _) = new("https://r.example/hook", types).create(1_000).unwrap();
        s.status = Status::Active;
        s
    }

    fn event(kind: &str, data: Value) -> Event {
        NewEvent { kind: kind.into(), data, ..Default::default() }.into_event(5_000).unwrap()
    }

    #[test]
    fn creating_checks_every_field_and_names_it() {
        let mut bad = new("ftp://x", &["contact.*", "Bad"]);
        bad.ordering = Ordering::PerKey;
        bad.tenant = Some("no spaces".into());
        let errs = bad.create(0).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["url", "event_types[1]", "tenant", "key"]);
        assert!(new("https://x.example", &[]).check().unwrap_err()[0].message.contains("at least one"));
        let (s, ring) = new("https://x.example/h", &["a.b"]).create(7).unwrap();
        assert_eq!((s.status, s.tenant.as_str(), s.created_at), (Status::Pending, "default", 7));
        assert_eq!(s.verification.as_ref().unwrap().token.len(), 32);
        assert!(matches!(ring.credential(), Some(Credential::Secret(k)) if k.starts_with("whsec_")));
    }

    #[test]
    fn fan_out_reaches_only_active_matching_subscriptions_of_the_tenant() {
        let a = active(&["contact.*"]);
        let b = active(&["payment.received"]);
        let mut pending = active(&["contact.*"]);
        pending.status = Status::Pending;
        let mut other = active(&["contact.*"]);
        other.tenant = "other".into();
        let e = event("contact.created", json!({"id": 1}));
        let jobs = fan_out(&e, [&a, &b, &pending, &other], &Settings::default(), 9);
        assert_eq!(jobs.len(), 1);
        let dj: DeliveryJob = serde_json::from_str(&jobs[0].payload).unwrap();
        assert_eq!(dj.delivery.request.url.redacted(), a.url);
        let body: Value = serde_json::from_str(dj.delivery.request.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"type": "contact.created", "timestamp": "1970-01-01T00:00:05.000Z", "data": {"id": 1}})
        );
        assert_eq!(dj.delivery.sign.as_ref().unwrap().secret, a.keyring_name());
        assert_eq!(dj.delivery.retry.max_attempts, 10, "the Standard Webhooks schedule");
        assert!(!jobs[0].payload.contains("whsec_"), "the job names the keyring, never a key");
    }

    #[test]
    fn per_key_ordering_groups_by_the_rendered_key() {
        let mut s = active(&["order.*"]);
        s.ordering = Ordering::PerKey;
        s.key = Some("{{ data.customer_id }}".into());
        let e = event("order.paid", json!({"customer_id": 42}));
        let job = s.event_job(&e, "{}", &Settings::default(), 0);
        assert_eq!(job.group.as_deref(), Some(format!("{}:42", s.id).as_str()));
        assert_eq!(active(&["order.*"]).event_job(&e, "{}", &Settings::default(), 0).group, None);
        // Rendered per event and per template.
        let mut t = s.clone();
        t.key = Some("{{ data.region }}-{{ data.customer_id % 10 }}".into());
        let group = |sub: &Subscription, data| {
            let job = sub.event_job(&event("order.paid", data), "{}", &Settings::default(), 0);
            job.group.unwrap().split_once(':').unwrap().1.to_string()
        };
        assert_eq!(group(&s, json!({"customer_id": 7})), "7");
        assert_eq!(group(&t, json!({"customer_id": 17, "region": "eu"})), "eu-7");
        assert_eq!(group(&s, json!({"customer_id": 8})), "8");
        assert_eq!(group(&t, json!({"customer_id": 3})), "", "a key that fails to render is empty");
    }

    #[test]
    fn rotation_signs_with_both_keys_until_the_old_one_expires() {
        let mut ring = Keyring::new(Signing::HmacSha256);
        let old = ring.keys[0].secret.clone();
        ring.rotate(Signing::HmacSha256, 1_000_000, Duration::from_secs(60));
        let both = ring.sign("msg_1", 1_000, b"{}").unwrap();
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.ends_with(&WebhookSecret::parse(&old).unwrap().sign("msg_1", 1_000, b"{}")), "new key first");
        let later = ring.sign("msg_1", 1_061, b"{}").unwrap();
        assert_eq!(later.split(' ').count(), 1, "the old key expired after the grace period");
        assert!(Keyring::from_text(&ring.to_text()).is_some_and(|r| r == ring));
        assert!(Keyring::from_text("whsec_abc").is_none());
        assert!(!format!("{ring:?}").contains("whsec_"));
    }

    #[test]
    fn ed25519_keyrings_hand_out_the_public_key_only() {
        let ring = Keyring::new(Signing::Ed25519);
        let Some(Credential::PublicKey(pk)) = ring.credential() else { panic!() };
        assert!(pk.starts_with("whpk_"));
        assert_eq!(ring.public_keys(0), std::slice::from_ref(&pk));
        let sig = ring.sign("m", 100, b"x").unwrap();
        crate::signature::asymmetric_verify(&pk, "m", "100", &sig, b"x", 100, Duration::from_secs(300)).unwrap();
    }

    fn answer(status: u16, body: &str) -> AttemptResult {
        AttemptResult {
            response: Some(CapturedResponse::new(status, Default::default(), body)),
            retry_after: None,
            error: None,
        }
    }

    #[test]
    fn verification_succeeds_only_when_the_token_is_echoed() {
        let (s, _) = new("https://x.example/h", &["a.b"]).create(0).unwrap();
        let token = s.verification.clone().unwrap().token;
        let dj: DeliveryJob =
            serde_json::from_str(&s.verification_job(&Settings::default(), 0).unwrap().payload).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let d = &dj.delivery;
        let json_echo = answer(200, &format!("{{\"token\":\"{token}\"}}"));
        assert!(matches!(decide(d, &json_echo, 1, Duration::ZERO, &mut rng).1, Decision::Delivered(_)));
        assert!(matches!(decide(d, &answer(200, &token), 1, Duration::ZERO, &mut rng).1, Decision::Delivered(_)));
        assert!(matches!(decide(d, &answer(200, "ok"), 1, Duration::ZERO, &mut rng).1, Decision::RetryIn(_)));
        assert!(matches!(decide(d, &answer(204, ""), 1, Duration::ZERO, &mut rng).1, Decision::RetryIn(_)));
    }

    #[test]
    fn health_disables_on_gone_and_after_the_failure_window() {
        let settings = Settings { disable_after: Duration::from_secs(10), ..Default::default() };
        let s = active(&["a.b"]);
        let (s1, off) = s.apply(&Health::Failed, &settings, 1_000).unwrap();
        assert_eq!((s1.failing_since, off), (Some(1_000), false));
        assert_eq!(s1.apply(&Health::Failed, &settings, 5_000), None, "still inside the window: nothing to write");
        let (s2, off) = s1.apply(&Health::Failed, &settings, 11_000).unwrap();
        assert_eq!((s2.status, off), (Status::Disabled, true));
        let (healed, _) = s1.apply(&Health::Delivered, &settings, 6_000).unwrap();
        assert_eq!(healed.failing_since, None);
        assert_eq!(s.apply(&Health::Delivered, &settings, 6_000), None, "healthy stays unwritten");
        let (gone, off) = s.apply(&Health::Gone, &settings, 2_000).unwrap();
        assert_eq!((gone.status, off), (Status::Disabled, true));
        assert!(gone.disabled_reason.as_deref().unwrap().contains("410"));
        assert_eq!(gone.clone().apply(&Health::Gone, &settings, 3_000), None, "disabled once");
        // The log line says what changed.
        let said = |from: &Subscription, h: Health, at| health_change(from, h, &settings, at).unwrap().line.message;
        assert_eq!(said(&s, Health::Failed, 1_000), "subscription failing");
        assert_eq!(said(&s1, Health::Delivered, 6_000), "subscription recovered");
        assert_eq!(said(&s1, Health::Failed, 11_000), "subscription disabled");
        let e = Event::disabled(&s2, s1.updated_at, 11_000);
        assert_eq!(e.id, Event::disabled(&s2, s1.updated_at, 11_001).id, "one id per disabled version");
        assert_eq!((e.kind.as_str(), &e.data["subscription_id"]), ("subscription.disabled", &json!(s.id)));
    }

    #[test]
    fn the_gate_sends_only_to_the_subscription_in_the_right_state() {
        let mut s = active(&["a.b"]);
        let event = Purpose::Event { subscription: s.id.clone() };
        assert_eq!(gate(&Purpose::Step, None), Gate::Send);
        assert_eq!(gate(&event, Some(&s)), Gate::Send);
        assert!(matches!(gate(&event, None), Gate::Drop(_)));
        s.status = Status::Disabled;
        assert_eq!(gate(&event, Some(&s)), Gate::Dead("its subscription is disabled".into()));
        let (p, _) = new("https://x.example/h", &["a.b"]).create(0).unwrap();
        let token = p.verification.clone().unwrap().token;
        let verify = |t: &str| Purpose::Verify { subscription: p.id.clone(), token: t.into() };
        assert_eq!(gate(&verify(&token), Some(&p)), Gate::Send);
        assert!(matches!(gate(&verify("old-round"), Some(&p)), Gate::Drop(_)));
    }

    #[test]
    fn events_are_checked_and_get_an_id() {
        let errs =
            NewEvent { kind: "Bad".into(), id: Some("a b".into()), ..Default::default() }.into_event(0).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["type", "id"]);
        let e = NewEvent { kind: "a.b".into(), ..Default::default() }.into_event(0).unwrap();
        assert!(e.id.starts_with("evt_"));
        assert_eq!(e.tenant, "default");
    }
}

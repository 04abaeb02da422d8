//! The requests a subscription is sent: its verification request and its
//! events, as ordinary deliveries with a purpose.

use std::time::Duration;

use serde_json::json;

use crate::commit::{DeliveryJob, NewJob};
use crate::flow::{Method, SignScheme, SignSpec};
use crate::request::{OutboundRequest, SecretText, USER_AGENT};
use crate::retry::RetryPolicy;
use crate::run::{Delivery, Purpose};
use crate::status::{StatusPolicy, StatusRange};
use crate::template::{Context, Templates};

use super::event::Event;
use super::record::{Ordering, Subscription};
use super::settings::Settings;

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
                headers: self.request_headers(),
                body: Some(body),
            },
            status_policy: status_policy(),
            retry: RetryPolicy::default(),
            sign: Some(SignSpec { secret: self.keyring_name(), scheme: SignScheme::StandardWebhooks, hmac: None }),
            timeout: Duration::from_secs(15),
            wait: false,
            purpose,
            secret_hosts: Default::default(),
            shaped: false,
            limit: None,
        }
    }

    /// Its requests' headers: the body's type, the user agent (which its
    /// own may replace), then its own (secrets by name).
    fn request_headers(&self) -> Vec<(String, SecretText)> {
        let mut headers = vec![("content-type".to_string(), SecretText::plain("application/json"))];
        if !self.headers.keys().any(|k| k.eq_ignore_ascii_case("user-agent")) {
            headers.push(("user-agent".into(), SecretText::plain(USER_AGENT)));
        }
        headers.extend(self.headers.iter().map(|(k, v)| (k.clone(), v.text())));
        headers
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
        Some(NewJob::delivery(&DeliveryJob::new(d, now), now))
    }

    /// The delivery of `event` to this subscription; with per-key ordering
    /// its queue group is the subscription and the rendered key.
    pub fn event_job(&self, event: &Event, body: &str, settings: &Settings, now: i64) -> NewJob {
        let purpose = Purpose::Event { subscription: self.id.clone() };
        let id = format!("msg_{}_{}", self.id.trim_start_matches("sub_"), event.id);
        let mut d = self.delivery(id, &event.id, &event.kind, body.to_string(), purpose);
        d.retry = settings.retry.clone();
        d.timeout = settings.timeout;
        let mut job = NewJob::delivery(&DeliveryJob::new(d, now), now);
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
}

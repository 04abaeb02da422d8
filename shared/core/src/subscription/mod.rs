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
//!
//! | file | concept |
//! |---|---|
//! | `record` | the record, its lifecycle, its row |
//! | `settings` | schedules and windows |
//! | `event` | published events and their rows |
//! | `filter` | which events a subscription gets beyond their type |
//! | `custom_headers` | the headers a subscription adds to its deliveries |
//! | `transform` | each event reshaped (or dropped) for its endpoint |
//! | `requests` | the verification request and event deliveries |
//! | `health` | the gate before sending, the change after |
//! | `publish` | an event to its subscriptions and flows |

mod custom_headers;
mod event;
mod filter;
mod health;
mod publish;
mod record;
mod requests;
mod settings;
mod transform;

pub use crate::attempt::echoes;
pub use crate::engine::Health;
pub use crate::keyring::{Credential, KEYRINGS, Key, Keyring, is_keyring_name};
pub use custom_headers::{HeaderValue, MAX_HEADERS};
pub use event::{Event, NewEvent};
pub use filter::{Filter, MAX_FILTER_BYTES, MAX_FILTER_DEPTH};
pub use health::{Gate, HealthChange, gate, health_change};
pub use publish::{Publication, Published, fan_out, missed, publish};
pub use record::{
    DEFAULT_TENANT, FieldError, NewSubscription, Ordering, Replay, Signing, Status, Subscription, SubscriptionUpdate,
    Verification, check_tenant, keyring_name,
};
pub use settings::Settings;
pub use transform::{Shaped, Transform, event_of};

/// A delivery job of run `run_id` whose request's body is `body` (a
/// subscription's verification request): for the tests and benchmarks of
/// the stores and queues, which need a job and not its meaning.
#[doc(hidden)]
pub fn sample_delivery(run_id: &str, body: &str) -> crate::commit::DeliveryJob {
    let new = NewSubscription {
        url: "https://receiver.example/h".into(),
        event_types: vec!["a.b".into()],
        ..Default::default()
    };
    let (sub, _) = new.create(0).expect("a subscription");
    let job = sub.verification_job(&Settings::default(), 0).expect("its verification");
    let crate::commit::Payload::Delivery(mut d) = job.payload else { unreachable!("a verification is a delivery") };
    d.delivery.run_id = run_id.into();
    d.delivery.request.body = Some(body.into());
    d
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;
    use crate::attempt::{AttemptResult, Decision, decide};
    use crate::commit::DeliveryJob;
    use crate::run::CapturedResponse;
    use crate::run::Purpose;
    use crate::signature::WebhookSecret;
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
    fn a_subscription_to_an_aws_destination_is_active_at_once_and_its_headers_fit_attributes() {
        let (s, _) = new("arn:aws:sqs:us-east-1:123456789012:orders", &["order.*"]).create(7).unwrap();
        assert_eq!((s.status, s.verification.is_none(), s.activated_at), (Status::Active, true, 7));
        assert!(s.verification_job(&Settings::default(), 7).is_none(), "no verification request");
        let mut many = new("arn:aws:sns:us-east-1:123456789012:t", &["a"]);
        many.headers = (0..7).map(|i| (format!("x-h{i}"), json!("v"))).collect();
        let errs = many.create(0).unwrap_err();
        assert!(errs.iter().any(|e| e.field == "headers" && e.message.contains("at most 6")), "{errs:?}");
        let errs = new("arn:aws:sqs:us-east-1:123:q", &["a"]).create(0).unwrap_err();
        assert!(errs[0].field == "url" && errs[0].message.contains("account id"), "{errs:?}");
        // A secret, an empty value, a transform's headers past the rest.
        let mut odd = new("arn:aws:sqs:us-east-1:123456789012:q", &["a"]);
        odd.headers = json!({"Authorization": {"secret": "tok"}, "X-Empty": ""}).as_object().cloned().unwrap();
        odd.transform = Some(
            serde_json::from_value(json!({"headers": {"x.1": "a", "x.2": "b", "x.3": "c", "x.4": "d", "x.5": "e"}}))
                .unwrap(),
        );
        let errs = odd.create(0).unwrap_err();
        let said: Vec<(&str, &str)> = errs.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
        assert!(said.iter().any(|(f, m)| *f == "headers" && m.contains("with its transform's")), "{said:?}");
        assert!(said.iter().any(|(f, m)| *f == "headers.Authorization" && m.contains("carry no secret")), "{said:?}");
        assert!(said.iter().any(|(f, m)| *f == "headers.X-Empty" && m.contains("empty")), "{said:?}");
        // PATCH checks the same: a transform that adds a name SQS refuses.
        let (s0, _) = new("arn:aws:sqs:us-east-1:123456789012:q", &["a"]).create(7).unwrap();
        let update: SubscriptionUpdate =
            serde_json::from_value(json!({"transform": {"headers": {"aws.trace": "x"}}})).unwrap();
        let errs = update.apply(&s0, 8).unwrap_err();
        assert_eq!(errs[0].field, "transform.headers.aws.trace", "{errs:?}");
        // An https endpoint is unchanged: pending until it echoes.
        let (s, _) = new("https://r.example/hook", &["a"]).create(7).unwrap();
        assert_eq!(s.status, Status::Pending);
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
        let dj: DeliveryJob = jobs[0].payload.as_delivery().unwrap().clone();
        assert_eq!(dj.delivery.request.url.redacted(), a.url);
        let body: Value = serde_json::from_str(dj.delivery.request.body.as_deref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"type": "contact.created", "timestamp": "1970-01-01T00:00:05.000Z", "data": {"id": 1}})
        );
        assert_eq!(dj.delivery.sign.as_ref().unwrap().secret, a.keyring_name());
        assert_eq!(dj.delivery.retry.max_attempts, 10, "the Standard Webhooks schedule");
        assert!(!jobs[0].payload.text().contains("whsec_"), "the job names the keyring, never a key");
    }

    #[test]
    fn a_filter_decides_at_the_fan_out_and_a_publish_counts_what_it_left_out() {
        let mut big = active(&["order.*"]);
        big.filter = Some(Filter::parse("filter", &json!({"data": {"amount": {"$gte": 100}}})).unwrap());
        let all = active(&["order.*"]);
        let small = event("order.paid", json!({"amount": 5}));
        let large = event("order.paid", json!({"amount": 500}));
        let settings = Settings::default();
        assert_eq!(fan_out(&small, [&big, &all], &settings, 9).len(), 1, "only the unfiltered one");
        assert_eq!(fan_out(&large, [&big, &all], &settings, 9).len(), 2);
        let p = publish(&small, [&big, &all], [], &settings, 9);
        assert_eq!((p.deliveries, p.filtered), (1, 1));
        let logged = p.outcome.commit.log.iter().find(|e| e.kind == crate::commit::EntryKind::Event).unwrap();
        assert_eq!(logged.detail["filtered"], 1);
        // A repeat's second read (`missed`) honours the filter as well.
        big.activated_at = 10_000;
        assert!(missed(&small, [&big], None, &settings, 9).is_empty());
        assert_eq!(missed(&large, [&big], None, &settings, 9).len(), 1);
    }

    #[test]
    fn a_change_is_checked_as_a_new_subscription_is_and_moves_its_version_on() {
        let sub = active(&["order.*"]);
        let change: SubscriptionUpdate = serde_json::from_value(json!({
            "event_types": ["order.paid"], "filter": {"data": {"x": {"$exist": true}}},
            "headers": {"X-Team": "crm"}
        }))
        .unwrap();
        let changed = change.apply(&sub, 0).unwrap();
        assert_eq!(changed.event_types, ["order.paid"]);
        assert!(changed.filter.is_some() && changed.headers.contains_key("X-Team"));
        assert!(changed.updated_at > sub.updated_at, "a clock behind the record still moves it on");
        let removed: SubscriptionUpdate = serde_json::from_value(json!({"filter": null, "headers": null})).unwrap();
        let back = removed.apply(&changed, 5_000).unwrap();
        assert!(back.filter.is_none() && back.headers.is_empty());
        let untouched: SubscriptionUpdate = serde_json::from_value(json!({})).unwrap();
        assert_eq!(untouched.apply(&changed, 5_000).unwrap().filter, changed.filter, "absent is unchanged");
        let bad: SubscriptionUpdate =
            serde_json::from_value(json!({"event_types": [], "filter": {"$not": 1}, "headers": {"Host": "x"}}))
                .unwrap();
        let fields: Vec<String> = bad.apply(&sub, 0).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["event_types", "filter.$not", "headers.Host"]);
        assert!(serde_json::from_value::<SubscriptionUpdate>(json!({"url": "http://x"})).is_err(), "no new endpoint");
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
            s.verification_job(&Settings::default(), 0).unwrap().payload.as_delivery().unwrap().clone();
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
        let e = Event::disabled(&s2, 11_000);
        assert_eq!(e.id, Event::disabled(&s2, 11_001).id, "one id per disabled version");
        assert_eq!(Event::disabled_id(&s2).as_deref(), Some(e.id.as_str()), "found again from the record");
        assert_eq!(Event::disabled_id(&s1), None);
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

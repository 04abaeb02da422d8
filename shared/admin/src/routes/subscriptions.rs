//! `/v1/subscriptions`: create, list, read, change, delete, verify, rotate
//! the secret, the public key, disable. Enabling (with its replay) is
//! [`super::replay`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookflow_core::subscription::{
    Credential, Event, Keyring, NewEvent, NewSubscription, Shaped, Status, Subscription, SubscriptionUpdate, Transform,
};
use serde_json::{Value, json};

use crate::backend::Backend;

use super::Admin;
use super::plumbing::{ApiError, ApiResult, Query, body, ok};

/// A subscription as the API shows it (the verification token is the
/// endpoint's business, not the admin's).
pub(super) fn view(s: &Subscription) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("verification");
    }
    v
}

pub(super) fn credential_fields(ring: &Keyring, out: &mut Value) {
    match ring.credential() {
        Some(Credential::Secret(s)) => out["secret"] = json!(s),
        Some(Credential::PublicKey(k)) => out["public_key"] = json!(k),
        None => {}
    }
}

pub(super) async fn subscription<B: Backend>(a: &Admin<B>, id: &str) -> Result<Subscription, ApiError> {
    a.backend.subscription(id).await?.ok_or_else(|| ApiError::not_found("such subscription"))
}

pub(super) async fn create_subscription<B: Backend>(State(a): State<Arc<Admin<B>>>, bytes: Bytes) -> ApiResult {
    let new: NewSubscription = body(&bytes)?;
    let now = a.backend.now_ms();
    let (sub, ring) = new.create(now).map_err(ApiError::invalid)?;
    // An AWS destination only where the deployment allows it.
    if hookflow_core::destination::is_arn(&sub.url)
        && let Err(why) = a.backend.settings().destinations.check(&sub.url)
    {
        return Err(ApiError::invalid(vec![hookflow_core::subscription::FieldError::new("url", why)]));
    }
    tried_on_a_recent_event(&a, &sub).await?;
    // The keys first: a subscription is never without them.
    a.backend.put_keyring(&sub, &ring).await?;
    let job = sub.verification_job(a.backend.settings(), now);
    a.backend.save_subscription(&sub, None, job.into_iter().collect()).await?;
    let mut out = view(&sub);
    credential_fields(&ring, &mut out);
    ok(StatusCode::CREATED, out)
}

pub(super) async fn list_subscriptions<B: Backend>(State(a): State<Arc<Admin<B>>>, RawQuery(q): RawQuery) -> ApiResult {
    let q = Query::of(q);
    let tenant = q.text("tenant");
    // Paged when asked (`limit`, `after`): by id, the next page after the
    // last id of this one (`next`); else all, as before.
    if q.text("limit").is_none() && q.text("after").is_none() {
        let subs = a.backend.subscriptions(tenant.as_deref()).await?;
        return ok(StatusCode::OK, json!({ "subscriptions": subs.iter().map(view).collect::<Vec<_>>() }));
    }
    let limit = q.int("limit", 100, 1..=1_000)? as usize;
    let after = q.text("after");
    let subs = a.backend.subscriptions_page(tenant.as_deref(), after.as_deref(), limit).await?;
    let next = (subs.len() == limit).then(|| subs.last().map(|s| s.id.clone())).flatten();
    ok(StatusCode::OK, json!({ "subscriptions": subs.iter().map(view).collect::<Vec<_>>(), "next": next }))
}

/// One subscription; with limits, what waits on them now (`backlog`).
pub(super) async fn get_subscription<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id).await?;
    let mut out = view(&sub);
    if !sub.limits().is_none() {
        out["backlog"] = json!(a.backend.backlog(&sub).await?);
    }
    ok(StatusCode::OK, out)
}

/// How often a change is applied again over a record that changed
/// meanwhile before the caller is told (409).
const UPDATE_TRIES: usize = 5;

/// A change written over the version it was made from. The fields it sets
/// are the admin's alone, so a record changed meanwhile (a delivery's
/// outcome moving the endpoint's health, many a second for a failing
/// endpoint) is read again and the change applied over it; only a record
/// that keeps changing is a 409.
pub(super) async fn update_subscription<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let change: SubscriptionUpdate = body(&bytes)?;
    let mut tries = 0;
    loop {
        let sub = subscription(&a, &id).await?;
        let changed = change.apply(&sub, a.backend.now_ms()).map_err(ApiError::invalid)?;
        if change.transform.is_some() && tries == 0 {
            tried_on_a_recent_event(&a, &changed).await?;
        }
        match a.backend.save_subscription(&changed, Some(sub.updated_at), Vec::new()).await {
            Ok(()) => return ok(StatusCode::OK, view(&changed)),
            Err(crate::backend::BackendError::Conflict { .. }) if tries + 1 < UPDATE_TRIES => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// How far back a preview or a save looks for an event the subscription
/// takes, and how many events it reads there at most.
const RECENT_MS: i64 = 86_400_000;
const RECENT_READ: usize = 1_000;

/// The newest event of the last day that `sub` takes (among the first
/// [`RECENT_READ`] of them), if any.
async fn recent_event<B: Backend>(a: &Admin<B>, sub: &Subscription) -> Result<Option<Event>, ApiError> {
    let since = a.backend.now_ms() - RECENT_MS;
    let events = a.backend.events(Some(&sub.tenant), since, RECENT_READ).await?;
    Ok(events.into_iter().rev().find(|e| sub.takes(e)))
}

/// A transform is saved only if it renders a recent event the subscription
/// takes (a 422 names the event and the error); with none, its templates
/// were checked alone.
async fn tried_on_a_recent_event<B: Backend>(a: &Admin<B>, sub: &Subscription) -> Result<(), ApiError> {
    let Some(t) = &sub.transform else { return Ok(()) };
    let Some(event) = recent_event(a, sub).await? else { return Ok(()) };
    match preview(sub, t, &event, a.backend.settings(), a.backend.now_ms()) {
        Ok(_) => Ok(()),
        Err(why) => Err(ApiError::invalid(vec![hookflow_core::subscription::FieldError::new(
            "transform",
            format!("fails on event `{}` ({}): {why}", event.id, event.kind),
        )])),
    }
}

/// `event` as `sub` would send it before and after `t`: (the request as
/// queued, the request after the transform or `None` when it drops it).
fn preview(
    sub: &Subscription,
    t: &Transform,
    event: &Event,
    settings: &hookflow_core::subscription::Settings,
    now: i64,
) -> Result<(Value, Option<Value>), String> {
    let job = sub.event_job(event, &event.envelope().to_string(), settings, now);
    let d = &job.payload.as_delivery().ok_or("an event's job is a delivery")?.delivery;
    let after = match t.shape(d)? {
        Shaped::Send(r) => Some(r.redacted()),
        Shaped::Drop => None,
    };
    Ok((d.request.redacted(), after))
}

/// `POST /v1/subscriptions/{id}/preview`: a dry run of a transform (the
/// one given, or the subscription's) on an event (the one given, else the
/// newest of the last day the subscription takes, else a sample). Nothing
/// is sent or saved.
pub(super) async fn preview_transform<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ask {
        #[serde(default)]
        transform: Option<Transform>,
        #[serde(default)]
        event: Option<NewEvent>,
    }
    let ask: Ask = if bytes.is_empty() { Ask { transform: None, event: None } } else { body(&bytes)? };
    let sub = subscription(&a, &id).await?;
    let transform = ask.transform.or_else(|| sub.transform.clone()).unwrap_or_default();
    transform.compile().map_err(ApiError::invalid)?;
    let now = a.backend.now_ms();
    let (event, source) = match ask.event {
        Some(mut e) => {
            e.tenant.get_or_insert_with(|| sub.tenant.clone());
            (
                e.into_event(now).map_err(|errs| {
                    ApiError::invalid(
                        errs.into_iter()
                            .map(|mut e| {
                                e.field = format!("event.{}", e.field);
                                e
                            })
                            .collect(),
                    )
                })?,
                "given",
            )
        }
        None => match recent_event(&a, &sub).await? {
            Some(e) => (e, "recent"),
            None => {
                let kind = sub.event_types.iter().find(|t| !t.contains('*')).cloned().unwrap_or("example.event".into());
                (
                    Event { id: "evt_sample".into(), tenant: sub.tenant.clone(), kind, at: now, data: json!({}) },
                    "sample",
                )
            }
        },
    };
    let seen = event.filtered();
    let answer = match preview(&sub, &transform, &event, a.backend.settings(), now) {
        Ok((before, after)) => {
            json!({"event": seen, "source": source, "before": before, "after": after, "dropped": after.is_none(), "error": null})
        }
        Err(why) => {
            json!({"event": seen, "source": source, "before": null, "after": null, "dropped": false, "error": why})
        }
    };
    ok(StatusCode::OK, answer)
}

pub(super) async fn delete_subscription<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path(id): Path<String>,
) -> ApiResult {
    if let Some(sub) = a.backend.subscription(&id).await?.filter(|s| s.status == Status::Disabled) {
        a.backend.flush_disabled(&sub).await?;
    }
    if !a.backend.delete_subscription(&id).await? {
        return Err(ApiError::not_found("such subscription"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn verify_subscription<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path(id): Path<String>,
) -> ApiResult {
    let sub = subscription(&a, &id).await?;
    if matches!(sub.status, Status::Active | Status::Disabled) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the subscription is {} already; verification is for pending or failed ones", sub.status.as_str()),
        ));
    }
    let now = a.backend.now_ms();
    let prev = sub.updated_at;
    let sub = sub.reverify(now);
    let job = sub.verification_job(a.backend.settings(), now);
    a.backend.save_subscription(&sub, Some(prev), job.into_iter().collect()).await?;
    ok(StatusCode::ACCEPTED, view(&sub))
}

pub(super) async fn rotate_secret<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id).await?;
    let mut ring = a.backend.keyring(&sub).await?.unwrap_or_else(|| Keyring { keys: Vec::new() });
    let now = a.backend.now_ms();
    let grace = a.backend.settings().rotation_grace;
    ring.rotate(sub.signing, now, grace);
    a.backend.put_keyring(&sub, &ring).await?;
    // Senders caching the keyring see the new version and read it again.
    let mut sub = sub;
    let prev = sub.updated_at;
    sub.keys_version = now;
    sub.updated_at = now;
    a.backend.save_subscription(&sub, Some(prev), Vec::new()).await?;
    let mut out = json!({"id": sub.id, "previous_expires_at": now + grace.as_millis() as i64});
    credential_fields(&ring, &mut out);
    ok(StatusCode::OK, out)
}

pub(super) async fn public_key<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    let sub = subscription(&a, &id).await?;
    if sub.signing != hookflow_core::subscription::Signing::Ed25519 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the subscription signs with HMAC (`hmac_sha256`): it has a secret, not a public key",
        ));
    }
    let ring = a.backend.keyring(&sub).await?;
    let keys = ring.map(|r| r.public_keys(a.backend.now_ms())).unwrap_or_default();
    ok(StatusCode::OK, json!({"id": sub.id, "public_key": keys.last(), "public_keys": keys}))
}

pub(super) async fn disable_subscription<B: Backend>(
    State(a): State<Arc<Admin<B>>>,
    Path(id): Path<String>,
) -> ApiResult {
    let sub = subscription(&a, &id).await?;
    if sub.status == Status::Disabled {
        return ok(StatusCode::OK, view(&sub));
    }
    let prev = sub.updated_at;
    let sub = sub.disabled_by_admin(a.backend.now_ms());
    a.backend.save_subscription(&sub, Some(prev), Vec::new()).await?;
    ok(StatusCode::OK, view(&sub))
}

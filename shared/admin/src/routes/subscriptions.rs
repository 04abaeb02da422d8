//! `/v1/subscriptions`: create, list, read, delete, verify, rotate the
//! secret, the public key, disable. Enabling (with its replay) is
//! [`super::replay`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use hookflow_core::subscription::{Credential, Keyring, NewSubscription, Status, Subscription};
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

pub(super) async fn get_subscription<B: Backend>(State(a): State<Arc<Admin<B>>>, Path(id): Path<String>) -> ApiResult {
    ok(StatusCode::OK, view(&subscription(&a, &id).await?))
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

//! The admin API's routes, under `/v1`: flows, subscriptions, events, the
//! request log, runs and dead deliveries, over a [`Backend`].
//!
//! With a token (`hookflow dev`) every request needs `Authorization: Bearer
//! <token>`; without one (the Lambda function, behind API Gateway's IAM
//! authorisation) the check is API Gateway's. Every error has one shape,
//! `{"error": {"code", "message", "field"}}`, with `problems` when a
//! document has several. The OpenAPI document of these routes is
//! [`crate::openapi::document`]; a test keeps `docs/openapi.json` equal to it.
//!
//! The decisions are the core's ([`hookflow_core::subscription`]); this
//! module parses, checks, calls the backend and answers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use hookflow_core::tries::Tries;

use crate::backend::Backend;

mod dead;
mod events;
mod flows;
mod logs;
mod plumbing;
mod replay;
mod runs;
mod subscriptions;

use dead::{list_dead, replay_dead};
use events::{list_events, publish_event};
use flows::{delete_flow, get_flow, list_flows, put_flow, test_flow};
use logs::{list_requests, logs, stats};
pub use plumbing::ApiError;
use replay::enable_subscription;
use runs::{get_run, replay_run};
use subscriptions::{
    create_subscription, delete_subscription, disable_subscription, get_subscription, list_subscriptions,
    preview_transform, public_key, rotate_secret, update_subscription, verify_subscription,
};

/// What the admin routes share.
pub struct Admin<B> {
    pub backend: B,
    /// The bearer token every request must carry; `None` when something in
    /// front (API Gateway's IAM authorisation) checks the caller.
    pub token: Option<String>,
}

/// The admin routes, behind the bearer-token check when there is a token.
///
/// Built from the OpenAPI document ([`crate::openapi`]): every operation
/// it lists is routed to the handler its `operationId` names ([`Op`]), and
/// nothing else is routed. The router and the document cannot disagree.
pub fn router<B: Backend>(admin: Arc<Admin<B>>) -> Router {
    let mut routes = Router::new();
    for (path, method, id) in crate::openapi::operations() {
        let op = Op::from_id(&id).unwrap_or_else(|| panic!("the document's operation `{id}` has no handler"));
        let filter = MethodFilter::try_from(method.to_ascii_uppercase().parse::<Method>().expect("a method"))
            .expect("a routable method");
        // axum writes path parameters as OpenAPI does (`{id}`); a path
        // listed again with another method is merged into its route.
        routes = routes.route(&path, op.route::<B>(filter));
    }
    let routes = routes.fallback(|| async { ApiError::not_found("such route under /v1") }).method_not_allowed_fallback(
        || async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
        },
    );
    let tries = Arc::new(Tries::new(WRONG_TOKENS_A_MINUTE));
    routes.layer(middleware::from_fn_with_state((admin.clone(), tries), authorize::<B>)).with_state(admin)
}

/// Wrong bearer tokens one client (an IP address) may send a minute; past
/// it, its wrong ones are answered 429 until the minute is over, while the
/// right token and other clients go on.
pub const WRONG_TOKENS_A_MINUTE: usize = 20;

/// The operations of the admin API, by `operationId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    ListFlows,
    GetFlow,
    PutFlow,
    DeleteFlow,
    TestFlow,
    ListSubscriptions,
    CreateSubscription,
    GetSubscription,
    UpdateSubscription,
    PreviewTransform,
    DeleteSubscription,
    VerifySubscription,
    RotateSecret,
    GetPublicKey,
    EnableSubscription,
    DisableSubscription,
    ListEvents,
    PublishEvent,
    GetLogs,
    ListRequests,
    GetStats,
    GetRun,
    ReplayRun,
    ListDead,
    ReplayDead,
}

impl Op {
    pub(crate) const ALL: [Op; 25] = [
        Op::ListFlows,
        Op::GetFlow,
        Op::PutFlow,
        Op::DeleteFlow,
        Op::TestFlow,
        Op::ListSubscriptions,
        Op::CreateSubscription,
        Op::GetSubscription,
        Op::UpdateSubscription,
        Op::PreviewTransform,
        Op::DeleteSubscription,
        Op::VerifySubscription,
        Op::RotateSecret,
        Op::GetPublicKey,
        Op::EnableSubscription,
        Op::DisableSubscription,
        Op::ListEvents,
        Op::PublishEvent,
        Op::GetLogs,
        Op::ListRequests,
        Op::GetStats,
        Op::GetRun,
        Op::ReplayRun,
        Op::ListDead,
        Op::ReplayDead,
    ];

    pub(crate) fn id(self) -> &'static str {
        match self {
            Op::ListFlows => "listFlows",
            Op::GetFlow => "getFlow",
            Op::PutFlow => "putFlow",
            Op::DeleteFlow => "deleteFlow",
            Op::TestFlow => "testFlow",
            Op::ListSubscriptions => "listSubscriptions",
            Op::CreateSubscription => "createSubscription",
            Op::GetSubscription => "getSubscription",
            Op::UpdateSubscription => "updateSubscription",
            Op::PreviewTransform => "previewTransform",
            Op::DeleteSubscription => "deleteSubscription",
            Op::VerifySubscription => "verifySubscription",
            Op::RotateSecret => "rotateSecret",
            Op::GetPublicKey => "getPublicKey",
            Op::EnableSubscription => "enableSubscription",
            Op::DisableSubscription => "disableSubscription",
            Op::ListEvents => "listEvents",
            Op::PublishEvent => "publishEvent",
            Op::GetLogs => "getLogs",
            Op::ListRequests => "listRequests",
            Op::GetStats => "getStats",
            Op::GetRun => "getRun",
            Op::ReplayRun => "replayRun",
            Op::ListDead => "listDead",
            Op::ReplayDead => "replayDead",
        }
    }

    pub(crate) fn from_id(id: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.id() == id)
    }

    /// Its handler, for requests that `filter` matches.
    fn route<B: Backend>(self, filter: MethodFilter) -> MethodRouter<Arc<Admin<B>>> {
        match self {
            Op::ListFlows => on(filter, list_flows::<B>),
            Op::GetFlow => on(filter, get_flow::<B>),
            Op::PutFlow => on(filter, put_flow::<B>),
            Op::DeleteFlow => on(filter, delete_flow::<B>),
            Op::TestFlow => on(filter, test_flow::<B>),
            Op::ListSubscriptions => on(filter, list_subscriptions::<B>),
            Op::CreateSubscription => on(filter, create_subscription::<B>),
            Op::GetSubscription => on(filter, get_subscription::<B>),
            Op::UpdateSubscription => on(filter, update_subscription::<B>),
            Op::PreviewTransform => on(filter, preview_transform::<B>),
            Op::DeleteSubscription => on(filter, delete_subscription::<B>),
            Op::VerifySubscription => on(filter, verify_subscription::<B>),
            Op::RotateSecret => on(filter, rotate_secret::<B>),
            Op::GetPublicKey => on(filter, public_key::<B>),
            Op::EnableSubscription => on(filter, enable_subscription::<B>),
            Op::DisableSubscription => on(filter, disable_subscription::<B>),
            Op::ListEvents => on(filter, list_events::<B>),
            Op::PublishEvent => on(filter, publish_event::<B>),
            Op::GetLogs => on(filter, logs::<B>),
            Op::ListRequests => on(filter, list_requests::<B>),
            Op::GetStats => on(filter, stats::<B>),
            Op::GetRun => on(filter, get_run::<B>),
            Op::ReplayRun => on(filter, replay_run::<B>),
            Op::ListDead => on(filter, list_dead::<B>),
            Op::ReplayDead => on(filter, replay_dead::<B>),
        }
    }
}

async fn authorize<B: Backend>(
    State((admin, tries)): State<(Arc<Admin<B>>, Arc<Tries>)>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = &admin.token else { return next.run(req).await };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // The right token always passes: behind a tunnel every caller is one
    // address, and a guesser's 20 wrong tries must not lock the admin out
    // (a token has 16 characters at least: the limit only slows guessing).
    if hookflow_core::signature::mac_eq(given.trim().as_bytes(), token.as_bytes()) {
        return next.run(req).await;
    }
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|i| i.0.ip());
    let now = admin.backend.now_ms();
    if !tries.may_try(client, now) {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_tries",
            "too many wrong tokens from this address: wait a minute",
        )
        .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        return r;
    }
    tries.failed(client, now);
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send `Authorization: Bearer <admin token>`")
        .into_response()
}

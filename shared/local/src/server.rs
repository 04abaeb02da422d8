//! The HTTP server of `hookflow dev`: the trigger endpoint and the admin API
//! on one listener, with bounds a slow or flooding client cannot get past.
//! The connection bounds are every listener's ([`hookflow_io::server`]):
//!
//! - a request's head must arrive within [`Limits::read_timeout`] (hyper's
//!   header timeout; an idle kept-alive connection is closed after it too),
//!   and its body within the same again (408);
//! - at most [`Limits::max_connections`] connections are open: past it new
//!   ones wait in the kernel's backlog rather than each holding a task and
//!   buffers;
//! - at most [`Limits::max_inflight`] trigger requests are handled at once:
//!   past it a request is answered `503` with `Retry-After: 1` before its
//!   body is read;
//! - one client (an IP address) holds at most
//!   [`Limits::max_connections_per_client`] connections (past it a new one
//!   is closed at once) and [`Limits::max_inflight_per_client`] trigger
//!   requests in progress (past it `429` with `Retry-After: 1`): a few
//!   clients trickling bodies cannot hold every slot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hookflow_admin::Admin;
use hookflow_core::engine::Level;
use hookflow_io::server::{Bounds, PerClient};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::Error;
use crate::admin::DevBackend;
use crate::inbound;
use crate::runtime::Runtime;

/// What one client, or all of them, may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a request's head may take to arrive, and then its body.
    pub read_timeout: Duration,
    /// Trigger requests handled at once.
    pub max_inflight: usize,
    /// Connections open at once.
    pub max_connections: usize,
    /// Trigger requests of one client (IP address) handled at once.
    pub max_inflight_per_client: usize,
    /// Connections of one client open at once.
    pub max_connections_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_timeout: Duration::from_secs(15),
            max_inflight: 512,
            max_connections: 2048,
            max_inflight_per_client: 64,
            max_connections_per_client: 256,
        }
    }
}

/// Serves the trigger endpoint and the admin API on `listener` until the
/// process ends.
pub async fn serve(
    rt: Arc<Runtime>,
    admin: Arc<Admin<DevBackend>>,
    listener: tokio::net::TcpListener,
    limits: Limits,
) -> Result<(), Error> {
    let inflight = Arc::new(Semaphore::new(limits.max_inflight));
    let per_client = Arc::new(PerClient::default());
    let triggers = inbound::router(rt.clone(), limits.read_timeout).layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let (inflight, per_client) = (inflight.clone(), per_client.clone());
            async move {
                let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
                let mine = match ip {
                    Some(ip) => match per_client.take(ip, limits.max_inflight_per_client) {
                        Some(held) => Some(held),
                        None => return too_many(),
                    },
                    None => None,
                };
                match inflight.try_acquire_owned() {
                    Ok(_held) => {
                        let answer = next.run(req).await;
                        drop(mine);
                        answer
                    }
                    Err(_) => busy(),
                }
            }
        },
    ));
    let app: Router = triggers.merge(hookflow_admin::router(admin));
    let bounds = Bounds {
        read_timeout: limits.read_timeout,
        max_connections: limits.max_connections,
        max_connections_per_client: limits.max_connections_per_client,
    };
    let logger = rt.logger.clone();
    hookflow_io::server::serve(listener, app, bounds, move |e| {
        logger.log(Level::Warn, "accept failed", json!({"error": e.to_string()}));
    })
    .await
    .map_err(|e| Error::Unavailable(format!("serving: {e}")))
}

/// The answer past `max_inflight_per_client`.
fn too_many() -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": "too many requests in progress from this client; try again"}).to_string(),
    )
        .into_response();
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The answer past `max_inflight`.
fn busy() -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": "too many requests in progress; try again"}).to_string(),
    )
        .into_response();
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Serves `GET /metrics` (Prometheus's text format) on `listener` until
/// the process ends: `hookflow dev --metrics ADDR`, an address of its own,
/// unauthenticated as scrape targets are (keep it on loopback or a private
/// network).
pub async fn serve_metrics(rt: Arc<Runtime>, listener: tokio::net::TcpListener) -> Result<(), Error> {
    let app = Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let rt = rt.clone();
            async move {
                let text = tokio::task::spawn_blocking(move || rt.metrics_text()).await;
                match text {
                    Ok(Ok(text)) => {
                        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
                    }
                    Ok(Err(e)) => {
                        (StatusCode::SERVICE_UNAVAILABLE, format!("the store did not answer: {e}\n")).into_response()
                    }
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
        }),
    );
    let bounds = Bounds { read_timeout: Duration::from_secs(15), max_connections: 64, max_connections_per_client: 16 };
    hookflow_io::server::serve(listener, app, bounds, |_| {})
        .await
        .map_err(|e| Error::Unavailable(format!("serving metrics: {e}")))
}

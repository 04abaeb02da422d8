//! The HTTP server of `hookflow dev`: the trigger endpoint and the admin API
//! on one listener, with bounds a slow or flooding client cannot get past.
//!
//! - a request's head must arrive within [`Limits::read_timeout`] (hyper's
//!   header timeout; an idle kept-alive connection is closed after it too),
//!   and its body within the same again (408);
//! - at most [`Limits::max_connections`] connections are open: past it new
//!   ones wait in the kernel's backlog rather than each holding a task and
//!   buffers;
//! - at most [`Limits::max_inflight`] trigger requests are handled at once:
//!   past it a request is answered `503` with `Retry-After: 1` before its
//!   body is read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hookflow_admin::Admin;
use hookflow_core::engine::Level;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::sync::Semaphore;
use tower::ServiceExt;

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits { read_timeout: Duration::from_secs(15), max_inflight: 512, max_connections: 2048 }
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
    let triggers = inbound::router(rt.clone(), limits.read_timeout).layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let inflight = inflight.clone();
            async move {
                match inflight.try_acquire_owned() {
                    Ok(_held) => next.run(req).await,
                    Err(_) => busy(),
                }
            }
        },
    ));
    let app: Router = triggers.merge(hookflow_admin::router(admin));
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else { return Ok(()) };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                rt.logger.log(Level::Warn, "accept failed", json!({"error": e.to_string()}));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req.map(Body::new)
        });
        let read_timeout = limits.read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            // HTTP/1 only: detecting HTTP/2 reads the connection's first
            // bytes with no timeout, so 2,048 silent connections would
            // hold every slot (webhook senders speak HTTP/1.1).
            let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
            builder.http1().timer(TokioTimer::new()).header_read_timeout(read_timeout);
            let _ = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).await;
        });
    }
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

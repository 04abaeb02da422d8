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
//!   body is read;
//! - one client (an IP address) holds at most
//!   [`Limits::max_connections_per_client`] connections (past it a new one
//!   is closed at once) and [`Limits::max_inflight_per_client`] trigger
//!   requests in progress (past it `429` with `Retry-After: 1`): a few
//!   clients trickling bodies cannot hold every slot.

use std::net::{IpAddr, SocketAddr};
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

/// How much of something each client holds (an entry only while it holds
/// some, so the map is bounded by what is held).
#[derive(Default)]
struct PerClient(std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>);

impl PerClient {
    /// One more for `ip`, unless it holds `max` already (0: no bound). An
    /// IPv6 client is its /64 (a host picks any address in it).
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Held> {
        let ip = match ip {
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
            v4 => v4,
        };
        let max = if max == 0 { usize::MAX } else { max };
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                held.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(Held(self.clone(), ip))
    }
}

/// One unit a client holds, given back when dropped.
struct Held(Arc<PerClient>, IpAddr);

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.0.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.1);
            }
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
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let client_connections = Arc::new(PerClient::default());
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
        // Past its share, a client's new connection is closed at once.
        let Some(client_permit) = client_connections.take(peer.ip(), limits.max_connections_per_client) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req.map(Body::new)
        });
        let read_timeout = limits.read_timeout;
        tokio::spawn(async move {
            let _permit = (permit, client_permit);
            // HTTP/1 only: detecting HTTP/2 reads the connection's first
            // bytes with no timeout, so 2,048 silent connections would
            // hold every slot (webhook senders speak HTTP/1.1).
            let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
            builder.http1().timer(TokioTimer::new()).header_read_timeout(read_timeout);
            let _ = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).await;
        });
    }
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

//! An HTTP/1 server with bounds a slow or flooding client cannot get past,
//! for every listener `hookflow` opens (`hookflow dev`'s triggers and admin
//! API, its console, `hookflow console --stack`):
//!
//! - a request's head must arrive within [`Bounds::read_timeout`] (hyper's
//!   header timeout; an idle kept-alive connection is closed after it too);
//! - at most [`Bounds::max_connections`] connections are open: past it new
//!   ones wait in the kernel's backlog rather than each holding a task and
//!   buffers;
//! - one client (an IP address; an IPv6 one by its /64) holds at most
//!   [`Bounds::max_connections_per_client`] connections: past it a new one
//!   is closed at once.
//!
//! A body's own deadline is the route's (`hookflow dev`'s triggers answer
//! 408; the console's forms are small and read whole).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hookflow_core::tries::client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// What all clients, and each, may hold of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// How long a request's head may take to arrive.
    pub read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections of one client open at once.
    pub max_connections_per_client: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { read_timeout: Duration::from_secs(15), max_connections: 2048, max_connections_per_client: 256 }
    }
}

/// How much of something each client holds (an entry only while it holds
/// some, so the map is bounded by what is held).
#[derive(Default)]
pub struct PerClient(std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>);

impl PerClient {
    /// One more for `ip`, unless it holds `max` already (0: no bound). An
    /// IPv6 client is its /64 (a host picks any address in it).
    pub fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Held> {
        let ip = client(ip);
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
pub struct Held(Arc<PerClient>, IpAddr);

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

/// Serves `app` on `listener` within `bounds` until the process ends;
/// each request carries its peer (`ConnectInfo<SocketAddr>`). A failed
/// accept (out of file descriptors and the like) is handed to
/// `accept_failed` and waited out, not spun on.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    bounds: Bounds,
    accept_failed: impl Fn(std::io::Error),
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(bounds.max_connections));
    let per_client = Arc::new(PerClient::default());
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else { return Ok(()) };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                accept_failed(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Past its share, a client's new connection is closed at once.
        let Some(client_permit) = per_client.take(peer.ip(), bounds.max_connections_per_client) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req.map(Body::new)
        });
        let read_timeout = bounds.read_timeout;
        tokio::spawn(async move {
            let _permit = (permit, client_permit);
            // HTTP/1 only: detecting HTTP/2 reads the connection's first
            // bytes with no timeout, so 2,048 silent connections would
            // hold every slot (webhook senders and browsers speak HTTP/1.1).
            let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
            builder.http1().timer(TokioTimer::new()).header_read_timeout(read_timeout);
            let _ = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// A partial request head is cut off after the read timeout, and one
    /// client's connections past its share are closed at once, on any app.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partial_head_is_cut_off_and_a_client_past_its_share_is_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let bounds =
            Bounds { read_timeout: Duration::from_millis(300), max_connections: 8, max_connections_per_client: 2 };
        tokio::spawn(serve(listener, app, bounds, |_| {}));
        let got = tokio::task::spawn_blocking(move || {
            let mut slow = std::net::TcpStream::connect(addr).unwrap();
            slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            let started = std::time::Instant::now();
            let mut buf = Vec::new();
            let _ = slow.read_to_end(&mut buf);
            let cut = started.elapsed();
            // Two held open (the share), a third closed at once.
            let held: Vec<_> = (0..2).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
            std::thread::sleep(Duration::from_millis(100));
            let mut third = std::net::TcpStream::connect(addr).unwrap();
            third.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut answer = Vec::new();
            let _ = third.read_to_end(&mut answer);
            drop(held);
            (cut, answer)
        })
        .await
        .unwrap();
        assert!(got.0 < Duration::from_secs(4), "the partial head was cut off: {:?}", got.0);
        assert!(got.1.is_empty(), "past its share, closed unanswered: {:?}", String::from_utf8_lossy(&got.1));
    }
}

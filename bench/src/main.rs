//! Load generator, receiver and baseline forwarder for `scripts/bench dev`.
//!
//! - `receiver --listen ADDR`: answers 200 to every POST and records, per
//!   request, the delay since the `sent_at` (µs since the epoch) in its JSON
//!   body (or in its `data`, for events); `GET /stats` returns count, rate
//!   and latency percentiles, `POST /reset` clears them. A subscription's
//!   verification request is answered with its token and not counted.
//! - `forwarder --listen ADDR --target URL`: the baseline. Receives a request
//!   and forwards its body to the target, answering 202 once forwarded: the
//!   least work "receive and deliver" can do on this stack.
//! - `load --url URL --requests N --concurrency C [--rate R] [--events]
//!   [--bearer TOKEN]`: sends N POSTs with `{"sent_at": …, "n": …}` (with
//!   `--events`, as the `data` of a `bench.tick` event for `POST /v1/events`)
//!   and prints requests/s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::Mutex;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u64>,
    first_us: u64,
    last_us: u64,
}

async fn receive(State(stats): State<Arc<Mutex<Stats>>>, body: Bytes) -> (StatusCode, String) {
    let now = now_us();
    let v = serde_json::from_slice::<Value>(&body).unwrap_or_default();
    if v["type"] == "webhook.verification" {
        return (StatusCode::OK, json!({"token": v["token"]}).to_string());
    }
    let sent_at = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()));
    let sent = sent_at(&v["sent_at"]).or_else(|| sent_at(&v["data"]["sent_at"])).unwrap_or(now);
    let mut s = stats.lock().await;
    if s.latencies_us.is_empty() {
        s.first_us = now;
    }
    s.last_us = now;
    s.latencies_us.push(now.saturating_sub(sent));
    (StatusCode::OK, String::new())
}

async fn stats(State(stats): State<Arc<Mutex<Stats>>>) -> String {
    let s = stats.lock().await;
    let mut l = s.latencies_us.clone();
    l.sort_unstable();
    let pct = |p: f64| if l.is_empty() { 0 } else { l[((l.len() as f64 - 1.0) * p).round() as usize] };
    let span = (s.last_us.saturating_sub(s.first_us)) as f64 / 1e6;
    json!({
        "count": l.len(),
        "per_second": if span > 0.0 { l.len() as f64 / span } else { 0.0 },
        "p50_ms": pct(0.50) as f64 / 1000.0,
        "p99_ms": pct(0.99) as f64 / 1000.0,
    })
    .to_string()
}

async fn reset(State(stats): State<Arc<Mutex<Stats>>>) -> StatusCode {
    *stats.lock().await = Stats::default();
    StatusCode::OK
}

async fn forward(State((client, target)): State<(reqwest::Client, Arc<String>)>, body: Bytes) -> StatusCode {
    match client.post(target.as_str()).header("content-type", "application/json").body(body).send().await {
        Ok(r) if r.status().is_success() => StatusCode::ACCEPTED,
        _ => StatusCode::BAD_GATEWAY,
    }
}

async fn serve(listen: &str, app: Router) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// What `load` sends.
struct Load {
    url: String,
    n: u64,
    concurrency: u64,
    rate: Option<f64>,
    /// Wrap each body as a `bench.tick` event.
    events: bool,
    bearer: Option<String>,
}

async fn load(Load { url, n, concurrency, rate, events, bearer }: Load) -> Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency as usize).build()?;
    let next = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, next, failed, bearer) =
            (client.clone(), url.clone(), next.clone(), failed.clone(), bearer.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if let Some(r) = rate {
                    let due = start + Duration::from_secs_f64(i as f64 / r);
                    tokio::time::sleep_until(due.into()).await;
                }
                let mut body = json!({"sent_at": now_us(), "n": i});
                if events {
                    body = json!({"type": "bench.tick", "data": body});
                }
                let mut req = client.post(&url).header("content-type", "application/json").body(body.to_string());
                if let Some(token) = &bearer {
                    req = req.bearer_auth(token);
                }
                let ok = matches!(req.send().await, Ok(r) if r.status().is_success());
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"requests": n, "failed": failed.load(Ordering::Relaxed), "seconds": secs, "per_second": n as f64 / secs})
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    match args.get(1).map(String::as_str) {
        Some("receiver") => {
            let state = Arc::new(Mutex::new(Stats::default()));
            let app = Router::new()
                .route("/hook", post(receive))
                .route("/stats", get(stats))
                .route("/reset", post(reset))
                .with_state(state);
            serve(&listen, app).await
        }
        Some("forwarder") => {
            let target = arg(&args, "--target").context("--target URL")?;
            let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
            let app = Router::new().route("/{*path}", post(forward)).with_state((client, Arc::new(target)));
            serve(&listen, app).await
        }
        Some("load") => {
            let url = arg(&args, "--url").context("--url URL")?;
            let n = arg(&args, "--requests").unwrap_or_else(|| "10000".into()).parse()?;
            let c = arg(&args, "--concurrency").unwrap_or_else(|| "32".into()).parse()?;
            let rate = arg(&args, "--rate").map(|r| r.parse()).transpose()?;
            let events = args.iter().any(|a| a == "--events");
            load(Load { url, n, concurrency: c, rate, events, bearer: arg(&args, "--bearer") }).await
        }
        _ => bail!("usage: hookflow-bench receiver|forwarder|load …"),
    }
}

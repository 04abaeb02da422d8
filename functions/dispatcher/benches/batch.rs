//! A batch of 10 deliveries to receivers that each take 200 ms, through the
//! dispatcher's handler (moto's server for DynamoDB, SQS and Secrets
//! Manager), beside one delivery to the same receiver in the same run.
//! Sent concurrently, the batch takes about as long as one delivery.
//!
//!     scripts/bench batch        (cargo bench -p dispatcher --bench batch)

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use hookflow_aws::testing::Receiver;
use hookflow_core::commit::NewJob;

const RUNS: usize = 7;

#[tokio::main]
async fn main() {
    let w = common::world("bench").await;
    let (_receiver, url) = Receiver::start_slow(&[], "ok", Duration::from_millis(200)).await;
    let mut n = 0;
    let mut time = |size: usize| {
        let jobs: Vec<NewJob> = (0..size)
            .map(|_| {
                n += 1;
                common::delivery(&url, n)
            })
            .collect();
        let w = &w;
        async move {
            w.dispatcher.store.queues.send(&jobs, 0).await.unwrap();
            let start = Instant::now();
            let (received, failed) = w.poll().await;
            let took = start.elapsed();
            assert_eq!((received, failed), (size, 0), "every message of the batch, none failed");
            took
        }
    };
    // Warm the caches (secrets, connections) as a warm container's are.
    time(10).await;
    let mut one = Vec::new();
    let mut ten = Vec::new();
    for _ in 0..RUNS {
        one.push(time(1).await);
        ten.push(time(10).await);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    let (one, ten) = (median(&mut one), median(&mut ten));
    println!("\ndispatcher batch, receivers taking 200 ms, median of {RUNS} (receive + handle + delete)\n");
    println!("| batch | median (ms) | ratio to one delivery |");
    println!("|---|---|---|");
    println!("| 1 delivery | {one:.0} | 1.00 |");
    println!("| 10 deliveries | {ten:.0} | {:.2} |", ten / one);
    println!("\ntarget: 10 deliveries in <= 400 ms");
}

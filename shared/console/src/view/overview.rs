//! The overview: counts, latency percentiles and failing endpoints over a
//! window of the log, and its charts, from the admin API's summary
//! (`GET /v1/stats`, [`Stats`]).

use std::collections::{BTreeMap, BTreeSet};

use hookflow_core::stats::{Bucket, Stats};
use serde::Serialize;

/// One window of the overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub name: &'static str,
    /// Entries summed up, and whether the store read only the newest of
    /// the window's (a deployment's table).
    pub read: usize,
    pub capped: bool,
    /// (outcome, count, share in %, [`tone`]), most first; the shares
    /// add up to 100.
    pub inbound: Vec<(String, usize, u32, &'static str)>,
    pub deliveries: Vec<(String, usize, u32, &'static str)>,
    pub p50: String,
    pub p99: String,
    pub delivered: usize,
    /// (flow or subscription, failed attempts), most first, at most 5.
    pub failing: Vec<(String, usize)>,
    /// The window's charts ([`Chart::of_window`]) and their bucket's name.
    pub charts: Vec<Chart>,
    pub bucket: &'static str,
}

/// What an outcome means, for its colour: `good` (accepted, delivered),
/// `warn` (to be tried again) or `bad` (refused, halted, dead, failed).
pub fn tone(outcome: &str) -> &'static str {
    match outcome {
        "accepted" | "success" | "succeeded" | "duplicate" => "good",
        "retry" | "pending" => "warn",
        "p50" | "p99" => "info",
        _ => "bad",
    }
}

/// The colour of the `i`th series of a chart, by its outcome's [`tone`]:
/// green for good, amber for retries, reds (one shade each) for the bad,
/// blues for latencies.
fn colour(outcome: &str, i: usize) -> &'static str {
    const BAD: [&str; 4] = ["#dc2626", "#9f1239", "#ea580c", "#7f1d1d"];
    match (tone(outcome), outcome) {
        ("good", "duplicate") => "#4d7c0f",
        ("good", _) => "#16a34a",
        ("warn", _) => "#d97706",
        (_, "p50") => "#2563eb",
        (_, "p99") => "#7c3aed",
        _ => BAD[i % BAD.len()],
    }
}

/// Each count with its share in whole percent, the shares adding up to 100
/// (largest remainder), most first.
fn ranked(counts: &BTreeMap<String, u64>) -> Vec<(String, usize, u32, &'static str)> {
    let total: u64 = counts.values().sum();
    let mut v: Vec<_> = counts
        .iter()
        .map(|(k, &n)| {
            let share = (n * 100).checked_div(total).unwrap_or(0);
            (k.clone(), n as usize, share as u32, tone(k))
        })
        .collect();
    if total > 0 {
        let short = 100 - v.iter().map(|r| r.2).sum::<u32>();
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(counts[&v[i].0] * 100 % total), i));
        for &i in order.iter().take(short as usize) {
            v[i].2 += 1;
        }
    }
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn ms(v: Option<i64>) -> String {
    match v {
        None => "—".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

impl Window {
    /// The window of summary `s` (`GET /v1/stats`), its buckets named
    /// `bucket` (`5 minutes`, `hour`).
    pub fn of(name: &'static str, s: &Stats, bucket: &'static str) -> Self {
        Window {
            name,
            read: s.entries as usize,
            capped: s.capped,
            inbound: ranked(&s.inbound),
            deliveries: ranked(&s.attempts),
            p50: ms(s.latency.p50_ms),
            p99: ms(s.latency.p99_ms),
            delivered: s.latency.delivered,
            failing: s.failing.iter().map(|(who, n)| (who.clone(), *n as usize)).collect(),
            charts: Chart::of_window(s),
            bucket,
        }
    }
}

/// A chart of the overview, as the page's script hands it to uPlot: the
/// start of each bucket (seconds, uPlot's time unit) and one line per
/// outcome (`None` where a latency bucket had no delivery).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chart {
    pub title: String,
    /// What the y axis counts.
    pub unit: &'static str,
    pub x: Vec<i64>,
    pub series: Vec<(String, Vec<Option<i64>>)>,
    /// Each series' colour, by what its outcome means ([`tone`]).
    pub colours: Vec<&'static str>,
}

impl Chart {
    fn new(title: &str, unit: &'static str, x: Vec<i64>, series: Vec<(String, Vec<Option<i64>>)>) -> Self {
        let mut bad = 0;
        let colours = series
            .iter()
            .map(|(name, _)| {
                let c = colour(name, bad);
                bad += usize::from(tone(name) == "bad");
                c
            })
            .collect();
        Chart { title: title.into(), unit, x, series, colours }
    }
}

impl Chart {
    /// The overview's three charts of summary `s`: inbound requests by
    /// verdict, delivery attempts by outcome, and accept → delivery
    /// p50/p99 of the events first delivered in each bucket.
    pub fn of_window(s: &Stats) -> Vec<Chart> {
        let x: Vec<i64> = s.buckets.iter().map(|b| b.at / 1000).collect();
        let lines = |of: fn(&Bucket) -> &BTreeMap<String, u64>| -> Vec<(String, Vec<Option<i64>>)> {
            let names: BTreeSet<&String> = s.buckets.iter().flat_map(|b| of(b).keys()).collect();
            names
                .into_iter()
                .map(|n| {
                    (n.clone(), s.buckets.iter().map(|b| Some(of(b).get(n).copied().unwrap_or(0) as i64)).collect())
                })
                .collect()
        };
        vec![
            Chart::new("Inbound requests by verdict", "requests", x.clone(), lines(|b| &b.inbound)),
            Chart::new("Delivery attempts by outcome", "attempts", x.clone(), lines(|b| &b.attempts)),
            Chart::new(
                "Accept → delivery latency",
                "ms",
                x,
                vec![
                    ("p50".into(), s.buckets.iter().map(|b| b.latency.p50_ms).collect()),
                    ("p99".into(), s.buckets.iter().map(|b| b.latency.p99_ms).collect()),
                ],
            ),
        ]
    }
}

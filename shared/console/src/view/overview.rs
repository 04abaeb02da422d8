//! The overview: counts, latency percentiles and failing endpoints over a
//! window of the log, and its charts.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// One window of the overview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub name: &'static str,
    /// Entries read, and whether the window had more than that.
    pub read: usize,
    pub capped: bool,
    /// (outcome, count, share in %), most first.
    pub inbound: Vec<(String, usize, u32)>,
    pub deliveries: Vec<(String, usize, u32)>,
    pub p50: String,
    pub p99: String,
    pub delivered: usize,
    /// (flow or subscription, failed attempts), most first, at most 5.
    pub failing: Vec<(String, usize)>,
    /// The window's charts ([`Chart::of_window`]) and their bucket's name.
    pub charts: Vec<Chart>,
    pub bucket: &'static str,
}

fn ranked(counts: BTreeMap<String, usize>) -> Vec<(String, usize, u32)> {
    let total: usize = counts.values().sum();
    let mut v: Vec<_> = counts
        .into_iter()
        .map(|(k, n)| {
            let share = if total == 0 { 0 } else { (n * 100).div_ceil(total) as u32 };
            (k, n, share.min(100))
        })
        .collect();
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
    /// The window with its charts of `n` buckets of `bucket_ms` ending with
    /// the one holding `now`.
    pub fn charted(mut self, entries: &[Value], now: i64, bucket: &'static str, bucket_ms: i64, n: usize) -> Self {
        let from = now.div_euclid(bucket_ms) * bucket_ms - (n as i64 - 1) * bucket_ms;
        self.charts = Chart::of_window(entries, from, bucket_ms, n);
        self.bucket = bucket;
        self
    }

    /// The window's counts from its log entries (newest first or any
    /// order), `limit` the most that were asked for.
    pub fn of(name: &'static str, entries: &[Value], limit: usize) -> Self {
        let mut inbound = BTreeMap::new();
        let mut deliveries = BTreeMap::new();
        let mut failing: BTreeMap<String, usize> = BTreeMap::new();
        let mut accepted: BTreeMap<&str, i64> = BTreeMap::new();
        let mut first_delivered: BTreeMap<&str, i64> = BTreeMap::new();
        for e in entries {
            let kind = e.get("kind").and_then(Value::as_str).unwrap_or_default();
            let outcome = e.get("outcome").and_then(Value::as_str).unwrap_or("unknown").to_string();
            let at = e.get("at").and_then(Value::as_i64).unwrap_or(0);
            let event = e.get("event_id").and_then(Value::as_str).unwrap_or_default();
            match kind {
                "inbound" => {
                    if outcome == "accepted" && !event.is_empty() {
                        accepted.entry(event).and_modify(|t| *t = (*t).min(at)).or_insert(at);
                    }
                    *inbound.entry(outcome).or_insert(0) += 1;
                }
                "attempt" => {
                    let delivered = outcome == "success";
                    if delivered && !event.is_empty() {
                        first_delivered.entry(event).and_modify(|t| *t = (*t).min(at)).or_insert(at);
                    }
                    if !delivered {
                        let who = e
                            .pointer("/detail/subscription_id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or_else(|| e.get("flow_id").and_then(Value::as_str).map(str::to_string))
                            .unwrap_or_default();
                        if !who.is_empty() {
                            *failing.entry(who).or_insert(0) += 1;
                        }
                    }
                    *deliveries.entry(outcome).or_insert(0) += 1;
                }
                _ => {}
            }
        }
        let mut latencies: Vec<i64> = first_delivered
            .iter()
            .filter_map(|(ev, done)| accepted.get(ev).map(|start| (done - start).max(0)))
            .collect();
        latencies.sort_unstable();
        let pct = |p: usize| -> Option<i64> {
            (!latencies.is_empty()).then(|| latencies[((latencies.len() * p).div_ceil(100)).saturating_sub(1)])
        };
        let mut failing: Vec<(String, usize)> = failing.into_iter().collect();
        failing.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        failing.truncate(5);
        Window {
            name,
            read: entries.len(),
            capped: entries.len() >= limit,
            inbound: ranked(inbound),
            deliveries: ranked(deliveries),
            p50: ms(pct(50)),
            p99: ms(pct(99)),
            delivered: latencies.len(),
            failing,
            charts: Vec::new(),
            bucket: "",
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
}

impl Chart {
    /// The overview's three charts of a window of `n` buckets of
    /// `bucket_ms` from `from`: inbound requests by verdict, delivery
    /// attempts by outcome, and accept→delivery p50/p99 of the events first
    /// delivered in each bucket. Entries outside the window are left out.
    pub fn of_window(entries: &[Value], from: i64, bucket_ms: i64, n: usize) -> Vec<Chart> {
        let x: Vec<i64> = (0..n as i64).map(|i| (from + i * bucket_ms) / 1000).collect();
        let slot = |at: i64| -> Option<usize> {
            let i = (at - from).div_euclid(bucket_ms);
            (at >= from && (i as usize) < n).then_some(i as usize)
        };
        let mut by_kind: [BTreeMap<String, Vec<Option<i64>>>; 2] = Default::default();
        let mut accepted: BTreeMap<&str, i64> = BTreeMap::new();
        let mut delivered: BTreeMap<&str, i64> = BTreeMap::new();
        for e in entries {
            let kind = e.get("kind").and_then(Value::as_str).unwrap_or_default();
            let outcome = e.get("outcome").and_then(Value::as_str).unwrap_or("unknown");
            let at = e.get("at").and_then(Value::as_i64).unwrap_or(0);
            let event = e.get("event_id").and_then(Value::as_str).unwrap_or_default();
            let which = match kind {
                "inbound" => {
                    if outcome == "accepted" && !event.is_empty() {
                        accepted.entry(event).and_modify(|t| *t = (*t).min(at)).or_insert(at);
                    }
                    0
                }
                "attempt" => {
                    if outcome == "success" && !event.is_empty() {
                        delivered.entry(event).and_modify(|t| *t = (*t).min(at)).or_insert(at);
                    }
                    1
                }
                _ => continue,
            };
            if let Some(i) = slot(at) {
                let line = by_kind[which].entry(outcome.to_string()).or_insert_with(|| vec![Some(0); n]);
                line[i] = Some(line[i].unwrap_or(0) + 1);
            }
        }
        let mut latencies: Vec<Vec<i64>> = vec![Vec::new(); n];
        for (event, done) in &delivered {
            if let (Some(start), Some(i)) = (accepted.get(event), slot(*done)) {
                latencies[i].push((done - start).max(0));
            }
        }
        let pct = |l: &mut Vec<i64>, p: usize| -> Option<i64> {
            l.sort_unstable();
            (!l.is_empty()).then(|| l[((l.len() * p).div_ceil(100)).saturating_sub(1)])
        };
        let p50 = latencies.iter_mut().map(|l| pct(l, 50)).collect();
        let p99 = latencies.iter_mut().map(|l| pct(l, 99)).collect();
        let [inbound, attempts] = by_kind;
        vec![
            Chart {
                title: "Inbound requests by verdict".into(),
                unit: "requests",
                x: x.clone(),
                series: inbound.into_iter().collect(),
            },
            Chart {
                title: "Delivery attempts by outcome".into(),
                unit: "attempts",
                x: x.clone(),
                series: attempts.into_iter().collect(),
            },
            Chart {
                title: "Accept → delivery latency".into(),
                unit: "ms",
                x,
                series: vec![("p50".into(), p50), ("p99".into(), p99)],
            },
        ]
    }
}

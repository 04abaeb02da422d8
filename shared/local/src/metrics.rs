//! `hookflow dev`'s Prometheus metrics (`--metrics ADDR`, `GET /metrics`):
//! counters and histograms kept as requests and attempts happen, gauges
//! read from the store at each scrape, in Prometheus's text exposition
//! format (0.0.4).
//!
//! Labels are bounded: tenant and flow come from the loaded flows (a
//! request to an unknown path is counted with empty ones), subscription
//! from the subscriptions; past [`MAX_SERIES`] label sets a metric counts
//! new ones under `"_other"`, so hostile traffic cannot grow the memory or
//! the scrape without bound.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The most label sets one metric keeps apart.
pub const MAX_SERIES: usize = 1_000;

/// The upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0];

/// The label value a set past [`MAX_SERIES`] is counted under.
const OTHER: &str = "_other";

/// Counters by label values, bounded.
#[derive(Debug, Default)]
struct Counters(BTreeMap<Vec<String>, u64>);

impl Counters {
    fn add(&mut self, labels: Vec<String>) {
        let key = bounded(&self.0, labels);
        *self.0.entry(key).or_default() += 1;
    }
}

/// One histogram's buckets, sum and count.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![0; BUCKETS.len()];
        }
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.buckets[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Histograms by label values, bounded.
#[derive(Debug, Default)]
struct Histograms(BTreeMap<Vec<String>, Histogram>);

impl Histograms {
    fn observe(&mut self, labels: Vec<String>, seconds: f64) {
        let key = bounded(&self.0, labels);
        self.0.entry(key).or_default().observe(seconds.max(0.0));
    }
}

/// `labels` if the map has room for them (or has them), else the overflow set.
fn bounded<V>(map: &BTreeMap<Vec<String>, V>, labels: Vec<String>) -> Vec<String> {
    if map.len() < MAX_SERIES || map.contains_key(&labels) { labels } else { vec![OTHER.to_string(); labels.len()] }
}

#[derive(Debug, Default)]
struct Inner {
    inbound: Counters,
    runs: Counters,
    attempts: Counters,
    attempt_seconds: Histograms,
    delivered_seconds: Histograms,
}

/// What one attempt was, for its counters.
#[derive(Debug, Clone, Copy)]
pub struct AttemptSeen<'a> {
    pub tenant: &'a str,
    pub flow: &'a str,
    /// The subscription, for an event's delivery (empty for a step's).
    pub subscription: &'a str,
    /// `delivered`, `retried` or `dead`.
    pub outcome: &'a str,
    /// The response's status, if one came.
    pub status: Option<u16>,
    pub duration_ms: u64,
    /// How long from its first due time to its delivery, if delivered.
    pub delivered_after_ms: Option<i64>,
}

/// One kind of job in the queue at a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Queued {
    /// `run` or `delivery`.
    pub kind: String,
    /// Leased by a worker: being worked on.
    pub in_progress: u64,
    /// Due, waiting for a worker.
    pub due: u64,
    /// Due later (a retry's delay, a wait on a limit).
    pub scheduled: u64,
    /// How long the oldest due one has waited for a worker (seconds).
    pub oldest_due_s: f64,
}

/// What the store holds at a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    pub queue: Vec<Queued>,
    /// Dead deliveries listed.
    pub dead: u64,
    /// Deliveries in flight under a `max_in_flight`, by destination key.
    pub in_flight: u64,
}

/// The process's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// `accepted`, `rejected`, `duplicate`.
pub type Verdict = &'static str;

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An inbound request's verdict, for the flow it reached (if any).
    pub fn inbound(&self, verdict: Verdict, tenant: &str, flow: &str) {
        self.inner().inbound.add(vec![tenant.into(), flow.into(), verdict.into()]);
    }

    /// A run that finished (`succeeded`, `failed`), once, when its end was
    /// committed.
    pub fn run(&self, tenant: &str, flow: &str, outcome: &str) {
        self.inner().runs.add(vec![tenant.into(), flow.into(), outcome.into()]);
    }

    /// One delivery attempt.
    pub fn attempt(&self, a: AttemptSeen<'_>) {
        let class = a.status.map_or_else(|| "none".to_string(), |s| format!("{}xx", s / 100));
        let mut inner = self.inner();
        inner.attempts.add(vec![a.tenant.into(), a.flow.into(), a.subscription.into(), a.outcome.into(), class]);
        inner.attempt_seconds.observe(vec![a.outcome.into()], a.duration_ms as f64 / 1000.0);
        if let Some(ms) = a.delivered_after_ms {
            inner.delivered_seconds.observe(vec![a.tenant.into(), a.flow.into()], ms as f64 / 1000.0);
        }
    }

    /// Everything, in the text exposition format, with `gauges` read now.
    pub fn render(&self, gauges: &Gauges) -> String {
        let inner = self.inner();
        let mut out = String::new();
        counters(
            &mut out,
            "hookflow_inbound_requests_total",
            "Trigger requests by the flow they reached and their verdict.",
            &["tenant", "flow", "verdict"],
            &inner.inbound,
        );
        counters(
            &mut out,
            "hookflow_runs_total",
            "Runs that finished, by flow and outcome (succeeded, failed).",
            &["tenant", "flow", "outcome"],
            &inner.runs,
        );
        counters(
            &mut out,
            "hookflow_delivery_attempts_total",
            "Delivery attempts by outcome (delivered, retried, dead) and the response's status class.",
            &["tenant", "flow", "subscription", "outcome", "status_class"],
            &inner.attempts,
        );
        histograms(
            &mut out,
            "hookflow_delivery_attempt_duration_seconds",
            "How long each attempt took, by outcome.",
            &["outcome"],
            &inner.attempt_seconds,
        );
        histograms(
            &mut out,
            "hookflow_delivery_latency_seconds",
            "From a delivery's first due time (its acceptance) to its delivery.",
            &["tenant", "flow"],
            &inner.delivered_seconds,
        );
        drop(inner);
        let _ = writeln!(
            out,
            "# HELP hookflow_queue_jobs Jobs in the queue by kind: in progress, due, or due later (scheduled)."
        );
        let _ = writeln!(out, "# TYPE hookflow_queue_jobs gauge");
        for q in &gauges.queue {
            let kind = escape(&q.kind);
            let _ = writeln!(out, "hookflow_queue_jobs{{kind=\"{kind}\",state=\"in_progress\"}} {}", q.in_progress);
            let _ = writeln!(out, "hookflow_queue_jobs{{kind=\"{kind}\",state=\"due\"}} {}", q.due);
            let _ = writeln!(out, "hookflow_queue_jobs{{kind=\"{kind}\",state=\"scheduled\"}} {}", q.scheduled);
        }
        let _ =
            writeln!(out, "# HELP hookflow_queue_oldest_due_seconds How long the oldest due job has waited, by kind.");
        let _ = writeln!(out, "# TYPE hookflow_queue_oldest_due_seconds gauge");
        for q in &gauges.queue {
            let _ =
                writeln!(out, "hookflow_queue_oldest_due_seconds{{kind=\"{}\"}} {}", escape(&q.kind), q.oldest_due_s);
        }
        let _ = writeln!(out, "# HELP hookflow_dead_deliveries Dead deliveries listed (replayable).");
        let _ = writeln!(out, "# TYPE hookflow_dead_deliveries gauge");
        let _ = writeln!(out, "hookflow_dead_deliveries {}", gauges.dead);
        let _ = writeln!(out, "# HELP hookflow_limited_in_flight Deliveries in flight under a max_in_flight.");
        let _ = writeln!(out, "# TYPE hookflow_limited_in_flight gauge");
        let _ = writeln!(out, "hookflow_limited_in_flight {}", gauges.in_flight);
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn labels(names: &[&str], values: &[String], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = names.iter().zip(values).map(|(n, v)| format!("{n}=\"{}\"", escape(v))).collect();
    if let Some((n, v)) = extra {
        parts.push(format!("{n}=\"{v}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn counters(out: &mut String, name: &str, help: &str, names: &[&str], c: &Counters) {
    header(out, name, help, "counter");
    for (values, n) in &c.0 {
        let _ = writeln!(out, "{name}{} {n}", labels(names, values, None));
    }
}

fn histograms(out: &mut String, name: &str, help: &str, names: &[&str], h: &Histograms) {
    header(out, name, help, "histogram");
    for (values, h) in &h.0 {
        for (le, n) in BUCKETS.iter().zip(&h.buckets) {
            let _ = writeln!(out, "{name}_bucket{} {n}", labels(names, values, Some(("le", le.to_string()))));
        }
        let _ = writeln!(out, "{name}_bucket{} {}", labels(names, values, Some(("le", "+Inf".into()))), h.count);
        let _ = writeln!(out, "{name}_sum{} {}", labels(names, values, None), h.sum);
        let _ = writeln!(out, "{name}_count{} {}", labels(names, values, None), h.count);
    }
}

/// A label value as the text format writes it: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_prometheus_text_with_bounded_labels() {
        let m = Metrics::default();
        m.inbound("accepted", "acme", "orders");
        m.inbound("accepted", "acme", "orders");
        m.inbound("rejected", "", "");
        m.run("acme", "orders", "failed");
        m.attempt(AttemptSeen {
            tenant: "acme",
            flow: "orders",
            subscription: "",
            outcome: "delivered",
            status: Some(204),
            duration_ms: 30,
            delivered_after_ms: Some(1_500),
        });
        let queued = Queued { kind: "delivery".into(), in_progress: 1, due: 2, scheduled: 3, oldest_due_s: 1.5 };
        let text = m.render(&Gauges { queue: vec![queued], dead: 4, in_flight: 0 });
        for line in [
            r#"hookflow_inbound_requests_total{tenant="acme",flow="orders",verdict="accepted"} 2"#,
            r#"hookflow_inbound_requests_total{tenant="",flow="",verdict="rejected"} 1"#,
            r#"hookflow_runs_total{tenant="acme",flow="orders",outcome="failed"} 1"#,
            r#"hookflow_delivery_attempts_total{tenant="acme",flow="orders",subscription="",outcome="delivered",status_class="2xx"} 1"#,
            r#"hookflow_delivery_attempt_duration_seconds_bucket{outcome="delivered",le="0.05"} 1"#,
            r#"hookflow_delivery_attempt_duration_seconds_bucket{outcome="delivered",le="0.025"} 0"#,
            r#"hookflow_delivery_latency_seconds_bucket{tenant="acme",flow="orders",le="2.5"} 1"#,
            r#"hookflow_delivery_latency_seconds_count{tenant="acme",flow="orders"} 1"#,
            r#"hookflow_queue_jobs{kind="delivery",state="scheduled"} 3"#,
            r#"hookflow_queue_jobs{kind="delivery",state="in_progress"} 1"#,
            r#"hookflow_queue_oldest_due_seconds{kind="delivery"} 1.5"#,
            "hookflow_dead_deliveries 4",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in:\n{text}");
        }
    }

    #[test]
    fn label_sets_past_the_bound_are_counted_together_and_values_escaped() {
        let m = Metrics::default();
        for i in 0..MAX_SERIES + 50 {
            m.inbound("accepted", "t", &format!("f{i}"));
        }
        m.inbound("accepted", "t", "f0");
        let text = m.render(&Gauges::default());
        let series = text.lines().filter(|l| l.starts_with("hookflow_inbound_requests_total{")).count();
        assert_eq!(series, MAX_SERIES + 1, "the bound and one overflow set");
        assert!(text.contains(r#"{tenant="_other",flow="_other",verdict="_other"} 50"#), "{}", &text[..300]);
        assert!(text.contains(r#"flow="f0",verdict="accepted"} 2"#), "a known set still counts");
        m.inbound("accepted", "a\"b\\c\nd", "x");
        assert!(m.render(&Gauges::default()).contains(r#"tenant="_other""#));
        assert_eq!(escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
    }
}

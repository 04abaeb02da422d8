//! The request log summed up (`GET /v1/stats`, the console's overview):
//! counts by verdict and outcome, accept → delivery latency percentiles,
//! failing endpoints, each over the whole window and per bucket. What a
//! store hands in is folded as it comes ([`Tally`]), so the summary's size
//! is bounded by the number of buckets and outcomes, never by the traffic:
//! a flood of large requests grows counts, not the answer.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::commit::{EntryKind, LogEntry};

/// The most buckets one summary has.
pub const MAX_BUCKETS: i64 = 1_000;

/// The most accepted events whose time a summary keeps to match their
/// first delivery (a latency): past that, later ones are not measured and
/// the summary says `latency_capped`.
pub const MAX_TIMED_EVENTS: usize = 200_000;

/// The most failing endpoints listed.
pub const MAX_FAILING: usize = 5;

/// What a summary covers: `[since, until)` of one tenant (or all), in
/// buckets of `bucket_ms` from `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    pub tenant: Option<String>,
    pub since: i64,
    pub until: i64,
    pub bucket_ms: i64,
}

impl StatsQuery {
    /// The query, or what is wrong with it (the field and the limit).
    pub fn new(tenant: Option<String>, since: i64, until: i64, bucket_ms: i64) -> Result<Self, String> {
        if until <= since {
            return Err("`until` must be after `since`".into());
        }
        if bucket_ms < 1_000 {
            return Err("`bucket` must be at least 1000 ms".into());
        }
        if ((until - since) as u64).div_ceil(bucket_ms as u64) > MAX_BUCKETS as u64 {
            return Err(format!("at most {MAX_BUCKETS} buckets: make `bucket` larger or the window shorter"));
        }
        Ok(StatsQuery { tenant, since, until, bucket_ms })
    }

    /// How many buckets the window has.
    pub fn buckets(&self) -> usize {
        ((self.until - self.since) as u64).div_ceil(self.bucket_ms as u64) as usize
    }

    /// The bucket holding `at`, if the window does.
    fn slot(&self, at: i64) -> Option<usize> {
        (at >= self.since && at < self.until).then(|| ((at - self.since) / self.bucket_ms) as usize)
    }
}

/// Accept → delivery latency over some deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Events delivered (first success) whose acceptance is in the window.
    pub delivered: usize,
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
}

impl Latency {
    fn of(mut ms: Vec<i64>) -> Self {
        ms.sort_unstable();
        let pct = |p: usize| (!ms.is_empty()).then(|| ms[(ms.len() * p).div_ceil(100).saturating_sub(1)]);
        Latency { delivered: ms.len(), p50_ms: pct(50), p99_ms: pct(99) }
    }
}

/// One bucket of a summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Its start (ms).
    pub at: i64,
    /// Inbound requests by verdict (`accepted`, `duplicate`, `rejected_401`, …).
    pub inbound: BTreeMap<String, u64>,
    /// Delivery attempts by outcome (`success`, `retry`, `dead`, …).
    pub attempts: BTreeMap<String, u64>,
    /// Of the events first delivered in this bucket.
    pub latency: Latency,
}

/// A summary of the request log over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub since: i64,
    pub until: i64,
    pub bucket_ms: i64,
    /// Entries summed up.
    pub entries: u64,
    /// Inbound requests by verdict, over the window.
    pub inbound: BTreeMap<String, u64>,
    /// Delivery attempts by outcome, over the window.
    pub attempts: BTreeMap<String, u64>,
    pub latency: Latency,
    /// More events were accepted than [`MAX_TIMED_EVENTS`]: the latency is
    /// of the first ones.
    pub latency_capped: bool,
    /// Inbound requests by `tenant/flow` (those with a flow).
    pub flows: BTreeMap<String, u64>,
    /// Failed attempts by endpoint ([`endpoint`]: the URL's host and path),
    /// most first, at most [`MAX_FAILING`].
    pub failing: Vec<(String, u64)>,
    /// The store read at most so many entries (a store that sums up by
    /// reading entries, with a bound): the counts are of those.
    pub capped: bool,
    pub buckets: Vec<Bucket>,
}

/// Where an attempt went, as the overview names a failing endpoint: its
/// URL's host and path (no scheme, credentials, query or fragment: a query
/// may carry a key), at most 120 characters; `fallback` (a subscription's
/// or flow's id) when it has no URL.
pub fn endpoint(url: Option<&str>, fallback: &str) -> String {
    let Some(url) = url.filter(|u| !u.is_empty()) else { return fallback.to_string() };
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let mut out = format!("{host}/{path}");
    if out.len() > 120 {
        let mut cut = 119;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// A summary in the making: fed facts in any order, finished once.
#[derive(Debug)]
pub struct Tally {
    q: StatsQuery,
    stats: Stats,
    failing: HashMap<String, u64>,
    accepted: HashMap<String, i64>,
    delivered: HashMap<String, i64>,
    latency_capped: bool,
}

/// Keeps the earliest `at` of `event` in `times`; `false` when it is full
/// ([`MAX_TIMED_EVENTS`]) and `event` new to it (not kept).
fn earliest(times: &mut HashMap<String, i64>, event: &str, at: i64) -> bool {
    if event.is_empty() {
        return true;
    }
    if times.len() >= MAX_TIMED_EVENTS && !times.contains_key(event) {
        return false;
    }
    times.entry(event.to_string()).and_modify(|t| *t = (*t).min(at)).or_insert(at);
    true
}

impl Tally {
    pub fn new(q: &StatsQuery) -> Self {
        let buckets =
            (0..q.buckets()).map(|i| Bucket { at: q.since + i as i64 * q.bucket_ms, ..Default::default() }).collect();
        let stats = Stats { since: q.since, until: q.until, bucket_ms: q.bucket_ms, buckets, ..Default::default() };
        Tally {
            q: q.clone(),
            stats,
            failing: HashMap::new(),
            accepted: HashMap::new(),
            delivered: HashMap::new(),
            latency_capped: false,
        }
    }

    /// `n` entries of `kind` with `outcome` at `at` (a store that counts
    /// by bucket hands in one time of the bucket).
    pub fn count(&mut self, kind: EntryKind, outcome: &str, at: i64, n: u64) {
        let Some(i) = self.q.slot(at) else { return };
        let (total, bucket) = match kind {
            EntryKind::Inbound => (&mut self.stats.inbound, &mut self.stats.buckets[i].inbound),
            EntryKind::Attempt => (&mut self.stats.attempts, &mut self.stats.buckets[i].attempts),
            _ => return,
        };
        *total.entry(outcome.to_string()).or_default() += n;
        *bucket.entry(outcome.to_string()).or_default() += n;
        self.stats.entries += n;
    }

    /// `n` inbound requests to flow `flow` of `tenant`.
    pub fn flow(&mut self, tenant: &str, flow: &str, n: u64) {
        *self.stats.flows.entry(format!("{tenant}/{flow}")).or_default() += n;
    }

    /// `n` failed attempts to `who` (an [`endpoint`]).
    pub fn failed(&mut self, who: &str, n: u64) {
        if !who.is_empty() {
            *self.failing.entry(who.to_string()).or_default() += n;
        }
    }

    /// Event `event` accepted at `at` (no event: nothing).
    pub fn accepted(&mut self, event: &str, at: i64) {
        self.latency_capped |= !earliest(&mut self.accepted, event, at);
    }

    /// A delivery of event `event` succeeded at `at` (no event: nothing).
    pub fn delivered(&mut self, event: &str, at: i64) {
        self.latency_capped |= !earliest(&mut self.delivered, event, at);
    }

    /// One whole entry (a store that reads entries).
    pub fn entry(&mut self, e: &LogEntry) {
        if self.q.slot(e.at).is_none() || self.q.tenant.as_ref().is_some_and(|t| e.tenant.as_ref() != Some(t)) {
            return;
        }
        let outcome = e.outcome.as_deref().unwrap_or("unknown");
        self.count(e.kind, outcome, e.at, 1);
        let event = e.event_id.as_deref().unwrap_or_default();
        match e.kind {
            EntryKind::Inbound => {
                if let (Some(t), Some(f)) = (&e.tenant, &e.flow_id) {
                    self.flow(t, f, 1);
                }
                if outcome == "accepted" {
                    self.accepted(event, e.at);
                }
            }
            EntryKind::Attempt if outcome == "success" => self.delivered(event, e.at),
            EntryKind::Attempt => {
                let url = e.detail.pointer("/request/url").and_then(serde_json::Value::as_str);
                let sub = e.detail.get("subscription_id").and_then(serde_json::Value::as_str);
                self.failed(&endpoint(url, sub.or(e.flow_id.as_deref()).unwrap_or_default()), 1);
            }
            _ => {}
        }
    }

    /// Says the counts are of the entries a bounded read took.
    pub fn capped(&mut self) {
        self.stats.capped = true;
    }

    pub fn finish(mut self) -> Stats {
        self.stats.latency_capped = self.latency_capped;
        let mut all = Vec::new();
        let mut per_bucket = vec![Vec::new(); self.stats.buckets.len()];
        for (event, done) in &self.delivered {
            if let Some(start) = self.accepted.get(event) {
                let ms = (done - start).max(0);
                all.push(ms);
                if let Some(i) = self.q.slot(*done) {
                    per_bucket[i].push(ms);
                }
            }
        }
        self.stats.latency = Latency::of(all);
        for (bucket, ms) in self.stats.buckets.iter_mut().zip(per_bucket) {
            bucket.latency = Latency::of(ms);
        }
        let mut failing: Vec<(String, u64)> = self.failing.into_iter().collect();
        failing.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        failing.truncate(MAX_FAILING);
        self.stats.failing = failing;
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(kind: EntryKind, outcome: &str, at: i64, event: &str) -> LogEntry {
        LogEntry {
            at,
            kind,
            tenant: Some("acme".into()),
            flow_id: Some("orders".into()),
            event_id: Some(event.into()),
            outcome: Some(outcome.into()),
            detail: json!({"body": "x".repeat(16 * 1024)}),
            ..Default::default()
        }
    }

    #[test]
    fn an_endpoint_is_its_url_s_host_and_path() {
        let e = |u| endpoint(Some(u), "f");
        assert_eq!(e("https://user:pw@api.example.com:8443/v1/hooks?key=s3cret#x"), "api.example.com:8443/v1/hooks");
        assert_eq!(e("http://127.0.0.1:9"), "127.0.0.1:9/");
        assert_eq!(endpoint(None, "sub_1"), "sub_1");
        let long = e(&format!("https://h/{}", "é".repeat(100)));
        assert!(long.ends_with('…') && long.chars().count() <= 120, "{long}");
    }

    #[test]
    fn counts_latency_and_failing_by_window_and_bucket() {
        let q = StatsQuery::new(None, 0, 60_000, 10_000).unwrap();
        let mut t = Tally::new(&q);
        for (i, e) in [
            entry(EntryKind::Inbound, "accepted", 1_000, "e1"),
            entry(EntryKind::Attempt, "retry", 2_000, "e1"),
            entry(EntryKind::Attempt, "success", 11_000, "e1"),
            entry(EntryKind::Attempt, "success", 12_000, "e1"),
            entry(EntryKind::Inbound, "accepted", 21_000, "e2"),
            entry(EntryKind::Attempt, "success", 21_500, "e2"),
            entry(EntryKind::Inbound, "rejected_401", 30_000, ""),
            entry(EntryKind::Inbound, "accepted", 70_000, "late"),
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(i < 7, q.slot(e.at).is_some());
            t.entry(e);
        }
        let s = t.finish();
        assert_eq!(s.entries, 7, "the one past `until` is left out");
        assert_eq!(s.inbound, BTreeMap::from([("accepted".into(), 2), ("rejected_401".into(), 1)]));
        assert_eq!(s.attempts, BTreeMap::from([("retry".into(), 1), ("success".into(), 3)]));
        assert_eq!(s.latency, Latency { delivered: 2, p50_ms: Some(500), p99_ms: Some(10_000) });
        assert_eq!(s.flows, BTreeMap::from([("acme/orders".into(), 3)]));
        assert_eq!(s.failing, [("orders".to_string(), 1)], "no URL: the flow");
        assert_eq!(s.buckets.len(), 6);
        assert_eq!(s.buckets[1].at, 10_000);
        assert_eq!(s.buckets[1].latency.p50_ms, Some(10_000), "e1's first delivery, at 11 s");
        assert_eq!(s.buckets[2].latency.p50_ms, Some(500));
        assert_eq!(s.buckets[3].inbound.get("rejected_401"), Some(&1));
        let size = serde_json::to_string(&s).unwrap().len();
        assert!(size < 4_096, "16 KiB bodies do not reach the answer: {size} bytes");
    }

    #[test]
    fn the_answer_is_bounded_whatever_the_traffic() {
        let q = StatsQuery::new(Some("acme".into()), 0, 3_600_000, 300_000).unwrap();
        let mut t = Tally::new(&q);
        for i in 0..(MAX_TIMED_EVENTS as i64 + 10) {
            t.accepted(&format!("e{i}"), i % 3_600_000);
            t.count(EntryKind::Inbound, "accepted", i % 3_600_000, 1);
            t.failed(&format!("sub{}", i % 50), 1);
        }
        let s = t.finish();
        assert!(s.latency_capped);
        assert_eq!(s.failing.len(), MAX_FAILING);
        assert_eq!(s.inbound["accepted"], MAX_TIMED_EVENTS as u64 + 10);
        assert!(serde_json::to_string(&s).unwrap().len() < 8_192);
    }

    #[test]
    fn a_query_names_what_is_wrong() {
        assert!(StatsQuery::new(None, 10, 10, 1_000).unwrap_err().contains("`until`"));
        assert!(StatsQuery::new(None, 0, 10, 10).unwrap_err().contains("`bucket`"));
        assert!(StatsQuery::new(None, 0, 86_400_000 * 2, 1_000).unwrap_err().contains("at most 1000 buckets"));
        assert_eq!(StatsQuery::new(None, 0, 86_400_000, 3_600_000).unwrap().buckets(), 24);
    }
}

//! How fast a destination is sent to: a pace (`rate_limit: {per_second,
//! burst}`) and a bound on requests in flight (`max_in_flight`), per
//! subscription or, in a flow file, per destination host.
//!
//! **The pace is GCRA** (the generic cell rate algorithm, a token bucket
//! kept as one number): a key's state is its *theoretical arrival time*
//! `tat`. A delivery at `now` gets the slot `max(now, tat - τ)`, and `tat`
//! moves on by one interval `T = 1 / per_second` (`τ = (burst − 1)·T`).
//! A slot in the future is a *reservation*: the delivery waits in the
//! queue until then and goes without asking again ([`Slot`]), so a backlog
//! of `n` costs each of its deliveries one deferral, not `n` polls, and the
//! backlog is `(tat − now − τ) / T` without counting anything
//! ([`waiting`]).
//!
//! **The clock.** A step forwards frees at most `burst` at once (the state
//! is capped at `now`); a step backwards delays what waits by at most the
//! step. Nothing here can lose a delivery: waiting spends no attempt.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The fastest pace a limit may ask for.
pub const MAX_PER_SECOND: f64 = 10_000.0;
/// The slowest: one a day.
pub const MIN_PER_SECOND: f64 = 1.0 / 86_400.0;
/// A refused field: its name and why.
pub type Problem = (String, String);

/// The largest burst, and the most requests in flight a limit may allow.
pub const MAX_BURST: u32 = 1_000;

/// At most `per_second` requests a second on average, `burst` of them at
/// once after a pause (default 1: evenly spaced).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests a second, on average (a fraction for slower: `0.5`).
    pub per_second: f64,
    /// How many may go at once after a pause (1 to 1000; default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

fn is_one(v: &u32) -> bool {
    *v == 1
}

impl RateLimit {
    /// Its interval `T`, in microseconds (at least 1).
    pub fn interval_us(&self) -> i64 {
        ((1_000_000.0 / self.per_second).round() as i64).max(1)
    }

    /// Its tolerance `τ = (burst − 1)·T`, in microseconds.
    fn tolerance_us(&self) -> i64 {
        self.interval_us().saturating_mul(i64::from(self.burst.max(1) - 1))
    }

    /// The problems of this limit, named under `field`.
    pub fn check(&self, field: &str) -> Vec<Problem> {
        let mut errs = Vec::new();
        if !self.per_second.is_finite() || !(MIN_PER_SECOND..=MAX_PER_SECOND).contains(&self.per_second) {
            errs.push((
                format!("{field}.per_second"),
                format!(
                    "must be between {MIN_PER_SECOND:.6} (one a day) and {MAX_PER_SECOND}, not {}",
                    self.per_second
                ),
            ));
        }
        if !(1..=MAX_BURST).contains(&self.burst) {
            errs.push((format!("{field}.burst"), format!("must be 1 to {MAX_BURST}, not {}", self.burst)));
        }
        errs
    }
}

/// The limits of one destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// At most this many requests in flight at once (1 to 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
}

impl Limits {
    pub fn is_none(&self) -> bool {
        self.rate_limit.is_none() && self.max_in_flight.is_none()
    }

    /// The problems of these limits; `prefix` names where they are
    /// (`""` for a subscription's own fields).
    pub fn check(&self, prefix: &str) -> Vec<Problem> {
        let mut errs = self.rate_limit.map(|r| r.check(&format!("{prefix}rate_limit"))).unwrap_or_default();
        if let Some(m) = self.max_in_flight
            && !(1..=MAX_BURST).contains(&m)
        {
            errs.push((format!("{prefix}max_in_flight"), format!("must be 1 to {MAX_BURST}, not {m}")));
        }
        errs
    }
}

/// Limits with the key whose state they are kept under (a flow step's
/// host: `host:<tenant>/<pattern>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyed {
    pub key: String,
    pub limits: Limits,
}

/// The limits of `flow_limits` (a flow's `limits:`) for `host`, keyed for
/// `tenant`: its own name's, else the first `*.domain` under which it is.
pub fn for_host<'a>(
    flow_limits: impl IntoIterator<Item = (&'a String, &'a Limits)>,
    tenant: &str,
    host: &str,
) -> Option<Keyed> {
    let mut wild = None;
    for (pattern, limits) in flow_limits {
        let p = pattern.to_ascii_lowercase();
        if p == host {
            return Some(Keyed { key: format!("host:{tenant}/{p}"), limits: *limits });
        }
        if wild.is_none()
            && let Some(domain) = p.strip_prefix("*.")
            && host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
        {
            wild = Some(Keyed { key: format!("host:{tenant}/{p}"), limits: *limits });
        }
    }
    wild
}

/// What waits on a destination's limits, as its limiter reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Backlog {
    /// About how many deliveries wait for a slot under its pace.
    pub waiting: u64,
    /// How many of its requests are in flight.
    pub in_flight: u32,
}

/// A slot reserved under a pace: its delivery waits in the queue until
/// `at` and then goes without reserving again, as long as the pace is
/// still `rate` as kept by the limiter of `epoch` (a limit changed while a
/// backlog waits, or `hookflow dev` started again, reserves anew — the new
/// pace holds from then on).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// When (wall clock, ms).
    pub at: i64,
    pub rate: RateLimit,
    /// Which limiter's state it is a reservation in.
    #[serde(default)]
    pub epoch: i64,
}

/// How late a slot may be taken up before it is stale (or its burst's
/// span, if longer): a delivery that waited longer since — for a place in
/// flight, behind a stalled worker, across a step of the wall clock —
/// reserves again rather than go beside the slots made since.
pub const STALE_AFTER_MS: i64 = 2_000;

impl Slot {
    /// Whether it still holds at `now` (ms) under `rate` kept by the
    /// limiter of `epoch`: the same pace and limiter, and not stale.
    pub fn holds(&self, rate: &RateLimit, epoch: i64, now: i64) -> bool {
        let stale_after = STALE_AFTER_MS.max((rate.tolerance_us() + rate.interval_us()) / 1000);
        self.rate == *rate && self.epoch == epoch && now - self.at <= stale_after
    }
}

impl RateLimit {
    /// The key its pace's state is kept under for destination `key`: one
    /// state a pace, so a limit changed while a backlog waits starts a
    /// state of its own instead of queueing behind the old one's.
    pub fn pace_key(&self, key: &str) -> String {
        format!("{key}@{}/{}", self.per_second, self.burst)
    }
}

/// One reservation: `tat` (µs; `None` for a key never used) at `now`
/// (µs) gives the slot (µs, `now` or later) and the state after it.
pub fn reserve(tat: Option<i64>, now: i64, rate: &RateLimit) -> (i64, i64) {
    let tat = tat.unwrap_or(now).max(now);
    let slot = (tat - rate.tolerance_us()).max(now);
    (slot, tat.saturating_add(rate.interval_us()))
}

/// About how many reservations are ahead of one made at `now` (µs):
/// the backlog waiting under a pace whose state is `tat`.
pub fn waiting(tat: Option<i64>, now: i64, rate: &RateLimit) -> u64 {
    let ahead = tat.unwrap_or(now) - now - rate.tolerance_us();
    if ahead <= 0 { 0 } else { (ahead as u64).div_ceil(rate.interval_us() as u64) }
}

/// The pace a delivery waiting for a place in flight comes back at: as
/// fast as places free up, `max` per `mean_ms` (the recent attempts'
/// mean; at least 1 ms).
pub fn line(max: u32, mean_ms: u64) -> RateLimit {
    let per_second = f64::from(max.max(1)) * 1000.0 / mean_ms.max(1) as f64;
    RateLimit { per_second: per_second.clamp(MIN_PER_SECOND, MAX_PER_SECOND * 10.0), burst: 1 }
}

/// A running mean of attempt durations (ms): `old` moved a fifth of the
/// way to `sample`.
pub fn mean(old: u64, sample: u64) -> u64 {
    if old == 0 { sample.max(1) } else { ((old * 4 + sample) / 5).max(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: f64, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }

    #[test]
    fn a_backlog_is_spaced_one_interval_apart_and_each_reserves_once() {
        let r = rate(100.0, 1);
        let (mut tat, now) = (None, 5_000_000);
        let slots: Vec<i64> = (0..5)
            .map(|_| {
                let (slot, next) = reserve(tat, now, &r);
                tat = Some(next);
                slot
            })
            .collect();
        assert_eq!(slots, [5_000_000, 5_010_000, 5_020_000, 5_030_000, 5_040_000]);
        assert_eq!(waiting(tat, now, &r), 5, "the backlog read off the state");
        assert_eq!(waiting(tat, now + 50_000, &r), 0, "and gone once its slots passed");
    }

    #[test]
    fn a_burst_goes_at_once_after_a_pause_and_no_more() {
        let r = rate(10.0, 3);
        let (mut tat, now) = (Some(0), 60_000_000);
        let slots: Vec<i64> = (0..5)
            .map(|_| {
                let (slot, next) = reserve(tat, now, &r);
                tat = Some(next);
                slot - now
            })
            .collect();
        assert_eq!(slots, [0, 0, 0, 100_000, 200_000], "three at once, then one an interval");
    }

    #[test]
    fn over_any_window_the_pace_holds_to_one_burst() {
        // 10,000 reservations arriving in bursts at random times: in no
        // window of `w` are there more than `burst + w·rate` slots.
        let r = rate(50.0, 5);
        let (mut tat, mut now, mut slots) = (None, 0i64, Vec::new());
        let mut seed = 7u64;
        for _ in 0..10_000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            now += (seed >> 33) as i64 % 30_000;
            let (slot, next) = reserve(tat, now, &r);
            tat = Some(next);
            slots.push(slot);
        }
        for w in [1_000_000i64, 10_000_000] {
            let most = 5 + (w * 50 / 1_000_000) as usize;
            let mut j = 0;
            for i in 0..slots.len() {
                while slots[i] - slots[j] >= w {
                    j += 1;
                }
                assert!(i - j < most, "{} slots within {w} µs", i - j + 1);
            }
        }
    }

    #[test]
    fn the_clock_stepping_back_delays_by_at_most_the_step_and_forward_frees_one_burst() {
        let r = rate(1.0, 2);
        let (_, tat) = reserve(None, 100_000_000, &r);
        // Back by ten seconds: the next slot is where the state says,
        // ten seconds from the stepped clock, not later.
        let (slot, _) = reserve(Some(tat), 90_000_000, &r);
        assert!(slot - 90_000_000 <= 10_000_000 + r.interval_us());
        // Forward by an hour: two at once (the burst), not an hour's worth.
        let now = 3_700_000_000;
        let (a, t) = reserve(Some(tat), now, &r);
        let (b, t) = reserve(Some(t), now, &r);
        let (c, _) = reserve(Some(t), now, &r);
        assert_eq!((a, b, c), (now, now, now + 1_000_000));
    }

    #[test]
    fn limits_out_of_range_are_named() {
        let l = Limits { rate_limit: Some(rate(0.0, 0)), max_in_flight: Some(0) };
        let fields: Vec<String> = l.check("").into_iter().map(|e| e.0).collect();
        assert_eq!(fields, ["rate_limit.per_second", "rate_limit.burst", "max_in_flight"]);
        assert!(Limits { rate_limit: Some(rate(f64::NAN, 1)), max_in_flight: None }.check("").len() == 1);
        assert!(Limits { rate_limit: Some(rate(0.5, 1)), max_in_flight: Some(2) }.check("").is_empty());
        let e = serde_json::from_value::<Limits>(serde_json::json!({"rate_limit": {"per_sec": 3}})).unwrap_err();
        assert!(e.to_string().contains("per_sec"), "{e}");
    }

    #[test]
    fn a_slot_holds_only_under_the_pace_and_limiter_it_was_made_in_and_only_while_fresh() {
        let s = Slot { at: 1_000, rate: rate(5.0, 1), epoch: 9 };
        assert!(s.holds(&rate(5.0, 1), 9, 1_000));
        assert!(s.holds(&rate(5.0, 1), 9, 500), "early (a queue's second of rounding)");
        assert!(!s.holds(&rate(1.0, 1), 9, 1_000), "a limit changed while it waited");
        assert!(!s.holds(&rate(5.0, 1), 10, 1_000), "a limiter started again");
        assert!(s.holds(&rate(5.0, 1), 9, 3_000), "taken up a little late");
        assert!(!s.holds(&rate(5.0, 1), 9, 3_001), "stale: it goes beside the slots made since");
        let slow = Slot { at: 0, rate: rate(0.1, 1), epoch: 0 };
        assert!(slow.holds(&rate(0.1, 1), 0, 10_000), "a slow pace's interval is its span");
        assert_ne!(rate(5.0, 1).pace_key("sub_1"), rate(5.0, 2).pace_key("sub_1"), "one state a pace");
    }

    #[test]
    fn a_host_takes_its_own_names_limits_else_its_domains() {
        let one = Limits { rate_limit: None, max_in_flight: Some(1) };
        let two = Limits { rate_limit: None, max_in_flight: Some(2) };
        let l: std::collections::BTreeMap<String, Limits> =
            [("*.partner.example".to_string(), one), ("api.partner.example".to_string(), two)].into();
        assert_eq!(for_host(&l, "acme", "api.partner.example").unwrap().limits, two);
        let k = for_host(&l, "acme", "eu.partner.example").unwrap();
        assert_eq!((k.key.as_str(), k.limits), ("host:acme/*.partner.example", one));
        assert!(for_host(&l, "acme", "partner.example").is_none(), "a domain is not under itself");
        assert!(for_host(&l, "acme", "xpartner.example").is_none());
    }

    #[test]
    fn the_line_comes_back_as_fast_as_places_free_up() {
        assert_eq!(line(2, 100).interval_us(), 50_000);
        assert_eq!(mean(0, 40), 40);
        assert_eq!(mean(100, 50), 90);
    }
}

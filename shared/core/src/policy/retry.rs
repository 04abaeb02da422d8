//! When to try a failed delivery again.
//!
//! Two shapes: exponential back-off with full jitter (`initial`, `multiplier`,
//! `max_delay`), or an explicit `schedule` of delays with ±10% jitter. Either
//! is bounded by `max_attempts` and `max_age`. A `Retry-After` from the
//! receiver is honoured (never retry sooner than it asks) but capped at
//! `max_delay`, so a receiver cannot park a delivery for a year.
//!
//! # The default
//!
//! Most users never change the retry policy, so the default has to be right:
//! quick at first (a flaky receiver usually recovers within seconds) and long
//! enough overall (about three days, like Stripe) to ride out an outage over a
//! weekend. It is [`DEFAULT_SCHEDULE`]: 15 attempts over 71 h 42 m 35 s.
//!
//! Why 15: if a receiver fails 30% of attempts at random, an event is dead only
//! when all `n` attempts fail, with probability `0.3^n`. Over 10,000 events the
//! chance that *any* ends dead is `1 - (1 - 0.3^n)^10000 ≈ 10000 · 0.3^n`.
//! Keeping that at or below 0.1% needs `0.3^n ≤ 1e-7`, so
//! `n ≥ ln(1e-7) / ln(0.3) = 13.4`: at least 14 attempts. With 15 it is
//! 0.014%. With 8 attempts (Svix's schedule) it is `1 - e^(-0.656) ≈ 48%`.
//! `retry::tests::default_schedule_meets_the_loss_budget` checks this.

use std::time::{Duration, SystemTime};

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Span;

/// Delays between attempts of the default policy: attempt 1 is immediate,
/// attempt `k + 1` follows attempt `k` by `DEFAULT_SCHEDULE[k - 1]`.
pub const DEFAULT_SCHEDULE: [Duration; 14] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(4 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(8 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(12 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(14 * 3600),
];

/// The Standard Webhooks spec's schedule, used for event subscriptions:
/// immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
pub const STANDARD_WEBHOOKS_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(24 * 3600),
];

/// A step's `retry:` block, as written. Unset fields take defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included. `1` disables retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// First delay of exponential back-off (default `5s` when any of
    /// `initial`, `multiplier` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<Span>,
    /// Growth factor of exponential back-off (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<f64>,
    /// Upper bound of one delay, `Retry-After` included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Span>,
    /// Give up once this long has passed since the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Span>,
    /// Explicit delays between attempts, e.g. `[5s, 5m, 30m, 2h]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<Span>>,
}

/// How delays grow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Backoff {
    Exponential { initial: Duration, multiplier: f64 },
    Schedule { delays: Vec<Duration> },
}

/// The effective retry policy of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    pub max_attempts: u32,
    pub max_delay: Duration,
    pub max_age: Option<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::from_spec(&RetrySpec::default())
    }
}

impl RetryPolicy {
    /// An explicit schedule policy (attempts = delays + 1).
    pub fn schedule(delays: &[Duration]) -> Self {
        RetryPolicy {
            max_attempts: delays.len() as u32 + 1,
            max_delay: delays.iter().copied().max().unwrap_or_default(),
            backoff: Backoff::Schedule { delays: delays.to_vec() },
            max_age: None,
        }
    }

    /// Resolves a `retry:` block against the defaults.
    pub fn from_spec(spec: &RetrySpec) -> Self {
        let exponential = spec.initial.is_some() || spec.multiplier.is_some();
        let mut policy = match (&spec.schedule, exponential) {
            (Some(list), _) => RetryPolicy::schedule(&list.iter().map(|s| s.0).collect::<Vec<_>>()),
            (None, true) => RetryPolicy {
                backoff: Backoff::Exponential {
                    initial: spec.initial.map_or(Duration::from_secs(5), Span::get),
                    multiplier: spec.multiplier.unwrap_or(2.0),
                },
                max_attempts: DEFAULT_SCHEDULE.len() as u32 + 1,
                max_delay: Duration::from_secs(14 * 3600),
                max_age: None,
            },
            (None, false) => RetryPolicy::schedule(&DEFAULT_SCHEDULE),
        };
        if let Some(n) = spec.max_attempts {
            policy.max_attempts = n;
        }
        if let Some(d) = spec.max_delay {
            policy.max_delay = d.0;
        }
        policy.max_age = spec.max_age.map(Span::get);
        policy
    }

    /// The delay before the next attempt after attempt number `attempt`
    /// (1-based) failed, or `None` when the delivery is out of attempts or
    /// would be older than `max_age`. `age` is the time since the first
    /// attempt; `retry_after` is what the receiver asked for, if anything.
    pub fn next_delay(
        &self,
        attempt: u32,
        age: Duration,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let base = match &self.backoff {
            Backoff::Exponential { initial, multiplier } => {
                let exp = multiplier.powi(attempt.saturating_sub(1).min(1000) as i32);
                let cap = initial.as_secs_f64() * exp;
                let cap = cap.min(self.max_delay.as_secs_f64());
                Duration::from_secs_f64(rng.random_range(0.0..=cap.max(0.0)))
            }
            Backoff::Schedule { delays } => {
                let d = delays.get(attempt as usize - 1).or(delays.last()).copied().unwrap_or_default();
                d.mul_f64(rng.random_range(0.9..=1.1))
            }
        };
        // Honour Retry-After, but never wait longer than max_delay (jitter on
        // the longest scheduled delay may be cut by it too).
        let delay = base.max(retry_after.unwrap_or_default()).min(self.max_delay);
        match self.max_age {
            Some(max) if age + delay > max => None,
            _ => Some(delay),
        }
    }

    /// The longest the attempts can span, first to last, whatever the
    /// jitter and the receiver's `Retry-After`: no delay passes
    /// `max_delay`, and none comes after `max_age`. What a store keeps a
    /// waiting run for (docs/ARCHITECTURE.md, "A run outlives its retries").
    pub fn longest_span(&self) -> Duration {
        let span = self.max_delay.saturating_mul(self.max_attempts.saturating_sub(1));
        self.max_age.map_or(span, |age| span.min(age))
    }

    /// Total time from the first to the last attempt with no jitter and no
    /// `Retry-After`, for documentation and checks.
    pub fn nominal_span(&self) -> Duration {
        match &self.backoff {
            Backoff::Schedule { delays } => (1..self.max_attempts)
                .map(|k| delays.get(k as usize - 1).or(delays.last()).copied().unwrap_or_default())
                .sum(),
            Backoff::Exponential { initial, multiplier } => {
                (1..self.max_attempts).map(|k| initial.mul_f64(multiplier.powi(k as i32 - 1)).min(self.max_delay)).sum()
            }
        }
    }
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    #[test]
    fn default_schedule_meets_the_loss_budget() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts, 15);
        // P(any of 10,000 events dead) with 30% random failures.
        let p_dead = 0.3f64.powi(p.max_attempts as i32);
        let p_any = 1.0 - (1.0 - p_dead).powf(10_000.0);
        assert!(p_any <= 0.001, "{p_any}");
        // Svix's 8 attempts: about 48%.
        let svix = 1.0 - (1.0 - 0.3f64.powi(8)).powf(10_000.0);
        assert!((svix - 0.48).abs() < 0.01, "{svix}");
        // About three days overall, quick at first.
        let span = p.nominal_span();
        assert!(span >= Duration::from_secs(70 * 3600) && span <= Duration::from_secs(74 * 3600), "{span:?}");
        assert_eq!(span, Duration::from_secs(71 * 3600 + 42 * 60 + 35));
        assert!(DEFAULT_SCHEDULE[0] <= Duration::from_secs(5));
    }

    #[test]
    fn the_longest_span_bounds_every_ladder_even_with_retry_after_and_stops_at_max_age() {
        let p = RetryPolicy::default();
        assert!(p.longest_span() >= p.nominal_span().mul_f64(1.1), "{:?}", p.longest_span());
        let mut r = rng();
        for asked in [None, Some(Duration::from_secs(30 * 86_400))] {
            for _ in 0..100 {
                // No ladder is longer: jitter, and a receiver asking for a
                // month each time.
                let mut age = Duration::ZERO;
                for attempt in 1..p.max_attempts {
                    age += p.next_delay(attempt, age, asked, &mut r).unwrap();
                }
                assert!(age <= p.longest_span(), "{age:?} > {:?}", p.longest_span());
            }
        }
        let capped = RetryPolicy { max_age: Some(Duration::from_secs(3600)), ..RetryPolicy::default() };
        assert_eq!(capped.longest_span(), Duration::from_secs(3600));
    }

    #[test]
    fn schedule_follows_the_list_with_bounded_jitter_then_stops() {
        let p = RetryPolicy::from_spec(&RetrySpec {
            schedule: Some(vec![Span::secs(5), Span::secs(300), Span::secs(1800)]),
            ..Default::default()
        });
        assert_eq!(p.max_attempts, 4);
        let mut r = rng();
        for (attempt, nominal) in [(1, 5.0), (2, 300.0), (3, 1800.0)] {
            let d = p.next_delay(attempt, Duration::ZERO, None, &mut r).unwrap().as_secs_f64();
            assert!(d >= nominal * 0.9 && d <= nominal * 1.1, "attempt {attempt}: {d}");
        }
        assert_eq!(p.next_delay(4, Duration::ZERO, None, &mut r), None);
    }

    #[test]
    fn exponential_full_jitter_stays_under_the_cap() {
        let p = RetryPolicy::from_spec(&RetrySpec {
            initial: Some(Span::secs(1)),
            multiplier: Some(2.0),
            max_delay: Some(Span::secs(10)),
            max_attempts: Some(20),
            ..Default::default()
        });
        let mut r = rng();
        let mut seen_small = false;
        for attempt in 1..20 {
            let cap = (2f64.powi(attempt as i32 - 1)).min(10.0);
            let d = p.next_delay(attempt, Duration::ZERO, None, &mut r).unwrap().as_secs_f64();
            assert!(d <= cap + 1e-9, "attempt {attempt}: {d} > {cap}");
            seen_small |= d < cap / 2.0;
        }
        assert!(seen_small, "full jitter should sometimes pick short delays");
        assert_eq!(p.next_delay(20, Duration::ZERO, None, &mut r), None);
    }

    #[test]
    fn same_seed_same_delays() {
        let p = RetryPolicy::from_spec(&RetrySpec { initial: Some(Span::secs(3)), ..Default::default() });
        let a: Vec<_> = (1..6).map(|k| p.next_delay(k, Duration::ZERO, None, &mut rng())).collect();
        let b: Vec<_> = (1..6).map(|k| p.next_delay(k, Duration::ZERO, None, &mut rng())).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::from_spec(&RetrySpec {
            schedule: Some(vec![Span::secs(1)]),
            max_attempts: Some(5),
            max_delay: Some(Span::secs(60)),
            ..Default::default()
        });
        let mut r = rng();
        let d = p.next_delay(1, Duration::ZERO, Some(Duration::from_secs(30)), &mut r).unwrap();
        assert_eq!(d, Duration::from_secs(30));
        let d = p.next_delay(1, Duration::ZERO, Some(Duration::from_secs(3600)), &mut r).unwrap();
        assert_eq!(d, Duration::from_secs(60));
    }

    #[test]
    fn max_age_ends_retries() {
        let p = RetryPolicy::from_spec(&RetrySpec { max_age: Some(Span::secs(600)), ..Default::default() });
        let mut r = rng();
        assert!(p.next_delay(1, Duration::from_secs(10), None, &mut r).is_some());
        assert_eq!(p.next_delay(5, Duration::from_secs(590), None, &mut r), None);
    }

    #[test]
    fn retry_after_in_both_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        // Wed, 21 Oct 2015 07:28:00 GMT is 1_445_412_480.
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now), Some(Duration::from_secs(120)));
        // A date in the past means "now".
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}

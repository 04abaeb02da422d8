//! Destination limits on `hookflow dev`: each key's pace and places in
//! flight, in this process's memory ([`hookflow_core::limit`]).
//!
//! One process owns the embedded store, so one map holds every key: a
//! reservation is a lock and a sum, never a write. What waits is in the
//! store (the job's due time and its [`Slot`]), so a backlog survives a
//! restart; the pacing state does not, and a new process has a new epoch,
//! so every slot of the old one is reserved again in the new state —
//! the limit holds across the restart rather than the two adding up.
//! The state runs on a monotonic clock: a step of the wall clock changes
//! no pace (the wall clock only says when a reserved job is due).
//!
//! [`Slot`]: hookflow_core::limit::Slot

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookflow_core::limit::{self, RateLimit};

/// Keys kept before idle ones are let go (a key is idle when nothing is in
/// flight and its state is in the past: forgetting it changes nothing).
const KEYS_KEPT: usize = 10_000;

/// How long a delivery is assumed to take before one has been timed.
const FIRST_MEAN_MS: u64 = 100;

/// The limits of one process.
pub struct Limiter {
    started: Instant,
    /// The wall clock at `started` (ms): this limiter's epoch.
    epoch: i64,
    keys: Arc<Mutex<HashMap<String, Key>>>,
}

#[derive(Debug, Default)]
struct Key {
    /// The pace's state (µs since `started`).
    tat: Option<i64>,
    /// The line of deliveries waiting for a place in flight.
    line: Option<i64>,
    in_flight: u32,
    /// The recent attempts' mean duration (ms).
    mean_ms: u64,
}

/// A place in flight; given back when dropped (a task that ends any way
/// gives it back).
pub struct Permit {
    key: String,
    keys: Arc<Mutex<HashMap<String, Key>>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(k) = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&self.key) {
            k.in_flight = k.in_flight.saturating_sub(1);
        }
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter { started: Instant::now(), epoch: crate::now_ms(), keys: Default::default() }
    }
}

impl Limiter {
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    fn now_us(&self) -> i64 {
        self.started.elapsed().as_micros() as i64
    }

    /// From `now` to `at` (µs since start).
    fn until(at: i64, now: i64) -> Duration {
        Duration::from_micros((at - now).max(0) as u64)
    }

    fn with<T>(&self, key: &str, f: impl FnOnce(&mut Key, i64) -> T) -> T {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.now_us();
        if keys.len() >= KEYS_KEPT && !keys.contains_key(key) {
            keys.retain(|_, k| k.in_flight > 0 || k.tat.is_some_and(|t| t > now) || k.line.is_some_and(|t| t > now));
        }
        f(keys.entry(key.to_string()).or_default(), now)
    }

    /// How long one delivery to `key` waits for its slot under `rate`.
    pub fn reserve(&self, key: &str, rate: &RateLimit) -> Duration {
        self.with(key, |k, now| {
            let (slot, tat) = limit::reserve(k.tat, now, rate);
            k.tat = Some(tat);
            Self::until(slot, now)
        })
    }

    /// A place in flight to `key`, of `max`; or how long until it comes
    /// back: in line, as fast as places have been freeing up.
    pub fn enter(&self, key: &str, max: u32) -> Result<Permit, Duration> {
        let full = self.with(key, |k, now| {
            if k.in_flight < max {
                k.in_flight += 1;
                return None;
            }
            let line = limit::line(max, if k.mean_ms == 0 { FIRST_MEAN_MS } else { k.mean_ms });
            let (slot, tat) = limit::reserve(k.line, now, &line);
            k.line = Some(tat);
            // Behind the one a place frees for next.
            Some((slot + line.interval_us(), now))
        });
        match full {
            None => Ok(Permit { key: key.to_string(), keys: self.keys.clone() }),
            Some((at, now)) => Err(Self::until(at, now)),
        }
    }

    /// Gives a place back after an attempt that took `took_ms`.
    pub fn leave(&self, permit: Permit, took_ms: u64) {
        if let Some(k) = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&permit.key) {
            k.mean_ms = limit::mean(k.mean_ms, took_ms);
        }
        drop(permit);
    }

    /// Deliveries in flight under a `max_in_flight`, all keys together.
    pub fn in_flight(&self) -> u64 {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.values().map(|k| u64::from(k.in_flight)).sum()
    }

    /// About how many deliveries to `key` wait under `rate`, and how many
    /// are in flight.
    pub fn backlog(&self, key: &str, rate: Option<&RateLimit>) -> (u64, u32) {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let tat = rate.and_then(|r| keys.get(&r.pace_key(key))).and_then(|k| k.tat);
        let waiting = rate.map_or(0, |r| limit::waiting(tat, self.now_us(), r));
        (waiting, keys.get(key).map_or(0, |k| k.in_flight))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_given_back_however_a_task_ends_and_a_full_key_sends_the_next_in_line_later() {
        let l = Limiter::default();
        let a = l.enter("sub_1", 2).unwrap();
        let b = l.enter("sub_1", 2).unwrap();
        let first = l.enter("sub_1", 2).err().expect("full");
        let second = l.enter("sub_1", 2).err().expect("full");
        assert!(!first.is_zero() && second > first, "in line: {first:?} then {second:?}");
        assert!(l.enter("sub_2", 2).is_ok(), "another key is not held back");
        l.leave(a, 40);
        drop(b); // a task that failed
        assert_eq!(l.backlog("sub_1", None).1, 0);
        assert!(l.enter("sub_1", 2).is_ok());
    }

    #[test]
    fn a_pace_reserves_slots_one_interval_apart_and_counts_its_backlog() {
        let l = Limiter::default();
        let r = RateLimit { per_second: 10.0, burst: 1 };
        let waits: Vec<u128> = (0..4).map(|_| l.reserve(&r.pace_key("sub_1"), &r).as_millis()).collect();
        assert_eq!(waits[0], 0, "the first at once");
        for w in waits.windows(2) {
            assert!((99..=101).contains(&(w[1] - w[0])), "{waits:?}");
        }
        assert_eq!(l.backlog("sub_1", Some(&r)).0, 4);
        assert_ne!(Limiter::default().epoch(), 0);
    }
}

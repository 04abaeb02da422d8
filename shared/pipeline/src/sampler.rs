//! Which requests to unknown trigger paths are logged.
//!
//! Anyone can call any path under `/hooks/`: a scanner or a flood of
//! made-up paths would otherwise write a request-log entry (on AWS a
//! DynamoDB item) and an operational line each. Every such request is
//! counted (the inbound metric); the first [`PER_MINUTE`] of each minute
//! are logged as before, and the first one logged in a later minute says
//! how many were left out. What they cost the store is bounded by
//! [`PER_MINUTE`] entries a minute a process, whatever the traffic.

use std::sync::Mutex;

/// Requests to unknown paths logged a minute, a process.
pub const PER_MINUTE: u32 = 20;

/// The window and what it kept and left out.
#[derive(Debug, Default)]
pub struct Sampler {
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    minute: i64,
    kept: u32,
    dropped: u64,
}

/// Whether to log one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampled {
    /// Log it; `dropped_before` were left out in the windows before it.
    Keep { dropped_before: u64 },
    /// Count it only.
    Drop,
}

impl Sampler {
    /// Decides for a request received at `now_ms`. A clock that jumps, either
    /// way, starts a new window: a jump forward and back must not silence
    /// the log until the clock catches up (the budget stays 20 a window).
    pub fn sample(&self, now_ms: i64) -> Sampled {
        let minute = now_ms.div_euclid(60_000);
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut dropped_before = 0;
        if minute != w.minute {
            dropped_before = std::mem::take(&mut w.dropped);
            w.minute = minute;
            w.kept = 0;
        }
        if w.kept < PER_MINUTE {
            w.kept += 1;
            dropped_before += std::mem::take(&mut w.dropped);
            Sampled::Keep { dropped_before }
        } else {
            w.dropped += 1;
            Sampled::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_keeps_a_bounded_sample_a_minute_and_reports_the_rest() {
        let s = Sampler::default();
        let t0 = 1_800_000_000_000 / 60_000 * 60_000;
        let kept = (0..10_000).filter(|i| s.sample(t0 + i).ne(&Sampled::Drop)).count();
        assert_eq!(kept, PER_MINUTE as usize);
        // The next minute's first is kept and says how many were not.
        assert_eq!(s.sample(t0 + 60_000), Sampled::Keep { dropped_before: 10_000 - PER_MINUTE as u64 });
        assert_eq!(s.sample(t0 + 60_001), Sampled::Keep { dropped_before: 0 });
    }

    #[test]
    fn a_clock_that_jumps_ahead_and_back_does_not_silence_the_log() {
        let s = Sampler::default();
        let t0 = 1_800_000_000_000;
        assert!(matches!(s.sample(t0 + 86_400_000), Sampled::Keep { .. }), "a day ahead");
        for i in 0..PER_MINUTE {
            assert!(matches!(s.sample(t0 + i as i64), Sampled::Keep { .. }), "corrected: a new window");
        }
        assert_eq!(s.sample(t0 + 100), Sampled::Drop, "and its budget holds");
    }
}

//! Wrong credentials counted per client over the last minute: a client past
//! its share waits out the minute; everyone else is untouched. Time comes
//! in (`now`, ms), so the rule is tested without a clock. Bounded: at most
//! [`Tries::MAX_CLIENTS`] clients are remembered (the oldest failure goes
//! first), each with at most its share.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// The client an address is: itself, an IPv4 client seen through a
/// dual-stack listener (`::ffff:a.b.c.d`) as its IPv4 address, or an IPv6
/// one by its /64 (a host picks any address in its /64).
pub fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
        v4 => v4,
    }
}

/// Failed tries by client, over a sliding minute.
#[derive(Debug)]
pub struct Tries {
    per_minute: usize,
    failures: Mutex<HashMap<IpAddr, VecDeque<i64>>>,
}

impl Tries {
    /// The most clients remembered at once.
    pub const MAX_CLIENTS: usize = 10_000;

    /// `per_minute` wrong tries a client may make.
    pub fn new(per_minute: usize) -> Self {
        Tries { per_minute, failures: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<i64>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ip` may try at `now`: fewer than its share failed in the
    /// minute before. `None` (no address known) always may.
    pub fn may_try(&self, ip: Option<IpAddr>, now: i64) -> bool {
        let Some(ip) = ip.map(client) else { return true };
        let mut all = self.lock();
        let Some(mine) = all.get_mut(&ip) else { return true };
        while mine.front().is_some_and(|t| *t <= now - 60_000) {
            mine.pop_front();
        }
        if mine.is_empty() {
            all.remove(&ip);
            return true;
        }
        mine.len() < self.per_minute
    }

    /// Records a failed try of `ip` at `now`.
    pub fn failed(&self, ip: Option<IpAddr>, now: i64) {
        let Some(ip) = ip.map(client) else { return };
        let mut all = self.lock();
        if !all.contains_key(&ip) && all.len() >= Self::MAX_CLIENTS {
            all.retain(|_, f| f.back().is_some_and(|t| *t > now - 60_000));
            if all.len() >= Self::MAX_CLIENTS {
                let oldest = all.iter().min_by_key(|(_, f)| f.back().copied()).map(|(k, _)| *k);
                oldest.map(|k| all.remove(&k));
            }
        }
        let mine = all.entry(ip).or_default();
        if mine.len() >= self.per_minute {
            mine.pop_front();
        }
        mine.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_share_waits_the_minute_and_the_others_do_not() {
        let tries = Tries::new(3);
        let (a, b): (IpAddr, IpAddr) = ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap());
        for t in 0..3 {
            assert!(tries.may_try(Some(a), t));
            tries.failed(Some(a), t);
        }
        assert!(!tries.may_try(Some(a), 10), "past its share");
        assert!(tries.may_try(Some(b), 10), "another client is untouched");
        assert!(tries.may_try(None, 10), "no address: not counted");
        assert!(tries.may_try(Some(a), 60_001), "a minute after its first failure");
        // An IPv6 client is its /64.
        let (x, y): (IpAddr, IpAddr) = ("2001:db8::1".parse().unwrap(), "2001:db8::ffff:2".parse().unwrap());
        (0..3).for_each(|t| tries.failed(Some(x), t));
        assert!(!tries.may_try(Some(y), 10));
        // IPv4 clients through a dual-stack listener stay apart.
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(client(mapped), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_ne!(client("::ffff:203.0.113.8".parse().unwrap()), client(mapped));
    }

    #[test]
    fn the_clients_remembered_are_bounded() {
        let tries = Tries::new(2);
        for i in 0..(Tries::MAX_CLIENTS as u32 + 100) {
            tries.failed(Some(IpAddr::from(i.to_be_bytes())), 1);
        }
        assert!(tries.lock().len() <= Tries::MAX_CLIENTS);
    }
}

//! A per-container cache with a time to live and a bound: Lambda
//! containers live for minutes to hours, so what they read from DynamoDB or
//! Secrets Manager is kept for a while and read again after — but never
//! more of it than the bound, whatever the traffic. The keys can come from
//! callers (the ingress caches the flow of every trigger path it is asked
//! for, unknown paths included, so a 404 costs one read and then nothing),
//! so a flood of distinct keys must not grow the container's memory: the
//! cache holds at most `max_bytes` of keys (each entry weighs its key's
//! length plus a fixed [`ENTRY_OVERHEAD`]) and evicts by quick_cache's
//! CLOCK-Pro policy, which keeps entries that are asked for again (a
//! partner's real route) through a scan of one-off keys.

use std::time::{Duration, Instant};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// What an entry weighs beyond its key: the map's slot, the timestamp, the
/// value (a pointer or a short string).
pub const ENTRY_OVERHEAD: u64 = 128;

#[derive(Debug, Clone, Copy)]
struct KeyWeight;

impl<V> Weighter<String, (Instant, V)> for KeyWeight {
    fn weight(&self, key: &String, _value: &(Instant, V)) -> u64 {
        key.len() as u64 + ENTRY_OVERHEAD
    }
}

/// Values by key, each fresh for `ttl` after it was put; at most
/// `max_bytes` of entries.
#[derive(Clone)]
pub struct TtlCache<V: Clone> {
    ttl: Duration,
    entries: std::sync::Arc<Cache<String, (Instant, V), KeyWeight>>,
}

impl<V: Clone> std::fmt::Debug for TtlCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TtlCache({} entries, {} bytes)", self.entries.len(), self.entries.weight())
    }
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, max_bytes: u64) -> Self {
        let items = (max_bytes / (ENTRY_OVERHEAD + 64)).max(16) as usize;
        TtlCache { ttl, entries: std::sync::Arc::new(Cache::with_weighter(items, max_bytes, KeyWeight)) }
    }

    /// The value of `key` if it is still fresh.
    pub fn get(&self, key: &str) -> Option<V> {
        self.entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v)
    }

    pub fn put(&self, key: impl Into<String>, value: V) {
        self.entries.insert(key.into(), (Instant::now(), value));
    }

    pub fn clear(&self) {
        self.entries.clear();
    }

    /// What the entries weigh now (bytes, as counted against the bound).
    pub fn weight(&self) -> u64 {
        self.entries.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire() {
        let c = TtlCache::new(Duration::from_millis(30), 1 << 20);
        c.put("a", 1);
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("b"), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get("a"), None);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_within_the_bound_and_a_key_in_use_survives_it() {
        let bound = 256 * 1024;
        let c: TtlCache<Option<u32>> = TtlCache::new(Duration::from_secs(60), bound);
        c.put("route:acme/orders", Some(1));
        for i in 0..100_000u32 {
            // Unknown paths, each asked for once (a miss is cached too).
            c.put(format!("route:acme/{i:08}/{}", "x".repeat(200)), None);
            if i % 50 == 0 {
                assert_eq!(c.get("route:acme/orders"), Some(Some(1)), "the real route is still there at {i}");
            }
            assert!(c.weight() <= bound, "{} bytes after {i} keys", c.weight());
        }
        assert_eq!(c.get("route:acme/orders"), Some(Some(1)));
    }
}

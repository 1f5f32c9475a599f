//! Token buckets per key (a user, a client address): `per_second` tokens a second, up to a burst
//! of `burst`; a request takes one or is refused with the time until the next.

use std::hash::Hash;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;

/// Buckets kept before idle ones are dropped (a full bucket is the same as none).
const PRUNE_ABOVE: usize = 65_536;

/// A rate limit per key.
#[derive(Debug)]
pub struct RateLimiter<K: Eq + Hash> {
    per_second: f64,
    burst: f64,
    buckets: DashMap<K, Bucket>,
    pruned: Mutex<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// `per_second` requests a second per key, `burst` at once (both at least 1 per second /
    /// 1 request).
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second: per_second.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            buckets: DashMap::new(),
            pruned: Mutex::new(Instant::now()),
        }
    }

    /// Takes a token for `key` at `now`, or answers how long until one is there.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        self.prune(now);
        let mut bucket = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }

    /// Drops the buckets that have refilled (at most once a second, and only when many).
    fn prune(&self, now: Instant) {
        if self.buckets.len() <= PRUNE_ABOVE {
            return;
        }
        let Some(mut pruned) = self.pruned.try_lock() else {
            return;
        };
        if now.saturating_duration_since(*pruned) < Duration::from_secs(1) {
            return;
        }
        *pruned = now;
        let refill = Duration::from_secs_f64(self.burst / self.per_second);
        self.buckets
            .retain(|_, bucket| now.saturating_duration_since(bucket.at) < refill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let limiter = RateLimiter::new(2.0, 2.0);
        let t0 = Instant::now();
        assert!(limiter.check(&"ann", t0).is_ok());
        assert!(limiter.check(&"ann", t0).is_ok());
        let wait = limiter.check(&"ann", t0).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        // Another key has its own bucket.
        assert!(limiter.check(&"bob", t0).is_ok());
        // Half a second later, one token is back.
        let later = t0 + Duration::from_millis(500);
        assert!(limiter.check(&"ann", later).is_ok());
        assert!(limiter.check(&"ann", later).is_err());
    }
}

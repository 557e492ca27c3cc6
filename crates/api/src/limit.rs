//! Rate limits: one token bucket per client address and one per token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use twinshield_shield_macros::diversify;

/// Buckets kept before idle ones are dropped (bounds memory under a flood
/// of addresses).
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key: `rate` requests per second sustained, bursts of
/// `burst`.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[diversify]
impl RateLimit {
    /// A limiter allowing `rate` requests per second per key, in bursts of
    /// up to `burst`.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimit {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket; `false` if it is empty.
    pub fn allow(&self, key: &str) -> bool {
        self.allow_at(key, Instant::now())
    }

    fn allow_at(&self, key: &str, now: Instant) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= MAX_BUCKETS {
                // Every bucket is busy: a flood; refuse newcomers.
                return false;
            }
        }
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.rate;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_the_sustained_rate_holds_per_key() {
        let l = RateLimit::new(10.0, 20.0);
        let t0 = Instant::now();
        assert_eq!((0..30).filter(|_| l.allow_at("a", t0)).count(), 20);
        assert!(l.allow_at("b", t0), "another key has its own bucket");
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..30).filter(|_| l.allow_at("a", t1)).count(), 5);
    }
}

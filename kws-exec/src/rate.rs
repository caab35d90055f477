//! Per-user token buckets: `rate` tokens a second, at most `burst` saved up.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use kws_core::OwnerId;

use crate::error::ConfigError;

/// A token bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// The most tokens a bucket holds (and a new user starts with).
    pub burst: u32,
}

impl Default for RateLimit {
    /// 5 jobs a second, bursts of 20.
    fn default() -> Self {
        Self { per_second: 5.0, burst: 20 }
    }
}

impl RateLimit {
    /// Checks the rate is positive and finite and the burst at least one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(ConfigError::OutOfRange {
                setting: "rate.per_second",
                value: self.per_second.to_string(),
                expected: "a positive finite number",
            });
        }
        if self.burst == 0 {
            return Err(ConfigError::OutOfRange {
                setting: "rate.burst",
                value: "0".to_owned(),
                expected: "at least 1",
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets of all users. Pure logic: the caller passes the time.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    buckets: HashMap<OwnerId, Bucket>,
}

/// Past this many buckets, full ones (users idle long enough) are dropped.
const PRUNE_ABOVE: usize = 10_000;

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self { limit, buckets: HashMap::new() }
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.limit.per_second).min(f64::from(self.limit.burst))
    }

    /// Takes one token of `user`'s, or says how long until one is there.
    pub(crate) fn try_take(&mut self, user: &OwnerId, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() > PRUNE_ABOVE {
            let burst = f64::from(self.limit.burst);
            let limiter = &*self;
            let full: Vec<OwnerId> = limiter
                .buckets
                .iter()
                .filter(|(_, b)| limiter.refilled(**b, now) >= burst)
                .map(|(u, _)| u.clone())
                .collect();
            for user in full {
                self.buckets.remove(&user);
            }
        }
        let start = Bucket { tokens: f64::from(self.limit.burst), at: now };
        let bucket = self.buckets.get(user).copied().unwrap_or(start);
        let tokens = self.refilled(bucket, now);
        if tokens >= 1.0 {
            self.buckets.insert(user.clone(), Bucket { tokens: tokens - 1.0, at: now });
            Ok(())
        } else {
            self.buckets.insert(user.clone(), Bucket { tokens, at: now });
            Err(Duration::from_secs_f64((1.0 - tokens) / self.limit.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut limiter = RateLimiter::new(RateLimit { per_second: 2.0, burst: 3 });
        let alice = OwnerId::parse("alice").expect("valid");
        let bob = OwnerId::parse("bob").expect("valid");
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.try_take(&alice, t0).expect("within the burst");
        }
        let wait = limiter.try_take(&alice, t0).expect_err("burst spent");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        limiter.try_take(&bob, t0).expect("users have their own buckets");
        limiter.try_take(&alice, t0 + Duration::from_millis(500)).expect("refilled one");
        limiter.try_take(&alice, t0 + Duration::from_millis(500)).expect_err("only one");
        // A long idle time refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            limiter.try_take(&alice, later).expect("burst again");
        }
        limiter.try_take(&alice, later).expect_err("not more than the burst");
    }

    #[test]
    fn bad_settings_are_refused() {
        for limit in [
            RateLimit { per_second: 0.0, burst: 1 },
            RateLimit { per_second: f64::NAN, burst: 1 },
            RateLimit { per_second: f64::INFINITY, burst: 1 },
            RateLimit { per_second: 1.0, burst: 0 },
        ] {
            assert!(limit.validate().is_err(), "{limit:?}");
        }
    }
}

//! Limits on how often something may happen: fixed windows per key (logins,
//! registrations) and a token bucket per socket (requests).

use dashmap::DashMap;
use std::time::{Duration, Instant};

/// Counts events per key in fixed windows: at most `limit` per `window`.
///
/// Used for login attempts (per account, per address) and registrations (per address).
/// A limit of 0 turns it off. Old windows are swept when the map grows, so memory stays
/// bounded by the number of distinct keys seen in one window.
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    /// key → (window start, events in it). DashMap: short per-shard locks, never held
    /// across an await.
    counts: DashMap<String, (Instant, u32)>,
}

impl RateLimiter {
    /// A limiter allowing `limit` events per `window` per key; 0 = unlimited.
    pub fn new(limit: u32, window: Duration) -> RateLimiter {
        RateLimiter { limit, window, counts: DashMap::new() }
    }

    /// Counts one event for `key`; `Err(wait)` if over the limit.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        if self.counts.len() > 10_000 {
            self.counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let mut entry = self.counts.entry(key.to_string()).or_insert((now, 0));
        let (start, count) = &mut *entry;
        if now.duration_since(*start) >= self.window {
            *start = now;
            *count = 0;
        }
        if *count >= self.limit {
            return Err(self.window.saturating_sub(now.duration_since(*start)));
        }
        *count += 1;
        Ok(())
    }
}

/// A token bucket for one socket's requests: `rate` per second with a `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` 0 turns the bucket off.
    pub fn new(rate: f64, burst: f64) -> TokenBucket {
        TokenBucket { rate, burst: burst.max(1.0), tokens: burst.max(1.0), last: Instant::now() }
    }

    /// Takes one token; `Err(wait)` says how long until one is free.
    pub fn take(&mut self) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_counts_per_key_and_window() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_err());
        assert!(limiter.check("b").is_ok());
        let off = RateLimiter::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            assert!(off.check("a").is_ok());
        }
    }

    #[test]
    fn token_bucket_allows_a_burst_then_refuses() {
        let mut bucket = TokenBucket::new(1.0, 3.0);
        for _ in 0..3 {
            assert!(bucket.take().is_ok());
        }
        let wait = bucket.take().unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        let mut off = TokenBucket::new(0.0, 1.0);
        for _ in 0..100 {
            assert!(off.take().is_ok());
        }
    }
}

//! Limits on how often something may happen. Every keyed limit forgets idle keys when
//! `forget_idle` runs (the server calls it on a timer), so an attacker who invents keys
//! costs memory only for as long as the keys are fresh.
//!
//! - [`KeyedLimit`]: a rate per key (GCRA, from `governor`): login attempts per client
//!   address, registrations per address, requests per account.
//! - [`Bucket`]: one socket's own request rate.
//! - [`Failures`]: failed attempts per key in a window. A success clears the key, so
//!   only failures count: the hard login limit per (account, address) is one.

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

/// The quota "`count` per `period`, all at once if need be"; `None` when `count` is 0.
fn quota(count: u32, period: Duration) -> Option<Quota> {
    let burst = NonZeroU32::new(count)?;
    Quota::with_period(period / count).map(|quota| quota.allow_burst(burst))
}

/// The quota "`rate` per second, `burst` at once"; `None` when the rate is 0 (off).
fn rate_quota(rate: f64, burst: u32) -> Option<Quota> {
    if !(rate > 0.0 && rate.is_finite()) {
        return None;
    }
    let burst = NonZeroU32::new(burst.max(1)).expect("at least one");
    Quota::with_period(Duration::from_secs_f64(1.0 / rate)).map(|quota| quota.allow_burst(burst))
}

/// At most `count` events per `window` for each key; 0 turns it off.
pub struct KeyedLimit<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
}

impl<K: Hash + Eq + Clone> KeyedLimit<K> {
    /// `count` per `window` per key (a burst of `count`, then one per `window / count`).
    pub fn new(count: u32, window: Duration) -> KeyedLimit<K> {
        KeyedLimit { limiter: quota(count, window.max(Duration::from_millis(1))).map(governor::RateLimiter::keyed) }
    }

    /// `rate` per second per key on average, `burst` at once; rate 0 is off.
    pub fn rate(rate: f64, burst: u32) -> KeyedLimit<K> {
        KeyedLimit { limiter: rate_quota(rate, burst).map(governor::RateLimiter::keyed) }
    }

    /// Counts one event for `key`; `Err(wait)` if it is over the limit.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Drops the keys whose limit is back to full.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, |limiter| limiter.len())
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One socket's requests: `rate` per second on average, `burst` at once; rate 0 is off.
pub struct Bucket {
    limiter: Option<DefaultDirectRateLimiter>,
}

impl Bucket {
    /// A bucket that starts full.
    pub fn new(rate: f64, burst: u32) -> Bucket {
        Bucket { limiter: rate_quota(rate, burst).map(governor::RateLimiter::direct) }
    }

    /// Takes one request; `Err(wait)` says how long until one is allowed.
    pub fn take(&self) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check().map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// Failures per key in a window that starts at the first one: at `limit` failures the
/// key is refused until the window ends; a success clears it. `limit` 0 never refuses
/// (the count still grows, for a delay that grows with it).
pub struct Failures<K: Hash + Eq> {
    limit: u32,
    window: Duration,
    /// key → (first failure of the window, failures in it). Short per-shard locks.
    counts: DashMap<K, (Instant, u32)>,
}

impl<K: Hash + Eq> Failures<K> {
    /// Refuses a key after `limit` failures within `window` (0 = never refuses).
    pub fn new(limit: u32, window: Duration) -> Failures<K> {
        Failures { limit, window, counts: DashMap::new() }
    }

    /// Failures of `key` in its current window.
    pub fn count(&self, key: &K) -> u32 {
        match self.counts.get(key) {
            Some(entry) if entry.0.elapsed() < self.window => entry.1,
            _ => 0,
        }
    }

    /// How long `key` is still refused, if it reached the limit.
    pub fn refused(&self, key: &K) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let entry = self.counts.get(key)?;
        let (start, count) = *entry;
        let elapsed = start.elapsed();
        (count >= self.limit && elapsed < self.window).then(|| self.window - elapsed)
    }

    /// Counts a failure of `key`; returns the failures in its window now.
    pub fn failed(&self, key: K) -> u32 {
        let now = Instant::now();
        let mut entry = self.counts.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1
    }

    /// A success: the key starts afresh.
    pub fn succeeded(&self, key: &K) {
        self.counts.remove(key);
    }

    /// Drops the keys whose window has passed.
    pub fn forget_idle(&self) {
        self.counts.retain(|_, (start, _)| start.elapsed() < self.window);
        self.counts.shrink_to_fit();
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_limit_counts_per_key_and_forgets_idle_keys() {
        let limit = KeyedLimit::new(2, Duration::from_secs(60));
        assert!(limit.check(&"a").is_ok());
        assert!(limit.check(&"a").is_ok());
        let wait = limit.check(&"a").unwrap_err();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30), "{wait:?}");
        assert!(limit.check(&"b").is_ok(), "another key has its own budget");
        assert_eq!(limit.len(), 2);
        let off = KeyedLimit::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            assert!(off.check(&"a").is_ok());
        }
        assert!(off.is_empty());
        // A budget that refills at once is forgotten as soon as it is full again.
        let quick = KeyedLimit::new(1000, Duration::from_millis(1));
        for n in 0..100 {
            quick.check(&n).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
        quick.forget_idle();
        assert!(quick.is_empty(), "{} keys kept", quick.len());
    }

    #[test]
    fn bucket_allows_a_burst_then_refuses() {
        let bucket = Bucket::new(1.0, 3);
        for _ in 0..3 {
            assert!(bucket.take().is_ok());
        }
        let wait = bucket.take().unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        let off = Bucket::new(0.0, 1);
        for _ in 0..100 {
            assert!(off.take().is_ok());
        }
    }

    #[test]
    fn failures_refuse_at_the_limit_and_a_success_clears_them() {
        let failures = Failures::new(3, Duration::from_secs(60));
        for n in 1..=2 {
            assert_eq!(failures.failed("k"), n);
            assert_eq!(failures.refused(&"k"), None);
        }
        failures.failed("k");
        assert!(failures.refused(&"k").is_some_and(|wait| wait > Duration::from_secs(59)));
        assert_eq!(failures.refused(&"other"), None);
        failures.succeeded(&"k");
        assert_eq!((failures.refused(&"k"), failures.count(&"k")), (None, 0));
        // Windows end, and ended ones are forgotten.
        let short = Failures::new(1, Duration::from_millis(1));
        short.failed("k");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(short.refused(&"k"), None);
        short.forget_idle();
        assert!(short.is_empty());
    }
}

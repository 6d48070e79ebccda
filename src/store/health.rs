//! Whether writes are getting through: the state behind `/healthz` and the store's
//! write-failure metrics.
//!
//! Every write transaction of a store reports its end here: a commit that succeeded, or
//! a failure anywhere inside (begin, statement, commit, rollback). From the first failure
//! until the next successful commit the store is *failing*, and its health check answers
//! so; the backend's writer retries on its own while failing, so the server recovers
//! without anyone's help when the disk has room again.

use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Shared by a store's write paths and its health check.
pub struct WriteHealth {
    /// Set by a failed write, cleared by a successful commit.
    failing: AtomicBool,
    /// When the last commit succeeded, in milliseconds since `started`, plus one (0 =
    /// never), so a fresh store must prove itself before it counts as recently proven.
    last_commit_ms: AtomicU64,
    started: Instant,
    /// Woken by every failure, so the writer starts retrying without waiting for work.
    failures: Notify,
    metrics: Arc<Metrics>,
}

impl WriteHealth {
    /// Health for a freshly opened store: not failing, nothing proven yet.
    pub fn new(metrics: Arc<Metrics>) -> WriteHealth {
        metrics.store_writable.set(1);
        WriteHealth {
            failing: AtomicBool::new(false),
            last_commit_ms: AtomicU64::new(0),
            started: Instant::now(),
            failures: Notify::new(),
            metrics,
        }
    }

    /// A write transaction committed.
    pub fn committed(&self) {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        self.last_commit_ms.store(now, Relaxed);
        if self.failing.swap(false, Relaxed) {
            self.metrics.store_writable.set(1);
            tracing::warn!("the database takes writes again");
        }
    }

    /// A write transaction failed; `cause` goes to the log on the first failure of a run.
    pub fn failed(&self, cause: &dyn std::fmt::Display) {
        self.metrics.store_commit_failures.inc();
        // A stored permit if nobody waits yet: a failure is never missed.
        self.failures.notify_one();
        if !self.failing.swap(true, Relaxed) {
            self.metrics.store_writable.set(0);
            tracing::error!(error = %cause, "the database refuses writes; every write is answered `internal` until one succeeds");
        }
    }

    /// Whether the last write failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Relaxed)
    }

    /// Resolves `every` after writes started failing (at once if they are failing now,
    /// after `every` more if they still are): when the writer should try again.
    pub async fn retry_due(&self, every: Duration) {
        while !self.is_failing() {
            self.failures.notified().await;
        }
        tokio::time::sleep(every).await;
    }

    /// Not failing, and a commit succeeded within `age`.
    pub fn proven_within(&self, age: Duration) -> bool {
        let last = self.last_commit_ms.load(Relaxed);
        !self.is_failing()
            && last != 0
            && self.started.elapsed().as_millis() as u64 + 1 - last <= age.as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_from_the_first_failure_until_the_next_commit() {
        let metrics = Arc::new(Metrics::default());
        let health = WriteHealth::new(metrics.clone());
        assert!(!health.is_failing());
        assert!(!health.proven_within(Duration::from_secs(60)), "nothing proven before the first commit");
        health.committed();
        assert!(health.proven_within(Duration::from_secs(60)));
        health.failed(&"disk full");
        health.failed(&"disk full");
        assert!(health.is_failing());
        assert!(!health.proven_within(Duration::from_secs(60)), "a failure outweighs an earlier commit");
        assert_eq!(metrics.store_commit_failures.get(), 2);
        assert_eq!(metrics.store_writable.get(), 0);
        health.committed();
        assert!(!health.is_failing());
        assert_eq!(metrics.store_writable.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_anywhere_wakes_the_retry_which_waits_its_interval() {
        let health = Arc::new(WriteHealth::new(Arc::new(Metrics::default())));
        let every = Duration::from_secs(1);
        let waiting = tokio::spawn({
            let health = health.clone();
            async move {
                health.retry_due(every).await;
                tokio::time::Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished(), "no retry while writes succeed");
        let failed_at = tokio::time::Instant::now();
        health.failed(&"locked");
        let due = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!(due - failed_at, every);
        // Still failing: the next retry is one interval later, not at once.
        let start = tokio::time::Instant::now();
        health.retry_due(every).await;
        assert_eq!(tokio::time::Instant::now() - start, every);
    }
}

//! Counters and gauges served at `/metrics` in the Prometheus text format.
//!
//! A handful of relaxed atomics: cheap enough to bump on the hot path, and no metrics
//! library to learn. Each figure's help text says what a rising value means.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the store commit latency histogram buckets.
const COMMIT_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// Every figure the server exports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Authenticated WebSocket sessions open now.
    pub sockets_open: AtomicU64,
    /// WebSocket connections accepted since start.
    pub sockets_accepted: AtomicU64,
    /// Messages stored since start: committed, new (deduplicated resends and messages
    /// of failed group commits excluded).
    pub messages_stored: AtomicU64,
    /// Write transactions that failed (at begin, in a statement, at commit or rollback).
    pub store_commit_failures: AtomicU64,
    /// 1 from a failed write until the next successful commit, else 0.
    pub store_failing: AtomicU64,
    /// Frames queued to sockets by the hub (one per recipient).
    pub deliveries: AtomicU64,
    /// Sockets closed because their outbox was full (4008).
    pub outbox_overflows: AtomicU64,
    /// Requests answered with an error, any code.
    pub request_errors: AtomicU64,
    /// Gaps in a room's seqs the hub saw (a message still on its way, or lost).
    pub bus_gaps: AtomicU64,
    /// Of those, the ones read back from the store (the bus did not bring them in time).
    pub bus_gap_reads: AtomicU64,
    commit_buckets: [AtomicU64; COMMIT_BUCKETS.len()],
    commit_count: AtomicU64,
    commit_sum_us: AtomicU64,
}

impl Metrics {
    /// Records one group commit that took `elapsed` and stored `n_messages` new
    /// messages (0 when it failed).
    pub fn store_commit(&self, elapsed: Duration, n_messages: usize) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in COMMIT_BUCKETS.iter().zip(&self.commit_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.commit_count.fetch_add(1, Relaxed);
        self.commit_sum_us.fetch_add(elapsed.as_micros() as u64, Relaxed);
        self.messages_stored.fetch_add(n_messages as u64, Relaxed);
    }

    /// The Prometheus text exposition of every figure.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut figure = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        figure(
            "alongside_sockets_open",
            "gauge",
            "Authenticated WebSocket sessions open now.",
            self.sockets_open.load(Relaxed),
        );
        figure(
            "alongside_sockets_accepted_total",
            "counter",
            "WebSocket connections accepted since start.",
            self.sockets_accepted.load(Relaxed),
        );
        figure(
            "alongside_messages_stored_total",
            "counter",
            "Chat messages durably stored since start.",
            self.messages_stored.load(Relaxed),
        );
        figure(
            "alongside_store_commit_failures_total",
            "counter",
            "Write transactions that failed; none of their changes was stored or acknowledged.",
            self.store_commit_failures.load(Relaxed),
        );
        figure(
            "alongside_store_writable",
            "gauge",
            "1 while writes succeed; 0 from a failed write until the next successful commit.",
            1 - self.store_failing.load(Relaxed).min(1),
        );
        figure(
            "alongside_deliveries_total",
            "counter",
            "Event frames queued to sockets.",
            self.deliveries.load(Relaxed),
        );
        figure(
            "alongside_outbox_overflows_total",
            "counter",
            "Sockets closed with 4008 because they read too slowly.",
            self.outbox_overflows.load(Relaxed),
        );
        figure(
            "alongside_request_errors_total",
            "counter",
            "WebSocket requests answered with an error.",
            self.request_errors.load(Relaxed),
        );
        figure(
            "alongside_bus_gaps_total",
            "counter",
            "Gaps in a room's seqs seen on arrival from the bus (several nodes publish in another order than they commit).",
            self.bus_gaps.load(Relaxed),
        );
        figure(
            "alongside_bus_gap_reads_total",
            "counter",
            "Gaps the bus did not close in time, read back from the store; a rising rate means Redis loses messages.",
            self.bus_gap_reads.load(Relaxed),
        );
        let name = "alongside_store_commit_seconds";
        let _ = writeln!(out, "# HELP {name} Latency of group commits of messages, failed ones included.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, bucket) in COMMIT_BUCKETS.iter().zip(&self.commit_buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", bucket.load(Relaxed));
        }
        let count = self.commit_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.commit_sum_us.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.store_commit(Duration::from_micros(800), 3);
        metrics.store_commit(Duration::from_millis(20), 1);
        let text = metrics.render();
        assert!(text.contains("alongside_store_commit_seconds_bucket{le=\"0.001\"} 1"), "{text}");
        assert!(text.contains("alongside_store_commit_seconds_bucket{le=\"0.025\"} 2"), "{text}");
        assert!(text.contains("alongside_store_commit_seconds_count 2"), "{text}");
        assert!(text.contains("alongside_messages_stored_total 4"), "{text}");
    }
}

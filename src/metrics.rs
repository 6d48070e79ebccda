//! The figures served at `/metrics`, kept with the Prometheus project's own client
//! library and encoded in the OpenMetrics text format that Prometheus scrapes.
//!
//! Every name starts `alongside_`; counters end `_total`, durations are histograms in
//! seconds. Plain counters and gauges are single relaxed atomics, cheap enough for the
//! per-delivery path; the labelled families (request types, login outcomes) take a
//! read lock and a hash per use, which is fine per request. `deploy/grafana.json` draws
//! exactly these names, and a test checks that every one it draws is served.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets: from a quick SQLite commit (half a
/// millisecond) to a request that waited on a stalled disk.
const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The label of the per-request-type figures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The request's `type` (one of a fixed set: unknown types are refused before).
    pub r#type: &'static str,
}

/// How a login ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A token was issued.
    Success,
    /// Wrong user name or password.
    Failure,
    /// Refused by a rate limit or the per-address failure limit, before any check.
    Refused,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Registers `metric` under `name` (after the `alongside_` prefix) and returns it.
fn add<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// [`add`] for a duration in seconds (the name gains `_seconds`).
fn add_seconds<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register_with_unit(name, help, Unit::Seconds, metric.clone());
    metric
}

/// Every figure the server exports.
pub struct Metrics {
    registry: Registry,
    /// Authenticated WebSocket sessions open now.
    pub sockets_open: Gauge,
    /// WebSocket connections accepted since start.
    pub sockets_accepted: Counter,
    /// Messages stored since start: committed, new (deduplicated resends and messages
    /// of failed group commits excluded).
    pub messages_stored: Counter,
    /// Write transactions that failed (at begin, in a statement, at commit or rollback).
    pub store_commit_failures: Counter,
    /// 0 from a failed write until the next successful commit, else 1.
    pub store_writable: Gauge,
    /// Frames queued to sockets by the hub (one per recipient).
    pub deliveries: Counter,
    /// Sockets closed because their outbox was full (4008).
    pub outbox_overflows: Counter,
    /// Gaps in a room's seqs the hub saw (a message still on its way, or lost).
    pub bus_gaps: Counter,
    /// Of those, the ones read back from the store (the bus did not bring them in time).
    pub bus_gap_reads: Counter,
    /// Round trips of batches published to the bus between nodes.
    pub bus_publish_seconds: Histogram,
    /// Care alerts raised (a crisis phrase, a referral).
    pub care_alerts_raised: Counter,
    /// Care alerts a moderator acknowledged.
    pub care_alerts_acknowledged: Counter,
    store_commit_seconds: Histogram,
    requests: Family<RequestLabels, Counter>,
    request_errors: Family<RequestLabels, Counter>,
    request_seconds: Family<RequestLabels, Histogram, fn() -> Histogram>,
    logins: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Every figure at zero (the store counts as writable until a write fails).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("alongside");
        let r = &mut registry;
        let metrics = Metrics {
            sockets_open: add(r, "sockets_open", "Authenticated WebSocket sessions open now", Gauge::default()),
            sockets_accepted: add(r, "sockets_accepted", "WebSocket connections accepted", Counter::default()),
            messages_stored: add(r, "messages_stored", "Chat messages durably stored", Counter::default()),
            store_commit_failures: add(
                r,
                "store_commit_failures",
                "Write transactions that failed; none of their changes was stored or acknowledged",
                Counter::default(),
            ),
            store_writable: add(
                r,
                "store_writable",
                "1 while writes succeed; 0 from a failed write until the next successful commit",
                Gauge::default(),
            ),
            store_commit_seconds: add_seconds(
                r,
                "store_commit",
                "Latency of group commits of messages, failed ones included",
                latency(),
            ),
            deliveries: add(r, "deliveries", "Event frames queued to sockets", Counter::default()),
            outbox_overflows: add(
                r,
                "outbox_overflows",
                "Sockets closed with 4008 because they read too slowly",
                Counter::default(),
            ),
            requests: add(r, "requests", "WebSocket requests answered, by type", Family::default()),
            request_errors: add(
                r,
                "request_errors",
                "WebSocket requests answered with an error, by type (`refused`: frames turned away unhandled: not JSON, an unknown type, over the rate limit)",
                Family::default(),
            ),
            request_seconds: add_seconds(
                r,
                "request",
                "Time from reading a WebSocket request to queueing its answer, by type",
                Family::new_with_constructor(latency),
            ),
            logins: add(
                r,
                "logins",
                "Logins by outcome: success, failure (wrong name or password) or refused (a limit)",
                Family::default(),
            ),
            bus_gaps: add(
                r,
                "bus_gaps",
                "Gaps in a room's seqs seen on arrival from the bus (several nodes publish in another order than they commit)",
                Counter::default(),
            ),
            bus_gap_reads: add(
                r,
                "bus_gap_reads",
                "Gaps the bus did not close in time, read back from the store; a rising rate means Redis loses messages",
                Counter::default(),
            ),
            bus_publish_seconds: add_seconds(
                r,
                "bus_publish",
                "Round trip of one batch of messages published to the bus between nodes",
                latency(),
            ),
            care_alerts_raised: add(
                r,
                "care_alerts_raised",
                "Care alerts raised (crisis phrases and referrals)",
                Counter::default(),
            ),
            care_alerts_acknowledged: add(
                r,
                "care_alerts_acknowledged",
                "Care alerts a moderator acknowledged",
                Counter::default(),
            ),
            registry,
        };
        metrics.store_writable.set(1);
        // Every outcome shows from the start, so a dashboard's rate has a series at 0.
        for outcome in ["success", "failure", "refused"] {
            let _ = metrics.logins.get_or_create(&OutcomeLabels { outcome });
        }
        metrics
    }

    /// Records one group commit that took `elapsed` and stored `n_messages` new
    /// messages (0 when it failed).
    pub fn store_commit(&self, elapsed: Duration, n_messages: usize) {
        self.store_commit_seconds.observe(elapsed.as_secs_f64());
        self.messages_stored.inc_by(n_messages as u64);
    }

    /// Records one answered request of type `kind` that took `elapsed`.
    pub fn request(&self, kind: &'static str, elapsed: Duration, failed: bool) {
        let labels = RequestLabels { r#type: kind };
        self.requests.get_or_create(&labels).inc();
        if failed {
            self.request_errors.get_or_create(&labels).inc();
        }
        self.request_seconds.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// Records a frame turned away unhandled (not JSON, an unknown type, over a limit).
    pub fn request_refused(&self) {
        self.request_errors.get_or_create(&RequestLabels { r#type: "refused" }).inc();
    }

    /// Records how a login ended.
    pub fn login(&self, outcome: LoginOutcome) {
        let outcome = match outcome {
            LoginOutcome::Success => "success",
            LoginOutcome::Failure => "failure",
            LoginOutcome::Refused => "refused",
        };
        self.logins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The OpenMetrics text exposition of every figure.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_names_conventional() {
        let metrics = Metrics::default();
        metrics.store_commit(Duration::from_micros(800), 3);
        metrics.store_commit(Duration::from_millis(20), 1);
        metrics.request("send", Duration::from_millis(2), false);
        metrics.request("send", Duration::from_millis(3), true);
        metrics.login(LoginOutcome::Failure);
        let text = metrics.render();
        assert!(text.contains("alongside_store_commit_seconds_bucket{le=\"0.001\"} 1"), "{text}");
        assert!(text.contains("alongside_store_commit_seconds_bucket{le=\"0.025\"} 2"), "{text}");
        assert!(text.contains("alongside_store_commit_seconds_count 2"), "{text}");
        assert!(text.contains("alongside_messages_stored_total 4"), "{text}");
        assert!(text.contains("alongside_requests_total{type=\"send\"} 2"), "{text}");
        assert!(text.contains("alongside_request_errors_total{type=\"send\"} 1"), "{text}");
        assert!(text.contains("alongside_request_seconds_count{type=\"send\"} 2"), "{text}");
        assert!(text.contains("alongside_logins_total{outcome=\"failure\"} 1"), "{text}");
        assert!(text.contains("alongside_logins_total{outcome=\"success\"} 0"), "{text}");
        assert!(text.contains("alongside_store_writable 1"), "{text}");
    }
}

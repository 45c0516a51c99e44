//! Prometheus metrics for `/metrics`: what an operator graphs and alerts on.
//!
//! Counters per rule (`rule_id` label) for runs, failures, alerts created, duplicates, alerts
//! held back by the cap and gaps; histograms (no per-rule label, to keep the series count
//! bounded with a thousand rules) for run duration and for the latency of every search and
//! bulk request. The [`metered`](super::metered) decorators feed them from the engine's
//! ports, so neither the engine nor the Elasticsearch adapter knows about Prometheus.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde::Deserialize;

/// The content type of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub rule_id: String,
    /// `succeeded`, `partial failure` or `failed`, as in the execution log.
    pub status: String,
}

/// What one run did, read from the execution record the engine writes (the fields of
/// `engine::record::ExecutionRecord` that metrics need; unknown fields are ignored so the
/// record can grow).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RunFacts {
    pub rule_id: String,
    pub status: String,
    pub duration_ms: u64,
    pub created: u64,
    pub duplicates: u64,
    pub left_over: u64,
    pub dead_lettered: u64,
    pub failed_writes: u64,
    pub gaps: Vec<serde_json::Value>,
    pub gap_duration_ms: u64,
}

pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    failures: Family<RuleLabels, Counter>,
    alerts_created: Family<RuleLabels, Counter>,
    duplicates: Family<RuleLabels, Counter>,
    capped: Family<RuleLabels, Counter>,
    dead_lettered: Family<RuleLabels, Counter>,
    failed_writes: Family<RuleLabels, Counter>,
    gaps: Family<RuleLabels, Counter>,
    gap_seconds: Family<RuleLabels, Counter<f64>>,
    run_duration: Histogram,
    search_latency: Histogram,
    bulk_latency: Histogram,
    port_errors: Family<PortLabels, Counter>,
    leases_held: Gauge,
    /// Serializes encoders: `Registry` encoding is read-only, but one scrape at a time keeps
    /// the output consistent between metrics.
    encode_lock: Mutex<()>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortLabels {
    /// `search`, `bulk`, `state`, `lease`.
    pub operation: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rule_runner");
        let runs = Family::<RunLabels, Counter>::default();
        let failures = Family::<RuleLabels, Counter>::default();
        let alerts_created = Family::<RuleLabels, Counter>::default();
        let duplicates = Family::<RuleLabels, Counter>::default();
        let capped = Family::<RuleLabels, Counter>::default();
        let dead_lettered = Family::<RuleLabels, Counter>::default();
        let failed_writes = Family::<RuleLabels, Counter>::default();
        let gaps = Family::<RuleLabels, Counter>::default();
        let gap_seconds = Family::<RuleLabels, Counter<f64>>::default();
        // 10 ms .. ~5.5 min: a rule run is usually well under a second, the timeout is 5 min.
        let run_duration = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        // 1 ms .. ~33 s per request.
        let search_latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let bulk_latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let port_errors = Family::<PortLabels, Counter>::default();
        let leases_held = Gauge::default();

        registry.register("runs", "Rule runs, by rule and final status", runs.clone());
        registry.register("run_failures", "Rule runs that failed", failures.clone());
        registry.register("alerts_created", "Alerts written", alerts_created.clone());
        registry.register(
            "alerts_duplicate",
            "Matches not written because their alert exists already (dedup)",
            duplicates.clone(),
        );
        registry.register(
            "alerts_capped",
            "New alerts held back by max_signals, picked up by a later run",
            capped.clone(),
        );
        registry.register(
            "alerts_dead_lettered",
            "Alerts Elasticsearch refused for good, kept in the dead-letter index",
            dead_lettered.clone(),
        );
        registry.register(
            "alerts_write_failed",
            "Alerts whose write still failed after retries (retried by the next run)",
            failed_writes.clone(),
        );
        registry.register(
            "gaps",
            "Time ranges left unsearched beyond the catch-up limit",
            gaps.clone(),
        );
        registry.register_with_unit(
            "gap",
            "Length of the unsearched time ranges",
            Unit::Seconds,
            gap_seconds.clone(),
        );
        registry.register_with_unit(
            "run_duration",
            "Wall time of one rule run",
            Unit::Seconds,
            run_duration.clone(),
        );
        registry.register_with_unit(
            "search_duration",
            "Latency of one search request (a page of hits)",
            Unit::Seconds,
            search_latency.clone(),
        );
        registry.register_with_unit(
            "bulk_duration",
            "Latency of one bulk create of alerts",
            Unit::Seconds,
            bulk_latency.clone(),
        );
        registry.register(
            "port_errors",
            "Failed calls to Elasticsearch, by operation",
            port_errors.clone(),
        );
        registry.register(
            "leases_held",
            "Rule leases this instance holds right now",
            leases_held.clone(),
        );
        Metrics {
            registry,
            runs,
            failures,
            alerts_created,
            duplicates,
            capped,
            dead_lettered,
            failed_writes,
            gaps,
            gap_seconds,
            run_duration,
            search_latency,
            bulk_latency,
            port_errors,
            leases_held,
            encode_lock: Mutex::new(()),
        }
    }

    pub fn record_run(&self, run: &RunFacts) {
        let rule = RuleLabels {
            rule_id: run.rule_id.clone(),
        };
        self.runs
            .get_or_create(&RunLabels {
                rule_id: run.rule_id.clone(),
                status: run.status.clone(),
            })
            .inc();
        if run.status == "failed" {
            self.failures.get_or_create(&rule).inc();
        }
        self.alerts_created.get_or_create(&rule).inc_by(run.created);
        self.duplicates.get_or_create(&rule).inc_by(run.duplicates);
        self.capped.get_or_create(&rule).inc_by(run.left_over);
        self.dead_lettered
            .get_or_create(&rule)
            .inc_by(run.dead_lettered);
        self.failed_writes
            .get_or_create(&rule)
            .inc_by(run.failed_writes);
        self.gaps.get_or_create(&rule).inc_by(run.gaps.len() as u64);
        self.gap_seconds
            .get_or_create(&rule)
            .inc_by(run.gap_duration_ms as f64 / 1000.0);
        self.run_duration.observe(run.duration_ms as f64 / 1000.0);
    }

    pub fn observe_search(&self, took: Duration) {
        self.search_latency.observe(took.as_secs_f64());
    }

    pub fn observe_bulk(&self, took: Duration) {
        self.bulk_latency.observe(took.as_secs_f64());
    }

    pub fn port_error(&self, operation: &str) {
        self.port_errors
            .get_or_create(&PortLabels {
                operation: operation.to_string(),
            })
            .inc();
    }

    pub fn set_leases_held(&self, held: usize) {
        self.leases_held.set(held as i64);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let _guard = self.encode_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        // Writing into a String cannot fail; an Err here would be a bug in an encoder.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("encoding metrics failed: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_shows_up_in_every_counter() {
        let metrics = Metrics::new();
        metrics.record_run(&RunFacts {
            rule_id: "r1".into(),
            status: "failed".into(),
            duration_ms: 1500,
            created: 3,
            duplicates: 2,
            left_over: 5,
            gaps: vec![serde_json::json!({})],
            gap_duration_ms: 60_000,
            ..Default::default()
        });
        metrics.observe_search(Duration::from_millis(20));
        metrics.observe_bulk(Duration::from_millis(40));
        let text = metrics.encode();
        for line in [
            "rule_runner_runs_total{rule_id=\"r1\",status=\"failed\"} 1",
            "rule_runner_run_failures_total{rule_id=\"r1\"} 1",
            "rule_runner_alerts_created_total{rule_id=\"r1\"} 3",
            "rule_runner_alerts_duplicate_total{rule_id=\"r1\"} 2",
            "rule_runner_alerts_capped_total{rule_id=\"r1\"} 5",
            "rule_runner_gaps_total{rule_id=\"r1\"} 1",
            "rule_runner_gap_seconds_total{rule_id=\"r1\"} 60.0",
            "rule_runner_run_duration_seconds_sum 1.5",
            "rule_runner_run_duration_seconds_count 1",
            "rule_runner_search_duration_seconds_count 1",
            "rule_runner_bulk_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}

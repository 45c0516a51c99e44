//! Tests for the `engine` area: scenarios over the in-memory source, sink and state store.
//! Time is injected (`now` per run, a manual or paused tokio clock for the scheduler), so
//! nothing here sleeps for real.

mod aggregating;
mod backfill;
mod eql;
mod failures;
mod properties;
mod runs;
mod scheduler;
mod slow;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use rule_runner::engine::memory::{MemorySink, MemorySource, MemoryStateStore};
use rule_runner::engine::shutdown::Shutdown;
use rule_runner::engine::{Engine, EngineConfig, ExecutionRecord, RuleState};
use rule_runner::rule::Rule;
use serde_json::{Value, json};

pub const FILEBEAT: &str = "filebeat-8.17.0-2025.01.01";
pub const CLOUDTRAIL: &str = ".ds-logs-aws.cloudtrail-default-2025.01.01-000001";
pub const RULE_ID: &str = "151d8f72-0747-11ef-a0c2-f661ea17fbcc";

/// 2025-01-01 at `h:m` UTC.
pub fn t(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, h, m, 0).unwrap()
}

pub fn ts(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The Public Invocation seed rule: every 10m over now-60m, 100 alerts per run.
pub fn seed_rule() -> Rule {
    serde_json::from_value(json!({
        "rule_id": RULE_ID,
        "name": "AWS Lambda Function Policy Updated to Allow Public Invocation",
        "type": "query", "language": "kuery",
        "query": "event.dataset: aws.cloudtrail and event.provider: lambda.amazonaws.com and event.outcome: success and event.action: AddPermission*",
        "index": ["filebeat-*", "logs-aws.cloudtrail-*"],
        "from": "now-60m", "to": "now", "interval": "10m", "max_signals": 100,
        "risk_score": 47, "severity": "medium", "version": 1, "enabled": true
    }))
    .unwrap()
}

/// A matching AddPermission event with CloudTrail's `event.id`, at `at`.
pub fn event(id: &str, at: DateTime<Utc>) -> Value {
    json!({
        "@timestamp": ts(at),
        "event": {"id": id, "dataset": "aws.cloudtrail", "provider": "lambda.amazonaws.com",
                  "outcome": "success", "action": "AddPermission20150331v2", "kind": "event"},
        "source": {"ip": "198.51.100.7"},
        "user": {"name": "attacker"}
    })
}

/// An engine over fresh in-memory ports.
pub struct Harness {
    pub source: Arc<MemorySource>,
    pub sink: Arc<MemorySink>,
    pub state: Arc<MemoryStateStore>,
    pub engine: Engine,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(EngineConfig::default())
    }

    pub fn with_config(config: EngineConfig) -> Harness {
        let source = Arc::new(MemorySource::new());
        let sink = Arc::new(MemorySink::new());
        let state = Arc::new(MemoryStateStore::new());
        let engine = Engine::new(source.clone(), sink.clone(), state.clone(), config);
        Harness {
            source,
            sink,
            state,
            engine,
        }
    }

    /// A second engine over the same source, sink and state: a restarted process.
    pub fn restarted(&self) -> Harness {
        let engine = Engine::new(
            self.source.clone(),
            self.sink.clone(),
            self.state.clone(),
            self.engine.config().clone(),
        );
        Harness {
            source: self.source.clone(),
            sink: self.sink.clone(),
            state: self.state.clone(),
            engine,
        }
    }

    /// Store CloudTrail event `id` at `at` in the CloudTrail data stream.
    pub fn add(&self, id: &str, at: DateTime<Utc>) {
        self.source
            .insert(CLOUDTRAIL, &format!("doc-{id}"), event(id, at));
    }

    pub async fn run(&self, rule: &Arc<Rule>, at: DateTime<Utc>) -> ExecutionRecord {
        self.engine
            .run_scheduled(rule, at, &Shutdown::never())
            .await
    }

    pub fn state_of(&self, rule: &Rule) -> RuleState {
        self.state
            .state(&rule.rule_id)
            .expect("the run saved state")
    }

    /// The `event.id`s alerted so far, sorted; each must appear once.
    pub fn alerted_event_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .sink
            .alerts()
            .iter()
            .map(|a| {
                a.document["kibana.alert.original_event.id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        ids.sort();
        ids
    }
}

/// `n` event ids `e000`, `e001`, ...
pub fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("e{i:03}")).collect()
}

//! The service against a real engine: the OpenSearch node of `tests/engine/` (built and
//! started here, as the tests do), or the cluster `ELASTICSEARCH_URL` names.
//!
//! `cargo bench --bench real_engine`
//!
//! - `run/shipped_rule`: one scheduled run of the Public Invocation rule end to end (field
//!   caps from cache, point in time, search, existing-id lookup, state and execution log
//!   saved) over the real datasets loaded with `--shift-to-now`, in steady state (its alerts
//!   written by an earlier run). Before criterion's figures it prints p50 and p95 of 100
//!   such runs.
//! - `bulk/1000_alerts`: one `_bulk` create of 1,000 new alert documents through the alert
//!   sink (throughput in alerts per second).
//!
//! Wall time: the engine runs on the same machine, so what is measured is the round trips
//! and the engine's work as much as rule-runner's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::elasticsearch::http::Method;
use chrono::Utc;
use criterion::{Criterion, Throughput};
use rule_runner::cloudtrail::{Flavor, discover};
use rule_runner::elasticsearch::templates;
use rule_runner::elasticsearch::{
    Call, ConnectionFlags, EsAlertSink, EsClient, EsEventSource, EsStateStore, IndexNames,
    ServiceConfig,
};
use rule_runner::engine::{AlertDoc, AlertSink, Engine, EngineConfig, RunStatus, Shutdown};
use rule_runner::ops::load::{self, LoadOptions, NoProgress};
use rule_runner::rule::shipped_rules;
use serde_json::json;

#[path = "../tests/engine/launch.rs"]
mod launch;

const PUBLIC_INVOCATION: &str = "151d8f72-0747-11ef-a0c2-f661ea17fbcc";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn main() {
    let (url, _node) = match std::env::var("ELASTICSEARCH_URL") {
        Ok(url) if !url.trim().is_empty() => (url, None),
        _ => {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-engine");
            match launch::start(&dir) {
                Ok(node) => (node.url.clone(), Some(node)),
                Err(why) => {
                    eprintln!(
                        "skipped: no search engine (set ELASTICSEARCH_URL, or install Java 17 and Maven): {why}"
                    );
                    return;
                }
            }
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let flags = ConnectionFlags {
        urls: vec![url],
        ..ConnectionFlags::default()
    };
    let config = ServiceConfig::load(&flags).expect("valid connection settings");
    let client = EsClient::from_config(&config).expect("a client");
    let info = runtime.block_on(client.info()).expect("the engine answers");
    eprintln!("engine: {} {}", info.product, info.version);

    let prefix = format!("rule-runner-bench-{}", uuid::Uuid::new_v4().simple());
    let names = IndexNames {
        alerts: format!("{prefix}-alerts"),
        state: format!("{prefix}-state"),
        executions: format!("{prefix}-executions"),
        dead_letter: format!("{prefix}-dead-letter"),
    };
    let stream = format!("logs-aws.cloudtrail-{}", prefix.replace('-', ""));
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    runtime.block_on(async {
        templates::setup(&client, &names).await.expect("setup");
        let files = discover(&[
            repo.join("tests/data/cloudtrail/stratus-red-team"),
            repo.join("tests/data/cloudtrail/invictus-ir"),
            repo.join("examples/cloudtrail"),
        ])
        .files;
        let opts = LoadOptions {
            index: stream.clone(),
            flavor: Flavor::Integration,
            shift_to_now: true,
            batch_size: 500,
            install_template: true,
            now: Utc::now(),
        };
        let summary = load::load(&client, files, &opts, &NoProgress)
            .await
            .expect("the datasets load");
        eprintln!("loaded {} documents into {stream}", summary.indexed);
        client
            .send_ok(&Call::new(
                "refresh",
                Method::Post,
                format!("/{stream}/_refresh"),
            ))
            .await
            .expect("refresh");
    });

    let sink = Arc::new(EsAlertSink::new(
        client.clone(),
        &names.alerts,
        &names.dead_letter,
    ));
    let engine = Engine::new(
        Arc::new(EsEventSource::new(client.clone())),
        sink.clone(),
        Arc::new(EsStateStore::new(
            client.clone(),
            &names.state,
            &names.executions,
        )),
        EngineConfig::default(),
    );
    let mut rule = (*shipped_rules()
        .runnable()
        .find(|r| r.rule.rule_id == PUBLIC_INVOCATION)
        .expect("the shipped rule")
        .rule)
        .clone();
    rule.index = vec![stream.clone()];
    let rule = Arc::new(rule);
    let run = || async {
        let record = engine
            .run_scheduled(&rule, Utc::now(), &Shutdown::never())
            .await;
        assert_eq!(record.status, RunStatus::Succeeded, "{record:#?}");
        record
    };
    let first = runtime.block_on(run());
    eprintln!(
        "first run: {} hits, {} alerts created",
        first.totals.hits, first.totals.created
    );

    let mut samples: Vec<Duration> = (0..100)
        .map(|_| {
            let start = Instant::now();
            runtime.block_on(run());
            start.elapsed()
        })
        .collect();
    samples.sort();
    eprintln!(
        "run/shipped_rule over 100 runs: p50 {:.1} ms, p95 {:.1} ms ({} hits each, all known alerts)",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.95).as_secs_f64() * 1e3,
        first.totals.hits
    );

    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    criterion.bench_function("run/shipped_rule", |b| {
        b.iter(|| runtime.block_on(run()));
    });
    let mut group = criterion.benchmark_group("bulk");
    group.throughput(Throughput::Elements(1000));
    let mut batch = 0u64;
    group.bench_function("1000_alerts", |b| {
        b.iter(|| {
            batch += 1;
            let docs: Vec<AlertDoc> = (0..1000)
                .map(|i| {
                    let id = format!("bench-{batch}-{i}");
                    AlertDoc {
                        id: id.clone(),
                        rule_id: PUBLIC_INVOCATION.into(),
                        event_time: Utc::now(),
                        document: json!({
                            "@timestamp": "2025-01-01T12:00:00.000Z",
                            "kibana.alert.uuid": id,
                            "kibana.alert.rule.name": "AWS Lambda Function Policy Updated to Allow Public Invocation",
                            "kibana.alert.severity": "medium",
                            "kibana.alert.risk_score": 47,
                            "kibana.alert.workflow_status": "open",
                            "kibana.alert.original_event.id": format!("event-{batch}-{i}"),
                            "event": {"action": "AddPermission20150331v2", "provider": "lambda.amazonaws.com"},
                            "source": {"ip": "198.51.100.7"}
                        }),
                    }
                })
                .collect();
            let outcomes = runtime.block_on(sink.create(&docs)).expect("bulk create");
            assert_eq!(outcomes.len(), 1000);
        });
    });
    group.finish();
    criterion.final_summary();

    runtime.block_on(async {
        for path in [
            format!("/{prefix}-*"),
            format!("/_data_stream/{stream}"),
            format!("/_index_template/rule-runner-load-{stream}"),
        ] {
            let _ = client
                .send(&Call::new("clean up", Method::Delete, path))
                .await;
        }
        for (_, name) in names.all() {
            let _ = client
                .send(&Call::new(
                    "clean up",
                    Method::Delete,
                    format!("/_index_template/{name}"),
                ))
                .await;
        }
    });
}

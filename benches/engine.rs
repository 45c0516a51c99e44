//! Engine throughput over the in-memory ports: 1,000 rules, 10,000 matching hits per tick.
//!
//! `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 3`
//!
//! - `tick/new_alerts`: every rule runs once and all 10,000 hits become alerts.
//! - `tick/all_duplicates`: the next tick over the same hour (the 60m/10m overlap): all hits
//!   are known alerts, the common case in steady state.
//! - `alert/build_and_serialize`: one alert document built and serialized to JSON.
//! - `new_terms/window_10k_events`: one new_terms window over 10,000 matching events of
//!   500 users, none seen before: the cluster's three aggregation responses (as bytes, the
//!   way they arrive) parsed, the history check, 500 first events, 100 alerts written (the
//!   cap). The cluster's own work is not in it; rule-runner's CPU for the window is.
//!
//! Times are CPU time of the benchmark thread (`CLOCK_THREAD_CPUTIME_ID`), not wall
//! time, so a busy shared machine inflates them less; all runs are on one core (a
//! current-thread runtime).
//!
//! Before the benchmarks it prints peak resident memory (VmHWM) with the 1,000 rules loaded
//! and scheduled, and after one tick over in-memory ports that hold all events and alerts.

use std::hint::black_box;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use rule_runner::alert::{AlertBuilder, AlertEvent, RunContext};
use rule_runner::elasticsearch::source::groups;
use rule_runner::engine::memory::{MemorySink, MemorySource, MemoryStateStore};
use rule_runner::engine::ports::{
    EventHit, GroupPage, GroupQuery, HitStream, PortError, WindowQuery,
};
use rule_runner::engine::shutdown::Shutdown;
use rule_runner::engine::{
    Engine, EngineConfig, EventSource, ManualClock, Scheduler, SoleInstance,
};
use rule_runner::rule::Rule;
use serde_json::{Value, json};

const RULES: usize = 1_000;
const HITS_PER_RULE: usize = 10;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()
}

/// The Public Invocation seed rule, one copy per index family.
fn rules() -> Vec<Arc<Rule>> {
    (0..RULES)
        .map(|i| {
            let rule: Rule = serde_json::from_value(json!({
                "rule_id": format!("bench-rule-{i:04}"),
                "name": "AWS Lambda Function Policy Updated to Allow Public Invocation",
                "description": "Identifies when an AWS Lambda function policy is updated to allow public invocation.",
                "type": "query", "language": "kuery",
                "query": "event.dataset: aws.cloudtrail and event.provider: lambda.amazonaws.com and event.outcome: success and event.action: AddPermission* and aws.cloudtrail.request_parameters: (*lambda\\:InvokeFunction* and *principal=\\**)",
                "index": [format!("bench-{i:04}-*")],
                "from": "now-60m", "to": "now", "interval": "10m", "max_signals": 100,
                "risk_score": 47, "severity": "medium", "timestamp_override": "event.ingested",
                "tags": ["Domain: Cloud", "Data Source: AWS", "Tactic: Persistence"],
                "author": ["Elastic"], "license": "Elastic License v2", "version": 1, "enabled": true
            }))
            .expect("the bench rule is valid");
            Arc::new(rule)
        })
        .collect()
}

/// A realistic normalized AddPermission CloudTrail event.
fn event(n: usize, at: DateTime<Utc>) -> Value {
    let time = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "@timestamp": time,
        "cloud": {"account": {"id": "123456789012"}, "region": "us-east-1", "provider": "aws"},
        "source": {"address": "198.51.100.7", "ip": "198.51.100.7"},
        "user": {"id": "AIDAEXAMPLE", "name": "attacker"},
        "user_agent": {"original": "aws-cli/2.17.60"},
        "related": {"user": ["attacker"]},
        "ecs": {"version": "8.11.0"},
        "aws": {"cloudtrail": {
            "event_version": "1.08", "event_type": "AwsApiCall", "event_category": "Management",
            "recipient_account_id": "123456789012", "read_only": false,
            "request_parameters": "{principal=*, functionName=demo, statementId=public, action=lambda:InvokeFunction}",
            "user_identity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/attacker", "access_key_id": "AKIAEXAMPLE"}}},
        "data_stream": {"type": "logs", "dataset": "aws.cloudtrail", "namespace": "default"},
        "event": {"action": "AddPermission20150331v2", "provider": "lambda.amazonaws.com", "outcome": "success",
                  "type": ["info"], "kind": "event", "id": format!("98675cf5-df23-4169-8411-{n:012}"),
                  "dataset": "aws.cloudtrail", "created": time, "ingested": time}
    })
}

fn source() -> Arc<MemorySource> {
    let source = MemorySource::new();
    for rule in 0..RULES {
        for hit in 0..HITS_PER_RULE {
            let n = rule * HITS_PER_RULE + hit;
            let at = now() - TimeDelta::minutes(55) + TimeDelta::seconds((hit * 300) as i64);
            source.insert(
                &format!("bench-{rule:04}-000001"),
                &format!("doc-{n}"),
                event(n, at),
            );
        }
    }
    Arc::new(source)
}

fn engine(source: &Arc<MemorySource>, sink: &Arc<MemorySink>) -> Engine {
    Engine::new(
        source.clone(),
        sink.clone(),
        Arc::new(MemoryStateStore::new()),
        EngineConfig::default(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn tick(engine: &Engine, rules: &[Arc<Rule>]) -> u64 {
    let never = Shutdown::never();
    let mut created = 0;
    for rule in rules {
        created += engine
            .run_scheduled(rule, now(), &never)
            .await
            .totals
            .created;
    }
    created
}

/// CPU time of the calling thread, from `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`.
/// Criterion has no CPU-time measurement of its own.
struct ThreadCpuTime;

fn thread_cpu_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant the C library
    // defines.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "CLOCK_THREAD_CPUTIME_ID is available");
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

/// Nanosecond values print like wall time.
static NANOS: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_nanos()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_nanos().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        NANOS.formatter()
    }
}

type Cpu = Criterion<ThreadCpuTime>;

fn bench_ticks(c: &mut Cpu) {
    let rt = runtime();
    let rules = rules();
    let source = source();
    let mut group = c.benchmark_group("tick");
    group.sample_size(10);
    group.throughput(Throughput::Elements(RULES as u64));
    group.bench_function("new_alerts", |b| {
        b.iter_batched(
            || engine(&source, &Arc::new(MemorySink::new())),
            |engine| {
                let created = rt.block_on(tick(&engine, &rules));
                assert_eq!(created as usize, RULES * HITS_PER_RULE);
            },
            BatchSize::PerIteration,
        )
    });
    let sink = Arc::new(MemorySink::new());
    let warm = engine(&source, &sink);
    rt.block_on(tick(&warm, &rules));
    group.bench_function("all_duplicates", |b| {
        b.iter(|| {
            let created = rt.block_on(tick(&warm, &rules));
            assert_eq!(created, 0);
        })
    });
    group.finish();
}

fn bench_alert(c: &mut Cpu) {
    let rules = rules();
    let ctx = RunContext::scheduled(now());
    let builder = AlertBuilder::new(&rules[0], &ctx);
    let source = event(1, now());
    let hit = AlertEvent {
        index: ".ds-logs-aws.cloudtrail-default-2025.01.01-000001",
        id: "AbCdEf123",
        source: &source,
        timestamp: now(),
    };
    let mut group = c.benchmark_group("alert");
    group.throughput(Throughput::Elements(1));
    // The engine's path: the hit's `_source` is taken over, not copied (copying the hit is
    // setup, outside the measurement).
    let owned = EventHit {
        index: hit.index.to_owned(),
        id: hit.id.to_owned(),
        source: source.clone(),
        timestamp: now(),
        sort: Vec::new(),
    };
    let id = builder.alert_id(&hit);
    group.bench_function("build_and_serialize", |b| {
        b.iter_batched(
            || owned.clone(),
            |hit| {
                let alert = builder.build_from_hit(hit, id.clone());
                serde_json::to_vec(&alert.document).expect("an alert serializes")
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("build", |b| {
        b.iter_batched(
            || owned.clone(),
            |hit| builder.build_from_hit(hit, id.clone()),
            BatchSize::SmallInput,
        )
    });
    let built = builder.build(&hit);
    group.bench_function("serialize", |b| {
        b.iter(|| serde_json::to_vec(black_box(&built.document)).expect("an alert serializes"))
    });
    group.finish();
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux only).
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.trim_start_matches("VmHWM:").trim().to_owned())
}

/// Memory with the rules loaded and scheduled, then after one tick over in-memory ports.
fn report_memory() {
    let rt = runtime();
    let rules = rules();
    let sink = Arc::new(MemorySink::new());
    let scheduled = Arc::new(Engine::new(
        Arc::new(MemorySource::new()),
        sink.clone(),
        Arc::new(MemoryStateStore::new()),
        EngineConfig::default(),
    ));
    let clock = Arc::new(ManualClock::new(now()));
    let (scheduler, problems) = rt.block_on(Scheduler::new(
        scheduled,
        rules.clone(),
        Arc::new(SoleInstance),
        clock,
    ));
    assert!(problems.is_empty());
    let rss = peak_rss().unwrap_or_else(|| "unknown (no /proc)".into());
    println!("peak RSS with {RULES} rules loaded and scheduled: {rss}");
    let source = source();
    let loaded = engine(&source, &sink);
    rt.block_on(tick(&loaded, &rules));
    let rss = peak_rss().unwrap_or_else(|| "unknown (no /proc)".into());
    println!(
        "peak RSS after one tick ({} events and {} alerts held in memory): {rss}",
        source.len(),
        sink.len()
    );
    drop(scheduler);
}

const NEW_TERMS_EVENTS: usize = 10_000;
const NEW_TERMS_USERS: usize = 500;

/// A cluster that answers the three group requests of a new_terms window from canned
/// response bytes, parsed by the Elasticsearch adapter's own response reader.
struct CannedCluster {
    terms: Vec<u8>,
    history: Vec<u8>,
    first_events: Vec<u8>,
}

impl CannedCluster {
    fn new() -> Self {
        let start = now() - TimeDelta::minutes(60);
        let buckets = |with_hits: bool| -> Vec<Value> {
            (0..NEW_TERMS_USERS)
                .map(|u| {
                    let first = start + TimeDelta::seconds(u as i64 + 1);
                    let mut bucket = json!({
                        "key": {"user.name": format!("user-{u:04}")},
                        "doc_count": NEW_TERMS_EVENTS / NEW_TERMS_USERS,
                        "first_seen": {"value": first.timestamp_millis() as f64},
                        "last_seen": {"value": now().timestamp_millis() as f64},
                    });
                    if with_hits {
                        let mut source = event(u, first);
                        source["user"]["name"] = json!(format!("user-{u:04}"));
                        bucket["first_event"] = json!({"hits": {"hits": [{
                            "_index": ".ds-logs-aws.cloudtrail-default-2025.01.01-000001",
                            "_id": format!("doc-{u}"), "_source": source,
                            "sort": [first.timestamp_millis()]}]}});
                    }
                    bucket
                })
                .collect()
        };
        let page = |buckets: Vec<Value>| {
            let after = buckets.last().map(|b| b["key"].clone());
            serde_json::to_vec(&json!({"took": 12, "timed_out": false,
                "_shards": {"total": 1, "successful": 1, "failed": 0},
                "hits": {"total": {"value": NEW_TERMS_EVENTS}, "hits": []},
                "aggregations": {"groups": {"after_key": after, "buckets": buckets}}}))
            .expect("a response serializes")
        };
        CannedCluster {
            terms: page(buckets(false)),
            history: page(Vec::new()),
            first_events: page(buckets(true)),
        }
    }
}

#[async_trait::async_trait]
impl EventSource for CannedCluster {
    async fn search(&self, _query: WindowQuery) -> Result<Box<dyn HitStream>, PortError> {
        Err(PortError::Permanent("a new_terms rule only groups".into()))
    }

    async fn groups(&self, query: GroupQuery) -> Result<GroupPage, PortError> {
        let bytes = if query.after.is_some() {
            &self.history // every phase is one page: the next one is empty
        } else if query.first_event {
            &self.first_events
        } else if query.only.is_empty() {
            &self.terms
        } else {
            &self.history
        };
        let response: Value = serde_json::from_slice(bytes)
            .map_err(|error| PortError::Permanent(error.to_string()))?;
        groups::parse(&response, &query, "bench")
    }
}

fn bench_new_terms(c: &mut Cpu) {
    let rt = runtime();
    let cluster = Arc::new(CannedCluster::new());
    let rule: Rule = serde_json::from_value(json!({
        "rule_id": "bench-new-terms", "name": "First API call by a user",
        "type": "new_terms", "language": "kuery", "query": "event.dataset: aws.cloudtrail",
        "new_terms_fields": ["user.name"], "history_window_start": "now-7d",
        "index": ["logs-aws.cloudtrail-*"], "from": "now-60m", "to": "now", "interval": "10m",
        "max_signals": 100, "risk_score": 21, "severity": "low", "enabled": true
    }))
    .expect("the bench rule is valid");
    let rule = Arc::new(rule);
    let mut group = c.benchmark_group("new_terms");
    group.sample_size(10);
    group.throughput(Throughput::Elements(NEW_TERMS_EVENTS as u64));
    group.bench_function("window_10k_events", |b| {
        b.iter_batched(
            || {
                Engine::new(
                    cluster.clone(),
                    Arc::new(MemorySink::new()),
                    Arc::new(MemoryStateStore::new()),
                    EngineConfig::default(),
                )
            },
            |engine| {
                let record = rt.block_on(engine.run_scheduled(&rule, now(), &Shutdown::never()));
                assert_eq!(record.totals.created, 100, "{record:?}");
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench_ticks, bench_alert, bench_new_terms
}

fn main() {
    report_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

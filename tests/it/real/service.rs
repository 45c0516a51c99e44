//! The service's promises, kept on the real engine: the `max_signals` cap carries the rest
//! over, one event stored twice is one alert, failures and a `kill -9` lose nothing and
//! duplicate nothing, and instances sharing the rules through leases never run a window
//! twice.
//!
//! Rules are made due without waiting in two ways: in-process tests call
//! `Engine::run_scheduled` with the run time they want (fixed 2025 dates, 10 minutes apart);
//! CLI tests use `run --once` on events of the last few minutes, where a rule with no saved
//! state is due at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::elasticsearch::http::Method;
use chrono::{DateTime, TimeDelta, Utc};
use rule_runner::elasticsearch::templates;
use rule_runner::elasticsearch::{
    Call, ConnectionFlags, EsClient, IndexNames, RetryPolicy, ServiceConfig,
};
use rule_runner::engine::{Engine, EngineConfig, ExecutionRecord, RunStatus, Shutdown};
use rule_runner::rule::Rule;
use serde_json::{Value, json};

use super::proxy::{Fault, Proxy};
use super::{clean_up, engine, unique_names, write_config};
use crate::engine::{event, ids, seed_rule, t};
use crate::util::rule_runner;

/// One test's own indices on the engine: rule-runner's four, and two source indices standing
/// for `filebeat-*` and `logs-aws.cloudtrail-*`.
struct Setup {
    client: EsClient,
    url: String,
    prefix: String,
    names: IndexNames,
    filebeat: String,
    cloudtrail: String,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new(test: &str) -> Option<Setup> {
        let engine = engine(test)?;
        let (prefix, names) = unique_names();
        templates::setup(&engine.client, &names)
            .await
            .expect("setup");
        let setup = Setup {
            client: engine.client,
            url: engine.url,
            filebeat: format!("{prefix}-filebeat-8.17.0"),
            cloudtrail: format!("{prefix}-logs-aws.cloudtrail-default"),
            prefix,
            names,
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        for index in [&setup.filebeat, &setup.cloudtrail] {
            setup
                .send(
                    Method::Put,
                    &format!("/{index}"),
                    Some(json!({"mappings": {
                        "dynamic_templates": [{"strings": {"match_mapping_type": "string",
                                                           "mapping": {"type": "keyword"}}}],
                        "properties": {"@timestamp": {"type": "date"}}
                    }})),
                )
                .await;
        }
        Some(setup)
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut call = Call::new(format!("{method:?} {path}"), method, path);
        if let Some(body) = body {
            call = call.json(body);
        }
        self.client
            .send_ok(&call)
            .await
            .expect("the engine answers")
    }

    /// The seed rule, over this test's two source indices only.
    fn rule(&self) -> Arc<Rule> {
        let mut rule = seed_rule();
        rule.index = vec![self.filebeat.clone(), self.cloudtrail.clone()];
        Arc::new(rule)
    }

    /// Index `events` (`(index, event id, time)`), searchable when this returns.
    async fn add(&self, events: &[(&str, String, DateTime<Utc>)]) {
        let mut body = String::new();
        for (index, id, at) in events {
            body.push_str(&json!({"create": {"_index": index}}).to_string());
            body.push('\n');
            body.push_str(&event(id, *at).to_string());
            body.push('\n');
        }
        let reply = self
            .client
            .send_ok(
                &Call::new("add events", Method::Post, "/_bulk")
                    .param("refresh", "true")
                    .ndjson(body),
            )
            .await
            .expect("bulk");
        assert_eq!(reply["errors"], false, "{reply}");
    }

    /// Events `e000`.. in the CloudTrail index, a minute apart, the last of them a few minutes
    /// ago: inside the shipped look-back of a run started now.
    async fn add_recent(&self, n: i64) {
        let now = Utc::now();
        let events: Vec<_> = (0..n)
            .map(|i| {
                (
                    self.cloudtrail.as_str(),
                    format!("e{i:03}"),
                    now - TimeDelta::minutes(5 + n - i),
                )
            })
            .collect();
        self.add(&events).await;
    }

    /// An engine over the real ports, through `client`.
    fn engine_through(&self, client: &EsClient) -> Engine {
        let (source, sink, state) = rule_runner::elasticsearch::ports(client, &self.names);
        Engine::new(source, sink, state, EngineConfig::default())
    }

    /// The alerted `event.id`s, sorted, each as often as it was alerted.
    async fn alerted(&self) -> Vec<String> {
        self.send(
            Method::Post,
            &format!("/{}/_refresh", self.names.alerts),
            None,
        )
        .await;
        let found = self
            .send(
                Method::Post,
                &format!("/{}/_search", self.names.alerts),
                Some(json!({"size": 10000, "_source": ["kibana.alert.original_event.id"]})),
            )
            .await;
        let mut ids: Vec<String> = found["hits"]["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .filter_map(|h| {
                let source = &h["_source"];
                source
                    .pointer("/kibana.alert.original_event.id")
                    .or_else(|| source.pointer("/kibana/alert/original_event/id"))
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect();
        ids.sort();
        ids
    }

    /// A config file naming this test's indices, and a rules file with its rule.
    fn files(&self) -> (PathBuf, PathBuf) {
        let config = write_config(self.dir.path(), &self.names);
        let rules = self.dir.path().join("rules.ndjson");
        let rule = serde_json::to_value(&*self.rule()).expect("a rule serializes");
        std::fs::write(&rules, format!("{rule}\n")).expect("rules written");
        (config, rules)
    }

    async fn clean_up(&self) {
        clean_up(&self.client, &self.prefix, &self.names).await;
    }
}

/// A client for `url` that gives up quickly: 2 s per request, two attempts.
fn impatient_client(url: &str) -> EsClient {
    let flags = ConnectionFlags {
        urls: vec![url.to_string()],
        request_timeout: Some(Duration::from_secs(2)),
        ..ConnectionFlags::default()
    };
    let config = ServiceConfig::load(&flags).expect("valid settings");
    EsClient::connect(
        &config.connection,
        RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        },
    )
    .expect("a client")
}

async fn run(engine: &Engine, rule: &Arc<Rule>, at: DateTime<Utc>) -> ExecutionRecord {
    engine.run_scheduled(rule, at, &Shutdown::never()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_the_cap_writes_100_then_100_then_50_and_loses_nothing() {
    let Some(s) = Setup::new("real_the_cap_writes_100_then_100_then_50_and_loses_nothing").await
    else {
        return;
    };
    let events: Vec<_> = (0..250)
        .map(|i| {
            (
                s.cloudtrail.as_str(),
                format!("e{i:03}"),
                t(11, 5) + TimeDelta::seconds(12 * i),
            )
        })
        .collect();
    s.add(&events).await;
    let engine = s.engine_through(&s.client);
    let rule = s.rule();
    let mut created = Vec::new();
    for at in [t(12, 0), t(12, 10), t(12, 20)] {
        let record = run(&engine, &rule, at).await;
        created.push((record.totals.created, record.totals.left_over));
    }
    let alerted = s.alerted().await;
    s.clean_up().await;
    assert_eq!(created, [(100, 150), (100, 50), (50, 0)]);
    assert_eq!(alerted, ids(0..250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_one_event_in_both_index_patterns_gives_one_alert() {
    let Some(s) = Setup::new("real_one_event_in_both_index_patterns_gives_one_alert").await else {
        return;
    };
    let at = t(11, 50);
    s.add(&[
        (s.filebeat.as_str(), "e000".into(), at),
        (s.cloudtrail.as_str(), "e000".into(), at),
    ])
    .await;
    let engine = s.engine_through(&s.client);
    let record = run(&engine, &s.rule(), t(12, 0)).await;
    let alerted = s.alerted().await;
    s.clean_up().await;
    assert_eq!(record.status, RunStatus::Succeeded, "{record:#?}");
    assert_eq!(record.totals.hits, 2);
    assert_eq!(alerted, ids(0..1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_failed_runs_then_a_good_one_alert_every_event_once() {
    let Some(s) = Setup::new("real_failed_runs_then_a_good_one_alert_every_event_once").await
    else {
        return;
    };
    let events: Vec<_> = (0..10)
        .map(|i| {
            (
                s.cloudtrail.as_str(),
                format!("e{i:03}"),
                t(11, 55) + TimeDelta::minutes(4 * i),
            )
        })
        .collect();
    s.add(&events).await;
    let proxy = Proxy::start(&s.url).await;
    let through_proxy = s.engine_through(&impatient_client(&proxy.url));
    let rule = s.rule();
    let first = run(&through_proxy, &rule, t(12, 0)).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");

    // Nothing listens on a port just released: the connection is refused.
    let refused_url = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        format!("http://{}", listener.local_addr().expect("bound"))
    };
    let refused = run(
        &s.engine_through(&impatient_client(&refused_url)),
        &rule,
        t(12, 10),
    )
    .await;
    let mut statuses = vec![refused.status];
    for (fault, at) in [
        (Fault::Reset, t(12, 20)),
        (Fault::Status(429), t(12, 30)),
        (Fault::Status(503), t(12, 40)),
        (Fault::Stall, t(12, 50)),
    ] {
        proxy.set(fault);
        statuses.push(run(&through_proxy, &rule, at).await.status);
    }
    proxy.set(Fault::Pass);
    let recovery = run(&through_proxy, &rule, t(13, 0)).await;
    let alerted = s.alerted().await;
    s.clean_up().await;
    assert_eq!(statuses, [RunStatus::Failed; 5]);
    assert!(proxy.faulted() >= 4);
    assert_eq!(recovery.status, RunStatus::Succeeded, "{recovery:#?}");
    assert_eq!(alerted, ids(0..10));
}

/// Start `run --once` through `proxy`, wait until a request matching the proxy's stall has
/// arrived, and `kill -9` the process there.
async fn killed_while_stalled(s: &Setup, proxy: &Proxy) {
    let (config, rules) = s.files();
    let mut child = rule_runner()
        .args(["run", "--once", "--config"])
        .arg(&config)
        .arg("--rules")
        .arg(&rules)
        .args(["--url", &proxy.url, "--request-timeout", "120s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rule-runner starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.faulted() == 0 {
        assert!(Instant::now() < deadline, "the run never reached the stall");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
}

fn run_once(s: &Setup) -> std::process::Output {
    let (config, rules) = s.files();
    rule_runner()
        .args(["run", "--once", "--config"])
        .arg(&config)
        .arg("--rules")
        .arg(&rules)
        .args(["--url", &s.url])
        .output()
        .expect("rule-runner runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kill_9_between_search_and_write_then_restart_loses_nothing() {
    let Some(s) =
        Setup::new("real_kill_9_between_search_and_write_then_restart_loses_nothing").await
    else {
        return;
    };
    s.add_recent(5).await;
    // Killed while its alerts are on their way: nothing written, nothing saved.
    let proxy = Proxy::start(&s.url).await;
    proxy.set_for("/_bulk", Fault::Stall);
    killed_while_stalled(&s, &proxy).await;
    let after_kill = s.alerted().await;
    let restart = run_once(&s);
    let alerted = s.alerted().await;
    s.clean_up().await;
    assert!(after_kill.is_empty(), "{after_kill:?}");
    assert_exit!(restart, 0);
    assert_eq!(alerted, ids(0..5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kill_9_between_write_and_state_then_restart_duplicates_nothing() {
    let Some(s) =
        Setup::new("real_kill_9_between_write_and_state_then_restart_duplicates_nothing").await
    else {
        return;
    };
    s.add_recent(5).await;
    // Killed after its alerts were written, while it saves the rule's state.
    let proxy = Proxy::start(&s.url).await;
    proxy.set_for(&format!("PUT /{}/_doc/", s.names.state), Fault::Stall);
    killed_while_stalled(&s, &proxy).await;
    let after_kill = s.alerted().await;
    let restart = run_once(&s);
    let alerted = s.alerted().await;
    s.clean_up().await;
    assert_eq!(after_kill, ids(0..5));
    assert_exit!(restart, 0);
    assert_eq!(
        alerted,
        ids(0..5),
        "the restart found them again and wrote none twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_three_instances_with_leases_run_no_window_twice() {
    let Some(s) = Setup::new("real_three_instances_with_leases_run_no_window_twice").await else {
        return;
    };
    s.add_recent(5).await;
    // Searches held for a while, so the three runs overlap: without leases each would
    // search the same window.
    let proxy = Proxy::start(&s.url).await;
    proxy.set_for("/_search", Fault::Delay(Duration::from_millis(1500)));
    let (config, rules) = s.files();
    let instances: Vec<_> = (0..3)
        .map(|_| {
            rule_runner()
                .args(["run", "--once", "--leases", "--config"])
                .arg(&config)
                .arg("--rules")
                .arg(&rules)
                .args(["--url", &proxy.url])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("rule-runner starts")
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        instances
            .into_iter()
            .map(|c| c.wait_with_output().expect("the instance ends"))
            .collect::<Vec<_>>()
    })
    .await
    .expect("the instances end");
    s.send(
        Method::Post,
        &format!("/{}/_refresh", s.names.executions),
        None,
    )
    .await;
    let executions = s
        .send(
            Method::Post,
            &format!("/{}/_search", s.names.executions),
            Some(json!({"size": 1000})),
        )
        .await;
    let alerted = s.alerted().await;
    s.clean_up().await;
    for out in &outputs {
        assert_exit!(out, 0);
    }
    // The three started together, so the rule was due once: one run searched its window,
    // the others found it claimed (without leases all three search overlapping windows).
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let hits = executions["hits"]["hits"].as_array().expect("hits");
    for hit in hits {
        let record = &hit["_source"];
        for window in record["windows"].as_array().into_iter().flatten() {
            runs.entry(record["rule_id"].to_string())
                .or_default()
                .push(format!("{} .. {}", window["start"], window["end"]));
        }
    }
    assert!(!runs.is_empty(), "{executions}");
    assert!(runs.values().all(|w| w.len() == 1), "{runs:?}");
    assert_eq!(alerted, ids(0..5));
}

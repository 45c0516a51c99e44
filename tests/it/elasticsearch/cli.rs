//! `run`, `status` and `backfill` end to end: the built binary against a mock cluster that
//! answers every request the way Elasticsearch 8.x does.

use std::process::Output;

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::mock::{body_json, mount_set_up_cluster, root_info};
use super::source::{LAYER_ADDED, PUBLIC_INVOCATION, field_caps_reply, search_reply};
use crate::util::rule_runner;

/// An AddPermission event making a function public, as the AWS integration indexes it,
/// ingested at `ingested`.
fn public_invocation_hit(ingested: &str) -> Value {
    let sort = chrono::DateTime::parse_from_rfc3339(ingested)
        .unwrap()
        .timestamp_millis();
    json!({
        "_index": ".ds-logs-aws.cloudtrail-default-2025.01.01-000001",
        "_id": "AbCdEf123",
        "_score": null,
        "_source": {
            "@timestamp": ingested,
            "cloud": {"account": {"id": "123456789012"}, "region": "us-east-1"},
            "source": {"address": "198.51.100.7", "ip": "198.51.100.7"},
            "user": {"name": "attacker"},
            "data_stream": {"type": "logs", "dataset": "aws.cloudtrail", "namespace": "default"},
            "event": {"action": "AddPermission20150331v2", "provider": "lambda.amazonaws.com",
                      "outcome": "success", "kind": "event",
                      "id": "98675cf5-df23-4169-8411-58429782c464",
                      "dataset": "aws.cloudtrail", "ingested": ingested},
            "aws": {"cloudtrail": {"request_parameters":
                "{principal=*, functionName=demo, statementId=public, action=lambda:InvokeFunction}"}}
        },
        "fields": {"event.ingested": [ingested], "@timestamp": [ingested]},
        "sort": [sort, sort, 3]
    })
}

/// A mock cluster set up by `rule-runner setup`, with no state yet, whose `filebeat-*` and
/// `logs-aws.cloudtrail-*` hold one public-invocation event ingested five minutes ago.
async fn cluster(already_alerted: bool) -> MockServer {
    let server = MockServer::start().await;
    let ok = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    mount_set_up_cluster(&server).await;
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_field_caps"))
        .respond_with(ok(field_caps_reply()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_pit"))
        .respond_with(ok(json!({"id": "pit-1"})))
        .mount(&server)
        .await;
    let ingested = (chrono::Utc::now() - chrono::TimeDelta::minutes(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Mock::given(method("POST"))
        .and(path("/_search"))
        .and(body_string_contains("AddPermission*"))
        .respond_with(search_reply(
            "pit-1",
            vec![public_invocation_hit(&ingested)],
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(search_reply("pit-1", vec![]))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/_pit"))
        .respond_with(ok(json!({"succeeded": true, "num_freed": 1})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_search"))
        .and(body_string_contains("\"ids\""))
        .respond_with(move |req: &wiremock::Request| {
            let ids = body_json(req)["query"]["bool"]["filter"][0]["ids"]["values"].clone();
            let hits: Vec<Value> = ids
                .as_array()
                .unwrap()
                .iter()
                .filter(|_| already_alerted)
                .map(|id| json!({"_index": "rule-runner-alerts-000001", "_id": id}))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"hits": {"hits": hits}}))
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-dead-letter/_mget"))
        .respond_with(|req: &wiremock::Request| {
            let ids = body_json(req)["ids"].clone();
            let docs: Vec<Value> = ids
                .as_array()
                .unwrap()
                .iter()
                .map(|id| json!({"_index": "rule-runner-dead-letter", "_id": id, "found": false}))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"docs": docs}))
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .respond_with(|req: &wiremock::Request| {
            let items: Vec<Value> = String::from_utf8_lossy(&req.body)
                .lines()
                .step_by(2)
                .map(|l| {
                    let id = serde_json::from_str::<Value>(l).unwrap()["create"]["_id"].clone();
                    json!({"create": {"_index": "rule-runner-alerts", "_id": id, "_version": 1,
                        "result": "created", "_seq_no": 0, "_primary_term": 1, "status": 201}})
                })
                .collect();
            ResponseTemplate::new(200)
                .set_body_json(json!({"errors": false, "took": 5, "items": items}))
        })
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex(r"^/rule-runner-(state|executions)/_doc/.+$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"result": "created"})))
        .mount(&server)
        .await;
    server
}

fn requests_matching<'a>(
    requests: &'a [wiremock::Request],
    method: &str,
    path_prefix: &str,
) -> Vec<&'a wiremock::Request> {
    requests
        .iter()
        .filter(|r| r.method.as_str() == method && r.url.path().starts_with(path_prefix))
        .collect()
}

/// `rule-runner run --once` against [`cluster`]; the runtime keeps the mock server alive.
fn run_once(already_alerted: bool) -> (tokio::runtime::Runtime, MockServer, Output) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(cluster(already_alerted));
    let out = rule_runner()
        .args(["run", "--once", "--url", &server.uri()])
        .output()
        .unwrap();
    (runtime, server, out)
}

#[test]
fn run_once_writes_the_alert_records_the_run_and_saves_state() {
    let (runtime, server, out) = run_once(false);
    assert_exit!(out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("AWS Lambda Function Policy Updated to Allow Public Invocation ({PUBLIC_INVOCATION}): succeeded")),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 hits, 1 created, 0 duplicates"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("({LAYER_ADDED}): succeeded")),
        "{stdout}"
    );
    assert!(stdout.contains("0 hits, 0 created"), "{stdout}");

    let requests = runtime.block_on(server.received_requests()).unwrap();
    let bulks = requests_matching(&requests, "POST", "/rule-runner-alerts/_bulk");
    assert_eq!(bulks.len(), 1);
    let body = String::from_utf8_lossy(&bulks[0].body).to_string();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let alert = &lines[1];
    let id = lines[0]["create"]["_id"].as_str().unwrap();
    assert_eq!(alert["kibana.alert.uuid"], id);
    assert_eq!(alert["kibana.alert.rule.rule_id"], PUBLIC_INVOCATION);
    assert_eq!(alert["kibana.alert.rule.rule_type_id"], "siem.queryRule");
    assert_eq!(
        alert["kibana.alert.original_event.id"],
        "98675cf5-df23-4169-8411-58429782c464"
    );
    assert_eq!(alert["kibana.space_ids"], json!(["default"]));
    assert_eq!(alert["event.kind"], "signal");

    let states = requests_matching(&requests, "PUT", "/rule-runner-state/_doc/");
    assert_eq!(states.len(), 2, "both rules' state saved");
    assert!(body_json(states[0])["watermark"].is_string());
    let records = requests_matching(&requests, "PUT", "/rule-runner-executions/_doc/");
    assert_eq!(records.len(), 2, "one execution record per run");
    let pits_closed = requests_matching(&requests, "DELETE", "/_pit");
    assert_eq!(pits_closed.len(), 2, "every point in time closed");
}

#[test]
fn run_once_over_an_alerted_event_writes_nothing() {
    let (runtime, server, out) = run_once(true);
    assert_exit!(out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 hits, 0 created, 1 duplicates"),
        "{stdout}"
    );
    let requests = runtime.block_on(server.received_requests()).unwrap();
    assert!(requests_matching(&requests, "POST", "/rule-runner-alerts/_bulk").is_empty());
}

#[test]
fn run_refuses_to_start_before_setup() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(root_info()))
            .mount(&server)
            .await;
        Mock::given(method("HEAD"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        server
    });
    let out = rule_runner()
        .args(["run", "--once", "--url", &server.uri()])
        .output()
        .unwrap();
    assert_exit!(out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: Elasticsearch is not set up for rule-runner"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the alerts alias `rule-runner-alerts` does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("Run `rule-runner setup`"), "{stderr}");
}

#[test]
fn commands_explain_an_unreachable_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rule-runner.toml");
    std::fs::write(&config, "[retry]\nmax_attempts = 1\n").unwrap();
    let url = super::mock::unused_port_uri();
    for command in [
        &["run", "--once"][..],
        &["setup"],
        &["status"],
        &["backfill", "--all", "--start", "now-1h", "--end", "now"],
    ] {
        let out = rule_runner()
            .args(command)
            .arg("--config")
            .arg(&config)
            .args(["--url", &url])
            .output()
            .unwrap();
        assert_exit!(out, 1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("error: cannot reach Elasticsearch at {url}")),
            "{command:?}: {stderr}"
        );
        assert!(stderr.contains("is it running?"), "{stderr}");
    }
}

#[test]
fn status_shows_each_rule() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(async {
        let server = cluster(false).await;
        let state = json!({"rule_id": PUBLIC_INVOCATION, "watermark": "2025-01-01T12:00:00Z",
            "last_run_start": "2025-01-01T12:00:00Z", "last_outcome": "succeeded",
            "open_gaps": [{"start": "2024-12-30T00:00:00Z", "end": "2024-12-31T11:00:00Z"}]});
        Mock::given(method("GET"))
            .and(path(format!("/rule-runner-state/_doc/{PUBLIC_INVOCATION}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "_index": "rule-runner-state", "_id": PUBLIC_INVOCATION, "_version": 3,
                "_seq_no": 7, "_primary_term": 1, "found": true, "_source": state})))
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/rule-runner-executions/_search"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "took": 2, "timed_out": false, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {"total": {"value": 12, "relation": "eq"}, "max_score": null, "hits": []},
                "aggregations": {"rules": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                    "buckets": [{"key": PUBLIC_INVOCATION, "doc_count": 12, "last": {"hits": {
                        "total": {"value": 12, "relation": "eq"}, "max_score": null,
                        "hits": [{"_index": "rule-runner-executions", "_id": "5d5a", "_score": null,
                            "_source": {"rule_id": PUBLIC_INVOCATION, "hits": 3, "created": 2, "duplicates": 1,
                                "warnings": ["The following indices are missing the timestamp field \"event.ingested\" (nor \"@timestamp\"): [\"filebeat-old\"]"],
                                "errors": []},
                            "sort": [1735732800000i64]}]}}}]}}})))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/rule-runner-alerts/_search"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "took": 1, "timed_out": false, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {"max_score": null, "hits": []},
                "aggregations": {"rules": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                    "buckets": [{"key": PUBLIC_INVOCATION, "doc_count": 7}]}}})))
            .mount(&server)
            .await;
        server
    });
    let out = rule_runner()
        .args(["status", "--url", &server.uri()])
        .output()
        .unwrap();
    assert_exit!(out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!(
        "AWS Lambda Function Policy Updated to Allow Public Invocation ({PUBLIC_INVOCATION})\n\
         \x20 last run    2025-01-01T12:00:00Z, succeeded (3 hits, 2 created, 1 duplicates)\n\
         \x20 watermark   2025-01-01T12:00:00Z\n\
         \x20 next run    "
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(
        stdout.contains(
            "  open gaps   2024-12-30T00:00:00Z to 2024-12-31T11:00:00Z\n  alerts 24h  7\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  alerts 24h  7\n  warning     The following indices are missing the timestamp field"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("({LAYER_ADDED})\n  last run    never\n")),
        "{stdout}"
    );

    let out = rule_runner()
        .args(["status", "--format", "json", "--url", &server.uri()])
        .output()
        .unwrap();
    assert_exit!(out, 0);
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let public = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == PUBLIC_INVOCATION)
        .unwrap();
    assert_eq!(public["alerts_last_24h"], 7);
    assert_eq!(public["watermark"], "2025-01-01T12:00:00Z");
    assert_eq!(public["open_gaps"][0]["end"], "2024-12-31T11:00:00Z");
    // Last started long ago: due at once.
    let next_run =
        chrono::DateTime::parse_from_rfc3339(public["next_run"].as_str().unwrap()).unwrap();
    assert!(
        (chrono::Utc::now() - next_run.with_timezone(&chrono::Utc))
            .num_minutes()
            .abs()
            < 5
    );
}

#[test]
fn backfill_searches_the_range_in_interval_windows() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(cluster(false));
    let backfill = |which: &[&str], start: &str| {
        rule_runner()
            .arg("backfill")
            .args(which)
            .args(["--start", start, "--end", "now", "--url", &server.uri()])
            .output()
            .unwrap()
    };
    let out = backfill(&["--rule", PUBLIC_INVOCATION], "now-1h");
    assert_exit!(out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("({PUBLIC_INVOCATION}): succeeded")),
        "{stdout}"
    );
    assert!(stdout.contains("6 windows"), "{stdout}");
    assert!(stdout.contains("1 created"), "{stdout}");
    assert!(
        !stdout.contains(LAYER_ADDED),
        "only the rule asked for: {stdout}"
    );

    let out = backfill(&["--rule", "no-such-rule"], "now-1h");
    assert_exit!(out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no rule with id `no-such-rule`; known rules:")
    );

    let out = backfill(&["--all"], "yesterday");
    assert_exit!(out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--start `yesterday`"));
}

#[test]
fn the_service_runs_until_sigterm_and_exits_cleanly() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(cluster(false));
    let child = rule_runner()
        .args(["run", "--url", &server.uri()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both rules are new, so both run at once; wait for their records.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let requests = runtime.block_on(server.received_requests()).unwrap();
        if requests_matching(&requests, "PUT", "/rule-runner-executions/_doc/").len() >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not run the rules"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_exit!(out, 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("running 2 rules; stop with Ctrl-C or SIGTERM"),
        "{stderr}"
    );
}

//! `rule-runner run` with the operator options against a mock cluster: leases claimed per
//! run (`--leases`), and the health and metrics endpoints of a running service.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::util::rule_runner;

/// A cluster after `rule-runner setup`, with no events and no state.
async fn empty_cluster() -> MockServer {
    let server = MockServer::start().await;
    let ok = |body: Value| ResponseTemplate::new(200).set_body_json(body);
    crate::elasticsearch::mock::mount_set_up_cluster(&server).await;
    Mock::given(method("POST"))
        .and(path_regex(r"/_field_caps$"))
        .respond_with(ok(json!({"indices": [], "fields": {}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"/_pit$"))
        .respond_with(ok(json!({"id": "pit-1"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(ok(json!({"pit_id": "pit-1", "took": 1, "timed_out": false,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}})))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/_pit"))
        .respond_with(ok(json!({"succeeded": true})))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex(r"^/rule-runner-(state|executions)/_doc/.+$"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"result": "created", "_seq_no": 0, "_primary_term": 1})),
        )
        .mount(&server)
        .await;
    server
}

/// The lease claims `run --once` sent: one `op_type=create` per shipped rule.
async fn claims_of_run_once(configure: impl FnOnce(&mut std::process::Command)) -> Vec<Value> {
    let server = empty_cluster().await;
    let mut cmd = rule_runner();
    cmd.args(["run", "--once", "--url", &server.uri()]);
    configure(&mut cmd);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert_exit!(out, 0);
    let requests = server.received_requests().await.unwrap();
    requests
        .iter()
        .filter(|r| {
            r.method.as_str() == "PUT"
                && r.url.path().starts_with("/rule-runner-state/_doc/lease%3A")
        })
        .map(|claim| {
            assert_eq!(claim.url.query(), Some("op_type=create"));
            serde_json::from_slice(&claim.body).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn run_once_with_leases_claims_each_rule_before_running_it() {
    for claims in [
        claims_of_run_once(|cmd| {
            cmd.arg("--leases");
        })
        .await,
        claims_of_run_once(|cmd| {
            cmd.env("RULE_RUNNER_LEASES", "true");
        })
        .await,
    ] {
        assert_eq!(claims.len(), 2, "one claim per shipped rule");
        for body in claims {
            assert!(body["lease"]["owner"].is_string(), "{body}");
            assert!(body["lease"]["expires_at"].is_string(), "{body}");
        }
    }
    assert!(
        claims_of_run_once(|_| {}).await.is_empty(),
        "no leases unless asked for"
    );
}

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get_until(
    url: &str,
    deadline: Duration,
    done: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(url).await {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            if done(status, &body) || start.elapsed() > deadline {
                return (status, body);
            }
        } else if start.elapsed() > deadline {
            panic!("{url} never answered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_running_service_serves_health_readiness_and_metrics_and_stops_on_sigterm() {
    let server = empty_cluster().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let child = rule_runner()
        .args(["run", "--url", &server.uri(), "--http-addr", &addr])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://{addr}");
    let wait = Duration::from_secs(20);
    let (status, body) = get_until(&format!("{base}/healthz"), wait, |s, _| s == 200).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_until(&format!("{base}/readyz"), wait, |s, _| s == 200).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("cluster `rule-runner-demo`, version 8.17.0"),
        "{body}"
    );
    // The first tick runs both shipped rules at once.
    let (_, metrics) = get_until(&format!("{base}/metrics"), wait, |_, b| {
        b.matches("rule_runner_runs_total{").count() >= 2
    })
    .await;
    // (`partial failure`: the mock cluster has no source indices, which is a warning.)
    assert!(metrics.contains("rule_runner_runs_total{rule_id=\"151d8f72-0747-11ef-a0c2-f661ea17fbcc\",status=\"partial failure\"} 1"), "{metrics}");
    assert!(
        metrics.contains("rule_runner_search_duration_seconds_count"),
        "{metrics}"
    );

    // Elasticsearch goes away: not ready, still alive.
    server.reset().await;
    let (status, body) = get_until(&format!("{base}/readyz"), wait, |s, _| s == 503).await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = get_until(&format!("{base}/healthz"), wait, |s, _| s == 200).await;
    assert_eq!(status, 200);

    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let exit = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_exit!(exit, 0);
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "the endpoints stop with the service"
    );
}

#[test]
fn a_bad_http_address_is_a_usage_error() {
    let out = crate::util::run_cli(&["run", "--once", "--http-addr", "not-an-address"]);
    assert_exit!(out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--http-addr"));
}

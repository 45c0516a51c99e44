//! The health and metrics endpoints, over real HTTP on 127.0.0.1.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use rule_runner::engine::ports::{
    EventHit, EventSource, HitStream, PortError, RuleWindow, WindowQuery,
};
use rule_runner::ops::http::{self, Check, Endpoints, ReadinessProbe};
use rule_runner::ops::metered::{MeteredSource, MeteredStateStore};
use rule_runner::ops::metrics::Metrics;
use serde_json::Value;
use tokio::sync::oneshot;

/// Answers `/readyz` from a script: one list of checks per call, the last repeated.
struct Scripted {
    answers: Mutex<VecDeque<Vec<Check>>>,
    delay: Duration,
}

#[async_trait]
impl ReadinessProbe for Scripted {
    async fn checks(&self) -> Vec<Check> {
        tokio::time::sleep(self.delay).await;
        let mut answers = self.answers.lock().unwrap();
        if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers[0].clone()
        }
    }
}

struct Server {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    metrics: Arc<Metrics>,
}

async fn start(answers: Vec<Vec<Check>>, delay: Duration) -> Server {
    let metrics = Arc::new(Metrics::new());
    let mut endpoints = Endpoints::new(
        metrics.clone(),
        Arc::new(Scripted {
            answers: Mutex::new(answers.into()),
            delay,
        }),
    );
    endpoints.readiness_timeout = Duration::from_millis(300);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = http::serve("127.0.0.1:0".parse().unwrap(), endpoints, async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    Server {
        base: format!("http://{}", server.local_addr),
        stop: Some(stop),
        task: server.task,
        metrics,
    }
}

async fn get(url: &str) -> (u16, String, String) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn healthz_answers_while_the_process_runs() {
    let server = start(vec![vec![]], Duration::ZERO).await;
    let (status, content_type, body) = get(&format!("{}/healthz", server.base)).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "ok");
    let (status, _, _) = get(&format!("{}/nope", server.base)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn readyz_follows_the_checks() {
    let ok = vec![
        Check::pass("elasticsearch", "reachable"),
        Check::pass("index rule-runner-alerts", "exists"),
    ];
    let down = vec![Check::fail("elasticsearch", "connection refused")];
    let server = start(vec![down, ok], Duration::ZERO).await;
    let (status, _, body) = get(&format!("{}/readyz", server.base)).await;
    assert_eq!(status, 503);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["checks"][0]["detail"], "connection refused");
    let (status, _, body) = get(&format!("{}/readyz", server.base)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["checks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn readyz_is_not_ready_when_the_checks_hang() {
    let server = start(
        vec![vec![Check::pass("elasticsearch", "ok")]],
        Duration::from_secs(5),
    )
    .await;
    let (status, _, body) = get(&format!("{}/readyz", server.base)).await;
    assert_eq!(status, 503);
    assert!(body.contains("no answer within"), "{body}");
}

/// A source with one page of one hit, for metering.
struct OnePage;
struct OnePageStream(bool);

#[async_trait]
impl EventSource for OnePage {
    async fn search(&self, _query: WindowQuery) -> Result<Box<dyn HitStream>, PortError> {
        Ok(Box::new(OnePageStream(false)))
    }
}

#[async_trait]
impl HitStream for OnePageStream {
    async fn next_page(&mut self) -> Result<Option<Vec<EventHit>>, PortError> {
        if std::mem::replace(&mut self.0, true) {
            return Err(PortError::Transient("cluster went away".into()));
        }
        let hit = EventHit {
            index: "logs".into(),
            id: "1".into(),
            source: serde_json::json!({}),
            timestamp: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
            sort: vec![],
        };
        Ok(Some(vec![hit]))
    }
    async fn close(&mut self) -> Result<(), PortError> {
        Ok(())
    }
}

#[tokio::test]
async fn metrics_count_searches_runs_and_errors_in_prometheus_text() {
    let server = start(vec![vec![]], Duration::ZERO).await;
    let source = MeteredSource::new(Arc::new(OnePage), server.metrics.clone());
    let rule = rule_runner::rule::Rule {
        rule_id: "r1".into(),
        ..Default::default()
    };
    let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let mut stream = source
        .search(WindowQuery {
            rule: Arc::new(rule),
            window: RuleWindow { start: t, end: t },
            page_size: 100,
        })
        .await
        .unwrap();
    assert_eq!(stream.next_page().await.unwrap().unwrap().len(), 1);
    assert!(stream.next_page().await.is_err());

    let store = MeteredStateStore::new(Arc::new(NullStore), server.metrics.clone());
    use rule_runner::engine::ports::StateStore;
    store
        .record_execution(&serde_json::json!({
            "rule_id": "r1", "status": "succeeded", "duration_ms": 250, "created": 2,
            "duplicates": 1, "left_over": 0, "gaps": [], "gap_duration_ms": 0, "windows": []
        }))
        .await
        .unwrap();

    let (status, content_type, body) = get(&format!("{}/metrics", server.base)).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    for line in [
        "rule_runner_search_duration_seconds_count 3",
        "rule_runner_port_errors_total{operation=\"search\"} 1",
        "rule_runner_runs_total{rule_id=\"r1\",status=\"succeeded\"} 1",
        "rule_runner_alerts_created_total{rule_id=\"r1\"} 2",
        "rule_runner_alerts_duplicate_total{rule_id=\"r1\"} 1",
        "rule_runner_run_duration_seconds_sum 0.25",
        "# TYPE rule_runner_bulk_duration_seconds histogram",
    ] {
        assert!(body.contains(line), "missing {line:?} in\n{body}");
    }
}

struct NullStore;

#[async_trait]
impl rule_runner::engine::ports::StateStore for NullStore {
    async fn load(
        &self,
        _: &str,
    ) -> Result<Option<rule_runner::engine::ports::RuleState>, PortError> {
        Ok(None)
    }
    async fn save(&self, _: &rule_runner::engine::ports::RuleState) -> Result<(), PortError> {
        Ok(())
    }
    async fn record_execution(&self, _: &Value) -> Result<(), PortError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error_and_shutdown_stops_serving() {
    let mut server = start(vec![vec![]], Duration::ZERO).await;
    let addr = server.base.trim_start_matches("http://").parse().unwrap();
    let endpoints = Endpoints::new(Arc::new(Metrics::new()), Arc::new(http::AlwaysReady));
    let err = match http::serve(addr, endpoints, async {}).await {
        Ok(_) => panic!("a second server bound the same port"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");

    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        reqwest::get(format!("{}/healthz", server.base))
            .await
            .is_err()
    );
}

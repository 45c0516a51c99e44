//! The state store against a mock cluster: rule state round trips, missing index, execution
//! records keyed by run.

use chrono::{TimeZone, Utc};
use rule_runner::elasticsearch::EsStateStore;
use rule_runner::engine::{PortError, RuleState, RuleWindow, StateStore};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::mock::{body_json, client_for, es_error};

fn store(server: &MockServer) -> EsStateStore {
    EsStateStore::new(
        client_for(server),
        "rule-runner-state",
        "rule-runner-executions",
    )
}

fn state() -> RuleState {
    RuleState {
        rule_id: "7d091a76-0737-11ef-8469-f661ea17fbcc".into(),
        watermark: Some(Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()),
        last_run_start: Some(Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()),
        last_outcome: Some("succeeded".into()),
        open_gaps: vec![RuleWindow {
            start: Utc.with_ymd_and_hms(2024, 12, 30, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2024, 12, 31, 11, 0, 0).unwrap(),
        }],
        threshold_history: vec![],
    }
}

#[tokio::test]
async fn state_round_trips_through_the_state_index() {
    let server = MockServer::start().await;
    let doc_path = "/rule-runner-state/_doc/7d091a76-0737-11ef-8469-f661ea17fbcc";
    Mock::given(method("GET"))
        .and(path(doc_path))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "_index": "rule-runner-state", "_id": "7d091a76-0737-11ef-8469-f661ea17fbcc", "found": false})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(doc_path))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"result": "created"})))
        .expect(1)
        .mount(&server)
        .await;
    let store = store(&server);
    assert_eq!(
        store
            .load("7d091a76-0737-11ef-8469-f661ea17fbcc")
            .await
            .unwrap(),
        None
    );
    store.save(&state()).await.unwrap();
    let saved = body_json(&server.received_requests().await.unwrap()[1]);
    assert_eq!(saved["watermark"], "2025-01-01T12:00:00Z");
    assert_eq!(saved["open_gaps"][0]["end"], "2024-12-31T11:00:00Z");
    assert!(saved["updated_at"].is_string());

    Mock::given(method("GET"))
        .and(path(doc_path))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_index": "rule-runner-state", "_id": "7d091a76-0737-11ef-8469-f661ea17fbcc",
            "_version": 2, "_seq_no": 4, "_primary_term": 1, "found": true, "_source": saved})))
        .mount(&server)
        .await;
    assert_eq!(
        store
            .load("7d091a76-0737-11ef-8469-f661ea17fbcc")
            .await
            .unwrap(),
        Some(state())
    );
}

#[tokio::test]
async fn a_missing_state_index_is_an_error_not_a_fresh_start() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(es_error(
            404,
            "index_not_found_exception",
            "no such index [rule-runner-state]",
        ))
        .mount(&server)
        .await;
    match store(&server).load("r1").await {
        Err(PortError::Permanent(message)) => {
            assert!(message.contains("no such index"), "{message}")
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn execution_records_are_keyed_by_run() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path(
            "/rule-runner-executions/_doc/5d5a25b3-52da-4fc2-9945-06f6e4c0d9c8",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"result": "created"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-executions/_doc"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"result": "created"})))
        .expect(1)
        .mount(&server)
        .await;
    let store = store(&server);
    let record = json!({"execution_uuid": "5d5a25b3-52da-4fc2-9945-06f6e4c0d9c8",
        "rule_id": "r1", "status": "succeeded", "alerts_created": 3});
    store.record_execution(&record).await.unwrap();
    store
        .record_execution(&json!({"rule_id": "r1", "@timestamp": "2025-01-01T12:00:00Z"}))
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    let first = body_json(&requests[0]);
    assert_eq!(first["alerts_created"], 3);
    assert!(first["@timestamp"].is_string(), "a timestamp is added");
    assert_eq!(
        body_json(&requests[1])["@timestamp"],
        "2025-01-01T12:00:00Z",
        "kept when given"
    );
    assert!(store.record_execution(&json!([1, 2])).await.is_err());
}

//! The alert sink against a mock cluster: existing-id lookup, bulk `create` per-item
//! outcomes, retries with backoff, dead letters; and the state store.

use chrono::{TimeZone, Utc};
use rule_runner::elasticsearch::{Dialect, EsAlertSink};
use rule_runner::engine::{AlertDoc, AlertSink, PortError, WriteOutcome};
use serde_json::{Value, json};
use wiremock::matchers::{body_json as body_is, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::mock::{body_json, client_for, client_for_uri, es_error, unauthorized, unused_port_uri};

/// A sink over a mock Elasticsearch whose engine is known, so no `GET /` comes first.
fn sink(server: &MockServer) -> EsAlertSink {
    EsAlertSink::new(
        client_for(server).with_dialect(Dialect::ELASTICSEARCH),
        "rule-runner-alerts",
        "rule-runner-dead-letter",
    )
}

fn alert(id: &str) -> AlertDoc {
    AlertDoc {
        id: id.into(),
        rule_id: "151d8f72-0747-11ef-a0c2-f661ea17fbcc".into(),
        event_time: Utc.with_ymd_and_hms(2025, 1, 1, 11, 47, 5).unwrap(),
        document: json!({"@timestamp": "2025-01-01T12:00:03.512Z", "kibana.alert.uuid": id}),
    }
}

fn created(id: &str) -> Value {
    json!({"create": {"_index": "rule-runner-alerts", "_id": id, "_version": 1, "result": "created",
        "_shards": {"total": 1, "successful": 1, "failed": 0}, "_seq_no": 0, "_primary_term": 1,
        "status": 201}})
}

fn item_error(id: &str, status: u16, ty: &str, reason: &str) -> Value {
    json!({"create": {"_index": "rule-runner-alerts", "_id": id, "status": status,
        "error": {"type": ty, "reason": reason, "index_uuid": "Ue9p8xGDRdy0nq8oBS8DJw",
                  "shard": "0", "index": "rule-runner-alerts"}}})
}

fn conflict(id: &str) -> Value {
    item_error(
        id,
        409,
        "version_conflict_engine_exception",
        &format!("[{id}]: version conflict, document already exists (current version [1])"),
    )
}

fn overloaded(id: &str) -> Value {
    item_error(
        id,
        429,
        "es_rejected_execution_exception",
        "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=52, max_coordinating_and_primary_bytes=53687091]",
    )
}

fn bulk_reply(items: Vec<Value>) -> ResponseTemplate {
    let errors = items.iter().any(|i| i["create"]["status"] != 201);
    ResponseTemplate::new(200).set_body_json(json!({"errors": errors, "took": 7, "items": items}))
}

/// The ids in a `_bulk` body, in order.
fn bulk_ids(request: &wiremock::Request) -> Vec<String> {
    String::from_utf8_lossy(&request.body)
        .lines()
        .step_by(2)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["create"]["_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn existing_ids_are_an_ids_query_over_every_index_behind_the_alias() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_search"))
        .and(query_param("ignore_unavailable", "true"))
        .and(query_param("allow_no_indices", "true"))
        .and(body_is(json!({
            "size": 6, "_source": false, "track_total_hits": false,
            "query": {"bool": {"filter": [{"ids": {"values": ["a1", "a2", "a3"]}}]}}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "took": 1, "timed_out": false,
            "hits": {"max_score": null, "hits": [
                // a1 before a rollover, a3 after: both found through the alias.
                {"_index": "rule-runner-alerts-000001", "_id": "a1", "_score": null},
                {"_index": "rule-runner-alerts-000002", "_id": "a3", "_score": null}
            ]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let ids: Vec<String> = ["a1", "a2", "a3"].map(String::from).into();
    let found = sink(&server).existing_ids(&ids).await.unwrap();
    assert_eq!(found, ["a1", "a3"].map(String::from).into());
}

#[tokio::test]
async fn writes_to_the_own_alias_never_create_an_index() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .and(query_param("require_alias", "true"))
        .respond_with(bulk_reply(vec![created("a1")]))
        .expect(1)
        .mount(&server)
        .await;
    let outcomes = sink(&server).create(&[alert("a1")]).await.unwrap();
    assert_eq!(outcomes, [WriteOutcome::Created]);
}

#[tokio::test]
async fn dead_lettered_ids_look_in_the_dead_letter_index() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-dead-letter/_mget"))
        .and(query_param("_source", "false"))
        .and(body_is(json!({"ids": ["a1", "a2"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"docs": [
            {"_index": "rule-runner-dead-letter", "_id": "a1", "found": false},
            {"_index": "rule-runner-dead-letter", "_id": "a2", "_version": 3, "_seq_no": 4, "_primary_term": 1, "found": true}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let ids: Vec<String> = ["a1", "a2"].map(String::from).into();
    let found = sink(&server).dead_lettered_ids(&ids).await.unwrap();
    assert_eq!(found, ["a2"].map(String::from).into());
}

#[tokio::test]
async fn bulk_create_body_is_create_actions_with_the_documents() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .and(query_param("refresh", "true"))
        .respond_with(bulk_reply(vec![created("a1"), created("a2")]))
        .expect(1)
        .mount(&server)
        .await;
    let outcomes = sink(&server)
        .create(&[alert("a1"), alert("a2")])
        .await
        .unwrap();
    assert_eq!(outcomes, [WriteOutcome::Created, WriteOutcome::Created]);
    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(
        request
            .headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap(),
        "application/x-ndjson"
    );
    let expected = [
        r#"{"create":{"_id":"a1"}}"#,
        r#"{"@timestamp":"2025-01-01T12:00:03.512Z","kibana.alert.uuid":"a1"}"#,
        r#"{"create":{"_id":"a2"}}"#,
        r#"{"@timestamp":"2025-01-01T12:00:03.512Z","kibana.alert.uuid":"a2"}"#,
        "",
    ]
    .join("\n");
    assert_eq!(String::from_utf8_lossy(&request.body), expected);
}

#[tokio::test]
async fn per_item_mix_of_201_409_429_400() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .respond_with(bulk_reply(vec![
            created("a1"),
            conflict("a2"),
            overloaded("a3"),
            json!({"create": {"_index": "rule-runner-alerts", "_id": "a4", "status": 400,
                "error": {"type": "document_parsing_exception",
                    "reason": "[1:98] failed to parse field [source.port] of type [long] in document with id 'a4'. Preview of field's value: 'http'",
                    "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"http\""}}}}),
        ]))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .respond_with(bulk_reply(vec![created("a3")]))
        .mount(&server)
        .await;

    let outcomes = sink(&server)
        .create(&[alert("a1"), alert("a2"), alert("a3"), alert("a4")])
        .await
        .unwrap();
    assert_eq!(outcomes[0], WriteOutcome::Created);
    assert_eq!(outcomes[1], WriteOutcome::Duplicate);
    assert_eq!(
        outcomes[2],
        WriteOutcome::Created,
        "the 429 was retried and then created"
    );
    match &outcomes[3] {
        WriteOutcome::Rejected(reason) => {
            assert!(
                reason.starts_with("400 document_parsing_exception"),
                "{reason}"
            );
            assert!(reason.contains("source.port"), "{reason}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(bulk_ids(&requests[0]), ["a1", "a2", "a3", "a4"]);
    assert_eq!(
        bulk_ids(&requests[1]),
        ["a3"],
        "only the overloaded item is sent again"
    );
}

#[tokio::test]
async fn items_still_failing_after_the_retries_are_failed_not_lost() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .respond_with(bulk_reply(vec![overloaded("a1")]))
        .expect(3) // quick_retry(): three attempts in all
        .mount(&server)
        .await;
    let outcomes = sink(&server).create(&[alert("a1")]).await.unwrap();
    match &outcomes[0] {
        WriteOutcome::Failed(reason) => {
            assert!(reason.contains("after 3 attempts"), "{reason}");
            assert!(
                reason.contains("es_rejected_execution_exception"),
                "{reason}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_whole_request_503_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .respond_with(es_error(
            503,
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .respond_with(bulk_reply(vec![created("a1")]))
        .expect(1)
        .mount(&server)
        .await;
    let outcomes = sink(&server).create(&[alert("a1")]).await.unwrap();
    assert_eq!(outcomes, [WriteOutcome::Created]);
}

#[tokio::test]
async fn elasticsearch_down_fails_the_alerts_and_the_lookup_is_transient() {
    let client = client_for_uri(&unused_port_uri());
    let sink = EsAlertSink::new(client, "rule-runner-alerts", "rule-runner-dead-letter");
    let outcomes = sink.create(&[alert("a1"), alert("a2")]).await.unwrap();
    for outcome in &outcomes {
        match outcome {
            WriteOutcome::Failed(reason) => {
                assert!(reason.contains("cannot reach Elasticsearch"), "{reason}")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    match sink.existing_ids(&["a1".to_string()]).await {
        Err(PortError::Transient(message)) => {
            assert!(message.contains("is it running?"), "{message}")
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_401_on_write_is_permanent_and_explained() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(unauthorized())
        .expect(1)
        .mount(&server)
        .await;
    match sink(&server).create(&[alert("a1")]).await {
        Err(PortError::Permanent(message)) => {
            assert!(message.contains("401 Unauthorized"), "{message}");
            assert!(message.contains("ELASTICSEARCH_USERNAME"), "{message}");
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test]
async fn dead_letters_keep_the_document_and_the_reason() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/rule-runner-dead-letter/_doc/a4"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "_index": "rule-runner-dead-letter", "_id": "a4", "_version": 1, "result": "created",
            "_shards": {"total": 1, "successful": 1, "failed": 0}, "_seq_no": 0, "_primary_term": 1})))
        .expect(1)
        .mount(&server)
        .await;
    sink(&server)
        .dead_letter(
            &alert("a4"),
            "400 document_parsing_exception: failed to parse field [source.port]",
        )
        .await
        .unwrap();
    let body = body_json(&server.received_requests().await.unwrap()[0]);
    assert_eq!(body["alert_id"], "a4");
    assert_eq!(body["rule_id"], "151d8f72-0747-11ef-a0c2-f661ea17fbcc");
    assert_eq!(body["event_time"], "2025-01-01T11:47:05.000Z");
    assert_eq!(
        body["reason"],
        "400 document_parsing_exception: failed to parse field [source.port]"
    );
    assert_eq!(body["document"], alert("a4").document);
    assert!(body["@timestamp"].as_str().unwrap().ends_with('Z'));
}

fn security_sink(server: &MockServer) -> EsAlertSink {
    EsAlertSink::to_target(
        client_for(server),
        rule_runner::elasticsearch::AlertsTarget::Security {
            space: "soc".into(),
        },
        "rule-runner-dead-letter",
    )
}

/// The Security destination: existing ids are searched over every index of the space (hidden
/// ones included, the space's alerts only), and writes require the alias.
#[tokio::test]
async fn security_lookups_search_the_space_and_writes_require_the_alias() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/.alerts-security.alerts-soc*/_search"))
        .and(query_param("expand_wildcards", "open,hidden"))
        .and(query_param("ignore_unavailable", "true"))
        .and(body_is(json!({
            "size": 4, "_source": false, "track_total_hits": false,
            "query": {"bool": {"filter": [
                {"ids": {"values": ["a", "b"]}},
                {"term": {"kibana.space_ids": "soc"}}
            ]}}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "hits": {"hits": [{"_index": ".internal.alerts-security.alerts-soc-000001", "_id": "a"}]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/.alerts-security.alerts-soc/_bulk"))
        .and(query_param("require_alias", "true"))
        .respond_with(bulk_reply(vec![created("b")]))
        .expect(1)
        .mount(&server)
        .await;
    let sink = security_sink(&server);
    let existing = sink
        .existing_ids(&["a".into(), "b".into()])
        .await
        .expect("a lookup");
    assert_eq!(existing.into_iter().collect::<Vec<_>>(), ["a"]);
    let outcomes = sink.create(&[alert("b")]).await.expect("a write");
    assert_eq!(outcomes, [WriteOutcome::Created]);
}

#[tokio::test]
async fn a_403_on_kibanas_alias_names_the_role_to_grant() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(es_error(
            403,
            "security_exception",
            "action [indices:data/write/bulk[s]] is unauthorized for user [svc] with effective roles [viewer] on indices [.internal.alerts-security.alerts-soc-000001], this action is granted by the index privileges [create_doc,create,index,write,all]",
        ))
        .mount(&server)
        .await;
    let err = security_sink(&server)
        .create(&[alert("b")])
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, PortError::Permanent(_)), "{text}");
    assert!(
        text.contains("create_doc") && text.contains("rule_runner_security.json"),
        "{text}"
    );
}

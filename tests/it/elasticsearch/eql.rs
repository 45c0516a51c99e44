//! EQL rules against a mock Elasticsearch: the exact `_eql/search` Kibana's EQL executor
//! sends, replies as Elasticsearch 8.17 shapes them (events, sequences with join keys, a
//! missing event), and the failures (a 400 on a query the cluster refuses, a timed-out or
//! partial search, OpenSearch without EQL).

use std::sync::Arc;

use rule_runner::elasticsearch::{Dialect, EsEventSource};
use rule_runner::engine::{EqlQuery, EventSource, PortError};
use rule_runner::rule::Rule;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::mock::{body_json, client_for, es_error};
use super::source::window;

const SEQUENCE: &str = r#"sequence by user.name with maxspan=5m
  [any where event.action == "CreateFunction20150331"]
  [any where event.action == "AddPermission20150331v2"]"#;

fn rule(query: &str) -> Arc<Rule> {
    Arc::new(
        serde_json::from_value(json!({
            "rule_id": "3c4e5f60-eql-contract", "name": "Function created then made public",
            "type": "eql", "language": "eql", "query": query,
            "index": ["filebeat-*", "logs-aws.cloudtrail-*"],
            "timestamp_override": "event.ingested",
            "event_category_override": "event.type",
            "tiebreaker_field": "event.sequence",
            "filters": [{"meta": {"negate": true, "disabled": false, "key": "user.name",
                                  "type": "phrase", "params": {"query": "deployer"}},
                         "query": {"match_phrase": {"user.name": "deployer"}}}],
            "from": "now-60m", "to": "now", "interval": "10m", "max_signals": 100,
            "risk_score": 47, "severity": "medium", "enabled": true
        }))
        .expect("a valid rule"),
    )
}

fn event(id: &str, action: &str, at: &str) -> Value {
    json!({"_index": ".ds-logs-aws.cloudtrail-default-2025.01.01-000001", "_id": id,
           "_version": 1, "_seq_no": 3, "_primary_term": 1,
           "_source": {"@timestamp": at, "event": {"id": id, "action": action, "ingested": at},
                       "user": {"name": "mallory"}},
           "fields": {"@timestamp": [at], "event.ingested": [at]}})
}

fn source(server: &MockServer) -> EsEventSource {
    EsEventSource::new(client_for(server).with_dialect(Dialect::ELASTICSEARCH))
}

fn eql_query(rule: Arc<Rule>) -> EqlQuery {
    EqlQuery {
        rule,
        window: window(),
        size: 100,
    }
}

/// The body for [`rule`] over [`window`]: Kibana's `buildEqlSearchRequest` (8.17).
fn expected_body(query: &str) -> Value {
    let range = |field: &str| {
        json!({"range": {field: {
        "gte": "2025-01-01T11:00:00.000Z", "lte": "2025-01-01T12:00:00.000Z",
        "format": "strict_date_optional_time"}}})
    };
    json!({
        "size": 100,
        "query": query,
        "filter": {"bool": {"filter": [
            {"bool": {"minimum_should_match": 1, "should": [
                range("event.ingested"),
                {"bool": {"filter": [
                    range("@timestamp"),
                    {"bool": {"must_not": {"exists": {"field": "event.ingested"}}}}
                ]}}
            ]}},
            {"bool": {"must": [], "filter": [], "should": [],
                      "must_not": [{"match_phrase": {"user.name": "deployer"}}]}}
        ]}},
        "event_category_field": "event.type",
        "tiebreaker_field": "event.sequence",
        "fields": [
            {"field": "*", "include_unmapped": true},
            {"field": "event.ingested", "format": "strict_date_optional_time"},
            {"field": "@timestamp", "format": "strict_date_optional_time"}
        ]
    })
}

#[tokio::test]
async fn a_sequence_rule_sends_kibanas_request_and_reads_the_sequences_back() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_eql/search"))
        .and(query_param("allow_no_indices", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "is_partial": false, "is_running": false, "took": 14, "timed_out": false,
            "hits": {"total": {"value": 1, "relation": "eq"}, "sequences": [{
                "join_keys": ["mallory"],
                "events": [
                    event("c1", "CreateFunction20150331", "2025-01-01T11:50:00.000Z"),
                    event("p1", "AddPermission20150331v2", "2025-01-01T11:52:00.000Z")
                ]
            }]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let reply = source(&server)
        .eql(eql_query(rule(SEQUENCE)))
        .await
        .unwrap();
    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(body_json(request), expected_body(SEQUENCE));
    assert!(reply.events.is_empty());
    assert_eq!(reply.sequences.len(), 1);
    let ids: Vec<&str> = reply.sequences[0].iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["c1", "p1"]);
    assert_eq!(
        reply.sequences[0][1].timestamp.to_rfc3339(),
        "2025-01-01T11:52:00+00:00",
        "placed by the timestamp override"
    );
    assert_eq!(
        reply.sequences[0][0].index,
        ".ds-logs-aws.cloudtrail-default-2025.01.01-000001"
    );
}

#[tokio::test]
async fn an_event_query_reads_events_and_a_missing_event_holds_no_alert() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_eql/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "is_partial": false, "is_running": false, "took": 3, "timed_out": false,
            "hits": {"total": {"value": 1, "relation": "eq"}, "events": [
                event("p1", "AddPermission20150331v2", "2025-01-01T11:52:00.000Z")
            ]}
        })))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_eql/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "is_partial": false, "is_running": false, "took": 3, "timed_out": false,
            "hits": {"total": {"value": 1, "relation": "eq"}, "sequences": [{
                "join_keys": ["mallory"],
                "events": [
                    event("c1", "CreateFunction20150331", "2025-01-01T11:50:00.000Z"),
                    {"_index": "", "_id": "", "_source": {}, "missing": true}
                ]
            }]}
        })))
        .mount(&server)
        .await;
    let source = source(&server);
    let query = r#"any where event.action == "AddPermission20150331v2""#;
    let reply = source.eql(eql_query(rule(query))).await.unwrap();
    assert_eq!(reply.events.len(), 1);
    assert_eq!(reply.events[0].id, "p1");
    let reply = source.eql(eql_query(rule(SEQUENCE))).await.unwrap();
    let ids: Vec<&str> = reply.sequences[0].iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["c1"], "the missing event is left out");
}

#[tokio::test]
async fn a_query_the_cluster_refuses_is_permanent_and_says_why() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_eql/search"))
        .respond_with(es_error(
            400,
            "verification_exception",
            "Found 1 problem\nline 1:11: Unknown column [event.actoin], did you mean [event.action]?",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let err = source(&server)
        .eql(eql_query(rule(r#"any where event.actoin == "x""#)))
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Permanent(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("Unknown column [event.actoin]"), "{text}");
    assert!(
        text.contains("EQL search for rule `Function created then made public`"),
        "{text}"
    );
}

#[tokio::test]
async fn a_timed_out_or_partial_search_is_searched_again() {
    for reply in [
        json!({"is_partial": false, "is_running": false, "took": 30000, "timed_out": true,
               "hits": {"total": {"value": 0, "relation": "eq"}, "events": []}}),
        json!({"is_partial": true, "is_running": false, "took": 20, "timed_out": false,
               "shard_failures": [{"shard": 0, "index": "filebeat-2025.01.01",
                   "reason": {"type": "node_not_connected_exception", "reason": "[es-2] Node not connected"}}],
               "hits": {"total": {"value": 0, "relation": "eq"}, "events": []}}),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/filebeat-*,logs-aws.cloudtrail-*/_eql/search"))
            .respond_with(ResponseTemplate::new(200).set_body_json(reply))
            .mount(&server)
            .await;
        let err = source(&server)
            .eql(eql_query(rule(SEQUENCE)))
            .await
            .unwrap_err();
        assert!(matches!(err, PortError::Transient(_)), "{err:?}");
        assert!(err.to_string().contains("searched again next run"), "{err}");
    }
}

#[tokio::test]
async fn opensearch_has_no_eql_and_nothing_is_sent() {
    let server = MockServer::start().await;
    let opensearch = Dialect::from_root(&super::opensearch::opensearch_root());
    let source = EsEventSource::new(client_for(&server).with_dialect(opensearch));
    let err = source.eql(eql_query(rule(SEQUENCE))).await.unwrap_err();
    assert!(matches!(err, PortError::Permanent(_)), "{err:?}");
    assert!(err.to_string().contains("OpenSearch has no EQL"), "{err}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

//! new_terms and threshold runs of the engine over the Elasticsearch source: the exact group
//! requests each step sends (`docs/new-terms-and-threshold.md`), replies shaped like
//! Elasticsearch 8.17's, and the alerts the engine makes of them.

use std::sync::Arc;

use rule_runner::elasticsearch::source::EsEventSource;
use rule_runner::engine::memory::{MemorySink, MemoryStateStore};
use rule_runner::engine::shutdown::Shutdown;
use rule_runner::engine::{Engine, EngineConfig, ExecutionRecord};
use rule_runner::rule::Rule;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::mock::{body_json, client_for, es_error};
use crate::engine::t;

const SEARCH: &str = "/filebeat-*,logs-aws.cloudtrail-*/_search";

fn rule(kind: Value) -> Arc<Rule> {
    let mut rule = json!({
        "rule_id": "aggregating-contract", "name": "Aggregating", "language": "kuery",
        "query": "event.action: CreateAccessKey",
        "index": ["filebeat-*", "logs-aws.cloudtrail-*"],
        "from": "now-60m", "to": "now", "interval": "10m", "max_signals": 100,
        "risk_score": 21, "severity": "low", "enabled": true
    });
    if let (Value::Object(rule), Value::Object(kind)) = (&mut rule, kind) {
        rule.extend(kind);
    }
    Arc::new(serde_json::from_value(rule).expect("a valid rule"))
}

/// New terms of `user.name` against the last day.
fn new_terms_by_user() -> Arc<Rule> {
    rule(
        json!({"type": "new_terms", "new_terms_fields": ["user.name"],
                "history_window_start": "now-1d"}),
    )
}

/// `user.name` and `source.ip` are keywords, `event.action` too.
fn field_caps() -> Value {
    let caps = |ty: &str| json!({ ty: {"type": ty, "metadata_field": false, "searchable": true, "aggregatable": true}});
    json!({
        "indices": [".ds-logs-aws.cloudtrail-default-2025.01.01-000001"],
        "fields": {
            "event.action": caps("keyword"), "user.name": caps("keyword"),
            "source.ip": caps("ip"), "@timestamp": caps("date"),
        }
    })
}

/// A cluster answering `_field_caps`, and `_search` with `reply(body)`.
async fn cluster(reply: impl Fn(&Value) -> ResponseTemplate + Send + Sync + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_field_caps"))
        .respond_with(ResponseTemplate::new(200).set_body_json(field_caps()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(SEARCH))
        .respond_with(move |request: &Request| reply(&body_json(request)))
        .mount(&server)
        .await;
    server
}

struct Run {
    engine: Engine,
    sink: Arc<MemorySink>,
}

fn engine_over(server: &MockServer) -> Run {
    let sink = Arc::new(MemorySink::new());
    let engine = Engine::new(
        Arc::new(EsEventSource::new(client_for(server))),
        sink.clone(),
        Arc::new(MemoryStateStore::new()),
        EngineConfig::default(),
    );
    Run { engine, sink }
}

impl Run {
    async fn at(&self, rule: &Arc<Rule>, h: u32, m: u32) -> ExecutionRecord {
        self.engine
            .run_scheduled(rule, t(h, m), &Shutdown::never())
            .await
    }
}

/// The bodies of the `_search` requests received, in order.
async fn searches(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == SEARCH)
        .map(|r| {
            assert_eq!(
                r.url.query(),
                Some("allow_no_indices=true&ignore_unavailable=true")
            );
            body_json(r)
        })
        .collect()
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// A search reply around `aggregations`, as Elasticsearch 8.17 sends it.
fn aggregations(aggregations: Value) -> ResponseTemplate {
    ok(json!({
        "took": 4, "timed_out": false,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": 3, "relation": "eq"}, "max_score": null, "hits": []},
        "aggregations": aggregations
    }))
}

fn millis(text: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis() as f64)
        .unwrap_or_default()
}

fn bucket(key: Value, count: u64, first: &str, last: &str) -> Value {
    json!({"key": key, "doc_count": count,
           "first_seen": {"value": millis(first), "value_as_string": first},
           "last_seen": {"value": millis(last), "value_as_string": last}})
}

fn range(gte: &str, lte: &str) -> Value {
    json!({"range": {"@timestamp": {"gte": gte, "lte": lte, "format": "strict_date_optional_time"}}})
}

/// The rule's KQL as the translator renders it for a keyword field.
fn create_access_key() -> Value {
    json!({"bool": {"must": [], "filter": [{"bool": {"should": [
        {"term": {"event.action": {"value": "CreateAccessKey"}}}], "minimum_should_match": 1}}],
        "should": [], "must_not": []}})
}

fn min_max() -> Value {
    json!({"first_seen": {"min": {"field": "@timestamp"}},
           "last_seen": {"max": {"field": "@timestamp"}}})
}

fn only(users: &[&str]) -> Value {
    let should: Vec<Value> = users
        .iter()
        .map(|user| json!({"bool": {"filter": [{"term": {"user.name": user}}]}}))
        .collect();
    json!({"bool": {"should": should, "minimum_should_match": 1}})
}

#[tokio::test]
async fn a_new_terms_run_sends_the_window_terms_history_check_and_first_event_requests() {
    let window = range("2025-01-01T11:00:00.000Z", "2025-01-01T12:00:00.000Z");
    let history = range("2024-12-31T12:00:00.000Z", "2025-01-01T11:00:00.000Z");
    let server = cluster(move |body| {
        let filters = body["query"]["bool"]["filter"].as_array().cloned().unwrap_or_default();
        let is_history = filters.iter().any(|f| f["range"]["@timestamp"]["gte"] == "2024-12-31T12:00:00.000Z");
        let composite = &body["aggs"]["groups"]["composite"];
        if composite.is_null() {
            return es_error(400, "parsing_exception", "unexpected body");
        }
        if composite["after"].is_object() {
            return aggregations(json!({"groups": {"buckets": []}}));
        }
        if is_history {
            // alice called CreateAccessKey yesterday: only bob is new.
            return aggregations(json!({"groups": {"after_key": {"user.name": "alice"}, "buckets": [
                bucket(json!({"user.name": "alice"}), 1, "2024-12-31T20:00:00.000Z", "2024-12-31T20:00:00.000Z")]}}));
        }
        if body["aggs"]["groups"]["aggs"]["first_event"].is_object() {
            let mut found = bucket(json!({"user.name": "bob"}), 2, "2025-01-01T11:20:00.000Z", "2025-01-01T11:40:00.000Z");
            found["first_event"] = json!({"hits": {"total": {"value": 2, "relation": "eq"}, "max_score": null, "hits": [{
                "_index": ".ds-logs-aws.cloudtrail-default-2025.01.01-000001", "_id": "doc-b1", "_score": null,
                "_source": {"@timestamp": "2025-01-01T11:20:00.000Z", "event": {"id": "b1", "action": "CreateAccessKey"},
                            "user": {"name": "bob"}},
                "sort": [1735730400000u64, "b1"]}]}});
            return aggregations(json!({"groups": {"after_key": {"user.name": "bob"}, "buckets": [found]}}));
        }
        aggregations(json!({"groups": {"after_key": {"user.name": "bob"}, "buckets": [
            bucket(json!({"user.name": "alice"}), 1, "2025-01-01T11:10:00.000Z", "2025-01-01T11:10:00.000Z"),
            bucket(json!({"user.name": "bob"}), 2, "2025-01-01T11:20:00.000Z", "2025-01-01T11:40:00.000Z")]}}))
    })
    .await;
    let run = engine_over(&server);
    let rule = new_terms_by_user();
    let record = run.at(&rule, 12, 0).await;
    assert!(record.errors.is_empty(), "{record:?}");

    let sources = json!([{"user.name": {"terms": {"field": "user.name"}}}]);
    let first_event = json!({"top_hits": {"size": 1, "_source": true, "sort": [
        {"@timestamp": {"order": "asc", "unmapped_type": "date"}},
        {"event.id": {"order": "asc", "unmapped_type": "keyword"}}]}});
    let mut with_first_event = min_max();
    with_first_event["first_event"] = first_event;
    assert_eq!(
        searches(&server).await,
        vec![
            // The window's terms: one page of up to 10,000 (short, so the last).
            json!({"size": 0,
                   "query": {"bool": {"filter": [create_access_key(), window.clone()]}},
                   "aggs": {"groups": {"composite": {"size": 10000, "sources": sources},
                                       "aggs": min_max()}}}),
            // Which of them the history holds.
            json!({"size": 0,
                   "query": {"bool": {"filter": [create_access_key(), history, only(&["alice", "bob"])]}},
                   "aggs": {"groups": {"composite": {"size": 2, "sources": sources},
                                       "aggs": min_max()}}}),
            // The earliest event of each new one; a full page asks for the next.
            json!({"size": 0,
                   "query": {"bool": {"filter": [create_access_key(), window.clone(), only(&["bob"])]}},
                   "aggs": {"groups": {"composite": {"size": 1, "sources": sources},
                                       "aggs": with_first_event}}}),
            json!({"size": 0,
                   "query": {"bool": {"filter": [create_access_key(), window, only(&["bob"])]}},
                   "aggs": {"groups": {"composite": {"size": 1, "sources": sources,
                                                     "after": {"user.name": "bob"}},
                                       "aggs": with_first_event}}}),
        ]
    );
    let alerts = run.sink.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0].document;
    assert_eq!(alert["kibana.alert.new_terms"], json!(["bob"]));
    assert_eq!(alert["kibana.alert.original_event.id"], json!("b1"));
    assert_eq!(
        alert["kibana.alert.original_time"],
        json!("2025-01-01T11:20:00.000Z")
    );
    assert_eq!(alert["kibana.alert.rule.type"], json!("new_terms"));
}

#[tokio::test]
async fn a_history_check_with_too_many_clauses_is_sent_again_in_halves() {
    let users: Vec<String> = (0..600).map(|n| format!("user-{n:03}")).collect();
    let window_buckets: Vec<Value> = users
        .iter()
        .map(|u| {
            bucket(
                json!({"user.name": u}),
                1,
                "2025-01-01T11:10:00.000Z",
                "2025-01-01T11:10:00.000Z",
            )
        })
        .collect();
    let server = cluster(move |body| {
        let should = body["query"]["bool"]["filter"][2]["bool"]["should"].as_array().map(Vec::len);
        match should {
            None => aggregations(json!({"groups": {"buckets": window_buckets.clone()}})),
            Some(n) if n > 300 => ResponseTemplate::new(400).set_body_json(json!({"error": {
                "root_cause": [{"type": "too_many_nested_clauses",
                    "reason": "Query contains too many nested clauses; maxClauseCount is set to 1024"}],
                "type": "search_phase_execution_exception", "reason": "all shards failed", "phase": "query",
                "caused_by": {"type": "too_many_nested_clauses",
                    "reason": "Query contains too many nested clauses; maxClauseCount is set to 1024"}},
                "status": 400})),
            // Every user is known: nothing new, no alert.
            Some(_) => {
                let terms = &body["query"]["bool"]["filter"][2]["bool"]["should"];
                let buckets: Vec<Value> = terms.as_array().into_iter().flatten()
                    .map(|t| bucket(json!({"user.name": t["bool"]["filter"][0]["term"]["user.name"]}), 1,
                        "2024-12-31T20:00:00.000Z", "2024-12-31T20:00:00.000Z"))
                    .collect();
                aggregations(json!({"groups": {"buckets": buckets}}))
            }
        }
    })
    .await;
    let run = engine_over(&server);
    let rule = new_terms_by_user();
    let record = run.at(&rule, 12, 0).await;
    assert!(record.errors.is_empty(), "{record:?}");
    assert!(
        record
            .warnings
            .iter()
            .any(|w| w.contains("in batches of 250")),
        "{:?}",
        record.warnings
    );
    let batch_sizes: Vec<usize> = searches(&server)
        .await
        .iter()
        .map(|b| {
            b["aggs"]["groups"]["composite"]["size"]
                .as_u64()
                .unwrap_or(0) as usize
        })
        .collect();
    // The window, 500 refused, then 250 + 250 + 100 checked.
    assert_eq!(batch_sizes, vec![10000, 500, 250, 250, 100]);
    assert_eq!(run.sink.len(), 0);
}

#[tokio::test]
async fn a_threshold_run_counts_groups_with_cardinality_and_excludes_them_once_alerted() {
    let server = cluster(|body| {
        if body["query"]["bool"]["must_not"].is_array() {
            // After the alert: alice's counted events are excluded, nothing passes.
            return aggregations(json!({"groups": {"buckets": []}}));
        }
        let mut alice = bucket(
            json!({"user.name": "alice"}),
            3,
            "2025-01-01T11:10:00.000Z",
            "2025-01-01T11:30:00.000Z",
        );
        alice["cardinality_count"] = json!({"value": 2});
        let mut bob = bucket(
            json!({"user.name": "bob"}),
            1,
            "2025-01-01T11:40:00.000Z",
            "2025-01-01T11:40:00.000Z",
        );
        bob["cardinality_count"] = json!({"value": 1});
        aggregations(
            json!({"groups": {"after_key": {"user.name": "bob"}, "buckets": [alice, bob]}}),
        )
    })
    .await;
    let run = engine_over(&server);
    let rule = rule(
        json!({"type": "threshold", "threshold": {"field": ["user.name"], "value": 2,
        "cardinality": [{"field": "source.ip", "value": 2}]}}),
    );
    let first = run.at(&rule, 12, 0).await;
    assert!(first.errors.is_empty(), "{first:?}");
    let second = run.at(&rule, 12, 10).await;
    assert!(second.errors.is_empty(), "{second:?}");

    let mut metrics = min_max();
    metrics["cardinality_count"] = json!({"cardinality": {"field": "source.ip"}});
    let sources = json!([{"user.name": {"terms": {"field": "user.name"}}}]);
    assert_eq!(
        searches(&server).await,
        vec![
            json!({"size": 0,
                   "query": {"bool": {"filter": [create_access_key(),
                        range("2025-01-01T11:00:00.000Z", "2025-01-01T12:00:00.000Z")]}},
                   "aggs": {"groups": {"composite": {"size": 10000, "sources": sources},
                                       "aggs": metrics}}}),
            // Ten minutes later: alice's events up to the last one counted are not counted again.
            json!({"size": 0,
                   "query": {"bool": {
                       "filter": [create_access_key(),
                           range("2025-01-01T11:10:00.000Z", "2025-01-01T12:10:00.000Z")],
                       "must_not": [{"bool": {"filter": [
                           {"range": {"@timestamp": {"lte": "2025-01-01T11:30:00.000Z",
                                                     "format": "strict_date_optional_time"}}},
                           {"term": {"user.name": "alice"}}]}}]}},
                   "aggs": {"groups": {"composite": {"size": 10000, "sources": sources},
                                       "aggs": metrics}}}),
        ]
    );
    let alerts = run.sink.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        alerts[0].document["kibana.alert.threshold_result"],
        json!({"terms": [{"field": "user.name", "value": "alice"}], "count": 3,
               "from": "2025-01-01T11:10:00.000Z",
               "cardinality": [{"field": "source.ip", "value": 2}]})
    );
}

#[tokio::test]
async fn a_cluster_repeating_a_composite_page_fails_the_window_instead_of_looping() {
    // Every request, whatever its `after`, gets the same full page back.
    let server = cluster(|body| {
        let size = body["aggs"]["groups"]["composite"]["size"]
            .as_u64()
            .unwrap_or(1);
        let buckets: Vec<Value> = (0..size)
            .map(|n| {
                bucket(
                    json!({"user.name": format!("user-{n}")}),
                    1,
                    "2025-01-01T11:10:00.000Z",
                    "2025-01-01T11:10:00.000Z",
                )
            })
            .collect();
        aggregations(json!({"groups": {"after_key": {"user.name": "user-0"}, "buckets": buckets}}))
    })
    .await;
    let run = engine_over(&server);
    let rule =
        rule(json!({"type": "threshold", "threshold": {"field": ["user.name"], "value": 1}}));
    let record = run.at(&rule, 12, 0).await;
    assert!(
        record
            .errors
            .iter()
            .any(|e| e.contains("with the same position again")),
        "{record:?}"
    );
    assert_eq!(searches(&server).await.len(), 2);
    assert_eq!(run.sink.len(), 0);
}

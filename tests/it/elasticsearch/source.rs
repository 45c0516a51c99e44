//! The event source against a mock cluster: `_field_caps`, point in time open/close, paging,
//! missing indices, shard failures, retries and timeouts. Shared fixtures for the other
//! modules (the shipped rules, a window, realistic replies) live here too.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use rule_runner::elasticsearch::source::EsEventSource;
use rule_runner::engine::{EventHit, EventSource, PortError, RuleWindow, WindowQuery};
use rule_runner::rule::{Rule, shipped_rules};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::bodies::{fields_and_sort, kibana_first_page, public_invocation_kql};
use super::mock::{body_json, client_for, es_error};

pub const LAYER_ADDED: &str = "7d091a76-0737-11ef-8469-f661ea17fbcc";
pub const PUBLIC_INVOCATION: &str = "151d8f72-0747-11ef-a0c2-f661ea17fbcc";

pub fn shipped(rule_id: &str) -> Arc<Rule> {
    shipped_rules()
        .runnable()
        .find(|r| r.rule.rule_id == rule_id)
        .map(|r| r.rule.clone())
        .unwrap()
}

/// The window of a run started at 2025-01-01T12:00:00Z with `from: now-60m`.
pub fn window() -> RuleWindow {
    RuleWindow {
        start: Utc.with_ymd_and_hms(2025, 1, 1, 11, 0, 0).unwrap(),
        end: Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap(),
    }
}

/// Scenario C of `kql.md` §11: `event.dataset` is keyword in `filebeat-*` and
/// constant_keyword in `logs-aws.cloudtrail-*`; the other fields are keyword everywhere.
pub fn field_caps_reply() -> Value {
    let caps = |ty: &str| json!({"type": ty, "metadata_field": false, "searchable": true, "aggregatable": true});
    let with_indices = |ty: &str, index: &str| {
        let mut c = caps(ty);
        c["indices"] = json!([index]);
        c
    };
    let object = json!({"object": {"type": "object", "metadata_field": false, "searchable": false, "aggregatable": false}});
    json!({
        "indices": ["filebeat-8.17.0-2025.01.01", ".ds-logs-aws.cloudtrail-default-2025.01.01-000001"],
        "fields": {
            "event": object,
            "aws": object,
            "aws.cloudtrail": object,
            "event.dataset": {
                "keyword": with_indices("keyword", "filebeat-8.17.0-2025.01.01"),
                "constant_keyword": with_indices("constant_keyword", ".ds-logs-aws.cloudtrail-default-2025.01.01-000001")
            },
            "event.provider": {"keyword": caps("keyword")},
            "event.outcome": {"keyword": caps("keyword")},
            "event.action": {"keyword": caps("keyword")},
            "aws.cloudtrail.request_parameters": {"keyword": caps("keyword")},
            "event.ingested": {"date": caps("date")},
            "@timestamp": {"date": caps("date")}
        }
    })
}

// --- the source over a mock cluster -------------------------------------------------------

pub fn hit(
    index: &str,
    id: &str,
    ingested: Option<&str>,
    timestamp: &str,
    shard_doc: u64,
) -> Value {
    let millis = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .timestamp_millis()
    };
    let mut source =
        json!({"@timestamp": timestamp, "event": {"id": id, "dataset": "aws.cloudtrail"}});
    let mut fields = json!({"@timestamp": [timestamp]});
    let sort_ingested = match ingested {
        Some(t) => {
            source["event"]["ingested"] = json!(t);
            fields["event.ingested"] = json!([t]);
            json!(millis(t))
        }
        None => json!(9223372036854775807u64),
    };
    json!({"_index": index, "_id": id, "_score": null, "_source": source, "fields": fields,
           "sort": [sort_ingested, millis(timestamp), shard_doc]})
}

pub fn search_reply(pit_id: &str, hits: Vec<Value>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "pit_id": pit_id, "took": 3, "timed_out": false,
        "_shards": {"total": 2, "successful": 2, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": hits.len(), "relation": "eq"}, "max_score": null, "hits": hits}
    }))
}

async fn mount_field_caps(server: &MockServer, reply: Value) {
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_field_caps"))
        .and(query_param("ignore_unavailable", "true"))
        .and(query_param("allow_no_indices", "true"))
        .and(query_param("include_unmapped", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply))
        .mount(server)
        .await;
}

async fn mount_pit(server: &MockServer, opens: u64) {
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_pit"))
        .and(query_param("keep_alive", "5m"))
        .and(query_param("ignore_unavailable", "true"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "pit-1",
            "_shards": {"total": 2, "successful": 2, "skipped": 0, "failed": 0}})),
        )
        .expect(opens)
        .mount(server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/_pit"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"succeeded": true, "num_freed": 1})),
        )
        .mount(server)
        .await;
}

fn query(rule: Arc<Rule>, page_size: usize) -> WindowQuery {
    WindowQuery {
        rule,
        window: window(),
        page_size,
    }
}

fn requests_to<'a>(
    requests: &'a [wiremock::Request],
    method: &str,
    path: &str,
) -> Vec<&'a wiremock::Request> {
    requests
        .iter()
        .filter(|r| r.method.as_str() == method && r.url.path() == path)
        .collect()
}

/// A mock cluster with the rule indices' field caps and a point in time to open `opens`
/// times; the test mounts its `_search` replies.
async fn searchable_cluster(opens: u64) -> MockServer {
    let server = MockServer::start().await;
    mount_field_caps(&server, field_caps_reply()).await;
    mount_pit(&server, opens).await;
    server
}

/// The first page of the Public Invocation rule's window.
async fn first_page(server: &MockServer) -> Result<Option<Vec<EventHit>>, PortError> {
    let source = EsEventSource::new(client_for(server));
    let mut stream = source
        .search(query(shipped(PUBLIC_INVOCATION), 100))
        .await
        .unwrap();
    stream.next_page().await
}

/// Assert a transient error mentioning each of `needles`.
fn assert_transient<T: std::fmt::Debug>(result: Result<T, PortError>, needles: &[&str]) {
    match result {
        Err(PortError::Transient(message)) => {
            for needle in needles {
                assert!(message.contains(needle), "{message}");
            }
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
}

#[tokio::test]
async fn pages_through_a_point_in_time_and_closes_it() {
    let server = MockServer::start().await;
    mount_field_caps(&server, field_caps_reply()).await;
    mount_pit(&server, 1).await;
    let ds = ".ds-logs-aws.cloudtrail-default-2025.01.01-000001";
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(search_reply(
            "pit-2",
            vec![
                hit(
                    ds,
                    "e1",
                    Some("2025-01-01T11:10:00.000Z"),
                    "2025-01-01T11:09:58.000Z",
                    4,
                ),
                hit(
                    ds,
                    "e2",
                    Some("2025-01-01T11:20:00.000Z"),
                    "2025-01-01T11:19:58.000Z",
                    9,
                ),
            ],
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(search_reply(
            "pit-3",
            vec![hit(
                "filebeat-8.17.0-2025.01.01",
                "e3",
                None,
                "2025-01-01T11:30:00.000Z",
                2,
            )],
        ))
        .mount(&server)
        .await;

    let source = EsEventSource::new(client_for(&server));
    let rule = shipped(PUBLIC_INVOCATION);
    let mut stream = source.search(query(rule.clone(), 2)).await.unwrap();
    let first = stream.next_page().await.unwrap().unwrap();
    assert_eq!(
        first.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        ["e1", "e2"]
    );
    assert_eq!(first[0].index, ds);
    assert_eq!(
        first[0].timestamp,
        Utc.with_ymd_and_hms(2025, 1, 1, 11, 10, 0).unwrap()
    );
    let second = stream.next_page().await.unwrap().unwrap();
    assert_eq!(second[0].id, "e3");
    // No event.ingested: the @timestamp fallback places it.
    assert_eq!(
        second[0].timestamp,
        Utc.with_ymd_and_hms(2025, 1, 1, 11, 30, 0).unwrap()
    );
    assert_eq!(
        stream.next_page().await.unwrap(),
        None,
        "a short page ends the window"
    );
    stream.close().await.unwrap();
    stream.close().await.unwrap();
    assert!(stream.warnings().is_empty(), "{:?}", stream.warnings());

    let requests = server.received_requests().await.unwrap();
    let caps = &requests_to(
        &requests,
        "POST",
        "/filebeat-*,logs-aws.cloudtrail-*/_field_caps",
    )[0];
    let fields = caps
        .url
        .query_pairs()
        .find(|(k, _)| k == "fields")
        .unwrap()
        .1
        .to_string();
    assert_eq!(
        fields,
        "event,event.dataset,event.provider,event.outcome,event.action,aws,aws.cloudtrail,\
         aws.cloudtrail.request_parameters,event.ingested,@timestamp"
    );
    let searches = requests_to(&requests, "POST", "/_search");
    assert_eq!(searches.len(), 2);
    assert_eq!(
        searches[0].url.query(),
        None,
        "no index options beside a point in time"
    );
    let first_body = body_json(searches[0]);
    let expected_query = kibana_first_page(public_invocation_kql())["query"].clone();
    let (fields, mut sort) = fields_and_sort();
    sort.as_array_mut()
        .unwrap()
        .push(json!({"_shard_doc": "asc"}));
    assert_eq!(
        first_body,
        json!({"size": 2, "query": expected_query, "fields": fields, "sort": sort,
               "pit": {"id": "pit-1", "keep_alive": "5m"}})
    );
    let second_body = body_json(searches[1]);
    assert_eq!(
        second_body["pit"]["id"], "pit-2",
        "the id each reply returns is reused"
    );
    assert_eq!(
        second_body["search_after"],
        json!([1735730400000i64, 1735730398000i64, 9])
    );
    assert_eq!(second_body["query"], first_body["query"]);
    let closes = requests_to(&requests, "DELETE", "/_pit");
    assert_eq!(closes.len(), 1, "closing twice sends one request");
    assert_eq!(body_json(closes[0]), json!({"id": "pit-3"}));
}

#[tokio::test]
async fn a_missing_index_pattern_is_a_warning_and_no_search() {
    let server = MockServer::start().await;
    mount_field_caps(&server, json!({"indices": [], "fields": {}})).await;
    let source = EsEventSource::new(client_for(&server));
    let mut stream = source
        .search(query(shipped(LAYER_ADDED), 100))
        .await
        .unwrap();
    assert_eq!(stream.next_page().await.unwrap(), None);
    stream.close().await.unwrap();
    let warnings = stream.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .contains("no index matching: [\"filebeat-*\", \"logs-aws.cloudtrail-*\"] was found"),
        "{warnings:?}"
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests.len(),
        1,
        "only _field_caps: no point in time, no search"
    );
}

#[tokio::test]
async fn field_caps_are_reused_within_a_run_and_timestamps_checked() {
    let server = MockServer::start().await;
    let mut caps = field_caps_reply();
    caps["indices"]
        .as_array_mut()
        .unwrap()
        .push(json!("filebeat-old"));
    caps["fields"]["@timestamp"] = json!({
        "date": {"type": "date", "metadata_field": false, "searchable": true, "aggregatable": true,
                 "indices": ["filebeat-8.17.0-2025.01.01", ".ds-logs-aws.cloudtrail-default-2025.01.01-000001"]},
        "unmapped": {"type": "unmapped", "metadata_field": false, "searchable": false, "aggregatable": false,
                 "indices": ["filebeat-old"]}});
    caps["fields"]["event.ingested"] = json!({
        "date": {"type": "date", "metadata_field": false, "searchable": true, "aggregatable": true,
                 "indices": [".ds-logs-aws.cloudtrail-default-2025.01.01-000001"]},
        "unmapped": {"type": "unmapped", "metadata_field": false, "searchable": false, "aggregatable": false,
                 "indices": ["filebeat-8.17.0-2025.01.01", "filebeat-old"]}});
    mount_field_caps(&server, caps).await;
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_pit"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "pit"})))
        .expect(2)
        .mount(&server)
        .await;
    let source = EsEventSource::new(client_for(&server));
    let rule = shipped(PUBLIC_INVOCATION);
    let first = source.search(query(rule.clone(), 100)).await.unwrap();
    let _second = source.search(query(rule, 100)).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        requests_to(
            &requests,
            "POST",
            "/filebeat-*,logs-aws.cloudtrail-*/_field_caps"
        )
        .len(),
        1
    );
    // filebeat-8.17.0 lacks event.ingested but has @timestamp: searched fine, no warning.
    assert_eq!(
        first.warnings(),
        [
            "The following indices are missing the timestamp field \"event.ingested\" (nor \"@timestamp\"): [\"filebeat-old\"]"
        ]
    );
}

#[tokio::test]
async fn shard_failures_fail_the_page_unless_harmless() {
    let server = searchable_cluster(2).await;
    let failure = |reason: &str| {
        json!({"shard": 0, "index": "filebeat-8.17.0-2025.01.01", "node": "dOsmVcCaQzqWnJ5Sxk9VlQ",
        "reason": {"type": "query_shard_exception", "reason": reason, "index": "filebeat-8.17.0-2025.01.01"}})
    };
    let reply = |failures: Vec<Value>| {
        ResponseTemplate::new(200).set_body_json(json!({
        "pit_id": "pit-1", "took": 3, "timed_out": false,
        "_shards": {"total": 2, "successful": 1, "skipped": 0, "failed": 1, "failures": failures},
        "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": null, "hits": []}}))
    };
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(reply(vec![failure(
            "No mapping found for [event.ingested] in order to sort on",
        )]))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(reply(vec![failure(
            "failed to create query: maxClauseCount is set to 4096",
        )]))
        .mount(&server)
        .await;
    assert_eq!(first_page(&server).await.unwrap(), None, "harmless");
    assert_transient(
        first_page(&server).await,
        &["1 shard failure(s)", "maxClauseCount"],
    );
}

#[tokio::test]
async fn an_expired_point_in_time_is_transient() {
    let server = searchable_cluster(1).await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(es_error(
            404,
            "search_context_missing_exception",
            "No search context found for id [1234]",
        ))
        .mount(&server)
        .await;
    assert_transient(first_page(&server).await, &["point in time expired"]);
}

#[tokio::test]
async fn a_query_that_does_not_parse_is_permanent() {
    let server = MockServer::start().await;
    let mut rule = (*shipped(PUBLIC_INVOCATION)).clone();
    rule.query = Some("event.action: (".into());
    let source = EsEventSource::new(client_for(&server));
    match source.search(query(Arc::new(rule), 100)).await {
        Err(PortError::Permanent(message)) => {
            assert!(message.contains("does not parse"), "{message}")
        }
        Err(other) => panic!("expected a permanent error, got {other:?}"),
        Ok(_) => panic!("expected an error"),
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_overloaded_search_is_retried() {
    let server = searchable_cluster(1).await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(es_error(
            429,
            "es_rejected_execution_exception",
            "rejected execution of TimedRunnable on EsThreadPoolExecutor[name = es01/search, queue capacity = 1000]",
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(search_reply("pit-2", vec![]))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(first_page(&server).await.unwrap(), None);
}

#[tokio::test]
async fn a_slow_cluster_times_out_with_advice() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(field_caps_reply())
                .set_delay(std::time::Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let connection = rule_runner::elasticsearch::ConnectionConfig {
        urls: vec![server.uri().parse().unwrap()],
        request_timeout: std::time::Duration::from_millis(100),
        ..Default::default()
    };
    let client =
        rule_runner::elasticsearch::EsClient::connect(&connection, super::mock::quick_retry())
            .unwrap();
    let result = EsEventSource::new(client)
        .search(query(shipped(LAYER_ADDED), 100))
        .await
        .map(|_| ());
    assert_transient(result, &["did not answer in time", "request_timeout"]);
}

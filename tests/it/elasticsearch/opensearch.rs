//! The OpenSearch dialect against a mock cluster that answers as OpenSearch 2.19 does: the
//! exact requests for each difference (point in time, tiebreaker, `fields`, templates), and
//! how the engine is recognised. The Elasticsearch side of each difference is pinned by the
//! other modules' contract tests, unchanged.

use rule_runner::elasticsearch::source::EsEventSource;
use rule_runner::elasticsearch::templates::{self, IndexKind};
use rule_runner::elasticsearch::{Dialect, Distribution, IndexNames};
use rule_runner::engine::{EventSource, WindowQuery};
use serde_json::{Value, json};
use wiremock::matchers::{any, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::bodies::{fields_and_sort, kibana_first_page, public_invocation_kql};
use super::mock::{AdminCluster, body_json, client_for, es_error};
use super::source::{PUBLIC_INVOCATION, field_caps_reply, hit, shipped, window};

/// `GET /` as the OpenSearch 2.19 test node answers it.
pub(super) fn opensearch_root() -> Value {
    json!({
        "name": "rule-runner-test-node",
        "cluster_name": "rule-runner-tests",
        "cluster_uuid": "BdJ4iTdsRj6cENhm0zH_Vg",
        "version": {
            "distribution": "opensearch",
            "number": "2.19.6",
            "build_type": "unknown",
            "build_hash": "97d3c13bf22a4a72ac11dc503fe44c97662b9161",
            "build_date": "2026-07-01T04:27:16.038403104Z",
            "build_snapshot": false,
            "lucene_version": "9.12.3",
            "minimum_wire_compatibility_version": "7.10.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "The OpenSearch Project: https://opensearch.org/"
    })
}

/// `GET /` answered as OpenSearch, before any catch-all mock.
pub(super) async fn mount_root(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(opensearch_root()))
        .with_priority(1)
        .mount(server)
        .await;
}

async fn opensearch_server() -> MockServer {
    let server = MockServer::start().await;
    mount_root(&server).await;
    Mock::given(method("POST"))
        .and(path("/filebeat-*,logs-aws.cloudtrail-*/_field_caps"))
        .respond_with(ResponseTemplate::new(200).set_body_json(field_caps_reply()))
        .mount(&server)
        .await;
    server
}

fn query() -> WindowQuery {
    WindowQuery {
        rule: shipped(PUBLIC_INVOCATION),
        window: window(),
        page_size: 100,
    }
}

#[tokio::test]
async fn the_engine_is_recognised_once_per_client() {
    let server = opensearch_server().await;
    let client = client_for(&server);
    let first = client.dialect().await.unwrap();
    let again = client.clone().dialect().await.unwrap();
    assert_eq!(first.distribution, Distribution::OpenSearch);
    assert_eq!(first.version, Some((2, 19, 6)));
    assert_eq!(first, again);
    let roots = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/")
        .count();
    assert_eq!(roots, 1, "clones share what the first call learned");
    let info = client.info().await.unwrap();
    assert_eq!(info.product, "OpenSearch");
}

#[tokio::test]
async fn a_node_that_will_not_say_is_taken_for_elasticsearch() {
    // A key without the `monitor` privilege gets a 403 on `GET /`.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(es_error(
            403,
            "security_exception",
            "action [cluster:monitor/main] is unauthorized",
        ))
        .mount(&server)
        .await;
    assert_eq!(
        client_for(&server).dialect().await.unwrap(),
        Dialect::ELASTICSEARCH
    );
}

#[tokio::test]
async fn an_old_opensearch_is_refused_with_what_to_do() {
    let server = MockServer::start().await;
    let mut root = opensearch_root();
    root["version"]["number"] = json!("2.3.0");
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(root))
        .mount(&server)
        .await;
    let err = client_for(&server).info().await.unwrap_err().to_string();
    assert!(
        err.contains("OpenSearch 2.3.0") && err.contains("2.4.0 or newer"),
        "{err}"
    );
}

#[tokio::test]
async fn a_window_is_paged_through_opensearch_s_point_in_time() {
    let server = opensearch_server().await;
    Mock::given(method("POST"))
        .and(path(
            "/filebeat-*,logs-aws.cloudtrail-*/_search/point_in_time",
        ))
        .and(query_param("keep_alive", "5m"))
        .and(query_param("ignore_unavailable", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "pit_id": "os-pit-1",
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "creation_time": 1796508657279u64
        })))
        .expect(1)
        .mount(&server)
        .await;
    let ds = ".ds-logs-aws.cloudtrail-default-000001";
    let mut one = hit(ds, "e1", None, "2025-01-01T11:09:58.000Z", 0);
    // OpenSearch's sort values end with the tiebreakers asked for: `_index`, `_id`.
    let sort = one["sort"].as_array_mut().unwrap();
    sort.pop();
    sort.extend([json!(ds), json!("e1")]);
    Mock::given(method("POST"))
        .and(path("/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "pit_id": "os-pit-1", "took": 3, "timed_out": false,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": 1, "relation": "eq"}, "max_score": null, "hits": [one]}
        })))
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/_search/point_in_time"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "pits": [{"successful": true, "pit_id": "os-pit-1"}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let source = EsEventSource::new(client_for(&server));
    let mut stream = source.search(query()).await.unwrap();
    let page = stream.next_page().await.unwrap().unwrap();
    assert_eq!(page[0].id, "e1");
    assert_eq!(stream.next_page().await.unwrap(), None);
    stream.close().await.unwrap();

    let requests = server.received_requests().await.unwrap();
    let search = requests
        .iter()
        .find(|r| r.method.as_str() == "POST" && r.url.path() == "/_search")
        .unwrap();
    let (mut fields, mut sort) = fields_and_sort();
    fields[0] = json!({"field": "*"});
    sort.as_array_mut()
        .unwrap()
        .extend([json!({"_index": "asc"}), json!({"_id": "asc"})]);
    let expected_query = kibana_first_page(public_invocation_kql())["query"].clone();
    assert_eq!(
        body_json(search),
        json!({"size": 100, "query": expected_query, "fields": fields, "sort": sort,
               "pit": {"id": "os-pit-1", "keep_alive": "5m"}})
    );
    let close = requests
        .iter()
        .find(|r| r.method.as_str() == "DELETE")
        .unwrap();
    assert_eq!(body_json(close), json!({"pit_id": ["os-pit-1"]}));
}

#[tokio::test]
async fn a_point_in_time_over_nothing_is_an_empty_window() {
    let server = opensearch_server().await;
    Mock::given(method("POST"))
        .and(path(
            "/filebeat-*,logs-aws.cloudtrail-*/_search/point_in_time",
        ))
        .respond_with(es_error(
            400,
            "illegal_argument_exception",
            "invalid id: [null]",
        ))
        .mount(&server)
        .await;
    let source = EsEventSource::new(client_for(&server));
    let mut stream = source.search(query()).await.unwrap();
    assert_eq!(stream.next_page().await.unwrap(), None);
    stream.close().await.unwrap();
    let searched = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .any(|r| r.url.path() == "/_search" || r.method.as_str() == "DELETE");
    assert!(!searched, "nothing to search, nothing to close");
}

#[tokio::test]
async fn setup_sends_flat_object_and_keyword_to_opensearch() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    let cluster = AdminCluster::default();
    Mock::given(any())
        .respond_with(cluster.clone())
        .mount(&server)
        .await;
    let client = client_for(&server);
    templates::setup(&client, &IndexNames::default())
        .await
        .unwrap();
    let sent = cluster.template("rule-runner-alerts").unwrap();
    let text = sent.to_string();
    assert!(!text.contains(r#""type":"flattened""#), "{text}");
    assert!(text.contains(r#""type":"flat_object""#), "{text}");
    let parameters = sent
        .pointer("/template/mappings/properties/kibana/properties/alert/properties/rule/properties/parameters")
        .cloned()
        .or_else(|| find_field(&sent, "parameters"));
    assert_eq!(parameters, Some(json!({"type": "flat_object"})));
    // Everything else is the shipped file as Elasticsearch gets it.
    let shipped = IndexKind::Alerts.template_for("rule-runner-alerts");
    assert_eq!(
        Dialect::from_root(&opensearch_root()).index_template(shipped),
        sent
    );
}

/// The first field mapping named `name` anywhere in `value`.
fn find_field(value: &Value, name: &str) -> Option<Value> {
    match value {
        Value::Object(map) => map
            .get(name)
            .cloned()
            .or_else(|| map.values().find_map(|v| find_field(v, name))),
        _ => None,
    }
}

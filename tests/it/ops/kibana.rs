//! The shipped Kibana saved objects are self-consistent, and the import speaks Kibana's saved
//! objects API as documented (multipart `file`, `kbn-xsrf`, `overwrite=true`).

use std::collections::HashSet;
use std::time::Duration;

use super::on;
use rule_runner::elasticsearch::{Auth, Secret};
use rule_runner::kibana::{self, KibanaError, KibanaTarget};
use serde_json::Value;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn objects() -> Vec<Value> {
    kibana::SAVED_OBJECTS
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn parse_attr(object: &Value, key: &str) -> Value {
    serde_json::from_str(object["attributes"][key].as_str().unwrap()).unwrap()
}

#[test]
fn every_reference_resolves_inside_the_file() {
    let objects = objects();
    let ids: HashSet<(String, String)> = objects
        .iter()
        .map(|o| {
            (
                o["type"].as_str().unwrap().into(),
                o["id"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(ids.len(), objects.len(), "ids are unique");
    for o in &objects {
        for r in o["references"].as_array().unwrap() {
            let key = (
                r["type"].as_str().unwrap().into(),
                r["id"].as_str().unwrap().into(),
            );
            assert!(ids.contains(&key), "{} refers to missing {key:?}", o["id"]);
        }
        if let Some(meta) = o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"].as_str() {
            let source: Value = serde_json::from_str(meta).unwrap();
            if let Some(name) = source["indexRefName"].as_str() {
                let found = o["references"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["name"] == name);
                assert!(found, "{}: indexRefName {name} has no reference", o["id"]);
            }
        }
    }
}

#[test]
fn dashboard_has_the_five_panels_and_each_panel_has_its_reference() {
    let objects = objects();
    let dashboard = objects.iter().find(|o| o["type"] == "dashboard").unwrap();
    assert_eq!(dashboard["id"], kibana::DASHBOARD_ID);
    let panels = parse_attr(dashboard, "panelsJSON");
    let panels = panels.as_array().unwrap();
    assert_eq!(panels.len(), 5);
    let refs = dashboard["references"].as_array().unwrap();
    let mut titles = Vec::new();
    for p in panels {
        let r = refs
            .iter()
            .find(|r| r["name"] == p["panelRefName"])
            .unwrap();
        assert_eq!(r["type"], p["type"]);
        let target = objects.iter().find(|o| o["id"] == r["id"]).unwrap();
        titles.push(target["attributes"]["title"].as_str().unwrap().to_string());
        let grid = &p["gridData"];
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 48);
    }
    for wanted in [
        "over time by rule",
        "by severity",
        "top actors",
        "top source IPs",
        "latest alerts",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "{wanted}: {titles:?}"
        );
    }
}

#[test]
fn visualizations_aggregate_the_alert_fields() {
    let mut fields = Vec::new();
    for o in objects().iter().filter(|o| o["type"] == "visualization") {
        let vis = parse_attr(o, "visState");
        assert_eq!(vis["title"], o["attributes"]["title"]);
        for agg in vis["aggs"].as_array().unwrap() {
            if let Some(f) = agg["params"]["field"].as_str() {
                fields.push(f.to_string());
            }
        }
    }
    for f in [
        "@timestamp",
        "kibana.alert.rule.name",
        "kibana.alert.severity",
        "aws.cloudtrail.user_identity.arn",
        "source.ip",
    ] {
        assert!(fields.contains(&f.to_string()), "{f}: {fields:?}");
    }
}

#[test]
fn saved_search_lists_the_useful_columns_newest_first() {
    let objects = objects();
    let search = objects.iter().find(|o| o["type"] == "search").unwrap();
    let columns: Vec<_> = search["attributes"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "kibana.alert.rule.name",
            "kibana.alert.severity",
            "aws.cloudtrail.user_identity.arn",
            "source.ip",
            "aws.cloudtrail.flattened.request_parameters.functionName",
            "event.action"
        ]
    );
    assert_eq!(
        search["attributes"]["sort"],
        serde_json::json!([["@timestamp", "desc"]])
    );
}

fn target(server: &MockServer) -> KibanaTarget {
    let mut t = KibanaTarget::new(&server.uri()).unwrap();
    t.auth = Auth::Basic {
        username: "elastic".into(),
        password: Secret::new("changeme"),
    };
    t.retry_delay = Duration::from_millis(10);
    t
}

#[tokio::test]
async fn import_posts_the_ndjson_as_multipart_with_xsrf_and_overwrite() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/saved_objects/_import"))
        .and(query_param("overwrite", "true"))
        .and(header("kbn-xsrf", "rule-runner"))
        .and(header("authorization", "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "success": true, "successCount": 7, "successResults": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    let ndjson = kibana::saved_objects_for("rule-runner-alerts").unwrap();
    let summary = target(&server)
        .import(&reqwest::Client::new(), ndjson.clone(), None)
        .await
        .unwrap();
    assert_eq!(summary.imported, 7);
    assert_eq!(
        summary.dashboard_url.as_str(),
        format!(
            "{}/app/dashboards#/view/rule-runner-alerts-dashboard",
            server.uri()
        )
    );
    let request = &server.received_requests().await.unwrap()[0];
    let content_type = request
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
    let body = String::from_utf8_lossy(&request.body);
    assert!(
        body.contains("name=\"file\"; filename=\"rule-runner.ndjson\""),
        "{body}"
    );
    assert!(
        body.contains(ndjson.trim_end()),
        "the file part carries the objects verbatim"
    );
}

#[tokio::test]
async fn import_into_a_space_uses_the_space_prefix() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/s/soc/api/saved_objects/_import"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"success": true, "successCount": 7})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut t = target(&server);
    t.space = "soc".into();
    let summary = t
        .import(&reqwest::Client::new(), kibana::SAVED_OBJECTS.into(), None)
        .await
        .unwrap();
    assert!(
        summary
            .dashboard_url
            .path()
            .starts_with("/s/soc/app/dashboards")
    );
}

#[tokio::test]
async fn import_waits_for_kibana_to_finish_starting() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Kibana server is not ready yet"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    on(
        &server,
        "POST",
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"success": true, "successCount": 7})),
    )
    .await;
    let summary = target(&server)
        .import(&reqwest::Client::new(), kibana::SAVED_OBJECTS.into(), None)
        .await
        .unwrap();
    assert_eq!(summary.imported, 7);
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn import_failures_say_what_to_do() {
    let server = MockServer::start().await;
    on(
        &server,
        "POST",
        ResponseTemplate::new(401).set_body_json(serde_json::json!({"statusCode": 401})),
    )
    .await;
    let err = target(&server)
        .import(&reqwest::Client::new(), kibana::SAVED_OBJECTS.into(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, KibanaError::Unauthorized { .. }));
    assert!(err.to_string().contains("ELASTICSEARCH_USERNAME"), "{err}");

    let server = MockServer::start().await;
    on(&server, "POST", ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "success": false, "successCount": 6,
            "errors": [{"id": "rule-runner-alerts", "type": "index-pattern", "meta": {"title": "rule-runner-alerts"},
                        "error": {"type": "unknown", "message": "boom", "statusCode": 500}}]
        }))).await;
    let err = target(&server)
        .import(&reqwest::Client::new(), kibana::SAVED_OBJECTS.into(), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("index-pattern \"rule-runner-alerts\""),
        "{text}"
    );
    assert!(text.contains("boom"), "{text}");

    // Nothing listening: a clear "cannot reach" after the retries.
    let mut t = KibanaTarget::new("http://127.0.0.1:9").unwrap();
    t.attempts = 2;
    t.retry_delay = Duration::from_millis(1);
    let err = t
        .import(&reqwest::Client::new(), kibana::SAVED_OBJECTS.into(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot reach Kibana"), "{err}");
}

/// `rule-runner setup --kibana-url --alerts-destination rule-runner`: templates into
/// Elasticsearch, then the saved objects into Kibana with the same credentials, and the dashboard link printed.
#[tokio::test]
async fn setup_with_kibana_url_imports_after_the_templates() {
    let es = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "name": "es01", "cluster_name": "demo", "version": {"number": "8.17.0"}
        })))
        .mount(&es)
        .await;
    on(
        &es,
        "GET",
        ResponseTemplate::new(404).set_body_json(serde_json::json!({})),
    )
    .await;
    on(&es, "HEAD", ResponseTemplate::new(404)).await;
    on(
        &es,
        "PUT",
        ResponseTemplate::new(200).set_body_json(serde_json::json!({"acknowledged": true})),
    )
    .await;
    let kibana = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/saved_objects/_import"))
        .and(header("authorization", "Basic c2V0dXA6czNjcmV0"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"success": true, "successCount": 7})),
        )
        .expect(1)
        .mount(&kibana)
        .await;
    let mut cmd = crate::util::rule_runner();
    cmd.args(["setup", "--url", &es.uri(), "--kibana-url", &kibana.uri()])
        .args(["--alerts-destination", "rule-runner"])
        .args(["--kibana-public-url", "http://localhost:5601"])
        .env("ELASTICSEARCH_USERNAME", "setup")
        .env("ELASTICSEARCH_PASSWORD", "s3cret");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_exit!(out, 0);
    assert!(stdout.contains("7 saved objects imported"), "{stdout}");
    assert!(
        stdout.contains(
            "dashboard      http://localhost:5601/app/dashboards#/view/rule-runner-alerts-dashboard"
        ),
        "{stdout}"
    );
    let ndjson =
        String::from_utf8_lossy(&kibana.received_requests().await.unwrap()[0].body).into_owned();
    assert!(
        ndjson.contains(r#""title":"rule-runner-alerts""#),
        "the data view names the configured alerts index"
    );
}

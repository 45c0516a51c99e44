//! `rule-runner load` against a mock Elasticsearch: the template it installs (or leaves),
//! the bulk bodies, per-item retries and rejections, and the summary.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::{on, on_times};
use crate::util::{data, rule_runner};

const TARGET: &str = "logs-aws.cloudtrail-default";

fn builtin_templates() -> Value {
    json!({"index_templates": [{"name": "logs", "index_template": {
        "index_patterns": ["logs-*-*"], "priority": 100, "data_stream": {},
        "_meta": {"managed": true, "description": "default logs template installed by x-pack"}}}]})
}

fn created(n: usize) -> Value {
    json!({"errors": false, "items": vec![json!({"create": {"status": 201}}); n]})
}

/// Run `load` against `server` with the remaining arguments; returns (status, stdout, stderr).
async fn load(server: &MockServer, args: &[&str]) -> (i32, String, String) {
    let mut cmd = rule_runner();
    cmd.arg("load").arg("--url").arg(server.uri()).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn bulk_requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().ends_with("/_bulk"))
        .collect()
}

/// The documents of a bulk body, checking every action line is a bare `create`.
fn documents(request: &Request) -> Vec<Value> {
    let text = String::from_utf8(request.body.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() % 2, 0, "{text}");
    lines
        .chunks(2)
        .map(|pair| {
            assert_eq!(pair[0], r#"{"create":{}}"#);
            serde_json::from_str(pair[1]).unwrap()
        })
        .collect()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn installs_the_integration_template_and_indexes_shifted_documents() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/_index_template"))
        .respond_with(ResponseTemplate::new(200).set_body_json(builtin_templates()))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("/_index_template/rule-runner-load-{TARGET}")))
        .and(body_partial_json(
            json!({"index_patterns": [TARGET], "priority": 150, "data_stream": {}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{TARGET}/_bulk")))
        .and(query_param("refresh", "wait_for"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created(3)))
        .expect(1)
        .mount(&server)
        .await;
    let before = Utc::now();
    let (status, stdout, stderr) = load(
        &server,
        &[
            "--shift-to-now",
            data("ops/cloudtrail.json").to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(status, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "loaded 3 documents into {TARGET} (integration flavor)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "index template: installed rule-runner-load-{TARGET}"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("event times shifted by +"), "{stdout}");

    let bulks = bulk_requests(&server).await;
    assert_eq!(bulks.len(), 1);
    assert_eq!(
        bulks[0].headers.get("content-type").unwrap(),
        "application/x-ndjson"
    );
    let docs = documents(&bulks[0]);
    assert_eq!(docs.len(), 3);
    let add_permission = docs
        .iter()
        .find(|d| d["event"]["action"] == "AddPermission20150331v2")
        .unwrap();
    assert_eq!(add_permission["event"]["dataset"], "aws.cloudtrail");
    assert_eq!(add_permission["data_stream"]["dataset"], "aws.cloudtrail");
    assert_eq!(add_permission["data_stream"]["namespace"], "default");
    assert_eq!(
        add_permission["aws"]["cloudtrail"]["request_parameters"],
        "{principal=*, functionName=billing-export, statementId=open, action=lambda:InvokeFunction}"
    );
    // The newest event (AddPermission, 10:15) lands at the load time; the spacing is kept.
    let newest = time(&add_permission["@timestamp"]);
    assert!(
        newest >= before - chrono::TimeDelta::seconds(1) && newest <= Utc::now(),
        "{newest}"
    );
    let layer = docs
        .iter()
        .find(|d| d["event"]["action"] == "PublishLayerVersion20181031")
        .unwrap();
    assert_eq!(
        newest - time(&layer["@timestamp"]),
        chrono::TimeDelta::minutes(10)
    );
    for d in &docs {
        assert_eq!(
            d["event"]["ingested"], add_permission["event"]["ingested"],
            "one load time"
        );
        assert_eq!(d["event"]["created"], d["event"]["ingested"]);
    }
}

#[tokio::test]
async fn keeps_an_existing_template_and_filebeat_documents_lack_data_stream() {
    let server = MockServer::start().await;
    let filebeat = json!({"index_templates": [{"name": "filebeat-8.17.0", "index_template": {
        "index_patterns": ["filebeat-8.17.0"], "priority": 150, "data_stream": {}}}]});
    Mock::given(method("GET"))
        .and(path("/_index_template"))
        .respond_with(ResponseTemplate::new(200).set_body_json(filebeat))
        .mount(&server)
        .await;
    on_times(&server, "PUT", ResponseTemplate::new(500), 0).await;
    Mock::given(method("POST"))
        .and(path("/filebeat-8.17.0/_bulk"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created(3)))
        .mount(&server)
        .await;
    let (status, stdout, stderr) = load(
        &server,
        &[
            "--flavor",
            "filebeat",
            "--index",
            "filebeat-8.17.0",
            data("ops/cloudtrail.json").to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(status, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("kept the existing filebeat-8.17.0"),
        "{stdout}"
    );
    assert!(!stdout.contains("shifted"), "{stdout}");
    let docs = documents(&bulk_requests(&server).await[0]);
    assert!(docs.iter().all(|d| d.get("data_stream").is_none()));
    assert_eq!(
        docs[0]["event"]["type"], "info",
        "Filebeat writes event.type as a string"
    );
    assert_eq!(
        docs[0]["@timestamp"], "2025-03-04T10:15:00.000Z",
        "no shift without --shift-to-now"
    );
}

#[tokio::test]
async fn retries_refused_items_and_reports_rejected_ones() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/_index_template"))
        .respond_with(ResponseTemplate::new(200).set_body_json(builtin_templates()))
        .mount(&server)
        .await;
    on(
        &server,
        "PUT",
        ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true})),
    )
    .await;
    let mixed = json!({"errors": true, "items": [
        {"create": {"status": 201}},
        {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}}},
        {"create": {"status": 400, "error": {"type": "document_parsing_exception", "reason": "[1:42] failed to parse field [source.ip] of type [ip]"}}}
    ]});
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(mixed))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    on(
        &server,
        "POST",
        ResponseTemplate::new(200).set_body_json(created(1)),
    )
    .await;
    let (status, stdout, stderr) =
        load(&server, &[data("ops/cloudtrail.json").to_str().unwrap()]).await;
    assert_eq!(status, 2, "{stdout}\n{stderr}");
    assert!(stdout.contains("loaded 2 documents"), "{stdout}");
    assert!(stdout.contains("rejected by the cluster: 1"), "{stdout}");
    assert!(
        stdout
            .contains("event 0f0c1a7e-0000-4000-8000-000000000003: 400 document_parsing_exception"),
        "{stdout}"
    );
    let bulks = bulk_requests(&server).await;
    assert_eq!(bulks.len(), 2);
    let retried = documents(&bulks[1]);
    assert_eq!(retried.len(), 1, "only the 429 item is sent again");
    assert_eq!(
        retried[0]["event"]["id"],
        "0f0c1a7e-0000-4000-8000-000000000002"
    );
}

#[tokio::test]
async fn batches_and_skipped_records() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/replay/_bulk"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created(1)))
        .mount(&server)
        .await;
    let (status, stdout, stderr) = load(
        &server,
        &[
            "--no-template",
            "--index",
            "replay",
            "--batch-size",
            "1",
            data("ops/broken.ndjson").to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(status, 2, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("skipped:") && stderr.contains("broken.ndjson: record 1"),
        "{stderr}"
    );
    assert!(
        stdout.contains("loaded 1 documents into replay"),
        "{stdout}"
    );
    assert!(stdout.contains("not checked (--no-template)"), "{stdout}");
    assert!(
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .all(|r| !r.url.path().contains("_index_template"))
    );
}

#[tokio::test]
async fn clear_errors_for_credentials_and_stdin_with_shift() {
    let server = MockServer::start().await;
    on(&server, "GET", ResponseTemplate::new(401).set_body_json(json!({"error": {"type": "security_exception", "reason": "unable to authenticate user [loader]"}, "status": 401}))).await;
    let (status, _, stderr) = load(&server, &[data("ops/cloudtrail.json").to_str().unwrap()]).await;
    assert_eq!(status, 1);
    assert!(
        stderr.contains("rejected the credentials") && stderr.contains("ELASTICSEARCH_USERNAME"),
        "{stderr}"
    );

    let (status, _, stderr) = load(&server, &["--no-template", "--shift-to-now", "-"]).await;
    assert_eq!(status, 1);
    assert!(stderr.contains("not stdin"), "{stderr}");

    let (status, _, stderr) = load(&server, &["--batch-size", "0", "x"]).await;
    assert_eq!(status, 1, "{stderr}");
}

#[tokio::test]
async fn the_namespace_follows_the_target_data_stream() {
    let server = MockServer::start().await;
    on(
        &server,
        "POST",
        ResponseTemplate::new(200).set_body_json(created(3)),
    )
    .await;
    let (status, stdout, stderr) = load(
        &server,
        &[
            "--no-template",
            "--index",
            "logs-aws.cloudtrail-prod",
            data("ops/cloudtrail.json").to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(status, 0, "{stdout}\n{stderr}");
    let docs = documents(&bulk_requests(&server).await[0]);
    assert!(
        docs.iter().all(|d| d["data_stream"]["namespace"] == "prod"),
        "{docs:?}"
    );
}

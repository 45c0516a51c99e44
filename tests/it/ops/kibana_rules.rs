//! Kibana's detection rules API as rule-runner speaks it (contract tests on a mock Kibana):
//! the exact look-up, create and update requests, idempotence, a rule someone else owns,
//! 401/403, Kibana still starting, a space other than `default`, and the alerts index and
//! version calls.

use std::time::Duration;

use rule_runner::elasticsearch::{Auth, Secret};
use rule_runner::kibana::rules::{Registration, kibana_rule, register};
use rule_runner::kibana::{Kibana, KibanaError, KibanaTarget, alerts_index};
use rule_runner::rule::Rule;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KIBANA_ID: &str = "8c1f6a52-3d4e-4b6f-9a1e-2f0c3b4d5e6f";

fn kibana(server: &MockServer, space: &str) -> Kibana {
    let mut target = KibanaTarget::new(&server.uri()).expect("a URL");
    target.auth = Auth::Basic {
        username: "elastic".into(),
        password: Secret::new("changeme"),
    };
    target.space = space.into();
    target.retry_delay = Duration::from_millis(10);
    Kibana::with_target(target)
}

fn rule() -> Rule {
    Rule {
        rule_id: "c3ab5a1a-7a42-4bde-9d63-0c2a1b0e1f01".into(),
        name: "AWS Lambda Function Policy Updated to Allow Public Invocation".into(),
        description: "A Lambda function's policy now lets anyone invoke it.".into(),
        query: Some("event.action:AddPermission20150331* and aws.cloudtrail.request_parameters:*principal=\\**".into()),
        index: vec!["filebeat-*".into(), "logs-aws.cloudtrail-*".into()],
        risk_score: 47,
        severity: "medium".parse().expect("a severity"),
        interval: "10m".into(),
        from: "now-60m".into(),
        ..Rule::default()
    }
}

/// Kibana's answer for a rule: what was sent, with its id and Kibana's own fields.
fn stored(body: &Value) -> Value {
    let mut rule = body.clone();
    rule["id"] = json!(KIBANA_ID);
    rule["created_by"] = json!("elastic");
    rule["immutable"] = json!(false);
    rule
}

/// The test fails if any request with one of these methods arrives.
async fn forbid(server: &MockServer, verbs: &[&str]) {
    for verb in verbs {
        Mock::given(method(*verb))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(server)
            .await;
    }
}

fn not_found(rule_id: &str) -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "status_code": 404,
        "message": format!("rule_id: \"{rule_id}\" not found")
    }))
}

#[tokio::test]
async fn a_new_rule_is_looked_up_then_created_disabled_with_the_exact_body() {
    let server = MockServer::start().await;
    let rule = rule();
    let (body, _) = kibana_rule(&rule);
    Mock::given(method("GET"))
        .and(path("/api/detection_engine/rules"))
        .and(query_param("rule_id", rule.rule_id.as_str()))
        .and(header("kbn-xsrf", "rule-runner"))
        .and(header("authorization", "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="))
        .respond_with(not_found(&rule.rule_id))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/detection_engine/rules"))
        .and(header("kbn-xsrf", "rule-runner"))
        .and(header("elastic-api-version", "2023-10-31"))
        .and(body_json(&body))
        .respond_with(ResponseTemplate::new(200).set_body_json(stored(&body)))
        .expect(1)
        .mount(&server)
        .await;
    let registration = register(&kibana(&server, "default"), &rule)
        .await
        .expect("registered");
    assert_eq!(
        registration,
        Registration::Created(KIBANA_ID.parse().expect("a uuid"))
    );
    // The body as Kibana's create API takes it.
    assert_eq!(body["rule_id"], json!(rule.rule_id));
    assert_eq!(body["type"], "query");
    assert_eq!(body["language"], "kuery");
    assert_eq!(body["enabled"], false);
    assert_eq!(body["interval"], "10m");
    assert_eq!(body["from"], "now-60m");
    assert_eq!(body["severity"], "medium");
    assert_eq!(body["risk_score"], 47);
    assert_eq!(
        body["index"],
        json!(["filebeat-*", "logs-aws.cloudtrail-*"])
    );
    assert_eq!(body["tags"], json!(["rule-runner"]));
    assert!(
        body["description"]
            .as_str()
            .is_some_and(|d| d.contains("Executed by rule-runner, not by Kibana"))
    );
}

#[tokio::test]
async fn registering_twice_sends_nothing_the_second_time() {
    let server = MockServer::start().await;
    let rule = rule();
    let (body, _) = kibana_rule(&rule);
    Mock::given(method("GET"))
        .and(path("/api/detection_engine/rules"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stored(&body)))
        .expect(1)
        .mount(&server)
        .await;
    forbid(&server, &["POST", "PUT"]).await;
    let registration = register(&kibana(&server, "default"), &rule).await.unwrap();
    assert_eq!(
        registration,
        Registration::Unchanged(KIBANA_ID.parse().unwrap())
    );
}

#[tokio::test]
async fn a_changed_rule_is_replaced_keeping_the_exceptions_attached_in_kibana() {
    let server = MockServer::start().await;
    let before = rule();
    let (old_body, _) = kibana_rule(&before);
    let mut existing = stored(&old_body);
    let lists = json!([{"id": "b2a0", "list_id": "rr-exceptions", "namespace_type": "single", "type": "detection"}]);
    existing["exceptions_list"] = lists.clone();
    let mut after = rule();
    after.risk_score = 73;
    after.severity = "high".parse().unwrap();
    let (mut new_body, _) = kibana_rule(&after);
    new_body["exceptions_list"] = lists;
    Mock::given(method("GET"))
        .and(path("/api/detection_engine/rules"))
        .respond_with(ResponseTemplate::new(200).set_body_json(existing))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/api/detection_engine/rules"))
        .and(body_json(&new_body))
        .respond_with(ResponseTemplate::new(200).set_body_json(stored(&new_body)))
        .expect(1)
        .mount(&server)
        .await;
    let registration = register(&kibana(&server, "default"), &after).await.unwrap();
    assert_eq!(
        registration,
        Registration::Updated(KIBANA_ID.parse().unwrap())
    );
}

#[tokio::test]
async fn a_rule_enabled_in_kibana_is_disabled_again() {
    let server = MockServer::start().await;
    let rule = rule();
    let (body, _) = kibana_rule(&rule);
    let mut existing = stored(&body);
    existing["enabled"] = json!(true);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(existing))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(body_json(&body))
        .respond_with(ResponseTemplate::new(200).set_body_json(stored(&body)))
        .expect(1)
        .mount(&server)
        .await;
    let registration = register(&kibana(&server, "default"), &rule).await.unwrap();
    assert!(matches!(registration, Registration::Updated(_)));
}

#[tokio::test]
async fn a_rule_someone_else_created_is_reported_and_never_overwritten() {
    let server = MockServer::start().await;
    let rule = rule();
    // Elastic's prebuilt rule of the same rule_id, installed and enabled in Kibana.
    let theirs = json!({
        "id": "0d6e2b4c-1111-4222-8333-444455556666", "rule_id": rule.rule_id,
        "name": rule.name, "enabled": true, "immutable": true, "tags": ["Domain: Cloud"],
        "meta": {"from": "1m"}
    });
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(theirs))
        .mount(&server)
        .await;
    forbid(&server, &["POST", "PUT", "PATCH", "DELETE"]).await;
    let registration = register(&kibana(&server, "default"), &rule).await.unwrap();
    assert_eq!(
        registration,
        Registration::Foreign {
            id: "0d6e2b4c-1111-4222-8333-444455556666".into(),
            enabled: true
        }
    );
    assert_eq!(registration.kibana_id(), None);
}

#[tokio::test]
async fn a_409_on_create_is_decided_on_the_rule_that_is_there() {
    let server = MockServer::start().await;
    let rule = rule();
    let (body, _) = kibana_rule(&rule);
    Mock::given(method("GET"))
        .respond_with(not_found(&rule.rule_id))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stored(&body)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "status_code": 409,
            "message": format!("rule_id: \"{}\" already exists", rule.rule_id)
        })))
        .expect(1)
        .mount(&server)
        .await;
    let registration = register(&kibana(&server, "default"), &rule).await.unwrap();
    assert_eq!(
        registration,
        Registration::Unchanged(KIBANA_ID.parse().unwrap())
    );
}

#[tokio::test]
async fn a_space_other_than_default_is_addressed_by_its_prefix() {
    let server = MockServer::start().await;
    let rule = rule();
    let (body, _) = kibana_rule(&rule);
    Mock::given(method("GET"))
        .and(path("/s/soc/api/detection_engine/rules"))
        .respond_with(not_found(&rule.rule_id))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/s/soc/api/detection_engine/rules"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stored(&body)))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/s/soc/api/detection_engine/index"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true})))
        .expect(1)
        .mount(&server)
        .await;
    let kibana = kibana(&server, "soc");
    alerts_index::initialise(&kibana)
        .await
        .expect("initialised");
    assert!(matches!(
        register(&kibana, &rule).await.unwrap(),
        Registration::Created(_)
    ));
}

#[tokio::test]
async fn kibana_still_starting_is_waited_for() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/status"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Kibana server is not ready yet"))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/status"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "kb", "version": {"number": "8.17.4"}})),
        )
        .mount(&server)
        .await;
    let version = alerts_index::version(&kibana(&server, "default"))
        .await
        .expect("Kibana answers in the end");
    assert_eq!(version, "8.17.4");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn refusals_say_what_is_missing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"statusCode": 401})))
        .mount(&server)
        .await;
    let err = register(&kibana(&server, "default"), &rule())
        .await
        .unwrap_err();
    assert!(matches!(err, KibanaError::Unauthorized { .. }), "{err}");

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(not_found("x"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "statusCode": 403, "error": "Forbidden",
            "message": "API [POST /api/detection_engine/rules] is unauthorized for user"
        })))
        .mount(&server)
        .await;
    let err = register(&kibana(&server, "soc"), &rule())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("may not create rule")
            && err.contains("Security feature's All privilege")
            && err.contains("\"soc\""),
        "{err}"
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/detection_engine/index"))
        .respond_with(ResponseTemplate::new(403).set_body_string("{}"))
        .mount(&server)
        .await;
    let err = alerts_index::initialise(&kibana(&server, "default"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("manage"), "{err}");
}

/// The service's reader of exceptions: each run asks Kibana afresh, so an exception added
/// between two runs holds from the second; a rule never registered costs no request; Kibana
/// unavailable is a transient error (the run is skipped and retried), never a run without it.
#[tokio::test]
async fn exceptions_are_read_afresh_for_each_run() {
    use rule_runner::engine::{PortError, RuleAmendments};
    use rule_runner::kibana::amendments::KibanaExceptions;
    use std::sync::Arc;

    let server = MockServer::start().await;
    let rule = Arc::new(rule());
    let lists =
        json!([{"id": "e1", "list_id": "rr-bob", "namespace_type": "single", "type": "detection"}]);
    // First run: the rule has no exception list. Second: an analyst has added one.
    Mock::given(method("GET"))
        .and(path("/api/detection_engine/rules"))
        .and(query_param("rule_id", rule.rule_id.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(stored(&json!({
            "rule_id": rule.rule_id, "exceptions_list": []
        }))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/detection_engine/rules"))
        .and(query_param("rule_id", rule.rule_id.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(stored(&json!({
            "rule_id": rule.rule_id, "exceptions_list": lists
        }))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/exception_lists/items/_find"))
        .and(query_param("list_id", "rr-bob"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"item_id": "bob", "name": "bob is expected", "list_id": "rr-bob",
                "type": "simple", "os_types": [],
                "entries": [{"field": "user.name", "operator": "included", "type": "match", "value": "bob"}]}],
            "page": 1, "per_page": 500, "total": 1
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/detection_engine/rules"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Kibana server is not ready yet"))
        .mount(&server)
        .await;

    let registered = [(rule.rule_id.clone(), KIBANA_ID.parse().expect("a uuid"))].into();
    let exceptions = KibanaExceptions::new(kibana(&server, "default"), registered);

    let first = exceptions.amend(&rule).await.expect("read");
    assert!(
        Arc::ptr_eq(&first, &rule),
        "no exception: the rule as it is"
    );
    let second = exceptions.amend(&rule).await.expect("read");
    assert_eq!(second.filters.len(), rule.filters.len() + 1);
    assert_eq!(
        second.filters.last().expect("a filter")["meta"]["negate"],
        json!(true)
    );
    assert_eq!(second.extra["exceptions_list"], lists);

    let third = exceptions.amend(&rule).await.unwrap_err();
    assert!(matches!(third, PortError::Transient(_)), "{third}");
    assert!(third.to_string().contains("503"), "{third}");

    let mut other = (*rule).clone();
    other.rule_id = "not-registered".into();
    let other = Arc::new(other);
    let before = server.received_requests().await.expect("requests").len();
    assert!(Arc::ptr_eq(
        &exceptions.amend(&other).await.expect("no request"),
        &other
    ));
    assert_eq!(
        server.received_requests().await.expect("requests").len(),
        before
    );
}

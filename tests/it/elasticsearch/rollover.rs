//! rule-runner's own alerts behind a rolling write alias, against the mock cluster: the ILM
//! policy on Elasticsearch, the conditional rollover the sink asks for on OpenSearch, and the
//! move of an older rule-runner's plain alerts index behind the alias.

use chrono::{TimeZone, Utc};
use rule_runner::elasticsearch::templates::{self, IndexKind, Step};
use rule_runner::elasticsearch::{AlertsTarget, EsAlertSink, EsError, IndexNames, Rollover};
use rule_runner::engine::{AlertDoc, AlertSink, WriteOutcome};
use serde_json::json;
use wiremock::matchers::{any, body_json as body_is, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::mock::{AdminCluster, admin_server, client_for};
use super::opensearch::mount_root;

/// What an older rule-runner left: a plain alerts index holding `alerts` alerts, under the
/// template that pointed at it.
fn older_layout(cluster: &AdminCluster, alerts: u64) {
    let mut old = IndexKind::Alerts.template_for("rule-runner-alerts");
    old["index_patterns"] = json!(["rule-runner-alerts"]);
    cluster.set_template("rule-runner-alerts", old.clone());
    cluster.set_index("rule-runner-alerts", old["template"]["mappings"].clone());
    cluster.set_docs("rule-runner-alerts", alerts);
}

#[tokio::test]
async fn setup_moves_an_older_plain_alerts_index_behind_the_alias_copying_nothing() {
    let (server, cluster) = admin_server().await;
    older_layout(&cluster, 42);
    let client = client_for(&server);
    let names = IndexNames::default();

    let err = templates::check(&client, &names)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`rule-runner-alerts` is a plain index from an older rule-runner"),
        "{err}"
    );

    let lines = templates::setup(&client, &names).await.unwrap();
    let alerts = lines.iter().find(|l| l.kind == IndexKind::Alerts).unwrap();
    assert_eq!(
        alerts.index_step,
        Step::Migrated {
            alerts: 42,
            into: "rule-runner-alerts-000000".into()
        }
    );
    assert_eq!(alerts.template, Step::Updated { from: 1 });
    // The old alerts sit behind the alias, read-only no more; new ones go to -000001.
    assert_eq!(
        cluster.alias("rule-runner-alerts").unwrap(),
        [
            ("rule-runner-alerts-000000".to_string(), false),
            ("rule-runner-alerts-000001".to_string(), true)
        ]
    );
    assert_eq!(cluster.docs("rule-runner-alerts-000000"), Some(42));
    assert!(
        !cluster
            .indices()
            .contains(&"rule-runner-alerts".to_string())
    );
    // The write index is tied to the policy the template now names.
    assert_eq!(
        cluster.settings("rule-runner-alerts-000001").unwrap(),
        json!({"index": {"lifecycle": {"name": "rule-runner-alerts", "rollover_alias": "rule-runner-alerts"}}})
    );
    // The swap is one request: the plain index goes in the same breath the alias comes.
    let requests = server.received_requests().await.unwrap();
    let swap = requests
        .iter()
        .find(|r| r.url.path() == "/_aliases")
        .unwrap();
    assert_eq!(
        super::mock::body_json(swap),
        json!({"actions": [
            {"add": {"index": "rule-runner-alerts-000000", "alias": "rule-runner-alerts", "is_write_index": false}},
            {"add": {"index": "rule-runner-alerts-000001", "alias": "rule-runner-alerts", "is_write_index": true}},
            {"remove_index": {"index": "rule-runner-alerts"}}
        ]})
    );
    let clone = requests
        .iter()
        .find(|r| r.url.path().contains("/_clone/"))
        .unwrap();
    assert_eq!(
        clone.url.path(),
        "/rule-runner-alerts/_clone/rule-runner-alerts-000000"
    );

    templates::check(&client, &names).await.unwrap();
    let again = templates::setup(&client, &names).await.unwrap();
    assert!(
        again
            .iter()
            .all(|l| l.template == Step::Unchanged && l.index_step == Step::Unchanged)
    );
}

#[tokio::test]
async fn a_clone_that_lost_alerts_stops_the_move_before_anything_is_removed() {
    let (server, cluster) = admin_server().await;
    older_layout(&cluster, 42);
    // A clone left by an earlier attempt, short of alerts.
    cluster.set_index("rule-runner-alerts-000000", json!({}));
    cluster.set_docs("rule-runner-alerts-000000", 40);
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_clone/rule-runner-alerts-000000"))
        .respond_with(super::mock::es_error(
            400,
            "resource_already_exists_exception",
            "index [rule-runner-alerts-000000/x] already exists",
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    let err = templates::setup(&client_for(&server), &IndexNames::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "`rule-runner-alerts-000000` holds 40 alerts where `rule-runner-alerts` holds 42"
        ),
        "{err}"
    );
    assert!(err.contains("Delete `rule-runner-alerts-000000`"), "{err}");
    assert_eq!(
        cluster.docs("rule-runner-alerts"),
        Some(42),
        "the plain index is kept"
    );
    assert!(cluster.alias("rule-runner-alerts").is_none());
}

#[tokio::test]
async fn an_ilm_policy_rule_runner_did_not_write_is_left_alone() {
    let (server, cluster) = admin_server().await;
    let theirs =
        json!({"policy": {"phases": {"hot": {"actions": {"rollover": {"max_age": "1d"}}}}}});
    cluster.set_policy("rule-runner-alerts", theirs.clone());
    let err = templates::setup(&client_for(&server), &IndexNames::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("an ILM policy `rule-runner-alerts` exists that rule-runner did not write"),
        "{err}"
    );
    assert!(err.contains("[alerts.rollover] enabled = false"), "{err}");
    assert_eq!(cluster.policy("rule-runner-alerts"), Some(theirs));
}

#[tokio::test]
async fn changed_conditions_update_the_policy_and_rollover_off_installs_none() {
    let (server, cluster) = admin_server().await;
    let client = client_for(&server);
    let names = IndexNames::default();
    templates::setup(&client, &names).await.unwrap();
    let weekly = Rollover {
        max_age: "7d".into(),
        max_docs: Some(1_000_000),
        ..Rollover::default()
    };
    let lines = templates::setup_kinds(&client, &names, &IndexKind::ALL, &weekly)
        .await
        .unwrap();
    assert_eq!(lines[0].lifecycle, Some(Step::Updated { from: 1 }));
    assert_eq!(
        cluster.policy("rule-runner-alerts").unwrap()["policy"]["phases"]["hot"]["actions"]["rollover"],
        json!({"max_age": "7d", "max_primary_shard_size": "50gb", "max_docs": 1_000_000})
    );

    let (server, cluster) = admin_server().await;
    let off = Rollover {
        enabled: false,
        ..Rollover::default()
    };
    let lines = templates::setup_kinds(&client_for(&server), &names, &IndexKind::ALL, &off)
        .await
        .unwrap();
    assert_eq!(lines[0].lifecycle, None);
    assert!(cluster.policy("rule-runner-alerts").is_none());
    let template = cluster.template("rule-runner-alerts").unwrap();
    assert_eq!(template.pointer("/template/settings/index/lifecycle"), None);
    assert_eq!(
        cluster.alias("rule-runner-alerts").unwrap().len(),
        1,
        "still an alias"
    );
}

#[tokio::test]
async fn on_opensearch_setup_installs_no_ilm_policy() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    let cluster = AdminCluster::default();
    Mock::given(any())
        .respond_with(cluster.clone())
        .mount(&server)
        .await;
    let lines = templates::setup(&client_for(&server), &IndexNames::default())
        .await
        .unwrap();
    assert_eq!(lines[0].lifecycle, None);
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| !r.url.path().starts_with("/_ilm")));
    assert!(cluster.alias("rule-runner-alerts").is_some());
}

fn alert(id: &str) -> AlertDoc {
    AlertDoc {
        id: id.into(),
        rule_id: "151d8f72-0747-11ef-a0c2-f661ea17fbcc".into(),
        event_time: Utc.with_ymd_and_hms(2025, 1, 1, 11, 47, 5).unwrap(),
        document: json!({"@timestamp": "2025-01-01T12:00:03.512Z"}),
    }
}

fn bulk_created() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"errors": false, "took": 1, "items": [
        {"create": {"_index": "rule-runner-alerts-000002", "_id": "a", "status": 201}}
    ]}))
}

#[tokio::test]
async fn on_opensearch_the_sink_asks_for_a_conditional_rollover_once_per_interval() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_rollover"))
        .and(body_is(
            json!({"conditions": {"max_age": "30d", "max_size": "50gb", "max_docs": 5000}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "acknowledged": true, "shards_acknowledged": true,
            "old_index": "rule-runner-alerts-000001", "new_index": "rule-runner-alerts-000002",
            "rolled_over": true, "dry_run": false,
            "conditions": {"[max_docs: 5000]": true}
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .respond_with(bulk_created())
        .expect(2)
        .mount(&server)
        .await;
    let rollover = Rollover {
        max_docs: Some(5000),
        ..Rollover::default()
    };
    let target = AlertsTarget::Own {
        index: "rule-runner-alerts".into(),
        rollover,
    };
    let sink = EsAlertSink::to_target(client_for(&server), target, "rule-runner-dead-letter");
    for _ in 0..2 {
        assert_eq!(
            sink.create(&[alert("a")]).await.unwrap(),
            [WriteOutcome::Created]
        );
    }
}

#[tokio::test]
async fn a_refused_rollover_never_holds_alerts_back_and_elasticsearch_leaves_it_to_ilm() {
    let server = MockServer::start().await;
    mount_root(&server).await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_rollover"))
        .respond_with(super::mock::es_error(
            403,
            "security_exception",
            "no permissions for [indices:admin/rollover] and User [name=rule_runner]",
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .respond_with(bulk_created())
        .expect(1)
        .mount(&server)
        .await;
    let sink = EsAlertSink::new(
        client_for(&server),
        "rule-runner-alerts",
        "rule-runner-dead-letter",
    );
    assert_eq!(
        sink.create(&[alert("a")]).await.unwrap(),
        [WriteOutcome::Created]
    );

    // Elasticsearch: ILM rolls over, the sink never asks.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(super::mock::root_info()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rule-runner-alerts/_bulk"))
        .respond_with(bulk_created())
        .expect(1)
        .mount(&server)
        .await;
    let sink = EsAlertSink::new(
        client_for(&server),
        "rule-runner-alerts",
        "rule-runner-dead-letter",
    );
    assert_eq!(
        sink.create(&[alert("a")]).await.unwrap(),
        [WriteOutcome::Created]
    );
    let paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(paths, ["/", "/rule-runner-alerts/_bulk"]);
}

#[test]
fn a_check_on_an_alias_without_write_index_says_how_to_mark_one() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err: EsError = runtime.block_on(async {
        let (server, cluster) = admin_server().await;
        cluster.set_index("rule-runner-alerts-000001", json!({}));
        cluster.set_index("rule-runner-alerts-000002", json!({}));
        cluster.set_alias(
            "rule-runner-alerts",
            &[
                ("rule-runner-alerts-000001", false),
                ("rule-runner-alerts-000002", false),
            ],
        );
        templates::check(&client_for(&server), &IndexNames::default())
            .await
            .unwrap_err()
    });
    let text = err.to_string();
    assert!(text.contains("none of them is its write index"), "{text}");
    assert!(text.contains("is_write_index: true"), "{text}");
}

//! `setup` installs templates and indices idempotently; `run` refuses to start without them.

use rule_runner::elasticsearch::templates::{self, IndexKind, Step, TEMPLATE_VERSION};
use rule_runner::elasticsearch::{EsError, IndexNames};
use serde_json::json;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer};

use super::mock::{admin_server, client_for, unauthorized};

fn writes(requests: &[wiremock::Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.method.as_str() == "PUT")
        .map(|r| format!("PUT {}", r.url.path()))
        .collect()
}

#[tokio::test]
async fn setup_installs_everything_once_and_then_changes_nothing() {
    let (server, cluster) = admin_server().await;
    let client = client_for(&server);
    let names = IndexNames::default();

    let first = templates::setup(&client, &names).await.unwrap();
    assert_eq!(first.len(), 4);
    assert!(
        first
            .iter()
            .all(|l| l.template == Step::Created && l.index_step == Step::Created)
    );
    let requests = server.received_requests().await.unwrap();
    assert_eq!(
        writes(&requests),
        [
            "PUT /_ilm/policy/rule-runner-alerts",
            "PUT /_index_template/rule-runner-alerts",
            "PUT /rule-runner-alerts-000001",
            "PUT /_index_template/rule-runner-state",
            "PUT /rule-runner-state",
            "PUT /_index_template/rule-runner-executions",
            "PUT /rule-runner-executions",
            "PUT /_index_template/rule-runner-dead-letter",
            "PUT /rule-runner-dead-letter",
        ]
    );
    // The template sent is the shipped file, pointed at the indices behind the alerts alias,
    // which the ILM policy rolls over.
    let alerts = cluster.template("rule-runner-alerts").unwrap();
    let mut shipped = IndexKind::Alerts.template_for("rule-runner-alerts");
    shipped["template"]["settings"]["index"]["lifecycle"] =
        json!({"name": "rule-runner-alerts", "rollover_alias": "rule-runner-alerts"});
    assert_eq!(alerts, shipped);
    assert_eq!(alerts["index_patterns"], json!(["rule-runner-alerts-*"]));
    assert_eq!(
        cluster.alias("rule-runner-alerts").unwrap(),
        [("rule-runner-alerts-000001".to_string(), true)]
    );
    assert_eq!(
        cluster.policy("rule-runner-alerts").unwrap()["policy"]["phases"]["hot"]["actions"]["rollover"],
        json!({"max_age": "30d", "max_primary_shard_size": "50gb"})
    );

    server.reset().await;
    Mock::given(any())
        .respond_with(cluster.clone())
        .mount(&server)
        .await;
    let second = templates::setup(&client, &names).await.unwrap();
    assert!(
        second
            .iter()
            .all(|l| l.template == Step::Unchanged && l.index_step == Step::Unchanged)
    );
    assert!(writes(&server.received_requests().await.unwrap()).is_empty());

    templates::check(&client, &names).await.unwrap();
}

#[tokio::test]
async fn setup_upgrades_an_older_template_and_the_live_mapping() {
    let (server, cluster) = admin_server().await;
    let client = client_for(&server);
    let names = IndexNames::default();
    templates::setup(&client, &names).await.unwrap();
    let mut old = IndexKind::State.template_for("rule-runner-state");
    old["version"] = json!(0);
    cluster.set_template("rule-runner-state", old);
    cluster.set_index(
        "rule-runner-state",
        json!({"_meta": {"version": 0}, "properties": {}}),
    );

    let lines = templates::setup(&client, &names).await.unwrap();
    let state = lines.iter().find(|l| l.kind == IndexKind::State).unwrap();
    assert_eq!(state.template, Step::Updated { from: 0 });
    assert_eq!(state.index_step, Step::Updated { from: 0 });
    assert_eq!(
        cluster.mapping("rule-runner-state").unwrap()["_meta"]["version"],
        json!(TEMPLATE_VERSION)
    );
    assert!(
        lines
            .iter()
            .filter(|l| l.kind != IndexKind::State)
            .all(|l| l.template == Step::Unchanged)
    );
}

#[tokio::test]
async fn setup_refuses_to_downgrade_a_newer_template() {
    let (server, cluster) = admin_server().await;
    let client = client_for(&server);
    let mut newer = IndexKind::Alerts.template_for("rule-runner-alerts");
    newer["version"] = json!(TEMPLATE_VERSION + 1);
    cluster.set_template("rule-runner-alerts", newer.clone());

    let err = templates::setup(&client, &IndexNames::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("installed by a newer rule-runner"), "{err}");
    assert_eq!(
        cluster.template("rule-runner-alerts").unwrap(),
        newer,
        "left untouched"
    );
}

#[tokio::test]
async fn setup_follows_configured_index_names() {
    let (server, cluster) = admin_server().await;
    let client = client_for(&server);
    let names = IndexNames {
        alerts: "soc-alerts".into(),
        ..IndexNames::default()
    };
    templates::setup(&client, &names).await.unwrap();
    assert_eq!(
        cluster.template("soc-alerts").unwrap()["index_patterns"],
        json!(["soc-alerts-*"])
    );
    assert!(cluster.mapping("soc-alerts-000001").is_some());
    assert!(cluster.alias("soc-alerts").is_some());
    assert!(cluster.template("rule-runner-alerts").is_none());
}

#[tokio::test]
async fn check_lists_what_is_missing_and_points_at_setup() {
    let (server, cluster) = admin_server().await;
    let client = client_for(&server);
    let names = IndexNames::default();
    cluster.set_index(
        "rule-runner-alerts-000001",
        json!({"_meta": {"version": TEMPLATE_VERSION}}),
    );
    cluster.set_alias("rule-runner-alerts", &[("rule-runner-alerts-000001", true)]);
    cluster.set_index("rule-runner-state", json!({"properties": {}}));

    let err = templates::check(&client, &names).await.unwrap_err();
    assert!(matches!(err, EsError::NotSetUp { .. }));
    let text = err.to_string();
    assert!(
        text.contains("`rule-runner-state` has mapping version none"),
        "{text}"
    );
    assert!(
        text.contains("execution log index `rule-runner-executions` does not exist"),
        "{text}"
    );
    assert!(
        text.contains("dead letter index `rule-runner-dead-letter` does not exist"),
        "{text}"
    );
    assert!(!text.contains("`rule-runner-alerts`"), "{text}");
    assert!(text.contains("Run `rule-runner setup`"), "{text}");
}

#[tokio::test]
async fn a_401_says_which_credentials_to_set() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(unauthorized())
        .expect(1)
        .mount(&server)
        .await;
    let err = templates::setup(&client_for(&server), &IndexNames::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    let text = err.to_string();
    assert!(
        text.contains("rejected the credentials (401 Unauthorized"),
        "{text}"
    );
    assert!(
        text.contains("unable to authenticate user [rule_runner]"),
        "{text}"
    );
    assert!(text.contains("ELASTICSEARCH_API_KEY"), "{text}");
}

#[test]
fn setup_command_prints_each_index_and_reruns_cleanly() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, _cluster) = runtime.block_on(admin_server());
    let run = || {
        crate::util::rule_runner()
            .args(["setup", "--url", &server.uri()])
            .output()
            .unwrap()
    };
    let first = run();
    assert_exit!(first, 0);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("rule-runner-alerts"), "{stdout}");
    assert_eq!(stdout.matches("template created").count(), 4, "{stdout}");
    assert!(
        stdout.contains("index created, lifecycle policy created"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("cluster `rule-runner-demo`, version 8.17.0"),
        "{stderr}"
    );

    let second = run();
    assert_exit!(second, 0);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert_eq!(stdout.matches("template up to date").count(), 4, "{stdout}");
    assert_eq!(stdout.matches("index up to date").count(), 4, "{stdout}");
    assert!(stdout.contains("lifecycle policy up to date"), "{stdout}");
}

//! The Security destination on the real engine: an index and alias built as Kibana builds
//! them for a space, from Kibana 8.17's alerts field maps (`tests/data/kibana/`, with
//! `dynamic: false`), take every alert of the real datasets with zero rejections; writes
//! never create the alias; dedup holds across a rollover; and the fields the Alerts table
//! filters and sorts on are searchable.

use std::sync::Arc;

use ::elasticsearch::http::Method;
use chrono::{DateTime, TimeDelta, Utc};
use rule_runner::elasticsearch::templates::{self, IndexKind};
use rule_runner::elasticsearch::{
    AlertsTarget, Call, Destination, EsAlertSink, EsClient, security_alerts_alias,
};
use rule_runner::engine::{AlertSink, Engine, EngineConfig, Shutdown, WriteOutcome};
use rule_runner::rule::load_paths;
use serde_json::{Map, Value, json};

use super::{clean_up, dataset, engine, unique_names};
use crate::util::{data, repo};

/// Kibana's alerts mapping: the alert fields of `tests/data/kibana/` and the ECS fields,
/// nested into `properties` (a field that also has sub-fields keeps them as multi-fields).
fn kibana_alerts_mapping() -> Value {
    let read = |path: std::path::PathBuf| -> Map<String, Value> {
        serde_json::from_str(&std::fs::read_to_string(&path).expect("test data"))
            .expect("a JSON object")
    };
    let mut flat: Vec<(String, Value)> =
        read(repo("src/kql/data/ecs-and-aws-cloudtrail-field-types.json"))
            .into_iter()
            .filter(|(name, _)| !name.starts_with("aws."))
            .map(|(name, kind)| {
                let mut field = json!({"type": kind});
                match kind.as_str() {
                    Some("keyword") => field["ignore_above"] = json!(1024),
                    Some("scaled_float") => field["scaling_factor"] = json!(1000),
                    _ => {}
                }
                (name, field)
            })
            .collect();
    flat.extend(read(data("kibana/kibana-8.17-alert-fields.json")));
    flat.sort_by(|a, b| a.0.cmp(&b.0));
    let mut root = Map::new();
    for (name, field) in &flat {
        insert(&mut root, name, field.clone());
    }
    json!({"dynamic": false, "properties": root})
}

fn insert(properties: &mut Map<String, Value>, name: &str, field: Value) {
    let (head, rest) = match name.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (name, None),
    };
    let Some(rest) = rest else {
        let entry = properties.entry(head.to_string()).or_insert(json!({}));
        if entry.get("properties").is_some() && field["type"] == "object" {
            return;
        }
        let keep = entry.get("properties").cloned();
        *entry = field;
        if let Some(children) = keep {
            if entry["type"] == "object" {
                entry["properties"] = children;
            }
        }
        return;
    };
    let entry = properties.entry(head.to_string()).or_insert(json!({}));
    let leaf = entry
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| !matches!(t, "object" | "nested"));
    if leaf {
        // `user_agent.original.text`: a multi-field of a leaf, not an object below it.
        entry["fields"][rest] = field;
        return;
    }
    if entry.get("properties").is_none() {
        entry["properties"] = json!({});
    }
    if let Some(children) = entry["properties"].as_object_mut() {
        insert(children, rest, field);
    }
}

async fn send(client: &EsClient, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut call = Call::new(path.to_string(), method, path.to_string());
    if let Some(body) = body {
        call = call.json(body);
    }
    client
        .send_ok(&call)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The space's concrete index and alias, as Kibana creates them.
async fn create_kibana_alerts_index(client: &EsClient, space: &str) {
    let dialect = client.dialect().await.expect("the engine answers");
    let mappings = dialect.mappings(kibana_alerts_mapping());
    send(
        client,
        Method::Put,
        &format!("/.internal.alerts-security.alerts-{space}-000001"),
        Some(json!({
            "settings": {"index": {
                "hidden": true,
                "number_of_replicas": 0,
                // Kibana's limit is 2,500 over the ECS version it ships (8.x); ECS 9.5, whose
                // field list stands in for it here, has more fields.
                "mapping": {"total_fields": {"limit": 4000}},
            }},
            "mappings": mappings,
            "aliases": {security_alerts_alias(space): {"is_write_index": true, "is_hidden": true}},
        })),
    )
    .await;
}

async fn count(client: &EsClient, space: &str, query: Value) -> u64 {
    let body = send(
        client,
        Method::Post,
        &format!(
            "/{}*/_count?expand_wildcards=open,hidden",
            security_alerts_alias(space)
        ),
        Some(json!({ "query": query })),
    )
    .await;
    body["count"].as_u64().expect("a count")
}

async fn remove(client: &EsClient, space: &str) {
    let _ = client
        .send(&Call::new(
            "clean up",
            Method::Delete,
            format!("/.internal.alerts-security.alerts-{space}-*?expand_wildcards=all"),
        ))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_security_alerts_of_the_datasets_fit_kibanas_mapping_and_survive_a_rollover() {
    let test = "real_security_alerts_of_the_datasets_fit_kibanas_mapping_and_survive_a_rollover";
    let (Some(engine), Some(set)) = (engine(test), dataset::cloudtrail(test)) else {
        return;
    };
    let client = engine.client.clone();
    let (prefix, names) = unique_names();
    let space = format!("rrit{}", uuid::Uuid::new_v4().simple());
    templates::setup_kinds(
        &client,
        &names,
        IndexKind::used_with(Destination::Security),
        &Default::default(),
    )
    .await
    .expect("setup");
    create_kibana_alerts_index(&client, &space).await;
    templates::check_destination(&client, &names, Destination::Security, &space)
        .await
        .expect("the alias is there");
    let (source, sink, state) = rule_runner::elasticsearch::ports_to(
        &client,
        &names,
        AlertsTarget::Security {
            space: space.clone(),
        },
    );
    let config = EngineConfig {
        space_id: space.clone(),
        ..EngineConfig::default()
    };
    let service = Engine::new(source, sink, state, config);

    let times: Vec<DateTime<Utc>> = set
        .documents
        .iter()
        .filter_map(|doc| doc["@timestamp"].as_str())
        .filter_map(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|t| t.with_timezone(&Utc))
        .collect();
    let start = *times.iter().min().expect("events") - TimeDelta::days(1);
    let end = *times.iter().max().expect("events") + TimeDelta::days(1);
    let report = load_paths(&[repo("rules"), data("rules/detection-rules/aws")]);
    let rules: Vec<_> = report
        .runnable()
        .map(|r| r.rule.clone())
        // EQL needs `_eql/search`, which the OpenSearch test node lacks.
        .filter(|r| r.runs_in_service() && r.rule_type != "eql")
        .map(|rule| {
            let mut rule = (*rule).clone();
            rule.index = vec![set.index.clone()];
            rule.timestamp_override = None;
            rule.interval = "30d".into();
            rule.from = "now-30d".into();
            if rule.extra.contains_key("history_window_start") {
                rule.extra
                    .insert("history_window_start".into(), json!("now-60d"));
            }
            Arc::new(rule)
        })
        .collect();
    let backfill_all = || async {
        let (mut created, mut duplicates, mut refused) = (0, 0, Vec::new());
        for rule in &rules {
            let record = service
                .backfill(rule, start, end, end, &Shutdown::never())
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", rule.name));
            created += record.totals.created;
            duplicates += record.totals.duplicates;
            if record.totals.dead_lettered > 0 || record.totals.failed_writes > 0 {
                refused.push(format!("{}: {:?}", rule.name, record.errors));
            }
        }
        (created, duplicates, refused)
    };
    let (created, _, refused) = backfill_all().await;
    if !refused.is_empty() {
        let letters = send(
            &client,
            Method::Post,
            &format!("/{}/_search", names.dead_letter),
            Some(json!({"size": 20, "_source": ["reason"]})),
        )
        .await;
        let reasons: Vec<&Value> = letters["hits"]["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| &h["_source"]["reason"])
            .collect();
        panic!("rejected by Kibana's mapping: {refused:#?}\n{reasons:#?}");
    }
    assert!(created >= 20, "{created} alerts from {} rules", rules.len());
    assert_eq!(
        count(&client, &space, json!({"match_all": {}})).await,
        created
    );

    // What the Alerts table filters and sorts on is indexed with Kibana's types.
    let term = |field: &str, value: Value| json!({"term": {field: value}});
    assert_eq!(
        count(
            &client,
            &space,
            term("kibana.alert.workflow_status", json!("open"))
        )
        .await,
        created
    );
    assert_eq!(
        count(&client, &space, term("kibana.space_ids", json!(space))).await,
        created
    );
    let by_rule = count(
        &client,
        &space,
        term(
            "kibana.alert.rule.name",
            json!("AWS Lambda Function Policy Updated to Allow Public Invocation"),
        ),
    )
    .await;
    assert!(by_rule >= 1, "the shipped rule's alerts by rule name");
    let severities = ["low", "medium", "high", "critical"];
    let mut by_severity = 0;
    for severity in severities {
        by_severity += count(
            &client,
            &space,
            term("kibana.alert.severity", json!(severity)),
        )
        .await;
    }
    assert_eq!(
        by_severity, created,
        "every alert has one of Kibana's severities"
    );
    let risky = count(
        &client,
        &space,
        json!({"range": {"kibana.alert.risk_score": {"gte": 0, "lte": 100}}}),
    )
    .await;
    assert_eq!(risky, created, "kibana.alert.risk_score is numeric");
    let newest = send(
        &client,
        Method::Post,
        &format!("/{}/_search", security_alerts_alias(&space)),
        Some(json!({"size": 2, "sort": [{"@timestamp": "desc"}], "_source": false})),
    )
    .await;
    let sorted = newest["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(sorted.len(), 2, "sorted on @timestamp");

    // A rollover moves writes to a new index; the same backfill again finds every alert
    // in the old one and writes none.
    send(
        &client,
        Method::Post,
        &format!("/{}/_rollover", security_alerts_alias(&space)),
        None,
    )
    .await;
    let (again, duplicates, refused) = backfill_all().await;
    assert!(refused.is_empty(), "{refused:#?}");
    assert_eq!(again, 0, "no alert is written twice across the rollover");
    assert!(
        duplicates >= created,
        "{duplicates} duplicates of {created}"
    );
    assert_eq!(
        count(&client, &space, json!({"match_all": {}})).await,
        created
    );
    eprintln!(
        "security destination: {created} alerts from {} rules accepted by Kibana 8.17's alerts mapping, 0 rejected; after a rollover, 0 written again ({duplicates} duplicates)",
        rules.len()
    );
    remove(&client, &space).await;
    clean_up(&client, &prefix, &names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_a_write_to_a_missing_security_alias_creates_nothing() {
    let test = "real_a_write_to_a_missing_security_alias_creates_nothing";
    let Some(engine) = engine(test) else {
        return;
    };
    let client = engine.client.clone();
    let space = format!("rrit{}", uuid::Uuid::new_v4().simple());
    let (prefix, names) = unique_names();
    let err = templates::check_destination(&client, &names, Destination::Security, &space)
        .await
        .expect_err("nothing is set up");
    assert!(err.to_string().contains("does not exist"), "{err}");
    templates::setup_kinds(
        &client,
        &names,
        IndexKind::used_with(Destination::Security),
        &Default::default(),
    )
    .await
    .expect("setup");
    let err = templates::check_destination(&client, &names, Destination::Security, &space)
        .await
        .expect_err("no alias");
    let text = err.to_string();
    assert!(
        text.contains(&security_alerts_alias(&space)) && text.contains("rule-runner setup"),
        "{text}"
    );
    let sink = EsAlertSink::to_target(
        client.clone(),
        AlertsTarget::Security {
            space: space.clone(),
        },
        &names.dead_letter,
    );
    let alert = rule_runner::engine::AlertDoc {
        id: "a".repeat(64),
        rule_id: "r".into(),
        event_time: Utc::now(),
        document: json!({"@timestamp": Utc::now().to_rfc3339(), "kibana.space_ids": [space]}),
    };
    let outcomes = sink
        .create(&[alert])
        .await
        .expect("the bulk request answers");
    assert!(
        matches!(&outcomes[0], WriteOutcome::Rejected(reason) if reason.contains("require_alias") || reason.contains("no such index")),
        "{outcomes:?}"
    );
    let alias = security_alerts_alias(&space);
    let reply = client
        .send(&Call::new("probe", Method::Head, format!("/{alias}")))
        .await
        .expect("an answer");
    assert_eq!(reply.status, 404, "the write created `{alias}`");
    clean_up(&client, &prefix, &names).await;
}

/// A mock Kibana that answers as Kibana does for a space: its status, the alerts index
/// (already created on the engine, as Kibana would), and rules it creates with an id of its
/// own choosing (here derived from the rule id, so the test can predict it).
async fn mock_kibana(space: &str) -> wiremock::MockServer {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};
    let kibana = MockServer::start().await;
    let prefix = format!("/s/{space}/api");
    Mock::given(method("GET"))
        .and(path(format!("{prefix}/status")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"version": {"number": "8.17.4"}})),
        )
        .mount(&kibana)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{prefix}/detection_engine/index")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true})))
        .expect(1)
        .mount(&kibana)
        .await;
    // Before setup the rules do not exist (setup looks each up once); afterwards the Layer
    // rule has an analyst's exception: the Lambda layers `bob` adds are expected.
    Mock::given(method("GET"))
        .and(path(format!("{prefix}/detection_engine/rules")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"status_code": 404})))
        .up_to_n_times(2)
        .mount(&kibana)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{prefix}/detection_engine/rules")))
        .respond_with(|request: &Request| {
            let rule_id = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "rule_id")
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            let lists = if rule_id == LAYER_RULE {
                json!([{"id": "e1", "list_id": "rr-bob", "namespace_type": "single", "type": "detection"}])
            } else {
                json!([])
            };
            ResponseTemplate::new(200).set_body_json(json!({
                "id": kibana_id(&rule_id), "rule_id": rule_id, "enabled": false,
                "meta": {"rule_runner": {"managed": true, "fingerprint": "any"}},
                "exceptions_list": lists,
            }))
        })
        .mount(&kibana)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{prefix}/exception_lists/items/_find")))
        .and(wiremock::matchers::query_param("list_id", "rr-bob"))
        .and(wiremock::matchers::query_param("namespace_type", "single"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"item_id": "bob-layers", "name": "bob deploys layers", "list_id": "rr-bob",
                "type": "simple", "os_types": [],
                "entries": [{"field": "user.name", "operator": "included", "type": "match_any", "value": ["bob"]}]}],
            "page": 1, "per_page": 500, "total": 1
        })))
        .expect(1)
        .mount(&kibana)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{prefix}/detection_engine/rules")))
        .respond_with(|request: &Request| {
            let mut rule: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let rule_id = rule["rule_id"].as_str().unwrap_or_default().to_string();
            rule["id"] = json!(kibana_id(&rule_id));
            ResponseTemplate::new(200).set_body_json(rule)
        })
        .mount(&kibana)
        .await;
    kibana
}

/// The shipped "AWS Lambda Layer Added to Existing Function" rule.
const LAYER_RULE: &str = "7d091a76-0737-11ef-8469-f661ea17fbcc";

fn kibana_id(rule_id: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, rule_id.as_bytes()).to_string()
}

/// `setup` then `backfill` from the command line, alerts to the Security app: the rules are
/// registered in (a mock) Kibana, their ids kept in the state index, and the alerts written
/// into Kibana's alias name those rules and Kibana's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_setup_registers_the_rules_and_backfilled_alerts_link_to_them() {
    let test = "real_setup_registers_the_rules_and_backfilled_alerts_link_to_them";
    let (Some(engine), Some(_loaded)) = (engine(test), dataset::cloudtrail(test)) else {
        return;
    };
    let client = engine.client.clone();
    let (prefix, names) = unique_names();
    let space = format!("rrit{}", uuid::Uuid::new_v4().simple());
    create_kibana_alerts_index(&client, &space).await;
    let kibana = mock_kibana(&space).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = super::write_config(dir.path(), &names);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[alerts]\ndestination = \"security\"\n\n[kibana]\nurl = \"{}\"\nspace = \"{space}\"\n",
        kibana.uri()
    ));
    std::fs::write(&config, text).expect("config written");
    let cli = |args: &[&str]| {
        let out = crate::util::rule_runner()
            .args(args)
            .arg("--config")
            .arg(&config)
            .args(["--url", &engine.url])
            .output()
            .expect("rule-runner runs");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
        stdout
    };
    let setup = cli(&["setup"]);
    assert!(
        setup.contains(&format!(
            ".alerts-security.alerts-{space} (initialised by Kibana"
        )) && setup
            .contains("2 registered in Kibana, disabled (2 created, 0 updated, 0 unchanged)"),
        "{setup}"
    );
    // The shipped rules place events by `event.ingested`: the datasets' load time.
    let (start, end) = ("now-3h".to_string(), "now".to_string());
    let backfill = cli(&["backfill", "--all", "--start", &start, "--end", &end]);
    assert!(backfill.contains("created"), "{backfill}");
    let alerts = send(
        &client,
        Method::Post,
        &format!("/{}/_search", security_alerts_alias(&space)),
        Some(json!({"size": 100, "_source": [
            "kibana.alert.rule.uuid", "kibana.alert.rule.rule_id", "kibana.version", "kibana.space_ids",
            "user.name"
        ]})),
    )
    .await;
    let hits = alerts["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!hits.is_empty(), "no alert: {backfill}");
    for hit in &hits {
        let source = &hit["_source"];
        let rule_id = source["kibana.alert.rule.rule_id"]
            .as_str()
            .expect("a rule id");
        assert_eq!(source["kibana.alert.rule.uuid"], json!(kibana_id(rule_id)));
        assert_eq!(source["kibana.version"], "8.17.4");
        assert_eq!(source["kibana.space_ids"], json!([space]));
        if rule_id == LAYER_RULE {
            assert_ne!(
                source["user"]["name"], "bob",
                "the exception leaves bob's layers out"
            );
        }
    }
    let rules_alerted: std::collections::BTreeSet<&str> = hits
        .iter()
        .filter_map(|h| h["_source"]["kibana.alert.rule.rule_id"].as_str())
        .collect();
    assert_eq!(
        rules_alerted.len(),
        2,
        "both rules still alert: {rules_alerted:?}"
    );
    assert!(
        hits.iter().any(|h| h["_source"]["user"]["name"] == "bob"),
        "the other rule's alerts on bob stay"
    );
    // Nothing was written to rule-runner's own alerts index: setup did not even create it.
    let own = client
        .send(&Call::new(
            "probe",
            Method::Head,
            format!("/{}", names.alerts),
        ))
        .await
        .expect("an answer");
    assert_eq!(own.status, 404);
    remove(&client, &space).await;
    clean_up(&client, &prefix, &names).await;
}

/// `run` with the Security destination and no alias stops before any rule, saying what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_run_without_kibanas_alias_says_to_run_setup() {
    let test = "real_run_without_kibanas_alias_says_to_run_setup";
    let Some(engine) = engine(test) else {
        return;
    };
    let client = engine.client.clone();
    let (prefix, names) = unique_names();
    let space = format!("rrit{}", uuid::Uuid::new_v4().simple());
    templates::setup_kinds(
        &client,
        &names,
        IndexKind::used_with(Destination::Security),
        &Default::default(),
    )
    .await
    .expect("setup");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = super::write_config(dir.path(), &names);
    let out = crate::util::rule_runner()
        .args(["run", "--once", "--config"])
        .arg(&config)
        .args(["--url", &engine.url, "--alerts-destination", "security"])
        .args(["--kibana-space", &space])
        .output()
        .expect("rule-runner runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("`.alerts-security.alerts-{space}` does not exist"))
            && stderr.contains("Run `rule-runner setup` with the Kibana URL set"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("created"));
    clean_up(&client, &prefix, &names).await;
}

//! setup, bulk writes and `run --once` on the real engine.

use ::elasticsearch::http::Method;
use rule_runner::elasticsearch::templates::{self, Step};
use rule_runner::elasticsearch::{Call, EsAlertSink, EsClient};
use rule_runner::engine::{AlertDoc, AlertSink, WriteOutcome};
use serde_json::{Value, json};

use crate::real::{clean_up, engine, unique_names};
use crate::util::rule_runner;

async fn send(client: &EsClient, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut call = Call::new(format!("{method:?} {path}"), method, path);
    if let Some(body) = body {
        call = call.json(body);
    }
    client.send_ok(&call).await.unwrap()
}

#[tokio::test]
async fn real_setup_is_idempotent() {
    let Some(engine) = engine("real_setup_is_idempotent") else {
        return;
    };
    let client = engine.client.clone();
    let (prefix, names) = unique_names();
    let first = templates::setup(&client, &names).await.unwrap();
    let second = templates::setup(&client, &names).await;
    let check = templates::check(&client, &names).await;
    clean_up(&client, &prefix, &names).await;
    assert!(
        first
            .iter()
            .all(|l| l.template == Step::Created && l.index_step == Step::Created)
    );
    let second = second.unwrap();
    assert!(
        second
            .iter()
            .all(|l| l.template == Step::Unchanged && l.index_step == Step::Unchanged),
        "{second:?}"
    );
    check.unwrap();
}

#[tokio::test]
async fn real_bulk_create_is_created_then_duplicate() {
    let Some(engine) = engine("real_bulk_create_is_created_then_duplicate") else {
        return;
    };
    let client = engine.client.clone();
    let (prefix, names) = unique_names();
    templates::setup(&client, &names).await.unwrap();
    let sink = EsAlertSink::new(client.clone(), &names.alerts, &names.dead_letter);
    let alert = |id: &str, port: Value| AlertDoc {
        id: id.into(),
        rule_id: "it".into(),
        event_time: chrono::Utc::now(),
        document: json!({"@timestamp": "2025-01-01T12:00:00.000Z", "kibana.alert.uuid": id,
                         "source": {"port": port}}),
    };
    let first = sink
        .create(&[alert("a1", json!(443)), alert("a2", json!(80))])
        .await;
    let again = sink.create(&[alert("a1", json!(443))]).await;
    // `source.port` was mapped as a number by the first document: text is refused for good.
    let refused = sink.create(&[alert("a3", json!("http"))]).await;
    let existing = sink
        .existing_ids(&["a1".into(), "a2".into(), "zz".into()])
        .await;
    clean_up(&client, &prefix, &names).await;
    assert_eq!(
        first.unwrap(),
        [WriteOutcome::Created, WriteOutcome::Created]
    );
    assert_eq!(again.unwrap(), [WriteOutcome::Duplicate]);
    assert!(matches!(&refused.unwrap()[0], WriteOutcome::Rejected(r) if r.starts_with("400")));
    assert_eq!(
        existing.unwrap(),
        ["a1".to_string(), "a2".to_string()].into()
    );
}

/// An AddPermission call making a function public, as Elastic's AWS integration indexes it,
/// ingested `minutes_ago` minutes ago.
fn public_invocation_event(id: &str, minutes_ago: i64) -> Value {
    let at = (chrono::Utc::now() - chrono::TimeDelta::minutes(minutes_ago))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "@timestamp": at,
        "event": {"id": id, "dataset": "aws.cloudtrail", "provider": "lambda.amazonaws.com",
                  "action": "AddPermission20150331v2", "outcome": "success", "kind": "event",
                  "ingested": at},
        "cloud": {"account": {"id": "123456789012"}, "region": "us-east-1"},
        "source": {"address": "198.51.100.7", "ip": "198.51.100.7"},
        "user": {"name": "attacker"},
        "aws": {"cloudtrail": {"request_parameters":
            "{principal=*, functionName=demo, statementId=public, action=lambda:InvokeFunction}"}}
    })
}

/// A source index the shipped rules search (`filebeat-<prefix>`, strings as keywords like
/// ECS) holding two public-invocation events of the last 10 minutes; its name and the ids.
pub(super) async fn two_public_invocations(
    client: &EsClient,
    prefix: &str,
) -> (String, [String; 2]) {
    let source_index = format!("filebeat-{prefix}");
    send(client, Method::Put, &format!("/{source_index}"), Some(json!({"mappings": {
        "dynamic_templates": [{"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword"}}}],
        "properties": {"@timestamp": {"type": "date"}, "event": {"properties": {"ingested": {"type": "date"}}}}
    }}))).await;
    let ids = [format!("{prefix}-e1"), format!("{prefix}-e2")];
    for (n, id) in ids.iter().enumerate() {
        send(
            client,
            Method::Put,
            &format!("/{source_index}/_doc/{id}?refresh=true"),
            Some(public_invocation_event(id, 5 + n as i64)),
        )
        .await;
    }
    (source_index, ids)
}

/// The done-when check: `run --once` with the shipped rules writes each alert once and only
/// once, however often it (and a backfill over the same time) is repeated.
#[tokio::test]
async fn real_run_once_writes_each_alert_exactly_once() {
    let Some(engine) = engine("real_run_once_writes_each_alert_exactly_once") else {
        return;
    };
    let client = engine.client.clone();
    let (prefix, names) = unique_names();
    let (source_index, ids) = two_public_invocations(&client, &prefix).await;

    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("rule-runner.toml");
    std::fs::write(&config_file, format!(
        "[indices]\nalerts = \"{}\"\nstate = \"{}\"\nexecutions = \"{}\"\ndead_letter = \"{}\"\n",
        names.alerts, names.state, names.executions, names.dead_letter
    )).unwrap();
    let url = engine.url.clone();
    let cli = |args: &[&str]| {
        rule_runner()
            .args(args)
            .arg("--config")
            .arg(&config_file)
            .args(["--url", &url])
            .output()
            .unwrap()
    };
    let mut outputs = vec![cli(&["setup"])];
    for _ in 0..3 {
        outputs.push(cli(&["run", "--once"]));
    }
    outputs.push(cli(&[
        "backfill", "--all", "--start", "now-2h", "--end", "now",
    ]));

    let count = alerts_per_event(&client, &names.alerts, &ids).await;
    clean_up(&client, &prefix, &names).await;
    let _ = client
        .send(&Call::new(
            "clean up",
            Method::Delete,
            format!("/{source_index}"),
        ))
        .await;

    for out in &outputs {
        assert_exit!(out, 0);
    }
    assert_one_alert_each(&count, ids.len());
}

/// The alerts in `alerts` per original event of `ids`, as a terms aggregation.
pub(super) async fn alerts_per_event(client: &EsClient, alerts: &str, ids: &[String]) -> Value {
    send(
        client,
        Method::Post,
        &format!("/{alerts}/_search"),
        Some(json!({
            "size": 0,
            "query": {"terms": {"kibana.alert.original_event.id": ids}},
            "aggs": {"per_event": {"terms": {"field": "kibana.alert.original_event.id"}}}
        })),
    )
    .await
}

/// Each of `events` events alerted exactly once, by [`alerts_per_event`]'s count.
pub(super) fn assert_one_alert_each(count: &Value, events: usize) {
    let buckets = count["aggregations"]["per_event"]["buckets"]
        .as_array()
        .unwrap();
    assert_eq!(buckets.len(), events, "{count}");
    for bucket in buckets {
        assert_eq!(bucket["doc_count"], 1, "{count}");
    }
}

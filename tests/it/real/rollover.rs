//! rule-runner's own alerts behind a rolling alias, on the real engine: dedup across a
//! rollover (the sink's own on OpenSearch), `run` and `backfill` writing nothing twice across
//! one, and `setup` moving an older plain alerts index behind the alias.

use ::elasticsearch::http::Method;
use rule_runner::elasticsearch::templates::{self, IndexKind, Step};
use rule_runner::elasticsearch::{AlertsTarget, Call, EsAlertSink, EsClient, Rollover};
use rule_runner::engine::{AlertDoc, AlertSink, WriteOutcome};
use serde_json::{Value, json};

use super::basics::{alerts_per_event, assert_one_alert_each, two_public_invocations};
use crate::real::{clean_up, engine, unique_names, write_config};
use crate::util::rule_runner;

async fn send(client: &EsClient, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut call = Call::new(format!("{method:?} {path}"), method, path);
    if let Some(body) = body {
        call = call.json(body);
    }
    client.send_ok(&call).await.unwrap()
}

/// The indices behind `alias`, each with whether it takes writes, in name order.
async fn behind(client: &EsClient, alias: &str) -> Vec<(String, bool)> {
    let body = send(client, Method::Get, &format!("/_alias/{alias}"), None).await;
    let mut indices: Vec<(String, bool)> = body
        .as_object()
        .unwrap()
        .iter()
        .map(|(index, entry)| {
            let write = entry["aliases"][alias]["is_write_index"].as_bool();
            (index.clone(), write.unwrap_or(true))
        })
        .collect();
    indices.sort();
    indices
}

/// Remove the ILM policy `setup` installs on Elasticsearch (none on OpenSearch).
async fn remove_policy(client: &EsClient, alias: &str) {
    let _ = client
        .send(&Call::new(
            "clean up",
            Method::Delete,
            format!("/_ilm/policy/{alias}"),
        ))
        .await;
}

fn alert(id: &str) -> AlertDoc {
    AlertDoc {
        id: id.into(),
        rule_id: "it".into(),
        event_time: chrono::Utc::now(),
        document: json!({"@timestamp": "2025-01-01T12:00:00.000Z", "kibana.alert.uuid": id}),
    }
}

#[tokio::test]
async fn real_dedup_holds_across_a_rollover() {
    let Some(engine) = engine("real_dedup_holds_across_a_rollover") else {
        return;
    };
    let client = engine.client.clone();
    let (prefix, names) = unique_names();
    let ilm = client.dialect().await.unwrap().has_ilm();
    // Roll over at two alerts, checked on every write (OpenSearch: the sink asks).
    let rollover = Rollover {
        max_docs: Some(2),
        check_interval: std::time::Duration::ZERO,
        ..Rollover::default()
    };
    let outcome = async {
        let lines = templates::setup_kinds(&client, &names, &IndexKind::ALL, &rollover)
            .await
            .unwrap();
        let target = AlertsTarget::Own {
            index: names.alerts.clone(),
            rollover: rollover.clone(),
        };
        let sink = EsAlertSink::to_target(client.clone(), target, &names.dead_letter);
        let first = sink.create(&[alert("a1"), alert("a2")]).await.unwrap();
        if ilm {
            // ILM would roll over on its own schedule; do now what it would do.
            send(
                &client,
                Method::Post,
                &format!("/{}/_rollover", names.alerts),
                None,
            )
            .await;
        }
        let second = sink.create(&[alert("a3")]).await.unwrap();
        let indices = behind(&client, &names.alerts).await;
        let existing = sink
            .existing_ids(&["a1".into(), "a2".into(), "a3".into(), "zz".into()])
            .await
            .unwrap();
        (lines, first, second, indices, existing)
    }
    .await;
    clean_up(&client, &prefix, &names).await;
    remove_policy(&client, &names.alerts).await;
    let (lines, first, second, indices, existing) = outcome;
    assert_eq!(lines[0].index_step, Step::Created);
    assert_eq!(first, [WriteOutcome::Created, WriteOutcome::Created]);
    assert_eq!(second, [WriteOutcome::Created]);
    assert_eq!(
        indices,
        [
            (format!("{}-000001", names.alerts), false),
            (format!("{}-000002", names.alerts), true)
        ],
        "a1 and a2 before the rollover, a3 after"
    );
    assert_eq!(
        existing,
        ["a1", "a2", "a3"].map(String::from).into(),
        "found in both indices"
    );
}

/// The done-when check of dedup across rollovers: `run --once`, a rollover, `run --once`
/// and a backfill over the same time write each alert once.
#[tokio::test]
async fn real_runs_across_a_rollover_write_each_alert_once() {
    let Some(engine) = engine("real_runs_across_a_rollover_write_each_alert_once") else {
        return;
    };
    let client = engine.client.clone();
    let (prefix, names) = unique_names();
    let (source_index, ids) = two_public_invocations(&client, &prefix).await;
    let dir = tempfile::tempdir().unwrap();
    let config_file = write_config(dir.path(), &names);
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
    let mut outputs = vec![cli(&["setup"]), cli(&["run", "--once"])];
    send(
        &client,
        Method::Post,
        &format!("/{}/_rollover", names.alerts),
        None,
    )
    .await;
    outputs.push(cli(&["run", "--once"]));
    outputs.push(cli(&[
        "backfill", "--all", "--start", "now-2h", "--end", "now",
    ]));
    let indices = behind(&client, &names.alerts).await;
    let count = alerts_per_event(&client, &names.alerts, &ids).await;
    clean_up(&client, &prefix, &names).await;
    let _ = client
        .send(&Call::new(
            "clean up",
            Method::Delete,
            format!("/{source_index}"),
        ))
        .await;
    remove_policy(&client, &names.alerts).await;
    for out in &outputs {
        assert_exit!(out, 0);
    }
    assert_eq!(indices.len(), 2, "{indices:?}");
    assert_one_alert_each(&count, ids.len());
    // The backfill met both alerts again, behind the alias in the index before the rollover
    // (other tests' events in `filebeat-*` may add to the count, never subtract).
    let backfill = String::from_utf8_lossy(&outputs[3].stdout);
    let duplicates: u64 = backfill
        .split(" duplicates")
        .filter_map(|before| before.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(duplicates >= 2, "{backfill}");
}

#[tokio::test]
async fn real_setup_moves_an_older_plain_alerts_index_behind_the_alias() {
    let Some(engine) = engine("real_setup_moves_an_older_plain_alerts_index_behind_the_alias")
    else {
        return;
    };
    let client = engine.client.clone();
    let (prefix, names) = unique_names();
    let outcome = async {
        // What an older rule-runner left: its template on the plain index, alerts in it.
        let mut old = IndexKind::Alerts.template_for(&names.alerts);
        old["index_patterns"] = json!([names.alerts]);
        let old = client.dialect().await.unwrap().index_template(old);
        send(
            &client,
            Method::Put,
            &format!("/_index_template/{}", names.alerts),
            Some(old),
        )
        .await;
        for id in ["old1", "old2", "old3"] {
            send(
                &client,
                Method::Put,
                &format!("/{}/_doc/{id}", names.alerts),
                Some(alert(id).document),
            )
            .await;
        }
        let before = templates::check(&client, &names)
            .await
            .map_err(|e| e.to_string());
        let lines = templates::setup(&client, &names).await.unwrap();
        let indices = behind(&client, &names.alerts).await;
        let check = templates::check(&client, &names).await;
        let sink = EsAlertSink::new(client.clone(), &names.alerts, &names.dead_letter);
        let written = sink.create(&[alert("new1"), alert("old1")]).await.unwrap();
        let existing = sink
            .existing_ids(&["old1".into(), "old2".into(), "old3".into(), "new1".into()])
            .await
            .unwrap();
        let again = templates::setup(&client, &names).await.unwrap();
        (before, lines, indices, check, written, existing, again)
    }
    .await;
    clean_up(&client, &prefix, &names).await;
    remove_policy(&client, &names.alerts).await;
    let (before, lines, indices, check, written, existing, again) = outcome;
    let before = before.unwrap_err();
    assert!(
        before.contains("is a plain index from an older rule-runner"),
        "{before}"
    );
    assert_eq!(
        lines[0].index_step,
        Step::Migrated {
            alerts: 3,
            into: format!("{}-000000", names.alerts)
        }
    );
    assert_eq!(
        indices,
        [
            (format!("{}-000000", names.alerts), false),
            (format!("{}-000001", names.alerts), true)
        ]
    );
    check.unwrap();
    // The write index lacks old1, so only the lookup keeps the engine from writing it again;
    // the sink itself writes what it is given.
    assert_eq!(written[0], WriteOutcome::Created);
    assert_eq!(existing.len(), 4, "{existing:?}");
    assert!(
        again.iter().all(|l| l.index_step == Step::Unchanged),
        "{again:?}"
    );
}

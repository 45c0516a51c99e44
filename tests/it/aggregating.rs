//! `new_terms` and `threshold` rules in `scan`: the alerts the service would have raised on
//! the rule's schedule, the offline warm-up, and results independent of threads and files.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::util::{repo, run_cli};

/// `examples/new-terms/trail.ndjson`, in no particular order: alice's first key on day 0
/// (learned during the warm-up), bob's first on day 2 (new), alice again on day 2 (her day-0
/// key is outside the one-day history: new again), bob again ten minutes later (not new);
/// carol reads three secrets, two distinct, within 20 s (a threshold alert), dave two (none).
fn records() -> Vec<String> {
    std::fs::read_to_string(repo("examples/new-terms/trail.ndjson"))
        .expect("the example trail")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_records(path: &Path, records: &[String]) {
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).expect("write records");
}

struct Setup {
    _dir: tempfile::TempDir,
    rules: String,
    whole: String,
    split: Vec<String>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rules = repo("examples/new-terms/rules");
    let all = records();
    let whole = dir.path().join("whole.ndjson");
    write_records(&whole, &all);
    let mut split = Vec::new();
    for (n, chunk) in all.chunks(2).enumerate() {
        let path = dir.path().join(format!("part-{n}.ndjson"));
        write_records(&path, chunk);
        split.push(path.display().to_string());
    }
    Setup {
        rules: rules.display().to_string(),
        whole: whole.display().to_string(),
        split,
        _dir: dir,
    }
}

fn scan(setup: &Setup, inputs: &[String], extra: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "scan",
        "--format",
        "ndjson",
        "--now",
        "2024-06-01T00:00:00Z",
        "--rules",
        &setup.rules,
    ];
    args.extend_from_slice(extra);
    args.extend(inputs.iter().map(String::as_str));
    let out = run_cli(&args);
    assert_exit!(out, 0);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("an alert per line"))
        .collect()
}

fn new_terms(alerts: &[Value]) -> Vec<(String, Value)> {
    alerts
        .iter()
        .filter(|a| a["kibana.alert.rule.type"] == "new_terms")
        .map(|a| {
            (
                a["event"]["id"].as_str().unwrap_or("").to_string(),
                a["kibana.alert.new_terms"].clone(),
            )
        })
        .collect()
}

fn user(name: &str) -> Value {
    json!([format!("arn:aws:iam::111122223333:user/{name}")])
}

#[test]
fn new_terms_alert_on_terms_outside_the_history_after_the_warm_up() {
    let setup = setup();
    let alerts = scan(&setup, std::slice::from_ref(&setup.whole), &[]);
    assert_eq!(
        new_terms(&alerts),
        vec![
            ("e2".to_string(), user("bob")),
            ("e3".to_string(), user("alice"))
        ]
    );
    let new = alerts
        .iter()
        .find(|a| a["kibana.alert.rule.type"] == "new_terms")
        .expect("a new_terms alert");
    assert_eq!(new["kibana.alert.rule.rule_type_id"], "siem.newTermsRule");

    // Without the warm-up, alice's very first key is new too.
    let cold = scan(
        &setup,
        std::slice::from_ref(&setup.whole),
        &["--no-warm-up"],
    );
    assert_eq!(
        new_terms(&cold),
        vec![
            ("e1".to_string(), user("alice")),
            ("e2".to_string(), user("bob")),
            ("e3".to_string(), user("alice"))
        ]
    );
}

#[test]
fn threshold_alerts_carry_the_group_count_and_cardinality() {
    let setup = setup();
    let alerts = scan(&setup, std::slice::from_ref(&setup.whole), &[]);
    let groups: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["kibana.alert.rule.type"] == "threshold")
        .collect();
    assert_eq!(groups.len(), 1, "{groups:#?}");
    let alert = groups[0];
    assert_eq!(
        alert["kibana.alert.threshold_result"],
        json!({
            "terms": [{"field": "aws.cloudtrail.user_identity.arn", "value": "arn:aws:iam::111122223333:user/carol"}],
            "count": 3,
            "from": "2024-01-04T00:01:00.000Z",
            "cardinality": [{"field": "aws.cloudtrail.request_parameters", "value": 2}]
        })
    );
    assert_eq!(
        alert["kibana.alert.original_time"],
        "2024-01-04T00:01:20.000Z"
    );
    assert_eq!(
        alert["aws"]["cloudtrail"]["user_identity"]["arn"],
        "arn:aws:iam::111122223333:user/carol"
    );
}

#[test]
fn aggregating_rules_give_the_same_alerts_whatever_the_threads_and_files() {
    let setup = setup();
    let ids = |alerts: Vec<Value>| -> Vec<String> {
        alerts
            .iter()
            .map(|a| a["kibana.alert.uuid"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let whole = ids(scan(
        &setup,
        std::slice::from_ref(&setup.whole),
        &["--threads", "1"],
    ));
    assert_eq!(whole.len(), 3);
    assert_eq!(whole.iter().collect::<BTreeSet<_>>().len(), 3);
    assert_eq!(whole, ids(scan(&setup, &setup.split, &["--threads", "1"])));
    assert_eq!(whole, ids(scan(&setup, &setup.split, &["--threads", "3"])));
    let mut reversed = setup.split.clone();
    reversed.reverse();
    assert_eq!(whole, ids(scan(&setup, &reversed, &["--threads", "2"])));
}

//! Tests for `rule-runner scan`: the README's examples, the real datasets, bad input and exit
//! codes, output formats, determinism and deduplication.

use std::path::Path;
use std::process::Output;

use rule_runner::alert::sha256_hex;
use serde_json::Value;

use crate::util::{data, repo, run_cli, run_cli_with_stdin};

const PUBLIC: &str = "AWS Lambda Function Policy Updated to Allow Public Invocation";
const LAYER: &str = "AWS Lambda Layer Added to Existing Function";
const PUBLIC_ID: &str = "151d8f72-0747-11ef-a0c2-f661ea17fbcc";
const NOW: &str = "2024-06-01T00:00:00Z";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn alerts(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one alert document per line"))
        .collect()
}

/// A flat or nested field of an alert document.
fn field<'a>(doc: &'a Value, path: &str) -> &'a Value {
    if let Some(v) = doc.get(path) {
        return v;
    }
    path.split('.')
        .fold(doc, |v, k| v.get(k).unwrap_or(&Value::Null))
}

/// (rule name, event.action, event.id) of each alert, in output order.
fn summary_of(alerts: &[Value]) -> Vec<(String, String, String)> {
    alerts
        .iter()
        .map(|a| {
            (
                field(a, "kibana.alert.rule.name")
                    .as_str()
                    .unwrap()
                    .to_string(),
                field(a, "event.action").as_str().unwrap().to_string(),
                field(a, "event.id").as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn scan(args: &[&str]) -> Output {
    let mut all = vec!["scan", "--format", "ndjson", "--now", NOW];
    all.extend_from_slice(args);
    run_cli(&all)
}

#[test]
fn examples_give_the_expected_alerts() {
    let out = scan(&["examples/cloudtrail"]);
    assert_exit!(out, 0);
    let alerts = alerts(&out);
    let got: Vec<(String, String)> = summary_of(&alerts)
        .into_iter()
        .map(|(rule, action, _)| (rule, action))
        .collect();
    let expect = |rule: &str, action: &str| (rule.to_string(), action.to_string());
    assert_eq!(
        got,
        vec![
            expect(PUBLIC, "AddPermission20150331v2"),
            expect(LAYER, "PublishLayerVersion20181031"),
            expect(LAYER, "UpdateFunctionConfiguration20150331v2"),
            // The layer-free timeout change: the shipped query does not look at `layers`,
            // so Elasticsearch would alert on it too (see the README).
            expect(LAYER, "UpdateFunctionConfiguration20150331v2"),
        ]
    );
    // The public grant is bob's, from his unfamiliar address; the near misses (the refused
    // grant, the S3 service principal) raise nothing.
    let public = &alerts[0];
    assert_eq!(field(public, "source.ip"), "192.0.2.77");
    assert_eq!(field(public, "event.outcome"), "success");
    assert!(
        alerts
            .iter()
            .all(|a| field(a, "event.outcome") == "success")
    );
    assert!(alerts.iter().all(|a| {
        !field(a, "aws.cloudtrail.request_parameters")
            .as_str()
            .unwrap()
            .contains("s3.amazonaws.com")
    }));
    let layer_free = &alerts[3];
    assert!(
        !field(layer_free, "aws.cloudtrail.request_parameters")
            .as_str()
            .unwrap()
            .contains("layers=")
    );
    let summary = stderr(&out);
    assert!(
        summary.contains("files     3 (1 digest file skipped)"),
        "{summary}"
    );
    assert!(summary.contains("17 (0 skipped)"), "{summary}");
}

#[test]
fn alerts_are_the_service_documents_with_deterministic_ids() {
    let out = scan(&["examples/cloudtrail"]);
    let alert = &alerts(&out)[0];
    let event_id = field(alert, "event.id").as_str().unwrap();
    let id = sha256_hex(&format!("{PUBLIC_ID}:{event_id}"));
    assert_eq!(field(alert, "kibana.alert.uuid"), &Value::String(id));
    assert_eq!(field(alert, "kibana.alert.rule.rule_id"), PUBLIC_ID);
    assert_eq!(field(alert, "kibana.alert.severity"), "medium");
    assert_eq!(
        field(alert, "kibana.alert.original_time"),
        "2024-05-14T09:16:05.000Z"
    );
    assert_eq!(field(alert, "@timestamp"), "2024-06-01T00:00:00.000Z");
    assert_eq!(field(alert, "event.kind"), "signal");
    assert_eq!(
        field(alert, "kibana.alert.ancestors")[0]["index"],
        "logs-aws.cloudtrail-default"
    );
    assert_eq!(field(alert, "data_stream.dataset"), "aws.cloudtrail");
}

#[test]
fn table_output_has_columns_and_a_summary() {
    let out = run_cli(&["scan", "--format", "table", "examples/cloudtrail"]);
    assert_exit!(out, 0);
    let text = stdout(&out);
    let header = text.lines().next().unwrap();
    for column in rule_runner::scan::report::HEADERS {
        assert!(header.contains(column), "{header}");
    }
    let row = text.lines().nth(1).unwrap();
    for cell in [
        "2024-05-14T09:16:05Z",
        "medium",
        "111122223333:user/bob",
        "192.0.2.77",
        "AddPermission20150331v2",
        "billing-export",
    ] {
        assert!(row.contains(cell), "{row}");
    }
    assert!(
        text.contains("Summary") && text.contains("records/s"),
        "{text}"
    );
    assert!(
        text.contains("3  low       AWS Lambda Layer Added"),
        "{text}"
    );
    // NO_COLOR is set by the test harness: no escape sequences.
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn real_datasets_give_exactly_their_lambda_attacks() {
    let out = scan(&[
        data("cloudtrail/stratus-red-team").to_str().unwrap(),
        data("cloudtrail/invictus-ir").to_str().unwrap(),
    ]);
    assert_exit!(out, 0);
    let got = summary_of(&alerts(&out));
    let expect =
        |rule: &str, action: &str, id: &str| (rule.to_string(), action.to_string(), id.to_string());
    assert_eq!(
        got,
        vec![
            // Invictus: Stratus' lambda-backdoor-function run in July 2023.
            expect(
                PUBLIC,
                "AddPermission20150331v2",
                "b1f37249-bb39-4b9c-a302-e6d0f807d70c"
            ),
            // Stratus lambda-layer-extension (matches `UpdateFunctionConfiguration*`).
            expect(
                LAYER,
                "UpdateFunctionConfiguration20150331v2",
                "da929d96-8e20-475c-a810-973addd64769"
            ),
            // Stratus lambda-backdoor-function.
            expect(
                PUBLIC,
                "AddPermission20150331v2",
                &stratus_backdoor_event_id()
            ),
        ]
    );
    // Each Stratus record is there twice (JSON array and s3-format copy): merged.
    let summary = stderr(&out);
    assert!(summary.contains("2 duplicate matches merged"), "{summary}");
    assert!(summary.contains("0 skipped"), "{summary}");
}

fn stratus_backdoor_event_id() -> String {
    let path = data("cloudtrail/stratus-red-team/aws.persistence.lambda-backdoor-function.json");
    let records: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    records
        .iter()
        .find(|r| r["eventName"] == "AddPermission20150331v2")
        .unwrap()["eventID"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn filebeat_flavor_finds_the_same_attacks() {
    let out = scan(&["--flavor", "filebeat", "examples/cloudtrail"]);
    assert_exit!(out, 0);
    let alerts = alerts(&out);
    assert_eq!(alerts.len(), 4);
    assert_eq!(
        field(&alerts[0], "kibana.alert.ancestors")[0]["index"],
        "filebeat-cloudtrail"
    );
    assert!(field(&alerts[0], "data_stream").is_null());
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

fn example_file() -> Vec<u8> {
    let dir = repo("examples/cloudtrail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/14");
    std::fs::read(
        dir.join("111122223333_CloudTrail_us-east-1_20240514T0920Z_Qm4Ka9Zr2cVt7YpE.json.gz"),
    )
    .unwrap()
}

#[test]
fn bad_input_is_reported_and_the_scan_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.json.gz", &example_file());
    let mut corrupt = example_file();
    let half = corrupt.len() / 2;
    corrupt[half..]
        .iter_mut()
        .for_each(|b| *b = b.wrapping_add(77));
    let corrupt = write(dir.path(), "corrupt.json.gz", &corrupt);
    let truncated = write(
        dir.path(),
        "truncated.json",
        br#"{"Records":[{"eventName":"A","eventSource":"x"},{"eventName":"#,
    );
    let not_object = write(
        dir.path(),
        "not-object.json",
        br#"[{"eventName":"A","eventSource":"x"}, 42, "text"]"#,
    );
    let latin1 = write(dir.path(), "latin1.ndjson", b"{\"eventName\":\"caf\xe9\",\"eventSource\":\"x\"}\n{\"eventName\":\"B\",\"eventSource\":\"x\"}\n");
    let binary = write(dir.path(), "binary.json", &[0u8, 159, 146, 150, 1, 2, 3]);
    let missing = dir.path().join("missing.json");
    let out = scan(&[
        &corrupt,
        &truncated,
        &not_object,
        &latin1,
        &binary,
        missing.to_str().unwrap(),
        &good,
    ]);
    assert_exit!(out, 2);
    // The good file's alert is still there.
    let got = summary_of(&alerts(&out));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, PUBLIC);
    let err = stderr(&out);
    for expected in [
        "missing.json: cannot read",
        "corrupt.json.gz: byte",
        "truncated.json: record 1 (byte",
        "not-object.json: record 1 (byte",
        "found a number",
        "not-object.json: record 2",
        "latin1.ndjson: record 0",
        "binary.json: not JSON",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert!(!err.contains("panicked"));
}

#[test]
fn fail_on_alert_exits_3_and_a_clean_scan_exits_0() {
    let out = scan(&["--fail-on-alert", "examples/cloudtrail"]);
    assert_exit!(out, 3);
    let quiet = data("cloudtrail/stratus-red-team/aws.defense-evasion.cloudtrail-stop.json");
    let out = scan(&["--fail-on-alert", quiet.to_str().unwrap()]);
    assert_exit!(out, 0);
    assert!(alerts(&out).is_empty());
}

#[test]
fn usage_and_config_errors_exit_1() {
    let out = run_cli(&["scan", "--no-such-flag", "examples/cloudtrail"]);
    assert_exit!(out, 1);
    let out = run_cli(&["scan", "--rules", "no/such/rules", "examples/cloudtrail"]);
    assert_exit!(out, 1);
    assert!(stderr(&out).contains("no/such/rules"));
    let out = run_cli(&["scan", "--threads", "0", "examples/cloudtrail"]);
    assert_exit!(out, 1);
    let out = run_cli(&["scan"]);
    assert_exit!(out, 1);
}

#[test]
fn output_is_deterministic_across_thread_counts() {
    let paths = [
        data("cloudtrail/stratus-red-team")
            .to_str()
            .unwrap()
            .to_string(),
        data("cloudtrail/invictus-ir").to_str().unwrap().to_string(),
        "examples/cloudtrail".to_string(),
    ];
    let run = |threads: &str| {
        let mut args = vec!["--threads", threads];
        args.extend(paths.iter().map(String::as_str));
        let out = scan(&args);
        assert_exit!(out, 0);
        out.stdout
    };
    let one = run("1");
    assert!(!one.is_empty());
    assert_eq!(one, run("4"));
    assert_eq!(one, run("2"));
}

#[test]
fn duplicated_files_give_each_alert_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.json.gz", &example_file());
    let b = write(dir.path(), "copy-of-a.json.gz", &example_file());
    let once = alerts(&scan(&[&a]));
    let out = scan(&[&a, &b, dir.path().to_str().unwrap()]);
    assert_exit!(out, 0);
    assert_eq!(alerts(&out), once);
    assert!(
        stderr(&out).contains("3 duplicate matches merged"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn max_signals_per_rule_caps_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = repo("rules/aws/execution_lambda_external_layer_added_to_function.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    assert!(text.contains("max_signals = 100"));
    std::fs::write(
        dir.path().join("layer.toml"),
        text.replace("max_signals = 100", "max_signals = 1"),
    )
    .unwrap();
    let rules = dir.path().to_str().unwrap();
    let all = alerts(&scan(&["--rules", rules, "examples/cloudtrail"]));
    assert_eq!(all.len(), 3);
    let out = scan(&[
        "--rules",
        rules,
        "--max-signals-per-rule",
        "examples/cloudtrail",
    ]);
    let capped = alerts(&out);
    assert_eq!(capped.len(), 1);
    assert_eq!(capped[0], all[0]);
    assert!(
        stderr(&out).contains("2 over max_signals left out"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn all_aws_detection_rules_run_over_the_real_data() {
    let rules = data("rules/detection-rules/aws");
    let out = scan(&[
        "--rules",
        rules.to_str().unwrap(),
        "--verbose",
        data("cloudtrail/stratus-red-team/s3-format")
            .to_str()
            .unwrap(),
        data("cloudtrail/invictus-ir").to_str().unwrap(),
    ]);
    assert_exit!(out, 0);
    let err = stderr(&out);
    assert!(err.contains("rule not run:"), "{err}");
    let alerts = alerts(&out);
    // The Stratus detonations trip many of Elastic's rules; the Lambda backdoor among them.
    assert!(alerts.len() > 10, "{}", alerts.len());
    let names: std::collections::BTreeSet<&str> = alerts
        .iter()
        .map(|a| field(a, "kibana.alert.rule.name").as_str().unwrap())
        .collect();
    assert!(names.len() > 5, "{names:?}");
}

#[test]
fn stdin_and_output_file() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("alerts.json");
    let target = target.to_str().unwrap();
    let args = ["scan", "--format", "json", "--output", target, "-"];
    let out = run_cli_with_stdin(&args, &example_file());
    assert_exit!(out, 0);
    assert!(out.stdout.is_empty());
    let doc: Value = serde_json::from_slice(&std::fs::read(target).unwrap()).unwrap();
    assert_eq!(doc["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(doc["summary"]["records"], 6);
    assert_eq!(doc["summary"]["per_rule"][1]["alerts"], 1);
}

#[test]
fn the_prefilter_never_changes_the_result() {
    use rule_runner::alert::RunContext;
    use rule_runner::cloudtrail::{NormalizeOptions, discover};
    use rule_runner::scan::{DEFAULT_MEMORY, RuleSet, ScanOptions, scan};
    let files = discover(&[
        data("cloudtrail/stratus-red-team"),
        data("cloudtrail/invictus-ir"),
        repo("examples/cloudtrail"),
        repo("examples/eql/trail.ndjson"),
    ])
    .files;
    let ctx = RunContext::scheduled(NOW.parse().unwrap());
    let shipped = rule_runner::rule::shipped_rules();
    let eql = rule_runner::rule::load_paths(&[repo("examples/eql/rules")]);
    // The rules whose queries pin a provider, an action, an identity type, an access key or
    // a user agent: a set holding any other disables the prefilter, and there would be
    // nothing to compare.
    let mut aws = rule_runner::rule::load_paths(&[data("rules/detection-rules/aws")]);
    aws.rules.retain(|loaded| {
        let alone = rule_runner::rule::LoadReport {
            rules: vec![loaded.clone()],
            ..Default::default()
        };
        RuleSet::compile(&alone, Default::default(), "default")
            .prefilter
            .is_some()
    });
    for rule_type in ["query", "new_terms", "threshold", "eql"] {
        assert!(
            aws.rules
                .iter()
                .any(|loaded| loaded.rule.rule_type == rule_type),
            "the compared set holds {rule_type} rules"
        );
    }
    for report in [shipped, aws, eql] {
        let rules = RuleSet::compile(&report, Default::default(), "default");
        assert!(
            rules.prefilter.is_some(),
            "every rule has provider/action conditions"
        );
        let run = |prefilter, memory| {
            let opts = ScanOptions {
                normalize: NormalizeOptions::default(),
                max_signals_per_rule: false,
                threads: Some(2),
                prefilter,
                warm_up: true,
                memory,
                sequence_memory: rule_runner::scan::DEFAULT_SEQUENCE_MEMORY,
            };
            let r = scan(&files, &rules, &opts, &ctx, None).unwrap();
            // The dispatch builds only the fields the candidate rules read: the alerts
            // are still built from whole documents, byte for byte.
            let docs: Vec<String> = r
                .alerts
                .to_vec()
                .unwrap()
                .iter()
                .map(|a| a.document.to_string())
                .collect();
            (
                r.records,
                r.alerts.ids().map(str::to_string).collect::<Vec<_>>(),
                docs,
            )
        };
        let (with, without) = (run(true, DEFAULT_MEMORY), run(false, DEFAULT_MEMORY));
        assert!(!with.1.is_empty());
        assert_eq!(with, without);
        // Nor do the per-rule pins that skip a rule for a document.
        let mut unpinned = rules.clone();
        for rule in &mut unpinned.rules {
            rule.pins = None;
        }
        let opts = ScanOptions {
            normalize: NormalizeOptions::default(),
            max_signals_per_rule: false,
            threads: Some(2),
            prefilter: false,
            warm_up: true,
            memory: DEFAULT_MEMORY,
            sequence_memory: rule_runner::scan::DEFAULT_SEQUENCE_MEMORY,
        };
        let r = scan(&files, &unpinned, &opts, &ctx, None).unwrap();
        let ids: Vec<String> = r.alerts.ids().map(str::to_string).collect();
        assert_eq!(ids, without.1);
        // Nor does holding every event in the temporary file instead of memory.
        let kept = scan(&files, &rules, &opts, &ctx, None).unwrap();
        let spilled = scan(
            &files,
            &rules,
            &ScanOptions {
                memory: 0,
                ..opts.clone()
            },
            &ctx,
            None,
        )
        .unwrap();
        assert!(spilled.alerts.spilled_bytes() > 0);
        assert_eq!(kept.alerts.spilled_bytes(), 0);
        let docs = |r: &rule_runner::scan::ScanReport| r.alerts.to_vec().unwrap();
        assert_eq!(docs(&kept), docs(&spilled));
    }
}

#[test]
fn rules_with_kibana_filters_run_with_their_filters() {
    // The query alone matches all three AddPermission calls in the examples; the rule's
    // `event.outcome: success` filter leaves out the refused one.
    let out = scan(&["--rules", "tests/data/rules/filters", "examples/cloudtrail"]);
    assert_exit!(out, 0);
    let alerts = alerts(&out);
    let mut users: Vec<&str> = alerts
        .iter()
        .map(|a| {
            assert_eq!(field(a, "event.outcome"), "success");
            field(a, "user.name").as_str().unwrap()
        })
        .collect();
    users.sort();
    assert_eq!(users, ["bob", "deploy-pipeline"]);
}

#[test]
fn alerts_beyond_the_memory_budget_wait_on_disk_and_come_out_the_same() {
    let kept = scan(&["examples/cloudtrail"]);
    assert_exit!(kept, 0);
    let spilled = scan(&["--memory", "1KiB", "examples/cloudtrail"]);
    assert_exit!(spilled, 0);
    assert_eq!(kept.stdout, spilled.stdout);
    let said = String::from_utf8_lossy(&spilled.stderr);
    assert!(
        said.contains(
            "note: the events of the alerts beyond --memory 1.0 KiB waited in a temporary file"
        ),
        "{said}"
    );
    assert!(!String::from_utf8_lossy(&kept.stderr).contains("temporary file"));
    // The JSON document, written one alert at a time, is still one valid document.
    let json = run_cli(&[
        "scan",
        "--format",
        "json",
        "--memory",
        "0",
        "examples/cloudtrail",
    ]);
    assert_exit!(json, 0);
    let doc: Value = serde_json::from_slice(&json.stdout).expect("one JSON document");
    assert_eq!(doc["alerts"].as_array().map(Vec::len), Some(4));
    assert_eq!(doc["summary"]["alerts"], 4);
    let empty = run_cli_with_stdin(&["scan", "--format", "json", "-"], b"");
    assert_exit!(empty, 0);
    let doc: Value = serde_json::from_slice(&empty.stdout).expect("one JSON document");
    assert_eq!(doc["alerts"], serde_json::json!([]));
    let bad = scan(&["--memory", "lots", "examples/cloudtrail"]);
    assert_exit!(bad, 1);
}

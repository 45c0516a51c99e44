//! `rule-runner eql check | match`.

use serde_json::{Value, json};

use crate::util::{run_cli, run_cli_with_stdin};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lines(out: &std::process::Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

const EVENTS: &str = r#"{"@timestamp": "2024-01-01T00:00:03Z", "event": {"category": "process"}, "process": {"name": "CMD.EXE", "pid": 3}}
{"@timestamp": "2024-01-01T00:00:01Z", "event.category": ["process", "start"], "process": {"name": "cmd.exe", "pid": 1}}
{"@timestamp": "2024-01-01T00:00:02Z", "event": {"category": "network"}, "process": {"name": "cmd.exe", "pid": 2}}
"#;

#[test]
fn check_reports_ok_and_errors_with_a_caret() {
    let out = run_cli(&["eql", "check", "process where  process.name : \"cmd*\""]);
    assert_exit!(out, 0);
    assert_eq!(stdout(&out), "OK: process where process.name : \"cmd*\"\n");
    let out = run_cli(&["eql", "check", "any where true", "process and true"]);
    assert_exit!(out, 1);
    assert_eq!(
        stdout(&out),
        "OK: any where true\nerror: line 1, column 9: expected \"where\" but found \"and\"\n  process and true\n          ^\n"
    );
}

#[test]
fn match_prints_matching_events_in_timestamp_order() {
    let out = run_cli_with_stdin(
        &[
            "eql",
            "match",
            "process where process.name : \"cmd.exe\"",
            "-",
        ],
        EVENTS.as_bytes(),
    );
    assert_exit!(out, 0);
    let pids: Vec<Value> = lines(&out)
        .iter()
        .map(|e| e["process"]["pid"].clone())
        .collect();
    assert_eq!(pids, [json!(1), json!(3)]);
    let out = run_cli_with_stdin(
        &[
            "eql",
            "match",
            "--size",
            "1",
            "any where process.pid > 1",
            "-",
        ],
        EVENTS.as_bytes(),
    );
    assert_exit!(out, 0);
    assert_eq!(lines(&out)[0]["process"]["pid"], json!(2));
    assert_eq!(lines(&out).len(), 1);
}

#[test]
fn match_reads_other_timestamp_and_category_fields_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    std::fs::write(
        &path,
        concat!(
            "{\"t\": 1704067202000, \"kind\": \"file\", \"n\": \"c\"}\n",
            "{\"t\": \"2024-01-01T00:00:01.5\", \"kind\": \"file\", \"n\": \"b\"}\n",
            "{\"t\": \"2024-01-01T00:00:00+01:00\", \"kind\": \"file\", \"n\": \"a\"}\n",
            "{\"t\": \"1704067199000\", \"kind\": \"x\", \"n\": \"d\"}\n",
        ),
    )
    .unwrap();
    let out = run_cli(&[
        "eql",
        "match",
        "--timestamp-field",
        "t",
        "--event-category-field",
        "kind",
        "file where true",
        path.to_str().unwrap(),
    ]);
    assert_exit!(out, 0);
    let names: Vec<Value> = lines(&out).iter().map(|e| e["n"].clone()).collect();
    // 2023-12-31T23:00Z, then 00:00:01.5Z, then epoch 00:00:02Z.
    assert_eq!(names, [json!("a"), json!("b"), json!("c")]);
}

#[test]
fn match_reports_bad_lines_with_their_number_and_exits_2() {
    let input = "{\"@timestamp\": 1, \"a\": 1}\nnot json\n[1]\n\n{\"a\": 1}\n{\"@timestamp\": 2, \"a\": 1}\n";
    let out = run_cli_with_stdin(&["eql", "match", "any where a == 1", "-"], input.as_bytes());
    assert_exit!(out, 2);
    assert_eq!(lines(&out).len(), 2);
    let err = stderr(&out);
    assert!(err.contains("<stdin>:2: not valid JSON"), "{err}");
    assert!(err.contains("<stdin>:3: not a JSON object"), "{err}");
    assert!(err.contains("<stdin>:5: no usable @timestamp"), "{err}");
    assert!(!err.contains("<stdin>:4:"), "{err}");
}

#[test]
fn match_with_a_bad_query_or_file_fails() {
    let out = run_cli_with_stdin(&["eql", "match", "any where (", "-"], b"");
    assert_exit!(out, 1);
    assert!(
        stderr(&out).contains("invalid EQL query: line 1, column 12"),
        "{}",
        stderr(&out)
    );
    let out = run_cli(&[
        "eql",
        "match",
        "any where true",
        "/nonexistent/events.ndjson",
    ]);
    assert_exit!(out, 2);
    assert!(stderr(&out).contains("cannot open"));
}

#[test]
fn match_runs_sequences_over_events_in_timestamp_order() {
    // Out of order in the file: the login at 00:00:01 comes before the process at 00:00:02.
    let input = r#"{"@timestamp": "2024-01-01T00:00:02Z", "event": {"category": "process"}, "user": "alice", "n": 2}
{"@timestamp": "2024-01-01T00:00:01Z", "event": {"category": "authentication"}, "user": "alice", "n": 1}
{"@timestamp": "2024-01-01T00:00:03Z", "event": {"category": "process"}, "user": "bob", "n": 3}
{"@timestamp": "2024-01-01T00:10:00Z", "event": {"category": "authentication"}, "user": "bob", "n": 4}
{"@timestamp": "2024-01-01T00:30:00Z", "event": {"category": "process"}, "user": "bob", "n": 5}
"#;
    let query = "sequence by user with maxspan=1h [authentication where true] [process where true]";
    let out = run_cli_with_stdin(&["eql", "match", query, "-"], input.as_bytes());
    assert_exit!(out, 0);
    let hits = lines(&out);
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0]["join_keys"], json!(["alice"]));
    let ns: Vec<Value> = hits[0]["sequence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["n"].clone())
        .collect();
    assert_eq!(ns, [json!(1), json!(2)]);
    assert_eq!(hits[1]["join_keys"], json!(["bob"]));
    // A span of 10 minutes leaves only alice's; `| tail 1` keeps the last of two.
    let short = query.replace("1h", "10m");
    let out = run_cli_with_stdin(&["eql", "match", &short, "-"], input.as_bytes());
    assert_exit!(out, 0);
    assert_eq!(lines(&out).len(), 1);
    let tail = format!("{query} | tail 1");
    let out = run_cli_with_stdin(&["eql", "match", &tail, "-"], input.as_bytes());
    assert_eq!(lines(&out)[0]["join_keys"], json!(["bob"]));
    let out = run_cli_with_stdin(
        &["eql", "match", "process where true | tail 2 | head 1", "-"],
        input.as_bytes(),
    );
    assert_exit!(out, 0);
    assert_eq!(lines(&out).len(), 1);
    assert_eq!(lines(&out)[0]["n"], json!(3));
}

#[test]
fn check_accepts_sequences_and_rejects_uneven_join_keys() {
    let out = run_cli(&[
        "eql",
        "check",
        "sequence by user [process where true] [file where true] | head 3",
        "sequence [process where true] by a [file where true]",
    ]);
    assert_exit!(out, 1);
    let text = stdout(&out);
    assert!(text.starts_with("OK: sequence by user"), "{text}");
    assert!(
        text.contains("every stage of a sequence needs the same number of join keys"),
        "{text}"
    );
}

// --- EQL rules in `scan` --------------------------------------------------------------------

/// `scan` in NDJSON over `inputs`, with `rules` (the built-in ones when `None`).
fn scan_with(rules: Option<&str>, inputs: &[&str]) -> (std::process::Output, Vec<Value>) {
    let mut args = vec![
        "scan",
        "--format",
        "ndjson",
        "--now",
        "2024-06-01T00:00:00Z",
    ];
    if let Some(rules) = rules {
        args.extend(["--rules", rules]);
    }
    args.extend_from_slice(inputs);
    let out = run_cli(&args);
    let alerts = lines(&out);
    (out, alerts)
}

fn scan_eql(inputs: &[&str]) -> (std::process::Output, Vec<Value>) {
    let (out, alerts) = scan_with(Some("examples/eql/rules"), inputs);
    assert_exit!(out, 0);
    (out, alerts)
}

fn text<'a>(alert: &'a Value, field: &str) -> &'a str {
    alert[field].as_str().unwrap_or_default()
}

#[test]
fn scan_runs_eql_event_queries_and_sequences_as_kibana_alerts() {
    let (_, alerts) = scan_eql(&["examples/eql/trail.ndjson"]);
    let names: Vec<&str> = alerts
        .iter()
        .map(|a| text(a, "kibana.alert.rule.name"))
        .collect();
    // mallory's user and key 2.5 minutes apart make a sequence; alice's, 20 minutes apart
    // (maxspan 5m), do not.
    assert_eq!(
        names,
        [
            "IAM User Created, Then Given an Access Key",
            "IAM User Created, Then Given an Access Key",
            "IAM User Created, Then Given an Access Key",
            "Console Login Without MFA"
        ]
    );
    let (blocks, shell) = (&alerts[..2], &alerts[2]);
    let group = text(shell, "kibana.alert.uuid");
    assert_eq!(text(shell, "kibana.alert.group.id"), group);
    assert_eq!(shell["kibana.alert.depth"], json!(2));
    assert!(shell.get("kibana.alert.building_block_type").is_none());
    assert_eq!(
        shell["kibana.alert.original_time"],
        json!("2024-03-02T09:00:00.000Z")
    );
    assert_eq!(shell["kibana.alert.rule.type"], json!("eql"));
    // What both events share stays in the shell; what differs does not.
    assert_eq!(shell["user"]["name"], json!("mallory"));
    assert!(shell["event"].get("action").is_none(), "{shell}");
    let ancestors = shell["kibana.alert.ancestors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(ancestors.len(), 4);
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(block["kibana.alert.building_block_type"], json!("default"));
        assert_eq!(text(block, "kibana.alert.group.id"), group);
        assert_eq!(block["kibana.alert.group.index"], json!(i));
        assert_eq!(block["kibana.alert.depth"], json!(1));
        assert_eq!(ancestors[2 * i + 1]["id"], block["kibana.alert.uuid"]);
        assert_eq!(ancestors[2 * i + 1]["type"], json!("signal"));
    }
    assert_eq!(blocks[0]["event"]["action"], json!("CreateUser"));
    assert_eq!(blocks[1]["event"]["action"], json!("CreateAccessKey"));
    assert_eq!(alerts[3]["kibana.alert.rule.type"], json!("eql"));
    assert!(alerts[3].get("kibana.alert.group.id").is_none());
}

#[test]
fn a_sequence_spans_files_in_event_time_order_and_copies_count_once() {
    let (_, once) = scan_eql(&["examples/eql/trail.ndjson"]);
    let trail = std::fs::read_to_string("examples/eql/trail.ndjson").unwrap_or_default();
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The access key's record first, in a file of its own.
    let (first, rest): (Vec<&str>, Vec<&str>) = trail
        .lines()
        .partition(|l| l.contains("\"CreateAccessKey\""));
    let a = dir.path().join("a.ndjson");
    let b = dir.path().join("b.ndjson");
    std::fs::write(&a, first.join("\n") + "\n").expect("write");
    std::fs::write(&b, rest.join("\n") + "\n").expect("write");
    let inputs = [
        a.to_str().unwrap_or_default(),
        b.to_str().unwrap_or_default(),
    ];
    let (_, split) = scan_eql(&inputs);
    let ids = |alerts: &[Value]| -> Vec<String> {
        let mut ids: Vec<String> = alerts
            .iter()
            .map(|a| text(a, "kibana.alert.uuid").to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&split).len(), 4);
    let (out, twice) = scan_eql(&["examples/eql/trail.ndjson", inputs[0], inputs[1]]);
    assert_eq!(ids(&twice), ids(&split));
    assert!(
        stderr(&out).contains("duplicate matches merged"),
        "{}",
        stderr(&out)
    );
    // The event ids are the records' own, wherever they were read: the same alert ids.
    assert_eq!(ids(&once), ids(&split));
}

#[test]
fn an_eql_rule_that_does_not_parse_is_an_error_with_its_line() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rule = std::fs::read_to_string("examples/eql/rules/console_login_without_mfa.toml")
        .unwrap_or_default()
        .replace(
            "event.outcome == \"success\"",
            "event.outcome === \"success\"",
        );
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, rule).expect("write");
    let out = run_cli(&["rules", "validate", path.to_str().unwrap_or_default()]);
    assert_exit!(out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("bad.toml:21:")
            && text.contains("`query` is not valid EQL")
            && text.contains('^'),
        "{text}"
    );
}

#[test]
fn rules_test_checks_eql_sequences_by_join_keys_and_length() {
    let out = run_cli(&["rules", "test", "examples/eql/rules"]);
    assert_exit!(out, 0);
    assert!(
        stdout(&out).contains("6 examples: 6 passed, 0 failed"),
        "{}",
        stdout(&out)
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let name = "user_created_then_access_key";
    let rules = std::path::Path::new("examples/eql/rules");
    std::fs::copy(
        rules.join(format!("{name}.toml")),
        dir.path().join(format!("{name}.toml")),
    )
    .expect("copy");
    let examples = std::fs::read_to_string(rules.join(format!("{name}.events.ndjson")))
        .unwrap_or_default()
        .replace("\"count\": 2}", "\"count\": 3}");
    std::fs::write(dir.path().join(format!("{name}.events.ndjson")), examples).expect("write");
    let out = run_cli(&["rules", "test", dir.path().to_str().unwrap_or_default()]);
    assert_exit!(out, 1);
    assert!(
        stdout(&out).contains(r#"missing: ["arn:aws:iam::111122223333:user/mallory"] x3; unexpected: ["arn:aws:iam::111122223333:user/mallory"] x2"#),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_upstream_eql_public_invocation_rule_alerts_as_the_shipped_kql_one() {
    let ids = |rules: Option<&str>| -> Vec<String> {
        let (_, alerts) = scan_with(
            rules,
            &[
                "tests/data/cloudtrail/stratus-red-team/s3-format",
                "tests/data/cloudtrail/invictus-ir/CloudTrail",
            ],
        );
        let mut ids: Vec<String> = alerts
            .iter()
            .filter(|a| text(a, "kibana.alert.rule.name").contains("Public Invocation"))
            .map(|a| text(a, "kibana.alert.uuid").to_owned())
            .collect();
        ids.sort();
        ids
    };
    let eql = ids(Some(
        "tests/data/rules/detection-rules/aws/persistence_lambda_backdoor_invoke_function_for_any_principal.toml",
    ));
    assert_eq!(eql.len(), 2);
    assert_eq!(eql, ids(None));
}

#[test]
fn match_breaks_ties_by_the_tiebreaker_field_and_prints_only_the_fields_asked() {
    const TIED: &str = r#"{"@timestamp": "2024-01-01T00:00:00Z", "event": {"order": 3, "action": "c"}, "user": {"name": "u", "id": 7}}
{"@timestamp": "2024-01-01T00:00:00Z", "event": {"order": 1, "action": "a"}, "user": {"name": "u", "id": 7}}
{"@timestamp": "2024-01-01T00:00:00Z", "event": {"action": "z"}, "user": {"name": "u", "id": 7}}
{"@timestamp": "2024-01-01T00:00:00Z", "event": {"order": 2, "action": "b"}, "user": {"name": "u", "id": 7}}
"#;
    let actions = |args: &[&str]| -> Vec<Value> {
        let mut full = vec!["eql", "match"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["any where true", "-"]);
        let out = run_cli_with_stdin(&full, TIED.as_bytes());
        assert_exit!(out, 0);
        lines(&out)
            .iter()
            .map(|e| e["event"]["action"].clone())
            .collect()
    };
    assert_eq!(actions(&[]), ["c", "a", "z", "b"], "input order without it");
    assert_eq!(
        actions(&["--tiebreaker-field", "event.order"]),
        ["a", "b", "c", "z"],
        "ascending, the event without it last"
    );

    let out = run_cli_with_stdin(
        &[
            "eql",
            "match",
            "--tiebreaker-field",
            "event.order",
            "--fields",
            "event.action,user.*",
            "--size",
            "1",
            // The condition reads a field the output leaves out.
            "any where event.order == 1",
            "-",
        ],
        TIED.as_bytes(),
    );
    assert_exit!(out, 0);
    assert_eq!(
        lines(&out),
        [json!({"event": {"action": "a"}, "user": {"name": "u", "id": 7}})]
    );

    let out = run_cli_with_stdin(
        &[
            "eql",
            "match",
            "--tiebreaker-field",
            "event.order",
            "--fields",
            "event.action",
            "sequence [any where event.order == 1] [any where event.order == 2]",
            "-",
        ],
        TIED.as_bytes(),
    );
    assert_exit!(out, 0);
    assert_eq!(
        lines(&out),
        [
            json!({"sequence": [{"event": {"action": "a"}}, {"event": {"action": "b"}}], "join_keys": []})
        ]
    );
}

#[test]
fn a_scan_whose_sequence_events_outgrow_their_memory_stops_and_says_what_to_narrow() {
    let out = run_cli(&[
        "scan",
        "examples/eql/trail.ndjson",
        "--rules",
        "examples/eql/rules",
        "--sequence-memory",
        "1KiB",
    ]);
    assert_exit!(out, 1);
    let text = stderr(&out);
    assert!(
        text.contains("need more than --sequence-memory (1024 bytes)"),
        "{text}"
    );
    assert!(
        text.contains("`IAM User Created, Then Given an Access Key`"),
        "{text}"
    );
    assert!(text.contains("--start/--end"), "{text}");
    assert!(
        stdout(&out).is_empty(),
        "nothing reported: {}",
        stdout(&out)
    );

    let out = run_cli(&[
        "scan",
        "examples/eql/trail.ndjson",
        "--rules",
        "examples/eql/rules",
        "--sequence-memory",
        "1MiB",
        "--format",
        "ndjson",
    ]);
    assert_exit!(out, 0);
    assert_eq!(lines(&out).len(), 4, "{}", stdout(&out));
}

#[test]
fn scan_runs_eql_samples_whatever_the_order_of_their_events() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rule = std::fs::read_to_string("examples/eql/rules/user_created_then_access_key.toml")
        .unwrap_or_default()
        .replace(
            "sequence by aws.cloudtrail.user_identity.arn with maxspan=5m",
            "sample by aws.cloudtrail.user_identity.arn",
        )
        .replace("\"CreateUser\"]", "\"CreateUser_\"]")
        .replace("\"CreateAccessKey\"]", "\"CreateUser\"]")
        .replace("\"CreateUser_\"]", "\"CreateAccessKey\"]");
    assert!(rule.contains("sample by"), "{rule}");
    std::fs::write(dir.path().join("sample.toml"), rule).expect("write");
    let (out, alerts) = scan_with(dir.path().to_str(), &["examples/eql/trail.ndjson"]);
    assert_exit!(out, 0);
    // Both users created a user and a key: no time bound, so alice's 20 minutes apart count
    // too; the key's event is the first of each sample, as the first filter asks for it.
    let shells: Vec<&Value> = alerts
        .iter()
        .filter(|a| a.get("kibana.alert.building_block_type").is_none())
        .collect();
    assert_eq!(shells.len(), 2, "{alerts:?}");
    assert_eq!(alerts.len(), 6);
    let mut blocks: Vec<(&str, &str, i64)> = alerts
        .iter()
        .filter(|a| a.get("kibana.alert.building_block_type").is_some())
        .map(|a| {
            (
                text(a, "kibana.alert.group.id"),
                a["event"]["action"].as_str().unwrap_or_default(),
                a["kibana.alert.group.index"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    blocks.sort_by_key(|(group, _, index)| (*group, *index));
    let actions: Vec<(&str, i64)> = blocks.iter().map(|(_, a, i)| (*a, *i)).collect();
    assert_eq!(
        actions,
        [
            ("CreateAccessKey", 0),
            ("CreateUser", 1),
            ("CreateAccessKey", 0),
            ("CreateUser", 1)
        ]
    );
}

#[test]
fn match_finds_samples_without_timestamps_and_several_per_key_when_asked() {
    // No timestamps: a sample takes its events in input order.
    let input = r#"{"host": "b", "a": 1, "n": 1}
{"host": "a", "a": 1, "b": 1, "n": 2}
{"host": "a", "b": 1, "n": 3}
{"host": "a", "a": 1, "n": 4}
"#;
    let query = "sample by host [any where a == 1] [any where b == 1]";
    let ns = |hit: &Value| -> Vec<Value> {
        hit["sequence"]
            .as_array()
            .map(|events| events.iter().map(|e| e["n"].clone()).collect())
            .unwrap_or_default()
    };
    let out = run_cli_with_stdin(&["eql", "match", query, "-"], input.as_bytes());
    assert_exit!(out, 0);
    let hits = lines(&out);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["join_keys"], json!(["a"]));
    assert_eq!(ns(&hits[0]), [json!(2), json!(3)]);
    let out = run_cli_with_stdin(
        &["eql", "match", "--max-samples-per-key", "3", query, "-"],
        input.as_bytes(),
    );
    assert_exit!(out, 0);
    let all: Vec<Vec<Value>> = lines(&out).iter().map(ns).collect();
    assert_eq!(
        all,
        [
            vec![json!(2), json!(3)],
            vec![json!(4), json!(2)],
            vec![json!(4), json!(3)]
        ]
    );
    let out = run_cli_with_stdin(
        &["eql", "match", "--max-samples-per-key", "0", query, "-"],
        input.as_bytes(),
    );
    assert_exit!(out, 1);
    assert!(
        stderr(&out).contains("max-samples-per-key"),
        "{}",
        stderr(&out)
    );
}

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

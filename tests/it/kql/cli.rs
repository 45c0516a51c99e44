//! `rule-runner kql dsl | match | check`.

use serde_json::{Value, json};

use crate::util::{run_cli, run_cli_with_stdin};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary directory holding `name` with `content`; returns the directory (keep it alive)
/// and the file's path.
fn temp_file(name: &str, content: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path.to_str().unwrap().to_string())
}

#[test]
fn dsl_prints_one_line_of_json_without_metadata() {
    let out = run_cli(&["kql", "dsl", r"p: *principal=\**"]);
    assert_exit!(out, 0);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1);
    let dsl: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        dsl,
        json!({"bool": {"should": [{"query_string": {"fields": ["p"], "query": r"*principal\=\**"}}], "minimum_should_match": 1}})
    );
}

#[test]
fn dsl_with_a_fields_file_and_the_full_request_body() {
    let (_dir, fields) = temp_file(
        "fields.json",
        r#"{"event.action": "keyword", "@timestamp": ["date"]}"#,
    );
    let fields = fields.as_str();
    let out = run_cli(&[
        "kql",
        "dsl",
        "--fields",
        fields,
        "event.action: AddPermission*",
    ]);
    assert_exit!(out, 0);
    let dsl: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        dsl["bool"]["should"][0],
        json!({"wildcard": {"event.action": {"value": "AddPermission*"}}})
    );
    let out = run_cli(&[
        "kql",
        "dsl",
        "--full",
        "--fields",
        fields,
        "@timestamp < 2024-01-01",
    ]);
    assert_exit!(out, 0);
    let dsl: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(dsl["bool"]["must"], json!([]));
    assert_eq!(
        dsl["bool"]["filter"][0]["bool"]["should"][0],
        json!({"range": {"@timestamp": {"lt": "2024-01-01", "time_zone": "Zulu"}}})
    );
    let out = run_cli(&["kql", "dsl", "--ecs", "event.outcome: success"]);
    assert!(stdout(&out).contains(r#"{"term":{"event.outcome":{"value":"success"}}}"#));
}

#[test]
fn dsl_reports_bad_queries_and_bad_field_files() {
    let out = run_cli(&["kql", "dsl", r"a: b\=c"]);
    assert_exit!(out, 1);
    let err = stderr(&out);
    assert!(err.contains("line 1, column 5"), "{err}");
    assert!(err.contains("  a: b\\=c\n      ^"), "{err}");
    let (_dir, fields) = temp_file("bad.json", r#"{"f": 42}"#);
    let out = run_cli(&["kql", "dsl", "--fields", &fields, "f: x"]);
    assert_exit!(out, 1);
    assert!(
        stderr(&out).contains("bad.json") && stderr(&out).contains("field `f`"),
        "{}",
        stderr(&out)
    );
    let out = run_cli(&["kql", "dsl", "--fields", "/nonexistent/fields.json", "f: x"]);
    assert_exit!(out, 1);
    assert!(stderr(&out).contains("/nonexistent/fields.json"));
}

#[test]
fn match_prints_matching_lines_unchanged_and_reports_bad_ones() {
    let input =
        "{\"a\": \"b\",  \"n\": 1}\n{\"a\":\"c\"}\nnot json\n[1]\n\n{\"a\":[\"x\",\"b\"]}\r\n";
    let out = run_cli_with_stdin(&["kql", "match", "a: b"], input.as_bytes());
    assert_exit!(out, 2);
    assert_eq!(
        stdout(&out),
        "{\"a\": \"b\",  \"n\": 1}\n{\"a\":[\"x\",\"b\"]}\n"
    );
    let err = stderr(&out);
    assert!(err.contains("<stdin>:3: not valid JSON"), "{err}");
    assert!(err.contains("<stdin>:4: not a JSON object"), "{err}");
    let out = run_cli_with_stdin(&["kql", "match", "a: b"], b"{\"a\":\"b\"}\n");
    assert_exit!(out, 0);
}

#[test]
fn match_reads_files_in_order_and_carries_on_past_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.ndjson");
    let two = dir.path().join("two.ndjson");
    std::fs::write(&one, "{\"k\":1}\n{\"k\":2}\n").unwrap();
    std::fs::write(&two, "{\"k\":3}\n{bad\n").unwrap();
    let (one, two) = (one.to_str().unwrap(), two.to_str().unwrap());
    let out = run_cli(&["kql", "match", "k >= 2", one, "/nonexistent.ndjson", two]);
    assert_exit!(out, 2);
    assert_eq!(stdout(&out), "{\"k\":2}\n{\"k\":3}\n");
    let err = stderr(&out);
    assert!(err.contains("/nonexistent.ndjson: cannot open"), "{err}");
    assert!(err.contains(&format!("{two}:2: not valid JSON")), "{err}");
}

#[test]
fn match_runs_the_seed_rule_with_ecs_types() {
    let doc = json!({"event": {"dataset": "aws.cloudtrail", "provider": "lambda.amazonaws.com",
        "outcome": "success", "action": "AddPermission20150331v2"},
        "aws": {"cloudtrail": {"request_parameters": "{action=lambda:InvokeFunction, principal=*}"}}});
    let mut other = doc.clone();
    other["aws"]["cloudtrail"]["request_parameters"] =
        json!("{action=lambda:InvokeFunction, principal=sns.amazonaws.com}");
    let input = format!("{doc}\n{other}\n");
    let query = crate::kql::eval::PUBLIC_INVOCATION;
    let out = run_cli_with_stdin(&["kql", "match", "--ecs", query, "-"], input.as_bytes());
    assert_exit!(out, 0);
    assert_eq!(stdout(&out), format!("{doc}\n"));
}

#[test]
fn check_reports_each_query_and_fails_on_any_error() {
    let out = run_cli(&["kql", "check", "a: b", "x: (y or z)"]);
    assert_exit!(out, 0);
    assert_eq!(stdout(&out), "OK: a: b\nOK: x: (y or z)\n");
    let out = run_cli(&["kql", "check", "a: b", "f: cannot x"]);
    assert_exit!(out, 1);
    let text = stdout(&out);
    // `not ` is a keyword even inside a word (a Kibana quirk): the value stops at `ca`.
    assert!(
        text.starts_with("OK: a: b\nerror: line 1, column 7:"),
        "{text}"
    );
    assert!(text.contains("  f: cannot x\n        ^"), "{text}");
    let out = run_cli(&["kql", "check"]);
    assert_exit!(out, 1);
}

#[test]
fn check_with_metadata_reports_nested_field_misuse() {
    let (_dir, fields) = temp_file(
        "fields.json",
        r#"{"n.c": {"es_types": ["keyword"], "nested_path": "n"}}"#,
    );
    let fields = fields.as_str();
    let out = run_cli(&["kql", "check", "--fields", fields, "n.c: x", "n:{ c: x }"]);
    assert_exit!(out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("n.c is a nested field, but is not in a nested group"),
        "{text}"
    );
    assert!(text.contains("OK: n:{ c: x }"), "{text}");
}

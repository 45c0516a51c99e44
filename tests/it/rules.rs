//! Tests for the `rules` area: loaders, the shipped rules, the `rules` subcommands.

use std::path::Path;

use rule_runner::kql::{FieldTypes, MatchOptions};
use rule_runner::rule::examples::{Expect, parse_examples, run_examples};
use rule_runner::rule::{
    LoadReport, ProblemKind, RuleMatcher, RuleStatus, Severity, load::load_bytes, load_paths,
    shipped_rules,
};

use crate::util::{data, repo, run_cli};

const LAYER_ID: &str = "7d091a76-0737-11ef-8469-f661ea17fbcc";
const PUBLIC_ID: &str = "151d8f72-0747-11ef-a0c2-f661ea17fbcc";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn only_problem(report: &LoadReport) -> String {
    let errors: Vec<_> = report.errors().collect();
    assert_eq!(errors.len(), 1, "{:#?}", report.problems);
    errors[0].to_string()
}

#[test]
fn shipped_rules_load_as_the_seeds_describe() {
    let report = load_paths(&[repo("rules")]);
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(report.rules.len(), 2);
    for loaded in &report.rules {
        let rule = &loaded.rule;
        assert_eq!(loaded.status, RuleStatus::Runnable);
        assert_eq!(rule.index, ["filebeat-*", "logs-aws.cloudtrail-*"]);
        assert_eq!(
            (rule.interval.as_str(), rule.from.as_str(), rule.to.as_str()),
            ("10m", "now-60m", "now")
        );
        assert_eq!(rule.max_signals, 100);
        assert_eq!(rule.timestamp_override.as_deref(), Some("event.ingested"));
        assert_eq!(rule.author, ["Elastic"]);
        assert_eq!(rule.license.as_deref(), Some("Elastic License v2"));
        assert_eq!(rule.rule_type, "query");
        assert_eq!(rule.language.as_deref(), Some("kuery"));
        assert!(rule.enabled);
        assert!(
            rule.note
                .as_deref()
                .is_some_and(|n| n.contains("aws.cloudtrail.user_identity.arn"))
        );
        let timing = rule.timing().unwrap();
        assert_eq!(
            timing.additional_look_back(),
            Some(std::time::Duration::from_secs(50 * 60))
        );
    }
    let by_id = |id: &str| {
        report
            .rules
            .iter()
            .find(|r| r.rule.rule_id == id)
            .map(|r| r.rule.clone())
            .unwrap()
    };
    let layer = by_id(LAYER_ID);
    assert_eq!(layer.name, "AWS Lambda Layer Added to Existing Function");
    assert_eq!(
        (layer.severity, layer.risk_score, layer.version),
        (Severity::Low, 21, 2)
    );
    assert!(layer.tags.iter().any(|t| t == "Tactic: Execution"));
    assert_eq!(layer.threat[0].tactic.id, "TA0002");
    assert_eq!(layer.threat[0].technique[0].id, "T1648");
    assert!(
        layer
            .query
            .as_deref()
            .unwrap()
            .contains("UpdateFunctionConfiguration*)")
    );

    let public = by_id(PUBLIC_ID);
    assert_eq!(
        public.name,
        "AWS Lambda Function Policy Updated to Allow Public Invocation"
    );
    assert_eq!(
        (public.severity, public.risk_score, public.version),
        (Severity::Medium, 47, 1)
    );
    assert!(public.tags.iter().any(|t| t == "Tactic: Persistence"));
    assert_eq!(public.threat[0].tactic.id, "TA0003");
    assert_eq!(public.threat[0].technique[0].id, "T1546");
    assert_eq!(public.references.len(), 3);
}

#[test]
fn embedded_rules_match_the_directory() {
    let built_in = shipped_rules();
    let on_disk = load_paths(&[repo("rules")]);
    let rules = |r: &LoadReport| {
        let mut rules: Vec<_> = r.rules.iter().map(|l| l.rule.as_ref().clone()).collect();
        rules.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        rules
    };
    assert_eq!(
        rules(&built_in),
        rules(&on_disk),
        "the binary embeds a stale copy of rules/: touch src/rule/embedded.rs and rebuild"
    );
    assert!(built_in.rules[0].origin.path.starts_with("<built-in>"));
}

#[test]
fn every_elastic_aws_rule_loads_with_the_right_status() {
    let report = load_paths(&[data("rules/detection-rules/aws")]);
    assert_eq!(report.files, 194);
    assert_eq!(report.rules.len(), 194);
    assert!(
        !report.has_errors(),
        "{:#?}",
        report.errors().collect::<Vec<_>>()
    );
    for loaded in &report.rules {
        let rule = &loaded.rule;
        let kql = rule.language.as_deref() == Some("kuery")
            && ["query", "new_terms", "threshold"].contains(&rule.rule_type.as_str());
        let eql = rule.language.as_deref() == Some("eql") && rule.rule_type == "eql";
        assert_eq!(
            loaded.is_runnable(),
            kql || eql,
            "{}: {:?}",
            rule.name,
            loaded.status
        );
        assert!(rule.timing().is_ok(), "{}", rule.name);
    }
    assert_eq!(report.count("runnable"), 166);
    assert_eq!(report.count("unsupported"), 28);
    let unsupported = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Unsupported)
        .count();
    assert_eq!(unsupported, 28);
    // Unknown keys are kept, e.g. `[rule.investigation_fields]`; `[rule.new_terms]` becomes
    // Kibana's `new_terms_fields` and `history_window_start`.
    let new_terms = report
        .rules
        .iter()
        .find(|r| r.rule.rule_type == "new_terms")
        .unwrap();
    assert!(
        new_terms.rule.extra["new_terms_fields"].is_array(),
        "{:?}",
        new_terms.rule.extra
    );
    assert!(
        new_terms.rule.extra["history_window_start"]
            .as_str()
            .unwrap()
            .starts_with("now-")
    );
    assert!(
        report
            .rules
            .iter()
            .any(|r| r.rule.extra.contains_key("investigation_fields"))
    );
}

#[test]
fn seed_versions_load_and_duplicate_ids_are_errors() {
    let seeds = load_paths(&[data("rules/detection-rules/seed-versions")]);
    assert!(seeds.problems.is_empty(), "{:#?}", seeds.problems);
    assert_eq!(seeds.count("runnable"), 2);

    let both = load_paths(&[data("rules/detection-rules/seed-versions"), repo("rules")]);
    assert_eq!(both.count("error"), 2);
    assert!(
        both.errors()
            .all(|p| p.message.contains("duplicate rule_id"))
    );
}

#[test]
fn bad_files_name_file_line_and_field() {
    let cases = [
        ("truncated.toml", "invalid TOML"),
        (
            "wrong_types.toml",
            "wrong_types.toml:5: Wrong types: `risk_score`: invalid type: string \"high\"",
        ),
        (
            "missing_query.toml",
            "missing_query.toml:4: Missing query: missing `query`",
        ),
        (
            "bad_interval.toml",
            "bad_interval.toml:9: Bad interval: `interval`: invalid interval `10 minutes`",
        ),
        (
            "bad_date_math.toml",
            "bad_date_math.toml:9: Bad date math: `from`: invalid date math `now-60x`: unknown unit `x`",
        ),
        ("not_utf8.toml", "not_utf8.toml:2: not UTF-8 text"),
    ];
    for (file, expected) in cases {
        let report = load_paths(&[data("rules/bad").join(file)]);
        let problem = only_problem(&report);
        assert!(problem.contains(file), "{problem}");
        assert!(problem.contains(expected), "{file}: {problem}");
    }
}

#[test]
fn a_bad_ndjson_line_does_not_stop_the_others() {
    let report = load_paths(&[data("rules/bad/export.ndjson")]);
    assert_eq!(report.rules.len(), 2);
    assert!(only_problem(&report).contains("export.ndjson:2: invalid JSON"));
    assert_eq!(report.rules[0].status, RuleStatus::Runnable);
    assert_eq!(report.rules[1].origin.line, Some(3));
    assert!(
        matches!(&report.rules[1].status, RuleStatus::Unsupported(why) if why.contains("lucene"))
    );
}

#[test]
fn empty_and_missing_paths_are_reported() {
    let empty = tempfile::tempdir().unwrap();
    let report = load_paths(&[empty.path()]);
    assert!(only_problem(&report).contains("no rule files here"));
    let report = load_paths(&[Path::new("/nonexistent/rules")]);
    assert!(only_problem(&report).contains("/nonexistent/rules: no such file or directory"));
    let report = load_bytes(Path::new("empty.toml"), b"");
    assert!(only_problem(&report).contains("empty.toml"));
    let examples =
        repo("rules/aws/execution_lambda_external_layer_added_to_function.events.ndjson");
    let report = load_paths(&[examples]);
    assert!(only_problem(&report).contains("example-event file for `rules test`"));
}

#[test]
fn ndjson_export_loads_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export.ndjson");
    let out = run_cli(&[
        "rules",
        "export",
        "--format",
        "ndjson",
        "-o",
        export.to_str().unwrap(),
        "rules",
    ]);
    assert_exit!(out, 0);
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[2].starts_with("{\"exported_count\":2"));

    let original = load_paths(&[repo("rules")]);
    let reloaded = load_paths(&[&export]);
    assert!(reloaded.problems.is_empty(), "{:#?}", reloaded.problems);
    let rules = |r: &LoadReport| {
        r.rules
            .iter()
            .map(|l| l.rule.as_ref().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(rules(&original), rules(&reloaded));
}

#[test]
fn cli_list_and_validate() {
    let out = run_cli(&["rules", "list", "rules"]);
    assert_exit!(out, 0);
    let text = stdout(&out);
    assert!(text.starts_with("ID "), "{text}");
    assert!(text.contains(LAYER_ID) && text.contains(PUBLIC_ID));
    assert!(text.contains("2 rules in 2 files: 2 runnable"), "{text}");

    let out = run_cli(&["rules", "list", "--format", "json"]);
    assert_exit!(out, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row["additional_look_back"], "50m");
        assert_eq!(row["status"], "runnable");
        assert!(row["file"].as_str().unwrap().starts_with("<built-in>/aws/"));
    }

    let out = run_cli(&["rules", "list", "--format", "json", "tests/data/rules/bad"]);
    assert_exit!(out, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let errors = rows.iter().filter(|r| r["status"] == "error").count();
    assert_eq!(errors, 8, "{rows:#?}");

    let out = run_cli(&["rules", "validate", "rules"]);
    assert_exit!(out, 0);
    let out = run_cli(&["rules", "validate", "tests/data/rules/bad"]);
    assert_exit!(out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("tests/data/rules/bad/bad_interval.toml:9: Bad interval: `interval`"),
        "{text}"
    );
    assert!(text.contains("lucene"), "{text}");
}

fn example_events(file: &str) -> Vec<(Expect, serde_json::Value)> {
    let text = std::fs::read_to_string(repo("rules/aws").join(file)).unwrap();
    let (examples, errors) = parse_examples(&text);
    assert!(errors.is_empty(), "{errors:?}");
    examples
        .into_iter()
        .map(|e| (e.expect, e.event.expect("a single-event example")))
        .collect()
}

fn matcher(path: std::path::PathBuf) -> RuleMatcher {
    let report = load_paths(&[path]);
    let loaded = &report.rules[0];
    RuleMatcher::new(
        &loaded.rule,
        None,
        Some(FieldTypes::ecs_cloudtrail()),
        &MatchOptions::default(),
    )
    .unwrap()
}

#[test]
fn seed_layer_query_misses_the_versioned_event_name_and_the_shipped_one_catches_it() {
    let seed = matcher(data(
        "rules/detection-rules/seed-versions/aws_lambda_layer_added_to_existing_function.toml",
    ));
    let shipped = matcher(repo(
        "rules/aws/execution_lambda_external_layer_added_to_function.toml",
    ));
    let events = example_events("execution_lambda_external_layer_added_to_function.events.ndjson");
    let update = events
        .iter()
        .map(|(_, e)| e)
        .find(|e| {
            e["event"]["action"] == "UpdateFunctionConfiguration20150331v2"
                && e["event"]["outcome"] == "success"
        })
        .unwrap();
    assert!(
        !seed.matches(update),
        "the seed's exact `UpdateFunctionConfiguration` must miss the real name"
    );
    assert!(
        shipped.matches(update),
        "the shipped `UpdateFunctionConfiguration*` must catch it"
    );
    let publish = events
        .iter()
        .map(|(_, e)| e)
        .find(|e| e["event"]["action"] == "PublishLayerVersion20181031")
        .unwrap();
    assert!(seed.matches(publish) && shipped.matches(publish));
}

#[test]
fn shipped_examples_hold_both_verdicts_and_pass() {
    for file in [
        "execution_lambda_external_layer_added_to_function.events.ndjson",
        "persistence_lambda_backdoor_invoke_function_for_any_principal.events.ndjson",
    ] {
        let events = example_events(file);
        assert!(events.iter().any(|(e, _)| *e == Expect::Alert), "{file}");
        assert!(events.iter().any(|(e, _)| *e == Expect::NoAlert), "{file}");
    }
    let tests = run_examples(&load_paths(&[repo("rules")]));
    assert!(tests.is_success(), "{tests:#?}");
    assert!(tests.untested.is_empty());
    assert_eq!(tests.results.len(), 11);
    // The built-in copy carries the same examples.
    assert_eq!(run_examples(&shipped_rules()).results.len(), 11);
}

#[test]
fn cli_rules_test_reports_pass_and_fail() {
    let out = run_cli(&["rules", "test", "rules"]);
    assert_exit!(out, 0);
    let text = stdout(&out);
    assert!(text.contains("11 examples: 11 passed, 0 failed"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let rule = repo("rules/aws/persistence_lambda_backdoor_invoke_function_for_any_principal.toml");
    std::fs::copy(&rule, dir.path().join("public.toml")).unwrap();
    let examples = std::fs::read_to_string(rule.with_file_name(
        "persistence_lambda_backdoor_invoke_function_for_any_principal.events.ndjson",
    ))
    .unwrap();
    // Flip the first verdict: the example must now fail.
    let flipped = examples.replacen("\"expect\":\"alert\"", "\"expect\":\"no_alert\"", 1);
    std::fs::write(dir.path().join("public.events.ndjson"), flipped).unwrap();
    let out = run_cli(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_exit!(out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("FAIL  ") && text.contains("public.events.ndjson:1:"),
        "{text}"
    );
    assert!(text.contains("5 examples: 4 passed, 1 failed"), "{text}");
}

#[test]
fn rules_test_runs_sequence_examples_of_new_terms_and_threshold_rules() {
    let out = run_cli(&["rules", "test", "examples/new-terms/rules"]);
    assert_exit!(out, 0);
    let text = stdout(&out);
    assert!(text.contains("7 examples: 7 passed, 0 failed"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let rules = repo("examples/new-terms/rules");
    for name in ["first_access_key_by_identity", "secrets_read_in_bulk"] {
        std::fs::copy(
            rules.join(format!("{name}.toml")),
            dir.path().join(format!("{name}.toml")),
        )
        .unwrap();
    }
    let read = |name: &str| std::fs::read_to_string(rules.join(name)).unwrap();
    // A wrong count, and a threshold example whose only event lacks a time.
    let threshold = read("secrets_read_in_bulk.events.ndjson").replacen(
        "\"count\": 3",
        "\"count\": 4",
        1,
    ) + r#"{"expect": "alerts", "events": [{"event": {"action": "GetSecretValue"}}], "alerts": []}"#
        + "\n";
    std::fs::write(
        dir.path().join("secrets_read_in_bulk.events.ndjson"),
        threshold,
    )
    .unwrap();
    // An expected term that is not new.
    let new_terms = read("first_access_key_by_identity.events.ndjson").replacen(
        r#"{"terms": ["arn:aws:iam::111122223333:user/alice"]}]}"#,
        r#"{"terms": ["arn:aws:iam::111122223333:user/alice"]}, {"terms": ["arn:aws:iam::111122223333:user/bob"]}]}"#,
        1,
    );
    std::fs::write(
        dir.path()
            .join("first_access_key_by_identity.events.ndjson"),
        new_terms,
    )
    .unwrap();
    let out = run_cli(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_exit!(out, 1);
    let text = stdout(&out);
    assert!(
        text.contains(r#"missing: ["arn:aws:iam::111122223333:user/carol"] x4; unexpected: ["arn:aws:iam::111122223333:user/carol"] x3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"missing: ["arn:aws:iam::111122223333:user/bob"]; unexpected: none"#),
        "{text}"
    );
    assert!(
        text.contains("secrets_read_in_bulk.events.ndjson:4: Secrets Read in Bulk: cannot run the events: event 1 has no `@timestamp`"),
        "{text}"
    );
    assert!(text.contains("7 examples: 5 passed, 2 failed"), "{text}");
}

#[test]
fn a_sequence_example_for_a_query_rule_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let rule = repo("rules/aws/persistence_lambda_backdoor_invoke_function_for_any_principal.toml");
    std::fs::copy(&rule, dir.path().join("public.toml")).unwrap();
    std::fs::write(
        dir.path().join("public.events.ndjson"),
        "{\"expect\": \"alerts\", \"events\": [], \"alerts\": []}\n",
    )
    .unwrap();
    let out = run_cli(&["rules", "test", dir.path().to_str().unwrap()]);
    assert_exit!(out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("public.events.ndjson:1:")
            && text.contains("this is a query rule: use `alert` and `no_alert`"),
        "{text}"
    );
}

#[test]
fn invalid_kql_is_reported_with_its_caret() {
    let report = load_paths(&[data("rules/bad/invalid_kql.toml")]);
    let problem = only_problem(&report);
    assert!(
        problem.starts_with(&format!(
            "{}:11: Invalid KQL: `query` is not valid KQL",
            data("rules/bad/invalid_kql.toml").display()
        )),
        "{problem}"
    );
    assert!(problem.contains('^'), "{problem}");
    assert!(matches!(report.rules[0].status, RuleStatus::Error(_)));
    assert!(report.rules[0].query.is_none());

    let shipped = shipped_rules();
    assert!(shipped.rules.iter().all(|r| r.query.is_some()));
}

#[test]
fn every_elastic_aws_rule_survives_the_ndjson_round_trip() {
    let report = load_paths(&[data("rules/detection-rules/aws")]);
    let rules: Vec<_> = report.rules.iter().map(|l| l.rule.as_ref()).collect();
    let text = rule_runner::rule::ndjson::export(&rules).unwrap();
    let reloaded = load_bytes(Path::new("export.ndjson"), text.as_bytes());
    assert!(!reloaded.has_errors());
    assert_eq!(reloaded.rules.len(), 194);
    for (before, after) in report.rules.iter().zip(&reloaded.rules) {
        assert_eq!(before.rule, after.rule);
        assert_eq!(before.status, after.status, "{}", before.rule.name);
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;
    use rule_runner::rule::{DateMath, parse_interval};

    const SHIPPED: &str = include_str!(
        "../../rules/aws/persistence_lambda_backdoor_invoke_function_for_any_principal.toml"
    );

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            for name in ["x.toml", "x.ndjson", "x"] {
                let report = load_bytes(Path::new(name), &bytes);
                prop_assert!(report.files == 1);
            }
        }

        #[test]
        fn on_a_damaged_rule(at in 0usize..SHIPPED.len(), junk in "[\\[\\]={}'\"a-z0-9\\n ]{0,12}", cut in any::<bool>()) {
            let at = (0..=at).rev().find(|i| SHIPPED.is_char_boundary(*i)).unwrap_or(0);
            let text = if cut {
                SHIPPED[..at].to_owned()
            } else {
                format!("{}{junk}{}", &SHIPPED[..at], &SHIPPED[at..])
            };
            let report = load_bytes(Path::new("damaged.toml"), text.as_bytes());
            // Whatever happened, it is either a rule or a located problem.
            prop_assert!(!report.rules.is_empty() || report.has_errors());
        }

        #[test]
        fn on_arbitrary_time_expressions(text in "(now)?[-+/0-9a-zA-Z|:.]{0,16}") {
            let _ = parse_interval(&text);
            if let Ok(math) = DateMath::parse(&text) {
                let _ = math.resolve(chrono::Utc::now());
            }
        }
    }
}

#[test]
fn warnings_do_not_stop_a_rule() {
    let line = br#"{"rule_id":"w","name":"Data view rule","type":"query","query":"a: b","risk_score":21,"severity":"low","data_view_id":"security-solution-default","exceptions_list":[{"list_id":"l","type":"detection"}]}"#;
    let report = load_bytes(Path::new("view.ndjson"), line);
    assert!(report.rules[0].is_runnable());
    let warnings: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].contains("view.ndjson:1: Data view rule: warning: the rule searches Kibana data view `security-solution-default`"));
    assert!(warnings[1].contains("exception lists"));
}

#[test]
fn examples_of_a_multi_rule_export_name_their_rule() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = load_paths(&[repo("rules")]);
    let rules: Vec<_> = shipped.rules.iter().map(|l| l.rule.as_ref()).collect();
    let export = dir.path().join("lambda.ndjson");
    std::fs::write(&export, rule_runner::rule::ndjson::export(&rules).unwrap()).unwrap();
    let mut lines = Vec::new();
    for (file, id) in [
        (
            "execution_lambda_external_layer_added_to_function.events.ndjson",
            LAYER_ID,
        ),
        (
            "persistence_lambda_backdoor_invoke_function_for_any_principal.events.ndjson",
            PUBLIC_ID,
        ),
    ] {
        for line in std::fs::read_to_string(repo("rules/aws").join(file))
            .unwrap()
            .lines()
        {
            let mut example: serde_json::Value = serde_json::from_str(line).unwrap();
            example["rule_id"] = id.into();
            lines.push(example.to_string());
        }
    }
    // One example without a rule_id: ambiguous in a file of two rules.
    lines.push(r#"{"expect":"alert","event":{}}"#.to_owned());
    std::fs::write(dir.path().join("lambda.events.ndjson"), lines.join("\n")).unwrap();

    let tests = run_examples(&load_paths(&[&export]));
    assert_eq!(tests.results.len(), 11);
    assert_eq!(tests.failed(), 0);
    assert_eq!(tests.problems.len(), 1, "{:#?}", tests.problems);
    assert_eq!(tests.problems[0].0.line, Some(12));
    assert!(
        tests.problems[0]
            .1
            .contains("holds 2 rules: say which one with `rule_id`")
    );
}

#[test]
fn byte_order_marks_crlf_and_missing_fields() {
    let shipped = std::fs::read_to_string(repo(
        "rules/aws/execution_lambda_external_layer_added_to_function.toml",
    ))
    .unwrap();
    let windows = format!("\u{feff}{}", shipped.replace('\n', "\r\n"));
    let report = load_bytes(Path::new("windows.toml"), windows.as_bytes());
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    assert_eq!(report.rules[0].rule.rule_id, LAYER_ID);

    let no_id = shipped.replace("rule_id = \"7d091a76-0737-11ef-8469-f661ea17fbcc\"\n", "");
    let report = load_bytes(Path::new("no_id.toml"), no_id.as_bytes());
    let problem = only_problem(&report);
    assert!(
        problem.contains("no_id.toml:11: AWS Lambda Layer Added to Existing Function: in `[rule]`: missing field `rule_id`"),
        "{problem}"
    );

    let line = b"\xef\xbb\xbf{\"rule_id\":\"x\",\"type\":\"query\",\"query\":\"a:b\",\"risk_score\":1,\"severity\":\"low\"}\n";
    let report = load_bytes(Path::new("no_name.ndjson"), line);
    assert!(only_problem(&report).contains("no_name.ndjson:1: missing field `name`"));
}

#[test]
fn toml_filters_reach_the_dsl_and_the_in_memory_matcher() {
    let dir = data("rules/filters");
    let report = load_paths(&[&dir]);
    assert!(report.problems.is_empty(), "{:#?}", report.problems);
    let rule = &report.rules[0].rule;
    let clauses = rule_runner::rule::filters::es_clauses(&rule.filters).unwrap();
    assert_eq!(
        clauses.filter,
        [serde_json::json!({"match_phrase": {"event.outcome": "success"}})]
    );
    assert_eq!(
        clauses.must_not,
        [serde_json::json!({"match_phrase": {"user.name": "deploy-bot"}})]
    );
    let tests = run_examples(&report);
    assert!(tests.is_success(), "{tests:#?}");
    assert_eq!(tests.results.len(), 3);
}

#[test]
fn windows_that_cannot_work_are_reported() {
    let shipped = std::fs::read_to_string(repo(
        "rules/aws/execution_lambda_external_layer_added_to_function.toml",
    ))
    .unwrap();
    let inverted = shipped.replace("from = \"now-60m\"", "from = \"now+1h\"");
    let report = load_bytes(Path::new("inverted.toml"), inverted.as_bytes());
    let problem = only_problem(&report);
    assert!(problem.contains("inverted.toml:20: AWS Lambda Layer Added to Existing Function: `from` (`now+1h`) comes after `to` (`now`)"), "{problem}");

    let short = shipped.replace("from = \"now-60m\"", "from = \"now-5m\"");
    let report = load_bytes(Path::new("short.toml"), short.as_bytes());
    assert!(!report.has_errors());
    assert!(report.rules[0].is_runnable());
    let warning = report.problems[0].to_string();
    assert!(warning.contains("short.toml:20: AWS Lambda Layer Added to Existing Function: warning: the window `now-5m`..`now` (5m) is shorter than the interval (10m)"), "{warning}");
}

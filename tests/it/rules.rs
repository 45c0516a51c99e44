//! Tests for the `rules` area: loaders, the shipped rules, the `rules` subcommands.

use std::path::Path;

use rule_runner::rule::{
    LoadReport, ProblemKind, RuleStatus, Severity, load::load_bytes, load_paths, shipped_rules,
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
        let kql_query = rule.rule_type == "query" && rule.language.as_deref() == Some("kuery");
        assert_eq!(
            loaded.is_runnable(),
            kql_query,
            "{}: {:?}",
            rule.name,
            loaded.status
        );
        assert!(rule.timing().is_ok(), "{}", rule.name);
    }
    assert_eq!(report.count("runnable"), 85);
    assert_eq!(report.count("unsupported"), 109);
    let unsupported = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Unsupported)
        .count();
    assert_eq!(unsupported, 109);
    // Unknown keys are kept, e.g. `[rule.investigation_fields]` and `[rule.new_terms]`.
    assert!(
        report
            .rules
            .iter()
            .any(|r| r.rule.extra.contains_key("new_terms"))
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

    let out = run_cli(&["rules", "list", "--format", "json", "tests/data/rules/bad"]);
    assert_exit!(out, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let errors = rows.iter().filter(|r| r["status"] == "error").count();
    assert_eq!(errors, 7, "{rows:#?}");

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

//! Example events for `rules test`: rule authors unit-test a rule offline.
//!
//! Format: next to a rule file `<name>.toml` (or `<name>.ndjson`), a file
//! `<name>.events.ndjson` holds one example per line:
//!
//! ```json
//! {"expect": "alert", "description": "principal * may invoke", "event": {"event": {"action": "AddPermission20150331v2"}}}
//! ```
//!
//! - `expect`: `"alert"` (the rule must select the event) or `"no_alert"`;
//! - `event`: the document as Elasticsearch holds it (ECS, as the integration writes it);
//! - `description` (optional): shown in the report;
//! - `rule_id` (optional): which rule of the file the example is for; required when the rule
//!   file holds more than one rule.
//!
//! Blank lines are ignored. Events are evaluated with the in-memory KQL evaluator and the ECS
//! CloudTrail field mappings, the rule's filters included; the time window is not applied.
//!
//! `new_terms` and `threshold` rules alert on several events together, so their examples may
//! instead hold a sequence of events and the alerts it must raise, exactly:
//!
//! ```json
//! {"expect": "alerts", "events": [{"@timestamp": "...", ...}, ...], "alerts": [{"terms": ["bob"]}, {"terms": ["carol"], "count": 3}]}
//! ```
//!
//! `terms` are the new terms (`kibana.alert.new_terms`), the threshold group's values in
//! field order, or an EQL sequence's join key values; `count` (optional) is a threshold
//! group's count or the number of events in the sequence. The events are run as `scan`
//! runs them, on the rule's schedule, with the events given as the whole history (no warm-up,
//! unless `"warm_up": true`); `alerts: []` expects none.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::embedded::{BUILT_IN, shipped_file};
use super::load::{EXAMPLES_SUFFIX, LoadReport, LoadedRule, Origin};
use super::matcher::RuleMatcher;
use crate::kql::{FieldTypes, MatchOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Alert,
    NoAlert,
    /// A sequence of events raises exactly `alerts` (aggregating rules).
    Alerts,
}

/// An alert a sequence example expects, or one it raised.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAlert {
    pub terms: Vec<Value>,
    #[serde(default)]
    pub count: Option<u64>,
}

impl ExpectedAlert {
    /// Whether `raised` is this alert (a `count` left out matches any).
    fn is(&self, raised: &ExpectedAlert) -> bool {
        self.terms == raised.terms && self.count.is_none_or(|count| raised.count == Some(count))
    }
}

impl std::fmt::Display for ExpectedAlert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let terms: Vec<String> = self.terms.iter().map(Value::to_string).collect();
        write!(f, "[{}]", terms.join(", "))?;
        if let Some(count) = self.count {
            write!(f, " x{count}")?;
        }
        Ok(())
    }
}

/// Runs a sequence example's events through a rule as `scan` does (which this layer cannot
/// call): the alerts raised, or why the events cannot be run.
pub type SequenceRunner<'a> =
    &'a dyn Fn(&LoadedRule, &[Value], bool) -> Result<Vec<ExpectedAlert>, String>;

/// One example line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// 1-based line in the example file.
    #[serde(skip)]
    pub line: usize,
    pub expect: Expect,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub rule_id: Option<String>,
    #[serde(default)]
    pub event: Option<Value>,
    #[serde(default)]
    pub events: Option<Vec<Value>>,
    #[serde(default)]
    pub alerts: Option<Vec<ExpectedAlert>>,
    #[serde(default)]
    pub warm_up: bool,
}

impl Example {
    /// What is missing or extra for its `expect`.
    fn shape_error(&self) -> Option<&'static str> {
        match (self.expect, &self.event, &self.events, &self.alerts) {
            (Expect::Alert | Expect::NoAlert, Some(_), None, None) => None,
            (Expect::Alert | Expect::NoAlert, _, _, _) => Some(
                "`alert` and `no_alert` examples hold one `event` (and no `events` or `alerts`)",
            ),
            (Expect::Alerts, None, Some(_), Some(_)) => None,
            (Expect::Alerts, _, _, _) => {
                Some("an `alerts` example holds `events` and `alerts` (and no `event`)")
            }
        }
    }
}

impl Example {
    /// Whether this example tests the rule `rule_id` of a file holding `rules_in_file` rules.
    fn is_for(&self, rule_id: &str, rules_in_file: usize) -> bool {
        match &self.rule_id {
            Some(id) => id == rule_id,
            None => rules_in_file == 1,
        }
    }
}

/// The example file that belongs to a rule file.
pub fn examples_path(rule_file: &Path) -> PathBuf {
    let name = rule_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".toml")
        .or_else(|| name.strip_suffix(".ndjson"))
        .unwrap_or(&name);
    rule_file.with_file_name(format!("{stem}{EXAMPLES_SUFFIX}"))
}

/// Parse an example file: the examples with their line numbers, and the bad lines.
pub fn parse_examples(text: &str) -> (Vec<Example>, Vec<(usize, String)>) {
    let mut examples = Vec::new();
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Example>(line) {
            Ok(example) => match example.shape_error() {
                Some(why) => errors.push((index + 1, format!("invalid example: {why}"))),
                None => examples.push(Example {
                    line: index + 1,
                    ..example
                }),
            },
            Err(err) => errors.push((index + 1, format!("invalid example: {err}"))),
        }
    }
    (examples, errors)
}

/// The verdict on one example.
#[derive(Debug, Clone)]
pub struct ExampleResult {
    pub rule_name: String,
    pub origin: Origin,
    pub expect: Expect,
    pub description: Option<String>,
    pub passed: bool,
    /// For a failed sequence example: what was expected and what was raised.
    pub detail: Option<String>,
}

/// What `rules test` found.
#[derive(Debug, Clone, Default)]
pub struct TestReport {
    pub results: Vec<ExampleResult>,
    /// Problems: unreadable or malformed example files, rules that cannot be evaluated.
    pub problems: Vec<(Origin, String)>,
    /// Runnable rules with no examples.
    pub untested: Vec<String>,
}

impl TestReport {
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.passed).count()
    }

    pub fn is_success(&self) -> bool {
        self.failed() == 0 && self.problems.is_empty()
    }
}

/// Evaluate every runnable rule of `report` against its examples; sequence examples are
/// reported as problems (use [`run_examples_with`]).
pub fn run_examples(report: &LoadReport) -> TestReport {
    run_examples_with(report, &|_, _, _| {
        Err("sequence examples need a runner; `rules test` has one".to_owned())
    })
}

/// Evaluate every runnable rule of `report` against its examples, sequence examples through
/// `runner`.
pub fn run_examples_with(report: &LoadReport, runner: SequenceRunner<'_>) -> TestReport {
    let mut out = TestReport::default();
    let mut files: Vec<&Path> = Vec::new();
    for loaded in &report.rules {
        if !files.contains(&loaded.origin.path.as_path()) {
            files.push(&loaded.origin.path);
        }
    }
    for rule_file in files {
        let rules: Vec<&LoadedRule> = report
            .rules
            .iter()
            .filter(|r| r.origin.path == rule_file)
            .collect();
        test_file(rule_file, &rules, runner, &mut out);
    }
    out
}

/// The examples of one rule file, against the rules it holds.
fn test_file(
    rule_file: &Path,
    rules: &[&LoadedRule],
    runner: SequenceRunner<'_>,
    out: &mut TestReport,
) {
    let path = examples_path(rule_file);
    let at = |line: Option<usize>| Origin {
        path: path.clone(),
        line,
    };
    let text = match read(&path) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(None) => {
            let runnable = rules.iter().filter(|r| r.is_runnable());
            out.untested.extend(runnable.map(|r| r.rule.name.clone()));
            return;
        }
        Err(err) => {
            out.problems
                .push((at(None), format!("cannot read examples: {err}")));
            return;
        }
    };
    let (examples, errors) = parse_examples(&text);
    for (line, message) in errors {
        out.problems.push((at(Some(line)), message));
    }
    for example in &examples {
        if rules
            .iter()
            .any(|r| example.is_for(&r.rule.rule_id, rules.len()))
        {
            continue;
        }
        let why = match &example.rule_id {
            Some(id) => format!("no rule with rule_id `{id}` in {}", rule_file.display()),
            None => format!(
                "{} holds {} rules: say which one with `rule_id`",
                rule_file.display(),
                rules.len()
            ),
        };
        out.problems.push((
            at(Some(example.line)),
            format!("example for no rule: {why}"),
        ));
    }
    for loaded in rules {
        test_rule(loaded, &path, &examples, rules.len(), runner, out);
    }
}

fn test_rule(
    loaded: &LoadedRule,
    path: &Path,
    examples: &[Example],
    rules_in_file: usize,
    runner: SequenceRunner<'_>,
    out: &mut TestReport,
) {
    let rule = &loaded.rule;
    let mine: Vec<_> = examples
        .iter()
        .filter(|e| e.is_for(&rule.rule_id, rules_in_file))
        .collect();
    if mine.is_empty() {
        if loaded.is_runnable() {
            out.untested.push(rule.name.clone());
        }
        return;
    }
    let origin = Origin {
        path: path.to_owned(),
        line: mine.first().map(|e| e.line),
    };
    if !loaded.is_runnable() {
        let why = format!(
            "{}: the rule has examples but is {}",
            rule.name,
            loaded.status.label()
        );
        out.problems.push((origin, why));
        return;
    }
    let fields = FieldTypes::ecs_cloudtrail();
    let matcher = match RuleMatcher::new(
        rule,
        loaded.query.as_deref(),
        Some(fields),
        &MatchOptions::default(),
    ) {
        Ok(matcher) => matcher,
        Err(err) => {
            out.problems
                .push((origin, format!("{}: cannot evaluate: {err}", rule.name)));
            return;
        }
    };
    let aggregating = matches!(rule.rule_type.as_str(), "new_terms" | "threshold")
        || matches!(rule.kind(), Ok(super::RuleKind::Eql(eql)) if eql.joins());
    for example in mine {
        let at = Origin {
            path: path.to_owned(),
            line: Some(example.line),
        };
        let (passed, detail) = match (&example.event, &example.events, &example.alerts) {
            (Some(event), _, _) => (
                matcher.matches(event) == (example.expect == Expect::Alert),
                None,
            ),
            (None, Some(events), Some(expected)) if aggregating => {
                match runner(loaded, events, example.warm_up) {
                    Ok(raised) => sequence_verdict(expected, &raised),
                    Err(why) => {
                        out.problems
                            .push((at, format!("{}: cannot run the events: {why}", rule.name)));
                        continue;
                    }
                }
            }
            _ => {
                let why = format!(
                    "{}: an `alerts` example is for new_terms, threshold and EQL sequence rules; this is a {} rule: use `alert` and `no_alert`",
                    rule.name, rule.rule_type
                );
                out.problems.push((at, why));
                continue;
            }
        };
        out.results.push(ExampleResult {
            rule_name: rule.name.clone(),
            origin: at,
            expect: example.expect,
            description: example.description.clone(),
            passed,
            detail,
        });
    }
}

/// Whether `raised` is exactly `expected` (in any order), and if not, what differs.
fn sequence_verdict(
    expected: &[ExpectedAlert],
    raised: &[ExpectedAlert],
) -> (bool, Option<String>) {
    let mut unmatched: Vec<&ExpectedAlert> = raised.iter().collect();
    let mut missing = Vec::new();
    for want in expected {
        match unmatched.iter().position(|got| want.is(got)) {
            Some(at) => {
                unmatched.remove(at);
            }
            None => missing.push(want.to_string()),
        }
    }
    if missing.is_empty() && unmatched.is_empty() {
        return (true, None);
    }
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let detail = format!(
        "missing: {}; unexpected: {}",
        list(missing),
        list(unmatched.iter().map(ToString::to_string).collect())
    );
    (false, Some(detail))
}

/// An example file's contents, from the built-in rules or the disk; `None` when absent.
fn read(path: &Path) -> std::io::Result<Option<Cow<'static, [u8]>>> {
    if path.starts_with(BUILT_IN) {
        return Ok(shipped_file(path).map(Cow::Borrowed));
    }
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Cow::Owned(bytes))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_sequence_verdict_names_what_is_missing_and_unexpected() {
        let alert = |terms: Value, count| ExpectedAlert {
            terms: terms.as_array().cloned().unwrap_or_default(),
            count,
        };
        let raised = [
            alert(json!(["bob"]), Some(3)),
            alert(json!(["carol"]), Some(1)),
        ];
        assert_eq!(
            sequence_verdict(
                &[
                    alert(json!(["carol"]), None),
                    alert(json!(["bob"]), Some(3))
                ],
                &raised
            ),
            (true, None)
        );
        let (passed, detail) = sequence_verdict(&[alert(json!(["bob"]), Some(2))], &raised);
        assert!(!passed);
        assert_eq!(
            detail.as_deref(),
            Some(r#"missing: ["bob"] x2; unexpected: ["bob"] x3, ["carol"] x1"#)
        );
    }

    #[test]
    fn example_file_names() {
        assert_eq!(
            examples_path(Path::new("rules/aws/x.toml")),
            Path::new("rules/aws/x.events.ndjson")
        );
        assert_eq!(
            examples_path(Path::new("export.ndjson")),
            Path::new("export.events.ndjson")
        );
    }

    #[test]
    fn example_lines_and_errors() {
        let text = "{\"expect\":\"alert\",\"event\":{}}\n\n{\"expect\":\"maybe\",\"event\":{}}\n{\"expect\":\"no_alert\",\"event\":{},\"extra\":1}\n{\"expect\":\"alerts\",\"event\":{}}\n{\"expect\":\"alerts\",\"events\":[],\"alerts\":[]}\n";
        let (examples, errors) = parse_examples(text);
        assert_eq!(examples.len(), 2);
        assert_eq!(examples[0].line, 1);
        assert_eq!(examples[1].line, 6);
        assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(
            errors[2].1.contains("holds `events` and `alerts`"),
            "{}",
            errors[2].1
        );
        assert!(
            errors[0].1.contains("unknown variant `maybe`"),
            "{}",
            errors[0].1
        );
    }
}

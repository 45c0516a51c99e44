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
}

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
    pub event: Value,
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
            Ok(example) => examples.push(Example {
                line: index + 1,
                ..example
            }),
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

/// Evaluate every runnable rule of `report` against its examples.
pub fn run_examples(report: &LoadReport) -> TestReport {
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
        test_file(rule_file, &rules, &mut out);
    }
    out
}

/// The examples of one rule file, against the rules it holds.
fn test_file(rule_file: &Path, rules: &[&LoadedRule], out: &mut TestReport) {
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
        test_rule(loaded, &path, &examples, rules.len(), out);
    }
}

fn test_rule(
    loaded: &LoadedRule,
    path: &Path,
    examples: &[Example],
    rules_in_file: usize,
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
    for example in mine {
        let alerted = matcher.matches(&example.event);
        out.results.push(ExampleResult {
            rule_name: rule.name.clone(),
            origin: Origin {
                path: path.to_owned(),
                line: Some(example.line),
            },
            expect: example.expect,
            description: example.description.clone(),
            passed: alerted == (example.expect == Expect::Alert),
        });
    }
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
    use super::*;

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
        let text = "{\"expect\":\"alert\",\"event\":{}}\n\n{\"expect\":\"maybe\",\"event\":{}}\n{\"expect\":\"no_alert\",\"event\":{},\"extra\":1}\n";
        let (examples, errors) = parse_examples(text);
        assert_eq!(examples.len(), 1);
        assert_eq!(examples[0].line, 1);
        assert_eq!(errors.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4]);
        assert!(
            errors[0].1.contains("unknown variant `maybe`"),
            "{}",
            errors[0].1
        );
    }
}

//! Loading rules from files and directories into a [`LoadReport`]: every rule found, with its
//! status (runnable, unsupported, error), and every problem with file, line and rule name.
//! Nothing here is fatal: a bad file or rule is reported and the others still load.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::model::Rule;
pub use super::model::unsupported_reason;
pub use super::parsed::ProblemKind;
use super::parsed::{ParsedRule, is_empty_value};
use super::{filters, ndjson, toml};
use crate::kql::Query;

/// Suffix of the example-event files `rules test` reads; never loaded as rules.
pub const EXAMPLES_SUFFIX: &str = ".events.ndjson";

/// Where a rule or problem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub path: PathBuf,
    /// 1-based; `None` when the problem concerns the whole file.
    pub line: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// Whether rule-runner can run a loaded rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleStatus {
    Runnable,
    /// A valid rule of a type or language rule-runner does not execute; says which.
    Unsupported(String),
    /// The rule is invalid; the first problem found (all are in the report).
    Error(String),
}

impl RuleStatus {
    pub fn label(&self) -> &'static str {
        match self {
            RuleStatus::Runnable => "runnable",
            RuleStatus::Unsupported(_) => "unsupported",
            RuleStatus::Error(_) => "error",
        }
    }
}

/// One rule as loaded, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedRule {
    pub rule: Arc<Rule>,
    pub origin: Origin,
    pub status: RuleStatus,
    /// The parsed KQL query of a runnable rule, so callers need not parse it again.
    pub query: Option<Arc<Query>>,
}

impl LoadedRule {
    pub fn is_runnable(&self) -> bool {
        self.status == RuleStatus::Runnable
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    /// The rule's name when it could be read.
    pub rule: Option<String>,
    pub kind: ProblemKind,
    pub message: String,
}

impl fmt::Display for Problem {
    /// `file:line: rule: what` (the rule part only when known).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if let Some(rule) = &self.rule {
            write!(f, "{rule}: ")?;
        }
        if self.kind != ProblemKind::Error {
            write!(f, "{}: ", self.kind.label())?;
        }
        f.write_str(&self.message)
    }
}

/// Everything found under the given paths.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub rules: Vec<LoadedRule>,
    pub problems: Vec<Problem>,
    /// Rule files read (whether or not they held valid rules).
    pub files: usize,
}

impl LoadReport {
    pub fn runnable(&self) -> impl Iterator<Item = &LoadedRule> {
        self.rules.iter().filter(|r| r.is_runnable())
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.kind == ProblemKind::Error)
    }

    /// Errors that kept a rule from loading at all (a broken file or record), as opposed to
    /// the errors of a loaded rule.
    pub fn unloaded(&self) -> impl Iterator<Item = &Problem> {
        self.errors().filter(|problem| {
            !self.rules.iter().any(|loaded| {
                loaded.origin.path == problem.origin.path
                    && problem.rule.as_ref() == Some(&loaded.rule.name)
            })
        })
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn count(&self, status: &str) -> usize {
        self.rules
            .iter()
            .filter(|r| r.status.label() == status)
            .count()
    }

    fn error(&mut self, path: &Path, line: Option<usize>, message: String) {
        self.problems.push(Problem {
            origin: Origin {
                path: path.to_owned(),
                line,
            },
            rule: None,
            kind: ProblemKind::Error,
            message,
        });
    }
}

/// Load every rule under `paths` (files, or directories searched recursively).
pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> LoadReport {
    let mut report = LoadReport::default();
    for path in paths {
        let path = path.as_ref();
        if path.is_dir() {
            let mut files = Vec::new();
            let mut unreadable = Vec::new();
            collect_rule_files(path, &mut files, &mut HashSet::new(), &mut unreadable);
            for (dir, message) in unreadable {
                report.error(&dir, None, message);
            }
            if files.is_empty() {
                report.error(
                    path,
                    None,
                    "no rule files here (looked for *.toml and *.ndjson, recursively)".to_owned(),
                );
            }
            for file in files {
                load_file_into(&file, &mut report);
            }
        } else if path.to_string_lossy().ends_with(EXAMPLES_SUFFIX) {
            report.files += 1;
            let message = "this is an example-event file for `rules test`, not a rule file: \
                           give the rule file or its directory"
                .to_owned();
            report.error(path, None, message);
        } else if path.exists() {
            load_file_into(path, &mut report);
        } else {
            report.error(path, None, "no such file or directory".to_owned());
        }
    }
    check_duplicate_ids(&mut report);
    report
}

/// Rule files under `dir`, in path order; directories that cannot be read are collected in
/// `unreadable` and skipped.
fn collect_rule_files(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    seen: &mut HashSet<PathBuf>,
    unreadable: &mut Vec<(PathBuf, String)>,
) {
    let listing = dir.canonicalize().and_then(|canonical| {
        // A symlink cycle would otherwise recurse forever.
        if seen.insert(canonical) {
            std::fs::read_dir(dir).map(Some)
        } else {
            Ok(None)
        }
    });
    let entries = match listing {
        Ok(Some(entries)) => entries,
        Ok(None) => return,
        Err(err) => {
            unreadable.push((dir.to_owned(), format!("cannot read directory: {err}")));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_rule_files(&path, files, seen, unreadable);
        } else if is_rule_file_name(name) {
            files.push(path);
        }
    }
}

/// Whether a directory entry holds rules: `*.toml` or `*.ndjson`, but not example events.
pub fn is_rule_file_name(name: &str) -> bool {
    (name.ends_with(".toml") || name.ends_with(".ndjson")) && !name.ends_with(EXAMPLES_SUFFIX)
}

fn load_file_into(path: &Path, report: &mut LoadReport) {
    match std::fs::read(path) {
        Ok(bytes) => load_bytes_into(path, &bytes, report),
        Err(err) => {
            report.files += 1;
            report.error(path, None, format!("cannot read file: {err}"));
        }
    }
}

/// Load the rules in one file's contents; `path` names it in problems and picks the format
/// (`.toml` or NDJSON, sniffed from the first character for other names).
pub fn load_bytes(path: &Path, bytes: &[u8]) -> LoadReport {
    let mut report = LoadReport::default();
    load_bytes_into(path, bytes, &mut report);
    check_duplicate_ids(&mut report);
    report
}

pub(super) fn load_bytes_into(path: &Path, bytes: &[u8], report: &mut LoadReport) {
    report.files += 1;
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let offset = err.valid_up_to();
            let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
            report.error(
                path,
                Some(line),
                format!(
                    "not UTF-8 text (invalid byte at offset {offset}); rule files must be UTF-8"
                ),
            );
            return;
        }
    };
    // Editors on Windows may start a file with a byte-order mark; neither format allows one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let is_toml = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => true,
        Some("ndjson" | "json") => false,
        _ => !text.trim_start().starts_with('{'),
    };
    let parsed = if is_toml {
        toml::parse(text)
    } else {
        ndjson::parse(text)
    };
    if parsed.rules.is_empty() && parsed.problems.is_empty() {
        report.error(path, None, "the file holds no rules".to_owned());
    }
    for (line, rule, kind, message) in parsed.problems {
        report.problems.push(Problem {
            origin: Origin {
                path: path.to_owned(),
                line,
            },
            rule,
            kind,
            message,
        });
    }
    for parsed_rule in parsed.rules {
        let (loaded, problems) = validate(path, parsed_rule);
        report.problems.extend(problems);
        report.rules.push(loaded);
    }
}

/// Decide a parsed rule's status, collecting every problem with the line of the field at fault.
fn validate(path: &Path, parsed: ParsedRule) -> (LoadedRule, Vec<Problem>) {
    let rule = &parsed.rule;
    let mut problems = Vec::new();
    let mut report = |kind: ProblemKind, line: usize, message: String| {
        problems.push(Problem {
            origin: Origin {
                path: path.to_owned(),
                line: Some(line),
            },
            rule: Some(rule.name.clone()),
            kind,
            message,
        });
    };
    let error = ProblemKind::Error;
    if rule.rule_id.trim().is_empty() {
        report(
            error,
            parsed.line_of("rule_id"),
            "`rule_id` is empty".to_owned(),
        );
    }
    if rule.risk_score > 100 {
        let message = format!("`risk_score` is {}; it must be 0 to 100", rule.risk_score);
        report(error, parsed.line_of("risk_score"), message);
    }
    if rule.max_signals == 0 {
        let message = "`max_signals` is 0; it must be at least 1".to_owned();
        report(error, parsed.line_of("max_signals"), message);
    }
    match rule.timing() {
        Err((field, err)) => {
            let message = format!("`{}`: {err}", field.name());
            report(error, parsed.line_of(field.name()), message);
        }
        Ok(timing) => {
            if let Some(message) = timing.inverted_at(chrono::Utc::now()) {
                report(error, parsed.line_of("from"), message);
            }
            if let Some(message) = timing.gap_warning() {
                report(ProblemKind::Warning, parsed.line_of("from"), message);
            }
        }
    }
    let unsupported = unsupported_reason(rule);
    let mut query = None;
    if unsupported.is_none() && rule.rule_type == "eql" {
        if let Err(err) = rule.eql_statement() {
            report(error, parsed.query_error_line(&err), err.to_string());
        }
    } else if unsupported.is_none() {
        match rule.kql_query() {
            Ok(parsed) => query = Some(Arc::new(parsed)),
            Err(err) => report(error, parsed.query_error_line(&err), err.to_string()),
        }
    }
    match filters::es_clauses(&rule.filters) {
        Err(err) => report(
            error,
            parsed.line_of("filters"),
            format!("`filters`: {err}"),
        ),
        Ok(clauses) => {
            if let (None, Err(err)) = (&unsupported, clauses.to_kql()) {
                let message = format!("{err}: `scan` and `rules test` skip this rule");
                report(ProblemKind::Warning, parsed.line_of("filters"), message);
            }
        }
    }
    if unsupported.is_none() && rule.index.is_empty() {
        let message = match rule.extra.get("data_view_id").and_then(Value::as_str) {
            Some(view) => format!(
                "the rule searches Kibana data view `{view}`, which rule-runner cannot resolve: \
                 list its index patterns in `index`"
            ),
            None => "the rule names no index patterns: set `index` (e.g. [\"logs-*\"])".to_owned(),
        };
        report(ProblemKind::Warning, parsed.line_of("index"), message);
    }
    if !rule.extra.get("exceptions_list").is_none_or(is_empty_value) {
        let message = "the rule references exception lists, which rule-runner does not apply";
        report(
            ProblemKind::Warning,
            parsed.line_of("exceptions_list"),
            message.to_owned(),
        );
    }
    let first_error = problems
        .iter()
        .find(|p| p.kind == ProblemKind::Error)
        .map(|p| p.message.clone());
    let status = match (first_error, unsupported) {
        (Some(message), _) => RuleStatus::Error(message),
        (None, Some(reason)) => RuleStatus::Unsupported(reason),
        (None, None) => RuleStatus::Runnable,
    };
    if let RuleStatus::Unsupported(reason) = &status {
        problems.push(Problem {
            origin: Origin {
                path: path.to_owned(),
                line: Some(parsed.line_of("type")),
            },
            rule: Some(rule.name.clone()),
            kind: ProblemKind::Unsupported,
            message: reason.clone(),
        });
    }
    let loaded = LoadedRule {
        origin: Origin {
            path: path.to_owned(),
            line: Some(parsed.line),
        },
        query: query.filter(|_| status == RuleStatus::Runnable),
        rule: Arc::new(parsed.rule),
        status,
    };
    (loaded, problems)
}

/// Two rules with one `rule_id` would share alert ids and state: the later one is an error.
pub(super) fn check_duplicate_ids(report: &mut LoadReport) {
    let mut first: HashMap<String, Origin> = HashMap::new();
    for loaded in &mut report.rules {
        let id = loaded.rule.rule_id.clone();
        if id.is_empty() {
            continue;
        }
        match first.get(&id) {
            None => {
                first.insert(id, loaded.origin.clone());
            }
            Some(original) => {
                let message = format!("duplicate rule_id `{id}` (first loaded from {original})");
                report.problems.push(Problem {
                    origin: loaded.origin.clone(),
                    rule: Some(loaded.rule.name.clone()),
                    kind: ProblemKind::Error,
                    message: message.clone(),
                });
                if !matches!(loaded.status, RuleStatus::Error(_)) {
                    loaded.status = RuleStatus::Error(message);
                    loaded.query = None;
                }
            }
        }
    }
}

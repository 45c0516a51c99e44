//! `rule-runner rules`: list, validate, test and export detection rules.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::rule::examples::{Expect, run_examples_with};
use crate::rule::time::humanize_look_back;
use crate::rule::{LoadReport, ProblemKind, RuleStatus, load_paths, ndjson, shipped_rules};

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List every rule found, with its status (runnable, unsupported, error).
    List(ListArgs),
    /// Report every problem (file:line: rule: what); exit 1 if any rule fails to load.
    Validate(PathsArgs),
    /// Run each rule over its example events (`<rule file stem>.events.ndjson`, one
    /// `{"expect": "alert"|"no_alert", "description": ..., "event": {...}}` per line) and report
    /// pass/fail; exit 1 on any failure.
    Test(PathsArgs),
    /// Write the rules in Kibana's export format, ready for Kibana's rule import.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct PathsArgs {
    /// Rule files (*.toml, *.ndjson) or directories (searched recursively). Default: the
    /// built-in rules.
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    #[command(flatten)]
    pub paths: PathsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value_t = ExportFormat::Ndjson)]
    pub format: ExportFormat,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub paths: PathsArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Kibana's rule export NDJSON (one rule per line and a summary line).
    Ndjson,
}

pub fn run(args: RulesArgs) -> anyhow::Result<ExitCode> {
    let result = match args.command {
        RulesCommand::List(args) => list(&args),
        RulesCommand::Validate(args) => validate(&args),
        RulesCommand::Test(args) => test(&args),
        RulesCommand::Export(args) => export(&args),
    };
    // `rules list | head` closes the pipe early: that is the reader's choice, not a failure.
    match result {
        Err(err)
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

/// The rules under `paths`, or the built-in rules when none are given.
pub(crate) fn load(paths: &[PathBuf]) -> LoadReport {
    if paths.is_empty() {
        shipped_rules()
    } else {
        load_paths(paths)
    }
}

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let report = load(&args.paths.paths);
    let rows = list_rows(&report);
    let mut out = std::io::stdout().lock();
    match args.format {
        ListFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
        ListFormat::Table => {
            write_table(&mut out, &rows)?;
            writeln!(out, "\n{}", summary(&report))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

const COLUMNS: [(&str, &str); 10] = [
    ("rule_id", "ID"),
    ("name", "NAME"),
    ("type", "TYPE"),
    ("language", "LANGUAGE"),
    ("severity", "SEVERITY"),
    ("risk_score", "RISK"),
    ("interval", "INTERVAL"),
    ("from", "FROM"),
    ("index", "INDEX"),
    ("status", "STATUS"),
];

/// One JSON object per rule, and one per file that yielded no rule because it is broken.
fn list_rows(report: &LoadReport) -> Vec<Value> {
    let mut rows: Vec<Value> = report
        .rules
        .iter()
        .map(|loaded| {
            let rule = &loaded.rule;
            let reason = match &loaded.status {
                RuleStatus::Runnable => None,
                RuleStatus::Unsupported(why) | RuleStatus::Error(why) => Some(why.clone()),
            };
            let look_back = rule
                .timing()
                .ok()
                .and_then(|t| t.additional_look_back())
                .map(humanize_look_back);
            json!({
                "rule_id": rule.rule_id,
                "name": rule.name,
                "type": rule.rule_type,
                "language": rule.language,
                "severity": rule.severity,
                "risk_score": rule.risk_score,
                "interval": rule.interval,
                "from": rule.from,
                "to": rule.to,
                "additional_look_back": look_back,
                "index": rule.index,
                "enabled": rule.enabled,
                "status": loaded.status.label(),
                "reason": reason,
                "file": loaded.origin.path.display().to_string(),
                "line": loaded.origin.line,
            })
        })
        .collect();
    for problem in report.unloaded() {
        {
            let file_name = problem
                .origin
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            rows.push(json!({
                "rule_id": null,
                "name": problem.rule.clone().or(file_name),
                "status": "error",
                "reason": problem.message,
                "file": problem.origin.path.display().to_string(),
                "line": problem.origin.line,
            }));
        }
    }
    rows
}

fn cell(row: &Value, key: &str) -> String {
    match row.get(key) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

fn write_table(out: &mut impl Write, rows: &[Value]) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| COLUMNS.iter().map(|(key, _)| cell(row, key)).collect())
        .collect();
    let widths: Vec<usize> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (_, title))| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", line(COLUMNS.iter().map(|(_, t)| *t).collect()))?;
    for row in &cells {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn summary(report: &LoadReport) -> String {
    let broken_files = report
        .unloaded()
        .map(|p| &p.origin.path)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    format!(
        "{} rules in {} files: {} runnable, {} unsupported, {} with errors; {} unreadable files or records",
        report.rules.len(),
        report.files,
        report.count("runnable"),
        report.count("unsupported"),
        report.count("error"),
        broken_files,
    )
}

fn validate(args: &PathsArgs) -> anyhow::Result<ExitCode> {
    let report = load(&args.paths);
    let mut out = std::io::stdout().lock();
    let mut problems: Vec<_> = report.problems.iter().collect();
    problems.sort_by(|a, b| a.origin.cmp(&b.origin).then(a.kind.cmp(&b.kind)));
    for problem in problems {
        // Multi-line messages (a KQL caret) are indented under their problem line.
        writeln!(out, "{}", problem.to_string().replace('\n', "\n    "))?;
    }
    writeln!(out, "{}", summary(&report))?;
    let failed = report.has_errors() || report.files == 0;
    let warnings = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Warning)
        .count();
    if warnings > 0 {
        writeln!(out, "{warnings} warnings")?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn test(args: &PathsArgs) -> anyhow::Result<ExitCode> {
    let report = load(&args.paths);
    let tests = run_examples_with(&report, &crate::scan::examples::run_sequence);
    let mut out = std::io::stdout().lock();
    for problem in report.errors() {
        writeln!(out, "ERROR {}", problem.to_string().replace('\n', "\n    "))?;
    }
    for (origin, message) in &tests.problems {
        writeln!(out, "ERROR {origin}: {message}")?;
    }
    for result in &tests.results {
        let verdict = if result.passed { "PASS " } else { "FAIL " };
        let expected = match result.expect {
            Expect::Alert => "alert",
            Expect::NoAlert => "no alert",
            Expect::Alerts => "these alerts",
        };
        let description = result.description.as_deref().unwrap_or("");
        writeln!(
            out,
            "{verdict} {}: {}: expects {expected}: {description}",
            result.origin, result.rule_name
        )?;
        if let Some(detail) = &result.detail {
            writeln!(out, "      {detail}")?;
        }
    }
    for name in &tests.untested {
        writeln!(out, "NOTE  {name}: no examples")?;
    }
    writeln!(
        out,
        "{} examples: {} passed, {} failed; {} rules without examples; {} errors",
        tests.results.len(),
        tests.results.len() - tests.failed(),
        tests.failed(),
        tests.untested.len(),
        tests.problems.len() + report.errors().count(),
    )?;
    let success = tests.is_success() && !report.has_errors() && !tests.results.is_empty();
    Ok(if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let report = load(&args.paths.paths);
    for problem in report.errors() {
        eprintln!("{}", problem.to_string().replace('\n', "\n    "));
    }
    if report.has_errors() {
        anyhow::bail!("not exporting: fix the problems above (see `rule-runner rules validate`)");
    }
    let rules: Vec<_> = report.rules.iter().map(|r| r.rule.as_ref()).collect();
    let text = match args.format {
        ExportFormat::Ndjson => ndjson::export(&rules)?,
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

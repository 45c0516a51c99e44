//! What a person reads: the alert table and the summary, with optional colour; and the
//! machine-readable summary.

use console::Style;
use serde_json::{Value, json};

use super::{RuleCount, ScanReport};
use crate::alert::fields::{display_value, lookup};
use crate::rule::Severity;

/// Styles that are no-ops when colour is off.
struct Palette {
    header: Style,
    dim: Style,
    alert: Style,
    ok: Style,
    warn: Style,
}

impl Palette {
    fn new(color: bool) -> Palette {
        let s = |style: Style| style.force_styling(color);
        Palette {
            header: s(Style::new().bold()),
            dim: s(Style::new().dim()),
            alert: s(Style::new().red().bold()),
            ok: s(Style::new().green()),
            warn: s(Style::new().yellow()),
        }
    }

    fn severity(&self, severity: &str, color: bool) -> Style {
        let style = match severity {
            "critical" => Style::new().magenta().bold(),
            "high" => Style::new().red().bold(),
            "medium" => Style::new().yellow(),
            _ => Style::new().cyan(),
        };
        style.force_styling(color)
    }
}

/// The function (or other resource) an alert is about, for the TARGET column; for a threshold
/// alert, which has no single event to point at, what the group reached.
fn target(doc: &Value) -> String {
    if let Some(result) = lookup(doc, "kibana.alert.threshold_result") {
        return threshold_target(result);
    }
    let request = |k: &str| {
        display_value(
            doc,
            &format!("aws.cloudtrail.flattened.request_parameters.{k}"),
        )
    };
    if let Some(function) = request("functionName") {
        // Lambda accepts a name, a partial ARN or a full ARN: show the name.
        return match function.split_once(":function:") {
            Some((_, rest)) => rest.split(':').next().unwrap_or(rest).to_string(),
            None => function,
        };
    }
    for key in [
        "layerName",
        "bucketName",
        "roleName",
        "userName",
        "groupName",
        "policyArn",
        "name",
        "trailName",
        "secretId",
        "keyId",
        "instanceId",
        "snapshotId",
        "dBInstanceIdentifier",
    ] {
        if let Some(v) = request(key) {
            return v;
        }
    }
    match lookup(doc, "aws.cloudtrail.resources") {
        Some(Value::Array(items)) => items
            .iter()
            .find_map(|r| r.get("arn").and_then(Value::as_str))
            .unwrap_or("-")
            .to_string(),
        _ => "-".into(),
    }
}

/// `20 events, 20 distinct`: the count of a threshold group and, when the rule has a
/// cardinality condition, the distinct values it counted.
fn threshold_target(result: &Value) -> String {
    let count = result.get("count").and_then(Value::as_u64).unwrap_or(0);
    let events = if count == 1 { "event" } else { "events" };
    let distinct = result
        .get("cardinality")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.get("value"))
        .and_then(Value::as_u64);
    match distinct {
        Some(distinct) => format!("{count} {events}, {distinct} distinct"),
        None => format!("{count} {events}"),
    }
}

/// Who acted: the identity ARN without its constant `arn:aws:iam::` / `arn:aws:sts::` head
/// (`111122223333:user/bob`), else the user name, else the user id (all a threshold alert
/// grouped by `user.id` holds).
fn actor(doc: &Value) -> String {
    match display_value(doc, "aws.cloudtrail.user_identity.arn") {
        Some(arn) => ["arn:aws:iam::", "arn:aws:sts::"]
            .iter()
            .find_map(|head| arn.strip_prefix(head))
            .map_or(arn.clone(), str::to_string),
        None => display_value(doc, "user.name")
            .or_else(|| display_value(doc, "user.id"))
            .unwrap_or_else(|| "-".into()),
    }
}

/// Shorten to `max` characters, keeping the end (the informative part of an ARN).
fn keep_tail(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let tail: String = text.chars().skip(n - (max - 1)).collect();
    format!("…{tail}")
}

fn keep_head(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max - 1).collect();
    format!("{head}…")
}

/// One table row per alert, as plain cells.
fn rows(report: &ScanReport) -> std::io::Result<Vec<[String; 7]>> {
    report
        .alerts
        .iter()
        .map(|alert| {
            let alert = alert?;
            let doc = &alert.document;
            let get = |path: &str| display_value(doc, path).unwrap_or_else(|| "-".into());
            let time = get("kibana.alert.original_time");
            Ok([
                time.replace(".000Z", "Z"),
                keep_head(&get("kibana.alert.rule.name"), 48),
                get("kibana.alert.severity"),
                keep_tail(&actor(doc), 52),
                display_value(doc, "source.ip")
                    .or_else(|| display_value(doc, "source.address"))
                    .unwrap_or_else(|| "-".into()),
                get("event.action"),
                keep_tail(&target(doc), 40),
            ])
        })
        .collect()
}

/// The table's columns.
pub const HEADERS: [&str; 7] = [
    "TIME",
    "RULE",
    "SEVERITY",
    "ACTOR",
    "SOURCE IP",
    "ACTION",
    "TARGET",
];

/// The alert table (nothing when there are no alerts).
pub fn table(report: &ScanReport, color: bool) -> std::io::Result<String> {
    let rows = rows(report)?;
    if rows.is_empty() {
        return Ok(String::new());
    }
    let p = Palette::new(color);
    let mut widths = HEADERS.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let mut text = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            text.push_str(&cell);
            if i < last {
                text.push_str("  ");
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let pad = |text: &str, width: usize| {
        format!(
            "{text}{}",
            " ".repeat(width.saturating_sub(text.chars().count()))
        )
    };
    out.push_str(&line(
        HEADERS
            .iter()
            .zip(widths)
            .map(|(h, w)| p.header.apply_to(pad(h, w)).to_string())
            .collect(),
    ));
    for row in &rows {
        let cells = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                let padded = pad(cell, w);
                match i {
                    0 => p.dim.apply_to(padded).to_string(),
                    2 => p.severity(cell, color).apply_to(padded).to_string(),
                    _ => padded,
                }
            })
            .collect();
        out.push_str(&line(cells));
    }
    Ok(out)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!(
        "{} {}",
        thousands(n as u64),
        if n == 1 { one } else { many }
    )
}

fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Critical => 0,
        Severity::High => 1,
        Severity::Medium => 2,
        Severity::Low => 3,
    }
}

/// Rules by alert count (then severity, then name), those without alerts left out.
fn ranked(per_rule: &[RuleCount]) -> Vec<&RuleCount> {
    let mut rules: Vec<&RuleCount> = per_rule.iter().filter(|r| r.alerts > 0).collect();
    rules.sort_by(|a, b| {
        (
            std::cmp::Reverse(a.alerts),
            severity_rank(a.severity),
            &a.name,
        )
            .cmp(&(
                std::cmp::Reverse(b.alerts),
                severity_rank(b.severity),
                &b.name,
            ))
    });
    rules
}

/// Extra facts for the summary the caller knows about (rules left out, digest files).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    pub rules_left_out: usize,
    pub digest_files: usize,
    /// Paths that could not be read at all (not counted in `report.files`).
    pub unreadable_paths: usize,
}

/// The summary block.
pub fn summary(report: &ScanReport, ctx: Context, color: bool) -> String {
    let p = Palette::new(color);
    let mut out = String::new();
    let secs = report.elapsed.as_secs_f64().max(1e-6);
    let mut files = thousands(report.files as u64);
    if ctx.digest_files > 0 {
        files.push_str(&format!(
            " ({} skipped)",
            plural(ctx.digest_files, "digest file", "digest files")
        ));
    }
    let failed = report.files_failed + ctx.unreadable_paths;
    if failed > 0 {
        files.push_str(
            &p.warn
                .apply_to(format!(", {failed} unreadable or cut short"))
                .to_string(),
        );
    }
    let skipped = if report.records_skipped > 0 {
        p.warn
            .apply_to(format!(
                "{} skipped",
                thousands(report.records_skipped as u64)
            ))
            .to_string()
    } else {
        "0 skipped".into()
    };
    let mut rules = thousands(report.per_rule.len() as u64);
    if ctx.rules_left_out > 0 {
        rules.push_str(&format!(" ({} not run, see --verbose)", ctx.rules_left_out));
    }
    let alerts = report.alerts.len();
    let alerts_text = if alerts == 0 {
        p.ok.apply_to("none").to_string()
    } else {
        p.alert.apply_to(thousands(alerts as u64)).to_string()
    };
    out.push_str(&format!("{}\n", p.header.apply_to("Summary")));
    out.push_str(&format!("  files     {files}\n"));
    out.push_str(&format!(
        "  records   {} ({skipped})\n",
        thousands(report.records as u64)
    ));
    out.push_str(&format!("  rules     {rules}\n"));
    let mut extra = Vec::new();
    if report.duplicates > 0 {
        extra.push(format!(
            "{} duplicate matches merged",
            thousands(report.duplicates as u64)
        ));
    }
    let capped: usize = report.per_rule.iter().map(|r| r.capped).sum();
    if capped > 0 {
        extra.push(format!(
            "{} over max_signals left out",
            thousands(capped as u64)
        ));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(" ({})", extra.join(", "))
    };
    out.push_str(&format!("  alerts    {alerts_text}{extra}\n"));
    let ranked = ranked(&report.per_rule);
    let width = ranked
        .iter()
        .map(|r| thousands(r.alerts as u64).len())
        .max()
        .unwrap_or(1);
    for r in ranked {
        let severity = r.severity.as_str();
        out.push_str(&format!(
            "    {:>width$}  {}  {}\n",
            thousands(r.alerts as u64),
            p.severity(severity, color)
                .apply_to(format!("{severity:<8}")),
            r.name
        ));
    }
    out.push_str(&format!(
        "  elapsed   {:.2} s ({} records/s, {:.1} MB/s)\n",
        report.elapsed.as_secs_f64(),
        thousands((report.records as f64 / secs) as u64),
        report.bytes as f64 / 1e6 / secs
    ));
    out
}

/// The summary as JSON (for `--format json`).
pub fn summary_json(report: &ScanReport, ctx: Context) -> Value {
    json!({
        "files": report.files,
        "files_failed": report.files_failed + ctx.unreadable_paths,
        "digest_files": ctx.digest_files,
        "records": report.records,
        "records_skipped": report.records_skipped,
        "digest_records": report.digest_records,
        "bytes": report.bytes,
        "rules": report.per_rule.len(),
        "rules_not_run": ctx.rules_left_out,
        "alerts": report.alerts.len(),
        "duplicates": report.duplicates,
        "per_rule": report.per_rule.iter().map(|r| json!({
            "rule_id": r.rule_id, "name": r.name, "severity": r.severity.as_str(),
            "alerts": r.alerts, "capped": r.capped,
        })).collect::<Vec<_>>(),
        "elapsed_ms": report.elapsed.as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_truncation() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(keep_tail("arn:aws:iam::1:user/bob", 10), "…:user/bob");
        assert_eq!(keep_head("abcdef", 4), "abc…");
    }

    #[test]
    fn a_threshold_alert_shows_its_group_and_count() {
        let doc = json!({
            "user": {"id": "AIDAEXAMPLE"},
            "kibana.alert.threshold_result": {
                "terms": [{"field": "user.id", "value": "AIDAEXAMPLE"}],
                "count": 20,
                "cardinality": [{"field": "aws.cloudtrail.request_parameters", "value": 19}],
            },
        });
        assert_eq!(actor(&doc), "AIDAEXAMPLE");
        assert_eq!(target(&doc), "20 events, 19 distinct");
        let single = json!({"kibana.alert.threshold_result": {"count": 1}});
        assert_eq!(target(&single), "1 event");
    }
}

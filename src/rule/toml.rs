//! Elastic's detection-rules TOML: a `[metadata]` table and a `[rule]` table whose keys are
//! Kibana's rule parameters in snake_case (`[[rule.threat]]`, `[rule.threat.tactic]`, ...).
//! Keys rule-runner does not interpret are kept in [`Rule::extra`](super::Rule::extra).

use std::collections::HashMap;

use serde_json::{Map, Value as Json};
use toml::Value;

use super::parsed::{BODY, ParsedFile, ParsedRule, ProblemKind, rule_from_params};

/// Parse one detection-rules file. Syntax errors, a missing `[rule]` table and fields of the
/// wrong type are reported with their line; the problems name the rule when it is readable.
pub(super) fn parse(text: &str) -> ParsedFile {
    let mut out = ParsedFile::default();
    let document: toml::Table = match text.parse() {
        Ok(document) => document,
        Err(err) => {
            let line = err.span().map(|span| line_at(text, span.start));
            let message = format!("invalid TOML: {}", err.message().trim_end());
            out.problems.push((line, None, ProblemKind::Error, message));
            return out;
        }
    };
    let Some(rule_table) = document.get("rule").and_then(Value::as_table) else {
        let message = "no `[rule]` table: this is not a detection-rules rule file".to_owned();
        out.problems
            .push((Some(1), None, ProblemKind::Error, message));
        return out;
    };
    let name = rule_table
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let field_lines = rule_field_lines(text);
    let header = field_lines.get("").copied().unwrap_or(1);
    let mut params: Map<String, Json> = rule_table
        .iter()
        .map(|(key, value)| (key.clone(), to_json(value)))
        .collect();
    kibana_new_terms(&mut params);
    if let Some(metadata) = document.get("metadata").and_then(Value::as_table) {
        rule_dates(metadata, &mut params);
    }
    match rule_from_params(params) {
        Ok(rule) => out.rules.push(ParsedRule {
            line: header,
            field_lines,
            rule,
        }),
        Err((path, message)) => {
            let field = path.split(['.', '[']).next().unwrap_or("");
            let line = field_lines.get(field).copied().unwrap_or(header);
            let message = if path.is_empty() {
                format!("in `[rule]`: {message}")
            } else {
                format!("`{path}`: {message}")
            };
            out.problems
                .push((Some(line), name, ProblemKind::Error, message));
        }
    }
    out
}

/// `[metadata] creation_date` and `updated_date` (`2024/04/30`) as the rule's `created_at` and
/// `updated_at`, the fields Kibana records for a rule, at midnight UTC.
fn rule_dates(metadata: &toml::Table, params: &mut Map<String, Json>) {
    for (from, to) in [
        ("creation_date", "created_at"),
        ("updated_date", "updated_at"),
    ] {
        let Some(date) = metadata.get(from).and_then(Value::as_str) else {
            continue;
        };
        let Ok(day) = chrono::NaiveDate::parse_from_str(date.trim(), "%Y/%m/%d") else {
            continue;
        };
        params
            .entry(to)
            .or_insert_with(|| Json::String(format!("{}T00:00:00.000Z", day.format("%Y-%m-%d"))));
    }
}

/// detection-rules writes a new-terms rule's parameters as `[rule.new_terms]` with
/// `field`/`value` pairs; Kibana's API (and so its import) takes `new_terms_fields` and
/// `history_window_start`. Rewritten as Elastic's own tooling does when it builds Kibana rules.
fn kibana_new_terms(params: &mut Map<String, Json>) {
    let Some(Json::Object(new_terms)) = params.get("new_terms") else {
        return;
    };
    if new_terms.get("field").and_then(Json::as_str) != Some("new_terms_fields") {
        return;
    }
    let fields = new_terms.get("value").cloned();
    let window = new_terms
        .get("history_window_start")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .find(|entry| entry.get("field").and_then(Json::as_str) == Some("history_window_start"))
        .and_then(|entry| entry.get("value").cloned());
    let (Some(fields), Some(window)) = (fields, window) else {
        return;
    };
    params.remove("new_terms");
    params.insert("new_terms_fields".to_owned(), fields);
    params.insert("history_window_start".to_owned(), window);
}

/// 1-based line of a byte offset.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The line of each key of the `[rule]` table (sub-tables such as `[[rule.threat]]` count as
/// their key), and of the `[rule]` header itself under the empty key.
///
/// A light scan of the text, not a second parser: the `toml` crate's spans do not survive
/// deserializing into a map, and these lines only serve error messages.
fn rule_field_lines(text: &str) -> HashMap<String, usize> {
    let mut lines = HashMap::new();
    let mut in_rule = false;
    let mut open_string: Option<&str> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if let Some(delimiter) = open_string {
            if line.contains(delimiter) {
                open_string = None;
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let header = trimmed.trim_matches(|c| c == '[' || c == ']').trim();
            in_rule = header == "rule";
            if in_rule {
                lines.entry(String::new()).or_insert(number);
            } else if let Some(sub) = header.strip_prefix("rule.") {
                let key = sub.split('.').next().unwrap_or(sub).trim();
                lines.entry(key.to_owned()).or_insert(number);
            }
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            continue;
        };
        let value = value.trim_start();
        // Where the string's text starts: a block string drops the newline after its opening
        // delimiter, so its text starts on the next line.
        let mut body = number;
        for delimiter in ["\"\"\"", "'''"] {
            if let Some(rest) = value.strip_prefix(delimiter) {
                if !rest.contains(delimiter) {
                    open_string = Some(delimiter);
                }
                if rest.trim().is_empty() {
                    body = number + 1;
                }
            }
        }
        if in_rule {
            let key = key.trim().trim_matches('"');
            lines.entry(key.to_owned()).or_insert(number);
            lines.entry(format!("{key}{BODY}")).or_insert(body);
        }
    }
    lines
}

/// TOML to JSON; datetimes become their RFC 3339 text.
pub(super) fn to_json(value: &Value) -> Json {
    match value {
        Value::String(s) => Json::String(s.clone()),
        Value::Integer(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Datetime(d) => Json::String(d.to_string()),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Table(table) => {
            Json::Object(table.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"[metadata]
creation_date = "2024/04/30"

[rule]
author = ["Elastic"]
description = """
Two lines
with key = value inside
"""
name = "Minimal"
risk_score = 21
rule_id = "abc"
severity = "low"
type = "query"
query = '''
event.action: x
'''

[[rule.threat]]
framework = "MITRE ATT&CK"

[rule.threat.tactic]
id = "TA0002"
name = "Execution"
reference = "https://attack.mitre.org/tactics/TA0002/"

[rule.investigation_fields]
field_names = ["a"]
"#;

    #[test]
    fn reads_the_rule_table_with_defaults_and_keeps_unknown_keys() {
        let parsed = parse(MINIMAL);
        assert!(parsed.problems.is_empty());
        let rule = &parsed.rules[0].rule;
        assert_eq!(rule.name, "Minimal");
        assert_eq!(rule.from, "now-6m");
        assert_eq!(rule.interval, "5m");
        assert_eq!(rule.max_signals, 100);
        assert_eq!(rule.threat[0].tactic.id, "TA0002");
        assert!(rule.threat[0].technique.is_empty());
        assert_eq!(rule.extra["investigation_fields"]["field_names"][0], "a");
        assert_eq!(parsed.rules[0].line, 4);
        // Kibana's record of when the rule was made, from the file's metadata.
        assert_eq!(rule.extra["created_at"], "2024-04-30T00:00:00.000Z");
        assert!(!rule.extra.contains_key("updated_at"));
    }

    #[test]
    fn field_lines_skip_multi_line_strings() {
        let lines = rule_field_lines(MINIMAL);
        assert_eq!(lines[""], 4);
        assert_eq!(lines["description"], 6);
        assert!(!lines.contains_key("with key"));
        assert_eq!(lines["name"], 10);
        assert_eq!(lines["query"], 15);
        assert_eq!(lines["query@text"], 16);
        assert_eq!(lines["name@text"], 10);
        assert_eq!(lines["threat"], 19);
        assert_eq!(lines["investigation_fields"], 27);
    }

    #[test]
    fn wrong_type_names_field_and_line() {
        let text = MINIMAL.replace("risk_score = 21", "risk_score = \"high\"");
        let parsed = parse(&text);
        let (line, name, _, message) = &parsed.problems[0];
        assert_eq!(*line, Some(11));
        assert_eq!(name.as_deref(), Some("Minimal"));
        assert!(message.contains("`risk_score`"), "{message}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let parsed = parse("[rule]\nname = \"x\nrisk_score = 1\n");
        let (line, _, _, message) = &parsed.problems[0];
        assert_eq!(*line, Some(2));
        assert!(message.starts_with("invalid TOML"), "{message}");
    }
}

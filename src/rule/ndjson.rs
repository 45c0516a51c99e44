//! Kibana's rule export format (NDJSON): one rule per line, parameters in snake_case as the
//! export API writes them, or camelCase as in alerting saved objects; the closing
//! `{"exported_count":...}` summary line and exception-list lines are not rules.

use serde_json::{Map, Value, json};

use super::model::Rule;
use super::parsed::{ParsedFile, ParsedRule, ProblemKind, rule_from_params};

pub(super) fn parse(text: &str) -> ParsedFile {
    let mut out = ParsedFile::default();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut problem = |name: Option<String>, kind, message: String| {
            out.problems.push((Some(number), name, kind, message));
        };
        let object = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => object,
            Ok(_) => {
                problem(
                    None,
                    ProblemKind::Error,
                    "expected a JSON object (one rule per line)".to_owned(),
                );
                continue;
            }
            Err(err) => {
                // serde_json appends " at line 1 column N": the line is the file's, not 1.
                let text = err.to_string();
                let what = text
                    .rsplit_once(" at line ")
                    .map_or(text.as_str(), |(w, _)| w);
                problem(
                    None,
                    ProblemKind::Error,
                    format!("invalid JSON at column {}: {what}", err.column()),
                );
                continue;
            }
        };
        if object.contains_key("exported_count") {
            continue;
        }
        if object.contains_key("list_id") && !object.contains_key("rule_id") {
            let list = object.get("list_id").and_then(Value::as_str).unwrap_or("?");
            problem(
                None,
                ProblemKind::Warning,
                format!(
                    "exception list `{list}` skipped: rule-runner does not apply exception lists"
                ),
            );
            continue;
        }
        let params = normalize_keys(saved_object_params(object));
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match rule_from_params(params) {
            Ok(rule) => out.rules.push(ParsedRule {
                line: number,
                field_lines: Default::default(),
                rule,
            }),
            Err((path, message)) => {
                let message = if path.is_empty() {
                    message
                } else {
                    format!("`{path}`: {message}")
                };
                problem(name, ProblemKind::Error, message);
            }
        }
    }
    out
}

/// An alerting saved object (`{"type":"alert","attributes":{"params":{...}}}`) carries the
/// rule's parameters in `params` and the common ones beside it; anything else is returned as is.
fn saved_object_params(object: Map<String, Value>) -> Map<String, Value> {
    let is_saved_object = object.get("type").and_then(Value::as_str) == Some("alert");
    let Some(Value::Object(attributes)) = object.get("attributes").filter(|_| is_saved_object)
    else {
        return object;
    };
    let mut params = match attributes.get("params") {
        Some(Value::Object(params)) => params.clone(),
        _ => Map::new(),
    };
    for key in ["name", "tags", "enabled"] {
        if let Some(value) = attributes.get(key) {
            params.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(interval) = attributes.get("schedule").and_then(|s| s.get("interval")) {
        params.insert("interval".to_owned(), interval.clone());
    }
    if !params.contains_key("type") {
        let rule_type = attributes
            .get("alertTypeId")
            .and_then(Value::as_str)
            .and_then(rule_type_of_alert_type);
        if let Some(rule_type) = rule_type {
            params.insert("type".to_owned(), Value::from(rule_type));
        }
    }
    params
}

/// Kibana's alerting rule type ids for Security rules.
fn rule_type_of_alert_type(alert_type_id: &str) -> Option<&'static str> {
    Some(match alert_type_id {
        "siem.queryRule" => "query",
        "siem.savedQueryRule" => "saved_query",
        "siem.eqlRule" => "eql",
        "siem.esqlRule" => "esql",
        "siem.thresholdRule" => "threshold",
        "siem.mlRule" => "machine_learning",
        "siem.newTermsRule" => "new_terms",
        "siem.indicatorRule" => "threat_match",
        _ => return None,
    })
}

/// Top-level keys to snake_case (`riskScore` → `risk_score`); nested objects are left alone.
fn normalize_keys(params: Map<String, Value>) -> Map<String, Value> {
    params
        .into_iter()
        .map(|(key, value)| {
            if !key.bytes().any(|b| b.is_ascii_uppercase()) {
                return (key, value);
            }
            let mut snake = String::with_capacity(key.len() + 4);
            for c in key.chars() {
                if c.is_ascii_uppercase() {
                    snake.push('_');
                    snake.push(c.to_ascii_lowercase());
                } else {
                    snake.push(c);
                }
            }
            (snake, value)
        })
        .collect()
}

/// The rules as a Kibana export: one rule per line, then the summary line Kibana writes.
pub fn export(rules: &[&Rule]) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for rule in rules {
        out.push_str(&serde_json::to_string(rule)?);
        out.push('\n');
    }
    let summary = json!({
        "exported_count": rules.len(),
        "exported_rules_count": rules.len(),
        "missing_rules": [],
        "missing_rules_count": 0,
        "exported_exception_list_count": 0,
        "exported_exception_list_item_count": 0,
        "missing_exception_list_item_count": 0,
        "missing_exception_list_items": [],
        "missing_exception_lists": [],
        "missing_exception_lists_count": 0,
        "exported_action_connector_count": 0,
        "missing_action_connection_count": 0,
        "missing_action_connections": [],
        "excluded_action_connection_count": 0,
        "excluded_action_connections": [],
    });
    out.push_str(&summary.to_string());
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_and_camel_case_lines_and_the_summary() {
        let text = concat!(
            r#"{"rule_id":"a","name":"A","type":"query","language":"kuery","query":"x:1","risk_score":21,"severity":"low","max_signals":50,"id":"6f1c","created_at":"2024-01-01","immutable":false,"risk_score_mapping":[]}"#,
            "\n\n",
            r#"{"ruleId":"b","name":"B","type":"query","query":"y:2","riskScore":47,"severity":"medium","timestampOverride":"event.ingested","maxSignals":10}"#,
            "\n",
            r#"{"exported_count":2,"exported_rules_count":2}"#,
            "\n"
        );
        let parsed = parse(text);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let [a, b] = &parsed.rules[..] else {
            panic!("two rules expected")
        };
        assert_eq!((a.line, a.rule.max_signals), (1, 50));
        // Kibana's bookkeeping is dropped; when the rule was made stays, for its alerts.
        assert_eq!(
            a.rule.extra.keys().collect::<Vec<_>>(),
            ["created_at"],
            "{:?}",
            a.rule.extra
        );
        assert_eq!(b.line, 3);
        assert_eq!(b.rule.rule_id, "b");
        assert_eq!(b.rule.timestamp_override.as_deref(), Some("event.ingested"));
        assert_eq!(b.rule.max_signals, 10);
    }

    #[test]
    fn saved_objects_carry_params_in_attributes() {
        let line = r#"{"type":"alert","id":"x","attributes":{"name":"Saved","alertTypeId":"siem.queryRule","enabled":false,"tags":["t"],"schedule":{"interval":"10m"},"params":{"ruleId":"s","riskScore":73,"severity":"high","query":"a:b","language":"kuery","from":"now-60m"}}}"#;
        let parsed = parse(line);
        let rule = &parsed.rules[0].rule;
        assert_eq!(rule.name, "Saved");
        assert_eq!(rule.rule_type, "query");
        assert_eq!(
            (rule.interval.as_str(), rule.from.as_str()),
            ("10m", "now-60m")
        );
        assert!(!rule.enabled);
        assert_eq!(rule.tags, ["t"]);
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let text = "{\"rule_id\":\"a\"\n[1]\n{\"rule_id\":\"a\",\"name\":\"N\",\"type\":\"query\",\"risk_score\":\"x\",\"severity\":\"low\"}\n{\"list_id\":\"l\",\"type\":\"detection\"}\n";
        let parsed = parse(text);
        let lines: Vec<_> = parsed.problems.iter().map(|p| p.0).collect();
        assert_eq!(lines, [Some(1), Some(2), Some(3), Some(4)]);
        assert!(parsed.problems[0].3.starts_with("invalid JSON"));
        assert_eq!(parsed.problems[2].1.as_deref(), Some("N"));
        assert!(parsed.problems[2].3.contains("`risk_score`"));
        assert_eq!(parsed.problems[3].2, ProblemKind::Warning);
    }
}

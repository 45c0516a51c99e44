//! The alerts mapping accepts the alerts the engine builds: every field the mapping names
//! gets a value of a type Elasticsearch would index there. A mismatch would make the cluster
//! refuse every alert (all dead-lettered), which no mock would notice.

use chrono::{TimeZone, Utc};
use rule_runner::alert::{AlertBuilder, AlertEvent, RunContext};
use rule_runner::elasticsearch::templates::IndexKind;
use serde_json::{Map, Value};

use super::source::{LAYER_ADDED, PUBLIC_INVOCATION, shipped};
use crate::util::repo;

/// Where `value` (at `path`) does not fit `mapping` (a field mapping, or `None` when
/// unmapped, i.e. dynamic).
fn conflicts(value: &Value, mapping: Option<&Value>, path: &str, out: &mut Vec<String>) {
    let Some(mapping) = mapping else {
        return;
    };
    if let Value::Array(items) = value {
        for item in items {
            conflicts(item, Some(mapping), path, out);
        }
        return;
    }
    if value.is_null() {
        return;
    }
    if let Some(properties) = mapping.get("properties") {
        match value.as_object() {
            Some(object) => check_object(object, properties, path, out),
            None => out.push(format!("{path}: mapped as an object, got {value}")),
        }
        return;
    }
    let ty = mapping
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let ok = match ty {
        "keyword" => value.is_string() || value.is_number() || value.is_boolean(),
        "match_only_text" | "text" | "ip" => value.is_string(),
        "date" => {
            value
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
                || value.is_number()
        }
        "long" => value.is_i64() || value.is_u64(),
        "float" => value.is_number(),
        "boolean" => value.is_boolean(),
        "flattened" => value.is_object(),
        "object" => mapping.get("enabled") == Some(&Value::Bool(false)) || value.is_object(),
        _ => true,
    };
    if !ok {
        out.push(format!("{path}: mapped as {ty}, got {value}"));
    }
}

/// Check an object's keys, dotted ones (`"kibana.alert.uuid"`) walked segment by segment.
fn check_object(
    object: &Map<String, Value>,
    properties: &Value,
    path: &str,
    out: &mut Vec<String>,
) {
    for (key, value) in object {
        let mut segments = key.split('.');
        let first = segments.next().unwrap_or_default();
        let mut mapping = properties.get(first);
        let mut full = if path.is_empty() {
            first.to_string()
        } else {
            format!("{path}.{first}")
        };
        for segment in segments {
            // A flattened or disabled field swallows whatever lies below it.
            if mapping.and_then(|m| m.get("properties")).is_none() {
                break;
            }
            mapping = mapping.and_then(|m| m["properties"].get(segment));
            full.push('.');
            full.push_str(segment);
        }
        conflicts(value, mapping, &full, out);
    }
}

fn example_events(file: &str) -> Vec<Value> {
    std::fs::read_to_string(repo(&format!("rules/aws/{file}.events.ndjson")))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .collect()
}

#[test]
fn the_alerts_mapping_fits_the_alerts_of_both_shipped_rules() {
    let template = IndexKind::Alerts.template_for("rule-runner-alerts");
    let properties = &template["template"]["mappings"]["properties"];
    let ctx = RunContext::scheduled(Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 3).unwrap());
    let mut checked = 0;
    for (rule_id, file) in [
        (
            LAYER_ADDED,
            "execution_lambda_external_layer_added_to_function",
        ),
        (
            PUBLIC_INVOCATION,
            "persistence_lambda_backdoor_invoke_function_for_any_principal",
        ),
    ] {
        let builder = AlertBuilder::new(&shipped(rule_id), &ctx);
        for (n, event) in example_events(file).iter().enumerate() {
            let id = format!("e{n}");
            let alert = builder.build(&AlertEvent {
                index: ".ds-logs-aws.cloudtrail-default-2025.01.01-000001",
                id: &id,
                source: event,
                timestamp: Utc.with_ymd_and_hms(2025, 1, 1, 11, 47, 5).unwrap(),
            });
            let mut found = Vec::new();
            check_object(
                alert.document.as_object().unwrap(),
                properties,
                "",
                &mut found,
            );
            assert!(found.is_empty(), "{rule_id} example {n}: {found:#?}");
            checked += 1;
        }
    }
    assert!(checked >= 2, "the shipped rules come with example events");
}

#[test]
fn the_checker_finds_conflicts() {
    let template = IndexKind::Alerts.template_for("a");
    let properties = &template["template"]["mappings"]["properties"];
    let doc = serde_json::json!({
        "kibana.alert.depth": "one",
        "kibana": {"alert": {"original_time": "yesterday"}},
        "kibana.alert.rule.parameters": {"anything": {"goes": 1}},
        "source": {"ip": 7}
    });
    let mut found = Vec::new();
    check_object(doc.as_object().unwrap(), properties, "", &mut found);
    assert_eq!(found.len(), 3, "{found:#?}");
}

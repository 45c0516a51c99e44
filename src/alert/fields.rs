//! Field access on event documents.
//!
//! Elasticsearch treats `{"event": {"id": "x"}}` and `{"event.id": "x"}` as the same field, and
//! real documents mix both shapes (alerts are the prime example), so every lookup here accepts
//! either form at every level.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};

/// The value at dotted `path`, whether the document nests it, flattens it, or mixes both.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(doc);
    }
    let object = doc.as_object()?;
    if let Some(value) = object.get(path) {
        return Some(value);
    }
    // Try every split point: `a.b.c` may be stored as `a` → `b.c`, `a.b` → `c`, ...
    path.match_indices('.').find_map(|(dot, _)| {
        let child = object.get(&path[..dot])?;
        lookup(child, &path[dot + 1..])
    })
}

/// A field rendered as Kibana's reason formatter shows it, or `None` when Kibana treats it as
/// absent: missing, `null`, an empty string or array, or exactly `["-"]` (a bare `"-"` too:
/// it is what `["-"]` looks like in `_source`, where Kibana reads through `fields`).
pub fn display_value(doc: &Value, path: &str) -> Option<String> {
    let value = lookup(doc, path)?;
    let rendered = match value {
        Value::String(dash) if dash == "-" => return None,
        Value::Array(items) => {
            if items.len() == 1 && items[0].as_str() == Some("-") {
                return None;
            }
            let parts: Vec<String> = items.iter().filter_map(scalar_text).collect();
            parts.join(", ")
        }
        other => scalar_text(other)?,
    };
    (!rendered.is_empty()).then_some(rendered)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Copy every leaf under the object field `root` (nested `root: {...}` and flat `root.x` keys
/// alike) into `out` as flat keys `<prefix>.<path below root>`. Arrays count as leaves.
pub fn copy_leaves(
    source: &Map<String, Value>,
    root: &str,
    prefix: &str,
    out: &mut Map<String, Value>,
) {
    for (key, value) in source {
        let below = if key == root {
            ""
        } else if let Some(rest) = key.strip_prefix(root).and_then(|r| r.strip_prefix('.')) {
            rest
        } else {
            continue;
        };
        copy_value(value, below, prefix, out);
    }
}

fn copy_value(value: &Value, path: &str, prefix: &str, out: &mut Map<String, Value>) {
    match value {
        Value::Object(children) => {
            for (key, child) in children {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                copy_value(child, &child_path, prefix, out);
            }
        }
        leaf if !path.is_empty() => {
            out.insert(format!("{prefix}.{path}"), leaf.clone());
        }
        // A bare scalar at the root (`"event": "x"`) has no sub-path to name; ECS never does this.
        _ => {}
    }
}

/// An event time as Elasticsearch's `strict_date_optional_time` (or epoch milliseconds) reads
/// it; times without a zone are UTC, as Elasticsearch takes them. A one-element array is
/// unwrapped (the `fields` section of a search hit always returns arrays).
pub fn parse_timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => parse_timestamp_text(text),
        Value::Number(n) => Utc.timestamp_millis_opt(n.as_i64()?).single(),
        Value::Array(items) if items.len() == 1 => parse_timestamp(&items[0]),
        _ => None,
    }
}

fn parse_timestamp_text(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M") {
        return Some(t.and_utc());
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

/// A time as Kibana writes it: ISO 8601 in UTC with milliseconds, e.g. `2025-01-01T12:00:03.512Z`.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_accepts_nested_flat_and_mixed_shapes() {
        let doc = json!({
            "event": {"id": "nested"},
            "source.ip": "10.0.0.1",
            "aws": {"cloudtrail.user_identity": {"arn": "arn:x"}}
        });
        assert_eq!(lookup(&doc, "event.id"), Some(&json!("nested")));
        assert_eq!(lookup(&doc, "source.ip"), Some(&json!("10.0.0.1")));
        assert_eq!(
            lookup(&doc, "aws.cloudtrail.user_identity.arn"),
            Some(&json!("arn:x"))
        );
        assert_eq!(lookup(&doc, "event.missing"), None);
        assert_eq!(lookup(&doc, "source.ip.more"), None);
    }

    #[test]
    fn display_value_treats_dash_and_empty_as_absent() {
        let doc = json!({"a": ["-"], "b": "", "c": [], "d": ["x", "y"], "e": 443, "f": null});
        assert_eq!(display_value(&doc, "a"), None);
        assert_eq!(display_value(&doc, "b"), None);
        assert_eq!(display_value(&doc, "c"), None);
        assert_eq!(display_value(&doc, "d").as_deref(), Some("x, y"));
        assert_eq!(display_value(&doc, "e").as_deref(), Some("443"));
        assert_eq!(display_value(&doc, "f"), None);
    }

    #[test]
    fn timestamps_parse_in_the_forms_elasticsearch_accepts() {
        let expected = Utc.with_ymd_and_hms(2025, 1, 1, 11, 42, 17).unwrap();
        for form in [
            json!("2025-01-01T11:42:17Z"),
            json!("2025-01-01T11:42:17.000Z"),
            json!("2025-01-01T12:42:17+01:00"),
            json!("2025-01-01T11:42:17"),
            json!(["2025-01-01T11:42:17Z"]),
            json!(1_735_731_737_000_i64),
        ] {
            assert_eq!(parse_timestamp(&form), Some(expected), "{form}");
        }
        assert_eq!(
            parse_timestamp(&json!("2025-01-01")),
            Some(Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap())
        );
        assert_eq!(parse_timestamp(&json!("yesterday")), None);
        assert_eq!(format_timestamp(expected), "2025-01-01T11:42:17.000Z");
    }

    #[test]
    fn copy_leaves_flattens_nested_and_flat_keys() {
        let source = json!({
            "event": {"action": "A", "type": ["info"], "x": {"y": 1}},
            "event.kind": "event",
            "eventual": "not event"
        });
        let mut out = Map::new();
        copy_leaves(source.as_object().unwrap(), "event", "p", &mut out);
        assert_eq!(
            Value::Object(out),
            json!({"p.action": "A", "p.type": ["info"], "p.x.y": 1, "p.kind": "event"})
        );
    }
}

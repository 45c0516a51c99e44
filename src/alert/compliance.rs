//! Source values an ECS mapping cannot take, removed before they reach an alert, as Kibana's
//! detection engine removes them (`stripNonEcsFields` / `traverseAndMutateDoc` in its
//! `rule_types/utils/`): otherwise one such value makes the alerts index refuse the whole
//! alert. The values are checked against ECS's types ([`FieldTypes::ecs_cloudtrail`], its
//! `aws.*` fields left out: they are the integration's, not ECS):
//!
//! - `ip`: an IPv4 or IPv6 address as Elasticsearch parses it (`06.237.252.245`, with a
//!   leading zero, is not one: anonymised trails carry such values);
//! - numbers: a JSON number or a string that parses as one;
//! - `boolean`: `true`, `false` or their strings;
//! - `date`: a number (epoch milliseconds) or a string that starts like a date;
//! - string types (`keyword`, `wildcard`, `text`, ...): anything but an object;
//! - a field ECS maps as an object (`user`, `source.geo`): an object, never a concrete value.
//!
//! In an array only the offending elements go. Kibana logs what it removed; rule-runner also
//! keeps the list in the alert, under `rule_runner.removed_fields`, so an analyst who misses a
//! value sees why.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::kql::FieldTypes;

/// The field that lists what was removed.
pub const REMOVED_FIELDS: &str = "rule_runner.removed_fields";

/// What ECS says a field holds, for the purpose of this check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ip,
    Number,
    Boolean,
    Date,
    /// Any concrete value or array of them (strings, and types this check does not judge).
    Concrete,
    /// An object: ECS maps sub-fields below this name.
    Object,
}

fn expect(path: &str) -> Option<Expect> {
    if path.starts_with("aws.") {
        return None;
    }
    if let Some(info) = FieldTypes::ecs_cloudtrail().get(path) {
        return Some(if info.is_ip() {
            Expect::Ip
        } else if info.is_numeric() {
            Expect::Number
        } else if info.es_types.iter().all(|t| t == "boolean") {
            Expect::Boolean
        } else if info.is_date() {
            Expect::Date
        } else if info.es_types.iter().all(|t| t == "object" || t == "nested") {
            Expect::Object
        } else {
            Expect::Concrete
        });
    }
    object_paths().contains(path).then_some(Expect::Object)
}

/// Every proper prefix of an ECS field name (`source`, `source.geo`): objects in the mapping.
fn object_paths() -> &'static HashSet<String> {
    static PATHS: OnceLock<HashSet<String>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let mut paths = HashSet::new();
        for info in FieldTypes::ecs_cloudtrail().iter() {
            if info.name.starts_with("aws.") {
                continue;
            }
            let mut end = 0;
            while let Some(dot) = info.name[end..].find('.') {
                end += dot;
                let prefix = &info.name[..end];
                // `user_agent.original.text` is a multi-field: its parent stays a leaf.
                if FieldTypes::ecs_cloudtrail().get(prefix).is_none() {
                    paths.insert(prefix.to_string());
                }
                end += 1;
            }
        }
        paths
    })
}

/// Remove from `source` the values ECS's mapping would refuse; the removed field paths, in
/// document order.
pub fn strip_non_ecs(source: &mut Map<String, Value>) -> Vec<String> {
    let mut removed = Vec::new();
    strip_object(source, "", &mut removed);
    removed
}

fn strip_object(object: &mut Map<String, Value>, prefix: &str, removed: &mut Vec<String>) {
    object.retain(|key, value| {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        keep(value, &path, removed)
    });
}

/// Whether `value` at `path` stays (after removing what inside it must go).
fn keep(value: &mut Value, path: &str, removed: &mut Vec<String>) -> bool {
    let Some(expected) = expect(path) else {
        // Not an ECS field: its sub-fields may still be (`source` under an unknown root is
        // not, but a dotted key's children are looked up by their full path).
        if let Value::Object(children) = value {
            strip_object(children, path, removed);
        }
        return true;
    };
    match value {
        Value::Null => true,
        Value::Array(items) => {
            let before = items.len();
            items.retain_mut(|item| match item {
                Value::Array(_) => true,
                item => fits(item, expected, path, removed),
            });
            if items.len() < before {
                removed.push(path.to_string());
            }
            !items.is_empty() || before == 0
        }
        item => {
            let fits = fits(item, expected, path, removed);
            if !fits {
                removed.push(path.to_string());
            }
            fits
        }
    }
}

fn fits(value: &mut Value, expected: Expect, path: &str, removed: &mut Vec<String>) -> bool {
    match (expected, value) {
        (_, Value::Null) => true,
        (Expect::Object, Value::Object(children)) => {
            strip_object(children, path, removed);
            true
        }
        (Expect::Object, _) => false,
        (_, Value::Object(_)) => false,
        (Expect::Ip, Value::String(text)) => text.parse::<IpAddr>().is_ok(),
        (Expect::Ip, _) => false,
        (Expect::Number, Value::Number(_)) => true,
        (Expect::Number, Value::String(text)) => text.trim().parse::<f64>().is_ok(),
        (Expect::Number, _) => false,
        (Expect::Boolean, Value::Bool(_)) => true,
        (Expect::Boolean, Value::String(text)) => matches!(text.as_str(), "true" | "false" | ""),
        (Expect::Boolean, _) => false,
        (Expect::Date, Value::Number(_)) => true,
        (Expect::Date, Value::String(text)) => looks_like_a_date(text),
        (Expect::Date, _) => false,
        (Expect::Concrete, _) => true,
    }
}

/// A date string as Elasticsearch's default `strict_date_optional_time||epoch_millis`
/// takes it starts with a four-digit year or is all digits.
fn looks_like_a_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    digits == bytes.len() && digits > 0
        || (digits == 4 && bytes.get(4).is_none_or(|&b| b == b'-' || b == b'T'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strip(mut doc: Value) -> (Value, Vec<String>) {
        let removed = strip_non_ecs(doc.as_object_mut().unwrap());
        (doc, removed)
    }

    #[test]
    fn an_address_elasticsearch_cannot_parse_goes_and_the_rest_stays() {
        let (doc, removed) = strip(json!({
            "source": {"ip": "06.237.252.245", "address": "06.237.252.245", "geo": {"country_iso_code": "FR"}},
            "related": {"ip": ["10.0.0.1", "035.249.253.232"]},
            "event": {"action": "AddPermission"}
        }));
        assert_eq!(removed, ["source.ip", "related.ip"]);
        assert_eq!(
            doc,
            json!({
                "source": {"address": "06.237.252.245", "geo": {"country_iso_code": "FR"}},
                "related": {"ip": ["10.0.0.1"]},
                "event": {"action": "AddPermission"}
            })
        );
    }

    #[test]
    fn valid_values_of_each_type_stay() {
        let doc = json!({
            "source": {"ip": "2001:db8::1", "port": 443, "bytes": "120"},
            "event": {"created": "2024-01-01T00:00:00Z", "start": 1700000000000_i64, "duration": 5},
            "user": {"name": "alice", "roles": ["a", "b"]},
            "aws": {"cloudtrail": {"anything": {"goes": true}}},
            "unknown": {"ip": "not checked"}
        });
        let (kept, removed) = strip(doc.clone());
        assert!(removed.is_empty(), "{removed:?}");
        assert_eq!(kept, doc);
    }

    #[test]
    fn wrong_shapes_go() {
        let (doc, removed) = strip(json!({
            "user": "alice",
            "host": {"name": {"first": "x"}},
            "source": {"port": "https", "geo": "FR"},
            "event": {"created": "yesterday", "kind": "event"},
        }));
        assert_eq!(
            removed,
            [
                "user",
                "host.name",
                "source.port",
                "source.geo",
                "event.created"
            ]
        );
        assert_eq!(
            doc,
            json!({"host": {}, "source": {}, "event": {"kind": "event"}})
        );
    }

    #[test]
    fn dotted_keys_are_checked_by_their_full_path() {
        let (doc, removed) = strip(json!({"source.ip": "1.2.3.04", "source.port": 22}));
        assert_eq!(removed, ["source.ip"]);
        assert_eq!(doc, json!({"source.port": 22}));
    }
}

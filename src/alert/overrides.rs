//! A rule's per-event overrides, applied as Kibana applies them when it builds an alert:
//! `severity_mapping`, `risk_score_mapping` and `rule_name_override` (Kibana's
//! `rule_types/utils/mappings/build_{severity,risk_score,rule_name}_from_mapping.ts`).
//!
//! - Severity: the mappings are tried from low to high severity and the last that holds
//!   wins, so the highest matching severity is taken. A mapping holds when one of the event's
//!   values at `field` equals `value`: event strings and safe integers compare as text, other
//!   values (floats, booleans, objects) never match. `event.severity` is the exception: it is
//!   a number in ECS, so only whole numbers count and the mapping's value is read as one
//!   (its integer part).
//! - Risk score: only the first mapping's `field` is read; of its values, the numbers and
//!   numeric strings from 0 to 100 count, and the largest is the score.
//! - Rule name: the event's value at `rule_name_override` when it is a string.
//!
//! Anything else leaves the rule's own value.

use serde_json::{Number, Value};

use super::fields::lookup;
use crate::rule::{Rule, Severity};

/// The parts of a rule that can change an alert's severity, risk score and rule name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `(field, value, severity)`, sorted from low to high severity (stable for ties).
    severity: Vec<(String, String, Severity)>,
    risk_score_field: Option<String>,
    rule_name_field: Option<String>,
}

/// What the overrides give for one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Overridden {
    pub severity: Severity,
    pub risk_score: Number,
    pub rule_name: String,
}

impl Overrides {
    /// The overrides of `rule`; entries Kibana would not accept (an unknown severity, no
    /// field) are left out, as its schema would have refused them.
    pub fn of(rule: &Rule) -> Overrides {
        let text =
            |item: &Value, key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
        let mut severity: Vec<(String, String, Severity)> = rule
            .extra
            .get("severity_mapping")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let level = text(item, "severity")?.parse::<Severity>().ok()?;
                Some((text(item, "field")?, text(item, "value")?, level))
            })
            .collect();
        severity.sort_by_key(|(_, _, level)| *level);
        let risk_score_field = rule
            .extra
            .get("risk_score_mapping")
            .and_then(Value::as_array)
            .and_then(|items| items.first())
            .and_then(|item| text(item, "field"))
            .filter(|f| !f.is_empty());
        let rule_name_field = rule
            .extra
            .get("rule_name_override")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
            .map(str::to_owned);
        Overrides {
            severity,
            risk_score_field,
            rule_name_field,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.severity.is_empty()
            && self.risk_score_field.is_none()
            && self.rule_name_field.is_none()
    }

    /// Severity, risk score and rule name of the alert on `source`.
    pub fn apply(
        &self,
        source: &Value,
        severity: Severity,
        risk_score: u32,
        rule_name: &str,
    ) -> Overridden {
        let severity = self
            .severity
            .iter()
            .filter(|(field, value, _)| severity_matches(source, field, value))
            .map(|(_, _, level)| *level)
            .next_back()
            .unwrap_or(severity);
        let risk_score = self
            .risk_score_field
            .as_deref()
            .and_then(|field| highest_score(lookup(source, field)?))
            .unwrap_or_else(|| Number::from(risk_score));
        let rule_name = self
            .rule_name_field
            .as_deref()
            .and_then(|field| lookup(source, field)?.as_str())
            .unwrap_or(rule_name)
            .to_owned();
        Overridden {
            severity,
            risk_score,
            rule_name,
        }
    }
}

const ECS_SEVERITY: &str = "event.severity";

fn values(value: &Value) -> &[Value] {
    match value {
        Value::Array(items) => items,
        one => std::slice::from_ref(one),
    }
}

/// JavaScript's `Number.isSafeInteger`: a whole number within ±(2^53 − 1).
fn safe_integer(n: &Number) -> Option<i64> {
    const MAX: f64 = 9_007_199_254_740_991.0;
    if let Some(i) = n.as_i64() {
        return (i.unsigned_abs() as f64 <= MAX).then_some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() <= MAX).then_some(f as i64)
}

fn severity_matches(source: &Value, field: &str, value: &str) -> bool {
    let Some(found) = lookup(source, field) else {
        return false;
    };
    if field == ECS_SEVERITY {
        let Some(wanted) = js_number(value).filter(|f| f.is_finite()).map(f64::floor) else {
            return false;
        };
        return values(found).iter().any(|v| match v {
            Value::Number(n) => safe_integer(n).is_some_and(|i| i as f64 == wanted),
            _ => false,
        });
    }
    values(found).iter().any(|v| match v {
        Value::String(s) => s == value,
        Value::Number(n) => safe_integer(n).is_some_and(|i| i.to_string() == value),
        _ => false,
    })
}

/// The largest of `found`'s values that is a score (a number, or numeric text, from 0 to 100).
fn highest_score(found: &Value) -> Option<Number> {
    values(found)
        .iter()
        .filter_map(|v| match v {
            Value::Number(n) => n.as_f64().map(|f| (f, n.clone())),
            Value::String(s) => js_number(s).and_then(|f| Some((f, number(f)?))),
            _ => None,
        })
        .filter(|(f, _)| f.is_finite() && (0.0..=100.0).contains(f))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

fn number(f: f64) -> Option<Number> {
    if f.fract() == 0.0 {
        Some(Number::from(f as i64))
    } else {
        Number::from_f64(f)
    }
}

/// JavaScript's `Number(text)` for the forms an event field holds: surrounding white space
/// ignored, empty text is 0, decimal and exponent forms, `0x`/`0o`/`0b` integers.
fn js_number(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() {
        return Some(0.0);
    }
    let radix = |prefix: [&str; 2], base: u32| {
        prefix
            .iter()
            .find_map(|p| t.strip_prefix(p))
            .map(|digits| u64::from_str_radix(digits, base).ok().map(|n| n as f64))
    };
    if let Some(n) = radix(["0x", "0X"], 16)
        .or_else(|| radix(["0o", "0O"], 8))
        .or_else(|| radix(["0b", "0B"], 2))
    {
        return n;
    }
    // Rust also reads `inf` and `nan`, which JavaScript does not; neither is a score anyway.
    if t.bytes()
        .any(|b| b.is_ascii_alphabetic() && !matches!(b, b'e' | b'E'))
    {
        return None;
    }
    t.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(extra: Value) -> Rule {
        let mut rule: Rule = serde_json::from_value(json!({
            "rule_id": "r", "name": "Rule", "type": "query", "language": "kuery", "query": "*",
            "risk_score": 21, "severity": "low"
        }))
        .expect("a rule");
        if let Value::Object(extra) = extra {
            rule.extra.extend(extra);
        }
        rule
    }

    fn apply(extra: Value, source: Value) -> Overridden {
        Overrides::of(&rule(extra)).apply(&source, Severity::Low, 21, "Rule")
    }

    #[test]
    fn the_highest_matching_severity_wins_whatever_the_order() {
        let extra = json!({"severity_mapping": [
            {"field": "user.name", "operator": "equals", "value": "root", "severity": "critical"},
            {"field": "event.outcome", "operator": "equals", "value": "success", "severity": "medium"},
            {"field": "event.outcome", "operator": "equals", "value": "success", "severity": "high"}
        ]});
        let both = apply(
            extra.clone(),
            json!({"event": {"outcome": "success"}, "user": {"name": ["x", "root"]}}),
        );
        assert_eq!(both.severity, Severity::Critical);
        let one = apply(extra.clone(), json!({"event": {"outcome": "success"}}));
        assert_eq!(one.severity, Severity::High);
        let none = apply(extra, json!({"event": {"outcome": "failure"}}));
        assert_eq!(none.severity, Severity::Low);
    }

    #[test]
    fn severity_values_compare_as_text_and_event_severity_as_a_number() {
        let on = |field: &str, value: &str, source: Value| {
            apply(
                json!({"severity_mapping": [{"field": field, "operator": "equals", "value": value, "severity": "high"}]}),
                source,
            )
            .severity
        };
        assert_eq!(on("code", "5", json!({"code": 5})), Severity::High);
        assert_eq!(on("code", "5", json!({"code": "5"})), Severity::High);
        assert_eq!(
            on("code", "5.5", json!({"code": 5.5})),
            Severity::Low,
            "floats never match"
        );
        assert_eq!(
            on("flag", "true", json!({"flag": true})),
            Severity::Low,
            "booleans never match"
        );
        assert_eq!(
            on("event.severity", "73.9", json!({"event": {"severity": 73}})),
            Severity::High
        );
        assert_eq!(
            on("event.severity", "73", json!({"event": {"severity": "73"}})),
            Severity::Low
        );
    }

    #[test]
    fn the_risk_score_is_the_largest_valid_value_of_the_first_mapping() {
        let extra = json!({"risk_score_mapping": [
            {"field": "risk", "operator": "equals", "value": ""},
            {"field": "other", "operator": "equals", "value": ""}
        ]});
        let score = |source: Value| apply(extra.clone(), source).risk_score;
        assert_eq!(
            score(json!({"risk": [12, "88", 101, -1, "x"]})),
            Number::from(88)
        );
        assert_eq!(score(json!({"risk": 47.5})).as_f64(), Some(47.5));
        assert_eq!(
            score(json!({"risk": " "})),
            Number::from(0),
            "JavaScript reads blank text as 0"
        );
        assert_eq!(score(json!({"risk": "0x10"})), Number::from(16));
        assert_eq!(score(json!({"risk": "Infinity"})), Number::from(21));
        assert_eq!(
            score(json!({"other": 90})),
            Number::from(21),
            "only the first mapping counts"
        );
        assert_eq!(score(json!({})), Number::from(21));
    }

    #[test]
    fn the_rule_name_comes_from_a_string_field() {
        let extra = json!({"rule_name_override": "message"});
        assert_eq!(
            apply(extra.clone(), json!({"message": "Custom"})).rule_name,
            "Custom"
        );
        assert_eq!(
            apply(extra.clone(), json!({"message": 5})).rule_name,
            "Rule"
        );
        assert_eq!(apply(extra, json!({})).rule_name, "Rule");
        assert!(Overrides::of(&rule(json!({}))).is_empty());
    }
}

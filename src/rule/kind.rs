//! What a rule does with the events its query matches: alert on each (`query`), on the
//! terms first seen in the window (`new_terms`), on groups reaching a count (`threshold`),
//! or on each event or sequence of events its EQL statement matches (`eql`).
//! The type-specific parameters are read here, once, from the rule's kept parameters.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::model::Rule;
use super::time::DateMath;
use crate::threshold::{Cardinality, Threshold};

/// A runnable rule's type with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    Query,
    NewTerms(NewTerms),
    Threshold(Threshold),
    Eql(Eql),
}

/// An `eql` rule's statement and the field its categories are read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Eql {
    pub statement: crate::eql::Statement,
    /// `event_category_override`, else `event.category`.
    pub event_category_field: String,
}

impl Eql {
    pub fn options(&self) -> crate::eql::MatchOptions {
        crate::eql::MatchOptions {
            event_category_field: self.event_category_field.clone(),
        }
    }

    /// Whether the statement joins events (a sequence or a sample).
    pub fn joins(&self) -> bool {
        self.statement.body.joins()
    }

    /// The matcher of a sequence or sample, as Elasticsearch runs it for Kibana (one sample
    /// per key tuple, Elasticsearch's default, since Kibana sets no `max_samples_per_key`);
    /// `None` for an event query.
    pub fn join_matcher(&self) -> Option<Result<crate::eql::JoinMatcher, regex::Error>> {
        crate::eql::JoinMatcher::new(&self.statement.body, &self.options(), 1)
    }
}

/// `new_terms_fields` and `history_window_start` of a `new_terms` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTerms {
    pub fields: Vec<String>,
    pub history_window_start: DateMath,
}

impl NewTerms {
    /// Where the history window starts for a run that ends at `to` (Kibana resolves
    /// `history_window_start` against the window's end).
    pub fn history_start(&self, to: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        self.history_window_start
            .resolve(to)
            .map_err(|error| format!("history_window_start: {error}"))
    }
}

impl Rule {
    /// The rule's kind, or why its type-specific parameters cannot be run.
    pub fn kind(&self) -> Result<RuleKind, String> {
        match self.rule_type.as_str() {
            "query" => Ok(RuleKind::Query),
            "new_terms" => self.new_terms().map(RuleKind::NewTerms),
            "threshold" => self.threshold().map(RuleKind::Threshold),
            "eql" => self
                .eql_statement()
                .map(|statement| {
                    RuleKind::Eql(Eql {
                        statement,
                        event_category_field: self
                            .extra
                            .get("event_category_override")
                            .and_then(Value::as_str)
                            .unwrap_or("event.category")
                            .to_owned(),
                    })
                })
                .map_err(|error| error.to_string()),
            other => Err(format!("rule type `{other}` is not run by rule-runner")),
        }
    }

    /// The rule's EQL statement, or the parse error rendered with a caret.
    pub fn eql_statement(&self) -> Result<crate::eql::Statement, super::MatcherError> {
        let text = self
            .query
            .as_deref()
            .ok_or(super::MatcherError::MissingQuery)?;
        crate::eql::parse_statement(text).map_err(|error| super::MatcherError::Eql {
            rendered: error.render(text),
            error,
        })
    }

    fn new_terms(&self) -> Result<NewTerms, String> {
        let fields = match self.extra.get("new_terms_fields") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or("new_terms_fields: every entry must be a field name (a string)")?,
            Some(_) => return Err("new_terms_fields must be a list of field names".into()),
            None => return Err("a new_terms rule needs new_terms_fields".into()),
        };
        if fields.is_empty() || fields.len() > crate::new_terms::MAX_FIELDS {
            return Err(format!(
                "new_terms_fields names {} fields; Kibana allows 1 to {}",
                fields.len(),
                crate::new_terms::MAX_FIELDS
            ));
        }
        let text = self
            .extra
            .get("history_window_start")
            .and_then(Value::as_str)
            .ok_or("a new_terms rule needs history_window_start (date math such as `now-10d`)")?;
        let history_window_start =
            DateMath::parse(text).map_err(|error| format!("history_window_start: {error}"))?;
        // Kibana refuses a history that does not reach further back than the window.
        let probe = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let from = DateMath::parse(&self.from)
            .and_then(|from| from.resolve(probe))
            .map_err(|error| format!("from: {error}"))?;
        let start = history_window_start
            .resolve(probe)
            .map_err(|error| format!("history_window_start: {error}"))?;
        if start >= from {
            return Err(format!(
                "history_window_start `{text}` must be earlier than the rule's `from` ({})",
                self.from
            ));
        }
        Ok(NewTerms {
            fields,
            history_window_start,
        })
    }

    fn threshold(&self) -> Result<Threshold, String> {
        let Some(Value::Object(params)) = self.extra.get("threshold") else {
            return Err("a threshold rule needs `threshold` (field, value)".into());
        };
        // Kibana takes one field name or a list; an empty name means no grouping.
        let field = match params.get("field") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(name)) if name.is_empty() => Vec::new(),
            Some(Value::String(name)) => vec![name.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or("threshold.field: every entry must be a field name (a string)")?
                .into_iter()
                .filter(|name| !name.is_empty())
                .collect(),
            Some(_) => return Err("threshold.field must be a field name or a list of them".into()),
        };
        if field.len() > crate::threshold::MAX_FIELDS {
            return Err(format!(
                "threshold.field names {} fields; Kibana allows at most {}",
                field.len(),
                crate::threshold::MAX_FIELDS
            ));
        }
        let value = count_param(params.get("value"), "threshold.value")?;
        let cardinality = match params.get("cardinality") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if items.is_empty() => None,
            Some(Value::Array(items)) if items.len() == 1 => {
                let entry = &items[0];
                let field = entry
                    .get("field")
                    .and_then(Value::as_str)
                    .filter(|name| !name.is_empty())
                    .ok_or("threshold.cardinality[0].field must be a field name")?;
                Some(Cardinality {
                    field: field.to_owned(),
                    value: count_param(entry.get("value"), "threshold.cardinality[0].value")?,
                })
            }
            Some(_) => {
                return Err("threshold.cardinality must be a list of one {field, value}".into());
            }
        };
        Ok(Threshold {
            field,
            value,
            cardinality,
        })
    }
}

fn count_param(value: Option<&Value>, name: &str) -> Result<u64, String> {
    match value.and_then(Value::as_u64) {
        Some(count) if count >= 1 => Ok(count),
        _ => Err(format!("{name} must be a whole number of at least 1")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(rule_type: &str, extra: Value) -> Rule {
        Rule {
            rule_type: rule_type.into(),
            from: "now-6m".into(),
            extra: extra.as_object().cloned().unwrap_or_default(),
            ..Rule::default()
        }
    }

    #[test]
    fn new_terms_parameters_are_read_and_checked() {
        let ok = rule(
            "new_terms",
            json!({"new_terms_fields": ["user.name"], "history_window_start": "now-10d"}),
        );
        let RuleKind::NewTerms(params) = ok.kind().expect("valid") else {
            panic!("a new_terms kind");
        };
        assert_eq!(params.fields, ["user.name"]);
        let cases = [
            (
                json!({"history_window_start": "now-10d"}),
                "needs new_terms_fields",
            ),
            (
                json!({"new_terms_fields": [], "history_window_start": "now-10d"}),
                "1 to 3",
            ),
            (
                json!({"new_terms_fields": ["a", "b", "c", "d"], "history_window_start": "now-10d"}),
                "1 to 3",
            ),
            (
                json!({"new_terms_fields": ["a"]}),
                "needs history_window_start",
            ),
            (
                json!({"new_terms_fields": ["a"], "history_window_start": "now-2m"}),
                "earlier than the rule's `from`",
            ),
            (
                json!({"new_terms_fields": ["a"], "history_window_start": "soon"}),
                "history_window_start",
            ),
        ];
        for (extra, expected) in cases {
            let error = rule("new_terms", extra.clone())
                .kind()
                .expect_err("invalid");
            assert!(error.contains(expected), "{extra}: {error}");
        }
    }

    #[test]
    fn threshold_parameters_take_kibanas_shapes() {
        let one = rule(
            "threshold",
            json!({"threshold": {"field": "user.id", "value": 5}}),
        );
        assert_eq!(
            one.kind(),
            Ok(RuleKind::Threshold(Threshold {
                field: vec!["user.id".into()],
                value: 5,
                cardinality: None
            }))
        );
        let none = rule("threshold", json!({"threshold": {"field": [], "value": 1}}));
        assert!(matches!(none.kind(), Ok(RuleKind::Threshold(t)) if t.field.is_empty()));
        let with_cardinality = rule(
            "threshold",
            json!({"threshold": {"field": ["a"], "value": 1,
                   "cardinality": [{"field": "b", "value": 20}]}}),
        );
        assert!(matches!(
            with_cardinality.kind(),
            Ok(RuleKind::Threshold(Threshold {
                cardinality: Some(Cardinality { value: 20, .. }),
                ..
            }))
        ));
        for (extra, expected) in [
            (json!({}), "needs `threshold`"),
            (
                json!({"threshold": {"field": "a", "value": 0}}),
                "threshold.value",
            ),
            (
                json!({"threshold": {"field": ["a", "b", "c", "d"], "value": 1}}),
                "at most 3",
            ),
            (
                json!({"threshold": {"field": "a", "value": 1, "cardinality": [{"value": 2}]}}),
                "cardinality[0].field",
            ),
        ] {
            let error = rule("threshold", extra.clone())
                .kind()
                .expect_err("invalid");
            assert!(error.contains(expected), "{extra}: {error}");
        }
    }
}

//! What a format parser (`toml`, `ndjson`) hands to the loader: rules as read, before
//! validation, with the lines their fields came from, and the problems found on the way.
//! The parsers and the loader both use it, so neither depends on the other.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::matcher::MatcherError;
use super::model::Rule;

/// The key suffix under which a parser records the first line of a field's text (a TOML
/// multi-line string starts a line after its key).
pub(super) const BODY: &str = "@text";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProblemKind {
    /// The file or rule cannot be used.
    Error,
    /// Loaded, but something the user should know (e.g. exception lists are not applied).
    Warning,
    /// A valid rule rule-runner does not execute.
    Unsupported,
}

impl ProblemKind {
    pub fn label(self) -> &'static str {
        match self {
            ProblemKind::Error => "error",
            ProblemKind::Warning => "warning",
            ProblemKind::Unsupported => "unsupported",
        }
    }
}

/// A rule a parser read, before validation.
pub(super) struct ParsedRule {
    /// The line the rule starts on (TOML: the `[rule]` header; NDJSON: its line).
    pub line: usize,
    /// The line of each top-level field, where the format has one per field (TOML).
    pub field_lines: HashMap<String, usize>,
    pub rule: Rule,
}

impl ParsedRule {
    pub(super) fn line_of(&self, field: &str) -> usize {
        self.field_lines.get(field).copied().unwrap_or(self.line)
    }

    /// The file line a KQL syntax error points at, when the format keeps the query's lines.
    pub(super) fn query_error_line(&self, err: &MatcherError) -> usize {
        let text_start = self.field_lines.get(&format!("query{BODY}"));
        let offset = match err {
            MatcherError::Query { error, .. } => Some(error.offset),
            MatcherError::Eql { error, .. } => Some(error.offset),
            _ => None,
        };
        match (offset, text_start, self.rule.query.as_deref()) {
            (Some(offset), Some(start), Some(query)) => {
                let offset = offset.min(query.len());
                let before = query.get(..offset).unwrap_or(query);
                start + before.matches('\n').count()
            }
            _ => self.line_of("query"),
        }
    }
}

/// What a parser found in one file.
#[derive(Default)]
pub(super) struct ParsedFile {
    pub rules: Vec<ParsedRule>,
    /// Problems with their line and, when known, the rule's name.
    pub problems: Vec<(Option<usize>, Option<String>, ProblemKind, String)>,
}

/// Build a [`Rule`] from a JSON object of snake_case parameters; on failure, the dotted path
/// of the offending field (empty for the object itself) and the message.
pub(super) fn rule_from_params(params: Map<String, Value>) -> Result<Rule, (String, String)> {
    let mut rule =
        serde_path_to_error::deserialize::<_, Rule>(Value::Object(params)).map_err(|err| {
            let path = err.path().to_string();
            let path = if path == "." { String::new() } else { path };
            (path, err.into_inner().to_string())
        })?;
    rule.extra
        .retain(|key, value| !KIBANA_BOOKKEEPING.contains(&key.as_str()) && !is_empty_value(value));
    Ok(rule)
}

/// What Kibana records about a rule's saved object rather than the rule itself: dropped on
/// load, so a rule reads the same whether it was exported from Kibana or written by hand.
/// Who made the rule and when (`created_at`, `created_by`, ...) stay: alerts carry them.
const KIBANA_BOOKKEEPING: &[&str] = &[
    "id",
    "revision",
    "immutable",
    "rule_source",
    "execution_summary",
    "output_index",
    "actions",
    "throttle",
    "meta",
    "namespace",
    "consumer",
    "alert_type_id",
];

pub(super) fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

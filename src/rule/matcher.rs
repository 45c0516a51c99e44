//! A runnable rule compiled for in-memory evaluation (`scan`, `rules test`): its KQL query
//! AND its enabled filters, as Kibana combines them (`kibana-detection-engine.md` §4).

use serde_json::Value;

use super::filters::{FilterError, es_clauses, memory::NotEvaluable};
use super::model::Rule;
use super::model::unsupported_reason;
use crate::kql::{
    self, FieldSlots, FieldTypes, MatchOptions, Matcher, ParseError, Prepared, Query,
};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MatcherError {
    #[error("{0}")]
    Unsupported(String),
    #[error("missing `query` (a KQL query rule needs one)")]
    MissingQuery,
    #[error("`query` is not valid KQL: {rendered}")]
    Query { error: ParseError, rendered: String },
    #[error("`filters`: {0}")]
    Filters(#[from] FilterError),
    #[error("`filters`: {0}")]
    NotEvaluable(#[from] NotEvaluable),
}

impl Rule {
    /// The rule's KQL query, parsed as the detection engine does (leading wildcards allowed).
    pub fn kql_query(&self) -> Result<Query, MatcherError> {
        let text = self.query.as_deref().ok_or(MatcherError::MissingQuery)?;
        // TOML block strings end with a newline; without it, an error at the end of the query
        // is shown on its last line instead of an empty one. Trailing whitespace means nothing
        // in KQL unless escaped.
        let trimmed = text.trim_end();
        let text = if trimmed.ends_with('\\') {
            text
        } else {
            trimmed
        };
        kql::parse(text).map_err(|error| MatcherError::Query {
            rendered: error.render(text),
            error,
        })
    }
}

/// A rule ready to test documents.
#[derive(Debug, Clone)]
pub struct RuleMatcher {
    matcher: Matcher,
}

impl RuleMatcher {
    /// Compile `rule` (its query, or `parsed` when the caller already holds it). Fails for rules
    /// rule-runner does not run and for filters that only Elasticsearch can evaluate.
    pub fn new(
        rule: &Rule,
        parsed: Option<&Query>,
        fields: Option<&FieldTypes>,
        options: &MatchOptions,
    ) -> Result<RuleMatcher, MatcherError> {
        Self::compile(rule, parsed, fields, options, None)
    }

    /// As [`RuleMatcher::new`], reading field values from documents prepared with `slots`
    /// (see [`RuleMatcher::matches_prepared`]).
    pub fn with_slots(
        rule: &Rule,
        parsed: Option<&Query>,
        fields: Option<&FieldTypes>,
        options: &MatchOptions,
        slots: &mut FieldSlots,
    ) -> Result<RuleMatcher, MatcherError> {
        Self::compile(rule, parsed, fields, options, Some(slots))
    }

    fn compile(
        rule: &Rule,
        parsed: Option<&Query>,
        fields: Option<&FieldTypes>,
        options: &MatchOptions,
        slots: Option<&mut FieldSlots>,
    ) -> Result<RuleMatcher, MatcherError> {
        if let Some(reason) = unsupported_reason(rule) {
            return Err(MatcherError::Unsupported(reason));
        }
        let query = match parsed {
            Some(query) => query.clone(),
            None => rule.kql_query()?,
        };
        let clauses = es_clauses(&rule.filters)?;
        let combined = if clauses.is_empty() {
            query
        } else {
            Query::And(vec![query, clauses.to_kql()?])
        };
        let matcher = match slots {
            Some(slots) => Matcher::with_slots(&combined, fields, options, slots),
            None => Matcher::new(&combined, fields, options),
        };
        Ok(RuleMatcher { matcher })
    }

    /// Whether the rule would select `doc` (the time window aside).
    pub fn matches(&self, doc: &Value) -> bool {
        self.matcher.matches(doc)
    }

    /// As [`RuleMatcher::matches`], on a prepared document.
    pub fn matches_prepared(&self, doc: &Prepared<'_>) -> bool {
        self.matcher.matches_prepared(doc)
    }
}

//! A runnable rule compiled for in-memory evaluation (`scan`, `rules test`): its KQL query
//! AND its enabled filters, as Kibana combines them (`kibana-detection-engine.md` §4). For an
//! EQL rule, its event query (for a sequence: any of its stages) AND its filters, which
//! Kibana sends as the `filter` of `_eql/search`.

use serde_json::Value;

use super::filters::{FilterError, es_clauses, memory::NotEvaluable};
use super::model::Rule;
use super::model::unsupported_reason;
use crate::eql;
use crate::kql::{self, FieldTypes, MatchOptions, Matcher, ParseError, Query};

/// The fields a set of rules reads, KQL's and EQL's apart (each language prepares its own
/// block), so that each document is prepared once for all the rules.
#[derive(Debug, Default)]
pub struct RuleSlots {
    pub kql: kql::FieldSlots,
    pub eql: eql::FieldSlots,
}

/// The storage of a [`PreparedDoc`], kept to prepare the next document in.
#[derive(Debug, Default)]
pub struct PrepareBuffers {
    kql: kql::PrepareBuffer,
    eql: eql::PrepareBuffer,
}

/// A document prepared for [`RuleMatcher::matches_prepared`].
#[derive(Debug)]
pub struct PreparedDoc<'d> {
    kql: kql::Prepared<'d>,
    eql: eql::Prepared<'d>,
}

impl RuleSlots {
    pub fn prepare_in<'d>(&self, buffers: PrepareBuffers, doc: &'d Value) -> PreparedDoc<'d> {
        PreparedDoc {
            kql: self.kql.prepare_in(buffers.kql, doc),
            eql: self.eql.prepare_in(buffers.eql, doc),
        }
    }
}

impl PreparedDoc<'_> {
    /// Give the storage back, to prepare another document with.
    pub fn into_buffer(self) -> PrepareBuffers {
        PrepareBuffers {
            kql: self.kql.into_buffer(),
            eql: self.eql.into_buffer(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MatcherError {
    #[error("{0}")]
    Unsupported(String),
    #[error("missing `query` (a KQL query rule needs one)")]
    MissingQuery,
    #[error("`query` is not valid KQL: {rendered}")]
    Query { error: ParseError, rendered: String },
    #[error("`query` is not valid EQL: {rendered}")]
    Eql {
        error: crate::eql::ParseError,
        rendered: String,
    },
    #[error("`filters`: {0}")]
    Filters(#[from] FilterError),
    #[error("`filters`: {0}")]
    NotEvaluable(#[from] NotEvaluable),
    #[error("`query`: a regular expression of the EQL query does not compile: {0}")]
    EqlRegex(String),
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
    /// The KQL query and the filters; for an EQL rule the filters alone, if any.
    matcher: Option<Matcher>,
    /// An EQL rule's event query, or each stage of its sequence (any may match).
    eql: Vec<crate::eql::Matcher>,
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
        slots: &mut RuleSlots,
    ) -> Result<RuleMatcher, MatcherError> {
        Self::compile(rule, parsed, fields, options, Some(slots))
    }

    fn compile(
        rule: &Rule,
        parsed: Option<&Query>,
        fields: Option<&FieldTypes>,
        options: &MatchOptions,
        mut slots: Option<&mut RuleSlots>,
    ) -> Result<RuleMatcher, MatcherError> {
        if let Some(reason) = unsupported_reason(rule) {
            return Err(MatcherError::Unsupported(reason));
        }
        let clauses = es_clauses(&rule.filters)?;
        let filters = (!clauses.is_empty())
            .then(|| clauses.to_kql())
            .transpose()?;
        let (combined, eql) = if rule.rule_type == "eql" {
            let mut own = eql::FieldSlots::new();
            let eql_slots = match slots.as_deref_mut() {
                Some(slots) => &mut slots.eql,
                None => &mut own,
            };
            (filters, eql_matchers(rule, eql_slots)?)
        } else {
            let query = match parsed {
                Some(query) => query.clone(),
                None => rule.kql_query()?,
            };
            let combined = match filters {
                Some(filters) => Query::And(vec![query, filters]),
                None => query,
            };
            (Some(combined), Vec::new())
        };
        let matcher = combined.map(|combined| match slots {
            Some(slots) => Matcher::with_slots(&combined, fields, options, &mut slots.kql),
            None => Matcher::new(&combined, fields, options),
        });
        Ok(RuleMatcher { matcher, eql })
    }

    /// Whether the rule would select `doc` (the time window aside).
    pub fn matches(&self, doc: &Value) -> bool {
        self.matcher.as_ref().is_none_or(|m| m.matches(doc)) && self.eql_matches(doc)
    }

    /// As [`RuleMatcher::matches`], on a prepared document.
    pub fn matches_prepared(&self, doc: &PreparedDoc<'_>) -> bool {
        self.matcher
            .as_ref()
            .is_none_or(|m| m.matches_prepared(&doc.kql))
            && (self.eql.is_empty() || self.eql.iter().any(|m| m.matches_prepared(&doc.eql)))
    }

    /// The fields the query and filters read, or `None` when they may read any (see
    /// [`Matcher::fields_read`]).
    pub fn fields_read(&self) -> Option<Vec<&str>> {
        let mut fields = match &self.matcher {
            Some(matcher) => matcher.fields_read()?,
            None => Vec::new(),
        };
        for eql in &self.eql {
            fields.extend(eql.fields_read());
        }
        Some(fields)
    }

    fn eql_matches(&self, doc: &Value) -> bool {
        self.eql.is_empty() || self.eql.iter().any(|m| m.matches(doc))
    }
}

/// The event query of an EQL rule, or the stages (and `until`) of its sequence.
fn eql_matchers(
    rule: &Rule,
    slots: &mut eql::FieldSlots,
) -> Result<Vec<crate::eql::Matcher>, MatcherError> {
    let kind = match rule.kind() {
        Ok(super::RuleKind::Eql(kind)) => kind,
        Ok(_) => return Err(MatcherError::Unsupported("not an EQL rule".into())),
        Err(_) => {
            return Err(rule
                .eql_statement()
                .err()
                .unwrap_or(MatcherError::MissingQuery));
        }
    };
    let options = kind.options();
    kind.statement
        .body
        .queries()
        .into_iter()
        .map(|query| {
            crate::eql::Matcher::with_slots(query, &options, slots)
                .map_err(|error| MatcherError::EqlRegex(error.to_string()))
        })
        .collect()
}

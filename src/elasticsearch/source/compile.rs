//! A rule's query in Query DSL: the KQL translated with field metadata from the cluster,
//! the rule's filters beside it (`kibana-detection-engine.md` §4).

use serde_json::Value;

use crate::kql::{self, DslOptions, FieldTypes, Query};
use crate::rule::{Rule, filters};

/// Parse the rule's KQL (an absent query is an empty one: every event).
pub fn parse(rule: &Rule) -> Result<Query, String> {
    kql::parse(rule.query.as_deref().unwrap_or("")).map_err(|e| {
        format!(
            "rule `{}` ({}): its query does not parse: {e}",
            rule.name, rule.rule_id
        )
    })
}

/// The field names the query mentions (wildcard names as patterns, nested ones in full),
/// for `_field_caps`: only these need types, as in the newest Kibana.
pub fn query_fields(query: &Query) -> Vec<String> {
    let mut names = Vec::new();
    collect(query, None, &mut names);
    names
}

fn collect(query: &Query, prefix: Option<&str>, names: &mut Vec<String>) {
    let mut push = |field: &kql::Value| {
        let name = match prefix {
            Some(p) => format!("{p}.{}", field.as_field_name()),
            None => field.as_field_name(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    };
    match query {
        Query::And(items) | Query::Or(items) => {
            for item in items {
                collect(item, prefix, names);
            }
        }
        Query::Not(inner) => collect(inner, prefix, names),
        Query::Is { field, .. } => {
            if let Some(field) = field {
                push(field);
            }
        }
        Query::Range { field, .. } | Query::Exists { field } => push(field),
        Query::Nested { path, query } => {
            let path = match prefix {
                Some(p) => format!("{p}.{}", path.as_field_name()),
                None => path.as_field_name(),
            };
            collect(query, Some(&path), names);
        }
    }
}

/// `buildEsQuery` for the rule: the KQL with the detection engine's options and the given
/// field metadata, then the rule's enabled filters in `filter` and negated ones in
/// `must_not`.
pub fn rule_query(rule: &Rule, query: &Query, field_types: &Value) -> Result<Value, String> {
    let types = FieldTypes::from_json(field_types)
        .map_err(|e| format!("field metadata from `_field_caps`: {e}"))?;
    let clauses = filters::es_clauses(&rule.filters)
        .map_err(|e| format!("rule `{}` ({}): {e}", rule.name, rule.rule_id))?;
    kql::build_es_query(
        query,
        &clauses.filter,
        &clauses.must_not,
        Some(&types),
        &DslOptions::detection_engine(),
    )
    .map_err(|e| format!("rule `{}` ({}): {e}", rule.name, rule.rule_id))
}

/// The rule's filters alone in Query DSL (enabled ones in `filter`, negated in `must_not`),
/// as Kibana builds them for an EQL rule: `getQueryFilter` with language `eql` hands
/// `buildEsQuery` no KQL or Lucene query, so only the filters' clauses are there.
pub fn filters_query(rule: &Rule) -> Result<Value, String> {
    let clauses = filters::es_clauses(&rule.filters)
        .map_err(|e| format!("rule `{}` ({}): {e}", rule.name, rule.rule_id))?;
    Ok(serde_json::json!({ "bool": {
        "must": [],
        "filter": clauses.filter,
        "should": [],
        "must_not": clauses.must_not,
    } }))
}

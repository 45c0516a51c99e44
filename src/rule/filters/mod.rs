//! Kibana filter objects (`{"meta": {...}, "query": {...}}`) as rules store them, turned into
//! the Query DSL clauses Kibana's `buildEsQuery` puts beside the KQL query: enabled filters in
//! `bool.filter`, negated ones in `bool.must_not`, disabled ones dropped
//! (`kibana-detection-engine.md` §4).

pub mod memory;

use serde_json::{Map, Value, json};

/// The DSL clauses a rule's filters contribute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterClauses {
    /// AND-ed with the query (`bool.filter`).
    pub filter: Vec<Value>,
    /// Must not match (`bool.must_not`).
    pub must_not: Vec<Value>,
}

impl FilterClauses {
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty() && self.must_not.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("filter #{index} is not a JSON object")]
    NotAnObject { index: usize },
    #[error(
        "filter #{index} holds no query (expected `query`, or a query such as `match_phrase`, `exists`, `range` or `bool` beside `meta`)"
    )]
    NoQuery { index: usize },
    #[error("filter #{index}: `meta.{flag}` must be true or false")]
    BadFlag { index: usize, flag: &'static str },
    #[error("filter #{index}: a combined filter needs `meta.params` to be a list of filters")]
    BadCombined { index: usize },
}

/// Split a rule's enabled filters into `bool.filter` and `bool.must_not` clauses as Kibana
/// does. Disabled filters are dropped; negated ones go to `must_not`.
pub fn es_clauses(filters: &[Value]) -> Result<FilterClauses, FilterError> {
    let mut clauses = FilterClauses::default();
    for (position, filter) in filters.iter().enumerate() {
        let index = position + 1;
        let object = filter
            .as_object()
            .ok_or(FilterError::NotAnObject { index })?;
        if flag(object, "disabled", index)? {
            continue;
        }
        let query = translate(object, index)?;
        if flag(object, "negate", index)? {
            clauses.must_not.push(query);
        } else {
            clauses.filter.push(query);
        }
    }
    Ok(clauses)
}

fn flag(
    filter: &Map<String, Value>,
    name: &'static str,
    index: usize,
) -> Result<bool, FilterError> {
    match filter.get("meta").and_then(|meta| meta.get(name)) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(_) => Err(FilterError::BadFlag { index, flag: name }),
    }
}

/// One filter's query, without its `meta`: the `query` member when there is one (current
/// Kibana), otherwise the other members (older filters keep e.g. `exists` at the top level).
fn translate(filter: &Map<String, Value>, index: usize) -> Result<Value, FilterError> {
    let meta = filter.get("meta");
    if meta.and_then(|m| m.get("type")).and_then(Value::as_str) == Some("combined") {
        return combined(meta, index);
    }
    let query = match filter.get("query") {
        Some(Value::Object(query)) => query.clone(),
        _ => filter
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "meta" | "$state" | "query"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    if query.is_empty() {
        return Err(FilterError::NoQuery { index });
    }
    Ok(migrate_legacy_match(Value::Object(query)))
}

/// Kibana's combined filter: `meta.params` holds sub-filters joined by `meta.relation`.
fn combined(meta: Option<&Value>, index: usize) -> Result<Value, FilterError> {
    let parts = meta
        .and_then(|m| m.get("params"))
        .and_then(Value::as_array)
        .ok_or(FilterError::BadCombined { index })?;
    let mut clauses = Vec::new();
    for part in parts {
        let object = part.as_object().ok_or(FilterError::BadCombined { index })?;
        if flag(object, "disabled", index)? {
            continue;
        }
        let query = translate(object, index)?;
        clauses.push(if flag(object, "negate", index)? {
            json!({"bool": {"must_not": [query]}})
        } else {
            query
        });
    }
    let relation = meta.and_then(|m| m.get("relation")).and_then(Value::as_str);
    Ok(if relation == Some("OR") {
        json!({"bool": {"should": clauses, "minimum_should_match": 1}})
    } else {
        json!({"bool": {"filter": clauses}})
    })
}

/// Old saved filters wrote a phrase as `match` with `type: phrase`; Kibana migrates them to
/// `match_phrase`.
fn migrate_legacy_match(query: Value) -> Value {
    let Some(fields) = query.get("match").and_then(Value::as_object) else {
        return query;
    };
    let [(field, spec)] = fields.iter().collect::<Vec<_>>()[..] else {
        return query;
    };
    if spec.get("type").and_then(Value::as_str) != Some("phrase") {
        return query;
    }
    let value = spec.get("query").cloned().unwrap_or(Value::Null);
    json!({"match_phrase": {field.clone(): value}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_negated_disabled_as_kibana() {
        let filters = vec![
            json!({"meta": {"negate": false, "disabled": false, "key": "event.outcome"},
                   "query": {"match_phrase": {"event.outcome": "success"}}}),
            json!({"meta": {"negate": true}, "query": {"exists": {"field": "error.code"}}}),
            json!({"meta": {"disabled": true}, "query": {"match_phrase": {"x": "y"}}}),
            json!({"meta": {}, "exists": {"field": "source.ip"}, "$state": {"store": "appState"}}),
            json!({"meta": {}, "query": {"match": {"a": {"query": "b", "type": "phrase"}}}}),
        ];
        let clauses = es_clauses(&filters).unwrap();
        assert_eq!(
            clauses.filter,
            vec![
                json!({"match_phrase": {"event.outcome": "success"}}),
                json!({"exists": {"field": "source.ip"}}),
                json!({"match_phrase": {"a": "b"}}),
            ]
        );
        assert_eq!(
            clauses.must_not,
            vec![json!({"exists": {"field": "error.code"}})]
        );
    }

    #[test]
    fn combined_filters_join_their_parts() {
        let filters = vec![
            json!({"meta": {"type": "combined", "relation": "OR", "params": [
                {"meta": {}, "query": {"match_phrase": {"a": "1"}}},
                {"meta": {"negate": true}, "query": {"match_phrase": {"b": "2"}}},
            ]}}),
        ];
        let clauses = es_clauses(&filters).unwrap();
        assert_eq!(
            clauses.filter,
            vec![json!({"bool": {"should": [
                {"match_phrase": {"a": "1"}},
                {"bool": {"must_not": [{"match_phrase": {"b": "2"}}]}},
            ], "minimum_should_match": 1}})]
        );
    }

    #[test]
    fn malformed_filters_are_errors() {
        assert_eq!(
            es_clauses(&[json!("x")]),
            Err(FilterError::NotAnObject { index: 1 })
        );
        assert_eq!(
            es_clauses(&[json!({"meta": {}}), json!({})]),
            Err(FilterError::NoQuery { index: 1 })
        );
        assert_eq!(
            es_clauses(&[json!({"meta": {"negate": "yes"}, "query": {"match_all": {}}})]),
            Err(FilterError::BadFlag {
                index: 1,
                flag: "negate"
            })
        );
        assert!(es_clauses(&[json!({"meta": {"type": "combined"}})]).is_err());
    }
}

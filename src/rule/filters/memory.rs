//! Filters evaluated without Elasticsearch (for `scan` and `rules test`): the DSL clauses a
//! rule's filters produce are rewritten as the equivalent KQL tree, so the KQL evaluator's
//! field lookup and mapping-aware comparisons apply to them too.
//!
//! Covered: `match_phrase`, `match`, `term`, `terms`, `exists`, `range`, `wildcard` (with `*`),
//! `prefix`, `match_all`, `match_none` and `bool` (with `minimum_should_match` of at most 1).
//! Anything else (`query_string`, `script`, `nested`, ...) is reported as not evaluable, so a
//! caller can skip the rule rather than give a wrong verdict.

use serde_json::{Map, Value as Json};

use super::FilterClauses;
use crate::kql::{Query, RangeOp, Value, Wildcard};

/// A clause rule-runner cannot evaluate in memory; says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter query `{0}` can only be evaluated by Elasticsearch")]
pub struct NotEvaluable(pub String);

impl FilterClauses {
    /// The clauses as one KQL tree: every `filter` clause and no `must_not` clause.
    pub fn to_kql(&self) -> Result<Query, NotEvaluable> {
        let mut all = Vec::with_capacity(self.filter.len() + self.must_not.len());
        for clause in &self.filter {
            all.push(clause_to_kql(clause)?);
        }
        for clause in &self.must_not {
            all.push(Query::Not(Box::new(clause_to_kql(clause)?)));
        }
        Ok(Query::And(all))
    }
}

fn clause_to_kql(clause: &Json) -> Result<Query, NotEvaluable> {
    let not_evaluable = |what: &str| NotEvaluable(what.to_owned());
    let object = clause
        .as_object()
        .ok_or_else(|| not_evaluable("(not an object)"))?;
    let [(kind, body)] = object.iter().collect::<Vec<_>>()[..] else {
        return Err(not_evaluable("(several queries in one object)"));
    };
    match kind.as_str() {
        "match_all" => Ok(Query::And(Vec::new())),
        "match_none" => Ok(Query::Or(Vec::new())),
        "bool" => bool_to_kql(body),
        "exists" => {
            let field = body
                .get("field")
                .and_then(Json::as_str)
                .ok_or_else(|| not_evaluable("exists"))?;
            Ok(Query::Exists {
                field: Value::Text(field.to_owned()),
            })
        }
        "terms" => {
            let (field, values) = single_field(body, kind)?;
            let values = values.as_array().ok_or_else(|| not_evaluable("terms"))?;
            let options = values
                .iter()
                .map(|v| Ok(is(field, exact(scalar(v, kind)?))))
                .collect::<Result<_, NotEvaluable>>()?;
            Ok(Query::Or(options))
        }
        "range" => {
            let (field, bounds) = single_field(body, kind)?;
            let bounds = bounds.as_object().ok_or_else(|| not_evaluable("range"))?;
            let mut parts = Vec::new();
            for (key, bound) in bounds {
                let op = match key.as_str() {
                    "gte" => RangeOp::Gte,
                    "gt" => RangeOp::Gt,
                    "lte" => RangeOp::Lte,
                    "lt" => RangeOp::Lt,
                    "format" | "time_zone" | "boost" => continue,
                    _ => return Err(not_evaluable("range")),
                };
                parts.push(Query::Range {
                    field: Value::Text(field.to_owned()),
                    op,
                    value: Value::Text(scalar(bound, kind)?),
                });
            }
            Ok(Query::And(parts))
        }
        "match_phrase" | "match" | "term" | "wildcard" | "prefix" => {
            let (field, spec) = single_field(body, kind)?;
            let key = if kind == "term" || kind == "wildcard" || kind == "prefix" {
                "value"
            } else {
                "query"
            };
            let raw = match spec {
                Json::Object(options) => options.get(key).ok_or_else(|| not_evaluable(kind))?,
                other => other,
            };
            let text = scalar(raw, kind)?;
            let value = match kind.as_str() {
                "match" => Value::Text(text),
                "wildcard" if text.contains('?') => return Err(not_evaluable("wildcard with `?`")),
                "wildcard" => pattern(text.split('*').map(str::to_owned).collect(), &text),
                "prefix" => pattern(vec![text.clone(), String::new()], &text),
                _ => exact(text),
            };
            Ok(is(field, value))
        }
        other => Err(not_evaluable(other)),
    }
}

fn bool_to_kql(body: &Json) -> Result<Query, NotEvaluable> {
    let body = body
        .as_object()
        .ok_or_else(|| NotEvaluable("bool".to_owned()))?;
    let list = |key: &str| -> Result<Vec<Query>, NotEvaluable> {
        match body.get(key) {
            None => Ok(Vec::new()),
            Some(Json::Array(items)) => items.iter().map(clause_to_kql).collect(),
            Some(one) => Ok(vec![clause_to_kql(one)?]),
        }
    };
    let mut all = list("must")?;
    all.extend(list("filter")?);
    all.extend(
        list("must_not")?
            .into_iter()
            .map(|q| Query::Not(Box::new(q))),
    );
    let should = list("should")?;
    let minimum = match body.get("minimum_should_match") {
        None => usize::from(all.is_empty()),
        Some(Json::Number(n)) => n.as_u64().map_or(2, |n| n as usize),
        Some(Json::String(s)) => s.parse().unwrap_or(2),
        Some(_) => 2,
    };
    match minimum {
        0 => {}
        1 if !should.is_empty() => all.push(Query::Or(should)),
        1 => all.push(Query::Or(Vec::new())),
        _ => {
            return Err(NotEvaluable(
                "bool with minimum_should_match above 1".to_owned(),
            ));
        }
    }
    Ok(Query::And(all))
}

fn single_field<'j>(body: &'j Json, kind: &str) -> Result<(&'j str, &'j Json), NotEvaluable> {
    let fields: Vec<_> = body
        .as_object()
        .map(Map::iter)
        .into_iter()
        .flatten()
        .filter(|(key, _)| !matches!(key.as_str(), "boost" | "_name"))
        .collect();
    match fields[..] {
        [(field, spec)] => Ok((field.as_str(), spec)),
        _ => Err(NotEvaluable(kind.to_owned())),
    }
}

fn scalar(value: &Json, kind: &str) -> Result<String, NotEvaluable> {
    match value {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        _ => Err(NotEvaluable(kind.to_owned())),
    }
}

fn is(field: &str, value: Value) -> Query {
    Query::Is {
        field: Some(Value::Text(field.to_owned())),
        value,
    }
}

/// A value compared whole (a term, or a phrase), never as a pattern.
fn exact(text: String) -> Value {
    Value::Quoted(text)
}

/// A `*` pattern split into its literal pieces; without a `*` it is an exact value.
fn pattern(pieces: Vec<String>, text: &str) -> Value {
    match Wildcard::new(pieces) {
        Some(wildcard) => Value::Wildcard(wildcard),
        None => exact(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kql::{MatchOptions, Matcher};
    use crate::rule::filters::es_clauses;

    fn matches(filters: Json, doc: Json) -> bool {
        let filters: Vec<Json> = serde_json::from_value(filters).unwrap();
        let query = es_clauses(&filters).unwrap().to_kql().unwrap();
        Matcher::new(&query, None, &MatchOptions::default()).matches(&doc)
    }

    #[test]
    fn phrase_exists_negation_and_disabled() {
        let filters = json!([
            {"meta": {}, "query": {"match_phrase": {"event.outcome": "success"}}},
            {"meta": {"negate": true}, "query": {"exists": {"field": "error.code"}}},
            {"meta": {"disabled": true}, "query": {"match_phrase": {"event.outcome": "failure"}}},
        ]);
        assert!(matches(
            filters.clone(),
            json!({"event": {"outcome": "success"}})
        ));
        assert!(!matches(
            filters.clone(),
            json!({"event": {"outcome": "failure"}})
        ));
        assert!(!matches(
            filters,
            json!({"event": {"outcome": "success"}, "error": {"code": "x"}})
        ));
    }

    #[test]
    fn terms_range_wildcard_prefix_and_bool() {
        let doc = json!({"event.action": "AddPermission20150331v2", "risk": 47, "host": {"name": "web-1"}});
        let query = |q: Json| json!([{"meta": {}, "query": q}]);
        assert!(matches(
            query(json!({"terms": {"event.action": ["x", "AddPermission20150331v2"]}})),
            doc.clone()
        ));
        assert!(matches(
            query(json!({"range": {"risk": {"gte": 21, "lt": 73}}})),
            doc.clone()
        ));
        assert!(!matches(
            query(json!({"range": {"risk": {"gt": 47}}})),
            doc.clone()
        ));
        assert!(matches(
            query(json!({"wildcard": {"event.action": {"value": "AddPermission*"}}})),
            doc.clone()
        ));
        assert!(matches(
            query(json!({"prefix": {"host.name": "web-"}})),
            doc.clone()
        ));
        assert!(matches(
            query(json!({"term": {"host.name": {"value": "web-1"}}})),
            doc.clone()
        ));
        let either = json!({"bool": {"should": [{"term": {"host.name": "db-1"}}, {"term": {"host.name": "web-1"}}]}});
        assert!(matches(query(either), doc.clone()));
        let neither = json!({"bool": {"should": [{"term": {"host.name": "db-1"}}], "must_not": [{"match_all": {}}]}});
        assert!(!matches(query(neither), doc));
    }

    #[test]
    fn unknown_queries_are_not_evaluable() {
        let filters = vec![json!({"meta": {}, "query": {"query_string": {"query": "a:b"}}})];
        let err = es_clauses(&filters).unwrap().to_kql().unwrap_err();
        assert_eq!(err, NotEvaluable("query_string".to_owned()));
        let many =
            vec![json!({"meta": {}, "query": {"bool": {"should": [], "minimum_should_match": 2}}})];
        assert!(es_clauses(&many).unwrap().to_kql().is_err());
    }
}

//! The bodies of the search requests, as Kibana's detection engine builds them
//! (`kibana-detection-engine.md` §5): the rule's query and the time range side by side in
//! `bool.filter`, ascending sort on the timestamp with `unmapped_type: date`, every field.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::elasticsearch::dialect::Dialect;
use crate::engine::RuleWindow;
use crate::rule::Rule;

/// Elasticsearch's date format for both window bounds.
pub const DATE_FORMAT: &str = "strict_date_optional_time";

/// How long a point in time stays open between two pages.
pub const PIT_KEEP_ALIVE: &str = "5m";

/// What Kibana substitutes for a sort value it cannot pass back safely (§5.3).
pub const SORT_SENTINEL: &str = "9223372036854775807";

/// A timestamp as Kibana renders window bounds: milliseconds and `Z`.
pub fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn range(field: &str, window: RuleWindow) -> Value {
    json!({ "range": { field: {
        "gte": timestamp(window.start),
        "lte": timestamp(window.end),
        "format": DATE_FORMAT,
    } } })
}

/// The time filter: the rule's timestamp field in the window, or, with the `@timestamp`
/// fallback, `@timestamp` in the window for events that lack the override field (§5.2).
pub fn time_filter(rule: &Rule, window: RuleWindow) -> Value {
    match rule.timestamp_fields() {
        (primary, Some(fallback)) => json!({ "bool": {
            "minimum_should_match": 1,
            "should": [
                range(primary, window),
                { "bool": { "filter": [
                    range(fallback, window),
                    { "bool": { "must_not": { "exists": { "field": primary } } } }
                ] } }
            ]
        } }),
        (primary, None) => range(primary, window),
    }
}

/// Ascending on the timestamp field(s), indices without the field sorting as dates.
pub fn sort(rule: &Rule) -> Vec<Value> {
    let (primary, fallback) = rule.timestamp_fields();
    std::iter::once(primary)
        .chain(fallback)
        .map(|field| json!({ field: { "order": "asc", "unmapped_type": "date" } }))
        .collect()
}

/// Every field, plus the timestamp field(s) in the window's format.
pub fn fields(dialect: &Dialect, rule: &Rule) -> Vec<Value> {
    let (primary, fallback) = rule.timestamp_fields();
    std::iter::once(dialect.all_fields())
        .chain(
            std::iter::once(primary)
                .chain(fallback)
                .map(|field| json!({ "field": field, "format": DATE_FORMAT })),
        )
        .collect()
}

/// The query: the rule's `buildEsQuery` output beside the time filter.
pub fn query(rule_query: Value, rule: &Rule, window: RuleWindow) -> Value {
    json!({ "bool": { "filter": [rule_query, time_filter(rule, window)] } })
}

/// The first-page body of a search over index patterns, exactly as §5.1 shows it (the
/// `index`, `allow_no_indices` and `ignore_unavailable` members are request parameters;
/// they are listed in the body only as the Kibana client logs them).
pub fn kibana_body(rule_query: Value, rule: &Rule, window: RuleWindow, size: usize) -> Value {
    let dialect = Dialect::ELASTICSEARCH;
    json!({
        "allow_no_indices": true,
        "index": rule.index,
        "ignore_unavailable": true,
        "size": size,
        "query": query(rule_query, rule, window),
        "fields": fields(&dialect, rule),
        "sort": sort(rule),
    })
}

/// The body of an EQL rule's `_eql/search` (Kibana's `buildEqlSearchRequest`, 8.x): the
/// rule's statement as written; the window's time filter and the rule's filters as
/// `filter`; the results capped at `size` (max_signals), every field returned, and the
/// rule's `timestamp_field`, `event_category_override` and `tiebreaker_field` when it sets
/// them.
pub fn eql_body(
    dialect: &Dialect,
    rule: &Rule,
    rule_filters: Value,
    window: RuleWindow,
    size: usize,
) -> Value {
    let mut body = json!({
        "size": size,
        "query": rule.query.as_deref().unwrap_or_default(),
        "filter": { "bool": { "filter": [time_filter(rule, window), rule_filters] } },
    });
    for (param, key) in [
        ("timestamp_field", "timestamp_field"),
        ("event_category_override", "event_category_field"),
        ("tiebreaker_field", "tiebreaker_field"),
    ] {
        if let Some(value) = rule.extra.get(param).and_then(Value::as_str)
            && !value.is_empty()
        {
            body[key] = json!(value);
        }
    }
    body["fields"] = Value::Array(fields(dialect, rule));
    body
}

/// A page of a point-in-time search: the same query, sort and fields; the point in time
/// instead of indices; the engine's tie-breaker after the timestamp sort (`_shard_doc` on
/// Elasticsearch) that keeps `search_after` exact when events share a timestamp;
/// `search_after` from the second page.
pub fn pit_page_body(
    dialect: &Dialect,
    query: &Value,
    rule: &Rule,
    size: usize,
    pit_id: &str,
    search_after: Option<&[Value]>,
) -> Value {
    let mut sort = sort(rule);
    sort.extend(dialect.tiebreaker());
    let mut body = json!({
        "size": size,
        "query": query,
        "fields": fields(dialect, rule),
        "sort": sort,
        "pit": { "id": pit_id, "keep_alive": PIT_KEEP_ALIVE },
    });
    if let Some(after) = search_after {
        body["search_after"] = Value::Array(after.to_vec());
    }
    body
}

/// What to pass as `search_after` after a hit with these sort values, or `None` when
/// paging must stop (no sort values, or a negative one: Kibana's guard against an endless
/// loop, elastic/kibana#174573). Null or empty values become [`SORT_SENTINEL`].
pub fn next_search_after(sort: &[Value]) -> Option<Vec<Value>> {
    if sort.is_empty() {
        return None;
    }
    let negative = sort.iter().any(|v| match v {
        Value::Number(n) => {
            n.as_i64().is_some_and(|i| i < 0) || n.as_f64().is_some_and(|f| f < 0.0)
        }
        _ => false,
    });
    if negative {
        return None;
    }
    Some(
        sort.iter()
            .map(|v| match v {
                Value::Null => Value::String(SORT_SENTINEL.into()),
                Value::String(s) if s.is_empty() => Value::String(SORT_SENTINEL.into()),
                other => other.clone(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_after_safety() {
        assert_eq!(next_search_after(&[]), None);
        assert_eq!(next_search_after(&[json!(-1), json!(3)]), None);
        assert_eq!(
            next_search_after(&[json!(1735729625000u64), Value::Null, json!(""), json!(7)]),
            Some(vec![
                json!(1735729625000u64),
                json!(SORT_SENTINEL),
                json!(SORT_SENTINEL),
                json!(7)
            ])
        );
        // Beyond JavaScript's safe range, still exact here: passed back as it came.
        let big = json!(9223372036854775807u64);
        assert_eq!(
            next_search_after(std::slice::from_ref(&big)),
            Some(vec![big])
        );
    }
}

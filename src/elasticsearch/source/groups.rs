//! Group requests of the aggregating rule types (`docs/new-terms-and-threshold.md`): a
//! composite aggregation with one `terms` source per field, as Kibana's new_terms and
//! threshold executors send, or, without fields, the total and the time bounds.
//!
//! Kibana keeps only passing groups with `bucket_selector` scripts; rule-runner asks for the
//! counts and decides itself, so no request needs scripting (which OpenSearch and locked
//! down Elasticsearch clusters may lack). The same decision, one request shape for both.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::request::{DATE_FORMAT, time_filter, timestamp};
use super::stream::{parse_hit, shard_failures};
use crate::engine::{Group, GroupPage, GroupQuery, PortError};
use crate::rule::Rule;

const AGG: &str = "groups";

/// The search body for `query`, around the rule's query in Query DSL.
pub fn body(rule_query: Value, query: &GroupQuery) -> Value {
    let rule = &query.rule;
    let mut filter = vec![rule_query, time_filter(rule, query.range)];
    if !query.only.is_empty() {
        let should: Vec<Value> = query
            .only
            .iter()
            .map(|key| json!({ "bool": { "filter": terms(&query.fields, key) } }))
            .collect();
        filter.push(json!({ "bool": { "should": should, "minimum_should_match": 1 } }));
    }
    let (primary, _) = rule.timestamp_fields();
    let must_not: Vec<Value> = query
        .exclude
        .iter()
        .map(|(key, last)| {
            let mut clauses = vec![json!({ "range": { primary: {
                "lte": timestamp(*last), "format": DATE_FORMAT } } })];
            clauses.extend(terms(&query.fields, key));
            json!({ "bool": { "filter": clauses } })
        })
        .collect();
    let mut bool_query = json!({ "filter": filter });
    if !must_not.is_empty() {
        bool_query["must_not"] = Value::Array(must_not);
    }
    let metrics = metrics(rule, query);
    if query.fields.is_empty() {
        return json!({
            "size": 0,
            "track_total_hits": true,
            "query": { "bool": bool_query },
            "aggs": metrics,
        });
    }
    let sources: Vec<Value> = query
        .fields
        .iter()
        .map(|field| json!({ field: { "terms": { "field": field } } }))
        .collect();
    let mut composite = json!({ "size": query.size.max(1), "sources": sources });
    if let Some(after) = &query.after {
        let key: Map<String, Value> = query
            .fields
            .iter()
            .cloned()
            .zip(after.iter().cloned())
            .collect();
        composite["after"] = Value::Object(key);
    }
    json!({
        "size": 0,
        "query": { "bool": bool_query },
        "aggs": { AGG: { "composite": composite, "aggs": metrics } },
    })
}

fn terms(fields: &[String], key: &[Value]) -> Vec<Value> {
    fields
        .iter()
        .zip(key)
        .map(|(field, value)| json!({ "term": { field: value } }))
        .collect()
}

/// Per group: the first and last event time (of the override and of its `@timestamp`
/// fallback), the cardinality and the earliest event, as asked.
fn metrics(rule: &Rule, query: &GroupQuery) -> Value {
    let (primary, fallback) = rule.timestamp_fields();
    let mut aggs = json!({
        "first_seen": { "min": { "field": primary } },
        "last_seen": { "max": { "field": primary } },
    });
    if let Some(fallback) = fallback {
        aggs["first_seen_fallback"] = json!({ "min": { "field": fallback } });
        aggs["last_seen_fallback"] = json!({ "max": { "field": fallback } });
    }
    if let Some(field) = &query.cardinality_field {
        aggs["cardinality_count"] = json!({ "cardinality": { "field": field } });
    }
    if query.first_event {
        let mut sort = super::request::sort(rule);
        // `event.id` breaks ties as the offline scan's event identity does.
        sort.push(json!({ "event.id": { "order": "asc", "unmapped_type": "keyword" } }));
        aggs["first_event"] = json!({ "top_hits": { "size": 1, "sort": sort, "_source": true } });
    }
    aggs
}

/// The page a search response holds.
pub fn parse(response: &Value, query: &GroupQuery, what: &str) -> Result<GroupPage, PortError> {
    let failures = shard_failures(response);
    if !failures.is_empty() {
        return Err(PortError::Transient(format!(
            "{what}: {} shard failure(s): {}",
            failures.len(),
            failures.join("; ")
        )));
    }
    if response.get("timed_out").and_then(Value::as_bool) == Some(true) {
        return Err(PortError::Transient(format!(
            "{what}: the search timed out on the cluster; the window is searched again next run"
        )));
    }
    let mut warnings = Vec::new();
    if query.fields.is_empty() {
        let count = response
            .pointer("/hits/total/value")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed(what, "no `hits.total.value`", response))?;
        let aggs = response.get("aggregations").cloned().unwrap_or(Value::Null);
        let groups = if count == 0 {
            Vec::new()
        } else {
            vec![group(Vec::new(), count, &aggs, query, &mut warnings)?]
        };
        return Ok(GroupPage {
            groups,
            after: None,
            warnings,
        });
    }
    let Some(agg) = response.pointer(&format!("/aggregations/{AGG}")) else {
        return Ok(GroupPage::default());
    };
    let buckets = agg
        .get("buckets")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(what, "a composite aggregation without `buckets`", response))?;
    let mut groups = Vec::with_capacity(buckets.len());
    for bucket in buckets {
        let key = key_of(bucket.get("key"), &query.fields)
            .ok_or_else(|| malformed(what, "a bucket without its key", bucket))?;
        let count = bucket.get("doc_count").and_then(Value::as_u64).unwrap_or(0);
        groups.push(group(key, count, bucket, query, &mut warnings)?);
    }
    let after = if groups.is_empty() {
        None
    } else {
        key_of(agg.get("after_key"), &query.fields)
    };
    Ok(GroupPage {
        groups,
        after,
        warnings,
    })
}

fn key_of(key: Option<&Value>, fields: &[String]) -> Option<Vec<Value>> {
    let key = key?;
    fields.iter().map(|field| key.get(field).cloned()).collect()
}

fn group(
    key: Vec<Value>,
    count: u64,
    aggs: &Value,
    query: &GroupQuery,
    warnings: &mut Vec<String>,
) -> Result<Group, PortError> {
    let time = |name: &str| {
        aggs.pointer(&format!("/{name}/value"))
            .and_then(Value::as_f64)
            .and_then(|millis| DateTime::<Utc>::from_timestamp_millis(millis as i64))
    };
    let first = [time("first_seen"), time("first_seen_fallback")]
        .into_iter()
        .flatten()
        .min();
    let last = [time("last_seen"), time("last_seen_fallback")]
        .into_iter()
        .flatten()
        .max();
    let cardinality = query.cardinality_field.as_ref().map(|_| {
        aggs.pointer("/cardinality_count/value")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    });
    let first_event = match aggs.pointer("/first_event/hits/hits/0") {
        Some(raw) if query.first_event => Some(parse_hit(&query.rule, query.range, raw, warnings)?),
        _ => None,
    };
    Ok(Group {
        key,
        count,
        first,
        last,
        cardinality,
        first_event,
    })
}

fn malformed(what: &str, problem: &str, near: &Value) -> PortError {
    let mut text = near.to_string();
    text.truncate(300);
    PortError::Permanent(format!("{what}: unexpected response, {problem}: {text}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::engine::RuleWindow;

    fn query(fields: &[&str]) -> GroupQuery {
        let rule: Rule = serde_json::from_value(json!({
            "rule_id": "r", "name": "r", "type": "new_terms", "language": "kuery",
            "query": "*", "risk_score": 1, "severity": "low", "index": ["logs-*"]
        }))
        .unwrap_or_else(|error| panic!("test rule: {error}"));
        let at = |h| {
            Utc.with_ymd_and_hms(2025, 1, 1, h, 0, 0)
                .single()
                .unwrap_or_default()
        };
        GroupQuery {
            rule: Arc::new(rule),
            range: RuleWindow {
                start: at(11),
                end: at(12),
            },
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            only: Vec::new(),
            exclude: Vec::new(),
            cardinality_field: None,
            first_event: false,
            after: None,
            size: 500,
        }
    }

    #[test]
    fn a_batch_of_terms_is_a_composite_aggregation_restricted_to_those_terms() {
        let mut q = query(&["user.name", "source.ip"]);
        q.only = vec![vec![json!("alice"), json!("10.0.0.1")]];
        q.after = Some(vec![json!("a"), json!("10.0.0.0")]);
        q.first_event = true;
        let range = json!({"range": {"@timestamp": {"gte": "2025-01-01T11:00:00.000Z",
            "lte": "2025-01-01T12:00:00.000Z", "format": "strict_date_optional_time"}}});
        assert_eq!(
            body(json!({"match_all": {}}), &q),
            json!({
                "size": 0,
                "query": {"bool": {"filter": [
                    {"match_all": {}},
                    range,
                    {"bool": {"should": [{"bool": {"filter": [
                        {"term": {"user.name": "alice"}}, {"term": {"source.ip": "10.0.0.1"}}]}}],
                      "minimum_should_match": 1}}
                ]}},
                "aggs": {"groups": {
                    "composite": {"size": 500,
                        "sources": [{"user.name": {"terms": {"field": "user.name"}}},
                                    {"source.ip": {"terms": {"field": "source.ip"}}}],
                        "after": {"user.name": "a", "source.ip": "10.0.0.0"}},
                    "aggs": {
                        "first_seen": {"min": {"field": "@timestamp"}},
                        "last_seen": {"max": {"field": "@timestamp"}},
                        "first_event": {"top_hits": {"size": 1, "_source": true, "sort": [
                            {"@timestamp": {"order": "asc", "unmapped_type": "date"}},
                            {"event.id": {"order": "asc", "unmapped_type": "keyword"}}]}}
                    }}}
            })
        );
    }

    #[test]
    fn the_signal_history_excludes_counted_events_and_no_fields_ask_for_the_total() {
        let mut q = query(&[]);
        q.cardinality_field = Some("source.ip".into());
        q.exclude = vec![(Vec::new(), q.range.start)];
        let body = body(json!({"match_all": {}}), &q);
        assert_eq!(body["track_total_hits"], json!(true));
        assert_eq!(
            body["query"]["bool"]["must_not"],
            json!([{"bool": {"filter": [{"range": {"@timestamp": {
                "lte": "2025-01-01T11:00:00.000Z", "format": "strict_date_optional_time"}}}]}}])
        );
        assert_eq!(
            body["aggs"]["cardinality_count"],
            json!({"cardinality": {"field": "source.ip"}})
        );
        let page = parse(
            &json!({"hits": {"total": {"value": 4}}, "aggregations": {
                "first_seen": {"value": 1735729200000.0}, "last_seen": {"value": 1735730000000.0},
                "cardinality_count": {"value": 2}}}),
            &q,
            "test",
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(page.groups.len(), 1);
        assert_eq!(page.groups[0].count, 4);
        assert_eq!(page.groups[0].cardinality, Some(2));
        assert_eq!(page.after, None);
    }

    #[test]
    fn composite_pages_carry_keys_and_after_and_shard_failures_fail_the_page() {
        let q = query(&["user.name"]);
        let page = parse(
            &json!({"aggregations": {"groups": {"after_key": {"user.name": "bob"}, "buckets": [
                {"key": {"user.name": "alice"}, "doc_count": 2},
                {"key": {"user.name": "bob"}, "doc_count": 1}]}}}),
            &q,
            "test",
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(page.groups.len(), 2);
        assert_eq!(page.after, Some(vec![json!("bob")]));
        let failed = parse(
            &json!({"_shards": {"failures": [{"index": "logs-1", "reason": {"reason": "boom"}}]}}),
            &q,
            "test",
        );
        assert!(matches!(failed, Err(PortError::Transient(m)) if m.contains("boom")));
        let malformed = parse(&json!({"aggregations": {"groups": {}}}), &q, "test");
        assert!(matches!(malformed, Err(PortError::Permanent(_))));
    }
}

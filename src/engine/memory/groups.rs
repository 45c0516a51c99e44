//! Groups of matching events held in memory, bucketed as Elasticsearch's composite
//! aggregation buckets them: every combination of one value per field, arrays expanded,
//! events missing a field in no group, groups in ascending key order, paged by `after`.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::alert::fields::lookup;
use crate::engine::ports::{EventHit, Group, GroupPage, GroupQuery};
use crate::new_terms::{indexed_values, term_key};
use crate::threshold::group_keys;

struct Tally {
    key: Vec<Value>,
    count: u64,
    distinct: BTreeSet<String>,
    first_event: EventHit,
    last: EventHit,
}

/// The page of groups `query` asks for, over `hits` (the rule's matching events in range).
pub(super) fn group(hits: Vec<EventHit>, query: &GroupQuery) -> GroupPage {
    let mut tallies: HashMap<String, Tally> = HashMap::new();
    for hit in hits {
        let per_field: Vec<Vec<Value>> = query
            .fields
            .iter()
            .map(|field| indexed_values(&hit.source, field))
            .collect();
        if excluded(&per_field, &hit, query) {
            continue;
        }
        let distinct: Vec<String> = query
            .cardinality_field
            .as_deref()
            .map(|field| {
                indexed_values(&hit.source, field)
                    .iter()
                    .map(Value::to_string)
                    .collect()
            })
            .unwrap_or_default();
        for key in group_keys(per_field) {
            if !query.only.is_empty() && !query.only.contains(&key) {
                continue;
            }
            if query
                .after
                .as_ref()
                .is_some_and(|after| compare_keys(&key, after) != Ordering::Greater)
            {
                continue;
            }
            let tally = tallies.entry(term_key(&key)).or_insert_with(|| Tally {
                key: key.clone(),
                count: 0,
                distinct: BTreeSet::new(),
                first_event: hit.clone(),
                last: hit.clone(),
            });
            tally.count += 1;
            tally.distinct.extend(distinct.iter().cloned());
            if earlier(&hit, &tally.first_event) {
                tally.first_event = hit.clone();
            }
            if hit.timestamp > tally.last.timestamp {
                tally.last = hit.clone();
            }
        }
    }
    let mut tallies: Vec<Tally> = tallies.into_values().collect();
    tallies.sort_by(|a, b| compare_keys(&a.key, &b.key));
    let more = tallies.len() > query.size;
    tallies.truncate(query.size);
    let after = more
        .then(|| tallies.last().map(|tally| tally.key.clone()))
        .flatten();
    let groups = tallies
        .into_iter()
        .map(|tally| Group {
            key: tally.key,
            count: tally.count,
            first: Some(tally.first_event.timestamp),
            last: Some(tally.last.timestamp),
            cardinality: query
                .cardinality_field
                .is_some()
                .then_some(tally.distinct.len() as u64),
            first_event: query.first_event.then_some(tally.first_event),
        })
        .collect();
    GroupPage {
        groups,
        after,
        warnings: Vec::new(),
    }
}

/// Whether a signal-history entry removes the event, as the `must_not` filter Kibana adds
/// does on a cluster: the event is at or before the entry's time and holds each of the
/// entry's values (an array field holding it matches, as a `term` query does).
fn excluded(per_field: &[Vec<Value>], hit: &EventHit, query: &GroupQuery) -> bool {
    query.exclude.iter().any(|(group, last)| {
        hit.timestamp <= *last
            && group
                .iter()
                .zip(per_field)
                .all(|(value, values)| values.contains(value))
    })
}

/// The earliest event by time, then `event.id` (the order the cluster's `top_hits` sorts
/// in, and the identity offline scans break ties with), then index and id.
fn earlier(a: &EventHit, b: &EventHit) -> bool {
    let event_id = |hit: &EventHit| {
        lookup(&hit.source, "event.id")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()
    };
    (a.timestamp, event_id(a), &a.index, &a.id) < (b.timestamp, event_id(b), &b.index, &b.id)
}

/// Composite key order: field by field, each in its values' natural order.
pub(crate) fn compare_keys(a: &[Value], b: &[Value]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| compare_values(x, y))
        .find(|order| order.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(value: &Value) -> u8 {
        match value {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) | Value::Object(_) => 4,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a)
            .cmp(&rank(b))
            .then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;
    use crate::engine::ports::RuleWindow;
    use crate::rule::Rule;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap_or_default()
    }

    fn hit(id: &str, seconds: i64, source: Value) -> EventHit {
        EventHit {
            index: "logs".into(),
            id: id.into(),
            source,
            timestamp: at(seconds),
            sort: Vec::new(),
        }
    }

    fn query(fields: &[&str]) -> GroupQuery {
        let rule: Rule = serde_json::from_value(json!({
            "rule_id": "r", "name": "r", "type": "threshold", "language": "kuery",
            "query": "*", "risk_score": 1, "severity": "low"
        }))
        .unwrap_or_else(|error| panic!("test rule: {error}"));
        GroupQuery {
            rule: Arc::new(rule),
            range: RuleWindow {
                start: at(0),
                end: at(100),
            },
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            only: Vec::new(),
            exclude: Vec::new(),
            cardinality_field: None,
            first_event: true,
            after: None,
            size: 10,
        }
    }

    #[test]
    fn arrays_expand_into_every_combination_and_missing_fields_give_no_group() {
        let hits = vec![
            hit("1", 5, json!({"user": ["b", "a"], "ip": "10.0.0.1"})),
            hit("2", 3, json!({"user": "a", "ip": "10.0.0.1"})),
            hit("3", 4, json!({"user": "c"})),
        ];
        let page = group(hits, &query(&["user", "ip"]));
        let keys: Vec<&Vec<Value>> = page.groups.iter().map(|g| &g.key).collect();
        assert_eq!(
            keys,
            [
                &vec![json!("a"), json!("10.0.0.1")],
                &vec![json!("b"), json!("10.0.0.1")]
            ]
        );
        assert_eq!(page.groups[0].count, 2);
        assert_eq!(
            page.groups[0].first_event.as_ref().map(|h| h.id.as_str()),
            Some("2")
        );
        assert_eq!(page.groups[0].first, Some(at(3)));
        assert_eq!(page.groups[0].last, Some(at(5)));
        assert_eq!(page.after, None);
    }

    #[test]
    fn pages_follow_the_key_order_and_history_removes_whole_events() {
        let hits: Vec<EventHit> = (0..5)
            .map(|n| hit(&n.to_string(), n, json!({"n": 10 - n})))
            .collect();
        let mut q = query(&["n"]);
        q.size = 2;
        let first = group(hits.clone(), &q);
        assert_eq!(
            first
                .groups
                .iter()
                .map(|g| g.key[0].clone())
                .collect::<Vec<_>>(),
            [json!(6), json!(7)]
        );
        q.after = first.after.clone();
        let second = group(hits.clone(), &q);
        assert_eq!(
            second
                .groups
                .iter()
                .map(|g| g.key[0].clone())
                .collect::<Vec<_>>(),
            [json!(8), json!(9)]
        );
        q.after = second.after;
        q.exclude = vec![(vec![json!(10)], at(0))];
        let last = group(hits, &q);
        assert!(last.groups.is_empty(), "the only event of 10 is excluded");
        assert_eq!(last.after, None);
    }

    #[test]
    fn no_fields_make_one_group_and_cardinality_counts_distinct_values() {
        let hits = vec![
            hit("1", 1, json!({"a": "x"})),
            hit("2", 2, json!({"a": ["x", "y"]})),
            hit("3", 3, json!({})),
        ];
        let mut q = query(&[]);
        q.cardinality_field = Some("a".into());
        let page = group(hits, &q);
        assert_eq!(page.groups.len(), 1);
        assert_eq!(page.groups[0].count, 3);
        assert_eq!(page.groups[0].cardinality, Some(2));
    }
}

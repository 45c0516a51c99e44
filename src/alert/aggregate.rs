//! Alerts of the aggregating rule types: a new term raised on the event that first carried
//! it, and a threshold group raised on a summary document of the group. Both ids hash what
//! the alert is about (the term and its event, the group and its first counted event), not
//! the run, so a re-run or a backfill over the same data writes nothing twice.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::builder::{AlertBuilder, AlertEvent};
use super::doc::AlertDoc;
use super::fields::format_timestamp;
use super::id::{alert_id, event_identity};
use crate::new_terms::term_key;
use crate::threshold::{Bucket, Threshold, group_text};

/// The id of the alert on `term`, first seen on `event`. One event carrying two new terms
/// (two array values) raises two alerts.
pub fn new_terms_id(builder: &AlertBuilder, event: &AlertEvent<'_>, term: &[Value]) -> String {
    let identity = event_identity(builder.identity(), event.index, event.id, event.source);
    alert_id(
        builder.rule_id(),
        &format!("{identity}|new_terms:{}", term_key(term)),
    )
}

/// The alert on `event` for the new `term`, with `kibana.alert.new_terms` set.
pub fn new_terms_alert(
    builder: &AlertBuilder,
    event: &AlertEvent<'_>,
    term: &[Value],
    id: String,
) -> AlertDoc {
    let mut alert = builder.build_with_id(event, id);
    if let Value::Object(doc) = &mut alert.document {
        doc.insert("kibana.alert.new_terms".into(), Value::Array(term.to_vec()));
    }
    alert
}

/// The id of a threshold alert: the rule, the group and the time of its first counted event.
/// A later run counts only events after the last one alerted (the signal history), so its
/// bucket starts later and gets another id; the same run repeated gets the same one.
pub fn threshold_id(rule_id: &str, bucket: &Bucket) -> String {
    alert_id(
        rule_id,
        &format!("threshold:{}:{}", group_text(&bucket.key), bucket.first),
    )
}

fn time_of(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

/// Put `value` at the dotted `path` of `doc`, creating objects on the way, as Kibana builds
/// a threshold alert's source from the bucket's key.
fn set_path(doc: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = doc
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(child) = child {
                set_path(child, rest, value);
            }
        }
    }
}

/// The alert on a threshold group: its source holds the group's field values and the time of
/// its last counted event; `kibana.alert.threshold_result` the terms, count, first event
/// time and cardinality.
pub fn threshold_alert(
    builder: &AlertBuilder,
    index: &str,
    threshold: &Threshold,
    bucket: &Bucket,
) -> AlertDoc {
    let id = threshold_id(builder.rule_id(), bucket);
    let last = time_of(bucket.last);
    let mut source = Map::new();
    source.insert("@timestamp".into(), json!(format_timestamp(last)));
    let mut terms = Vec::new();
    for (field, value) in threshold.field.iter().zip(&bucket.key) {
        set_path(&mut source, field, value.clone());
        terms.push(json!({"field": field, "value": value}));
    }
    let source = Value::Object(source);
    let event = AlertEvent {
        index,
        id: &id,
        source: &source,
        timestamp: last,
    };
    let mut alert = builder.build_with_id(&event, id.clone());
    let mut result = json!({
        "terms": terms,
        "count": bucket.count,
        "from": format_timestamp(time_of(bucket.first)),
    });
    if let (Some(cardinality), Some(seen)) = (&threshold.cardinality, bucket.cardinality) {
        result["cardinality"] = json!([{"field": cardinality.field, "value": seen}]);
    }
    if let Value::Object(doc) = &mut alert.document {
        doc.insert("kibana.alert.threshold_result".into(), result);
    }
    alert
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::RunContext;
    use crate::rule::Rule;

    fn builder() -> AlertBuilder {
        let rule: Rule = serde_json::from_value(json!({
            "rule_id": "r1", "name": "Rule", "type": "threshold", "language": "kuery",
            "query": "*", "risk_score": 21, "severity": "low"
        }))
        .expect("a rule");
        AlertBuilder::new(&rule, &RunContext::scheduled(time_of(1_700_000_000_000)))
    }

    #[test]
    fn each_new_term_of_one_event_has_its_own_id() {
        let builder = builder();
        let source = json!({"event": {"id": "e1"}, "@timestamp": "2023-01-01T00:00:00Z"});
        let event = AlertEvent {
            index: "logs",
            id: "d1",
            source: &source,
            timestamp: time_of(0),
        };
        let a = new_terms_id(&builder, &event, &[json!("alice")]);
        let b = new_terms_id(&builder, &event, &[json!("bob")]);
        assert_ne!(a, b);
        assert_eq!(a, new_terms_id(&builder, &event, &[json!("alice")]));
        let alert = new_terms_alert(&builder, &event, &[json!("alice")], a);
        assert_eq!(alert.document["kibana.alert.new_terms"], json!(["alice"]));
    }

    #[test]
    fn a_threshold_alert_carries_the_group_and_its_result() {
        let threshold = Threshold {
            field: vec!["user.name".into(), "source.ip".into()],
            value: 3,
            cardinality: Some(crate::threshold::Cardinality {
                field: "event.action".into(),
                value: 2,
            }),
        };
        let bucket = Bucket {
            key: vec![json!("alice"), json!("10.0.0.1")],
            count: 4,
            cardinality: Some(2),
            first: 1_700_000_000_000,
            last: 1_700_000_060_000,
        };
        let alert = threshold_alert(&builder(), "logs", &threshold, &bucket);
        let doc = &alert.document;
        assert_eq!(doc["user"]["name"], json!("alice"));
        assert_eq!(doc["source"]["ip"], json!("10.0.0.1"));
        assert_eq!(
            doc["kibana.alert.threshold_result"],
            json!({
                "terms": [{"field": "user.name", "value": "alice"}, {"field": "source.ip", "value": "10.0.0.1"}],
                "count": 4,
                "from": "2023-11-14T22:13:20.000Z",
                "cardinality": [{"field": "event.action", "value": 2}],
            })
        );
        assert_eq!(
            doc["kibana.alert.original_time"],
            json!("2023-11-14T22:14:20.000Z")
        );
        assert_eq!(alert.id, threshold_id("r1", &bucket));
        let later = Bucket {
            first: bucket.first + 1,
            ..bucket.clone()
        };
        assert_ne!(alert.id, threshold_id("r1", &later));
    }
}

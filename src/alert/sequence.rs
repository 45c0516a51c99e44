//! Alerts of an EQL sequence, as Kibana's EQL executor builds them
//! (`rule_types/eql/build_alert_group_from_sequence.ts`): one building-block alert per event,
//! and a shell alert that ties them together. All share `kibana.alert.group.id`, the shell's
//! id; each block carries its position in the sequence (`kibana.alert.group.index`) and
//! `kibana.alert.building_block_type: default`, so the Alerts page shows the shell alone.
//!
//! Ids: as in Kibana, a block's id hashes every event of the sequence and its own position, so
//! an event in two sequences gets a block in each; the shell's hashes the events alone.
//! rule-runner hashes event identities, as its other ids do, so re-runs write nothing twice.

use serde_json::{Map, Value, json};

use super::builder::{AlertBuilder, AlertEvent};
use super::doc::AlertDoc;
use super::id::{alert_id, event_identity};

/// The building blocks of `events` (in sequence order), then the shell alert.
pub fn sequence_alerts(builder: &AlertBuilder, events: &[AlertEvent<'_>]) -> Vec<AlertDoc> {
    let identities: Vec<String> = events
        .iter()
        .map(|e| event_identity(builder.identity(), e.index, e.id, e.source))
        .collect();
    let base = format!("sequence:{}", identities.join("|"));
    let shell_id = alert_id(builder.rule_id(), &base);
    let mut blocks: Vec<AlertDoc> = events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let mut block =
                builder.build_with_id(event, alert_id(builder.rule_id(), &format!("{base}#{i}")));
            if let Value::Object(doc) = &mut block.document {
                doc.insert("kibana.alert.building_block_type".into(), json!("default"));
                doc.insert("kibana.alert.group.id".into(), json!(shell_id));
                doc.insert("kibana.alert.group.index".into(), json!(i));
            }
            block
        })
        .collect();
    let Some(last) = blocks.last() else {
        return blocks;
    };
    let event_time = last.event_time;
    // Kibana takes the shell's original time from the sequence's first event.
    let original_time = blocks[0]
        .document
        .get("kibana.alert.original_time")
        .cloned();
    let mut shell = blocks
        .iter()
        .map(|block| block.document.clone())
        .reduce(|a, b| intersection(&a, &b).unwrap_or(Value::Object(Map::new())))
        .unwrap_or(Value::Object(Map::new()));
    let rule_uuid = builder.rule_uuid().to_string();
    let ancestors: Vec<Value> = blocks
        .iter()
        .flat_map(|block| {
            let mut chain: Vec<Value> = block
                .document
                .get("kibana.alert.ancestors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            chain.push(
                json!({"id": block.id, "type": "signal", "index": "", "depth": 1,
                              "rule": rule_uuid}),
            );
            chain
        })
        .collect();
    if let Value::Object(doc) = &mut shell {
        for field in [
            "kibana.alert.building_block_type",
            "kibana.alert.group.index",
        ] {
            doc.remove(field);
        }
        doc.insert("kibana.alert.uuid".into(), json!(shell_id));
        doc.insert("kibana.alert.group.id".into(), json!(shell_id));
        doc.insert("kibana.alert.ancestors".into(), Value::Array(ancestors));
        doc.insert("kibana.alert.depth".into(), json!(2));
        if let Some(time) = original_time {
            doc.insert("kibana.alert.original_time".into(), time);
        }
        doc.insert("event.kind".into(), json!("signal"));
    }
    blocks.push(AlertDoc {
        id: shell_id,
        rule_id: builder.rule_id().to_owned(),
        event_time,
        document: shell,
    });
    blocks
}

/// What two alert documents have in common, as Kibana merges the building blocks into the
/// shell: equal values kept, objects compared key by key, arrays (or an array and a value)
/// reduced to their shared elements; `None` when nothing is shared.
fn intersection(a: &Value, b: &Value) -> Option<Value> {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return None;
    };
    let mut out = Map::new();
    for (key, left) in a {
        let Some(right) = b.get(key) else { continue };
        let shared = match (left, right) {
            (Value::Object(_), Value::Object(_)) => intersection(left, right),
            _ if left == right => Some(left.clone()),
            (Value::Array(l), Value::Array(r)) => Some(shared_items(l, r)),
            (Value::Array(l), other) => Some(shared_items(l, std::slice::from_ref(other))),
            (other, Value::Array(r)) => Some(shared_items(std::slice::from_ref(other), r)),
            _ => None,
        };
        if let Some(shared) = shared {
            out.insert(key.clone(), shared);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn shared_items(left: &[Value], right: &[Value]) -> Value {
    let mut items: Vec<Value> = Vec::new();
    for item in left {
        if right.contains(item) && !items.contains(item) {
            items.push(item.clone());
        }
    }
    Value::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersection_keeps_what_every_block_shares() {
        let a = json!({"user": {"name": "bob", "id": "1"}, "event.action": "A", "tags": ["x", "y"], "n": 1});
        let b =
            json!({"user": {"name": "bob", "id": "2"}, "event.action": "B", "tags": ["y"], "n": 1});
        assert_eq!(
            intersection(&a, &b),
            Some(json!({"user": {"name": "bob"}, "tags": ["y"], "n": 1}))
        );
        assert_eq!(intersection(&json!({"a": 1}), &json!({"a": 2})), None);
    }
}

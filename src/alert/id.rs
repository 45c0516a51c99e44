//! Deterministic alert ids and stable rule uuids.
//!
//! rule-runner departs from Kibana's id on purpose (`kibana-detection-engine.md` §9): the id
//! hashes the *rule_id* and the event's identity, not the concrete index and the rule's saved
//! object, so the same CloudTrail event indexed under both `filebeat-*` and
//! `logs-aws.cloudtrail-*` yields one alert, and any instance computes the same id.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::fields::lookup;

/// Namespace of rule uuids (UUID v5). Fixed forever: changing it would give every rule a new
/// `kibana.alert.rule.uuid` and split its alerts in Kibana.
const RULE_NAMESPACE: Uuid = Uuid::from_u128(0xcbe7_61cc_0f3d_4508_b959_90af_fea8_178d);

/// Lowercase hex SHA-256 of `input` (UTF-8).
pub fn sha256_hex(input: &str) -> String {
    format!("{:x}", Sha256::digest(input.as_bytes()))
}

/// How an event is identified for deduplication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityStrategy {
    /// `event.id` when the event has one (CloudTrail's eventID), else `_index/_id`. One event
    /// stored in several indices gives one alert.
    #[default]
    EventId,
    /// Always `_index/_id`: every stored copy of an event is alerted separately.
    IndexAndId,
}

/// The identity of an event under `strategy`.
pub fn event_identity(strategy: IdentityStrategy, index: &str, id: &str, source: &Value) -> String {
    if strategy == IdentityStrategy::EventId
        && let Some(event_id) = event_id(source)
    {
        return event_id;
    }
    format!("{index}/{id}")
}

/// `event.id` as text, when it is a non-empty string or number (or a one-element array of one).
fn event_id(source: &Value) -> Option<String> {
    let value = match lookup(source, "event.id")? {
        Value::Array(items) if items.len() == 1 => &items[0],
        other => other,
    };
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The alert id (and `kibana.alert.uuid`): `sha256_hex(rule_id + ":" + identity)`.
pub fn alert_id(rule_id: &str, identity: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rule_id.as_bytes());
    hasher.update(b":");
    hasher.update(identity.as_bytes());
    format!("{:x}", hasher.finalize())
}

/// The stable `kibana.alert.rule.uuid` of a rule: UUID v5 of its `rule_id`.
pub fn rule_uuid(rule_id: &str) -> Uuid {
    Uuid::new_v5(&RULE_NAMESPACE, rule_id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alert_id_is_the_hash_of_rule_id_colon_identity() {
        assert_eq!(alert_id("r", "e"), sha256_hex("r:e"));
        // Known SHA-256 vector: sha256("abc").
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn identity_prefers_event_id_unless_configured_otherwise() {
        let src = json!({"event": {"id": "E1"}});
        assert_eq!(
            event_identity(IdentityStrategy::EventId, "i", "d", &src),
            "E1"
        );
        assert_eq!(
            event_identity(IdentityStrategy::IndexAndId, "i", "d", &src),
            "i/d"
        );
        let flat = json!({"event.id": ["E2"]});
        assert_eq!(
            event_identity(IdentityStrategy::EventId, "i", "d", &flat),
            "E2"
        );
        for no_id in [
            json!({}),
            json!({"event": {"id": ""}}),
            json!({"event": {"id": null}}),
        ] {
            assert_eq!(
                event_identity(IdentityStrategy::EventId, "i", "d", &no_id),
                "i/d"
            );
        }
    }

    #[test]
    fn rule_uuid_is_stable_and_distinct() {
        assert_eq!(rule_uuid("a"), rule_uuid("a"));
        assert_ne!(rule_uuid("a"), rule_uuid("b"));
        assert_eq!(rule_uuid("a").get_version_num(), 5);
    }
}

//! Kibana-compatible alert documents and their deterministic ids, shared by `run` and `scan`.
//!
//! - [`id`]: the alert id `sha256_hex(rule_id + ":" + identity)` and the stable rule uuid.
//! - [`reason`](mod@reason): the human sentence Kibana writes into `kibana.alert.reason`.
//! - [`doc`]: the event a search found ([`EventHit`]) and the alert to write ([`AlertDoc`]).
//! - [`builder`]: the document itself (event `_source` plus flat `kibana.alert.*` fields).
//! - [`overrides`]: `severity_mapping`, `risk_score_mapping` and `rule_name_override`, per
//!   event, as Kibana applies them.
//! - [`aggregate`]: the alerts of `new_terms` and `threshold` rules (the term or group they
//!   are about in the document and in the id).
//! - [`compliance`]: source values the ECS mapping would refuse, removed as Kibana removes
//!   them, so that one bad value does not cost the whole alert.
//! - [`fields`]: reading dotted paths out of event documents that mix nested and flat keys.

pub mod aggregate;
pub mod builder;
pub mod compliance;
pub mod doc;
pub mod fields;
pub mod id;
pub mod overrides;
pub mod reason;
pub mod sequence;

pub use builder::{
    AlertBuilder, AlertEvent, DEFAULT_KIBANA_VERSION, DEFAULT_SPACE, ExecutionType, RunContext,
};
pub use doc::{AlertDoc, EventHit};
pub use id::{IdentityStrategy, alert_id, event_identity, rule_uuid, sha256_hex};
pub use reason::reason;

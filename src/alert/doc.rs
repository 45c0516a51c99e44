//! What the alert builder reads and writes: an event found by a search, and an alert ready to
//! be written. They live here, below the engine, so that the builder (shared by `scan` and the
//! service) needs nothing of the engine; the engine's ports carry them.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One event found by a search.
#[derive(Debug, Clone, PartialEq)]
pub struct EventHit {
    /// The concrete index the event lives in (a backing index, never a pattern).
    pub index: String,
    pub id: String,
    pub source: Value,
    /// The event time used for ordering and for the watermark: the rule's timestamp
    /// field, or `@timestamp` when the override is absent and fallback is allowed.
    pub timestamp: DateTime<Utc>,
    /// Opaque sort values for `search_after`.
    pub sort: Vec<Value>,
}

/// An alert ready to be written: its deterministic id and the full document.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDoc {
    pub id: String,
    pub rule_id: String,
    /// Event time of the source event, for watermark bookkeeping.
    pub event_time: DateTime<Utc>,
    pub document: Value,
}

//! The narrow interfaces between the run logic and the outside world.
//!
//! The engine never talks to Elasticsearch directly: it searches an [`EventSource`], writes
//! to an [`AlertSink`] and remembers where it got to in a [`StateStore`]; the scheduler
//! takes [`Leases`] and, before each run, [`RuleAmendments`]. The Elasticsearch adapter
//! implements the first three (and leases), Kibana's the amendments; the tests and benchmarks use the in-memory versions, so
//! every scheduling, dedup and cap rule is exercised without a cluster.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rule::Rule;

/// An inclusive time range `[start, end]` that one search covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What to search: one rule over one window.
#[derive(Debug, Clone)]
pub struct WindowQuery {
    pub rule: Arc<Rule>,
    pub window: RuleWindow,
    /// Hits per page (Kibana: `min(max_signals, 100)`).
    pub page_size: usize,
}

// The event and alert types belong to `alert`, which builds one from the other; the ports
// carry them.
pub use crate::alert::{AlertDoc, EventHit};

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Worth retrying later: the cluster is down, overloaded or timed out.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help until someone changes something (auth, mapping, config).
    #[error("{0}")]
    Permanent(String),
    /// The cluster refused a query with more clauses than it allows: the same request will
    /// fail again, a smaller one may pass. Permanent for a caller that cannot shrink it.
    #[error("{0}")]
    TooManyClauses(String),
}

/// A search in progress over one window, oldest events first.
#[async_trait]
pub trait HitStream: Send {
    /// The next page, or `None` when the window is exhausted.
    async fn next_page(&mut self) -> Result<Option<Vec<EventHit>>, PortError>;
    /// Release server-side resources (a point in time). Safe to call more than once.
    async fn close(&mut self) -> Result<(), PortError>;
    /// Warnings met while searching (a missing index pattern, shard failures).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A group-by over one time range: the distinct combinations of values of `fields` among
/// the rule's matching events, as a composite aggregation buckets them (every combination
/// of one value per field; an event missing a field falls in no group), in key order. The
/// aggregating rule types are built from these requests (`engine::aggregate`).
#[derive(Debug, Clone)]
pub struct GroupQuery {
    pub rule: Arc<Rule>,
    pub range: RuleWindow,
    /// Group-by fields; none gives one group `[]` of every matching event.
    pub fields: Vec<String>,
    /// Only events of these groups (new_terms' history check and first events); empty: all.
    pub only: Vec<Vec<Value>>,
    /// Events of a group at or before its time are not counted (threshold's signal history).
    pub exclude: Vec<(Vec<Value>, DateTime<Utc>)>,
    /// Count the distinct values of this field per group.
    pub cardinality_field: Option<String>,
    /// Return each group's earliest event (new_terms' alert source).
    pub first_event: bool,
    /// The key of the last group of the previous page.
    pub after: Option<Vec<Value>>,
    pub size: usize,
}

/// One group of a [`GroupQuery`].
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub key: Vec<Value>,
    pub count: u64,
    /// The earliest and latest event time of the group.
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub cardinality: Option<u64>,
    pub first_event: Option<EventHit>,
}

/// A page of groups; `after` is set while more may follow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupPage {
    pub groups: Vec<Group>,
    pub after: Option<Vec<Value>>,
    /// Warnings met while searching (a missing index pattern, shard failures).
    pub warnings: Vec<String>,
}

/// An EQL search: one rule's statement over one window, as Kibana's EQL executor asks it
/// (one `_eql/search` of `size` results: no paging).
#[derive(Debug, Clone)]
pub struct EqlQuery {
    pub rule: Arc<Rule>,
    pub window: RuleWindow,
    pub size: usize,
}

/// What an EQL search found: matching events (event queries) or sequences, each its events
/// in sequence order.
#[derive(Debug, Clone, Default)]
pub struct EqlReply {
    pub events: Vec<EventHit>,
    pub sequences: Vec<Vec<EventHit>>,
    pub warnings: Vec<String>,
}

/// Where events come from.
#[async_trait]
pub trait EventSource: Send + Sync {
    async fn search(&self, query: WindowQuery) -> Result<Box<dyn HitStream>, PortError>;
    /// One page of groups of the rule's matching events over a time range. A source that
    /// cannot aggregate says so, and the aggregating rule types fail on it with that reason.
    async fn groups(&self, query: GroupQuery) -> Result<GroupPage, PortError> {
        Err(PortError::Permanent(format!(
            "rule `{}`: this event source cannot group events, which `{}` rules need",
            query.rule.rule_id, query.rule.rule_type
        )))
    }
    /// An EQL rule's events or sequences over a window. A source without EQL says so, and
    /// EQL rules fail on it with that reason.
    async fn eql(&self, query: EqlQuery) -> Result<EqlReply, PortError> {
        Err(PortError::Permanent(format!(
            "rule `{}`: this event source cannot run EQL",
            query.rule.rule_id
        )))
    }
}

/// What happened to one alert in a bulk write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Created,
    /// The id exists already (HTTP 409): not an error.
    Duplicate,
    /// Still failing after retries (429, 5xx, timeout): the watermark must not pass it.
    Failed(String),
    /// The cluster refused the document for good (400-class): dead-letter it.
    Rejected(String),
}

/// Where alerts go.
#[async_trait]
pub trait AlertSink: Send + Sync {
    /// Which of these ids already exist.
    async fn existing_ids(&self, ids: &[String]) -> Result<HashSet<String>, PortError>;
    /// Create the alerts; one outcome per input, in order.
    async fn create(&self, alerts: &[AlertDoc]) -> Result<Vec<WriteOutcome>, PortError>;
    /// Keep an alert the cluster refused, with the reason, for a person to look at.
    async fn dead_letter(&self, alert: &AlertDoc, reason: &str) -> Result<(), PortError>;
    /// Which of these ids were dead-lettered already. Overlapping windows re-read an event
    /// for up to `from / interval` runs; knowing it was dead-lettered keeps those runs from
    /// rejecting and dead-lettering it again. The default knows of none (safe, but repeats).
    async fn dead_lettered_ids(&self, _ids: &[String]) -> Result<HashSet<String>, PortError> {
        Ok(HashSet::new())
    }
}

/// Per-rule progress, persisted so a restart neither repeats nor skips work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    pub rule_id: String,
    /// End of the last window whose matching events were all alerted (or dead-lettered).
    pub watermark: Option<DateTime<Utc>>,
    pub last_run_start: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    /// Time ranges that were not searched and are beyond the catch-up limit.
    #[serde(default)]
    pub open_gaps: Vec<RuleWindow>,
    /// A threshold rule's signal history: per alerted group, the last event time counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub threshold_history: Vec<ThresholdEntry>,
}

/// One entry of a threshold rule's signal history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdEntry {
    pub group: Vec<Value>,
    pub last: DateTime<Utc>,
}

/// Where rule state and run records are kept.
#[async_trait]
pub trait StateStore: Send + Sync {
    async fn load(&self, rule_id: &str) -> Result<Option<RuleState>, PortError>;
    async fn save(&self, state: &RuleState) -> Result<(), PortError>;
    /// Append one run's record (what Kibana's rule monitoring shows).
    async fn record_execution(&self, record: &Value) -> Result<(), PortError>;
}

/// Who may run a rule now, when several instances share one cluster.
///
/// The scheduler asks before every run and releases afterwards; a single instance uses
/// [`SoleInstance`], which always grants. The lease store behind a real implementation must
/// make a claim atomic (Elasticsearch: `if_seq_no` / `if_primary_term`).
#[async_trait]
pub trait Leases: Send + Sync {
    /// Take or renew the lease on `rule_id` for `ttl`; `false` when another live instance
    /// holds it.
    async fn acquire(&self, rule_id: &str, ttl: std::time::Duration) -> Result<bool, PortError>;
    /// Give the lease up early (after a run), so another instance need not wait for expiry.
    async fn release(&self, rule_id: &str) -> Result<(), PortError>;
}

/// What is added to a rule elsewhere and must hold from its next run on: the exceptions
/// analysts attach to it in Kibana. The scheduler asks before every run, so an exception
/// added while the service runs applies at the rule's next run, without a restart.
#[async_trait]
pub trait RuleAmendments: Send + Sync {
    /// `rule` as its next run must see it (`rule` itself when nothing is added). An error
    /// skips the run: running without the amendments could alert on what they exclude.
    async fn amend(&self, rule: &Arc<Rule>) -> Result<Arc<Rule>, PortError>;
}

/// The only instance: every claim succeeds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SoleInstance;

#[async_trait]
impl Leases for SoleInstance {
    async fn acquire(&self, _rule_id: &str, _ttl: std::time::Duration) -> Result<bool, PortError> {
        Ok(true)
    }
    async fn release(&self, _rule_id: &str) -> Result<(), PortError> {
        Ok(())
    }
}

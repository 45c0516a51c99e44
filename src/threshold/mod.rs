//! Threshold semantics, as Kibana's `threshold` rule type applies them
//! (`docs/new-terms-and-threshold.md` gives the sources).
//!
//! A run over `[from, to]` groups the matching events by the values of `threshold.field`
//! (none to three fields; no field: one group of everything), keeps the groups with at
//! least `threshold.value` events (and, with `cardinality`, at least that many distinct
//! values of its field) and raises one alert per group. Events of a group already alerted
//! up to some time are not counted again while that time is within the window: Kibana's
//! signal history, kept by [`SignalHistory`].
//!
//! - [`Threshold`]: the rule's parameters.
//! - [`group_keys`]: the groups one event falls in (composite aggregation buckets).
//! - [`evaluate`]: offline, the alerts the service would have raised at the given run times.
//!
//! Times are epoch milliseconds; this module imports nothing of the crate.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use itertools::Itertools;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Kibana accepts up to three threshold fields.
pub const MAX_FIELDS: usize = 3;

/// `threshold` of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    /// Group-by fields, in the rule's order; empty for one group.
    pub field: Vec<String>,
    /// Events a group needs (`>=`).
    pub value: u64,
    /// Distinct values of another field a group needs (`>=`).
    pub cardinality: Option<Cardinality>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cardinality {
    pub field: String,
    pub value: u64,
}

/// A group: a value for each threshold field, in the rule's field order.
pub type GroupKey = Vec<Value>;

/// The groups an event falls in given each threshold field's values (arrays already
/// expanded, nulls dropped): every combination of one value per field. With no threshold
/// field there is one group, `[]`; an event missing a field falls in none.
pub fn group_keys(per_field: Vec<Vec<Value>>) -> Vec<GroupKey> {
    if per_field.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    if per_field.is_empty() {
        return vec![Vec::new()];
    }
    per_field.into_iter().multi_cartesian_product().collect()
}

/// The text that identifies a group (its JSON), for maps and alert ids.
pub fn group_text(key: &[Value]) -> String {
    Value::Array(key.to_vec()).to_string()
}

/// What a group's bucket holds: Kibana's `threshold_result` before it becomes an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub key: GroupKey,
    pub count: u64,
    /// Distinct values of the cardinality field, when the rule has one.
    pub cardinality: Option<u64>,
    /// Earliest and latest counted event.
    pub first: i64,
    pub last: i64,
}

impl Bucket {
    /// Whether the bucket passes the rule's count and cardinality checks.
    pub fn passes(&self, threshold: &Threshold) -> bool {
        self.count >= threshold.value
            && match (&threshold.cardinality, self.cardinality) {
                (Some(needed), Some(seen)) => seen >= needed.value,
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

/// For each group already alerted, the time of the last event counted in its alert. Kibana
/// excludes a group's events up to that time from later runs, and forgets the entry once the
/// time falls out of a run's window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignalHistory {
    last: HashMap<String, i64>,
}

impl SignalHistory {
    pub fn from_entries(entries: impl IntoIterator<Item = (GroupKey, i64)>) -> Self {
        SignalHistory {
            last: entries
                .into_iter()
                .map(|(key, last)| (group_text(&key), last))
                .collect(),
        }
    }

    /// Forget the groups whose last alerted event is not after `from`.
    pub fn prune(&mut self, from: i64) {
        self.last.retain(|_, last| *last > from);
    }

    /// Whether an event of `key` at `time` was counted by an earlier alert.
    pub fn excludes(&self, key: &[Value], time: i64) -> bool {
        self.last
            .get(&group_text(key))
            .is_some_and(|last| time <= *last)
    }

    pub fn record(&mut self, key: &[Value], last: i64) {
        self.last.insert(group_text(key), last);
    }
}

/// One matching event, reduced to what grouping reads.
#[derive(Debug, Clone)]
pub struct Event {
    pub time: i64,
    pub groups: Vec<GroupKey>,
    /// The cardinality field's values (none when the rule has no cardinality).
    pub cardinality: Vec<Value>,
}

/// The buckets of one window, `[from, to]` inclusive, over `events` sorted by time, without
/// what `history` excludes. Buckets come in group order (the composite aggregation's).
pub fn buckets(events: &[Event], from: i64, to: i64, history: &SignalHistory) -> Vec<Bucket> {
    let start = events.partition_point(|e| e.time < from);
    let end = events.partition_point(|e| e.time <= to);
    let mut groups: BTreeMap<String, (GroupKey, Tally)> = BTreeMap::new();
    for event in &events[start..end] {
        for key in &event.groups {
            if history.excludes(key, event.time) {
                continue;
            }
            let (_, tally) = groups
                .entry(group_text(key))
                .or_insert_with(|| (key.clone(), Tally::new(event.time)));
            tally.add(event);
        }
    }
    groups
        .into_values()
        .map(|(key, tally)| Bucket {
            key,
            count: tally.count,
            cardinality: tally.distinct.map(|set| set.len() as u64),
            first: tally.first,
            last: tally.last,
        })
        .collect()
}

struct Tally {
    count: u64,
    distinct: Option<BTreeSet<String>>,
    first: i64,
    last: i64,
}

impl Tally {
    fn new(time: i64) -> Self {
        Tally {
            count: 0,
            distinct: None,
            first: time,
            last: time,
        }
    }

    fn add(&mut self, event: &Event) {
        self.count += 1;
        self.first = self.first.min(event.time);
        self.last = self.last.max(event.time);
        let distinct = self.distinct.get_or_insert_with(BTreeSet::new);
        distinct.extend(event.cardinality.iter().map(Value::to_string));
    }
}

/// An alert the service would raise: the run that raised it and its bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub run: i64,
    pub bucket: Bucket,
}

/// Offline: every run of `runs` (ascending) over `[run - lookback, run]`, with the signal
/// history carried from run to run, over `events` sorted by time.
pub fn evaluate(
    events: &[Event],
    threshold: &Threshold,
    runs: &[i64],
    lookback: i64,
) -> Vec<Signal> {
    let mut history = SignalHistory::default();
    let mut signals = Vec::new();
    for &run in runs {
        let from = run - lookback;
        history.prune(from);
        for mut bucket in buckets(events, from, run, &history) {
            if threshold.cardinality.is_none() {
                bucket.cardinality = None;
            }
            if bucket.passes(threshold) {
                history.record(&bucket.key, bucket.last);
                signals.push(Signal { run, bucket });
            }
        }
    }
    signals
}

#[cfg(test)]
mod tests;

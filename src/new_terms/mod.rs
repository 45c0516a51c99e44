//! New-terms semantics, as Kibana's `new_terms` rule type applies them
//! (`docs/new-terms-and-threshold.md` gives the sources).
//!
//! A run over the window `[from, to]` alerts on each value (or combination of values, for up
//! to [`MAX_FIELDS`] fields) of `new_terms_fields` that occurs in the window and whose first
//! occurrence in `[history_window_start, to]` is strictly later than `from`; the alert is
//! raised on the earliest event of the window carrying it.
//!
//! - [`terms_of`]: the terms one document contributes, as Elasticsearch's composite
//!   aggregation buckets it (array values expanded, combinations for several fields).
//! - [`TermLog`]: the terms seen offline, folded by the run that judges each occurrence, and
//!   which of them the service would have alerted on, had it run on its [`Schedule`]
//!   ([`TermLog::alerts`]).
//!
//! Times are epoch milliseconds: this module knows no calendar and no crate but `serde_json`.

use std::collections::{BTreeMap, HashMap};

use itertools::Itertools;
use serde_json::Value;

/// Kibana accepts one to three `new_terms_fields`.
pub const MAX_FIELDS: usize = 3;

/// One term: a value for each of the rule's fields, in the rule's field order.
pub type Term = Vec<Value>;

/// The values a field holds for aggregations: a scalar, or each scalar of an array (arrays
/// of arrays flattened, as Elasticsearch indexes them), without nulls, objects or repeats.
/// Missing and null give none.
pub fn field_values(value: Option<&Value>) -> Vec<Value> {
    fn collect(value: &Value, out: &mut Vec<Value>) {
        match value {
            Value::Array(items) => items.iter().for_each(|item| collect(item, out)),
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                if !out.contains(value) {
                    out.push(value.clone());
                }
            }
            Value::Null | Value::Object(_) => {}
        }
    }
    let mut out = Vec::new();
    if let Some(value) = value {
        collect(value, &mut out);
    }
    out
}

/// The values Elasticsearch indexes for the dotted `path` of `doc`: [`field_values`] of
/// every node the path reaches, through arrays of objects too (`resources.arn` of
/// `"resources": [{"arn": ...}, ...]` holds each `arn`), and through keys that themselves
/// hold dots.
pub fn indexed_values(doc: &Value, path: &str) -> Vec<Value> {
    fn walk<'a>(node: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
        if path.is_empty() {
            out.push(node);
            return;
        }
        match node {
            Value::Array(items) => items.iter().for_each(|item| walk(item, path, out)),
            Value::Object(object) => {
                if let Some(value) = object.get(path) {
                    out.push(value);
                }
                for (dot, _) in path.match_indices('.') {
                    if let Some(child) = object.get(&path[..dot]) {
                        walk(child, &path[dot + 1..], out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut nodes = Vec::new();
    walk(doc, path, &mut nodes);
    let mut out: Vec<Value> = Vec::new();
    for node in nodes {
        for value in field_values(Some(node)) {
            if !out.contains(&value) {
                out.push(value);
            }
        }
    }
    out
}

/// The terms a document contributes given each field's [`field_values`]: every combination
/// of one value per field (a composite aggregation's buckets). A document missing any field
/// contributes none: Kibana's composite sources have no `missing_bucket`.
pub fn terms_of(per_field: Vec<Vec<Value>>) -> Vec<Term> {
    if per_field.is_empty() || per_field.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    per_field.into_iter().multi_cartesian_product().collect()
}

/// The text that identifies a term (its JSON), for maps and alert ids.
pub fn term_key(term: &[Value]) -> String {
    Value::Array(term.to_vec()).to_string()
}

/// When the service runs: at every multiple of `interval` since the epoch, each run over
/// `[run - lookback, run]`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: i64,
    /// `to - from` of the rule (`now-6m` to `now`: six minutes).
    pub lookback: i64,
    /// `to - history_window_start` (`now-10d`: ten days).
    pub history: i64,
}

impl Schedule {
    /// The last run whose window can hold an event at `time` as a new term: the latest run
    /// with `run - lookback < time` (an event exactly at `from` is history to Kibana). It
    /// covers `time` only when `time <= run`: a lookback shorter than the interval leaves
    /// gaps no run searches.
    pub fn last_run_for(&self, time: i64) -> i64 {
        let interval = self.interval.max(1);
        time.saturating_add(self.lookback)
            .saturating_sub(1)
            .div_euclid(interval)
            .saturating_mul(interval)
    }
}

/// A term's occurrences judged by one run: the earliest (the only one that can alert, with
/// its payload while it still can) and the latest (history for the next run's).
struct Slot<T> {
    first: (i64, String),
    payload: Option<T>,
    last: i64,
}

/// One term's slots, by run.
struct Occurrences<T> {
    term: Term,
    slots: BTreeMap<i64, Slot<T>>,
}

impl<T> Occurrences<T> {
    /// Drop the payload of the slot at `run` when an earlier occurrence lies in its history.
    fn prune(&mut self, run: i64, history: i64) {
        let before = self
            .slots
            .range(..run)
            .next_back()
            .map(|(_, slot)| slot.last);
        if let Some(slot) = self.slots.get_mut(&run)
            && before.is_some_and(|last| last >= run.saturating_sub(history))
        {
            slot.payload = None;
        }
    }
}

/// An occurrence the service would alert on.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTerm<T> {
    pub term: Term,
    pub time: i64,
    pub tiebreak: String,
    /// The run that alerts it (the last one whose window holds it).
    pub run: i64,
    pub payload: T,
}

/// Every term seen, folded by the run that judges each occurrence, in any arrival order.
///
/// Memory: per term and run with an occurrence, two times, one event id and at most one
/// payload, whatever the number of occurrences.
pub struct TermLog<T> {
    schedule: Schedule,
    terms: HashMap<String, Occurrences<T>>,
}

impl<T> TermLog<T> {
    pub fn new(schedule: Schedule) -> Self {
        TermLog {
            schedule,
            terms: HashMap::new(),
        }
    }

    /// Distinct terms seen.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Record that an event with `tiebreak` (its identity) carried `term` at `time`. The same
    /// (time, tiebreak) twice is one event read twice: the first payload stays.
    pub fn record(&mut self, term: Term, time: i64, tiebreak: String, payload: T) {
        let run = self.schedule.last_run_for(time);
        let history = self.schedule.history;
        let log = self
            .terms
            .entry(term_key(&term))
            .or_insert_with(|| Occurrences {
                term,
                slots: BTreeMap::new(),
            });
        match log.slots.get_mut(&run) {
            Some(slot) => {
                slot.last = slot.last.max(time);
                if (time, tiebreak.as_str()) < (slot.first.0, slot.first.1.as_str()) {
                    slot.first = (time, tiebreak);
                    slot.payload = Some(payload);
                }
            }
            None => {
                log.slots.insert(
                    run,
                    Slot {
                        first: (time, tiebreak),
                        payload: Some(payload),
                        last: time,
                    },
                );
            }
        }
        log.prune(run, history);
        // This occurrence may now be history for the next run's.
        if let Some(next) = log.slots.range(run + 1..).next().map(|(next, _)| *next) {
            log.prune(next, history);
        }
    }

    /// The occurrences the service would alert on, ordered by time, then tiebreak, then term.
    /// Runs before `alerts_from` learn terms without alerting (the offline warm-up).
    pub fn alerts(self, alerts_from: i64) -> Vec<NewTerm<T>> {
        let schedule = self.schedule;
        let mut found = Vec::new();
        for (_, log) in self.terms {
            let mut before: Option<i64> = None;
            for (run, slot) in log.slots {
                let history_start = run.saturating_sub(schedule.history);
                let new = before.is_none_or(|last| last < history_start);
                before = Some(slot.last);
                let (time, tiebreak) = slot.first;
                let covered = time <= run && run >= alerts_from;
                if let (true, true, Some(payload)) = (new, covered, slot.payload) {
                    found.push(NewTerm {
                        term: log.term.clone(),
                        time,
                        tiebreak,
                        run,
                        payload,
                    });
                }
            }
        }
        found.sort_by(|a, b| {
            (a.time, &a.tiebreak, term_key(&a.term)).cmp(&(b.time, &b.tiebreak, term_key(&b.term)))
        });
        found
    }
}

#[cfg(test)]
mod tests;

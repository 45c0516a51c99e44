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
//! - [`TermLog`]: every occurrence of every term seen offline, and which of them the service
//!   would have alerted on, had it run at the given times ([`TermLog::alerts`]).
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

/// When the service runs, for [`TermLog::alerts`].
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Run times, ascending: each run searches `[run - lookback, run]`.
    pub runs: Vec<i64>,
    /// `to - from` of the rule (`now-6m` to `now`: six minutes).
    pub lookback: i64,
    /// `to - history_window_start` (`now-10d`: ten days).
    pub history: i64,
    /// Runs before this time learn terms without alerting (the offline warm-up).
    pub alerts_from: i64,
}

impl Schedule {
    /// The last run whose window holds an event at `time` as a possible new term:
    /// `run - lookback < time <= run` (an event exactly at `from` is history to Kibana).
    fn last_run_covering(&self, time: i64) -> Option<i64> {
        let end = self.runs.partition_point(|run| *run < time + self.lookback);
        let run = *self.runs[..end].last()?;
        (run >= time).then_some(run)
    }
}

/// One term's occurrences, ordered by (time, tiebreak). The payload (the event, kept for its
/// alert) is held only while the occurrence could still alert.
struct Occurrences<T> {
    term: Term,
    seen: BTreeMap<(i64, String), Option<T>>,
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

/// Every occurrence of every term, in any arrival order.
///
/// Memory: a time and a tiebreak per occurrence; payloads only for occurrences with no
/// earlier one of the same term within `history - lookback` (the only ones that can alert).
pub struct TermLog<T> {
    min_gap: i64,
    terms: HashMap<String, Occurrences<T>>,
}

impl<T> TermLog<T> {
    /// A log for a rule whose history reaches `history` before `to` and whose window is
    /// `lookback` long.
    pub fn new(history: i64, lookback: i64) -> Self {
        TermLog {
            min_gap: history - lookback,
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
        let min_gap = self.min_gap;
        let log = self
            .terms
            .entry(term_key(&term))
            .or_insert_with(|| Occurrences {
                term,
                seen: BTreeMap::new(),
            });
        let key = (time, tiebreak);
        if log.seen.contains_key(&key) {
            return;
        }
        let may_alert = log
            .seen
            .range(..&key)
            .next_back()
            .is_none_or(|((before, _), _)| time - before > min_gap);
        // The next occurrence may stop being a candidate now that this one precedes it.
        if let Some(((after, _), payload)) = log.seen.range_mut(&key..).next()
            && after - time <= min_gap
        {
            *payload = None;
        }
        log.seen.insert(key, may_alert.then_some(payload));
    }

    /// The occurrences the service would alert on under `schedule`, ordered by time, then
    /// tiebreak, then term.
    pub fn alerts(self, schedule: &Schedule) -> Vec<NewTerm<T>> {
        let mut found = Vec::new();
        for (_, log) in self.terms {
            let mut previous: Option<i64> = None;
            for ((time, tiebreak), payload) in log.seen {
                let before = previous.replace(time);
                let Some(run) = schedule.last_run_covering(time) else {
                    continue;
                };
                if run < schedule.alerts_from {
                    continue;
                }
                // History is `[run - history, from]`; the occurrence before this one is the
                // latest that could be in it.
                let new = before.is_none_or(|before| before < run - schedule.history);
                if let (true, Some(payload)) = (new, payload) {
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

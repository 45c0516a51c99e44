//! `new_terms` and `threshold` rules offline: what the service would have alerted had it run
//! each rule on its schedule over the scanned events.
//!
//! The schedule is laid over the events as a grid: a run at every multiple of the rule's
//! interval since the Unix epoch, each searching `[run - lookback, run]` (`lookback` is
//! `to - from`). Files are read in any order and on any number of threads; each rule's
//! observations are folded into order-independent structures ([`TermLog`], a time-sorted list
//! of threshold events), so the output is the same whatever `--threads` and however the input
//! is split into files.
//!
//! A `new_terms` rule learns from the start of its matching events: runs before the first
//! match plus the history window only learn terms (the warm-up), unless the scan is asked to
//! alert from the start.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::alert::aggregate::{new_terms_alert, new_terms_id, threshold_alert};
use crate::alert::{AlertBuilder, AlertDoc, AlertEvent};
use crate::cloudtrail::{NormalizeOptions, Normalized, normalize_record};
use crate::new_terms::{NewTerm, Schedule, Term, TermLog, indexed_values, term_key, terms_of};
use crate::rule::{NewTerms, Rule, RuleKind};
use crate::threshold::{Event as GroupEvent, Threshold, evaluate, group_keys};

/// An event kept for the alert it may become: compact JSON until then.
#[derive(Debug, Clone)]
pub(super) struct StoredEvent {
    pub doc_id: String,
    pub time: DateTime<Utc>,
    pub source: Source,
}

/// An event's document, or its record when only part of the document was built.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Document(Vec<u8>),
    Record(Box<[u8]>),
}

impl Source {
    fn document(&self, opts: &NormalizeOptions) -> Value {
        match self {
            Source::Document(json) => serde_json::from_slice(json).unwrap_or(Value::Null),
            // It normalized once already, in the scan, so it normalizes again.
            Source::Record(raw) => match normalize_record(raw, opts) {
                Ok(Normalized::Event(doc)) => doc,
                _ => Value::Null,
            },
        }
    }
}

/// What one matching document contributes to an aggregating rule.
pub(super) enum Observation {
    Terms {
        rule: usize,
        terms: Vec<Term>,
        time: i64,
        tiebreak: String,
        event: StoredEvent,
    },
    Group {
        rule: usize,
        event: GroupEvent,
    },
}

fn values_of(doc: &Value, fields: &[String]) -> Vec<Vec<Value>> {
    fields
        .iter()
        .map(|field| indexed_values(doc, field))
        .collect()
}

/// The observation a document matching rule `rule` (of `kind`) makes, if any: none for query
/// rules, and none when the document lacks a term or group field.
pub(super) fn observe(
    rule: usize,
    kind: &RuleKind,
    doc: &Value,
    time: DateTime<Utc>,
    tiebreak: impl FnOnce() -> String,
    event: impl FnOnce() -> StoredEvent,
) -> Option<Observation> {
    match kind {
        RuleKind::Query | RuleKind::Eql(_) => None,
        RuleKind::NewTerms(params) => {
            let terms = terms_of(values_of(doc, &params.fields));
            (!terms.is_empty()).then(|| Observation::Terms {
                rule,
                terms,
                time: time.timestamp_millis(),
                tiebreak: tiebreak(),
                event: event(),
            })
        }
        RuleKind::Threshold(params) => {
            let groups = group_keys(values_of(doc, &params.field));
            (!groups.is_empty()).then(|| Observation::Group {
                rule,
                event: GroupEvent {
                    time: time.timestamp_millis(),
                    groups,
                    cardinality: params
                        .cardinality
                        .as_ref()
                        .map(|c| indexed_values(doc, &c.field))
                        .unwrap_or_default(),
                },
            })
        }
    }
}

/// One aggregating rule's observations so far.
enum Folded {
    Terms {
        log: TermLog<StoredEvent>,
        /// The rule's first matching event, where its warm-up starts.
        first: i64,
    },
    Groups(Vec<GroupEvent>),
}

/// The observations of every aggregating rule, folded as files finish.
#[derive(Default)]
pub(super) struct Aggregates {
    rules: HashMap<usize, Folded>,
}

/// The interval and window length of a rule, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cadence {
    pub interval: i64,
    pub lookback: i64,
}

impl Cadence {
    pub fn of(rule: &Rule) -> Result<Cadence, String> {
        let timing = rule
            .timing()
            .map_err(|(field, error)| format!("{}: {error}", field.name()))?;
        let interval = i64::try_from(timing.interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let probe = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let (from, to) = timing
            .window(probe)
            .map_err(|error| format!("from/to: {error}"))?;
        Ok(Cadence {
            interval,
            lookback: (to - from).num_milliseconds().max(0),
        })
    }

    /// The runs whose windows reach any time in `[first, last]`: grid points from the last
    /// at or before `first` to the first at or after `last + lookback`.
    fn runs(&self, first: i64, last: i64) -> Vec<i64> {
        let start = first.div_euclid(self.interval) * self.interval;
        let end = last.saturating_add(self.lookback);
        let mut runs = Vec::new();
        let mut run = start;
        while run < end.saturating_add(self.interval) {
            runs.push(run);
            run = run.saturating_add(self.interval);
            if run == i64::MAX {
                break;
            }
        }
        runs
    }
}

/// How far `history_window_start` reaches before a run's end, in milliseconds.
pub(super) fn history_of(params: &NewTerms) -> Result<i64, String> {
    let probe = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let start = params.history_start(probe)?;
    Ok((probe - start).num_milliseconds())
}

impl Aggregates {
    pub fn add(&mut self, observation: Observation, schedule: impl Fn(usize) -> Schedule) {
        match observation {
            Observation::Terms {
                rule,
                terms,
                time,
                tiebreak,
                event,
            } => {
                let folded = self.rules.entry(rule).or_insert_with(|| Folded::Terms {
                    log: TermLog::new(schedule(rule)),
                    first: time,
                });
                if let Folded::Terms { log, first } = folded {
                    *first = (*first).min(time);
                    for term in terms {
                        log.record(term, time, tiebreak.clone(), event.clone());
                    }
                }
            }
            Observation::Group { rule, event } => {
                let folded = self
                    .rules
                    .entry(rule)
                    .or_insert_with(|| Folded::Groups(Vec::new()));
                if let Folded::Groups(events) = folded {
                    events.push(event);
                }
            }
        }
    }

    /// Each rule's alerts, at most `max_signals` per run, and how many the cap left out.
    pub fn alerts(self, rules: &[AggregateRule<'_>], warm_up: bool) -> Vec<(usize, Found)> {
        let mut out = Vec::new();
        for (index, folded) in self.rules {
            let Some(rule) = rules.get(index) else {
                continue;
            };
            let found = match (folded, rule.kind) {
                (Folded::Terms { log, first }, RuleKind::NewTerms(params)) => {
                    let Ok(history) = history_of(params) else {
                        continue;
                    };
                    let alerts_from = if warm_up {
                        first.saturating_add(history)
                    } else {
                        i64::MIN
                    };
                    new_term_alerts(rule, log.alerts(alerts_from))
                }
                (Folded::Groups(mut events), RuleKind::Threshold(params)) => {
                    events.sort_by_key(|event| event.time);
                    threshold_alerts(rule, params, &events)
                }
                _ => continue,
            };
            out.push((index, found));
        }
        out
    }
}

/// What the scan needs of one aggregating rule to turn its observations into alerts.
pub(super) struct AggregateRule<'a> {
    pub rule: &'a Rule,
    pub kind: &'a RuleKind,
    pub cadence: Cadence,
    pub builder: &'a AlertBuilder,
    pub index: &'a str,
    /// For events kept as their record ([`Source::Record`]).
    pub normalize: &'a NormalizeOptions,
}

/// One rule's alerts.
pub(super) struct Found {
    pub alerts: Vec<AlertDoc>,
    /// Alerts beyond `max_signals` in their run.
    pub capped: usize,
}

fn new_term_alerts(rule: &AggregateRule<'_>, found: Vec<NewTerm<StoredEvent>>) -> Found {
    // A run writes at most max_signals alerts, in the order of its composite aggregation
    // (by term); the terms left out are not new at the next run, so they are lost, as in
    // Kibana.
    let mut by_run: HashMap<i64, Vec<&NewTerm<StoredEvent>>> = HashMap::new();
    for new in &found {
        by_run.entry(new.run).or_default().push(new);
    }
    let max = rule.rule.max_signals as usize;
    let mut kept: Vec<&NewTerm<StoredEvent>> = Vec::new();
    let mut capped = 0;
    for (_, mut news) in by_run {
        news.sort_by_key(|new| term_key(&new.term));
        capped += news.len().saturating_sub(max);
        kept.extend(news.into_iter().take(max));
    }
    kept.sort_by(|a, b| {
        (a.time, &a.tiebreak, term_key(&a.term)).cmp(&(b.time, &b.tiebreak, term_key(&b.term)))
    });
    let alerts = kept
        .into_iter()
        .map(|new| {
            let source = new.payload.source.document(rule.normalize);
            let event = AlertEvent {
                index: rule.index,
                id: &new.payload.doc_id,
                source: &source,
                timestamp: new.payload.time,
            };
            let id = new_terms_id(rule.builder, &event, &new.term);
            new_terms_alert(rule.builder, &event, &new.term, id)
        })
        .collect();
    Found { alerts, capped }
}

fn threshold_alerts(rule: &AggregateRule<'_>, params: &Threshold, events: &[GroupEvent]) -> Found {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Found {
            alerts: Vec::new(),
            capped: 0,
        };
    };
    let runs = rule.cadence.runs(first.time, last.time);
    let signals = evaluate(events, params, &runs, rule.cadence.lookback);
    let max = rule.rule.max_signals as usize;
    let mut per_run: HashMap<i64, usize> = HashMap::new();
    let mut capped = 0;
    let mut alerts = Vec::new();
    for signal in signals {
        let count = per_run.entry(signal.run).or_default();
        if *count >= max {
            capped += 1;
            continue;
        }
        *count += 1;
        alerts.push(threshold_alert(
            rule.builder,
            rule.index,
            params,
            &signal.bucket,
        ));
    }
    Found { alerts, capped }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_covers_every_window_that_reaches_the_events() {
        let cadence = Cadence {
            interval: 300_000,
            lookback: 360_000,
        };
        let runs = cadence.runs(1_000_000, 1_200_000);
        assert_eq!(runs.first(), Some(&900_000));
        // The last window that still holds the last event ends after last + lookback - interval.
        assert!(
            runs.iter()
                .any(|run| run - 360_000 < 1_200_000 && *run >= 1_200_000)
        );
        assert!(runs.windows(2).all(|w| w[1] - w[0] == 300_000));
        assert!(*runs.last().unwrap_or(&0) >= 1_200_000 + 360_000 - 300_000);
    }
}

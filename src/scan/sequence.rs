//! EQL sequence and sample rules offline: the events that may take part (those passing the
//! rule's filters and matching one of its stages or `until`) are collected from every file,
//! then fed to the sequence or sample matcher in event-time order (ties in input order), as
//! Elasticsearch orders them by timestamp and tiebreaker. Memory holds those events for the
//! whole input, as a sequence without `maxspan` or a sample may span all of it (and files
//! come in any order), up to `--sequence-memory`; beyond, the scan stops and says so.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::rules::CompiledRule;
use crate::alert::sequence::sequence_alerts;
use crate::alert::{AlertBuilder, AlertDoc, AlertEvent};
use crate::rule::RuleKind;

/// An event a sequence rule may use.
pub(super) struct SequenceEvent {
    pub rule: usize,
    pub time: DateTime<Utc>,
    /// Input position (file, record): orders events of one time, and the earliest copy of a
    /// duplicated event wins.
    pub position: (usize, usize),
    pub doc_id: String,
    pub source: Vec<u8>,
}

/// Sequence events of every file, one copy per rule and event identity.
#[derive(Default)]
pub(super) struct SequenceEvents {
    events: HashMap<(usize, String), SequenceEvent>,
    /// What the kept events take, roughly: their sources, ids and keys.
    bytes: usize,
    /// More was needed than allowed: nothing more is kept, and the scan fails.
    overflowed: bool,
}

/// What an event costs beyond its source and id: the map entry, its key and times.
const EVENT_OVERHEAD: usize = 96;

fn cost(identity: &str, event: &SequenceEvent) -> usize {
    event.source.len() + event.doc_id.len() + identity.len() + EVENT_OVERHEAD
}

impl SequenceEvents {
    /// Keep `event` (known by `identity`); a second copy counts as a duplicate.
    pub fn add(&mut self, identity: String, event: SequenceEvent) -> bool {
        if self.overflowed {
            return true;
        }
        match self.events.get_mut(&(event.rule, identity.clone())) {
            Some(kept) => {
                if (event.time, event.position) < (kept.time, kept.position) {
                    self.bytes = self.bytes + cost(&identity, &event) - cost(&identity, kept);
                    *kept = event;
                }
                false
            }
            None => {
                self.bytes += cost(&identity, &event);
                self.events.insert((event.rule, identity), event);
                true
            }
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Stop keeping events: the scan cannot finish within its memory.
    pub fn overflowed(&mut self) {
        self.overflowed = true;
    }

    pub fn has_overflowed(&self) -> bool {
        self.overflowed
    }

    /// The rules whose events are kept, in rule order.
    pub fn rules(&self) -> Vec<usize> {
        let mut rules: Vec<usize> = self.events.keys().map(|(rule, _)| *rule).collect();
        rules.sort_unstable();
        rules.dedup();
        rules
    }

    /// Each rule's sequences as alerts (building blocks, then the shell), by rule.
    pub fn alerts(
        self,
        rules: &[CompiledRule],
        builders: &[AlertBuilder],
        index: &str,
    ) -> Vec<(usize, Vec<AlertDoc>)> {
        let mut by_rule: HashMap<usize, Vec<SequenceEvent>> = HashMap::new();
        for (_, event) in self.events {
            by_rule.entry(event.rule).or_default().push(event);
        }
        let mut out: Vec<(usize, Vec<AlertDoc>)> = Vec::new();
        for (rule, mut events) in by_rule {
            let RuleKind::Eql(eql) = &rules[rule].kind else {
                continue;
            };
            let Some(Ok(mut matcher)) = eql.join_matcher() else {
                continue;
            };
            events.sort_by_key(|e| (e.time, e.position));
            let sources: Vec<Value> = events
                .iter()
                .map(|e| serde_json::from_slice(&e.source).unwrap_or(Value::Null))
                .collect();
            let mut hits = Vec::new();
            for (i, (event, source)) in events.iter().zip(&sources).enumerate() {
                let nanos = i128::from(event.time.timestamp_nanos_opt().unwrap_or_default());
                hits.extend(matcher.push(i, nanos, source));
            }
            hits.extend(matcher.finish());
            let mut alerts = Vec::new();
            for hit in hits {
                let members: Vec<AlertEvent<'_>> = hit
                    .events
                    .iter()
                    .map(|&at| AlertEvent {
                        index,
                        id: &events[at].doc_id,
                        source: &sources[at],
                        timestamp: events[at].time,
                    })
                    .collect();
                alerts.extend(sequence_alerts(&builders[rule], &members));
            }
            out.push((rule, alerts));
        }
        out.sort_by_key(|(rule, _)| *rule);
        out
    }
}

//! The alerts of a scan, in output order, built one at a time as they are written.
//!
//! A query rule's alert waits as its event ([`held`](super::held)) and the rule that fired;
//! [`ScanAlerts::iter`] builds each document when it is asked for, so memory holds one alert
//! document at a time, whatever the alert count. The aggregating and sequence types' alerts,
//! built from many events at once, are kept built.

use std::collections::HashMap;
use std::io;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::held::{Held, HeldEvents};
use crate::alert::{AlertBuilder, AlertDoc, AlertEvent};

/// What decides an alert's place: event time, sequence shell after its building blocks,
/// event id, rule name, alert id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    time: DateTime<Utc>,
    shell: bool,
    event_id: String,
    /// The rule name's place among the scan's rule names (names compare as their ranks do).
    rule_rank: u32,
    id: String,
}

#[derive(Debug)]
enum Waiting {
    /// A query rule's match, built on demand.
    Event {
        rule: usize,
        doc_id: String,
        source: Held,
    },
    Built(AlertDoc),
}

#[derive(Debug)]
struct Pending {
    place: Place,
    waiting: Waiting,
}

/// A query rule's match, as the scan hands it over.
pub struct Match {
    pub rule: usize,
    pub alert_id: String,
    pub time: DateTime<Utc>,
    pub event_id: String,
    pub doc_id: String,
    pub source: Held,
}

/// Every alert of a scan, in output order.
#[derive(Debug)]
pub struct ScanAlerts {
    builders: Vec<AlertBuilder>,
    /// Per rule, the rank of its name; and the ranks by name, for built alerts.
    rule_ranks: Vec<u32>,
    name_ranks: HashMap<String, u32>,
    index: String,
    pending: Vec<Pending>,
    events: HeldEvents,
}

impl ScanAlerts {
    /// `names` are the rules' names, in the order of `builders`.
    pub(super) fn new(
        builders: Vec<AlertBuilder>,
        names: &[&str],
        index: String,
        events: HeldEvents,
    ) -> Self {
        let mut sorted: Vec<&str> = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let name_ranks: HashMap<String, u32> = sorted
            .iter()
            .enumerate()
            .map(|(rank, name)| (name.to_string(), rank as u32))
            .collect();
        let rule_ranks = names
            .iter()
            .map(|name| name_ranks.get(*name).copied().unwrap_or(u32::MAX))
            .collect();
        ScanAlerts {
            builders,
            rule_ranks,
            name_ranks,
            index,
            pending: Vec::new(),
            events,
        }
    }

    pub(super) fn push_match(&mut self, m: Match) {
        self.pending.push(Pending {
            place: Place {
                time: m.time,
                shell: false,
                event_id: m.event_id,
                rule_rank: self.rule_ranks.get(m.rule).copied().unwrap_or(u32::MAX),
                id: m.alert_id,
            },
            waiting: Waiting::Event {
                rule: m.rule,
                doc_id: m.doc_id,
                source: m.source,
            },
        });
    }

    pub(super) fn push_built(&mut self, alert: AlertDoc) {
        let doc = &alert.document;
        let name = doc
            .get("kibana.alert.rule.name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let shell = doc.get("kibana.alert.group.id").is_some()
            && doc.get("kibana.alert.building_block_type").is_none();
        let place = Place {
            time: alert.event_time,
            shell,
            event_id: super::event_id(doc),
            rule_rank: self.name_ranks.get(name).copied().unwrap_or(u32::MAX),
            id: alert.id.clone(),
        };
        self.pending.push(Pending {
            place,
            waiting: Waiting::Built(alert),
        });
    }

    /// Put everything in output order (once every alert is in).
    pub(super) fn sort(&mut self) {
        self.pending.sort_by(|a, b| a.place.cmp(&b.place));
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Bytes of events that waited in the temporary file (beyond `--memory`).
    pub fn spilled_bytes(&self) -> u64 {
        self.events.spilled
    }

    /// The alert ids, in output order (nothing is built).
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.pending.iter().map(|p| p.place.id.as_str())
    }

    /// The alerts in output order, each built when it is reached; an event that cannot be read
    /// back from the temporary file is an error.
    pub fn iter(&self) -> impl Iterator<Item = io::Result<AlertDoc>> + '_ {
        self.pending.iter().map(|p| self.build(p))
    }

    /// Every alert, built: for small results (a rule's examples, tests).
    pub fn to_vec(&self) -> io::Result<Vec<AlertDoc>> {
        self.iter().collect()
    }

    fn build(&self, pending: &Pending) -> io::Result<AlertDoc> {
        match &pending.waiting {
            Waiting::Built(alert) => Ok(alert.clone()),
            Waiting::Event {
                rule,
                doc_id,
                source,
            } => {
                let bytes = self.events.read(source)?;
                let source: Value = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
                let builder = self
                    .builders
                    .get(*rule)
                    .ok_or_else(|| io::Error::other("an alert of a rule not in the scan"))?;
                let event = AlertEvent {
                    index: &self.index,
                    id: doc_id,
                    source: &source,
                    timestamp: pending.place.time,
                };
                Ok(builder.build_with_id(&event, pending.place.id.clone()))
            }
        }
    }
}

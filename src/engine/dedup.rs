//! Dedup, the `max_signals` cap and writing, for one window, one page of hits at a time.
//!
//! Order per page: drop events already handled in this run (and repeats inside the page: the
//! same event read from two index patterns), ask the sink which ids exist already (or were
//! dead-lettered before), keep the
//! oldest new ones up to the window's remaining budget, write them, and sort the outcomes.
//! Only created alerts consume budget. Whatever is not safely handled (cut by the cap, failed
//! writes) holds the watermark at its event time so a later run picks it up.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use super::ports::{AlertDoc, AlertSink, EventHit, WriteOutcome};
use super::record::WindowCounts;
use crate::alert::{AlertBuilder, AlertEvent};

/// The sink failed as a whole (not per item): stop searching, the next run retries.
#[derive(Debug)]
pub struct SinkDown;

/// The state of one window while its pages are written.
pub struct WindowWriter<'a> {
    sink: &'a dyn AlertSink,
    builder: &'a AlertBuilder,
    budget: u64,
    pub counts: WindowCounts,
    capped: bool,
    left_over: HashSet<String>,
    hold: Option<DateTime<Utc>>,
    failures: BTreeMap<String, u64>,
    rejections: BTreeMap<String, u64>,
    /// Whether what the cap cuts holds the watermark for the next run (query rules), or is
    /// not alerted at all (the aggregating types, as in Kibana).
    carries_over: bool,
}

/// What waits to become an alert: an event of a query rule, or an alert an aggregating
/// rule type built already.
trait Pending {
    fn time(&self) -> DateTime<Utc>;
    fn into_alert(self, builder: &AlertBuilder, id: String) -> AlertDoc;
}

impl Pending for EventHit {
    fn time(&self) -> DateTime<Utc> {
        self.timestamp
    }
    fn into_alert(self, builder: &AlertBuilder, id: String) -> AlertDoc {
        builder.build_from_hit(self, id)
    }
}

impl Pending for AlertDoc {
    fn time(&self) -> DateTime<Utc> {
        self.event_time
    }
    fn into_alert(self, _builder: &AlertBuilder, _id: String) -> AlertDoc {
        self
    }
}

/// What a window's writing leaves for the run record.
pub struct WindowWriteResult {
    pub counts: WindowCounts,
    /// The earliest event time that still needs work, if any.
    pub hold: Option<DateTime<Utc>>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl<'a> WindowWriter<'a> {
    pub fn new(sink: &'a dyn AlertSink, builder: &'a AlertBuilder, budget: u32) -> Self {
        WindowWriter {
            sink,
            builder,
            budget: u64::from(budget),
            counts: WindowCounts::default(),
            capped: false,
            left_over: HashSet::new(),
            hold: None,
            failures: BTreeMap::new(),
            rejections: BTreeMap::new(),
            carries_over: true,
        }
    }

    /// A writer for alerts built by an aggregating rule type: what the cap cuts is lost, as
    /// in Kibana (a new term is not new at the next run; a threshold group is counted again).
    pub fn for_aggregates(sink: &'a dyn AlertSink, builder: &'a AlertBuilder, budget: u32) -> Self {
        WindowWriter {
            carries_over: false,
            ..WindowWriter::new(sink, builder, budget)
        }
    }

    /// Whether the window's budget is used up.
    pub fn is_full(&self) -> bool {
        self.capped || self.counts.created >= self.budget
    }

    /// Dedup, cap and write alerts an aggregating rule type built, in their order.
    pub async fn write_alerts(
        &mut self,
        alerts: Vec<AlertDoc>,
        handled: &mut HashSet<String>,
    ) -> Result<(), SinkDown> {
        self.counts.hits += alerts.len() as u64;
        let mut fresh = Vec::with_capacity(alerts.len());
        let mut in_page: HashSet<String> = HashSet::with_capacity(alerts.len());
        for alert in alerts {
            if handled.contains(&alert.id) || !in_page.insert(alert.id.clone()) {
                self.counts.duplicates += 1;
            } else {
                fresh.push((alert.id.clone(), alert));
            }
        }
        self.write_fresh(fresh, handled).await
    }

    /// Hold the watermark at `time` or earlier.
    pub fn hold_at(&mut self, time: DateTime<Utc>) {
        self.hold = Some(self.hold.map_or(time, |held| held.min(time)));
    }

    /// Dedup, cap and write one page. `handled` holds the ids this run already dealt with.
    pub async fn write_page(
        &mut self,
        hits: Vec<EventHit>,
        handled: &mut HashSet<String>,
    ) -> Result<(), SinkDown> {
        self.counts.hits += hits.len() as u64;
        let mut fresh: Vec<(String, EventHit)> = Vec::with_capacity(hits.len());
        let mut in_page: HashSet<String> = HashSet::with_capacity(hits.len());
        for hit in hits {
            // Kibana's self-alert guard: when the rule's patterns reach the alerts index, its
            // own alerts are not events to alert on.
            if self.builder.is_own_alert(&hit.source) {
                self.counts.own_alerts_skipped += 1;
                continue;
            }
            let id = self.builder.alert_id(&AlertEvent::from(&hit));
            if handled.contains(&id) || self.left_over.contains(&id) || in_page.contains(&id) {
                self.counts.duplicates += 1;
            } else {
                in_page.insert(id.clone());
                fresh.push((id, hit));
            }
        }
        self.write_fresh(fresh, handled).await
    }

    /// Write what is not a repeat within this run: drop what the sink has already, keep
    /// the first up to the budget, create them and sort the outcomes.
    async fn write_fresh<T: Pending>(
        &mut self,
        mut fresh: Vec<(String, T)>,
        handled: &mut HashSet<String>,
    ) -> Result<(), SinkDown> {
        if fresh.is_empty() {
            return Ok(());
        }

        let candidate_ids: Vec<String> = fresh.iter().map(|(id, _)| id.clone()).collect();
        let mut existing = match self.sink.existing_ids(&candidate_ids).await {
            Ok(existing) => existing,
            Err(error) => {
                self.fail_all(&fresh, &format!("checking existing alerts failed: {error}"));
                return Err(SinkDown);
            }
        };
        if existing.len() < candidate_ids.len() {
            let unknown: Vec<String> = candidate_ids
                .iter()
                .filter(|id| !existing.contains(*id))
                .cloned()
                .collect();
            match self.sink.dead_lettered_ids(&unknown).await {
                Ok(dead) => existing.extend(dead),
                Err(error) => {
                    self.fail_all(
                        &fresh,
                        &format!("checking dead-lettered alerts failed: {error}"),
                    );
                    return Err(SinkDown);
                }
            }
        }
        fresh.retain(|(id, _)| {
            let exists = existing.contains(id);
            if exists {
                handled.insert(id.clone());
            }
            !exists
        });
        self.counts.duplicates += (candidate_ids.len() - fresh.len()) as u64;

        let room = self.budget.saturating_sub(self.counts.created);
        let keep = if self.capped {
            0
        } else {
            usize::try_from(room).unwrap_or(usize::MAX).min(fresh.len())
        };
        for (id, pending) in fresh.split_off(keep) {
            self.capped = true;
            self.counts.left_over += 1;
            if self.carries_over {
                self.hold_at(pending.time());
                self.left_over.insert(id);
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }

        let docs: Vec<AlertDoc> = fresh
            .into_iter()
            .map(|(id, pending)| pending.into_alert(self.builder, id))
            .collect();
        let outcomes = match self.sink.create(&docs).await {
            Ok(outcomes) if outcomes.len() == docs.len() => outcomes,
            Ok(outcomes) => {
                let reason = format!(
                    "the alert sink answered {} outcomes for {} alerts",
                    outcomes.len(),
                    docs.len()
                );
                vec![WriteOutcome::Failed(reason); docs.len()]
            }
            Err(error) => {
                let reason = format!("writing alerts failed: {error}");
                for doc in &docs {
                    self.record_failure(doc, &reason);
                }
                return Err(SinkDown);
            }
        };
        for (doc, outcome) in docs.iter().zip(outcomes) {
            match outcome {
                WriteOutcome::Created => {
                    self.counts.created += 1;
                    handled.insert(doc.id.clone());
                }
                WriteOutcome::Duplicate => {
                    self.counts.duplicates += 1;
                    handled.insert(doc.id.clone());
                }
                WriteOutcome::Failed(reason) => self.record_failure(doc, &reason),
                WriteOutcome::Rejected(reason) => match self.sink.dead_letter(doc, &reason).await {
                    Ok(()) => {
                        tracing::warn!(alert = %doc.id, rule = %doc.rule_id, %reason, "alert rejected; kept in the dead-letter index");
                        self.counts.dead_lettered += 1;
                        *self.rejections.entry(reason).or_default() += 1;
                        handled.insert(doc.id.clone());
                    }
                    Err(error) => self.record_failure(
                        doc,
                        &format!("rejected ({reason}) and could not be dead-lettered: {error}"),
                    ),
                },
            }
        }
        Ok(())
    }

    fn fail_all<T: Pending>(&mut self, fresh: &[(String, T)], reason: &str) {
        for (_, pending) in fresh {
            self.hold_at(pending.time());
        }
        *self.failures.entry(reason.to_owned()).or_default() += fresh.len() as u64;
        self.counts.failed_writes += fresh.len() as u64;
    }

    fn record_failure(&mut self, doc: &AlertDoc, reason: &str) {
        self.counts.failed_writes += 1;
        self.hold_at(doc.event_time);
        *self.failures.entry(reason.to_owned()).or_default() += 1;
    }

    /// Close the window: counts, the hold, and the messages for the record.
    pub fn finish(self, window_label: &str) -> WindowWriteResult {
        let mut warnings = Vec::new();
        let mut errors = Vec::new();
        if self.capped && !self.carries_over {
            warnings.push(format!(
                "This rule reached the maximum alert limit for the rule execution. Some alerts were not created: \
                 {} alert(s) in window {window_label} were cut by the cap and are not alerted later (new_terms and \
                 threshold rules do not carry alerts over the cap, as in Kibana).",
                self.counts.left_over
            ));
        } else if self.capped {
            warnings.push(format!(
                "This rule reached the maximum alert limit for the rule execution. Some alerts were not created: \
                 {} new alert(s) in window {window_label} are left for the next run.",
                self.counts.left_over
            ));
        }
        for (reason, count) in &self.rejections {
            warnings.push(format!(
                "{count} alert(s) in window {window_label} were rejected and written to the dead-letter index: {reason}"
            ));
        }
        for (reason, count) in &self.failures {
            errors.push(format!(
                "{count} alert(s) in window {window_label} could not be written; the next run retries them: {reason}"
            ));
        }
        WindowWriteResult {
            counts: self.counts,
            hold: self.hold,
            warnings,
            errors,
        }
    }
}

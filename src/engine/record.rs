//! The record each run leaves behind: what Kibana's rule monitoring shows, one document per
//! run in the execution log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ports::RuleWindow;
use crate::alert::ExecutionType;

/// Kibana's three run outcomes: any error fails the run, any warning makes it partial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    #[serde(rename = "succeeded")]
    Succeeded,
    #[serde(rename = "partial failure")]
    PartialFailure,
    #[serde(rename = "failed")]
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::PartialFailure => "partial failure",
            RunStatus::Failed => "failed",
        }
    }

    fn from_messages(warnings: &[String], errors: &[String]) -> RunStatus {
        if !errors.is_empty() {
            RunStatus::Failed
        } else if !warnings.is_empty() {
            RunStatus::PartialFailure
        } else {
            RunStatus::Succeeded
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a window was searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Time between the watermark and the run's own window.
    CatchUp,
    /// The run's own `[from, to]`.
    Current,
    /// Part of a manual backfill range.
    Backfill,
}

/// What one window of a run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCounts {
    /// Matching events returned by the source.
    pub hits: u64,
    pub created: u64,
    /// Events already alerted: earlier in this run, by an earlier run, or a 409 on create.
    pub duplicates: u64,
    /// New alerts the cap kept back for a later run.
    pub left_over: u64,
    pub dead_lettered: u64,
    /// Alerts that could not be written (after the sink's retries); retried by a later run.
    pub failed_writes: u64,
    /// Hits that were this rule's own alerts (its index patterns reach the alerts index).
    #[serde(default)]
    pub own_alerts_skipped: u64,
}

impl WindowCounts {
    fn add(&mut self, other: &WindowCounts) {
        self.hits += other.hits;
        self.created += other.created;
        self.duplicates += other.duplicates;
        self.left_over += other.left_over;
        self.dead_lettered += other.dead_lettered;
        self.failed_writes += other.failed_writes;
        self.own_alerts_skipped += other.own_alerts_skipped;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowReport {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub kind: WindowKind,
    #[serde(flatten)]
    pub counts: WindowCounts,
    /// Every matching event was alerted, found to exist already, or dead-lettered.
    pub complete: bool,
    /// When not complete: the earliest time a later run must search again from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from: Option<DateTime<Utc>>,
}

impl WindowReport {
    pub fn window(&self) -> RuleWindow {
        RuleWindow {
            start: self.start,
            end: self.end,
        }
    }
}

/// One run of one rule: the execution log document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    /// When the run started (the time its windows were resolved against).
    #[serde(rename = "@timestamp")]
    pub started_at: DateTime<Utc>,
    pub rule_id: String,
    pub rule_name: String,
    pub rule_uuid: String,
    pub execution_uuid: String,
    pub execution_type: ExecutionType,
    pub duration_ms: u64,
    pub windows: Vec<WindowReport>,
    #[serde(flatten)]
    pub totals: WindowCounts,
    /// Unsearched time beyond the catch-up limit, recorded as open gaps.
    pub gaps: Vec<RuleWindow>,
    pub gap_duration_ms: u64,
    pub watermark_before: Option<DateTime<Utc>>,
    pub watermark_after: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl ExecutionRecord {
    /// Sum the windows and derive the status from the messages.
    pub(crate) fn finish(&mut self) {
        let mut totals = WindowCounts::default();
        for window in &self.windows {
            totals.add(&window.counts);
        }
        self.totals = totals;
        self.gap_duration_ms = self
            .gaps
            .iter()
            .map(|g| u64::try_from((g.end - g.start).num_milliseconds()).unwrap_or(0))
            .sum();
        self.status = RunStatus::from_messages(&self.warnings, &self.errors);
    }
}

impl ExecutionRecord {
    /// One log line for the finished run, at the level its status deserves.
    pub fn log(&self) {
        let totals = &self.totals;
        let manual = self.execution_type == ExecutionType::Manual;
        match self.status {
            RunStatus::Succeeded => tracing::info!(
                rule = %self.rule_id, manual, windows = self.windows.len(), hits = totals.hits,
                created = totals.created, duplicates = totals.duplicates, "rule run succeeded"
            ),
            RunStatus::PartialFailure => tracing::warn!(
                rule = %self.rule_id, manual, hits = totals.hits, created = totals.created,
                left_over = totals.left_over, warnings = ?self.warnings, "rule run partially failed"
            ),
            RunStatus::Failed => tracing::error!(
                rule = %self.rule_id, manual, hits = totals.hits, created = totals.created,
                errors = ?self.errors, "rule run failed"
            ),
        }
    }
}

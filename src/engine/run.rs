//! One run of one rule over its windows: search, dedup, cap, write, move the watermark, keep
//! the record. [`Engine`] holds the ports and the settings; it is shared by the scheduler,
//! `run --once` and `backfill`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::time::Instant as Deadline;
use uuid::Uuid;

use super::EngineError;
use super::config::EngineConfig;
use super::dedup::WindowWriter;
use super::ports::{
    AlertSink, EventSource, HitStream, RuleState, RuleWindow, StateStore, WindowQuery,
};
use super::record::{ExecutionRecord, RunStatus, WindowCounts, WindowKind, WindowReport};
use super::shutdown::Shutdown;
use super::state::{add_gap, next_watermark, subtract_covered};
use super::timing::Timing;
use super::windows::{PlannedWindow, humanize, plan_scheduled, split_forward};
use super::{aggregate, ports::ThresholdEntry};
use crate::alert::aggregate::threshold_id;
use crate::alert::fields::format_timestamp;
use crate::alert::{AlertBuilder, RunContext};
use crate::rule::Rule;
use crate::rule::kind::RuleKind;

/// Kibana's page size cap (`DEFAULT_SEARCH_AFTER_PAGE_SIZE`).
const MAX_PAGE_SIZE: u32 = 100;

/// The run logic over a source, a sink and a state store.
pub struct Engine {
    source: Arc<dyn EventSource>,
    sink: Arc<dyn AlertSink>,
    state: Arc<dyn StateStore>,
    config: EngineConfig,
    /// Kibana's ids of the rules registered there (`kibana.alert.rule.uuid`); a rule not in
    /// it gets the uuid derived from its rule id.
    rule_uuids: HashMap<String, Uuid>,
}

/// Why a window stopped before its end.
enum Interrupted {
    Timeout,
    Shutdown,
    /// The source or the sink failed; the message is already in the record's errors.
    Failure,
}

/// What one run is doing: its identity, its limits and what it has found so far.
struct RunScope<'a> {
    rule: &'a Arc<Rule>,
    builder: AlertBuilder,
    handled: HashSet<String>,
    deadline: Deadline,
    shutdown: &'a Shutdown,
    record: ExecutionRecord,
    /// A threshold rule's signal history, carried from window to window.
    threshold_history: Vec<ThresholdEntry>,
}

impl Engine {
    pub fn new(
        source: Arc<dyn EventSource>,
        sink: Arc<dyn AlertSink>,
        state: Arc<dyn StateStore>,
        config: EngineConfig,
    ) -> Self {
        Engine {
            source,
            sink,
            state,
            config,
            rule_uuids: HashMap::new(),
        }
    }

    /// Alerts of these rules name these Kibana rule ids.
    pub fn with_rule_uuids(mut self, rule_uuids: HashMap<String, Uuid>) -> Self {
        self.rule_uuids = rule_uuids;
        self
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn state_store(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    /// One scheduled run of `rule` started at `now`: catch-up windows, the rule's own window,
    /// the new watermark and open gaps saved, the execution record kept.
    pub async fn run_scheduled(
        &self,
        rule: &Arc<Rule>,
        now: DateTime<Utc>,
        shutdown: &Shutdown,
    ) -> ExecutionRecord {
        let clock_start = Instant::now();
        let ctx = self.run_context(RunContext::scheduled(now));
        let mut scope = self.scope(rule, ctx, shutdown);
        let timing = match Timing::of(rule) {
            Ok(timing) => timing,
            Err(error) => {
                return self
                    .finish_failed(scope, error.to_string(), clock_start)
                    .await;
            }
        };
        let mut state = match self.state.load(&rule.rule_id).await {
            Ok(state) => state.unwrap_or_else(|| empty_state(&rule.rule_id)),
            Err(error) => {
                let message = format!(
                    "cannot read the rule's state, so the run was skipped (the next run retries and catches up): {error}"
                );
                return self.finish_failed(scope, message, clock_start).await;
            }
        };
        let current = match timing.window(now) {
            Ok(window) => window,
            Err(error) => {
                return self
                    .finish_failed(scope, error.to_string(), clock_start)
                    .await;
            }
        };
        let plan = plan_scheduled(
            current,
            timing.interval(),
            state.watermark,
            self.config.max_catch_up,
        );
        scope.record.watermark_before = state.watermark;
        scope.threshold_history = std::mem::take(&mut state.threshold_history);

        if let Some(gap) = plan.gap {
            let span = gap.end - gap.start;
            scope.record.errors.push(format!(
                "{} ({}ms) were not queried between this rule execution and the last execution, so signals may have been missed: \
                 [{}, {}] lies beyond the maximum catch-up of {}. It is kept as an open gap; search it with \
                 `rule-runner backfill --rule {} --start {} --end {}`.",
                humanize(span),
                span.num_milliseconds(),
                format_timestamp(gap.start),
                format_timestamp(gap.end),
                humanize(super::windows::delta(self.config.max_catch_up)),
                rule.rule_id,
                format_timestamp(gap.start),
                format_timestamp(gap.end),
            ));
            scope.record.gaps.push(gap);
            add_gap(&mut state.open_gaps, gap);
        }

        self.run_windows(&mut scope, &plan.windows, state.watermark)
            .await;

        state.watermark = next_watermark(state.watermark, &scope.record.windows);
        state.threshold_history = std::mem::take(&mut scope.threshold_history);
        state.last_run_start = Some(now);
        scope.record.watermark_after = state.watermark;
        self.finish(scope, Some(state), clock_start).await
    }

    /// A manual run over `[start, end]` in interval-sized windows, with the same ids and dedup
    /// as scheduled runs, so repeating it is safe. It leaves the watermark alone and closes the
    /// open gaps it searched completely.
    pub async fn backfill(
        &self,
        rule: &Arc<Rule>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
        shutdown: &Shutdown,
    ) -> Result<ExecutionRecord, EngineError> {
        if start >= end {
            return Err(EngineError::EmptyRange {
                start: format_timestamp(start),
                end: format_timestamp(end),
            });
        }
        let timing = Timing::of(rule)?;
        let clock_start = Instant::now();
        let ctx = self.run_context(RunContext::manual(now, end));
        let mut scope = self.scope(rule, ctx, shutdown);
        let windows: Vec<PlannedWindow> = split_forward(start, end, timing.interval())
            .into_iter()
            .map(|window| PlannedWindow {
                window,
                kind: WindowKind::Backfill,
            })
            .collect();
        self.run_windows(&mut scope, &windows, None).await;

        let state = match self.state.load(&rule.rule_id).await {
            Ok(Some(mut state)) => {
                let searched: Vec<RuleWindow> = scope
                    .record
                    .windows
                    .iter()
                    .filter(|w| w.complete)
                    .map(WindowReport::window)
                    .collect();
                let remaining = subtract_covered(&state.open_gaps, &searched);
                (remaining != state.open_gaps).then(|| {
                    state.open_gaps = remaining;
                    state
                })
            }
            Ok(None) => None,
            Err(error) => {
                scope.record.warnings.push(format!(
                    "cannot read the rule's state to close the open gaps this backfill searched: {error}"
                ));
                None
            }
        };
        scope.record.watermark_before = None;
        Ok(self.finish(scope, state, clock_start).await)
    }

    fn run_context(&self, base: RunContext) -> RunContext {
        RunContext {
            space_id: self.config.space_id.clone(),
            kibana_version: self.config.kibana_version.clone(),
            identity: self.config.identity,
            ..base
        }
    }

    fn scope<'a>(
        &self,
        rule: &'a Arc<Rule>,
        ctx: RunContext,
        shutdown: &'a Shutdown,
    ) -> RunScope<'a> {
        let builder = match self.rule_uuids.get(&rule.rule_id) {
            Some(&uuid) => AlertBuilder::with_rule_uuid(rule, &ctx, uuid),
            None => AlertBuilder::new(rule, &ctx),
        };
        let record = ExecutionRecord {
            started_at: ctx.now,
            rule_id: rule.rule_id.clone(),
            rule_name: rule.name.clone(),
            rule_uuid: builder.rule_uuid().to_string(),
            execution_uuid: ctx.execution_uuid.to_string(),
            execution_type: ctx.execution_type,
            duration_ms: 0,
            windows: Vec::new(),
            totals: WindowCounts::default(),
            gaps: Vec::new(),
            gap_duration_ms: 0,
            watermark_before: None,
            watermark_after: None,
            status: RunStatus::Succeeded,
            warnings: Vec::new(),
            errors: Vec::new(),
        };
        RunScope {
            rule,
            builder,
            handled: HashSet::new(),
            deadline: Deadline::now() + self.config.run_timeout,
            shutdown,
            record,
            threshold_history: Vec::new(),
        }
    }

    /// Search the windows oldest first; stop at the first one that was interrupted.
    async fn run_windows(
        &self,
        scope: &mut RunScope<'_>,
        windows: &[PlannedWindow],
        watermark: Option<DateTime<Utc>>,
    ) {
        if scope.rule.max_signals > self.config.alerts_max {
            scope.record.warnings.push(format!(
                "The rule's max alerts per run setting ({}) is greater than the alerting limit ({}). \
                 The rule will only write a maximum of {} alerts per window.",
                scope.rule.max_signals, self.config.alerts_max, self.config.alerts_max
            ));
        }
        for planned in windows {
            let interrupted = self.run_window(scope, planned, watermark).await;
            match interrupted {
                None => {}
                Some(Interrupted::Failure) => break,
                Some(Interrupted::Timeout) => {
                    scope.record.errors.push(format!(
                        "The run timed out after {} while searching [{}, {}]; alerts already found were written \
                         and the next run continues from there.",
                        humanize(super::windows::delta(self.config.run_timeout)),
                        format_timestamp(planned.window.start),
                        format_timestamp(planned.window.end),
                    ));
                    break;
                }
                Some(Interrupted::Shutdown) => {
                    scope.record.warnings.push(format!(
                        "Stopped by shutdown while searching [{}, {}]; the next run continues from there.",
                        format_timestamp(planned.window.start),
                        format_timestamp(planned.window.end),
                    ));
                    break;
                }
            }
        }
    }

    /// Search one window page by page and write its alerts. Returns why it stopped early.
    async fn run_window(
        &self,
        scope: &mut RunScope<'_>,
        planned: &PlannedWindow,
        watermark: Option<DateTime<Utc>>,
    ) -> Option<Interrupted> {
        let window = planned.window;
        let label = window_label(window);
        let budget = scope.rule.max_signals.min(self.config.alerts_max);
        match scope.rule.kind() {
            Ok(RuleKind::Query) => {}
            Ok(kind) => {
                return self
                    .run_aggregate_window(scope, planned, watermark, kind, budget)
                    .await;
            }
            Err(why) => {
                scope
                    .record
                    .errors
                    .push(format!("rule `{}` cannot run: {why}", scope.rule.rule_id));
                return Some(Interrupted::Failure);
            }
        }
        let query = WindowQuery {
            rule: Arc::clone(scope.rule),
            window,
            page_size: budget.clamp(1, MAX_PAGE_SIZE) as usize,
        };
        let mut writer = WindowWriter::new(self.sink.as_ref(), &scope.builder, budget);
        let mut interrupted = None;
        let deadline = scope.deadline;
        let shutdown = scope.shutdown;

        let opened = tokio::select! {
            biased;
            _ = shutdown.requested() => Err(Interrupted::Shutdown),
            _ = tokio::time::sleep_until(deadline) => Err(Interrupted::Timeout),
            result = self.source.search(query) => result.map_err(|error| {
                scope.record.errors.push(format!("searching window {label} failed: {error}"));
                Interrupted::Failure
            }),
        };
        let mut stream: Option<Box<dyn HitStream>> = match opened {
            Ok(stream) => Some(stream),
            Err(why) => {
                interrupted = Some(why);
                None
            }
        };
        if let Some(hits) = stream.as_mut() {
            loop {
                let page = tokio::select! {
                    biased;
                    _ = shutdown.requested() => Err(Interrupted::Shutdown),
                    _ = tokio::time::sleep_until(deadline) => Err(Interrupted::Timeout),
                    page = hits.next_page() => page.map_err(|error| {
                        scope.record.errors.push(format!("reading window {label} failed: {error}"));
                        Interrupted::Failure
                    }),
                };
                match page {
                    Ok(Some(page)) => {
                        if writer.write_page(page, &mut scope.handled).await.is_err() {
                            interrupted = Some(Interrupted::Failure);
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(why) => {
                        interrupted = Some(why);
                        break;
                    }
                }
            }
            scope.record.warnings.extend(hits.warnings());
            if let Err(error) = hits.close().await {
                tracing::warn!(rule = %scope.rule.rule_id, %error, "closing the search failed");
            }
        }

        Self::close_window(
            &mut scope.record,
            planned,
            writer,
            interrupted,
            watermark,
            &label,
        )
    }

    /// One window of a new_terms, threshold or eql rule: its alerts found through group
    /// requests or an EQL search, then written as query rules' are.
    async fn run_aggregate_window(
        &self,
        scope: &mut RunScope<'_>,
        planned: &PlannedWindow,
        watermark: Option<DateTime<Utc>>,
        kind: RuleKind,
        budget: u32,
    ) -> Option<Interrupted> {
        let window = planned.window;
        let label = window_label(window);
        if matches!(kind, RuleKind::Threshold(_)) {
            aggregate::prune_history(&mut scope.threshold_history, window.start);
        }
        let source = self.source.as_ref();
        let (rule, builder, history) = (scope.rule, &scope.builder, &scope.threshold_history);
        let work = async {
            match &kind {
                RuleKind::NewTerms(params) => {
                    aggregate::new_terms(source, builder, rule, params, window)
                        .await
                        .map(|found| (found, Vec::new()))
                }
                RuleKind::Threshold(params) => {
                    aggregate::threshold(source, builder, rule, params, window, history).await
                }
                RuleKind::Eql(_) => aggregate::eql(source, builder, rule, window, budget)
                    .await
                    .map(|found| (found, Vec::new())),
                RuleKind::Query => Ok((
                    aggregate::Found {
                        alerts: Vec::new(),
                        warnings: Vec::new(),
                    },
                    Vec::new(),
                )),
            }
        };
        let found = tokio::select! {
            biased;
            _ = scope.shutdown.requested() => Err(Ok(Interrupted::Shutdown)),
            _ = tokio::time::sleep_until(scope.deadline) => Err(Ok(Interrupted::Timeout)),
            result = work => result.map_err(|error| {
                let failure: Result<Interrupted, String> =
                    Err(format!("searching window {label} failed: {error}"));
                failure
            }),
        };
        let mut writer = WindowWriter::for_aggregates(self.sink.as_ref(), &scope.builder, budget);
        let interrupted = match found {
            Ok((found, buckets)) => {
                if matches!(kind, RuleKind::Eql(_)) {
                    // The search's size capped the events or sequences; a sequence's
                    // building blocks and shell are written together.
                    writer = WindowWriter::for_aggregates(
                        self.sink.as_ref(),
                        &scope.builder,
                        budget.max(found.alerts.len() as u32),
                    );
                }
                scope.record.warnings.extend(found.warnings);
                let written = writer.write_alerts(found.alerts, &mut scope.handled).await;
                for bucket in &buckets {
                    if scope
                        .handled
                        .contains(&threshold_id(&scope.rule.rule_id, bucket))
                    {
                        aggregate::record_history(&mut scope.threshold_history, bucket);
                    }
                }
                written.err().map(|_| Interrupted::Failure)
            }
            Err(Ok(why)) => Some(why),
            Err(Err(message)) => {
                scope.record.errors.push(message);
                Some(Interrupted::Failure)
            }
        };
        Self::close_window(
            &mut scope.record,
            planned,
            writer,
            interrupted,
            watermark,
            &label,
        )
    }

    /// Close a window: hold the watermark if it was interrupted, keep its report.
    fn close_window(
        record: &mut ExecutionRecord,
        planned: &PlannedWindow,
        mut writer: WindowWriter<'_>,
        interrupted: Option<Interrupted>,
        watermark: Option<DateTime<Utc>>,
        label: &str,
    ) -> Option<Interrupted> {
        let window = planned.window;
        if interrupted.is_some() {
            // Events not read yet may be anywhere in the window: resume no later than what
            // earlier runs already finished.
            let finished_up_to =
                watermark.map_or(window.start, |w| w.clamp(window.start, window.end));
            writer.hold_at(finished_up_to);
        }
        let result = writer.finish(label);
        record.warnings.extend(result.warnings);
        record.errors.extend(result.errors);
        record.windows.push(WindowReport {
            start: window.start,
            end: window.end,
            kind: planned.kind,
            counts: result.counts,
            complete: result.hold.is_none(),
            resume_from: result.hold,
        });
        interrupted
    }

    /// A run that could not start: record why.
    async fn finish_failed(
        &self,
        mut scope: RunScope<'_>,
        message: String,
        clock_start: Instant,
    ) -> ExecutionRecord {
        scope.record.errors.push(message);
        self.finish(scope, None, clock_start).await
    }

    /// Save the state (if any), keep the record, log the outcome.
    async fn finish(
        &self,
        mut scope: RunScope<'_>,
        state: Option<RuleState>,
        clock_start: Instant,
    ) -> ExecutionRecord {
        scope.record.finish();
        if let Some(mut state) = state {
            state.last_outcome = Some(scope.record.status.as_str().to_owned());
            if let Err(error) = self.state.save(&state).await {
                scope.record.errors.push(format!(
                    "saving the rule's state failed; the next run repeats this one's windows (no duplicates): {error}"
                ));
                scope.record.finish();
            }
        }
        scope.record.duration_ms =
            u64::try_from(clock_start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let record = scope.record;
        match serde_json::to_value(&record) {
            Ok(document) => {
                if let Err(error) = self.state.record_execution(&document).await {
                    tracing::warn!(rule = %record.rule_id, %error, "keeping the execution record failed");
                }
            }
            Err(error) => {
                tracing::warn!(rule = %record.rule_id, %error, "cannot serialize the execution record")
            }
        }
        record.log();
        record
    }
}

fn window_label(window: RuleWindow) -> String {
    format!(
        "[{}, {}]",
        format_timestamp(window.start),
        format_timestamp(window.end)
    )
}

fn empty_state(rule_id: &str) -> RuleState {
    RuleState {
        rule_id: rule_id.to_owned(),
        watermark: None,
        last_run_start: None,
        last_outcome: None,
        open_gaps: Vec::new(),
        threshold_history: Vec::new(),
    }
}

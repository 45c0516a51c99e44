//! When rules run. Each rule runs on its own schedule (its interval, Kibana style, or a cron
//! expression), never concurrently with itself, with a bound on runs in flight across rules.
//! Before each run the [`Leases`] decide whether this instance runs the rule at all.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::{FutureExt, StreamExt};
use tokio::task::JoinSet;

use super::EngineError;
use super::clock::Clock;
use super::ports::{Leases, RuleAmendments, StateStore};
use super::record::ExecutionRecord;
use super::run::Engine;
use super::shutdown::Shutdown;
use super::timing::Timing;
use super::timing::parse_cron;
use super::windows::delta;
use crate::rule::Rule;

/// A start later than planned by more than this counts as drift: the next run is then
/// planned from the actual start (Kibana's task manager does the same).
const DRIFT_THRESHOLD: TimeDelta = TimeDelta::seconds(1);
/// A lease outlives the run timeout by this much, so a slow final write keeps it.
const LEASE_MARGIN: Duration = Duration::from_secs(60);
/// The longest the scheduler sleeps before looking at the wall clock again.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// How a rule's runs are spaced.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every `interval`, from the previous run's planned start (Kibana's behaviour).
    Every(Duration),
    /// At the times of a cron expression (UTC).
    Cron(Box<cron::Schedule>),
}

impl Schedule {
    /// The rule's own `cron`, else the global one, else its interval.
    pub fn for_rule(rule: &Rule, global_cron: Option<&str>) -> Result<Schedule, EngineError> {
        if let Some(expression) = rule.cron.as_deref() {
            return Ok(Schedule::Cron(Box::new(parse_cron(
                expression,
                Some(&rule.rule_id),
            )?)));
        }
        if let Some(expression) = global_cron {
            return Ok(Schedule::Cron(Box::new(parse_cron(expression, None)?)));
        }
        Ok(Schedule::Every(Timing::of(rule)?.interval()))
    }

    fn cron_after(schedule: &cron::Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        schedule.after(&after).next()
    }

    /// The next run after one planned at `planned`, started at `started`, finished at
    /// `finished`: never in the past, so an overrun starts the next run at once (the gap logic
    /// covers the missed time; missed runs are not replayed).
    pub fn next_run(
        &self,
        planned: DateTime<Utc>,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    ) -> DateTime<Utc> {
        let next = match self {
            Schedule::Every(interval) => {
                let base = if started - planned > DRIFT_THRESHOLD {
                    started
                } else {
                    planned
                };
                base.checked_add_signed(delta(*interval))
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
            Schedule::Cron(schedule) => {
                Self::cron_after(schedule, planned).unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
        };
        next.max(finished)
    }

    /// The first run after start-up, given when the rule last started (from its state).
    pub fn first_run(
        &self,
        last_start: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> DateTime<Utc> {
        match (self, last_start) {
            (_, Some(last)) => self.next_run(last, last, now),
            // A new rule runs at once, as Kibana runs a rule when it is enabled.
            (Schedule::Every(_), None) => now,
            (Schedule::Cron(schedule), None) => {
                Self::cron_after(schedule, now).unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
        }
    }

    /// How early a rule may run in a one-off tick (`run --once` from an external cron job
    /// that fires a little before the planned time): half its period, at most a minute.
    fn once_tolerance(&self) -> TimeDelta {
        let period = match self {
            Schedule::Every(interval) => delta(*interval),
            Schedule::Cron(_) => TimeDelta::minutes(2),
        };
        (period / 2).min(TimeDelta::minutes(1))
    }
}

/// What came of one scheduled slot of a rule.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    Ran(Box<ExecutionRecord>),
    /// Another instance holds the rule's lease and runs it.
    HeldElsewhere {
        rule_id: String,
    },
    /// Another instance already ran this slot (its start is in the rule's state).
    AlreadyRan {
        rule_id: String,
        at: DateTime<Utc>,
    },
    /// The lease store failed; the run was skipped and the next slot tries again.
    LeaseFailed {
        rule_id: String,
        error: String,
    },
    /// What is added to the rule (its Kibana exceptions) could not be read; the run was
    /// skipped and the next slot tries again.
    AmendmentsFailed {
        rule_id: String,
        error: String,
    },
    /// The run panicked (a bug); the next slot runs it again.
    Crashed {
        rule_id: String,
        message: String,
    },
}

impl RunOutcome {
    pub fn record(&self) -> Option<&ExecutionRecord> {
        match self {
            RunOutcome::Ran(record) => Some(record),
            _ => None,
        }
    }
}

struct Entry {
    rule: Arc<Rule>,
    schedule: Schedule,
    next_run: DateTime<Utc>,
    running: bool,
}

/// Runs rules on their schedules.
pub struct Scheduler {
    engine: Arc<Engine>,
    leases: Arc<dyn Leases>,
    clock: Arc<dyn Clock>,
    amendments: Option<Arc<dyn RuleAmendments>>,
    entries: Vec<Entry>,
}

impl Scheduler {
    /// Schedule the enabled KQL query rules. Rules that cannot be scheduled are left out and
    /// returned as problems; the rest run.
    pub async fn new(
        engine: Arc<Engine>,
        rules: Vec<Arc<Rule>>,
        leases: Arc<dyn Leases>,
        clock: Arc<dyn Clock>,
    ) -> (Scheduler, Vec<EngineError>) {
        let now = clock.now();
        let mut problems = Vec::new();
        let mut entries = Vec::new();
        let global_cron = engine.config().cron.clone();
        for rule in rules.into_iter().filter(|rule| rule.enabled) {
            if !rule.runs_in_service() {
                problems.push(EngineError::Unsupported {
                    rule_id: rule.rule_id.clone(),
                    rule_type: rule.rule_type.clone(),
                    language: rule.language.clone().unwrap_or_default(),
                });
                continue;
            }
            let schedule = match Schedule::for_rule(&rule, global_cron.as_deref())
                .and_then(|schedule| Timing::of(&rule).map(|_| schedule))
            {
                Ok(schedule) => schedule,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            let last_start = last_start(engine.state_store().as_ref(), &rule.rule_id).await;
            entries.push(Entry {
                next_run: schedule.first_run(last_start, now),
                rule,
                schedule,
                running: false,
            });
        }
        let scheduler = Scheduler {
            engine,
            leases,
            clock,
            amendments: None,
            entries,
        };
        (scheduler, problems)
    }

    /// Amend each rule before each of its runs (Kibana exceptions read afresh).
    pub fn with_amendments(mut self, amendments: Arc<dyn RuleAmendments>) -> Self {
        self.amendments = Some(amendments);
        self
    }

    /// Each scheduled rule and its next planned run.
    pub fn next_runs(&self) -> Vec<(String, DateTime<Utc>)> {
        self.entries
            .iter()
            .map(|entry| (entry.rule.rule_id.clone(), entry.next_run))
            .collect()
    }

    /// One tick (`run --once`): run every rule that is due now, at most
    /// `max_concurrent_runs` at a time, and return what happened.
    pub async fn run_once(&mut self, shutdown: &Shutdown) -> Vec<RunOutcome> {
        let now = self.clock.now();
        let due: Vec<usize> = (0..self.entries.len())
            .filter(|&i| {
                self.entries[i].next_run <= now + self.entries[i].schedule.once_tolerance()
            })
            .collect();
        let limit = self.engine.config().max_concurrent_runs.max(1);
        let runs = due.iter().map(|&i| {
            let task = self.task(i, shutdown.clone());
            async move { (i, task.await) }
        });
        let mut finished: Vec<(usize, RunOutcome)> = futures::stream::iter(runs)
            .buffer_unordered(limit)
            .collect()
            .await;
        finished.sort_by_key(|(i, _)| *i);
        let done = self.clock.now();
        for (i, _) in &finished {
            let entry = &mut self.entries[*i];
            entry.next_run = entry.schedule.next_run(entry.next_run, now, done);
        }
        finished.into_iter().map(|(_, outcome)| outcome).collect()
    }

    /// Run rules on their schedules until `shutdown`; then let runs in flight finish their
    /// writes and save their state, and return.
    pub async fn run_until(mut self, shutdown: Shutdown) {
        let limit = self.engine.config().max_concurrent_runs.max(1);
        let mut running: JoinSet<(usize, DateTime<Utc>, DateTime<Utc>, RunOutcome)> =
            JoinSet::new();
        tracing::info!(rules = self.entries.len(), "scheduler started");
        loop {
            if shutdown.is_requested() {
                break;
            }
            let now = self.clock.now();
            let mut due: Vec<usize> = (0..self.entries.len())
                .filter(|&i| !self.entries[i].running && self.entries[i].next_run <= now)
                .collect();
            due.sort_by_key(|&i| self.entries[i].next_run);
            for i in due.into_iter().take(limit.saturating_sub(running.len())) {
                let planned = self.entries[i].next_run;
                self.entries[i].running = true;
                let task = self.task(i, shutdown.clone());
                running.spawn(async move { (i, planned, now, task.await) });
            }

            let wake = self
                .entries
                .iter()
                .filter(|entry| !entry.running)
                .map(|entry| entry.next_run)
                .min();
            let sleep_for = wake
                .map(|at| (at - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            // With every slot busy, only a finishing run can let the next one start.
            let idle_wait = running.len() < limit;
            tokio::select! {
                _ = shutdown.requested() => break,
                Some(joined) = running.join_next(), if !running.is_empty() => self.finished(joined),
                _ = tokio::time::sleep(sleep_for), if idle_wait => {}
            }
        }
        tracing::info!(
            in_flight = running.len(),
            "stopping: waiting for runs in flight"
        );
        while let Some(joined) = running.join_next().await {
            self.finished(joined);
        }
        tracing::info!("scheduler stopped");
    }

    fn finished(
        &mut self,
        joined: Result<(usize, DateTime<Utc>, DateTime<Utc>, RunOutcome), tokio::task::JoinError>,
    ) {
        match joined {
            Ok((i, planned, started, outcome)) => {
                log_outcome(&outcome);
                let done = self.clock.now();
                let entry = &mut self.entries[i];
                entry.running = false;
                entry.next_run = entry.schedule.next_run(planned, started, done);
            }
            // Tasks are never aborted and panics are caught inside them, so this is only
            // reached if the runtime itself is going away.
            Err(error) => tracing::error!(%error, "a rule run task ended abnormally"),
        }
    }

    /// The work of one slot: take the lease, run, give the lease back.
    fn task(
        &self,
        i: usize,
        shutdown: Shutdown,
    ) -> impl Future<Output = RunOutcome> + Send + 'static {
        let engine = Arc::clone(&self.engine);
        let leases = Arc::clone(&self.leases);
        let clock = Arc::clone(&self.clock);
        let rule = Arc::clone(&self.entries[i].rule);
        let schedule = self.entries[i].schedule.clone();
        let amendments = self.amendments.clone();
        async move {
            let rule_id = rule.rule_id.clone();
            let ttl = engine.config().run_timeout + LEASE_MARGIN;
            match leases.acquire(&rule_id, ttl).await {
                Ok(true) => {}
                Ok(false) => return RunOutcome::HeldElsewhere { rule_id },
                Err(error) => {
                    return RunOutcome::LeaseFailed {
                        rule_id,
                        error: error.to_string(),
                    };
                }
            }
            // With several instances, the lease only stops two runs at once; the state tells
            // whether another instance already ran this slot.
            if let Some(last) = last_start(engine.state_store().as_ref(), &rule_id).await
                && schedule.next_run(last, last, last) > clock.now() + schedule.once_tolerance()
            {
                release(leases.as_ref(), &rule_id).await;
                return RunOutcome::AlreadyRan { rule_id, at: last };
            }
            let rule = match &amendments {
                Some(amendments) => match amendments.amend(&rule).await {
                    Ok(amended) => amended,
                    Err(error) => {
                        release(leases.as_ref(), &rule_id).await;
                        return RunOutcome::AmendmentsFailed {
                            rule_id,
                            error: error.to_string(),
                        };
                    }
                },
                None => rule,
            };
            let started = clock.now();
            let run =
                AssertUnwindSafe(engine.run_scheduled(&rule, started, &shutdown)).catch_unwind();
            let outcome = match run.await {
                Ok(record) => RunOutcome::Ran(Box::new(record)),
                Err(panic) => RunOutcome::Crashed {
                    rule_id: rule_id.clone(),
                    message: panic_message(panic.as_ref()),
                },
            };
            release(leases.as_ref(), &rule_id).await;
            outcome
        }
    }
}

async fn release(leases: &dyn Leases, rule_id: &str) {
    if let Err(error) = leases.release(rule_id).await {
        tracing::warn!(rule = %rule_id, %error, "releasing the rule's lease failed; it expires on its own");
    }
}

async fn last_start(state: &dyn StateStore, rule_id: &str) -> Option<DateTime<Utc>> {
    match state.load(rule_id).await {
        Ok(state) => state.and_then(|s| s.last_run_start),
        Err(error) => {
            tracing::warn!(rule = %rule_id, %error, "cannot read the rule's state; running it now");
            None
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

fn log_outcome(outcome: &RunOutcome) {
    match outcome {
        RunOutcome::Ran(_) => {}
        RunOutcome::AlreadyRan { rule_id, at } => {
            tracing::debug!(rule = %rule_id, %at, "another instance already ran this slot; skipped")
        }
        RunOutcome::HeldElsewhere { rule_id } => {
            tracing::debug!(rule = %rule_id, "another instance holds the rule's lease; skipped")
        }
        RunOutcome::LeaseFailed { rule_id, error } => {
            tracing::warn!(rule = %rule_id, %error, "cannot take the rule's lease; run skipped")
        }
        RunOutcome::AmendmentsFailed { rule_id, error } => {
            tracing::warn!(rule = %rule_id, %error, "cannot read the rule's exceptions; run skipped, the next slot tries again")
        }
        RunOutcome::Crashed { rule_id, message } => {
            tracing::error!(rule = %rule_id, %message, "rule run panicked; it runs again at its next slot")
        }
    }
}

//! The scheduler: intervals, overruns, bounded concurrency, leases, `run --once`, cron.
//! The loop runs under tokio's paused clock, so hours pass instantly and deterministically.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rule_runner::engine::clock::{Clock, ManualClock, TokioClock};
use rule_runner::engine::memory::MemorySource;
use rule_runner::engine::ports::{Leases, RuleState, SoleInstance, StateStore};
use rule_runner::engine::scheduler::RunOutcome;
use rule_runner::engine::shutdown::ShutdownTrigger;
use rule_runner::engine::{Engine, EngineConfig, Schedule, Scheduler};
use rule_runner::ops::lease::memory::MemoryLeaseBackend;
use rule_runner::ops::lease::{LeaseManager, clock_now};
use rule_runner::rule::Rule;

use super::{Harness, seed_rule, t};

fn rule_named(id: &str) -> Arc<Rule> {
    let mut rule = seed_rule();
    rule.rule_id = id.into();
    Arc::new(rule)
}

/// Start times of each rule's runs, from the execution log.
fn starts(h: &Harness, rule_id: &str) -> Vec<DateTime<Utc>> {
    h.state
        .executions()
        .iter()
        .filter(|r| r["rule_id"] == rule_id)
        .map(|r| serde_json::from_value(r["@timestamp"].clone()).unwrap())
        .collect()
}

/// Run the scheduler loop from 12:00 for `minutes` of tokio time.
async fn run_loop(engine: Arc<Engine>, rules: Vec<Arc<Rule>>, minutes: u64) {
    let clock = Arc::new(TokioClock::starting_at(t(12, 0)));
    let (scheduler, problems) = Scheduler::new(engine, rules, Arc::new(SoleInstance), clock).await;
    assert!(problems.is_empty(), "{problems:?}");
    let trigger = ShutdownTrigger::new();
    let shutdown = trigger.subscribe();
    let looping = tokio::spawn(scheduler.run_until(shutdown));
    tokio::time::sleep(Duration::from_secs(minutes * 60)).await;
    trigger.trigger();
    looping.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn rules_run_every_interval_until_shutdown() {
    let h = Harness::new();
    let engine = Arc::new(h.restarted().engine);
    run_loop(engine, vec![rule_named("a"), rule_named("b")], 35).await;
    let expected: Vec<_> = (0..4)
        .map(|i| t(12, 0) + TimeDelta::minutes(10 * i))
        .collect();
    assert_eq!(starts(&h, "a"), expected);
    assert_eq!(starts(&h, "b"), expected);
}

/// The harness's ports behind a source whose every page takes `delay`.
fn slow_engine(h: &Harness, delay: Duration, config: EngineConfig) -> Arc<Engine> {
    let source = Arc::new(super::slow::SlowSource::new(MemorySource::new(), delay));
    Arc::new(Engine::new(source, h.sink.clone(), h.state.clone(), config))
}

#[tokio::test(start_paused = true)]
async fn an_overrunning_rule_never_overlaps_itself_and_restarts_at_once() {
    let h = Harness::new();
    // Each run takes 15 minutes; the interval is 10.
    let config = EngineConfig {
        run_timeout: Duration::from_secs(30 * 60),
        ..EngineConfig::default()
    };
    let engine = slow_engine(&h, Duration::from_secs(15 * 60), config);
    run_loop(engine, vec![rule_named("slow")], 50).await;
    let expected: Vec<_> = [0, 15, 30, 45]
        .iter()
        .map(|m| t(12, 0) + TimeDelta::minutes(*m))
        .collect();
    assert_eq!(starts(&h, "slow"), expected);
}

#[tokio::test(start_paused = true)]
async fn concurrency_across_rules_is_bounded() {
    let h = Harness::new();
    let config = EngineConfig {
        max_concurrent_runs: 2,
        ..EngineConfig::default()
    };
    let engine = slow_engine(&h, Duration::from_secs(4 * 60), config);
    let rules: Vec<_> = ["r1", "r2", "r3", "r4"]
        .iter()
        .map(|id| rule_named(id))
        .collect();
    run_loop(engine, rules, 7).await;
    assert_eq!(starts(&h, "r1"), vec![t(12, 0)]);
    assert_eq!(starts(&h, "r2"), vec![t(12, 0)]);
    assert_eq!(starts(&h, "r3"), vec![t(12, 4)]);
    assert_eq!(starts(&h, "r4"), vec![t(12, 4)]);
}

async fn saved_start(h: &Harness, rule_id: &str, at: DateTime<Utc>) {
    h.state
        .save(&RuleState {
            rule_id: rule_id.into(),
            watermark: Some(at),
            last_run_start: Some(at),
            last_outcome: Some("succeeded".into()),
            open_gaps: vec![],
            threshold_history: vec![],
        })
        .await
        .unwrap();
}

/// The rules one `run --once` tick ran.
async fn ran_once(scheduler: &mut Scheduler) -> Vec<String> {
    let outcomes = scheduler
        .run_once(&rule_runner::engine::Shutdown::never())
        .await;
    outcomes
        .iter()
        .filter_map(|o| o.record().map(|r| r.rule_id.clone()))
        .collect()
}

#[tokio::test]
async fn run_once_runs_only_due_rules_and_resumes_the_schedule_after_a_restart() {
    let h = Harness::new();
    saved_start(&h, "ran-recently", t(12, 0)).await;
    let clock = Arc::new(ManualClock::new(t(12, 5)));
    let engine = Arc::new(h.restarted().engine);
    let rules = vec![rule_named("ran-recently"), rule_named("never-ran")];
    let (mut scheduler, _) =
        Scheduler::new(engine, rules, Arc::new(SoleInstance), clock.clone()).await;
    assert_eq!(
        scheduler.next_runs(),
        vec![
            ("ran-recently".into(), t(12, 10)),
            ("never-ran".into(), t(12, 5))
        ]
    );
    let ran = ran_once(&mut scheduler).await;
    assert_eq!(ran, vec!["never-ran".to_owned()]);
    // A cron job firing a few seconds early still counts as on time.
    clock.set(t(12, 10) - TimeDelta::seconds(5));
    let ran = ran_once(&mut scheduler).await;
    assert_eq!(ran, vec!["ran-recently".to_owned()]);
}

#[tokio::test]
async fn two_instances_share_the_work_through_leases_and_state() {
    let h = Harness::new();
    let clock = Arc::new(ManualClock::new(t(12, 0)));
    let table = Arc::new(MemoryLeaseBackend::new());
    let instance = |name: &str| {
        Arc::new(LeaseManager::new(
            table.clone(),
            name,
            clock_now(clock.clone()),
        ))
    };
    let holder = || {
        table
            .snapshot()
            .into_iter()
            .find(|l| l.rule_id == "shared" && l.expires_at > clock.now())
            .and_then(|l| l.owner)
    };
    let rules = vec![rule_named("shared")];
    let engine_a = Arc::new(h.restarted().engine);
    let engine_b = Arc::new(h.restarted().engine);
    let (mut a, _) = Scheduler::new(engine_a, rules.clone(), instance("a"), clock.clone()).await;
    let (mut b, _) = Scheduler::new(engine_b, rules, instance("b"), clock.clone()).await;
    let never = rule_runner::engine::Shutdown::never();
    assert!(matches!(a.run_once(&never).await[0], RunOutcome::Ran(_)));
    assert!(matches!(
        b.run_once(&never).await[0],
        RunOutcome::AlreadyRan { .. }
    ));
    assert_eq!(holder(), None, "released after the run");

    // While another instance holds the lease, this one stays out.
    clock.set(t(12, 10));
    let other = instance("c");
    assert!(
        other
            .acquire("shared", Duration::from_secs(600))
            .await
            .unwrap()
    );
    assert!(matches!(
        a.run_once(&never).await[0],
        RunOutcome::HeldElsewhere { .. }
    ));
    assert_eq!(starts(&h, "shared"), vec![t(12, 0)]);
}

#[tokio::test]
async fn schedules_follow_interval_drift_and_cron() {
    let every = Schedule::Every(Duration::from_secs(600));
    // On time: the next run is planned from the planned start.
    assert_eq!(every.next_run(t(12, 0), t(12, 0), t(12, 2)), t(12, 10));
    // Overrun: at once.
    assert_eq!(every.next_run(t(12, 0), t(12, 0), t(12, 14)), t(12, 14));
    // Started late (drift): planned from the actual start.
    assert_eq!(every.next_run(t(12, 0), t(12, 3), t(12, 4)), t(12, 13));

    let mut rule = seed_rule();
    rule.cron = Some("*/15 * * * *".into());
    let cron = Schedule::for_rule(&rule, None).unwrap();
    assert_eq!(cron.first_run(None, t(12, 5)), t(12, 15));
    assert_eq!(cron.next_run(t(12, 15), t(12, 15), t(12, 16)), t(12, 30));
    // A global cron applies to rules without their own.
    let global = Schedule::for_rule(&seed_rule(), Some("0 0 * * * *")).unwrap();
    assert_eq!(global.first_run(None, t(12, 5)), t(13, 0));
}

#[tokio::test]
async fn unschedulable_rules_are_reported_and_the_rest_run() {
    let h = Harness::new();
    let mut bad_cron = seed_rule();
    bad_cron.rule_id = "bad-cron".into();
    bad_cron.cron = Some("every ten minutes".into());
    let mut eql = seed_rule();
    eql.rule_id = "ml".into();
    eql.rule_type = "machine_learning".into();
    let mut disabled = seed_rule();
    disabled.rule_id = "off".into();
    disabled.enabled = false;
    let rules = vec![
        Arc::new(bad_cron),
        Arc::new(eql),
        Arc::new(disabled),
        rule_named("good"),
    ];
    let clock = Arc::new(ManualClock::new(t(12, 0)));
    let (scheduler, problems) = Scheduler::new(
        Arc::new(h.restarted().engine),
        rules,
        Arc::new(SoleInstance),
        clock,
    )
    .await;
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("every ten minutes") && messages[0].contains("bad-cron"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].contains("`machine_learning` rule"),
        "{}",
        messages[1]
    );
    assert_eq!(scheduler.next_runs(), vec![("good".into(), t(12, 0))]);
}

/// Amendments that exclude the events named in `excluded` (by `event.id`), changeable
/// between runs as an analyst adds exceptions, or that fail while `failing` is set.
#[derive(Default)]
struct Exclusions {
    excluded: std::sync::Mutex<Vec<String>>,
    failing: std::sync::atomic::AtomicBool,
    asked: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl rule_runner::engine::RuleAmendments for Exclusions {
    async fn amend(&self, rule: &Arc<Rule>) -> Result<Arc<Rule>, rule_runner::engine::PortError> {
        use std::sync::atomic::Ordering;
        self.asked.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(rule_runner::engine::PortError::Transient(
                "Kibana answered HTTP 503".into(),
            ));
        }
        let excluded = self.excluded.lock().unwrap().clone();
        if excluded.is_empty() {
            return Ok(Arc::clone(rule));
        }
        let mut amended = (**rule).clone();
        let query = amended.query.clone().unwrap_or_default();
        amended.query = Some(format!(
            "({query}) and not event.id: ({})",
            excluded.join(" or ")
        ));
        Ok(Arc::new(amended))
    }
}

#[tokio::test]
async fn amendments_are_read_before_every_run_and_a_failed_read_skips_the_run() {
    use std::sync::atomic::Ordering;
    let h = Harness::new();
    let clock = Arc::new(ManualClock::new(t(12, 0)));
    let exclusions = Arc::new(Exclusions::default());
    let engine = Arc::new(h.restarted().engine);
    let (scheduler, _) = Scheduler::new(
        engine,
        vec![Arc::new(seed_rule())],
        Arc::new(SoleInstance),
        clock.clone(),
    )
    .await;
    let mut scheduler = scheduler.with_amendments(exclusions.clone());
    let never = rule_runner::engine::Shutdown::never();

    h.add("e1", t(11, 55));
    scheduler.run_once(&never).await;
    assert_eq!(h.alerted_event_ids(), ["e1"]);

    // An exception for e3 arrives while the service runs: the next run honours it.
    *exclusions.excluded.lock().unwrap() = vec!["e3".into()];
    h.add("e2", t(12, 5));
    h.add("e3", t(12, 6));
    clock.set(t(12, 10));
    scheduler.run_once(&never).await;
    assert_eq!(h.alerted_event_ids(), ["e1", "e2"]);

    // Kibana cannot be read: the run is skipped (not run without the exception) and the
    // watermark stays, so the next run covers the time.
    exclusions.failing.store(true, Ordering::SeqCst);
    h.add("e4", t(12, 15));
    clock.set(t(12, 20));
    let outcomes = scheduler.run_once(&never).await;
    assert!(
        matches!(&outcomes[0], RunOutcome::AmendmentsFailed { error, .. } if error.contains("503")),
        "{outcomes:?}"
    );
    assert_eq!(h.alerted_event_ids(), ["e1", "e2"]);
    exclusions.failing.store(false, Ordering::SeqCst);
    clock.set(t(12, 30));
    scheduler.run_once(&never).await;
    assert_eq!(h.alerted_event_ids(), ["e1", "e2", "e4"]);
    assert_eq!(exclusions.asked.load(Ordering::SeqCst), 4, "once per run");
}

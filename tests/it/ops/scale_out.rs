//! Scale-out: three engines share one (in-memory) cluster's rules through leases. Under
//! tokio's paused clock, an hour of scheduling passes instantly and deterministically.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rule_runner::engine::clock::{Clock, TokioClock};
use rule_runner::engine::ports::{
    EventHit, EventSource, HitStream, Leases, PortError, WindowQuery,
};
use rule_runner::engine::shutdown::ShutdownTrigger;
use rule_runner::engine::{Engine, EngineConfig, Scheduler, Shutdown};
use rule_runner::ops::lease::memory::MemoryLeaseBackend;
use rule_runner::ops::lease::{LeaseManager, clock_now};
use rule_runner::rule::Rule;

use crate::engine::{Harness, seed_rule, t};

fn rules(n: usize) -> Vec<Arc<Rule>> {
    (0..n)
        .map(|i| {
            let mut rule = seed_rule();
            rule.rule_id = format!("rule-{i}");
            Arc::new(rule)
        })
        .collect()
}

/// Who took which lease when: the instance's view, recorded around the real leases.
struct Recorded {
    name: &'static str,
    inner: LeaseManager<MemoryLeaseBackend>,
    clock: Arc<dyn Clock>,
    log: Log,
}

#[async_trait]
impl Leases for Recorded {
    async fn acquire(&self, rule_id: &str, ttl: Duration) -> Result<bool, PortError> {
        let won = self.inner.acquire(rule_id, ttl).await?;
        self.log
            .lock()
            .unwrap()
            .push((self.name, rule_id.to_string(), self.clock.now(), won));
        Ok(won)
    }
    async fn release(&self, rule_id: &str) -> Result<(), PortError> {
        self.inner.release(rule_id).await
    }
}

/// (instance, rule, when, won) for every claim.
type Log = Arc<Mutex<Vec<(&'static str, String, DateTime<Utc>, bool)>>>;

fn leases(
    name: &'static str,
    backend: &Arc<MemoryLeaseBackend>,
    clock: &Arc<dyn Clock>,
    log: &Log,
) -> Arc<Recorded> {
    Arc::new(Recorded {
        name,
        inner: LeaseManager::new(backend.clone(), name, clock_now(clock.clone())),
        clock: clock.clone(),
        log: log.clone(),
    })
}

/// Start times of each rule's completed runs, from the shared execution log.
fn starts(h: &Harness) -> BTreeMap<String, Vec<DateTime<Utc>>> {
    let mut by_rule: BTreeMap<String, Vec<DateTime<Utc>>> = BTreeMap::new();
    for record in h.state.executions() {
        let at = serde_json::from_value(record["@timestamp"].clone()).unwrap();
        by_rule
            .entry(record["rule_id"].as_str().unwrap().to_string())
            .or_default()
            .push(at);
    }
    by_rule
}

#[tokio::test(start_paused = true)]
async fn three_instances_share_rules_without_running_any_twice_in_a_window() {
    let h = Harness::new();
    for (i, minute) in [2, 7, 13, 21, 34, 48, 55].iter().enumerate() {
        h.add(&format!("e{i}"), t(11, *minute));
        h.add(&format!("f{i}"), t(12, *minute));
    }
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t(12, 0)));
    let backend = Arc::new(MemoryLeaseBackend::new());
    let log: Log = Arc::default();
    let trigger = ShutdownTrigger::new();
    let mut loops = Vec::new();
    for name in ["a", "b", "c"] {
        let engine = Arc::new(h.restarted().engine);
        let (scheduler, problems) = Scheduler::new(
            engine,
            rules(12),
            leases(name, &backend, &clock, &log),
            clock.clone(),
        )
        .await;
        assert!(problems.is_empty(), "{problems:?}");
        loops.push(tokio::spawn(scheduler.run_until(trigger.subscribe())));
    }
    tokio::time::sleep(Duration::from_secs(65 * 60)).await;
    trigger.trigger();
    for l in loops {
        l.await.unwrap();
    }

    // Every rule ran once per 10-minute slot, 12:00 to 13:00, never twice in one slot.
    let slots: Vec<_> = (0..7)
        .map(|i| t(12, 0) + TimeDelta::minutes(10 * i))
        .collect();
    let starts = starts(&h);
    assert_eq!(starts.len(), 12);
    for (rule, at) in &starts {
        assert_eq!(at, &slots, "{rule}");
    }
    // Each event alerted once per rule, though every window overlaps six earlier ones and
    // three instances raced for every slot.
    let alerts = h.sink.alerts();
    let unique: HashSet<_> = alerts.iter().map(|a| a.id.clone()).collect();
    assert_eq!(alerts.len(), unique.len());
    assert_eq!(alerts.len(), 12 * 14);
    // The work was shared: every instance won some leases.
    let log = log.lock().unwrap();
    for name in ["a", "b", "c"] {
        assert!(
            log.iter().any(|(who, _, _, won)| *who == name && *won),
            "{name} never ran a rule"
        );
    }
    assert!(
        backend.snapshot().iter().all(|l| l.owner.is_none()),
        "every lease released after its run"
    );
}

/// A source whose every page takes an hour: an instance stuck in a run.
struct Stuck(Arc<dyn EventSource>);
struct StuckStream(Box<dyn HitStream>);

#[async_trait]
impl EventSource for Stuck {
    async fn search(&self, query: WindowQuery) -> Result<Box<dyn HitStream>, PortError> {
        Ok(Box::new(StuckStream(self.0.search(query).await?)))
    }
}

#[async_trait]
impl HitStream for StuckStream {
    async fn next_page(&mut self) -> Result<Option<Vec<EventHit>>, PortError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        self.0.next_page().await
    }
    async fn close(&mut self) -> Result<(), PortError> {
        self.0.close().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_killed_instance_rules_are_taken_over_within_one_lease_period() {
    let h = Harness::new();
    h.add("e1", t(11, 50));
    // Every minute, so the survivors try often; a lease lives run_timeout + 60 s = 3 min.
    let config = EngineConfig {
        run_timeout: Duration::from_secs(120),
        cron: Some("0 * * * * *".into()),
        ..EngineConfig::default()
    };
    let ttl = TimeDelta::minutes(3);
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t(12, 0)));
    let backend = Arc::new(MemoryLeaseBackend::new());
    let log: Log = Arc::default();
    let the_rule = rules(1);

    // Instance a starts first, takes the rule at 12:00 and gets stuck in the run.
    let stuck = Engine::new(
        Arc::new(Stuck(h.source.clone())),
        h.sink.clone(),
        h.state.clone(),
        config.clone(),
    );
    let (a, _) = Scheduler::new(
        Arc::new(stuck),
        the_rule.clone(),
        leases("a", &backend, &clock, &log),
        clock.clone(),
    )
    .await;
    let a = tokio::spawn(a.run_until(Shutdown::never()));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let trigger = ShutdownTrigger::new();
    let mut survivors = Vec::new();
    for name in ["b", "c"] {
        let engine = Engine::new(
            h.source.clone(),
            h.sink.clone(),
            h.state.clone(),
            config.clone(),
        );
        let (s, _) = Scheduler::new(
            Arc::new(engine),
            the_rule.clone(),
            leases(name, &backend, &clock, &log),
            clock.clone(),
        )
        .await;
        survivors.push(tokio::spawn(s.run_until(trigger.subscribe())));
    }
    tokio::time::sleep(Duration::from_secs(80)).await; // 12:01:30: a renewed its lease at 12:01
    let killed_at = clock.now();
    a.abort(); // kill -9: no release, no more renewals
    let _ = a.await;
    tokio::time::sleep(Duration::from_secs(10 * 60)).await;
    trigger.trigger();
    for s in survivors {
        s.await.unwrap();
    }

    let log = log.lock().unwrap();
    let taken_over = log
        .iter()
        .filter(|(who, _, at, won)| *who != "a" && *won && *at > killed_at)
        .map(|(_, _, at, _)| *at)
        .min()
        .expect("a survivor took the rule over");
    assert!(
        taken_over - killed_at <= ttl,
        "taken over {} after the kill",
        taken_over - killed_at
    );
    // Before that, the live lease kept the survivors out, though they tried every minute.
    let refused = log
        .iter()
        .filter(|(who, _, at, won)| *who != "a" && !won && *at < taken_over)
        .count();
    assert!(refused >= 2, "{log:?}");
    assert!(
        log.iter()
            .all(|(who, _, at, won)| *who == "a" || !won || *at >= taken_over)
    );
    // The survivors' runs found the event and alerted it once.
    assert_eq!(h.sink.alerts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lost_lease_runs_the_rule_twice_but_writes_each_alert_once() {
    let h = Harness::new();
    for i in 0..40 {
        h.add(&format!("e{i:02}"), t(11, 10) + TimeDelta::minutes(i));
    }
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(t(12, 0)));
    let backend = Arc::new(MemoryLeaseBackend::new());
    let ttl = Duration::from_secs(60);
    let a = LeaseManager::new(backend.clone(), "a", clock_now(clock.clone()));
    let b = LeaseManager::new(backend.clone(), "b", clock_now(clock.clone()));
    assert!(a.acquire("rule-0", ttl).await.unwrap());
    // a stalls (a GC pause, a partition): its renewals stop, the lease expires, b takes over.
    drop(a);
    tokio::time::sleep(ttl).await;
    assert!(b.acquire("rule-0", ttl).await.unwrap());
    // ...and a wakes up and finishes its run anyway: both write the same window at once.
    let rule = rules(1).remove(0);
    let engine_a = h.restarted().engine;
    let engine_b = h.restarted().engine;
    let never = Shutdown::never();
    let (ra, rb) = tokio::join!(
        engine_a.run_scheduled(&rule, t(12, 1), &never),
        engine_b.run_scheduled(&rule, t(12, 1), &never)
    );
    assert_eq!(
        h.sink.alerts().len(),
        40,
        "deterministic ids: one alert per event"
    );
    assert_eq!(ra.totals.created + rb.totals.created, 40);
    assert_eq!(
        ra.totals.duplicates + rb.totals.duplicates,
        40,
        "the other run's writes were duplicates"
    );
}

//! Outages and refusals: nothing matching is lost, nothing is alerted twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use rule_runner::engine::memory::MemorySource;
use rule_runner::engine::shutdown::{Shutdown, ShutdownTrigger};
use rule_runner::engine::{Engine, EngineConfig, RunStatus, WindowKind, WriteOutcome};
use rule_runner::rule::Rule;

use super::slow::SlowSource;
use super::{CLOUDTRAIL, Harness, event, ids, seed_rule, t};

/// The seed rule without look-back: `now-10m` every 10m, so only catch-up can recover.
fn no_look_back_rule() -> Rule {
    let mut rule = seed_rule();
    rule.from = "now-10m".into();
    rule
}

#[tokio::test]
async fn three_failed_runs_then_recovery_alert_every_event_once() {
    for rule in [seed_rule(), no_look_back_rule()] {
        let h = Harness::new();
        let rule = Arc::new(rule);
        for i in 0..10 {
            h.add(&format!("e{i:03}"), t(11, 55) + TimeDelta::minutes(5 * i));
        }
        let first = h.run(&rule, t(12, 0)).await;
        assert_eq!(first.status, RunStatus::Succeeded);
        h.sink.set_unavailable(Some("connection refused"));
        for at in [t(12, 10), t(12, 20), t(12, 30)] {
            let failed = h.run(&rule, at).await;
            assert_eq!(failed.status, RunStatus::Failed, "{failed:#?}");
            assert!(
                failed
                    .errors
                    .iter()
                    .any(|e| e.contains("connection refused"))
            );
            // Held: not past the last good run (the sink could not confirm the overlap either).
            let watermark = h.state_of(&rule).watermark.unwrap();
            assert!(watermark <= t(12, 0), "{watermark}");
        }
        h.sink.set_unavailable(None);
        let recovery = h.run(&rule, t(12, 40)).await;
        assert_eq!(recovery.status, RunStatus::Succeeded, "{recovery:#?}");
        if rule.from == "now-10m" {
            let kinds: Vec<_> = recovery.windows.iter().map(|w| w.kind).collect();
            assert_eq!(
                kinds,
                vec![
                    WindowKind::CatchUp,
                    WindowKind::CatchUp,
                    WindowKind::CatchUp,
                    WindowKind::Current
                ]
            );
        }
        assert_eq!(h.alerted_event_ids(), ids(0..10), "rule from {}", rule.from);
        assert_eq!(h.state_of(&rule).watermark, Some(t(12, 40)));
    }
}

#[tokio::test]
async fn a_source_outage_holds_the_watermark_too() {
    let h = Harness::new();
    let rule = Arc::new(no_look_back_rule());
    h.add("e000", t(12, 5));
    h.run(&rule, t(12, 0)).await;
    h.source.set_unavailable(Some("503 Service Unavailable"));
    let failed = h.run(&rule, t(12, 10)).await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(failed.errors[0].contains("503"), "{:?}", failed.errors);
    h.source.set_unavailable(None);
    let recovered = h.run(&rule, t(12, 20)).await;
    assert_eq!(recovered.windows.len(), 2);
    assert_eq!(h.alerted_event_ids(), ids(0..1));
}

#[tokio::test]
async fn a_failed_write_keeps_the_watermark_and_is_retried() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    for i in 0..5 {
        h.add(&format!("e{i:03}"), t(11, 10) + TimeDelta::minutes(10 * i));
    }
    h.sink.set_outcome_rule(Some(Box::new(|alert| {
        (alert.document["kibana.alert.original_event.id"] == "e002")
            .then(|| WriteOutcome::Failed("429 Too Many Requests after 5 attempts".into()))
    })));
    let record = h.run(&rule, t(12, 0)).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!((record.totals.created, record.totals.failed_writes), (4, 1));
    assert!(record.errors[0].contains("429"), "{:?}", record.errors);
    assert_eq!(
        h.state_of(&rule).watermark,
        Some(t(11, 30)),
        "held at the failed event"
    );

    h.sink.set_outcome_rule(None);
    let retry = h.run(&rule, t(12, 10)).await;
    assert_eq!(retry.totals.created, 1);
    assert_eq!(h.alerted_event_ids(), ids(0..5));
}

#[tokio::test]
async fn a_rejected_alert_is_dead_lettered_and_does_not_block() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    for i in 0..3 {
        h.add(&format!("e{i:03}"), t(11, 30) + TimeDelta::minutes(i));
    }
    h.sink.set_outcome_rule(Some(Box::new(|alert| {
        (alert.document["kibana.alert.original_event.id"] == "e001").then(|| {
            WriteOutcome::Rejected(
                "mapper_parsing_exception: failed to parse field [source.ip]".into(),
            )
        })
    })));
    let record = h.run(&rule, t(12, 0)).await;
    assert_eq!((record.totals.created, record.totals.dead_lettered), (2, 1));
    assert_eq!(record.status, RunStatus::PartialFailure);
    assert!(
        record.warnings[0].contains("dead-letter"),
        "{:?}",
        record.warnings
    );
    assert_eq!(
        h.state_of(&rule).watermark,
        Some(t(12, 0)),
        "the watermark advances"
    );
    let dead = h.sink.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].1.contains("mapper_parsing_exception"));

    // The next, overlapping run knows it was dead-lettered and does not try again.
    let next = h.run(&rule, t(12, 10)).await;
    assert_eq!(next.totals.dead_lettered, 0);
    assert_eq!(next.totals.duplicates, 3);
    assert_eq!(next.status, RunStatus::Succeeded);
    assert_eq!(h.sink.dead_letters().len(), 1);
}

#[tokio::test]
async fn a_409_on_create_counts_as_a_duplicate() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    h.add("e000", t(11, 30));
    h.sink
        .set_outcome_rule(Some(Box::new(|_| Some(WriteOutcome::Duplicate))));
    let record = h.run(&rule, t(12, 0)).await;
    assert_eq!((record.totals.created, record.totals.duplicates), (0, 1));
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(h.state_of(&rule).watermark, Some(t(12, 0)));
}

#[tokio::test]
async fn a_gap_beyond_the_catch_up_limit_is_reported_and_kept_open() {
    let h = Harness::with_config(EngineConfig {
        max_catch_up: Duration::from_secs(3600),
        ..EngineConfig::default()
    });
    let rule = Arc::new(seed_rule());
    h.add("e000", t(12, 30)); // in the gap
    h.add("e001", t(13, 30)); // in catch-up
    h.add("e002", t(14, 30)); // in the current window
    h.run(&rule, t(12, 0)).await;
    let record = h.run(&rule, t(15, 0)).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.gaps.len(), 1);
    assert_eq!(
        (record.gaps[0].start, record.gaps[0].end),
        (t(12, 0), t(13, 0))
    );
    assert_eq!(record.gap_duration_ms, 3_600_000);
    let message = &record.errors[0];
    assert!(
        message.starts_with("1 hour (3600000ms) were not queried"),
        "{message}"
    );
    assert!(
        message.contains("rule-runner backfill --rule 151d8f72-0747-11ef-a0c2-f661ea17fbcc"),
        "{message}"
    );
    assert_eq!(
        h.alerted_event_ids(),
        vec!["e001".to_owned(), "e002".to_owned()]
    );
    let state = h.state_of(&rule);
    assert_eq!(state.open_gaps.len(), 1);
    assert_eq!(state.watermark, Some(t(15, 0)));
    assert_eq!(state.last_outcome.as_deref(), Some("failed"));
}

fn slow_engine(h: &Harness, delay: Duration, config: EngineConfig) -> (Engine, Arc<SlowSource>) {
    let source = Arc::new(SlowSource::new(MemorySource::new(), delay));
    for i in 0..250 {
        source.inner().insert(
            CLOUDTRAIL,
            &format!("d{i}"),
            event(&format!("e{i:03}"), t(11, 10) + TimeDelta::seconds(i)),
        );
    }
    let engine = Engine::new(source.clone(), h.sink.clone(), h.state.clone(), config);
    (engine, source)
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_run_keeps_what_it_wrote_and_the_next_run_continues() {
    let h = Harness::new();
    let mut rule = seed_rule();
    rule.max_signals = 1000;
    let rule = Arc::new(rule);
    // Pages of 100 arrive every 2 minutes; the run may take 5.
    let config = EngineConfig {
        run_timeout: Duration::from_secs(300),
        ..EngineConfig::default()
    };
    let (engine, _source) = slow_engine(&h, Duration::from_secs(120), config);
    let record = engine
        .run_scheduled(&rule, t(12, 0), &Shutdown::never())
        .await;
    assert_eq!(record.status, RunStatus::Failed);
    assert!(
        record.errors[0].contains("timed out after 5 minutes"),
        "{:?}",
        record.errors
    );
    assert_eq!(
        record.totals.created, 200,
        "two pages arrived in time and were written"
    );
    assert_eq!(
        h.state_of(&rule).watermark,
        Some(t(11, 0)),
        "nothing beyond the window start is vouched for"
    );

    let (engine, _source) = slow_engine(&h, Duration::ZERO, EngineConfig::default());
    let next = engine
        .run_scheduled(&rule, t(12, 10), &Shutdown::never())
        .await;
    assert_eq!(next.totals.created, 50);
    assert_eq!(h.alerted_event_ids(), ids(0..250));
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_searching_but_keeps_written_alerts_and_state() {
    let h = Harness::new();
    let mut rule = seed_rule();
    rule.max_signals = 1000;
    let rule = Arc::new(rule);
    let (engine, _source) = slow_engine(&h, Duration::from_secs(60), EngineConfig::default());
    let trigger = ShutdownTrigger::new();
    let shutdown = trigger.subscribe();
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(90)).await;
        trigger.trigger();
    });
    let record = engine.run_scheduled(&rule, t(12, 0), &shutdown).await;
    stopper.await.unwrap();
    assert_eq!(record.totals.created, 100);
    assert_eq!(record.status, RunStatus::PartialFailure);
    assert!(
        record.warnings[0].contains("shutdown"),
        "{:?}",
        record.warnings
    );
    assert!(
        h.state.state(&rule.rule_id).is_some(),
        "state saved on the way out"
    );
}

#[tokio::test]
async fn an_unreadable_state_skips_the_run_without_writing() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    h.add("e000", t(11, 30));
    h.state.set_unavailable(Some("state index unavailable"));
    let record = h.run(&rule, t(12, 0)).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert!(h.sink.is_empty());
    h.state.set_unavailable(None);
    h.run(&rule, t(12, 10)).await;
    assert_eq!(h.alerted_event_ids(), ids(0..1));
}

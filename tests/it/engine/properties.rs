//! Property: whatever the outages and the cap, every matching event ends up alerted exactly
//! once after the service runs cleanly again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::TimeDelta;
use proptest::prelude::*;
use rule_runner::engine::WriteOutcome;

use super::{Harness, seed_rule, t};

/// One scheduled slot: whether the sink is down, and every how-many-th write fails.
#[derive(Debug, Clone)]
struct Slot {
    sink_down: bool,
    fail_every: Option<u64>,
    skipped: bool,
}

fn slot() -> impl Strategy<Value = Slot> {
    (
        prop::bool::weighted(0.2),
        prop::option::weighted(0.2, 2u64..5),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(sink_down, fail_every, skipped)| Slot {
            sink_down,
            fail_every,
            skipped,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_event_is_lost_or_alerted_twice(
        minutes in prop::collection::vec(0i64..180, 0..60),
        max_signals in 1u32..15,
        from_minutes in prop::sample::select(vec![10i64, 30, 60]),
        slots in prop::collection::vec(slot(), 6..18),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let h = Harness::new();
            let mut rule = seed_rule();
            rule.max_signals = max_signals;
            rule.from = format!("now-{from_minutes}m");
            let rule = Arc::new(rule);
            let first_run = t(11, 0);
            let first_window_start = first_run - TimeDelta::minutes(from_minutes);
            // Events from the first window's start onwards; earlier ones are before the
            // service existed.
            for (i, m) in minutes.iter().enumerate() {
                h.add(&format!("e{i:03}"), first_window_start + TimeDelta::minutes(*m));
            }
            let mut at = first_run;
            for (n, slot) in slots.iter().enumerate() {
                // The first run is when the service starts; nothing before its window exists
                // for it.
                if n == 0 || !slot.skipped {
                    h.sink.set_unavailable(slot.sink_down.then_some("connection refused"));
                    let counter = Arc::new(AtomicU64::new(0));
                    h.sink.set_outcome_rule(slot.fail_every.map(|every| {
                        Box::new(move |_: &rule_runner::engine::AlertDoc| {
                            let n = counter.fetch_add(1, Ordering::Relaxed);
                            (n % every == 0).then(|| WriteOutcome::Failed("503".into()))
                        }) as rule_runner::engine::memory::OutcomeRule
                    }));
                    h.run(&rule, at).await;
                }
                at += TimeDelta::minutes(10);
            }
            h.sink.set_unavailable(None);
            h.sink.set_outcome_rule(None);
            let last_event = first_window_start + TimeDelta::minutes(180);
            let mut clean_runs = 0;
            loop {
                let record = h.run(&rule, at).await;
                clean_runs += 1;
                if at >= last_event && record.totals.left_over == 0 && record.errors.is_empty() {
                    break;
                }
                prop_assert!(clean_runs < 200, "never drained: {record:#?}");
                at += TimeDelta::minutes(10);
            }
            let mut expected: Vec<String> = (0..minutes.len()).map(|i| format!("e{i:03}")).collect();
            expected.sort();
            prop_assert_eq!(h.alerted_event_ids(), expected);
            Ok(())
        })?;
    }
}

//! Backfill: manual runs over a past range, safe to repeat, closing open gaps.

use std::sync::Arc;
use std::time::Duration;

use rule_runner::engine::shutdown::Shutdown;
use rule_runner::engine::{EngineConfig, RunStatus, WindowKind};
use serde_json::json;

use super::{Harness, seed_rule, t};

#[tokio::test]
async fn backfill_fills_an_open_gap_once_and_is_safe_to_repeat() {
    let h = Harness::with_config(EngineConfig {
        max_catch_up: Duration::from_secs(3600),
        ..EngineConfig::default()
    });
    let rule = Arc::new(seed_rule());
    h.add("e000", t(12, 30));
    h.add("e001", t(14, 30));
    h.run(&rule, t(12, 0)).await;
    h.run(&rule, t(15, 0)).await;
    assert_eq!(h.state_of(&rule).open_gaps.len(), 1);
    let watermark = h.state_of(&rule).watermark;

    let record = h
        .engine
        .backfill(&rule, t(12, 0), t(13, 0), t(15, 5), &Shutdown::never())
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Succeeded, "{record:#?}");
    assert_eq!(record.windows.len(), 6, "interval-sized windows");
    assert!(
        record
            .windows
            .iter()
            .all(|w| w.kind == WindowKind::Backfill)
    );
    assert_eq!(record.totals.created, 1);
    let state = h.state_of(&rule);
    assert!(state.open_gaps.is_empty(), "the gap is closed");
    assert_eq!(
        state.watermark, watermark,
        "backfill leaves the watermark alone"
    );
    let alert = h
        .sink
        .alerts()
        .into_iter()
        .find(|a| a.document["kibana.alert.original_event.id"] == "e000")
        .unwrap();
    assert_eq!(
        alert.document["kibana.alert.rule.execution.type"],
        json!("manual")
    );
    assert_eq!(
        alert.document["kibana.alert.intended_timestamp"],
        json!("2025-01-01T13:00:00.000Z")
    );
    assert_eq!(
        h.state.executions().last().unwrap()["execution_type"],
        json!("manual")
    );

    let again = h
        .engine
        .backfill(&rule, t(12, 0), t(13, 0), t(15, 6), &Shutdown::never())
        .await
        .unwrap();
    // 12:30 lies on the boundary of two inclusive windows: seen twice, alerted never again.
    assert_eq!((again.totals.created, again.totals.duplicates), (0, 2));
    assert_eq!(
        h.alerted_event_ids(),
        vec!["e000".to_owned(), "e001".to_owned()]
    );
}

#[tokio::test]
async fn backfill_over_a_range_with_more_than_max_signals_warns() {
    let h = Harness::new();
    let mut rule = seed_rule();
    rule.max_signals = 2;
    let rule = Arc::new(rule);
    for i in 0..3 {
        h.add(&format!("e{i:03}"), t(3, 1) + chrono::TimeDelta::seconds(i));
    }
    let record = h
        .engine
        .backfill(&rule, t(3, 0), t(3, 10), t(12, 0), &Shutdown::never())
        .await
        .unwrap();
    assert_eq!((record.totals.created, record.totals.left_over), (2, 1));
    assert_eq!(record.status, RunStatus::PartialFailure);
    let again = h
        .engine
        .backfill(&rule, t(3, 0), t(3, 10), t(12, 0), &Shutdown::never())
        .await
        .unwrap();
    assert_eq!(
        again.totals.created, 1,
        "a repeat picks up what the cap left"
    );
}

#[tokio::test]
async fn an_empty_backfill_range_is_refused() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    let err = h
        .engine
        .backfill(&rule, t(13, 0), t(12, 0), t(15, 0), &Shutdown::never())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not before end"), "{err}");
}

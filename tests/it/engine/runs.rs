//! Scheduled runs over the in-memory ports: dedup across overlapping windows, the cap, one
//! event in two index patterns, restarts, the timestamp override.

use std::sync::Arc;

use chrono::TimeDelta;
use rule_runner::engine::{RunStatus, WindowKind};
use serde_json::json;

use super::{CLOUDTRAIL, FILEBEAT, Harness, event, ids, seed_rule, t, ts};

#[tokio::test]
async fn six_consecutive_runs_alert_each_event_exactly_once() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    // One event every 5 minutes from 11:02 to 12:57; each run sees the past 60 minutes.
    let times: Vec<_> = (0..24)
        .map(|i| t(11, 2) + TimeDelta::minutes(5 * i))
        .collect();
    for (i, at) in times.iter().enumerate() {
        h.add(&format!("e{i:03}"), *at);
    }
    for run in 0..6 {
        let at = t(12, 0) + TimeDelta::minutes(10 * run);
        let record = h.run(&rule, at).await;
        assert_eq!(record.status, RunStatus::Succeeded, "{record:#?}");
        assert_eq!(record.windows.len(), 1);
        let seen = times
            .iter()
            .filter(|e| **e >= at - TimeDelta::minutes(60) && **e <= at)
            .count();
        assert_eq!(record.totals.hits as usize, seen);
        assert_eq!(
            record.totals.created + record.totals.duplicates,
            record.totals.hits
        );
        let expected = times.iter().filter(|e| **e <= at).count();
        assert_eq!(h.sink.len(), expected, "after the run at {at}");
        assert_eq!(h.state_of(&rule).watermark, Some(at));
    }
    // 12:52 and 12:57 are after the last run.
    assert_eq!(h.alerted_event_ids(), ids(0..22));
    assert_eq!(h.state.executions().len(), 6);
}

#[tokio::test]
async fn the_cap_carries_the_rest_to_later_runs_oldest_first() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    // 250 events 12 s apart from 11:05:00 to 11:54:48.
    for i in 0..250 {
        h.add(&format!("e{i:03}"), t(11, 5) + TimeDelta::seconds(12 * i));
    }
    let first = h.run(&rule, t(12, 0)).await;
    assert_eq!(first.totals.created, 100);
    assert_eq!(first.totals.left_over, 150);
    assert_eq!(first.status, RunStatus::PartialFailure);
    assert_eq!(first.warnings.len(), 1, "{:?}", first.warnings);
    assert!(first.warnings[0].contains("maximum alert limit"));
    assert!(first.warnings[0].contains("150 new alert(s)"));
    // Oldest first: the first 100 events; the watermark waits at the 101st.
    assert_eq!(h.alerted_event_ids(), ids(0..100));
    assert_eq!(
        h.state_of(&rule).watermark,
        Some(t(11, 5) + TimeDelta::seconds(1200))
    );

    let second = h.run(&rule, t(12, 10)).await;
    assert_eq!((second.totals.created, second.totals.left_over), (100, 50));
    assert!(second.warnings[0].contains("50 new alert(s)"));
    let third = h.run(&rule, t(12, 20)).await;
    assert_eq!((third.totals.created, third.totals.left_over), (50, 0));
    assert_eq!(third.status, RunStatus::Succeeded);
    assert!(third.warnings.is_empty());
    assert_eq!(h.alerted_event_ids(), ids(0..250));
    assert_eq!(h.state_of(&rule).watermark, Some(t(12, 20)));
}

#[tokio::test]
async fn exactly_max_signals_new_alerts_is_not_a_warning() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    for i in 0..100 {
        h.add(&format!("e{i:03}"), t(11, 30) + TimeDelta::seconds(i));
    }
    let record = h.run(&rule, t(12, 0)).await;
    assert_eq!(record.totals.created, 100, "{record:#?}");
    assert_eq!(record.status, RunStatus::Succeeded, "{:?}", record.warnings);
}

#[tokio::test]
async fn capped_events_that_leave_the_look_back_are_caught_up() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    for i in 0..150 {
        h.add(&format!("e{i:03}"), t(11, 1) + TimeDelta::seconds(i));
    }
    assert_eq!(h.run(&rule, t(12, 0)).await.totals.created, 100);
    // Two hours later the window [12:00, 13:00] no longer holds the rest; the watermark does.
    let later = h.run(&rule, t(13, 0)).await;
    assert_eq!(later.totals.created, 50);
    assert!(later.windows.iter().any(|w| w.kind == WindowKind::CatchUp));
    assert_eq!(
        later.windows.first().unwrap().start,
        t(11, 1) + TimeDelta::seconds(100)
    );
    assert_eq!(h.alerted_event_ids(), ids(0..150));
}

#[tokio::test]
async fn one_event_in_both_index_patterns_gives_one_alert() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    let doc = event("98675cf5-df23-4169-8411-58429782c464", t(11, 42));
    h.source.insert(FILEBEAT, "fb-1", doc.clone());
    h.source.insert(CLOUDTRAIL, "ct-1", doc);
    let record = h.run(&rule, t(12, 0)).await;
    assert_eq!(record.totals.hits, 2);
    assert_eq!(record.totals.created, 1);
    assert_eq!(record.totals.duplicates, 1);
    assert_eq!(h.sink.len(), 1);
    assert_eq!(
        h.sink.alerts()[0].document["kibana.alert.uuid"],
        json!(rule_runner::alert::alert_id(
            &rule.rule_id,
            "98675cf5-df23-4169-8411-58429782c464"
        ))
    );
}

#[tokio::test]
async fn events_without_event_id_are_told_apart_by_index_and_id() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    let mut doc = event("unused", t(11, 42));
    doc["event"].as_object_mut().unwrap().remove("id");
    h.source.insert(FILEBEAT, "fb-1", doc.clone());
    h.source.insert(CLOUDTRAIL, "ct-1", doc);
    assert_eq!(h.run(&rule, t(12, 0)).await.totals.created, 2);
}

#[tokio::test]
async fn a_restart_resumes_from_the_persisted_state_without_duplicates() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    for i in 0..12 {
        h.add(&format!("e{i:03}"), t(11, 5) + TimeDelta::minutes(10 * i));
    }
    h.run(&rule, t(12, 0)).await;
    h.run(&rule, t(12, 10)).await;
    let alerts_before = h.sink.len();

    let restarted = h.restarted();
    let record = restarted.run(&rule, t(12, 20)).await;
    assert_eq!(record.watermark_before, Some(t(12, 10)));
    assert_eq!(record.windows.len(), 1, "no catch-up after a clean restart");
    assert_eq!(record.totals.created, 1, "only 12:15 is new");
    assert_eq!(h.sink.len(), alerts_before + 1);
    restarted.run(&rule, t(12, 30)).await;
    assert_eq!(h.alerted_event_ids(), ids(0..9));
}

#[tokio::test]
async fn timestamp_override_falls_back_to_timestamp_when_absent() {
    let mut rule = seed_rule();
    rule.timestamp_override = Some("event.ingested".into());
    let rule = Arc::new(rule);
    let h = Harness::new();
    let with_ingested = |id: &str, at, ingested| {
        let mut doc = event(id, at);
        doc["event"]["ingested"] = json!(ts(ingested));
        doc
    };
    // Ingested inside the window, although it happened before it: alerted.
    h.source
        .insert(CLOUDTRAIL, "a", with_ingested("late", t(10, 30), t(11, 50)));
    // No `event.ingested`: `@timestamp` decides. Inside: alerted.
    h.source
        .insert(CLOUDTRAIL, "b", event("fallback", t(11, 40)));
    // Ingested after the window: not yet, though `@timestamp` is inside.
    h.source.insert(
        CLOUDTRAIL,
        "c",
        with_ingested("future", t(11, 55), t(12, 5)),
    );
    let record = h.run(&rule, t(12, 0)).await;
    assert_eq!(record.totals.created, 2);
    assert_eq!(
        h.alerted_event_ids(),
        vec!["fallback".to_owned(), "late".to_owned()]
    );
    let late = h
        .sink
        .alerts()
        .into_iter()
        .find(|a| a.document["kibana.alert.original_event.id"] == "late")
        .unwrap();
    // The original time stays the event's `@timestamp`; the watermark follows ingestion.
    assert_eq!(
        late.document["kibana.alert.original_time"],
        json!("2025-01-01T10:30:00.000Z")
    );
    assert_eq!(late.event_time, t(11, 50));
    // The next run picks the late-ingested one up.
    assert_eq!(h.run(&rule, t(12, 10)).await.totals.created, 1);

    // With the fallback disabled, events without the override field never match.
    let mut strict = (*rule).clone();
    strict.timestamp_override_fallback_disabled = true;
    let h = Harness::new();
    h.source
        .insert(CLOUDTRAIL, "b", event("fallback", t(11, 40)));
    assert_eq!(h.run(&Arc::new(strict), t(12, 0)).await.totals.created, 0);
}

#[tokio::test]
async fn every_run_keeps_an_execution_record() {
    let h = Harness::new();
    let rule = Arc::new(seed_rule());
    h.add("e000", t(11, 30));
    let record = h.run(&rule, t(12, 0)).await;
    let kept = h.state.executions();
    assert_eq!(kept.len(), 1);
    let doc = &kept[0];
    assert_eq!(doc["rule_id"], json!(rule.rule_id));
    assert_eq!(doc["status"], json!("succeeded"));
    assert_eq!(doc["execution_type"], json!("scheduled"));
    assert_eq!(doc["@timestamp"], json!("2025-01-01T12:00:00Z"));
    for field in [
        "hits",
        "created",
        "duplicates",
        "left_over",
        "dead_lettered",
        "failed_writes",
        "duration_ms",
        "gap_duration_ms",
    ] {
        assert!(doc[field].is_u64(), "{field} in {doc}");
    }
    assert_eq!(doc["windows"][0]["kind"], json!("current"));
    assert_eq!(doc["windows"][0]["created"], json!(1));
    assert_eq!(doc["watermark_after"], json!("2025-01-01T12:00:00Z"));
    assert_eq!(doc["execution_uuid"], json!(record.execution_uuid));
    let alert = &h.sink.alerts()[0];
    assert_eq!(
        alert.document["kibana.alert.rule.execution.uuid"],
        json!(record.execution_uuid)
    );
}

#[tokio::test]
async fn a_missing_index_pattern_is_a_warning() {
    let h = Harness::new();
    let mut rule = seed_rule();
    rule.index = vec!["nothing-here-*".into()];
    let record = h.run(&Arc::new(rule), t(12, 0)).await;
    assert_eq!(record.status, RunStatus::PartialFailure);
    assert!(
        record.warnings[0].contains("no index matching"),
        "{:?}",
        record.warnings
    );
}

#[tokio::test]
async fn invalid_timing_fails_the_run_with_the_field_named() {
    let h = Harness::new();
    let mut rule = seed_rule();
    rule.from = "yesterday-ish".into();
    let record = h.run(&Arc::new(rule), t(12, 0)).await;
    assert_eq!(record.status, RunStatus::Failed);
    assert!(record.errors[0].contains("`from`"), "{:?}", record.errors);
    assert!(h.sink.is_empty());
}

#[tokio::test]
async fn the_shipped_rules_alert_on_their_example_events() {
    let report = rule_runner::rule::shipped_rules();
    let rules: Vec<_> = report
        .runnable()
        .map(|loaded| loaded.rule.clone())
        .collect();
    assert_eq!(rules.len(), 2);
    for rule in rules {
        let file = report
            .runnable()
            .find(|l| l.rule.rule_id == rule.rule_id)
            .unwrap()
            .origin
            .path
            .clone();
        let examples_path = rule_runner::rule::examples::examples_path(&file);
        let bytes = rule_runner::rule::embedded::shipped_file(&examples_path).unwrap();
        let text = std::str::from_utf8(bytes).unwrap();
        let h = Harness::new();
        // Examples may repeat one CloudTrail event as both integrations index it: one alert.
        let mut expected = std::collections::BTreeSet::new();
        for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let example: serde_json::Value = serde_json::from_str(line).unwrap();
            let mut doc = example["event"].clone();
            if example["expect"] == "alert" {
                expected.insert(doc["event"]["id"].as_str().unwrap().to_owned());
            }
            // Move each example into the run's window, on both time fields the rule may use.
            let at = t(11, 30) + TimeDelta::minutes(i as i64);
            doc["@timestamp"] = json!(ts(at));
            doc["event"]["ingested"] = json!(ts(at));
            let index = if doc.get("data_stream").is_some() {
                CLOUDTRAIL
            } else {
                FILEBEAT
            };
            h.source.insert(index, &format!("ex-{i}"), doc);
        }
        let record = h.run(&rule, t(12, 0)).await;
        assert_eq!(record.status, RunStatus::Succeeded, "{record:#?}");
        assert_eq!(
            record.totals.created as usize,
            expected.len(),
            "{}",
            rule.name
        );
        for alert in h.sink.alerts() {
            let reason = alert.document["kibana.alert.reason"].as_str().unwrap();
            assert!(
                reason.ends_with(&format!("alert {}.", rule.name)),
                "{reason}"
            );
            assert_eq!(
                alert.document["kibana.alert.rule.rule_id"],
                json!(rule.rule_id)
            );
        }
    }
}

#[tokio::test]
async fn a_rule_never_alerts_on_its_own_alerts() {
    let h = Harness::new();
    let mut rule = seed_rule();
    rule.index.push("rule-runner-alerts*".into());
    let rule = Arc::new(rule);
    h.add("e000", t(11, 30));
    h.run(&rule, t(12, 0)).await;
    // The alert lands where the rule's patterns can see it; its source still matches the query.
    let alert = h.sink.alerts().remove(0);
    let mut document = alert.document.clone();
    document["event"]["id"] = json!("copied-into-alert");
    document["@timestamp"] = json!(ts(t(12, 0)));
    h.source.insert("rule-runner-alerts", &alert.id, document);
    let record = h.run(&rule, t(12, 10)).await;
    assert_eq!(record.totals.own_alerts_skipped, 1);
    assert_eq!(record.totals.created, 0);
    assert_eq!(h.sink.len(), 1);
}

use serde_json::json;

use super::*;

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;

/// Runs every 5 minutes over 6-minute windows with a 10-day history, from `first` to `last`.
fn schedule(first: i64, last: i64) -> Schedule {
    Schedule {
        runs: (first..=last).step_by(5 * MIN as usize).collect(),
        lookback: 6 * MIN,
        history: 10 * DAY,
        alerts_from: first,
    }
}

fn alerted(log: TermLog<&'static str>, schedule: &Schedule) -> Vec<(&'static str, i64)> {
    log.alerts(schedule)
        .into_iter()
        .map(|found| (found.payload, found.run))
        .collect()
}

#[test]
fn arrays_give_one_term_per_distinct_value_and_nulls_none() {
    assert_eq!(
        field_values(Some(&json!(["a", ["b", "a"], null, {"x": 1}, 3, true]))),
        vec![json!("a"), json!("b"), json!(3), json!(true)]
    );
    assert!(field_values(Some(&json!(null))).is_empty());
    assert!(field_values(None).is_empty());
}

#[test]
fn several_fields_give_every_combination_and_a_missing_field_gives_none() {
    let terms = terms_of(vec![
        vec![json!("alice"), json!("bob")],
        vec![json!("111"), json!("222")],
    ]);
    assert_eq!(terms.len(), 4);
    assert!(terms.contains(&vec![json!("bob"), json!("111")]));
    assert!(terms_of(vec![vec![json!("alice")], vec![]]).is_empty());
    assert!(terms_of(Vec::new()).is_empty());
}

#[test]
fn a_term_is_new_once_and_again_only_after_its_history_has_passed() {
    let mut log = TermLog::new(10 * DAY, 6 * MIN);
    let t0 = 1_000 * DAY;
    log.record(vec![json!("alice")], t0 + MIN, "e1".into(), "first");
    log.record(
        vec![json!("alice")],
        t0 + 2 * MIN,
        "e2".into(),
        "same window",
    );
    log.record(
        vec![json!("alice")],
        t0 + 3 * DAY,
        "e3".into(),
        "within history",
    );
    log.record(
        vec![json!("alice")],
        t0 + 14 * DAY,
        "e4".into(),
        "history passed",
    );
    let runs = schedule(t0, t0 + 15 * DAY);
    let found = alerted(log, &runs);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0], ("first", t0 + 5 * MIN));
    assert_eq!(found[1].0, "history passed");
}

#[test]
fn an_event_exactly_at_from_is_history_not_new() {
    let t0 = 1_000 * DAY;
    // Runs at t0 and t0+5m with 6-minute windows: an event at t0-1m lies in both windows, but
    // the later run's `from` is t0-1m itself, so only the first run can alert it.
    let runs = Schedule {
        runs: vec![t0, t0 + 5 * MIN],
        lookback: 6 * MIN,
        history: 10 * DAY,
        alerts_from: t0,
    };
    let mut log = TermLog::new(10 * DAY, 6 * MIN);
    log.record(vec![json!("x")], t0 - MIN, "e".into(), "e");
    assert_eq!(alerted(log, &runs), vec![("e", t0)]);
    // With only the later run, the event sits exactly at its `from`: not new.
    let later = Schedule {
        runs: vec![t0 + 5 * MIN],
        ..runs
    };
    let mut log = TermLog::new(10 * DAY, 6 * MIN);
    log.record(vec![json!("x")], t0 - MIN, "e".into(), "e");
    assert!(alerted(log, &later).is_empty());
}

#[test]
fn ties_go_to_the_smaller_tiebreak_whatever_the_arrival_order() {
    let t0 = 1_000 * DAY;
    let runs = schedule(t0, t0 + DAY);
    for order in [["b", "a"], ["a", "b"]] {
        let mut log = TermLog::new(10 * DAY, 6 * MIN);
        for id in order {
            log.record(vec![json!("x")], t0 + MIN, id.to_string(), id);
        }
        assert_eq!(alerted(log, &runs), vec![("a", t0 + 5 * MIN)]);
    }
}

#[test]
fn a_late_arriving_earlier_event_takes_the_alert_and_frees_the_later_payload() {
    let t0 = 1_000 * DAY;
    let mut log = TermLog::new(10 * DAY, 6 * MIN);
    log.record(vec![json!("x")], t0 + 2 * DAY, "late".into(), "later event");
    log.record(vec![json!("x")], t0 + MIN, "early".into(), "earlier event");
    let held = log
        .terms
        .values()
        .flat_map(|o| o.seen.values())
        .filter(|p| p.is_some())
        .count();
    assert_eq!(held, 1, "only the earlier event can still alert");
    assert_eq!(
        alerted(log, &schedule(t0, t0 + 3 * DAY)),
        vec![("earlier event", t0 + 5 * MIN)]
    );
}

#[test]
fn the_warm_up_learns_without_alerting() {
    let t0 = 1_000 * DAY;
    let mut runs = schedule(t0, t0 + 20 * DAY);
    runs.alerts_from = t0 + 10 * DAY;
    let mut log = TermLog::new(10 * DAY, 6 * MIN);
    log.record(vec![json!("old")], t0 + 5 * DAY, "e1".into(), "learned");
    log.record(vec![json!("old")], t0 + 11 * DAY, "e2".into(), "seen again");
    log.record(
        vec![json!("fresh")],
        t0 + 12 * DAY,
        "e3".into(),
        "new after warm-up",
    );
    let found = alerted(log, &runs);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "new after warm-up");
}

#[test]
fn an_event_after_the_last_run_is_not_alerted() {
    let t0 = 1_000 * DAY;
    let mut log = TermLog::new(10 * DAY, 6 * MIN);
    log.record(vec![json!("x")], t0 + MIN, "e".into(), "e");
    assert!(alerted(log, &schedule(t0 - DAY, t0)).is_empty());
}

#[test]
fn one_event_read_twice_is_one_occurrence() {
    let t0 = 1_000 * DAY;
    let mut log = TermLog::new(10 * DAY, 6 * MIN);
    log.record(vec![json!("x")], t0 + MIN, "e".into(), "first copy");
    log.record(vec![json!("x")], t0 + MIN, "e".into(), "second copy");
    assert_eq!(
        alerted(log, &schedule(t0, t0 + DAY)),
        vec![("first copy", t0 + 5 * MIN)]
    );
}

use serde_json::json;

use super::*;

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;

/// Runs every 5 minutes over 6-minute windows with a 10-day history.
const SCHEDULE: Schedule = Schedule {
    interval: 5 * MIN,
    lookback: 6 * MIN,
    history: 10 * DAY,
};

fn new_log() -> TermLog<&'static str> {
    TermLog::new(SCHEDULE)
}

fn alerted(log: TermLog<&'static str>, alerts_from: i64) -> Vec<(&'static str, i64)> {
    log.alerts(alerts_from)
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
    let mut log = new_log();
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
    let found = alerted(log, t0);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0], ("first", t0 + 5 * MIN));
    assert_eq!(found[1].0, "history passed");
}

#[test]
fn an_event_exactly_at_from_belongs_to_the_run_before() {
    let t0 = 1_000 * DAY;
    // Runs at t0 and t0+5m with 6-minute windows: an event at t0-1m lies in both windows, but
    // it is the later run's `from` itself, so only the run at t0 can find it new.
    let mut log = new_log();
    log.record(vec![json!("x")], t0 - MIN, "e".into(), "e");
    assert_eq!(alerted(log, i64::MIN), vec![("e", t0)]);
    // One millisecond later it is inside the later window.
    let mut log = new_log();
    log.record(vec![json!("x")], t0 - MIN + 1, "e".into(), "e");
    assert_eq!(alerted(log, i64::MIN), vec![("e", t0 + 5 * MIN)]);
}

#[test]
fn history_starts_inclusive_at_the_run_end_minus_the_history() {
    let t0 = 1_000 * DAY;
    let run = t0 + 5 * MIN;
    for (gap, new) in [(0, false), (1, true)] {
        let mut log = new_log();
        // The earlier occurrence sits exactly at (or 1 ms before) the later run's history start.
        log.record(vec![json!("x")], run - 10 * DAY - gap, "a".into(), "old");
        log.record(vec![json!("x")], t0 + MIN, "b".into(), "again");
        let found: Vec<_> = alerted(log, t0).into_iter().map(|(p, _)| p).collect();
        assert_eq!(found.contains(&"again"), new, "gap {gap}: {found:?}");
    }
}

#[test]
fn ties_go_to_the_smaller_tiebreak_whatever_the_arrival_order() {
    let t0 = 1_000 * DAY;
    for order in [["b", "a"], ["a", "b"]] {
        let mut log = new_log();
        for id in order {
            log.record(vec![json!("x")], t0 + MIN, id.to_string(), id);
        }
        assert_eq!(alerted(log, t0), vec![("a", t0 + 5 * MIN)]);
    }
}

#[test]
fn a_late_arriving_earlier_event_takes_the_alert_and_frees_the_later_payload() {
    let t0 = 1_000 * DAY;
    let mut log = new_log();
    log.record(vec![json!("x")], t0 + 2 * DAY, "late".into(), "later event");
    log.record(vec![json!("x")], t0 + MIN, "early".into(), "earlier event");
    let held = log
        .terms
        .values()
        .flat_map(|o| o.slots.values())
        .filter(|slot| slot.payload.is_some())
        .count();
    assert_eq!(held, 1, "only the earlier event can still alert");
    assert_eq!(alerted(log, t0), vec![("earlier event", t0 + 5 * MIN)]);
}

#[test]
fn memory_holds_one_slot_per_run_whatever_the_occurrences() {
    let t0 = 1_000 * DAY;
    let mut log = new_log();
    for second in 0..240 {
        log.record(
            vec![json!("x")],
            t0 + second * 1_000,
            format!("e{second}"),
            "e",
        );
    }
    let slots: usize = log.terms.values().map(|o| o.slots.len()).sum();
    assert_eq!(slots, 1, "four minutes of one term, all judged by one run");
    assert_eq!(alerted(log, t0).len(), 1);
}

#[test]
fn the_warm_up_learns_without_alerting() {
    let t0 = 1_000 * DAY;
    let mut log = new_log();
    log.record(vec![json!("old")], t0 + 5 * DAY, "e1".into(), "learned");
    log.record(vec![json!("old")], t0 + 11 * DAY, "e2".into(), "seen again");
    log.record(
        vec![json!("fresh")],
        t0 + 12 * DAY,
        "e3".into(),
        "new after warm-up",
    );
    let found = alerted(log, t0 + 10 * DAY);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "new after warm-up");
}

#[test]
fn events_in_gaps_no_run_searches_are_history_but_never_alert() {
    // Every 10 minutes over 6-minute windows: an event 8 minutes before a run is in no window.
    let sparse = Schedule {
        interval: 10 * MIN,
        lookback: 6 * MIN,
        history: 10 * DAY,
    };
    let t0 = 1_000 * DAY;
    let mut log = TermLog::new(sparse);
    log.record(vec![json!("x")], t0 - 8 * MIN, "gap".into(), "in a gap");
    log.record(
        vec![json!("x")],
        t0 + 5 * MIN,
        "seen".into(),
        "within history of it",
    );
    assert!(alerted(log, i64::MIN).is_empty());
}

#[test]
fn one_event_read_twice_is_one_occurrence() {
    let t0 = 1_000 * DAY;
    let mut log = new_log();
    log.record(vec![json!("x")], t0 + MIN, "e".into(), "first copy");
    log.record(vec![json!("x")], t0 + MIN, "e".into(), "second copy");
    assert_eq!(alerted(log, t0), vec![("first copy", t0 + 5 * MIN)]);
}

#[test]
fn indexed_values_reach_through_arrays_of_objects_and_dotted_keys() {
    let doc = json!({
        "aws": {"cloudtrail": {"resources": [
            {"arn": "arn:a", "type": "AWS::IAM::Role"},
            {"arn": ["arn:b", "arn:a"]},
            {"type": "none"}
        ]}},
        "user.name": "alice"
    });
    assert_eq!(
        indexed_values(&doc, "aws.cloudtrail.resources.arn"),
        vec![json!("arn:a"), json!("arn:b")]
    );
    assert_eq!(indexed_values(&doc, "user.name"), vec![json!("alice")]);
    assert!(indexed_values(&doc, "aws.cloudtrail.resources.missing").is_empty());
}

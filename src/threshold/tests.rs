use serde_json::json;

use super::*;

const MIN: i64 = 60_000;

fn threshold(fields: &[&str], value: u64) -> Threshold {
    Threshold {
        field: fields.iter().map(|f| (*f).to_owned()).collect(),
        value,
        cardinality: None,
    }
}

fn event(time: i64, user: &str) -> Event {
    Event {
        time,
        groups: group_keys(vec![vec![json!(user)]]),
        cardinality: Vec::new(),
    }
}

#[test]
fn no_field_is_one_group_and_a_missing_field_is_none() {
    assert_eq!(group_keys(Vec::new()), vec![Vec::<Value>::new()]);
    assert!(group_keys(vec![vec![json!("a")], vec![]]).is_empty());
    assert_eq!(
        group_keys(vec![vec![json!("a"), json!("b")], vec![json!(1)]]).len(),
        2
    );
}

#[test]
fn a_group_alerts_at_the_threshold_not_below() {
    let events: Vec<Event> = (0..3).map(|i| event(i * MIN, "alice")).collect();
    let signals = evaluate(&events, &threshold(&["user.name"], 3), &[5 * MIN], 6 * MIN);
    assert_eq!(signals.len(), 1);
    let bucket = &signals[0].bucket;
    assert_eq!((bucket.count, bucket.first, bucket.last), (3, 0, 2 * MIN));
    assert!(evaluate(&events, &threshold(&["user.name"], 4), &[5 * MIN], 6 * MIN).is_empty());
}

#[test]
fn the_window_is_inclusive_at_both_ends() {
    let events = vec![event(0, "a"), event(6 * MIN, "a")];
    let signals = evaluate(&events, &threshold(&["user.name"], 2), &[6 * MIN], 6 * MIN);
    assert_eq!(signals.len(), 1);
}

#[test]
fn events_already_alerted_are_not_counted_again_in_overlapping_windows() {
    // Runs every 5 minutes over 10-minute windows: the second run sees the first run's
    // events again, and must not alert them a second time.
    let mut events: Vec<Event> = (0..4).map(|i| event(i * MIN, "alice")).collect();
    let runs = [5 * MIN, 10 * MIN];
    let signals = evaluate(&events, &threshold(&["user.name"], 3), &runs, 10 * MIN);
    assert_eq!(signals.len(), 1, "{signals:?}");
    // Three more events after the first alert: they alone reach the threshold again.
    events.extend((6..9).map(|i| event(i * MIN, "alice")));
    let signals = evaluate(&events, &threshold(&["user.name"], 3), &runs, 10 * MIN);
    assert_eq!(signals.len(), 2, "{signals:?}");
    assert_eq!(signals[1].bucket.first, 6 * MIN);
    assert_eq!(signals[1].bucket.count, 3);
}

#[test]
fn history_is_forgotten_once_its_time_leaves_the_window() {
    let mut history = SignalHistory::default();
    history.record(&[json!("a")], 10);
    assert!(history.excludes(&[json!("a")], 10));
    assert!(!history.excludes(&[json!("a")], 11));
    assert!(!history.excludes(&[json!("b")], 1));
    history.prune(10);
    assert!(!history.excludes(&[json!("a")], 5));
}

#[test]
fn cardinality_counts_distinct_values_of_its_field() {
    let mut rule = threshold(&["user.name"], 1);
    rule.cardinality = Some(Cardinality {
        field: "source.ip".into(),
        value: 2,
    });
    let with_ip = |time, ip: &str| Event {
        cardinality: vec![json!(ip)],
        ..event(time, "alice")
    };
    let same = vec![with_ip(0, "1.1.1.1"), with_ip(MIN, "1.1.1.1")];
    assert!(evaluate(&same, &rule, &[5 * MIN], 6 * MIN).is_empty());
    let two = vec![with_ip(0, "1.1.1.1"), with_ip(MIN, "2.2.2.2")];
    let signals = evaluate(&two, &rule, &[5 * MIN], 6 * MIN);
    assert_eq!(signals[0].bucket.cardinality, Some(2));
}

#[test]
fn groups_come_in_key_order_with_multi_field_keys() {
    let events = vec![
        Event {
            time: 0,
            groups: group_keys(vec![vec![json!("b")], vec![json!("x"), json!("y")]]),
            cardinality: Vec::new(),
        },
        Event {
            time: MIN,
            groups: group_keys(vec![vec![json!("a")], vec![json!("x")]]),
            cardinality: Vec::new(),
        },
    ];
    let buckets = buckets(&events, 0, MIN, &SignalHistory::default());
    let keys: Vec<String> = buckets.iter().map(|b| group_text(&b.key)).collect();
    assert_eq!(keys, [r#"["a","x"]"#, r#"["b","x"]"#, r#"["b","y"]"#]);
}

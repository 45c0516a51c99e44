//! new_terms and threshold rules in the service, over the in-memory ports: the window's
//! terms or groups, the history check, the signal history carried between runs, and ids that
//! make a repeated run write nothing twice.

use std::sync::Arc;

use rule_runner::rule::Rule;
use serde_json::{Value, json};

use super::{CLOUDTRAIL, Harness, event, t};

fn rule(kind: Value) -> Arc<Rule> {
    let mut rule = json!({
        "rule_id": "aggregating-rule", "name": "Aggregating", "language": "kuery",
        "query": "event.dataset: aws.cloudtrail",
        "index": ["logs-aws.cloudtrail-*"],
        "from": "now-60m", "to": "now", "interval": "10m", "max_signals": 100,
        "risk_score": 21, "severity": "low", "enabled": true
    });
    if let (Value::Object(rule), Value::Object(kind)) = (&mut rule, kind) {
        rule.extend(kind);
    }
    Arc::new(serde_json::from_value(rule).expect("a valid rule"))
}

fn add(h: &Harness, id: &str, user: &str, at: chrono::DateTime<chrono::Utc>) {
    let mut doc = event(id, at);
    doc["user"]["name"] = json!(user);
    h.source.insert(CLOUDTRAIL, &format!("doc-{id}"), doc);
}

#[tokio::test]
async fn a_new_terms_rule_alerts_on_the_first_event_of_each_term_not_in_the_history() {
    let h = Harness::new();
    let rule = rule(
        json!({"type": "new_terms", "new_terms_fields": ["user.name"],
                           "history_window_start": "now-1d"}),
    );
    add(&h, "a0", "alice", t(10, 0)); // history: alice is known
    add(&h, "a1", "alice", t(11, 55));
    add(&h, "b1", "bob", t(11, 50));
    add(&h, "b2", "bob", t(11, 55));
    add(&h, "c0", "carol", t(11, 0)); // exactly at the window's start: history, not new
    add(&h, "c1", "carol", t(11, 30));
    let record = h.run(&rule, t(12, 0)).await;
    assert!(record.errors.is_empty(), "{record:?}");
    let alerts = h.sink.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].document["kibana.alert.new_terms"], json!(["bob"]));
    assert_eq!(
        alerts[0].document["kibana.alert.original_event.id"],
        json!("b1")
    );
    // Ten minutes later bob's first event is still in the window and still new: the same
    // alert, already written.
    let again = h.run(&rule, t(12, 10)).await;
    assert_eq!(again.totals.created, 0, "{again:?}");
    assert_eq!(h.sink.len(), 1);
}

#[tokio::test]
async fn a_threshold_rule_alerts_once_per_group_and_counts_only_later_events_again() {
    let h = Harness::new();
    let rule = rule(json!({"type": "threshold",
                           "threshold": {"field": ["user.name"], "value": 2}}));
    for (id, minute) in [("a1", 10), ("a2", 20), ("a3", 30)] {
        add(&h, id, "alice", t(11, minute));
    }
    add(&h, "b1", "bob", t(11, 40));
    let first = h.run(&rule, t(12, 0)).await;
    assert!(first.errors.is_empty(), "{first:?}");
    let alerts = h.sink.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        alerts[0].document["kibana.alert.threshold_result"],
        json!({"terms": [{"field": "user.name", "value": "alice"}], "count": 3,
               "from": "2025-01-01T11:10:00.000Z"})
    );
    assert_eq!(
        h.state_of(&rule).threshold_history.len(),
        1,
        "alice's alert is remembered"
    );
    // The next run still sees alice's three events, but they were counted: no alert.
    let second = h.run(&rule, t(12, 10)).await;
    assert_eq!(second.totals.created, 0, "{second:?}");
    // Two more of hers reach the threshold again, counted from the first new one.
    add(&h, "a4", "alice", t(12, 15));
    add(&h, "a5", "alice", t(12, 16));
    let third = h.run(&rule, t(12, 20)).await;
    assert_eq!(third.totals.created, 1, "{third:?}");
    let result = h
        .sink
        .alerts()
        .into_iter()
        .map(|a| a.document["kibana.alert.threshold_result"].clone())
        .find(|r| r["count"] == json!(2))
        .expect("the second alert");
    assert_eq!(result["from"], json!("2025-01-01T12:15:00.000Z"));
}

#[tokio::test]
async fn a_new_terms_window_over_the_cap_alerts_max_signals_and_says_the_rest_is_lost() {
    let h = Harness::new();
    let mut rule = (*rule(
        json!({"type": "new_terms", "new_terms_fields": ["user.name"],
                                 "history_window_start": "now-1d"}),
    ))
    .clone();
    rule.max_signals = 2;
    let rule = Arc::new(rule);
    for (n, user) in ["u1", "u2", "u3"].iter().enumerate() {
        add(&h, &format!("e{n}"), user, t(11, 10 + n as u32));
    }
    let record = h.run(&rule, t(12, 0)).await;
    assert_eq!(record.totals.created, 2, "{record:?}");
    assert!(
        record
            .warnings
            .iter()
            .any(|w| w.contains("do not carry alerts over the cap")),
        "{:?}",
        record.warnings
    );
    let terms: Vec<Value> = h
        .sink
        .alerts()
        .iter()
        .map(|a| a.document["kibana.alert.new_terms"].clone())
        .collect();
    assert!(
        terms.contains(&json!(["u1"])) && terms.contains(&json!(["u2"])),
        "{terms:?}"
    );
}

/// 600 users new in the window, and a cluster refusing history checks of more than
/// `max_clauses` term clauses.
async fn six_hundred_new_users(
    max_clauses: usize,
) -> (Harness, rule_runner::engine::ExecutionRecord) {
    let h = Harness::new();
    let mut rule = (*rule(
        json!({"type": "new_terms", "new_terms_fields": ["user.name"],
               "history_window_start": "now-1d"}),
    ))
    .clone();
    rule.max_signals = 1000;
    let rule = Arc::new(rule);
    for n in 0..600 {
        add(&h, &format!("e{n:03}"), &format!("user-{n:03}"), t(11, 30));
    }
    h.source.set_max_clauses(Some(max_clauses));
    let record = h.run(&rule, t(12, 0)).await;
    (h, record)
}

#[tokio::test]
async fn a_history_check_refused_for_its_clauses_is_retried_in_halved_batches() {
    let (h, record) = six_hundred_new_users(300).await;
    assert!(record.errors.is_empty(), "{record:?}");
    assert_eq!(record.totals.created, 600, "{record:?}");
    assert_eq!(h.sink.len(), 600);
    assert!(
        record
            .warnings
            .iter()
            .any(|w| w.contains("refused a history check of 500 terms")
                && w.contains("in batches of 250")),
        "{:?}",
        record.warnings
    );
}

#[tokio::test]
async fn a_cluster_refusing_even_the_smallest_batch_fails_the_run_with_what_to_do() {
    let (h, record) = six_hundred_new_users(100).await;
    assert_eq!(h.sink.len(), 0);
    let error = record.errors.join("\n");
    assert!(
        error.contains("even a history check of 125 terms")
            && error.contains("indices.query.bool.max_clause_count"),
        "{record:?}"
    );
}

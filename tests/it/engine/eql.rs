//! EQL rules in the service, over the in-memory ports: an event query alerts as a query
//! rule does; a sequence writes a building block per event and the shell alert, and a second
//! run or a backfill over the same time writes nothing again.

use std::sync::Arc;

use chrono::TimeDelta;
use rule_runner::engine::Shutdown;
use rule_runner::rule::Rule;
use serde_json::{Value, json};

use super::{CLOUDTRAIL, Harness, event, t};

fn eql_rule(query: &str) -> Arc<Rule> {
    Arc::new(
        serde_json::from_value(json!({
            "rule_id": "eql-rule", "name": "EQL", "type": "eql", "language": "eql",
            "query": query, "index": ["logs-aws.cloudtrail-*"],
            "from": "now-60m", "to": "now", "interval": "10m", "max_signals": 100,
            "risk_score": 47, "severity": "medium", "enabled": true
        }))
        .expect("a valid rule"),
    )
}

fn add(h: &Harness, id: &str, action: &str, user: &str, at: chrono::DateTime<chrono::Utc>) {
    let mut doc = event(id, at);
    doc["event"]["action"] = json!(action);
    doc["user"]["name"] = json!(user);
    h.source.insert(CLOUDTRAIL, &format!("doc-{id}"), doc);
}

fn field<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc[name]
}

#[tokio::test]
async fn an_eql_event_query_alerts_on_each_matching_event() {
    let h = Harness::new();
    let rule =
        eql_rule(r#"any where event.action == "AddPermission20150331v2" and user.name != "bob""#);
    add(&h, "e1", "AddPermission20150331v2", "alice", t(11, 50));
    add(&h, "e2", "AddPermission20150331v2", "bob", t(11, 51));
    add(&h, "e3", "DeleteFunction", "alice", t(11, 52));
    let record = h.run(&rule, t(12, 0)).await;
    assert_eq!(record.totals.created, 1, "{record:?}");
    assert_eq!(h.alerted_event_ids(), ["e1"]);
    let alert = &h.sink.alerts()[0].document;
    assert_eq!(field(alert, "kibana.alert.rule.type"), "eql");
}

#[tokio::test]
async fn a_sequence_writes_its_building_blocks_and_shell_once() {
    let h = Harness::new();
    let rule = eql_rule(
        r#"sequence by user.name with maxspan=5m
             [any where event.action == "CreateFunction20150331"]
             [any where event.action == "AddPermission20150331v2"]"#,
    );
    add(&h, "c1", "CreateFunction20150331", "mallory", t(11, 50));
    add(&h, "p1", "AddPermission20150331v2", "mallory", t(11, 52));
    // Too late for maxspan, and another user's: neither completes a sequence.
    add(&h, "c2", "CreateFunction20150331", "alice", t(11, 20));
    add(&h, "p2", "AddPermission20150331v2", "alice", t(11, 40));
    add(&h, "p3", "AddPermission20150331v2", "bob", t(11, 53));

    let record = h.run(&rule, t(12, 0)).await;
    assert_eq!(
        record.totals.created, 3,
        "two blocks and the shell: {record:?}"
    );
    let alerts = h.sink.alerts();
    let shell = alerts
        .iter()
        .find(|a| a.document.get("kibana.alert.building_block_type").is_none())
        .expect("the shell alert");
    let blocks: Vec<_> = alerts
        .iter()
        .filter(|a| a.document.get("kibana.alert.building_block_type").is_some())
        .collect();
    assert_eq!(blocks.len(), 2);
    for (i, block) in blocks.iter().enumerate() {
        assert_eq!(
            field(&block.document, "kibana.alert.group.id"),
            &json!(shell.id)
        );
        assert_eq!(
            field(&block.document, "kibana.alert.group.index"),
            &json!(i)
        );
    }
    assert_eq!(field(&shell.document, "kibana.alert.depth"), &json!(2));
    assert_eq!(
        blocks
            .iter()
            .map(|b| b.document["kibana.alert.original_event.id"].clone())
            .collect::<Vec<_>>(),
        [json!("c1"), json!("p1")]
    );

    // The next run overlaps the window; a backfill covers it again: nothing is new.
    let again = h.run(&rule, t(12, 10)).await;
    assert_eq!(again.totals.created, 0, "{again:?}");
    let backfill = h
        .engine
        .backfill(
            &rule,
            t(11, 0),
            t(12, 10),
            t(12, 10) + TimeDelta::minutes(1),
            &Shutdown::never(),
        )
        .await
        .expect("a backfill");
    assert_eq!(backfill.totals.created, 0, "{backfill:?}");
    assert_eq!(h.sink.alerts().len(), 3);
}

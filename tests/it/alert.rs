//! Tests for the `alert` area: ids, reasons and the Kibana-compatible document.

use chrono::{DateTime, TimeZone, Utc};
use rule_runner::alert::{
    AlertBuilder, AlertEvent, ExecutionType, IdentityStrategy, RunContext, alert_id,
    event_identity, reason, rule_uuid,
};
use rule_runner::rule::{Rule, Severity};
use serde_json::{Value, json};
use uuid::Uuid;

const PUBLIC_INVOCATION_ID: &str = "151d8f72-0747-11ef-a0c2-f661ea17fbcc";
const EVENT_ID: &str = "98675cf5-df23-4169-8411-58429782c464";
const BACKING_INDEX: &str = ".ds-logs-aws.cloudtrail-default-2025.01.01-000001";

/// The seed "Public Invocation" rule, as the rule model holds it.
pub fn public_invocation_rule() -> Rule {
    serde_json::from_value(json!({
        "rule_id": PUBLIC_INVOCATION_ID,
        "name": "AWS Lambda Function Policy Updated to Allow Public Invocation",
        "description": "Identifies when an AWS Lambda function policy is updated to allow public invocation.",
        "type": "query",
        "language": "kuery",
        "query": "event.dataset: aws.cloudtrail and event.provider: lambda.amazonaws.com and event.outcome: success and event.action: AddPermission* and aws.cloudtrail.request_parameters: (*lambda\\:InvokeFunction* and *principal=\\**)",
        "index": ["filebeat-*", "logs-aws.cloudtrail-*"],
        "from": "now-60m", "to": "now", "interval": "10m",
        "max_signals": 100, "risk_score": 47, "severity": "medium",
        "tags": ["Domain: Cloud", "Data Source: AWS", "Tactic: Persistence"],
        "threat": [{"framework": "MITRE ATT&CK",
            "tactic": {"id": "TA0003", "name": "Persistence", "reference": "https://attack.mitre.org/tactics/TA0003/"},
            "technique": [{"id": "T1546", "name": "Event Triggered Execution", "reference": "https://attack.mitre.org/techniques/T1546/"}]}],
        "author": ["Elastic"], "license": "Elastic License v2",
        "note": "## Triage\nCheck the principal.",
        "timestamp_override": "event.ingested",
        "version": 1, "enabled": true
    }))
    .unwrap()
}

/// The AddPermission event of the Kibana document example (§8.5), with `event.kind` set.
pub fn add_permission_event() -> Value {
    json!({
        "@timestamp": "2025-01-01T11:42:17Z",
        "cloud": {"account": {"id": "123456789012"}, "region": "us-east-1"},
        "source": {"address": "198.51.100.7", "ip": "198.51.100.7"},
        "user": {"id": "AIDAEXAMPLE", "name": "attacker"},
        "data_stream": {"type": "logs", "dataset": "aws.cloudtrail", "namespace": "default"},
        "event": {"action": "AddPermission20150331v2", "provider": "lambda.amazonaws.com",
                  "outcome": "success", "type": ["info"], "kind": "event", "id": EVENT_ID,
                  "dataset": "aws.cloudtrail", "created": "2025-01-01T11:47:02.000Z",
                  "ingested": "2025-01-01T11:47:05.000Z"}
    })
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, h, m, s).unwrap()
}

fn context() -> RunContext {
    RunContext {
        execution_uuid: Uuid::parse_str("5d5a25b3-52da-4fc2-9945-06f6e4c0d9c8").unwrap(),
        ..RunContext::scheduled(at(12, 0, 3))
    }
}

fn event<'a>(index: &'a str, source: &'a Value) -> AlertEvent<'a> {
    AlertEvent {
        index,
        id: "AbCdEf123",
        source,
        timestamp: at(11, 47, 5),
    }
}

#[test]
fn alert_id_vectors() {
    // Expected values computed independently (Python hashlib / uuid).
    assert_eq!(
        alert_id(PUBLIC_INVOCATION_ID, EVENT_ID),
        "bc67b1c70444452efb0f2c0cf1b87740880318a7260a07fc0241862bba55854b"
    );
    assert_eq!(
        alert_id(PUBLIC_INVOCATION_ID, &format!("{BACKING_INDEX}/AbCdEf123")),
        "fd5554d9e6b759c7c236c0d0d0fa2632b9a01d3bc583a5d29c7fd4cd2becbab2"
    );
    assert_eq!(
        rule_uuid(PUBLIC_INVOCATION_ID).to_string(),
        "85295765-f82a-5d49-9320-51bafbaed972"
    );
}

#[test]
fn the_same_event_in_two_indices_has_one_id_by_default() {
    let builder = AlertBuilder::new(&public_invocation_rule(), &context());
    let source = add_permission_event();
    let a = builder.alert_id(&event(BACKING_INDEX, &source));
    let b = builder.alert_id(&event("filebeat-8.17.0-2025.01.01", &source));
    assert_eq!(a, b);
    assert_eq!(a, alert_id(PUBLIC_INVOCATION_ID, EVENT_ID));

    let per_copy = AlertBuilder::new(
        &public_invocation_rule(),
        &RunContext {
            identity: IdentityStrategy::IndexAndId,
            ..context()
        },
    );
    assert_ne!(
        per_copy.alert_id(&event(BACKING_INDEX, &source)),
        per_copy.alert_id(&event("filebeat-8.17.0-2025.01.01", &source))
    );
}

#[test]
fn events_without_event_id_fall_back_to_index_and_id() {
    let source = json!({"@timestamp": "2025-01-01T11:00:00Z"});
    assert_eq!(
        event_identity(IdentityStrategy::EventId, "idx", "doc1", &source),
        "idx/doc1"
    );
    let builder = AlertBuilder::new(&public_invocation_rule(), &context());
    assert_eq!(
        builder.alert_id(&event("idx", &source)),
        alert_id(PUBLIC_INVOCATION_ID, "idx/AbCdEf123")
    );
}

#[test]
fn identity_strategy_reads_from_config_text() {
    let strategy: IdentityStrategy = serde_json::from_value(json!("index_and_id")).unwrap();
    assert_eq!(strategy, IdentityStrategy::IndexAndId);
    let strategy: IdentityStrategy = serde_json::from_value(json!("event_id")).unwrap();
    assert_eq!(strategy, IdentityStrategy::EventId);
}

#[test]
fn reason_matches_kibana_for_lambda_events() {
    let rule = public_invocation_rule();
    assert_eq!(
        reason(&add_permission_event(), rule.severity, &rule.name),
        "event with source 198.51.100.7 by attacker created medium alert \
         AWS Lambda Function Policy Updated to Allow Public Invocation."
    );
}

#[test]
fn reason_matches_kibana_integration_test_example() {
    let doc = json!({
        "event": {"category": "user-login"},
        "source": {"ip": "46.101.47.213"},
        "user": {"name": "root"},
        "host": {"name": "zeek-sensor-amsterdam"}
    });
    assert_eq!(
        reason(&doc, Severity::High, "Query with a rule id"),
        "user-login event with source 46.101.47.213 by root on zeek-sensor-amsterdam \
         created high alert Query with a rule id."
    );
}

#[test]
fn reason_lists_every_piece_in_kibanas_order() {
    let doc = json!({
        "event.category": ["process", "network"],
        "process": {"name": "curl", "parent": {"name": "bash"}},
        "file": {"name": "-"},
        "source": {"ip": "10.0.0.1", "port": 5555},
        "destination": {"ip": "10.0.0.2", "port": 443},
        "user": {"name": ["-"]},
        "host": {"name": "web-1"}
    });
    assert_eq!(
        reason(&doc, Severity::Critical, "R"),
        "process, network event with process curl, parent process bash, \
         source 10.0.0.1:5555, destination 10.0.0.2:443, on web-1 created critical alert R."
    );
}

#[test]
fn document_carries_the_fields_kibana_needs() {
    let source = add_permission_event();
    let alert = AlertBuilder::new(&public_invocation_rule(), &context())
        .build(&event(BACKING_INDEX, &source));
    let doc = &alert.document;
    let expected_id = alert_id(PUBLIC_INVOCATION_ID, EVENT_ID);
    assert_eq!(alert.id, expected_id);
    assert_eq!(alert.rule_id, PUBLIC_INVOCATION_ID);
    assert_eq!(alert.event_time, at(11, 47, 5));

    let expect = |field: &str, value: Value| {
        assert_eq!(doc.get(field), Some(&value), "field {field}");
    };
    // Visibility in Kibana (§8.3): exact values.
    expect("kibana.alert.rule.rule_type_id", json!("siem.queryRule"));
    expect("kibana.alert.rule.consumer", json!("siem"));
    expect("kibana.alert.rule.producer", json!("siem"));
    expect("kibana.space_ids", json!(["default"]));
    expect("kibana.alert.workflow_status", json!("open"));
    expect("kibana.alert.status", json!("active"));
    expect(
        "kibana.alert.rule.uuid",
        json!("85295765-f82a-5d49-9320-51bafbaed972"),
    );
    expect(
        "kibana.alert.rule.name",
        json!("AWS Lambda Function Policy Updated to Allow Public Invocation"),
    );
    expect("kibana.alert.severity", json!("medium"));
    expect("kibana.alert.risk_score", json!(47));
    expect(
        "kibana.alert.reason",
        json!(
            "event with source 198.51.100.7 by attacker created medium alert \
             AWS Lambda Function Policy Updated to Allow Public Invocation."
        ),
    );
    // The original time is `@timestamp`, even though the rule windows on `event.ingested`.
    expect(
        "kibana.alert.original_time",
        json!("2025-01-01T11:42:17.000Z"),
    );
    expect("kibana.alert.uuid", json!(expected_id));
    expect("@timestamp", json!("2025-01-01T12:00:03.000Z"));

    // Lifecycle, ancestry and execution.
    expect("event.kind", json!("signal"));
    expect("kibana.alert.depth", json!(1));
    expect(
        "kibana.alert.ancestors",
        json!([{"id": "AbCdEf123", "type": "event", "index": BACKING_INDEX, "depth": 0}]),
    );
    expect("kibana.alert.workflow_tags", json!([]));
    expect(
        "kibana.alert.rule.execution.uuid",
        json!("5d5a25b3-52da-4fc2-9945-06f6e4c0d9c8"),
    );
    expect("kibana.alert.rule.execution.type", json!("scheduled"));
    expect(
        "kibana.alert.rule.execution.timestamp",
        json!("2025-01-01T12:00:03.000Z"),
    );
    expect(
        "kibana.alert.intended_timestamp",
        json!("2025-01-01T12:00:03.000Z"),
    );
    expect("kibana.version", json!("8.17.0"));

    // Rule snapshot.
    expect("kibana.alert.rule.rule_id", json!(PUBLIC_INVOCATION_ID));
    expect("kibana.alert.rule.category", json!("Custom Query Rule"));
    expect("kibana.alert.rule.type", json!("query"));
    expect("kibana.alert.rule.version", json!(1));
    expect("kibana.alert.rule.from", json!("now-60m"));
    expect("kibana.alert.rule.to", json!("now"));
    expect("kibana.alert.rule.interval", json!("10m"));
    expect("kibana.alert.rule.max_signals", json!(100));
    expect(
        "kibana.alert.rule.indices",
        json!(["filebeat-*", "logs-aws.cloudtrail-*"]),
    );
    expect(
        "kibana.alert.rule.timestamp_override",
        json!("event.ingested"),
    );
    expect("kibana.alert.rule.author", json!(["Elastic"]));
    expect("kibana.alert.rule.license", json!("Elastic License v2"));
    expect(
        "kibana.alert.rule.note",
        json!("## Triage\nCheck the principal."),
    );
    expect(
        "kibana.alert.rule.tags",
        json!(["Domain: Cloud", "Data Source: AWS", "Tactic: Persistence"]),
    );
    assert_eq!(
        doc["kibana.alert.rule.threat"][0]["technique"][0]["id"],
        json!("T1546")
    );

    let params = &doc["kibana.alert.rule.parameters"];
    assert_eq!(params["rule_id"], json!(PUBLIC_INVOCATION_ID));
    assert_eq!(params["language"], json!("kuery"));
    assert_eq!(params["type"], json!("query"));
    assert_eq!(params["timestamp_override"], json!("event.ingested"));
    assert_eq!(params["filters"], json!([]));
    assert_eq!(params["exceptions_list"], json!([]));
    assert_eq!(params["threat"][0]["tactic"]["id"], json!("TA0003"));
    assert!(params.get("name").is_none() && params.get("interval").is_none());
}

#[test]
fn document_keeps_the_event_and_copies_event_and_data_stream() {
    let source = add_permission_event();
    let alert = AlertBuilder::new(&public_invocation_rule(), &context())
        .build(&event(BACKING_INDEX, &source));
    let doc = &alert.document;
    assert_eq!(doc["cloud"]["region"], json!("us-east-1"));
    assert_eq!(doc["user"]["name"], json!("attacker"));
    // `event.kind` leaves the nested object and becomes the flat "signal".
    assert_eq!(doc["event"]["action"], json!("AddPermission20150331v2"));
    assert!(doc["event"].get("kind").is_none());
    for (field, value) in [
        ("action", json!("AddPermission20150331v2")),
        ("provider", json!("lambda.amazonaws.com")),
        ("outcome", json!("success")),
        ("type", json!(["info"])),
        ("kind", json!("event")),
        ("id", json!(EVENT_ID)),
        ("ingested", json!("2025-01-01T11:47:05.000Z")),
    ] {
        assert_eq!(
            doc[format!("kibana.alert.original_event.{field}")],
            value,
            "{field}"
        );
    }
    for (field, value) in [
        ("type", "logs"),
        ("dataset", "aws.cloudtrail"),
        ("namespace", "default"),
    ] {
        assert_eq!(
            doc[format!("kibana.alert.original_data_stream.{field}")],
            json!(value)
        );
    }
}

#[test]
fn reserved_fields_are_stripped_from_the_event() {
    let source = json!({
        "@timestamp": "2025-01-01T11:00:00Z",
        "kibana": {"alert": {"uuid": "forged"}},
        "kibana.alert.rule.name": "forged",
        "signal": {"rule": {"id": "old"}},
        "signal.status": "open",
        "threshold_result": {"count": 3},
        "kibanana": "kept",
        "signals": "kept too",
        "message": "kept"
    });
    let alert =
        AlertBuilder::new(&public_invocation_rule(), &context()).build(&event("idx", &source));
    let doc = alert.document.as_object().unwrap();
    for gone in ["kibana", "signal", "signal.status", "threshold_result"] {
        assert!(!doc.contains_key(gone), "{gone} should be stripped");
    }
    assert_eq!(
        doc["kibana.alert.rule.name"],
        json!(public_invocation_rule().name)
    );
    assert_ne!(doc["kibana.alert.uuid"], json!("forged"));
    for kept in ["kibanana", "signals", "message"] {
        assert!(doc.contains_key(kept), "{kept} should stay");
    }
    // No event object at all: nothing to copy, and the flat kind still marks the signal.
    assert!(
        !doc.keys()
            .any(|k| k.starts_with("kibana.alert.original_event."))
    );
    assert_eq!(doc["event.kind"], json!("signal"));
}

#[test]
fn original_time_falls_back_to_the_window_time_without_timestamp() {
    let source = json!({"event": {"ingested": "2025-01-01T11:47:05Z"}});
    let alert =
        AlertBuilder::new(&public_invocation_rule(), &context()).build(&event("idx", &source));
    assert_eq!(
        alert.document["kibana.alert.original_time"],
        json!("2025-01-01T11:47:05.000Z")
    );
}

#[test]
fn building_is_deterministic_and_serializes() {
    let source = add_permission_event();
    let ctx = context();
    let one =
        AlertBuilder::new(&public_invocation_rule(), &ctx).build(&event(BACKING_INDEX, &source));
    let two =
        AlertBuilder::new(&public_invocation_rule(), &ctx).build(&event(BACKING_INDEX, &source));
    assert_eq!(one, two);
    let bytes = serde_json::to_vec(&one.document).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        one.document
    );
    // A different run changes run fields, never the id.
    let later = RunContext::scheduled(at(12, 10, 0));
    let three =
        AlertBuilder::new(&public_invocation_rule(), &later).build(&event(BACKING_INDEX, &source));
    assert_eq!(three.id, one.id);
    assert_ne!(three.document["@timestamp"], one.document["@timestamp"]);
}

#[test]
fn manual_runs_record_type_and_intended_time() {
    let ctx = RunContext::manual(at(12, 0, 0), at(3, 0, 0));
    assert_eq!(ctx.execution_type, ExecutionType::Manual);
    let source = add_permission_event();
    let alert = AlertBuilder::new(&public_invocation_rule(), &ctx).build(&event("idx", &source));
    assert_eq!(
        alert.document["kibana.alert.rule.execution.type"],
        json!("manual")
    );
    assert_eq!(
        alert.document["kibana.alert.intended_timestamp"],
        json!("2025-01-01T03:00:00.000Z")
    );
    assert_eq!(
        alert.document["@timestamp"],
        json!("2025-01-01T12:00:00.000Z")
    );
}

#[test]
fn custom_space_and_version_are_written() {
    let ctx = RunContext {
        space_id: "secops".into(),
        kibana_version: "8.15.3".into(),
        ..context()
    };
    let source = add_permission_event();
    let alert = AlertBuilder::new(&public_invocation_rule(), &ctx).build(&event("idx", &source));
    assert_eq!(alert.document["kibana.space_ids"], json!(["secops"]));
    assert_eq!(alert.document["kibana.version"], json!("8.15.3"));
}

#[test]
fn severity_risk_and_name_overrides_apply_per_event_and_the_document_keeps_the_mappings() {
    let mut rule = public_invocation_rule();
    let mappings = json!({
        "severity_mapping": [
            {"field": "user.name", "operator": "equals", "value": "attacker", "severity": "critical"},
            {"field": "cloud.region", "operator": "equals", "value": "us-east-1", "severity": "high"}
        ],
        "risk_score_mapping": [{"field": "labels.risk", "operator": "equals", "value": ""}],
        "rule_name_override": "labels.title"
    });
    rule.extra.extend(mappings.as_object().unwrap().clone());
    let builder = AlertBuilder::new(&rule, &context());
    let mut source = add_permission_event();
    source["labels"] = json!({"risk": ["30", 73], "title": "Public grant on billing-export"});
    let alert = builder
        .build(&event("logs-aws.cloudtrail-default", &source))
        .document;
    assert_eq!(alert["kibana.alert.severity"], "critical");
    assert_eq!(alert["kibana.alert.risk_score"], 73);
    assert_eq!(
        alert["kibana.alert.rule.name"],
        "Public grant on billing-export"
    );
    let reason = alert["kibana.alert.reason"].as_str().unwrap();
    assert!(
        reason.contains("critical") && reason.contains("Public grant on billing-export"),
        "{reason}"
    );
    // The rule's own values stay where Kibana keeps them.
    assert_eq!(alert["kibana.alert.rule.severity"], "medium");
    assert_eq!(alert["kibana.alert.rule.risk_score"], 47);
    for key in [
        "severity_mapping",
        "risk_score_mapping",
        "rule_name_override",
    ] {
        assert_eq!(
            alert[format!("kibana.alert.rule.{key}")],
            mappings[key],
            "{key}"
        );
        assert_eq!(
            alert["kibana.alert.rule.parameters"][key], mappings[key],
            "{key}"
        );
    }

    // An event the mappings do not cover keeps the rule's values.
    let plain = builder
        .build(&event(
            "logs-aws.cloudtrail-default",
            &json!({"event": {"id": "other"}}),
        ))
        .document;
    assert_eq!(plain["kibana.alert.severity"], "medium");
    assert_eq!(plain["kibana.alert.risk_score"], 47);
    assert_eq!(
        plain["kibana.alert.rule.name"],
        "AWS Lambda Function Policy Updated to Allow Public Invocation"
    );
}

//! The engine and the in-memory evaluator must agree: for every runnable rule, the events
//! the engine returns for the rule's search (its query and filters translated as `run`
//! sends them, over all loaded time) are the events the evaluator matches on the same
//! normalized documents. And every prebuilt rule query is accepted by the engine.

use std::collections::BTreeSet;
use std::sync::Arc;

use ::elasticsearch::http::Method;
use chrono::{TimeZone, Utc};
use rule_runner::cloudtrail::Flavor;
use rule_runner::elasticsearch::templates;
use rule_runner::elasticsearch::{Call, EsEventSource};
use rule_runner::engine::{EventSource, RuleWindow, Shutdown, WindowQuery};
use rule_runner::kql::{self, DslOptions, FieldTypes};
use rule_runner::rule::{RuleKind, load_paths};
use rule_runner::scan::RuleSet;
use serde_json::{Value, json};

use super::{clean_up, dataset, engine, unique_names, written_alerts};
use crate::kql::corpus::corpus;
use crate::util::{data, repo, rule_runner};

fn event_id(doc: &Value) -> String {
    doc.pointer("/event/id")
        .and_then(Value::as_str)
        .expect("every normalized CloudTrail document has an event.id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_finds_the_same_events_on_the_engine_and_in_memory() {
    let test = "every_rule_finds_the_same_events_on_the_engine_and_in_memory";
    let (Some(engine), Some(set)) = (engine(test), dataset::cloudtrail(test)) else {
        return;
    };
    let report = load_paths(&[repo("rules"), data("rules/detection-rules/aws")]);
    let rules = RuleSet::compile(&report, Flavor::Integration, &set.namespace);
    assert!(
        rules.rules.len() >= 86,
        "{} runnable rules",
        rules.rules.len()
    );
    let source = EsEventSource::new(engine.client.clone());
    let window = RuleWindow {
        start: Utc.timestamp_opt(0, 0).unwrap(),
        end: Utc::now() + chrono::TimeDelta::days(1),
    };
    let (mut events, mut mismatches) = (0, Vec::new());
    // EQL rules run offline only: the service has no `_eql/search` yet.
    // EQL rules search through `_eql/search`, not the query DSL compared here.
    for compiled in rules
        .rules
        .iter()
        .filter(|r| r.rule.runs_in_service() && r.rule.rule_type != "eql")
    {
        let expected: BTreeSet<String> = set
            .documents
            .iter()
            .filter(|doc| compiled.matcher.matches(doc))
            .map(event_id)
            .collect();
        let mut rule = (*compiled.rule).clone();
        // Only this test's data stream: other tests load into `logs-aws.cloudtrail-*` too.
        rule.index = vec![set.index.clone()];
        // The query of a new_terms or threshold rule selects events as a query rule's does;
        // that selection is what is compared here.
        rule.rule_type = "query".into();
        let query = WindowQuery {
            rule: Arc::new(rule),
            window,
            page_size: 100,
        };
        let mut stream = source
            .search(query)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", compiled.rule.name));
        let mut found = BTreeSet::new();
        while let Some(page) = stream.next_page().await.expect("a page") {
            found.extend(page.iter().map(|hit| event_id(&hit.source)));
        }
        stream.close().await.expect("the point in time closes");
        events += found.len();
        if found != expected {
            mismatches.push(format!(
                "{} ({}): engine only {:?}, evaluator only {:?}",
                compiled.rule.name,
                compiled.origin,
                found.difference(&expected).collect::<Vec<_>>(),
                expected.difference(&found).collect::<Vec<_>>()
            ));
        }
    }
    eprintln!(
        "differential: {} rules compared over {} documents, {events} matching events, {} mismatches",
        rules.rules.len(),
        set.documents.len(),
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The two corpus queries no engine can run against a CloudTrail index, for reasons of that
/// index's mapping (Elasticsearch refuses them the same way): the reason's telling part and
/// why.
const REFUSED_BY_THE_MAPPING: [(&str, &str); 2] = [
    (
        "failed to find nested object under path [gcp.audit.service_data.policy_delta.binding_deltas]",
        "GCP rule: KQL's `field:{...}` is always a nested query, and CloudTrail has no such nested path",
    ),
    (
        "Cannot search on field [event.original] since it is both not indexed, and does not have doc_values enabled",
        "network rule: `event.original :*React*Server*`, and ECS maps event.original with index and doc_values off",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_accepts_every_prebuilt_rule_query() {
    let test = "the_engine_accepts_every_prebuilt_rule_query";
    let (Some(engine), Some(set)) = (engine(test), dataset::cloudtrail(test)) else {
        return;
    };
    let ecs = FieldTypes::ecs_cloudtrail();
    let options = DslOptions::detection_engine();
    let queries = corpus();
    let (mut refused, mut expected) = (Vec::new(), Vec::new());
    for query in &queries {
        let ast = kql::parse(query).expect("the corpus parses");
        let dsl = kql::to_dsl(&ast, Some(ecs), &options).expect("the corpus translates");
        let reply = engine
            .client
            .send(
                &Call::new("search", Method::Post, format!("/{}/_search", set.index))
                    .json(json!({"size": 0, "query": dsl})),
            )
            .await
            .expect("the engine answers");
        if reply.status != 200 {
            let text = reply.body.to_string();
            if let Some((_, why)) = REFUSED_BY_THE_MAPPING
                .iter()
                .find(|(reason, _)| reply.status == 400 && text.contains(reason))
            {
                expected.push(*why);
            } else {
                refused.push(format!("{}: {query}\n{text}", reply.status));
            }
        }
    }
    eprintln!(
        "corpus: {} queries sent, {} accepted, {} refused as the mapping dictates, {} refused otherwise",
        queries.len(),
        queries.len() - expected.len() - refused.len(),
        expected.len(),
        refused.len()
    );
    assert!(refused.is_empty(), "{}", refused.join("\n\n"));
    assert_eq!(expected.len(), REFUSED_BY_THE_MAPPING.len(), "{expected:?}");
}

/// `scan` over the raw files and the service over the loaded copy write the same alerts.
/// Each rule is backfilled over the datasets' whole time span with its interval stretched
/// so the span is a couple of windows: what differs between the two modes is how events are
/// found and alerts built, not the window layout, which the engine tests cover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_and_the_service_write_the_same_alert_ids() {
    let test = "scan_and_the_service_write_the_same_alert_ids";
    let (Some(engine), Some(set)) = (engine(test), dataset::cloudtrail(test)) else {
        return;
    };
    let (prefix, names) = unique_names();
    let client = engine.client.clone();
    templates::setup(&client, &names).await.expect("setup");
    let service = super::service_over(&client, &names);
    let report = load_paths(&[repo("rules"), data("rules/detection-rules/aws")]);
    let rules = RuleSet::compile(&report, Flavor::Integration, &set.namespace);
    let start = Utc.with_ymd_and_hms(2015, 1, 1, 0, 0, 0).unwrap();
    let end = Utc::now();
    // The service runs query rules only; the scan's other alerts are left out below.
    for compiled in rules.rules.iter().filter(|c| c.kind == RuleKind::Query) {
        let mut rule = (*compiled.rule).clone();
        rule.index = vec![set.index.clone()];
        rule.interval = "2000d".into();
        rule.from = "now-2000d".into();
        let record = service
            .backfill(&Arc::new(rule), start, end, end, &Shutdown::never())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", compiled.rule.name));
        assert!(
            record.windows.iter().all(|w| w.complete),
            "{}: {record:?}",
            compiled.rule.name
        );
    }
    let written = written_alerts(&client, &names, json!(false)).await;
    let service_ids: BTreeSet<String> = written["hits"]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(|hit| hit["_id"].as_str().map(String::from))
        .collect();
    clean_up(&client, &prefix, &names).await;

    let mut args = vec!["scan".to_string()];
    args.extend(dataset::inputs().iter().map(|p| p.display().to_string()));
    for dir in [repo("rules"), data("rules/detection-rules/aws")] {
        args.push("--rules".into());
        args.push(dir.display().to_string());
    }
    args.extend(["--format".into(), "ndjson".into()]);
    let out = rule_runner().args(&args).output().expect("scan runs");
    let scan_ids: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let alert: Value = serde_json::from_str(line).expect("ndjson");
            (alert["kibana.alert.rule.type"] == "query").then(|| {
                alert["kibana.alert.uuid"]
                    .as_str()
                    .expect("an id")
                    .to_string()
            })
        })
        .collect();
    eprintln!(
        "scan vs run: {} rules, {} alerts from scan, {} from the service, {} only in scan, {} only in the service",
        rules.rules.len(),
        scan_ids.len(),
        service_ids.len(),
        scan_ids.difference(&service_ids).count(),
        service_ids.difference(&scan_ids).count()
    );
    assert!(!scan_ids.is_empty());
    assert_eq!(scan_ids, service_ids);
}

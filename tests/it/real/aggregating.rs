//! new_terms and threshold rules on the real engine: the service's group requests over the
//! loaded datasets and `scan` over the raw files, on the same schedule, write the same
//! alert ids for every rule of these types.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use rule_runner::cloudtrail::Flavor;
use rule_runner::elasticsearch::templates;
use rule_runner::engine::Shutdown;
use rule_runner::rule::{RuleKind, load_paths};
use rule_runner::scan::RuleSet;
use serde_json::{Value, json};

use super::{clean_up, dataset, engine, unique_names, written_alerts};
use crate::util::{data, rule_runner};

/// The schedule both modes run on: 30-day runs over 30-day windows, so the datasets' 17
/// months are a few dozen windows, each rule's history 60 days.
const DAYS: i64 = 30;

fn aligned(time: DateTime<Utc>, up: bool) -> DateTime<Utc> {
    let step = DAYS * 86_400;
    let seconds = time.timestamp();
    let floor = seconds.div_euclid(step) * step;
    let at = if up && floor < seconds {
        floor + step
    } else {
        floor
    };
    Utc.timestamp_opt(at, 0).single().expect("a valid time")
}

fn grouped_fields(rule: &rule_runner::rule::Rule) -> Vec<String> {
    match rule.kind() {
        Ok(RuleKind::NewTerms(params)) => params.fields,
        Ok(RuleKind::Threshold(params)) => params.field,
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_scan_write_the_same_new_terms_and_threshold_alerts() {
    let test = "run_and_scan_write_the_same_new_terms_and_threshold_alerts";
    let (Some(engine), Some(set)) = (engine(test), dataset::cloudtrail(test)) else {
        return;
    };
    let (prefix, names) = unique_names();
    let client = engine.client.clone();
    templates::setup(&client, &names).await.expect("setup");
    let service = super::service_over(&client, &names);
    let report = load_paths(&[data("rules/detection-rules/aws")]);
    let rules = RuleSet::compile(&report, Flavor::Integration, &set.namespace);
    let times: Vec<DateTime<Utc>> = set
        .documents
        .iter()
        .filter_map(|doc| doc["@timestamp"].as_str())
        .filter_map(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|t| t.with_timezone(&Utc))
        .collect();
    let start = aligned(*times.iter().min().expect("events"), false) - TimeDelta::days(DAYS);
    let end = aligned(*times.iter().max().expect("events"), true) + TimeDelta::days(DAYS);

    let dir = tempfile::tempdir().expect("a temporary directory");
    let rules_file = dir.path().join("aggregating.ndjson");
    let mut file = std::fs::File::create(&rules_file).expect("rules file");
    let (mut new_terms, mut thresholds) = (0, 0);
    let mut flat_object = Vec::new();
    for compiled in &rules.rules {
        match compiled.kind {
            RuleKind::Query | RuleKind::Eql(_) => continue,
            RuleKind::NewTerms(_) => new_terms += 1,
            RuleKind::Threshold(_) => thresholds += 1,
        }
        let mut rule = (*compiled.rule).clone();
        // The loaded copy's `event.ingested` is its load time: both modes place events by
        // their `@timestamp`, so windows hold the same events.
        rule.timestamp_override = None;
        rule.interval = format!("{DAYS}d");
        rule.from = format!("now-{DAYS}d");
        if rule.extra.contains_key("history_window_start") {
            rule.extra.insert(
                "history_window_start".into(),
                json!(format!("now-{}d", 2 * DAYS)),
            );
        }
        let scanned = rule.clone();
        // Only this test's data stream: other tests load into `logs-aws.cloudtrail-*` too.
        rule.index = vec![set.index.clone()];
        let record = service
            .backfill(&Arc::new(rule.clone()), start, end, end, &Shutdown::never())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", rule.name));
        // OpenSearch cannot aggregate on the keys of a `flat_object` field (where
        // Elasticsearch's `flattened` CloudTrail fields map to): it fails serializing the
        // field's doc-value format or its values. Such rules are compared on Elasticsearch.
        let on_flat_object = grouped_fields(&rule)
            .iter()
            .any(|f| f.contains(".flattened."));
        if on_flat_object && !record.errors.is_empty() {
            flat_object.push(rule.name.clone());
            continue;
        }
        assert!(
            record.errors.is_empty() && record.windows.iter().all(|w| w.complete),
            "{}: {:?}",
            rule.name,
            record.errors
        );
        writeln!(
            file,
            "{}",
            serde_json::to_string(&scanned).expect("a rule as JSON")
        )
        .expect("rule written");
    }
    drop(file);
    assert_eq!(
        (new_terms, thresholds),
        (49, 5),
        "the AWS rules of these types"
    );
    let written = written_alerts(
        &client,
        &names,
        json!([
            "kibana.alert.rule.type",
            "kibana.alert.rule.name",
            "kibana.alert.new_terms",
            "kibana.alert.threshold_result",
            "kibana.alert.original_time"
        ]),
    )
    .await;
    let hits = written["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let service_ids: BTreeSet<String> = hits
        .iter()
        .filter_map(|hit| hit["_id"].as_str().map(String::from))
        .collect();
    clean_up(&client, &prefix, &names).await;

    let mut args = vec!["scan".to_string()];
    args.extend(dataset::inputs().iter().map(|p| p.display().to_string()));
    args.extend([
        "--rules".into(),
        rules_file.display().to_string(),
        "--no-warm-up".into(),
        "--format".into(),
        "ndjson".into(),
    ]);
    let out = rule_runner().args(&args).output().expect("scan runs");
    assert!(
        out.status.code() != Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut per_type = std::collections::BTreeMap::<String, usize>::new();
    let scan_ids: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("ndjson"))
        .map(|alert| {
            let kind = alert["kibana.alert.rule.type"]
                .as_str()
                .unwrap_or("?")
                .to_owned();
            *per_type.entry(kind).or_default() += 1;
            alert["kibana.alert.uuid"]
                .as_str()
                .expect("an id")
                .to_owned()
        })
        .collect();
    eprintln!(
        "aggregating rules, run vs scan: {new_terms} new_terms and {thresholds} threshold rules \
         ({} not comparable on OpenSearch: {flat_object:?}), {} alerts from scan ({per_type:?}), {} from the service, {} only in scan, {} only in the service",
        flat_object.len(),
        scan_ids.len(),
        service_ids.len(),
        scan_ids.difference(&service_ids).count(),
        service_ids.difference(&scan_ids).count()
    );
    assert!(!scan_ids.is_empty(), "the datasets raise new_terms alerts");
    let only_service: Vec<String> = hits
        .iter()
        .filter(|hit| hit["_id"].as_str().is_some_and(|id| !scan_ids.contains(id)))
        .map(|hit| hit["_source"].to_string())
        .collect();
    assert_eq!(
        scan_ids, service_ids,
        "only in the service: {only_service:#?}"
    );
}

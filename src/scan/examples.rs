//! Sequence examples of `rules test` (`rule::examples`): a rule's example events run as
//! `scan` runs them, and the alerts they raise in the terms the example states.

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use super::{RuleSet, ScanOptions, scan};
use crate::alert::RunContext;
use crate::alert::fields::{lookup, parse_timestamp};
use crate::cloudtrail::{Input, InputFile, NormalizeOptions};
use crate::eql::JoinMatcher;
use crate::kql::FieldTypes;
use crate::rule::examples::ExpectedAlert;
use crate::rule::{LoadReport, LoadedRule};
use crate::rule::{RuleKind, RuleMatcher};

/// The alerts `events` raise through `loaded` on its schedule; `warm_up` as `scan`'s. For an
/// EQL sequence rule, its sequences: join keys and number of events.
pub fn run_sequence(
    loaded: &LoadedRule,
    events: &[Value],
    warm_up: bool,
) -> Result<Vec<ExpectedAlert>, String> {
    if let Ok(RuleKind::Eql(eql)) = loaded.rule.kind()
        && let Some(matcher) = eql.join_matcher()
    {
        let matcher = matcher.map_err(|error| error.to_string())?;
        return eql_sequences(loaded, matcher, events);
    }
    let mut ndjson = Vec::new();
    for (n, event) in events.iter().enumerate() {
        if !event.is_object() {
            return Err(format!("event {} is not a JSON object", n + 1));
        }
        if lookup(event, "@timestamp").is_none() {
            return Err(format!(
                "event {} has no `@timestamp`: the rule's schedule needs event times",
                n + 1
            ));
        }
        ndjson.extend(event.to_string().into_bytes());
        ndjson.push(b'\n');
    }
    let report = LoadReport {
        rules: vec![loaded.clone()],
        ..LoadReport::default()
    };
    let opts = ScanOptions {
        normalize: NormalizeOptions::default(),
        max_signals_per_rule: false,
        threads: Some(1),
        prefilter: false,
        warm_up,
        memory: crate::scan::DEFAULT_MEMORY,
        sequence_memory: crate::scan::DEFAULT_SEQUENCE_MEMORY,
    };
    let rules = RuleSet::compile(&report, opts.normalize.flavor, &opts.normalize.namespace);
    if let Some(left_out) = rules.left_out.first() {
        return Err(left_out.reason.clone());
    }
    let file = InputFile {
        input: Input::Memory {
            name: format!("the example events of {}", loaded.rule.name),
            bytes: Arc::from(ndjson),
        },
        size: None,
    };
    let result = scan(
        &[file],
        &rules,
        &opts,
        &RunContext::scheduled(Utc::now()),
        None,
    )
    .map_err(|error| error.to_string())?;
    if let Some(problem) = result.problems.first() {
        return Err(match problem.record {
            Some(record) => format!("event {}: {}", record + 1, problem.message),
            None => problem.message.clone(),
        });
    }
    let alerts = result.alerts.to_vec().map_err(|e| e.to_string())?;
    Ok(alerts.iter().map(|alert| raised(&alert.document)).collect())
}

/// The sequences of `events` in time order (ties in the order given), as `scan` matches them:
/// the events that pass the rule's filters and one of its stages, fed to the matcher.
fn eql_sequences(
    loaded: &LoadedRule,
    mut matcher: JoinMatcher,
    events: &[Value],
) -> Result<Vec<ExpectedAlert>, String> {
    let selection = RuleMatcher::new(
        &loaded.rule,
        None,
        Some(FieldTypes::ecs_cloudtrail()),
        &Default::default(),
    )
    .map_err(|error| error.to_string())?;
    let mut timed = Vec::with_capacity(events.len());
    for (n, event) in events.iter().enumerate() {
        let time = lookup(event, "@timestamp")
            .and_then(parse_timestamp)
            .ok_or_else(|| format!("event {} has no valid `@timestamp`", n + 1))?;
        timed.push((time, n, event));
    }
    timed.sort_by_key(|(time, n, _)| (*time, *n));
    let mut hits = Vec::new();
    for (time, n, event) in timed {
        if !selection.matches(event) {
            continue;
        }
        let nanos = i128::from(time.timestamp_nanos_opt().unwrap_or_default());
        hits.extend(matcher.push(n, nanos, event));
    }
    hits.extend(matcher.finish());
    let found = hits
        .into_iter()
        .map(|hit| ExpectedAlert {
            terms: hit.join_keys,
            count: Some(hit.events.len() as u64),
        })
        .collect();
    Ok(found)
}

/// An alert as an example states it: the new terms, or the threshold group and its count.
fn raised(alert: &Value) -> ExpectedAlert {
    if let Some(Value::Array(terms)) = alert.get("kibana.alert.new_terms") {
        return ExpectedAlert {
            terms: terms.clone(),
            count: None,
        };
    }
    let result = alert.get("kibana.alert.threshold_result");
    let terms = result
        .and_then(|r| r.get("terms"))
        .and_then(Value::as_array)
        .map(|terms| {
            terms
                .iter()
                .filter_map(|t| t.get("value").cloned())
                .collect()
        })
        .unwrap_or_default();
    ExpectedAlert {
        terms,
        count: result.and_then(|r| r.get("count")).and_then(Value::as_u64),
    }
}

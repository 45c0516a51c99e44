//! The aggregating rule types in the service: what one window of a `new_terms` or a
//! `threshold` rule alerts on, found through the source's group requests in the steps
//! Kibana's executors take (`docs/new-terms-and-threshold.md` gives the sources).
//!
//! new_terms: the window's terms page by page; for each batch of them, which occur in the
//! history (`[history_window_start, window start]`: an occurrence exactly at the start is
//! history, Kibana's strict `first_seen > from`); for the rest, the earliest event carrying
//! each in the window, which becomes the alert's source.
//!
//! threshold: the window's groups without the events the signal history excludes, kept
//! when they reach `threshold.value` (and the cardinality); the alerted groups' last
//! counted event times become the history of the next windows.
//!
//! eql: one EQL search per window ([`EventSource::eql`]); events become alerts as query
//! rules' do, sequences building blocks and a shell alert (`docs/eql.md`).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ports::{
    AlertDoc, EqlQuery, EventSource, Group, GroupQuery, PortError, RuleWindow, ThresholdEntry,
};
use crate::alert::aggregate::{new_terms_alert, new_terms_id, threshold_alert};
use crate::alert::sequence::sequence_alerts;
use crate::alert::{AlertBuilder, AlertEvent};
use crate::new_terms::term_key;
use crate::rule::Rule;
use crate::rule::kind::NewTerms;
use crate::threshold::{Bucket, Threshold, group_text};

/// Groups per page of the window's terms and of threshold groups (Kibana's page size).
pub const GROUP_PAGE_SIZE: usize = 10_000;
/// Terms per history check (Kibana's batch size for several fields).
pub const TERMS_BATCH: usize = 500;
/// The smallest batch tried when the cluster refuses one for its clauses: Kibana halves 500
/// twice, to 125, below any `max_clause_count` Elasticsearch accepts (1,024 at least).
pub const MIN_TERMS_BATCH: usize = 125;

/// What a window of an aggregating rule found: its alerts in the order the cap keeps them.
pub struct Found {
    pub alerts: Vec<AlertDoc>,
    pub warnings: Vec<String>,
}

/// Every group of `query`, page after page.
async fn all_groups(
    source: &dyn EventSource,
    mut query: GroupQuery,
    warnings: &mut Vec<String>,
) -> Result<Vec<Group>, PortError> {
    let mut groups = Vec::new();
    loop {
        let page = source.groups(query.clone()).await?;
        for warning in page.warnings {
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
        // A composite page short of its size is the last, whatever `after_key` says:
        // Elasticsearch returns one with every non-empty page.
        let last = page.groups.len() < query.size;
        groups.extend(page.groups);
        match page.after {
            Some(after) if query.after.as_ref() == Some(&after) => {
                return Err(PortError::Transient(format!(
                    "the cluster answered the page after {after:?} with the same position again; \
                     the window is searched again next run"
                )));
            }
            Some(after) if !last => query.after = Some(after),
            _ => return Ok(groups),
        }
    }
}

fn group_query(rule: &Arc<Rule>, range: RuleWindow, fields: &[String]) -> GroupQuery {
    GroupQuery {
        rule: Arc::clone(rule),
        range,
        fields: fields.to_vec(),
        only: Vec::new(),
        exclude: Vec::new(),
        cardinality_field: None,
        first_event: false,
        after: None,
        size: GROUP_PAGE_SIZE,
    }
}

/// The new terms of `window` and their alerts, ordered by term (the composite order the
/// offline scan cuts at the cap in).
pub async fn new_terms(
    source: &dyn EventSource,
    builder: &AlertBuilder,
    rule: &Arc<Rule>,
    params: &NewTerms,
    window: RuleWindow,
) -> Result<Found, PortError> {
    let history_start = params
        .history_start(window.end)
        .map_err(|why| PortError::Permanent(format!("rule `{}`: {why}", rule.rule_id)))?;
    let history = RuleWindow {
        start: history_start,
        end: window.start,
    };
    let mut warnings = Vec::new();
    let candidates: Vec<Vec<Value>> = all_groups(
        source,
        group_query(rule, window, &params.fields),
        &mut warnings,
    )
    .await?
    .into_iter()
    .map(|group| group.key)
    .filter(|key| !key.iter().any(Value::is_null))
    .collect();

    let mut firsts: Vec<Group> = Vec::new();
    let mut batch_size = TERMS_BATCH;
    let mut done = 0;
    while done < candidates.len() {
        let batch = &candidates[done..candidates.len().min(done + batch_size)];
        match first_events_of_new_terms(source, rule, params, window, history, batch, &mut warnings)
            .await
        {
            Ok(found) => {
                firsts.extend(found);
                done += batch.len();
            }
            // As Kibana does: the same terms in smaller batches, down to a size every cluster
            // takes unless the rule's own query is near the limit.
            Err(PortError::TooManyClauses(why)) if batch_size > MIN_TERMS_BATCH => {
                batch_size = (batch_size / 2).max(MIN_TERMS_BATCH);
                warnings.push(format!(
                    "the cluster refused a history check of {} terms ({why}); checking them in batches of {batch_size}",
                    batch.len()
                ));
            }
            Err(PortError::TooManyClauses(why)) => {
                return Err(PortError::Permanent(format!(
                    "{why}: even a history check of {} terms has too many clauses for the cluster; \
                     raise its `indices.query.bool.max_clause_count`, or simplify the rule's query",
                    batch.len()
                )));
            }
            Err(error) => return Err(error),
        }
    }
    firsts.sort_by_key(|group| term_key(&group.key));
    let alerts = firsts
        .into_iter()
        .filter_map(|group| {
            let hit = group.first_event?;
            let event = AlertEvent::from(&hit);
            let id = new_terms_id(builder, &event, &group.key);
            Some(new_terms_alert(builder, &event, &group.key, id))
        })
        .collect();
    Ok(Found { alerts, warnings })
}

/// Of `batch`, the terms that do not occur in `history`, each with its earliest event in
/// `window`.
async fn first_events_of_new_terms(
    source: &dyn EventSource,
    rule: &Arc<Rule>,
    params: &NewTerms,
    window: RuleWindow,
    history: RuleWindow,
    batch: &[Vec<Value>],
    warnings: &mut Vec<String>,
) -> Result<Vec<Group>, PortError> {
    let seen: HashSet<String> = all_groups(
        source,
        GroupQuery {
            only: batch.to_vec(),
            size: batch.len(),
            ..group_query(rule, history, &params.fields)
        },
        warnings,
    )
    .await?
    .iter()
    .map(|group| term_key(&group.key))
    .collect();
    let new: Vec<Vec<Value>> = batch
        .iter()
        .filter(|key| !seen.contains(&term_key(key)))
        .cloned()
        .collect();
    if new.is_empty() {
        return Ok(Vec::new());
    }
    all_groups(
        source,
        GroupQuery {
            size: new.len(),
            only: new,
            first_event: true,
            ..group_query(rule, window, &params.fields)
        },
        warnings,
    )
    .await
}

/// The threshold groups of `window` that pass, as alerts in group order, without the
/// events `history` says were counted already. `history` must be pruned for the window.
pub async fn threshold(
    source: &dyn EventSource,
    builder: &AlertBuilder,
    rule: &Arc<Rule>,
    params: &Threshold,
    window: RuleWindow,
    history: &[ThresholdEntry],
) -> Result<(Found, Vec<Bucket>), PortError> {
    let mut warnings = Vec::new();
    let groups = all_groups(
        source,
        GroupQuery {
            exclude: history
                .iter()
                .map(|entry| (entry.group.clone(), entry.last))
                .collect(),
            cardinality_field: params.cardinality.as_ref().map(|c| c.field.clone()),
            ..group_query(rule, window, &params.field)
        },
        &mut warnings,
    )
    .await?;
    let mut buckets: Vec<Bucket> = groups
        .into_iter()
        .filter(|group| group.count > 0)
        .map(|group| Bucket {
            key: group.key,
            count: group.count,
            cardinality: group.cardinality,
            first: millis(group.first.unwrap_or(window.start)),
            last: millis(group.last.unwrap_or(window.end)),
        })
        .filter(|bucket| bucket.passes(params))
        .collect();
    buckets.sort_by_key(|bucket| group_text(&bucket.key));
    let index = rule.index.join(",");
    let alerts = buckets
        .iter()
        .map(|bucket| threshold_alert(builder, &index, params, bucket))
        .collect();
    Ok((Found { alerts, warnings }, buckets))
}

/// Drop the entries a window starting at `from` no longer needs: Kibana keeps a group only
/// while its last counted event is after the window's start.
pub fn prune_history(history: &mut Vec<ThresholdEntry>, from: DateTime<Utc>) {
    history.retain(|entry| entry.last > from);
}

/// Remember that `bucket`'s events up to its last one were counted.
pub fn record_history(history: &mut Vec<ThresholdEntry>, bucket: &Bucket) {
    let last = DateTime::from_timestamp_millis(bucket.last).unwrap_or_default();
    match history.iter_mut().find(|entry| entry.group == bucket.key) {
        Some(entry) => entry.last = last,
        None => history.push(ThresholdEntry {
            group: bucket.key.clone(),
            last,
        }),
    }
}

fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// The alerts of an EQL rule's window: one `_eql/search` of `budget` results; an alert per
/// matching event, or per sequence its building blocks and shell alert (Kibana's EQL
/// executor). Every alert of a returned sequence is kept: the search's size is the cap.
pub async fn eql(
    source: &dyn EventSource,
    builder: &AlertBuilder,
    rule: &Arc<Rule>,
    window: RuleWindow,
    budget: u32,
) -> Result<Found, PortError> {
    let reply = source
        .eql(EqlQuery {
            rule: Arc::clone(rule),
            window,
            size: budget.max(1) as usize,
        })
        .await?;
    let mut alerts: Vec<AlertDoc> = reply
        .events
        .iter()
        .map(|hit| builder.build(&AlertEvent::from(hit)))
        .collect();
    for sequence in &reply.sequences {
        let events: Vec<AlertEvent<'_>> = sequence.iter().map(AlertEvent::from).collect();
        alerts.extend(sequence_alerts(builder, &events));
    }
    Ok(Found {
        alerts,
        warnings: reply.warnings,
    })
}

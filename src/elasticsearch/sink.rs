//! The alert sink: which alerts exist already, bulk `create` with per-item outcomes and
//! bounded retries, and the dead-letter index for alerts refused for good.
//!
//! Two destinations ([`AlertsTarget`]), both aliases over indices that roll over:
//! rule-runner's own (see [`rollover`](super::rollover)) and Kibana's alerts alias of a space.
//! Existing ids are looked up with an `ids` query over every index behind the alias (`_mget`
//! cannot read an alias over several indices), which sees every alert a run wrote since
//! writes use `refresh=true`. Writes carry `require_alias=true`, so a missing alias fails
//! instead of becoming a plain index. Dead letters stay in one plain index, read with `_mget`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ::elasticsearch::http::Method;
use async_trait::async_trait;
use chrono::Utc;
use serde_json::{Value, json};

use super::client::{Call, EsClient, is_transient_status, path_segment};
use super::config::Rollover;
use super::error::{EsError, error_reason};
use crate::engine::{AlertDoc, AlertSink, PortError, WriteOutcome};

/// Ids per `_mget` or `ids` query.
const MGET_CHUNK: usize = 1000;
/// Alerts per `_bulk` request: a page of hits is at most 100, a catch-up run a few pages.
const BULK_CHUNK: usize = 500;

/// Where alerts are written and how existing ones are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertsTarget {
    /// rule-runner's own alerts alias, `index`, rolling over as `rollover` says.
    Own { index: String, rollover: Rollover },
    /// Kibana's alerts alias of `space`, `.alerts-security.alerts-<space>`.
    Security { space: String },
}

impl AlertsTarget {
    /// The index or alias bulk writes go to.
    pub fn write_name(&self) -> String {
        match self {
            AlertsTarget::Own { index, .. } => index.clone(),
            AlertsTarget::Security { space } => super::security_alerts_alias(space),
        }
    }
}

/// Writes alerts into the alerts index and refused ones into the dead-letter index.
#[derive(Debug, Clone)]
pub struct EsAlertSink {
    client: EsClient,
    target: AlertsTarget,
    alerts_index: String,
    dead_letter_index: String,
    /// `refresh=true` on bulk writes, as Kibana's scheduled runs do, so an alert is
    /// searchable (and visible in Kibana) as soon as the run reports it.
    refresh: bool,
    /// When the sink last asked for a conditional rollover (engines without ILM).
    rollover_checked: Arc<Mutex<Option<Instant>>>,
}

impl EsAlertSink {
    pub fn new(client: EsClient, alerts_index: &str, dead_letter_index: &str) -> Self {
        Self::to_target(
            client,
            AlertsTarget::Own {
                index: alerts_index.to_string(),
                rollover: Rollover::default(),
            },
            dead_letter_index,
        )
    }

    pub fn to_target(client: EsClient, target: AlertsTarget, dead_letter_index: &str) -> Self {
        EsAlertSink {
            client,
            alerts_index: target.write_name(),
            target,
            dead_letter_index: dead_letter_index.to_string(),
            refresh: true,
            rollover_checked: Arc::default(),
        }
    }

    /// Which of `ids` are alerts in any index behind the target's alias: for Kibana's, of
    /// the space, over every index of the space's pattern.
    async fn found_behind_alias(&self, ids: &[String]) -> Result<HashSet<String>, EsError> {
        let (indices, space) = match &self.target {
            AlertsTarget::Own { index, .. } => (index.clone(), None),
            AlertsTarget::Security { space } => (
                format!("{}*", super::security_alerts_alias(space)),
                Some(space.as_str()),
            ),
        };
        let mut found = HashSet::new();
        for chunk in ids.chunks(MGET_CHUNK) {
            let mut filter = vec![json!({"ids": {"values": chunk}})];
            if let Some(space) = space {
                filter.push(json!({"term": {"kibana.space_ids": space}}));
            }
            let call = Call::new(
                format!("look up existing alerts in `{indices}`"),
                Method::Post,
                format!("/{}/_search", path_segment(&indices)),
            )
            // Kibana's alerts indices are hidden: a wildcard reaches them only when asked.
            .param("expand_wildcards", "open,hidden")
            .param("ignore_unavailable", "true")
            .param("allow_no_indices", "true")
            .json(json!({
                // The same alert can sit in two indices of a rollover: room for both.
                "size": chunk.len() * 2,
                "_source": false,
                "track_total_hits": false,
                "query": {"bool": {"filter": filter}},
            }));
            let body = self.client.send_ok(&call).await?;
            let hits = body
                .pointer("/hits/hits")
                .and_then(Value::as_array)
                .ok_or_else(|| EsError::Response {
                    what: call.what.clone(),
                    message: "no `hits.hits` in the search reply".into(),
                })?;
            found.extend(
                hits.iter()
                    .filter_map(|h| h.get("_id").and_then(Value::as_str))
                    .map(str::to_string),
            );
        }
        Ok(found)
    }

    /// On an engine without ILM, ask for a conditional rollover of rule-runner's own alias,
    /// at most every `check_interval`. A refusal is logged, never a reason to hold alerts back.
    async fn roll_over_if_due(&self) {
        let AlertsTarget::Own { index, rollover } = &self.target else {
            return;
        };
        if !rollover.enabled {
            return;
        }
        match self.client.dialect().await {
            Ok(dialect) if !dialect.has_ilm() => {}
            _ => return,
        }
        {
            let Ok(mut checked) = self.rollover_checked.lock() else {
                return;
            };
            if checked.is_some_and(|at| at.elapsed() < rollover.check_interval) {
                return;
            }
            *checked = Some(Instant::now());
        }
        match super::rollover::roll_over_if_due(&self.client, index, rollover).await {
            Ok(Some(new_index)) => {
                tracing::info!(alias = %index, %new_index, "alerts index rolled over")
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(
                alias = %index,
                "could not roll the alerts index over ({err}); alerts keep going to the current \
                 index. Grant the service `manage` on `{index}*`, or set \
                 `[alerts.rollover] enabled = false` if a policy of your own rolls it over"
            ),
        }
    }

    /// Which of `ids` are documents of `index`, in chunks of [`MGET_CHUNK`].
    async fn found_ids(&self, index: &str, ids: &[String]) -> Result<HashSet<String>, PortError> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(MGET_CHUNK) {
            found.extend(self.found_chunk(index, chunk).await?);
        }
        Ok(found)
    }

    async fn found_chunk(&self, index: &str, ids: &[String]) -> Result<HashSet<String>, EsError> {
        // `_mget` is real-time: it sees documents written a moment ago, before any refresh.
        let call = Call::new(
            format!("look up existing alerts in `{index}`"),
            Method::Post,
            format!("/{}/_mget", path_segment(index)),
        )
        .param("_source", "false")
        .json(json!({ "ids": ids }));
        let body = self.client.send_ok(&call).await?;
        let docs = body
            .get("docs")
            .and_then(Value::as_array)
            .ok_or_else(|| EsError::Response {
                what: call.what.clone(),
                message: "no `docs` array in the `_mget` reply".into(),
            })?;
        let mut found = HashSet::new();
        for doc in docs {
            if let Some(error) = doc.get("error") {
                return Err(EsError::Response {
                    what: call.what.clone(),
                    message: error_reason(&json!({ "error": error })),
                });
            }
            if doc.get("found").and_then(Value::as_bool) == Some(true) {
                if let Some(id) = doc.get("_id").and_then(Value::as_str) {
                    found.insert(id.to_string());
                }
            }
        }
        Ok(found)
    }

    /// Create one chunk, retrying the items (or the whole request) that failed for a
    /// reason that may pass.
    async fn create_chunk(&self, alerts: &[AlertDoc]) -> Result<Vec<WriteOutcome>, EsError> {
        let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; alerts.len()];
        let mut pending: Vec<usize> = (0..alerts.len()).collect();
        let policy = self.client.retry_policy().clone();
        let mut last_reason = String::new();
        for attempt in 0..policy.max_attempts {
            if attempt > 0 {
                let pause = policy.backoff(attempt - 1);
                tracing::debug!(
                    alerts = pending.len(),
                    attempt,
                    ?pause,
                    "retrying alerts Elasticsearch did not take"
                );
                tokio::time::sleep(pause).await;
            }
            let call = self.bulk_call(alerts, &pending);
            let reply = match self.client.send_once(&call).await {
                Ok(reply) if reply.is_success() => reply,
                Ok(reply) if is_transient_status(reply.status) => {
                    last_reason =
                        EsError::from_reply(&call.what, reply.status, &reply.body).to_string();
                    continue;
                }
                Ok(reply) => {
                    return Err(EsError::from_reply(&call.what, reply.status, &reply.body));
                }
                Err(err) if err.is_transient() => {
                    last_reason = err.to_string();
                    continue;
                }
                Err(err) => return Err(err),
            };
            let items = reply
                .body
                .get("items")
                .and_then(Value::as_array)
                .filter(|items| items.len() == pending.len())
                .ok_or_else(|| EsError::Response {
                    what: call.what.clone(),
                    message: format!(
                        "expected {} items in the `_bulk` reply, got {}",
                        pending.len(),
                        reply
                            .body
                            .get("items")
                            .and_then(Value::as_array)
                            .map_or(0, Vec::len)
                    ),
                })?;
            let mut retry = Vec::new();
            for (&slot, item) in pending.iter().zip(items) {
                let result = item.get("create").unwrap_or(item);
                let status = result.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
                let reason = || {
                    let text = error_reason(&json!({ "error": result.get("error") }));
                    format!("{status} {text}")
                };
                match status {
                    200 | 201 => outcomes[slot] = Some(WriteOutcome::Created),
                    409 => outcomes[slot] = Some(WriteOutcome::Duplicate),
                    s if is_transient_status(s) => {
                        last_reason = reason();
                        retry.push(slot);
                    }
                    _ => outcomes[slot] = Some(WriteOutcome::Rejected(reason())),
                }
            }
            pending = retry;
            if pending.is_empty() {
                break;
            }
        }
        for slot in pending {
            outcomes[slot] = Some(WriteOutcome::Failed(format!(
                "still failing after {} attempts: {last_reason}",
                policy.max_attempts
            )));
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| WriteOutcome::Failed("not attempted".into())))
            .collect())
    }

    fn bulk_call(&self, alerts: &[AlertDoc], slots: &[usize]) -> Call {
        let mut body = String::new();
        for &slot in slots {
            let alert = &alerts[slot];
            body.push_str(&json!({ "create": { "_id": alert.id } }).to_string());
            body.push('\n');
            body.push_str(&alert.document.to_string());
            body.push('\n');
        }
        let call = Call::new(
            format!("write {} alerts to `{}`", slots.len(), self.alerts_index),
            Method::Post,
            format!("/{}/_bulk", path_segment(&self.alerts_index)),
        )
        .ndjson(body);
        let call = call.param("require_alias", "true");
        if self.refresh {
            call.param("refresh", "true")
        } else {
            call
        }
    }
}

#[async_trait]
impl AlertSink for EsAlertSink {
    async fn existing_ids(&self, ids: &[String]) -> Result<HashSet<String>, PortError> {
        Ok(self.found_behind_alias(ids).await?)
    }

    /// Dead-letter records are keyed by alert id, so the same lookup tells which
    /// candidates were refused before: overlapping windows then do not refuse them again.
    async fn dead_lettered_ids(&self, ids: &[String]) -> Result<HashSet<String>, PortError> {
        self.found_ids(&self.dead_letter_index, ids).await
    }

    async fn create(&self, alerts: &[AlertDoc]) -> Result<Vec<WriteOutcome>, PortError> {
        self.roll_over_if_due().await;
        let mut outcomes = Vec::with_capacity(alerts.len());
        for chunk in alerts.chunks(BULK_CHUNK) {
            outcomes.extend(self.create_chunk(chunk).await?);
        }
        Ok(outcomes)
    }

    async fn dead_letter(&self, alert: &AlertDoc, reason: &str) -> Result<(), PortError> {
        // Keyed by the alert id: dead-lettering the same alert again replaces the record
        // instead of piling up copies.
        let record = json!({
            "@timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "rule_id": alert.rule_id,
            "alert_id": alert.id,
            "event_time": alert.event_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "reason": reason,
            "document": alert.document,
        });
        let call = Call::new(
            format!(
                "dead-letter alert {} in `{}`",
                alert.id, self.dead_letter_index
            ),
            Method::Put,
            format!(
                "/{}/_doc/{}",
                path_segment(&self.dead_letter_index),
                path_segment(&alert.id)
            ),
        )
        .json(record);
        self.client.send_ok(&call).await?;
        Ok(())
    }
}

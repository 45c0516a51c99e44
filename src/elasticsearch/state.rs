//! Rule state (one document per rule, id = rule id) and the execution log (one document per
//! run) in Elasticsearch, so a restarted or second instance carries on where the last stopped.

use ::elasticsearch::http::Method;
use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::client::{Call, EsClient, path_segment};
use super::error::EsError;
use crate::engine::{PortError, RuleState, StateStore};

#[derive(Debug, Clone)]
pub struct EsStateStore {
    client: EsClient,
    state_index: String,
    executions_index: String,
}

impl EsStateStore {
    pub fn new(client: EsClient, state_index: &str, executions_index: &str) -> Self {
        EsStateStore {
            client,
            state_index: state_index.to_string(),
            executions_index: executions_index.to_string(),
        }
    }

    /// The newest execution record of each rule (for `status`).
    pub async fn last_executions(&self) -> Result<Vec<Value>, EsError> {
        let call = Call::new(
            format!("read the execution log `{}`", self.executions_index),
            Method::Post,
            format!("/{}/_search", path_segment(&self.executions_index)),
        )
        .json(json!({
            "size": 0,
            "aggs": {"rules": {
                "terms": {"field": "rule_id", "size": 10000},
                "aggs": {"last": {"top_hits": {
                    "size": 1,
                    "sort": [{"@timestamp": {"order": "desc", "unmapped_type": "date"}}]
                }}}
            }}
        }));
        let body = self.client.send_ok(&call).await?;
        let buckets = body
            .pointer("/aggregations/rules/buckets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(buckets
            .iter()
            .filter_map(|b| b.pointer("/last/hits/hits/0/_source").cloned())
            .collect())
    }
}

fn parse_state(what: &str, source: &Value) -> Result<RuleState, EsError> {
    serde_json::from_value(source.clone()).map_err(|e| EsError::Response {
        what: what.to_string(),
        message: format!("a stored rule state does not parse ({e}): {source}"),
    })
}

#[async_trait]
impl StateStore for EsStateStore {
    async fn load(&self, rule_id: &str) -> Result<Option<RuleState>, PortError> {
        let call = Call::new(
            format!(
                "read the state of rule {rule_id} from `{}`",
                self.state_index
            ),
            Method::Get,
            format!(
                "/{}/_doc/{}",
                path_segment(&self.state_index),
                path_segment(rule_id)
            ),
        );
        let reply = self.client.send(&call).await?;
        // `found: false` is a rule that never ran; a 404 without it is a missing index.
        if reply.status == 404 && reply.body.get("found") == Some(&Value::Bool(false)) {
            return Ok(None);
        }
        let body = reply.into_ok(&call.what)?;
        Ok(Some(parse_state(
            &call.what,
            body.get("_source").unwrap_or(&Value::Null),
        )?))
    }

    async fn save(&self, state: &RuleState) -> Result<(), PortError> {
        let mut doc =
            serde_json::to_value(state).map_err(|e| PortError::Permanent(e.to_string()))?;
        doc["updated_at"] = Value::String(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true));
        let call = Call::new(
            format!(
                "save the state of rule {} to `{}`",
                state.rule_id, self.state_index
            ),
            Method::Put,
            format!(
                "/{}/_doc/{}",
                path_segment(&self.state_index),
                path_segment(&state.rule_id)
            ),
        )
        .json(doc);
        self.client.send_ok(&call).await?;
        Ok(())
    }

    async fn record_execution(&self, record: &Value) -> Result<(), PortError> {
        let Some(fields) = record.as_object() else {
            return Err(PortError::Permanent(format!(
                "an execution record must be a JSON object, not {record}"
            )));
        };
        let mut doc = fields.clone();
        doc.entry("@timestamp").or_insert_with(|| {
            Value::String(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true))
        });
        // Keyed by the run's uuid when it has one, so a retried write cannot record a run twice.
        let index = path_segment(&self.executions_index);
        let (method, path) = match doc.get("execution_uuid").and_then(Value::as_str) {
            Some(uuid) => (Method::Put, format!("/{index}/_doc/{}", path_segment(uuid))),
            None => (Method::Post, format!("/{index}/_doc")),
        };
        let call = Call::new(
            format!("record a run in `{}`", self.executions_index),
            method,
            path,
        )
        .json(Value::Object(doc));
        self.client.send_ok(&call).await?;
        Ok(())
    }
}

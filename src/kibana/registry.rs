//! Which Kibana rule stands for which rule-runner rule, kept in rule-runner's state index so
//! that every instance's runs write the same `kibana.alert.rule.uuid`: one document per space
//! and rule, id `kibana-rule:<space>:<rule_id>` (the state index maps only what it searches,
//! so these documents sit beside the rule states and leases without a mapping change).

use std::collections::HashMap;

use ::elasticsearch::http::Method;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::elasticsearch::client::path_segment;
use crate::elasticsearch::{Call, EsClient, EsError};

/// The state index's Kibana rule ids.
#[derive(Debug, Clone)]
pub struct KibanaRuleIds {
    client: EsClient,
    index: String,
    space: String,
}

impl KibanaRuleIds {
    pub fn new(client: EsClient, state_index: &str, space: &str) -> Self {
        KibanaRuleIds {
            client,
            index: state_index.to_string(),
            space: space.to_string(),
        }
    }

    fn doc_id(&self, rule_id: &str) -> String {
        format!("kibana-rule:{}:{rule_id}", self.space)
    }

    /// Remember that `rule_id` is Kibana rule `kibana_id` in this space.
    pub async fn save(&self, rule_id: &str, kibana_id: &str) -> Result<(), EsError> {
        let doc = json!({
            "kind": "kibana_rule",
            "rule_id": rule_id,
            "space": self.space,
            "kibana_id": kibana_id,
            "updated_at": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        let call = Call::new(
            format!("remember the Kibana id of rule `{rule_id}`"),
            Method::Put,
            format!(
                "/{}/_doc/{}",
                path_segment(&self.index),
                path_segment(&self.doc_id(rule_id))
            ),
        )
        .param("refresh", "true")
        .json(doc);
        self.client.send_ok(&call).await.map(|_| ())
    }

    /// The Kibana ids of those of `rule_ids` that are registered. A missing state index
    /// means none are.
    pub async fn load(&self, rule_ids: &[String]) -> Result<HashMap<String, Uuid>, EsError> {
        let mut found = HashMap::new();
        for chunk in rule_ids.chunks(1000) {
            let ids: Vec<String> = chunk.iter().map(|r| self.doc_id(r)).collect();
            let call = Call::new(
                "read the Kibana ids of the rules",
                Method::Post,
                format!("/{}/_mget", path_segment(&self.index)),
            )
            .json(json!({ "ids": ids }));
            let reply = self.client.send(&call).await?;
            if reply.status == 404 {
                return Ok(found);
            }
            let body = reply.into_ok(&call.what)?;
            for doc in body["docs"].as_array().into_iter().flatten() {
                let source = &doc["_source"];
                let (Some(rule_id), Some(id)) = (
                    source["rule_id"].as_str(),
                    source["kibana_id"]
                        .as_str()
                        .and_then(|t| Uuid::parse_str(t).ok()),
                ) else {
                    continue;
                };
                if doc["found"] == Value::Bool(true) {
                    found.insert(rule_id.to_string(), id);
                }
            }
        }
        Ok(found)
    }
}

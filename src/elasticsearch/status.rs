//! What `rule-runner status` reads besides rule state: recent alert counts per rule.

use std::collections::HashMap;

use ::elasticsearch::http::Method;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::client::{Call, EsClient, path_segment};
use super::error::EsError;
use super::source::request::timestamp;

/// Alerts created since `since`, per `kibana.alert.rule.rule_id`.
pub async fn alerts_per_rule(
    client: &EsClient,
    alerts_index: &str,
    since: DateTime<Utc>,
) -> Result<HashMap<String, u64>, EsError> {
    let call = Call::new(
        format!("count recent alerts in `{alerts_index}`"),
        Method::Post,
        format!("/{}/_search", path_segment(alerts_index)),
    )
    .json(json!({
        "size": 0,
        "track_total_hits": false,
        "query": {"range": {"@timestamp": {"gte": timestamp(since), "format": "strict_date_optional_time"}}},
        "aggs": {"rules": {"terms": {"field": "kibana.alert.rule.rule_id", "size": 10000}}}
    }));
    let body = client.send_ok(&call).await?;
    let buckets = body
        .pointer("/aggregations/rules/buckets")
        .and_then(Value::as_array)
        .ok_or_else(|| EsError::Response {
            what: call.what.clone(),
            message: "no `aggregations.rules.buckets` in the reply".into(),
        })?;
    Ok(buckets
        .iter()
        .filter_map(|b| {
            Some((
                b.get("key")?.as_str()?.to_string(),
                b.get("doc_count")?.as_u64()?,
            ))
        })
        .collect())
}

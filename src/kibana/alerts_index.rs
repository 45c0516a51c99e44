//! The Security app's alerts index of a space, and the Kibana version alerts record.
//!
//! Kibana creates `.internal.alerts-security.alerts-<space>-000001` behind the alias
//! `.alerts-security.alerts-<space>` (its own mapping, ILM policy and rollover) when the
//! detection engine first needs it; `POST /api/detection_engine/index` asks for that now.
//! rule-runner never creates, maps or templates that index itself: a write never creates it
//! either (`require_alias=true`).

use reqwest::Method;

use super::{ApiCall, Kibana, KibanaError};

/// Ask Kibana to initialise the space's alerts index (idempotent on Kibana's side).
pub async fn initialise(kibana: &Kibana) -> Result<(), KibanaError> {
    let call = ApiCall::new(
        "initialise the Security alerts index",
        Method::POST,
        "api/detection_engine/index",
    )
    .needs("the Security feature's All privilege and the index privilege `manage` on `.alerts-security.alerts-*`");
    let reply = kibana.call(&call).await?;
    if reply.body.get("acknowledged").and_then(|v| v.as_bool()) == Some(false) {
        return Err(KibanaError::UnexpectedResponse(format!(
            "Kibana did not acknowledge creating the alerts index: {}",
            reply.body
        )));
    }
    Ok(())
}

/// Kibana's version (`GET /api/status`), written into `kibana.version` of each alert.
pub async fn version(kibana: &Kibana) -> Result<String, KibanaError> {
    let call = ApiCall::new("read Kibana's status", Method::GET, "api/status")
        .needs("any Kibana privilege");
    let reply = kibana.call(&call).await?;
    reply
        .body
        .pointer("/version/number")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            KibanaError::UnexpectedResponse(format!(
                "Kibana's status has no version.number: {}",
                super::client::short(&reply.body.to_string())
            ))
        })
}

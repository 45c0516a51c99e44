//! rule-runner's own alerts index as a write alias over indices that roll over.
//!
//! The configured alerts name (`rule-runner-alerts`) is an alias; the alerts live in
//! `<alias>-000001`, `<alias>-000002`, … On Elasticsearch an ILM policy of the same name rolls
//! the write index over; on OpenSearch the sink asks for a conditional `_rollover` itself
//! ([`roll_over_if_due`]). Every index stays behind the alias, so a search on it (dedup,
//! `status`, Kibana's data view) sees every alert, old and new.
//!
//! An older rule-runner wrote a plain index under the alias's name. [`migrate`] moves it
//! behind the alias without copying a document: write-block it, clone it to `<alias>-000000`
//! (hard links, not a reindex), check the counts match, then swap in one `_aliases` request
//! that removes the plain index and points the alias at the clone and a new write index.

use ::elasticsearch::http::Method;
use serde_json::{Value, json};

use super::client::{Call, EsClient, path_segment};
use super::config::Rollover;
use super::error::EsError;
use super::templates::{Step, TEMPLATE_VERSION};

/// The first index a fresh setup creates behind `alias`.
pub fn first_index(alias: &str) -> String {
    format!("{alias}-000001")
}

/// Where a plain alerts index of an older rule-runner goes when moved behind `alias`.
pub fn migrated_index(alias: &str) -> String {
    format!("{alias}-000000")
}

/// The indices behind `alias`, as the alerts template's `index_patterns`.
pub fn backing_pattern(alias: &str) -> String {
    format!("{alias}-*")
}

/// What stands under the alerts name in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertsLayout {
    /// The alias, with the index writes go to.
    Alias {
        write_index: String,
    },
    /// A plain index of that name, from a rule-runner before rollover.
    PlainIndex,
    Missing,
}

/// Read the layout with `GET /_alias/<name>` (and `HEAD /<name>` when no alias has it).
pub async fn layout(client: &EsClient, alias: &str) -> Result<AlertsLayout, EsError> {
    let call = Call::new(
        format!("read the alerts alias `{alias}`"),
        Method::Get,
        format!("/_alias/{}", path_segment(alias)),
    );
    let reply = client.send(&call).await?;
    if reply.status == 404 {
        let head = Call::new(
            format!("check index `{alias}`"),
            Method::Head,
            format!("/{}", path_segment(alias)),
        );
        let reply = client.send(&head).await?;
        return match reply.status {
            200 => Ok(AlertsLayout::PlainIndex),
            404 => Ok(AlertsLayout::Missing),
            _ => reply.into_ok(&head.what).map(|_| AlertsLayout::Missing),
        };
    }
    let body = reply.into_ok(&call.what)?;
    let indices = body.as_object().ok_or_else(|| EsError::Response {
        what: call.what.clone(),
        message: "the reply is not an object of indices".into(),
    })?;
    let flag = |entry: &Value| {
        entry
            .pointer(&format!(
                "/aliases/{}/is_write_index",
                pointer_escape(alias)
            ))
            .and_then(Value::as_bool)
    };
    // An alias over one index writes to it unless told otherwise.
    let write_index = match indices.len() {
        1 => indices
            .iter()
            .find(|(_, entry)| flag(entry) != Some(false))
            .map(|(name, _)| name.clone()),
        _ => indices
            .iter()
            .find(|(_, entry)| flag(entry) == Some(true))
            .map(|(name, _)| name.clone()),
    };
    write_index
        .map(|write_index| AlertsLayout::Alias { write_index })
        .ok_or_else(|| EsError::NotSetUp {
            problems: format!(
                "the alerts alias `{alias}` points at {} but none of them is its write index; \
                 mark the newest one with `is_write_index: true` (POST /_aliases)",
                indices.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Create the first index with the alias pointing at it for writes.
pub async fn create_first(client: &EsClient, alias: &str) -> Result<Step, EsError> {
    let index = first_index(alias);
    let call = Call::new(
        format!("create the alerts index `{index}` behind `{alias}`"),
        Method::Put,
        format!("/{}", path_segment(&index)),
    )
    .json(json!({ "aliases": { alias: { "is_write_index": true } } }));
    let reply = client.send(&call).await?;
    if already_exists(reply.status, &reply.body) {
        // Another instance ran `setup` at the same moment.
        return Ok(Step::Unchanged);
    }
    reply.into_ok(&call.what)?;
    Ok(Step::Created)
}

/// Whether a create request failed only because the index is there already.
pub(super) fn already_exists(status: u16, body: &Value) -> bool {
    status == 400
        && body
            .pointer("/error/type")
            .and_then(Value::as_str)
            .is_some_and(|t| t == "resource_already_exists_exception")
}

/// The ILM policy's body for rollover `conditions`, marked as rule-runner's.
pub fn policy_body(conditions: Value) -> Value {
    json!({ "policy": {
        "_meta": { "managed_by": "rule-runner", "version": TEMPLATE_VERSION },
        "phases": { "hot": { "min_age": "0ms", "actions": { "rollover": conditions } } }
    }})
}

/// Install or update the ILM policy `name` (Elasticsearch only). A policy of that name that
/// rule-runner did not write is left alone and reported.
pub async fn ensure_policy(
    client: &EsClient,
    name: &str,
    rollover: &Rollover,
) -> Result<Step, EsError> {
    let conditions = client.dialect().await?.rollover_conditions(rollover);
    let call = Call::new(
        format!("read the lifecycle policy `{name}`"),
        Method::Get,
        format!("/_ilm/policy/{}", path_segment(name)),
    );
    let reply = client.send(&call).await?;
    let step = if reply.status == 404 {
        Step::Created
    } else {
        let body = reply.into_ok(&call.what)?;
        let policy = body
            .get(name)
            .and_then(|p| p.get("policy"))
            .ok_or_else(|| EsError::Response {
                what: call.what.clone(),
                message: format!("no `{name}.policy` in the reply"),
            })?;
        if policy.pointer("/_meta/managed_by") != Some(&json!("rule-runner")) {
            return Err(EsError::Response {
                what: format!("install the lifecycle policy `{name}`"),
                message: format!(
                    "an ILM policy `{name}` exists that rule-runner did not write; rule-runner \
                     leaves it alone. Delete it, or keep it and set `[alerts.rollover] enabled = \
                     false` (then point `{name}-*` at it yourself)"
                ),
            });
        }
        if policy.pointer("/phases/hot/actions/rollover") == Some(&conditions)
            && policy.pointer("/_meta/version") == Some(&json!(TEMPLATE_VERSION))
        {
            return Ok(Step::Unchanged);
        }
        Step::Updated {
            from: policy
                .pointer("/_meta/version")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        }
    };
    let put = Call::new(
        format!("install the lifecycle policy `{name}`"),
        Method::Put,
        format!("/_ilm/policy/{}", path_segment(name)),
    )
    .json(policy_body(conditions));
    client.send_ok(&put).await?;
    Ok(step)
}

/// The settings that tie an index to the ILM policy of `alias` (Elasticsearch only).
pub fn lifecycle_settings(alias: &str) -> Value {
    json!({ "name": alias, "rollover_alias": alias })
}

/// Point the current write index at the lifecycle policy (templates only shape new indices).
pub async fn attach_policy(
    client: &EsClient,
    write_index: &str,
    alias: &str,
) -> Result<(), EsError> {
    let call = Call::new(
        format!("attach the lifecycle policy `{alias}` to `{write_index}`"),
        Method::Put,
        format!("/{}/_settings", path_segment(write_index)),
    )
    .json(json!({ "index": { "lifecycle": lifecycle_settings(alias) } }));
    client.send_ok(&call).await.map(drop)
}

/// Roll the alias over if one of `rollover`'s conditions holds; the new index when it did.
pub async fn roll_over_if_due(
    client: &EsClient,
    alias: &str,
    rollover: &Rollover,
) -> Result<Option<String>, EsError> {
    let conditions = client.dialect().await?.rollover_conditions(rollover);
    let call = Call::new(
        format!("roll the alerts alias `{alias}` over if due"),
        Method::Post,
        format!("/{}/_rollover", path_segment(alias)),
    )
    .json(json!({ "conditions": conditions }));
    let body = client.send_ok(&call).await?;
    let rolled = body.get("rolled_over").and_then(Value::as_bool) == Some(true);
    Ok(rolled.then(|| {
        body.get("new_index")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }))
}

/// Move a plain alerts index `alias` behind an alias of that name; the number of alerts kept.
/// Safe to run again after an interruption: each step checks what is already done.
pub async fn migrate(client: &EsClient, alias: &str) -> Result<u64, EsError> {
    let kept = migrated_index(alias);
    let write = first_index(alias);
    let send = |what: String, method: Method, path: String, body: Option<Value>| {
        let call = Call::new(what, method, path);
        match body {
            Some(body) => call.json(body),
            None => call,
        }
    };
    // A clone needs a source nothing writes to; alerts arriving meanwhile are refused with a
    // block error and retried by the next run (the ids are deterministic).
    client
        .send_ok(&send(
            format!("stop writes to `{alias}` to move it behind an alias"),
            Method::Put,
            format!("/{}/_settings", path_segment(alias)),
            Some(json!({ "index": { "blocks": { "write": true } } })),
        ))
        .await?;
    let documents = count(client, alias).await?;
    let clone = send(
        format!("clone `{alias}` to `{kept}`"),
        Method::Post,
        format!("/{}/_clone/{}", path_segment(alias), path_segment(&kept)),
        Some(json!({ "settings": { "index.blocks.write": null } })),
    )
    .param("wait_for_active_shards", "1");
    let reply = client.send(&clone).await?;
    if !already_exists(reply.status, &reply.body) {
        reply.into_ok(&clone.what)?;
    }
    let cloned = count(client, &kept).await?;
    if cloned != documents {
        return Err(EsError::Response {
            what: format!("move `{alias}` behind an alias"),
            message: format!(
                "`{kept}` holds {cloned} alerts where `{alias}` holds {documents}; nothing was \
                 removed, and `{alias}` stays closed to writes until the move completes. Delete \
                 `{kept}` and run `rule-runner setup` again"
            ),
        });
    }
    let reply = client
        .send(&send(
            format!("create the alerts index `{write}`"),
            Method::Put,
            format!("/{}", path_segment(&write)),
            None,
        ))
        .await?;
    if !already_exists(reply.status, &reply.body) {
        reply.into_ok(&format!("create the alerts index `{write}`"))?;
    }
    client
        .send_ok(&send(
            format!("put the alias `{alias}` in place of the index"),
            Method::Post,
            "/_aliases".into(),
            Some(json!({ "actions": [
                { "add": { "index": kept, "alias": alias, "is_write_index": false } },
                { "add": { "index": write, "alias": alias, "is_write_index": true } },
                { "remove_index": { "index": alias } },
            ]})),
        ))
        .await?;
    Ok(documents)
}

async fn count(client: &EsClient, index: &str) -> Result<u64, EsError> {
    let refresh = Call::new(
        format!("refresh `{index}`"),
        Method::Post,
        format!("/{}/_refresh", path_segment(index)),
    );
    client.send_ok(&refresh).await?;
    let call = Call::new(
        format!("count the alerts in `{index}`"),
        Method::Get,
        format!("/{}/_count", path_segment(index)),
    );
    let body = client.send_ok(&call).await?;
    body.get("count")
        .and_then(Value::as_u64)
        .ok_or_else(|| EsError::Response {
            what: call.what.clone(),
            message: "no `count` in the reply".into(),
        })
}

//! One Kibana detection rule per rule-runner rule, so that the Security app's alert flyout,
//! rule details page, rule links and "Add rule exception" have a rule to point at.
//!
//! Each rule is registered **disabled** (rule-runner runs it; Kibana running it too would
//! alert twice), tagged `rule-runner`, its description saying who executes it, and marked in
//! `meta.rule_runner` with a fingerprint of what was sent. That mark is what makes the
//! registration idempotent (same fingerprint and still disabled: nothing is sent) and safe
//! (a rule of the same `rule_id` without the mark belongs to someone else: it is reported and
//! never overwritten). Updates are full replacements (`PUT`), carrying over the exception
//! lists an analyst attached in Kibana.

use reqwest::Method;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{ApiCall, Kibana, KibanaError};
use crate::rule::Rule;

/// The tag every registered rule carries.
pub const TAG: &str = "rule-runner";

const RULES_PATH: &str = "api/detection_engine/rules";

/// Rule parameters kept in `extra` that Kibana's rule API takes as they are.
const KIBANA_PARAMS: &[&str] = &[
    "new_terms_fields",
    "history_window_start",
    "threshold",
    "event_category_override",
    "tiebreaker_field",
    "timestamp_field",
    "risk_score_mapping",
    "severity_mapping",
    "rule_name_override",
    "setup",
    "related_integrations",
    "required_fields",
    "investigation_fields",
    "data_view_id",
    "namespace",
];

/// What registering one rule did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    Created(Uuid),
    Updated(Uuid),
    Unchanged(Uuid),
    /// A rule of this `rule_id` exists that rule-runner did not create; left alone.
    Foreign {
        id: String,
        enabled: bool,
    },
}

impl Registration {
    /// The Kibana rule rule-runner's alerts link to, when it is rule-runner's.
    pub fn kibana_id(&self) -> Option<Uuid> {
        match self {
            Registration::Created(id) | Registration::Updated(id) | Registration::Unchanged(id) => {
                Some(*id)
            }
            Registration::Foreign { .. } => None,
        }
    }
}

/// The Kibana rule body for `rule`, and the fingerprint of it kept in `meta.rule_runner`.
pub fn kibana_rule(rule: &Rule) -> (Value, String) {
    let mut body = Map::new();
    let mut put = |key: &str, value: Value| {
        body.insert(key.to_string(), value);
    };
    put("rule_id", json!(rule.rule_id));
    put("name", json!(rule.name));
    let what = if rule.description.trim().is_empty() {
        String::new()
    } else {
        format!("{}\n\n", rule.description.trim_end())
    };
    put(
        "description",
        json!(format!(
            "{what}Executed by rule-runner, not by Kibana: registered here, disabled, so that its alerts in Security > Alerts link to a rule. Change it in rule-runner's rule files; `rule-runner setup` overwrites edits made here (exceptions are kept)."
        )),
    );
    put("type", json!(rule.rule_type));
    if let Some(language) = &rule.language {
        put("language", json!(language));
    }
    if let Some(query) = &rule.query {
        put("query", json!(query));
    }
    if !rule.index.is_empty() {
        put("index", json!(rule.index));
    }
    put("filters", json!(rule.filters));
    put("severity", json!(rule.severity.as_str()));
    put("risk_score", json!(rule.risk_score));
    put(
        "threat",
        serde_json::to_value(&rule.threat).unwrap_or(json!([])),
    );
    put("references", json!(rule.references));
    put("author", json!(rule.author));
    put("false_positives", json!(rule.false_positives));
    if let Some(note) = &rule.note {
        put("note", json!(note));
    }
    if let Some(license) = &rule.license {
        put("license", json!(license));
    }
    put("interval", json!(rule.interval));
    put("from", json!(rule.from));
    put("to", json!(rule.to));
    put("max_signals", json!(rule.max_signals));
    put("version", json!(rule.version));
    if let Some(field) = &rule.timestamp_override {
        put("timestamp_override", json!(field));
        put(
            "timestamp_override_fallback_disabled",
            json!(rule.timestamp_override_fallback_disabled),
        );
    }
    if let Some(kind) = &rule.building_block_type {
        put("building_block_type", json!(kind));
    }
    let mut tags = rule.tags.clone();
    if !tags.iter().any(|t| t == TAG) {
        tags.push(TAG.to_string());
    }
    put("tags", json!(tags));
    for key in KIBANA_PARAMS {
        if let Some(value) = rule.extra.get(*key) {
            put(key, value.clone());
        }
    }
    put("enabled", json!(false));
    let fingerprint = format!(
        "{:x}",
        Sha256::digest(Value::Object(body.clone()).to_string())
    );
    body.insert(
        "meta".into(),
        json!({ "rule_runner": { "managed": true, "fingerprint": fingerprint } }),
    );
    (Value::Object(body), fingerprint)
}

/// Create `rule` in Kibana, or bring rule-runner's earlier registration of it up to date.
pub async fn register(kibana: &Kibana, rule: &Rule) -> Result<Registration, KibanaError> {
    let (mut body, fingerprint) = kibana_rule(rule);
    let existing = read(kibana, &rule.rule_id).await?;
    let Some(existing) = existing else {
        let create = ApiCall::new(
            format!("create rule `{}`", rule.rule_id),
            Method::POST,
            RULES_PATH,
        )
        .json(body)
        .accept(&[409]);
        let reply = kibana.call(&create).await?;
        if reply.status == 409 {
            // Created between the lookup and now (another `setup`): decide on what is there.
            return match read(kibana, &rule.rule_id).await? {
                Some(existing) => decide_existing(&existing, &fingerprint)
                    .map(Ok)
                    .unwrap_or_else(|| {
                        Err(KibanaError::UnexpectedResponse(format!(
                            "rule `{}` was created meanwhile by another `setup`; run `setup` again",
                            rule.rule_id
                        )))
                    }),
                None => Err(KibanaError::UnexpectedResponse(format!(
                    "Kibana said rule `{}` exists (409) but does not return it",
                    rule.rule_id
                ))),
            };
        }
        return rule_id_of(&reply.body, &rule.rule_id).map(Registration::Created);
    };
    if let Some(decided) = decide_existing(&existing, &fingerprint) {
        return Ok(decided);
    }
    if let Some(lists) = existing.get("exceptions_list").filter(|l| l.is_array()) {
        body["exceptions_list"] = lists.clone();
    }
    let update = ApiCall::new(
        format!("update rule `{}`", rule.rule_id),
        Method::PUT,
        RULES_PATH,
    )
    .json(body);
    let reply = kibana.call(&update).await?;
    rule_id_of(&reply.body, &rule.rule_id).map(Registration::Updated)
}

/// What to do with an existing rule without sending anything: `Foreign` when it is not
/// rule-runner's, `Unchanged` when it is and matches; `None` when it needs an update.
fn decide_existing(existing: &Value, fingerprint: &str) -> Option<Registration> {
    let id = existing["id"].as_str().unwrap_or_default().to_string();
    let mark = existing.pointer("/meta/rule_runner");
    let ours = mark.and_then(|m| m["managed"].as_bool()) == Some(true);
    let enabled = existing["enabled"].as_bool().unwrap_or(false);
    if !ours {
        return Some(Registration::Foreign { id, enabled });
    }
    let same = mark.and_then(|m| m["fingerprint"].as_str()) == Some(fingerprint);
    match Uuid::parse_str(&id) {
        Ok(uuid) if same && !enabled => Some(Registration::Unchanged(uuid)),
        _ => None,
    }
}

/// The rule of `rule_id` in the space, if any.
pub async fn read(kibana: &Kibana, rule_id: &str) -> Result<Option<Value>, KibanaError> {
    let call = ApiCall::new(format!("look up rule `{rule_id}`"), Method::GET, RULES_PATH)
        .param("rule_id", rule_id)
        .accept(&[404])
        .needs("the Security feature's Read privilege");
    let reply = kibana.call(&call).await?;
    Ok((reply.status != 404).then_some(reply.body))
}

fn rule_id_of(body: &Value, rule_id: &str) -> Result<Uuid, KibanaError> {
    body["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| {
            KibanaError::UnexpectedResponse(format!(
                "Kibana's answer for rule `{rule_id}` has no rule id: {}",
                super::client::short(&body.to_string())
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule {
            rule_id: "r1".into(),
            name: "Lambda made public".into(),
            description: "A function policy grants everyone.".into(),
            query: Some("event.action:AddPermission*".into()),
            index: vec!["logs-aws.cloudtrail-*".into()],
            tags: vec!["Domain: Cloud".into()],
            cron: Some("0 */10 * * * *".into()),
            ..Rule::default()
        }
    }

    #[test]
    fn the_body_is_disabled_tagged_and_marked() {
        let (body, fingerprint) = kibana_rule(&rule());
        assert_eq!(body["enabled"], false);
        assert_eq!(body["tags"], json!(["Domain: Cloud", "rule-runner"]));
        assert_eq!(body["meta"]["rule_runner"]["fingerprint"], fingerprint);
        assert!(
            body["description"]
                .as_str()
                .unwrap()
                .starts_with("A function policy grants everyone.\n\nExecuted by rule-runner")
        );
        // rule-runner's own extension stays out of Kibana's API.
        assert!(body.get("cron").is_none());
    }

    #[test]
    fn the_fingerprint_follows_the_rule() {
        let (_, a) = kibana_rule(&rule());
        let (_, same) = kibana_rule(&rule());
        let mut changed = rule();
        changed.risk_score = 73;
        let (_, b) = kibana_rule(&changed);
        assert_eq!(a, same);
        assert_ne!(a, b);
    }

    #[test]
    fn an_unmarked_rule_is_someone_elses() {
        let id = "4a7f3b2e-0000-4000-8000-000000000001";
        let theirs = json!({"id": id, "enabled": true, "meta": {"from": "1m"}});
        assert_eq!(
            decide_existing(&theirs, "x"),
            Some(Registration::Foreign {
                id: id.into(),
                enabled: true
            })
        );
        let ours = json!({"id": id, "enabled": false, "meta": {"rule_runner": {"managed": true, "fingerprint": "x"}}});
        assert_eq!(
            decide_existing(&ours, "x"),
            Some(Registration::Unchanged(Uuid::parse_str(id).unwrap()))
        );
        assert_eq!(decide_existing(&ours, "y"), None);
        let enabled = json!({"id": id, "enabled": true, "meta": {"rule_runner": {"managed": true, "fingerprint": "x"}}});
        assert_eq!(decide_existing(&enabled, "x"), None);
    }
}

//! The index template `load` installs for its target when the cluster has none: CloudTrail
//! field types as Elastic's AWS integration or Filebeat maps them (`mappings/cloudtrail/`).

use ::elasticsearch::http::Method;
use serde_json::Value;

use crate::cloudtrail::Flavor;
use crate::elasticsearch::client::path_segment;
use crate::elasticsearch::{Call, EsClient, EsError};

const INTEGRATION: &str = include_str!("../../../mappings/cloudtrail/integration.json");
const FILEBEAT: &str = include_str!("../../../mappings/cloudtrail/filebeat.json");

/// Elasticsearch's own catch-all templates (`logs`, `metrics`, ...) are marked managed and
/// have priority 100; they do not count as a CloudTrail template for the target.
const BUILT_IN_PRIORITY: i64 = 100;

/// What `load` did about the target's template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateOutcome {
    /// A template for the target existed already (the integration's, Filebeat's, or ours).
    Existing(String),
    Installed(String),
    /// `--no-template`.
    Skipped,
}

/// Our template for `index`, named after it.
pub fn template_for(flavor: Flavor, index: &str) -> (String, Value) {
    let text = match flavor {
        Flavor::Integration => INTEGRATION,
        Flavor::Filebeat => FILEBEAT,
    };
    // The files are compiled in and parsed by the tests: a failure here is a build defect.
    let mut body: Value = serde_json::from_str(text).expect("mappings/cloudtrail files are JSON");
    body["index_patterns"] = Value::from(vec![index.to_string()]);
    (format!("rule-runner-load-{index}"), body)
}

/// `*` wildcard matching, the only wildcard index patterns have. Written here because the
/// glob crates match paths (`/` and `**` semantics), not index names.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// The name of an installed template (from `GET _index_template`) that would shape `index`,
/// other than Elasticsearch's built-in catch-alls.
pub fn existing_template(templates: &Value, index: &str) -> Option<String> {
    templates["index_templates"]
        .as_array()?
        .iter()
        .filter(|t| {
            let body = &t["index_template"];
            let built_in = body["_meta"]["managed"] == Value::Bool(true)
                && body["priority"].as_i64().unwrap_or(0) <= BUILT_IN_PRIORITY;
            !built_in
                && body["index_patterns"].as_array().is_some_and(|ps| {
                    ps.iter()
                        .filter_map(Value::as_str)
                        .any(|p| pattern_matches(p, index))
                })
        })
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .next()
}

/// Install our template for `index` unless one exists.
pub async fn ensure(
    client: &EsClient,
    flavor: Flavor,
    index: &str,
) -> Result<TemplateOutcome, EsError> {
    let templates = client
        .send_ok(&Call::new(
            "list index templates",
            Method::Get,
            "/_index_template",
        ))
        .await?;
    if let Some(name) = existing_template(&templates, index) {
        return Ok(TemplateOutcome::Existing(name));
    }
    let (name, body) = template_for(flavor, index);
    let body = client.dialect().await?.index_template(body);
    client
        .send_ok(
            &Call::new(
                format!("install index template `{name}`"),
                Method::Put,
                format!("/_index_template/{}", path_segment(&name)),
            )
            .json(body),
        )
        .await?;
    Ok(TemplateOutcome::Installed(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards() {
        assert!(pattern_matches("logs-*-*", "logs-aws.cloudtrail-default"));
        assert!(pattern_matches(
            "logs-aws.cloudtrail-*",
            "logs-aws.cloudtrail-default"
        ));
        assert!(pattern_matches("filebeat-*", "filebeat-8.17.0"));
        assert!(pattern_matches("*", "x"));
        assert!(pattern_matches("exact", "exact"));
        assert!(!pattern_matches("logs-*-*", "logs-nodash"));
        assert!(!pattern_matches(
            "filebeat-*",
            "logs-aws.cloudtrail-default"
        ));
        assert!(!pattern_matches("a*b*c", "acb"));
    }

    #[test]
    fn built_in_catch_alls_do_not_count_but_fleet_templates_do() {
        let builtin = json!({"name": "logs", "index_template": {"index_patterns": ["logs-*-*"], "priority": 100,
            "_meta": {"managed": true, "description": "default logs template installed by x-pack"}}});
        let fleet = json!({"name": "logs-aws.cloudtrail", "index_template": {"index_patterns": ["logs-aws.cloudtrail-*"],
            "priority": 200, "_meta": {"managed": true, "managed_by": "fleet", "package": {"name": "aws"}}}});
        let only_builtin = json!({"index_templates": [builtin.clone()]});
        assert_eq!(
            existing_template(&only_builtin, "logs-aws.cloudtrail-default"),
            None
        );
        let both = json!({"index_templates": [builtin, fleet]});
        assert_eq!(
            existing_template(&both, "logs-aws.cloudtrail-default").as_deref(),
            Some("logs-aws.cloudtrail")
        );
        assert_eq!(existing_template(&both, "filebeat-x"), None);
    }

    #[test]
    fn shipped_templates_follow_the_integration_and_filebeat() {
        let (name, integration) = template_for(Flavor::Integration, "logs-aws.cloudtrail-default");
        assert_eq!(name, "rule-runner-load-logs-aws.cloudtrail-default");
        assert_eq!(
            integration["index_patterns"],
            json!(["logs-aws.cloudtrail-default"])
        );
        let p = &integration["template"]["mappings"]["properties"];
        let ct = &p["aws"]["properties"]["cloudtrail"]["properties"];
        assert_eq!(ct["request_parameters"]["ignore_above"], 8191);
        assert_eq!(ct["request_parameters"]["fields"]["text"]["type"], "text");
        assert_eq!(ct["additional_eventdata"]["ignore_above"], 1024);
        assert_eq!(
            ct["flattened"]["properties"]["request_parameters"]["type"],
            "flattened"
        );
        assert_eq!(
            p["event"]["properties"]["dataset"],
            json!({"type": "constant_keyword", "value": "aws.cloudtrail"})
        );
        assert_eq!(p["source"]["properties"]["ip"]["type"], "ip");
        assert_eq!(
            p["data_stream"]["properties"]["dataset"]["value"],
            "aws.cloudtrail"
        );

        let (_, filebeat) = template_for(Flavor::Filebeat, "filebeat-8.17.0");
        let p = &filebeat["template"]["mappings"]["properties"];
        let ct = &p["aws"]["properties"]["cloudtrail"]["properties"];
        assert_eq!(ct["request_parameters"]["ignore_above"], 1024);
        assert_eq!(p["event"]["properties"]["dataset"]["type"], "keyword");
        assert!(p.get("data_stream").is_none());
    }
}

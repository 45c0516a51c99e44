//! The pipeline's processors that derive fields from others: grok's IP test, the resource
//! list, the console-login details, the categorisation script and the TLS dissection.

use serde_json::{Map, Value};

use super::doc::Doc;
use super::javamap;
use super::node::Node;

/// Grok's `IP` pattern: an IPv6 literal (optionally with a `%zone`) or an IPv4 literal whose
/// octets may carry leading zeros (`035.1.2.3`), which Rust's parser refuses.
pub(super) fn grok_ip(text: &str) -> bool {
    let v6 = text.split_once('%').map_or(text, |(addr, _)| addr);
    if text.parse::<std::net::IpAddr>().is_ok() || v6.parse::<std::net::Ipv6Addr>().is_ok() {
        return true;
    }
    let octets: Vec<&str> = text.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            (1..=3).contains(&o.len())
                && o.bytes().all(|b| b.is_ascii_digit())
                && o.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// `resources`: `ARN` → `arn`, `accountId` → `account_id`, de-duplicated on
/// `arn_account_type` through a `HashMap`, whose iteration order the result keeps.
pub(super) fn unique_resources(resources: &[Node]) -> Value {
    let mut keys: Vec<String> = Vec::new();
    let mut values: Vec<Map<String, Value>> = Vec::new();
    for resource in resources {
        let Node::Map(obj) = resource else { continue };
        let mut renamed = Map::new();
        for (k, v) in obj.live() {
            let k = match k {
                "ARN" => "arn",
                "accountId" => "account_id",
                other => other,
            };
            renamed.insert(k.to_string(), v.to_json());
        }
        let part = |k: &str| match renamed.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let key = format!("{}_{}_{}", part("arn"), part("account_id"), part("type"));
        match keys.iter().position(|k| *k == key) {
            Some(i) => values[i] = renamed,
            None => {
                keys.push(key);
                values.push(renamed);
            }
        }
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    Value::Array(
        javamap::iteration_order(&refs)
            .into_iter()
            .map(|i| Value::Object(values[i].clone()))
            .collect(),
    )
}

pub(super) fn console_login(doc: &mut Doc, extra: Option<&Node>) {
    let field = |k: &str| extra.and_then(|n| n.get(k));
    let mut aed = Map::new();
    if let Some(v) = field("MobileVersion") {
        aed.insert(
            "mobile_version".into(),
            Value::Bool(v.as_str() != Some("No")),
        );
    }
    if let Some(v) = field("LoginTo") {
        aed.insert("login_to".into(), v.to_json());
    }
    if let Some(v) = field("MFAUsed") {
        aed.insert("mfa_used".into(), Value::Bool(v.as_str() != Some("No")));
    }
    if !aed.is_empty() {
        doc.set(
            "aws.cloudtrail.console_login.additional_eventdata",
            Value::Object(aed),
        );
    }
}

/// The categorisation script: kind, type, outcome, then the per-eventName overrides.
pub(super) fn categorize(
    doc: &mut Doc,
    integration: bool,
    failed: bool,
    action: Option<String>,
    console_login: Option<&Node>,
) {
    doc.set("event.kind", Value::String("event".into()));
    let info = if integration {
        serde_json::json!(["info"])
    } else {
        Value::String("info".into())
    };
    doc.set("event.type", info);
    let outcome = if failed { "failure" } else { "success" };
    doc.set("event.outcome", Value::String(outcome.into()));
    let Some(action) = action else {
        return;
    };
    if action == "ConsoleLogin"
        && let Some(Node::Str(result)) = console_login
    {
        doc.set("event.outcome", Value::String(result.to_lowercase()));
    }
    if let Some((category, types)) = super::categories::lookup(&action) {
        doc.set("event.category", serde_json::json!([category]));
        doc.set("event.type", serde_json::json!(types));
    }
}

/// `tlsVersion` dissected as `<protocol>v<version>`, the protocol lower-cased.
pub(super) fn tls(doc: &mut Doc, details: Option<&Node>) {
    let field = |k: &str| details.and_then(|n| n.get(k));
    if let Some((protocol, version)) = field("tlsVersion")
        .and_then(Node::as_str)
        .and_then(|v| v.split_once('v'))
    {
        doc.set(
            "tls.version_protocol",
            Value::String(protocol.to_lowercase()),
        );
        doc.set("tls.version", Value::String(version.to_string()));
    }
    if let Some(cipher) = field("cipherSuite") {
        doc.set("tls.cipher", cipher.to_json());
    }
    if let Some(host) = field("clientProvidedHostHeader") {
        doc.set("tls.client.server_name", host.to_json());
    }
}

//! What can go wrong talking to Elasticsearch, in words that say what to do about it.

use serde_json::Value;

use super::config::ConfigError;
use crate::engine::PortError;

#[derive(Debug, thiserror::Error)]
pub enum EsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The client could not be built (CA certificate, TLS setup).
    #[error("{0}")]
    Build(String),
    #[error(
        "cannot reach Elasticsearch at {urls} ({detail}); is it running? Set the address with \
         --url, ELASTICSEARCH_URL or `urls` in rule-runner.toml"
    )]
    Unreachable { urls: String, detail: String },
    #[error(
        "{what}: Elasticsearch did not answer in time ({detail}); raise `request_timeout` if the cluster is slow"
    )]
    Timeout { what: String, detail: String },
    #[error(
        "{what}: Elasticsearch rejected the credentials (401 Unauthorized{reason}); set \
         ELASTICSEARCH_API_KEY, or ELASTICSEARCH_USERNAME and ELASTICSEARCH_PASSWORD (or the \
         same keys in rule-runner.toml)"
    )]
    Unauthorized { what: String, reason: String },
    #[error(
        "{what}: permission denied (403 Forbidden): {reason}; grant the user or API key the privileges of its role in docker/roles/ (rule_runner.json, or rule_runner_security.json for the Security destination; rule_runner_setup.json for setup), listed in docs/docker.md"
    )]
    Forbidden { what: String, reason: String },
    #[error("{what}: Elasticsearch answered {status}: {reason}")]
    Status {
        what: String,
        status: u16,
        reason: String,
    },
    #[error(
        "Elasticsearch is not set up for rule-runner: {problems}. Run `rule-runner setup` \
         (with the same --config/--url) to install the index templates and indices"
    )]
    NotSetUp { problems: String },
    #[error(
        "Kibana's alerts alias `{alias}` does not exist, so the alerts of space `{space}` have \
         nowhere to go (rule-runner never creates it, and its writes use require_alias=true so \
         that nothing else does). Run `rule-runner setup` with the Kibana URL set ([kibana] url, \
         KIBANA_URL or --kibana-url): it asks Kibana to initialise the space's alerts index. Or \
         open Security > Alerts in that Kibana space once, then run again"
    )]
    NoSecurityAlias { alias: String, space: String },
    /// The reply was not what the API promises.
    #[error("{what}: unexpected reply from Elasticsearch: {message}")]
    Response { what: String, message: String },
}

impl EsError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            EsError::Unreachable { .. } | EsError::Timeout { .. } => true,
            EsError::Status { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }

    /// Whether the cluster refused a query for its number of clauses
    /// (`indices.query.bool.max_clause_count`): Elasticsearch's `too_many_nested_clauses`
    /// ("Query contains too many nested clauses"), Lucene's `too_many_clauses`
    /// ("maxClauseCount is set to ...") on both engines.
    pub fn is_too_many_clauses(&self) -> bool {
        match self {
            EsError::Status {
                status: 400,
                reason,
                ..
            } => [
                "too_many_nested_clauses",
                "too_many_clauses",
                "too many nested clauses",
                "maxClauseCount",
            ]
            .iter()
            .any(|marker| reason.contains(marker)),
            _ => false,
        }
    }

    /// The HTTP status Elasticsearch answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            EsError::Unauthorized { .. } => Some(401),
            EsError::Forbidden { .. } => Some(403),
            EsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn from_reply(what: &str, status: u16, body: &Value) -> Self {
        let reason = error_reason(body);
        let what = what.to_string();
        match status {
            401 => EsError::Unauthorized {
                what,
                reason: if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                },
            },
            403 => EsError::Forbidden { what, reason },
            _ => EsError::Status {
                what,
                status,
                reason: if reason.is_empty() {
                    "no reason given".into()
                } else {
                    reason
                },
            },
        }
    }

    pub(crate) fn from_transport(what: &str, urls: &str, err: &::elasticsearch::Error) -> Self {
        let detail = error_chain(err);
        if err.is_timeout() {
            EsError::Timeout {
                what: what.to_string(),
                detail,
            }
        } else {
            EsError::Unreachable {
                urls: urls.to_string(),
                detail,
            }
        }
    }
}

impl From<EsError> for PortError {
    fn from(err: EsError) -> Self {
        if err.is_transient() {
            PortError::Transient(err.to_string())
        } else if err.is_too_many_clauses() {
            PortError::TooManyClauses(err.to_string())
        } else {
            PortError::Permanent(err.to_string())
        }
    }
}

/// `type: reason` from an Elasticsearch error body (`{"error": {"type", "reason", ...}}`),
/// with its cause (`caused_by`, else the first root cause) when that says more, or the raw
/// text of a non-JSON body.
pub fn error_reason(body: &Value) -> String {
    match body {
        Value::Object(map) => match map.get("error") {
            Some(Value::Object(error)) => {
                let ty = error.get("type").and_then(Value::as_str).unwrap_or("");
                let reason = error.get("reason").and_then(Value::as_str).unwrap_or("");
                let root_cause = || {
                    let first = error.get("root_cause")?.get(0)?;
                    let ty = first.get("type").and_then(Value::as_str).unwrap_or("");
                    let reason = first.get("reason").and_then(Value::as_str)?;
                    Some(format!("{ty}: {reason}"))
                };
                let caused = error
                    .get("caused_by")
                    .and_then(|c| c.get("reason"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(root_cause)
                    .filter(|caused| caused != &format!("{ty}: {reason}"));
                let mut text = match (ty.is_empty(), reason.is_empty()) {
                    (false, false) => format!("{ty}: {reason}"),
                    (false, true) => ty.to_string(),
                    _ => reason.to_string(),
                };
                if let Some(caused) = caused {
                    text.push_str(&format!(" (caused by: {caused})"));
                }
                text
            }
            Some(Value::String(text)) => text.clone(),
            _ => String::new(),
        },
        Value::String(text) => text.chars().take(300).collect(),
        _ => String::new(),
    }
}

/// An error and its causes on one line: reqwest's own message rarely names the real cause
/// (refused connection, DNS failure, bad certificate) without its sources.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// Statuses worth retrying: overload (429) and server-side failures (5xx).
pub fn is_transient_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_from_elasticsearch_error_bodies() {
        let body = json!({"error": {"root_cause": [], "type": "index_not_found_exception",
            "reason": "no such index [x]"}, "status": 404});
        assert_eq!(
            error_reason(&body),
            "index_not_found_exception: no such index [x]"
        );
        assert_eq!(error_reason(&json!("plain text")), "plain text");
    }

    #[test]
    fn classification() {
        let e = EsError::from_reply("search", 503, &Value::Null);
        assert!(e.is_transient());
        let e = EsError::from_reply("search", 400, &Value::Null);
        assert!(!e.is_transient());
        let e = EsError::from_reply("search", 401, &Value::Null);
        assert!(e.to_string().contains("ELASTICSEARCH_API_KEY"));
        assert!(matches!(PortError::from(e), PortError::Permanent(_)));
    }

    #[test]
    fn too_many_clauses_is_its_own_kind_on_both_engines() {
        let elasticsearch = json!({"error": {"type": "search_phase_execution_exception",
            "reason": "all shards failed", "caused_by": {"type": "query_shard_exception",
            "reason": "failed to create query: Query contains too many nested clauses; maxClauseCount is set to 1024"}},
            "status": 400});
        let opensearch = json!({"error": {"root_cause": [{"type": "too_many_clauses",
            "reason": "maxClauseCount is set to 1024"}], "type": "search_phase_execution_exception",
            "reason": "all shards failed"}, "status": 400});
        for body in [elasticsearch, opensearch] {
            let e = EsError::from_reply("search", 400, &body);
            assert!(
                matches!(PortError::from(e), PortError::TooManyClauses(m) if m.contains("maxClauseCount")),
                "{body}"
            );
        }
        let other = EsError::from_reply(
            "search",
            400,
            &json!({"error": {"type": "parsing_exception", "reason": "bad"}}),
        );
        assert!(matches!(PortError::from(other), PortError::Permanent(_)));
    }
}

//! The rule as rule-runner runs it: one type for every source format.
//!
//! Field names follow Kibana's snake_case rule parameters, so a rule serializes to the
//! `kibana.alert.rule.parameters` object and to Kibana's export format without renaming.

use serde::{Deserialize, Serialize};

/// Kibana's defaults for a rule that omits them (`kibana-detection-engine.md` §3.1).
pub const DEFAULT_FROM: &str = "now-6m";
pub const DEFAULT_TO: &str = "now";
pub const DEFAULT_INTERVAL: &str = "5m";
pub const DEFAULT_MAX_SIGNALS: u32 = 100;

fn default_from() -> String {
    DEFAULT_FROM.to_owned()
}
fn default_to() -> String {
    DEFAULT_TO.to_owned()
}
fn default_interval() -> String {
    DEFAULT_INTERVAL.to_owned()
}
fn default_max_signals() -> u32 {
    DEFAULT_MAX_SIGNALS
}
fn default_version() -> u32 {
    1
}
fn default_enabled() -> bool {
    true
}

/// A detection rule, whatever file it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub rule_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Kibana's rule type: `query`, `eql`, `esql`, `threshold`, `new_terms`, ...
    #[serde(rename = "type")]
    pub rule_type: String,
    /// `kuery`, `lucene`, `eql`, `esql`; absent for machine-learning rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default)]
    pub index: Vec<String>,
    /// Elasticsearch date math resolved against the run's start, e.g. `now-60m`.
    #[serde(default = "default_from")]
    pub from: String,
    #[serde(default = "default_to")]
    pub to: String,
    /// How often the rule runs, e.g. `10m`.
    #[serde(default = "default_interval")]
    pub interval: String,
    #[serde(default = "default_max_signals")]
    pub max_signals: u32,
    pub risk_score: u32,
    pub severity: Severity,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub threat: Vec<Threat>,
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default)]
    pub author: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The investigation guide (Markdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default)]
    pub false_positives: Vec<String>,
    /// Field to use instead of `@timestamp` for the window, e.g. `event.ingested`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_override: Option<String>,
    #[serde(default)]
    pub timestamp_override_fallback_disabled: bool,
    /// Kibana filter objects (`{"meta": {...}, "query": {...}}`), kept as written.
    #[serde(default)]
    pub filters: Vec<serde_json::Value>,
    #[serde(default = "default_version")]
    pub version: u32,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// rule-runner extension: a cron expression that aligns runs to the clock instead of
    /// running every `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// `default` marks a building-block rule, whose alerts Kibana hides by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building_block_type: Option<String>,
    /// Parameters rule-runner does not interpret (type-specific ones such as `threshold` or
    /// `new_terms`, `setup`, `investigation_fields`, ...), kept so that exports and alert
    /// parameters carry them unchanged.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for Rule {
    /// An empty KQL query rule with Kibana's defaults for everything a rule may omit.
    fn default() -> Self {
        Rule {
            rule_id: String::new(),
            name: String::new(),
            description: String::new(),
            rule_type: "query".to_owned(),
            language: Some("kuery".to_owned()),
            query: None,
            index: Vec::new(),
            from: DEFAULT_FROM.to_owned(),
            to: DEFAULT_TO.to_owned(),
            interval: DEFAULT_INTERVAL.to_owned(),
            max_signals: DEFAULT_MAX_SIGNALS,
            risk_score: 21,
            severity: Severity::Low,
            tags: Vec::new(),
            threat: Vec::new(),
            references: Vec::new(),
            author: Vec::new(),
            license: None,
            note: None,
            false_positives: Vec::new(),
            timestamp_override: None,
            timestamp_override_fallback_disabled: false,
            filters: Vec::new(),
            version: 1,
            enabled: true,
            cron: None,
            building_block_type: None,
            extra: serde_json::Map::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity `{other}` (expected low, medium, high or critical)"
            )),
        }
    }
}

/// One MITRE ATT&CK mapping, in Kibana's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threat {
    pub framework: String,
    pub tactic: ThreatRef,
    #[serde(default)]
    pub technique: Vec<Technique>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatRef {
    pub id: String,
    pub name: String,
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Technique {
    pub id: String,
    pub name: String,
    pub reference: String,
    #[serde(default)]
    pub subtechnique: Vec<ThreatRef>,
}

impl Rule {
    /// Whether rule-runner can execute this rule ([`unsupported_reason`] says why not).
    pub fn is_runnable(&self) -> bool {
        unsupported_reason(self).is_none()
    }

    /// Whether the service (`run`, `backfill`) executes this rule: a runnable KQL `query`,
    /// `new_terms` or `threshold` rule, or an `eql` rule (on an engine with EQL).
    pub fn runs_in_service(&self) -> bool {
        matches!(
            self.rule_type.as_str(),
            "query" | "new_terms" | "threshold" | "eql"
        ) && self.is_runnable()
    }

    /// The field that places an event in a window, and whether `@timestamp` is the
    /// fallback for events that lack it (Kibana's default when an override is set).
    pub fn timestamp_fields(&self) -> (&str, Option<&str>) {
        match self.timestamp_override.as_deref() {
            Some(field) if field != "@timestamp" => {
                let fallback = (!self.timestamp_override_fallback_disabled).then_some("@timestamp");
                (field, fallback)
            }
            _ => ("@timestamp", None),
        }
    }
}

/// Why rule-runner will not run this rule, or `None` for a KQL rule of a type it runs
/// (`query`, `new_terms`, `threshold`) or an `eql` rule, with valid type-specific parameters.
/// A query that does not parse is an error of the rule, not a reason: see the loader.
pub fn unsupported_reason(rule: &Rule) -> Option<String> {
    const TYPES: [&str; 4] = ["query", "new_terms", "threshold", "eql"];
    if !TYPES.contains(&rule.rule_type.as_str()) {
        return Some(format!(
            "rule type `{}` is not run by rule-runner (it runs KQL `query`, `new_terms` and `threshold` rules, and `eql` rules)",
            rule.rule_type
        ));
    }
    let expected = if rule.rule_type == "eql" {
        "eql"
    } else {
        "kuery"
    };
    let language = rule.language.as_deref().unwrap_or(expected);
    if language != expected {
        return Some(format!(
            "query language `{language}` is not run by rule-runner for a `{}` rule (it runs `{expected}`)",
            rule.rule_type
        ));
    }
    match rule.kind() {
        // The loader reports a statement that does not parse as an error, with its line.
        Err(_) if rule.rule_type == "eql" => None,
        other => other.err(),
    }
}

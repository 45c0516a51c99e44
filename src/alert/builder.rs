//! The Kibana-compatible alert document (`kibana-detection-engine.md` §8).
//!
//! Shape: the event's `_source` (minus reserved `kibana*`, `signal*`, `threshold_result*`
//! keys) with Kibana's own fields added as *flat dotted keys* next to the event's nested
//! objects, exactly as Kibana writes them, so Kibana's alert views and any query written for
//! Kibana's alerts work unchanged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::compliance::{REMOVED_FIELDS, strip_non_ecs};
use super::doc::{AlertDoc, EventHit};
use super::fields::{copy_leaves, format_timestamp, lookup, parse_timestamp};
use super::id::{IdentityStrategy, alert_id, event_identity, rule_uuid};
use super::overrides::Overrides;
use super::reason::reason;
use crate::rule::{Rule, Severity};

/// Kibana's default space.
pub const DEFAULT_SPACE: &str = "default";
/// The Kibana version written into `kibana.version` unless configured otherwise.
pub const DEFAULT_KIBANA_VERSION: &str = "8.17.0";

/// Top-level key prefixes Kibana removes from the event before adding its own fields.
const RESERVED_ROOTS: [&str; 3] = ["kibana", "signal", "threshold_result"];

/// Whether a run was scheduled or started by hand (a backfill).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionType {
    #[default]
    Scheduled,
    Manual,
}

impl ExecutionType {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionType::Scheduled => "scheduled",
            ExecutionType::Manual => "manual",
        }
    }
}

/// What every alert of one rule run shares.
#[derive(Debug, Clone, PartialEq)]
pub struct RunContext {
    /// The alert creation time: `@timestamp`, `kibana.alert.start`, execution timestamp.
    pub now: DateTime<Utc>,
    pub execution_uuid: Uuid,
    pub space_id: String,
    pub kibana_version: String,
    pub execution_type: ExecutionType,
    pub identity: IdentityStrategy,
    /// For manual runs, the time the run stands in for (`kibana.alert.intended_timestamp`);
    /// `None` means `now`.
    pub intended_time: Option<DateTime<Utc>>,
}

impl RunContext {
    /// A scheduled run at `now` with a fresh execution uuid and the default space and version.
    pub fn scheduled(now: DateTime<Utc>) -> Self {
        RunContext {
            now,
            execution_uuid: Uuid::new_v4(),
            space_id: DEFAULT_SPACE.to_owned(),
            kibana_version: DEFAULT_KIBANA_VERSION.to_owned(),
            execution_type: ExecutionType::Scheduled,
            identity: IdentityStrategy::default(),
            intended_time: None,
        }
    }

    /// A manual run (backfill) at `now` standing in for a run at `intended`.
    pub fn manual(now: DateTime<Utc>, intended: DateTime<Utc>) -> Self {
        RunContext {
            execution_type: ExecutionType::Manual,
            intended_time: Some(intended),
            ..RunContext::scheduled(now)
        }
    }
}

/// The event an alert is raised on.
#[derive(Debug, Clone, Copy)]
pub struct AlertEvent<'a> {
    /// The concrete index the event was read from.
    pub index: &'a str,
    pub id: &'a str,
    pub source: &'a Value,
    /// The time that placed the event in the window (the rule's timestamp field).
    pub timestamp: DateTime<Utc>,
}

impl<'a> From<&'a EventHit> for AlertEvent<'a> {
    fn from(hit: &'a EventHit) -> Self {
        AlertEvent {
            index: &hit.index,
            id: &hit.id,
            source: &hit.source,
            timestamp: hit.timestamp,
        }
    }
}

/// Builds the alerts of one rule in one run. The rule snapshot and run fields are rendered
/// once in [`AlertBuilder::new`]; each alert then only adds what depends on its event.
#[derive(Debug, Clone)]
pub struct AlertBuilder {
    rule_id: String,
    rule_name: String,
    severity: Severity,
    risk_score: u32,
    overrides: Overrides,
    rule_uuid: Uuid,
    rule_uuid_text: String,
    identity: IdentityStrategy,
    shared: Map<String, Value>,
}

impl AlertBuilder {
    /// Alerts whose `kibana.alert.rule.uuid` is derived from the rule id.
    pub fn new(rule: &Rule, ctx: &RunContext) -> Self {
        Self::with_rule_uuid(rule, ctx, rule_uuid(&rule.rule_id))
    }

    /// Alerts naming `rule_uuid` as their rule: the id of the rule's registration in Kibana,
    /// so that Kibana's rule links and rule pages find it.
    pub fn with_rule_uuid(rule: &Rule, ctx: &RunContext, rule_uuid: Uuid) -> Self {
        AlertBuilder {
            rule_id: rule.rule_id.clone(),
            rule_name: rule.name.clone(),
            severity: rule.severity,
            risk_score: rule.risk_score,
            overrides: Overrides::of(rule),
            rule_uuid,
            rule_uuid_text: rule_uuid.to_string(),
            identity: ctx.identity,
            shared: shared_fields(rule, ctx, rule_uuid),
        }
    }

    /// Whether `source` is an alert this rule wrote (its ancestors name this rule, or its
    /// flat `kibana.alert.rule.uuid` is this rule's).
    pub fn is_own_alert(&self, source: &Value) -> bool {
        let uuid = self.rule_uuid_text.as_str();
        let names_rule = |value: Option<&Value>| value.and_then(Value::as_str) == Some(uuid);
        names_rule(lookup(source, "kibana.alert.rule.uuid"))
            || lookup(source, "kibana.alert.ancestors")
                .and_then(Value::as_array)
                .is_some_and(|ancestors| ancestors.iter().any(|a| names_rule(a.get("rule"))))
    }

    pub fn rule_id(&self) -> &str {
        &self.rule_id
    }

    /// How this run identifies events for their alert ids.
    pub fn identity(&self) -> IdentityStrategy {
        self.identity
    }

    /// The rule's stable `kibana.alert.rule.uuid`.
    pub fn rule_uuid(&self) -> Uuid {
        self.rule_uuid
    }

    /// The deterministic id the alert on `event` gets; cheap, so callers can deduplicate
    /// before paying for [`AlertBuilder::build_with_id`].
    pub fn alert_id(&self, event: &AlertEvent<'_>) -> String {
        let identity = event_identity(self.identity, event.index, event.id, event.source);
        alert_id(&self.rule_id, &identity)
    }

    /// The alert on `event`.
    pub fn build(&self, event: &AlertEvent<'_>) -> AlertDoc {
        let id = self.alert_id(event);
        self.build_with_id(event, id)
    }

    /// The alert on `event`, whose id the caller computed with [`AlertBuilder::alert_id`].
    pub fn build_with_id(&self, event: &AlertEvent<'_>, id: String) -> AlertDoc {
        self.assemble(
            event.index,
            event.id,
            event.source.clone(),
            event.timestamp,
            id,
        )
    }

    /// The alert on `hit`, taking over the hit's `_source` instead of copying it (the
    /// engine's path, where the hit is not needed afterwards).
    pub fn build_from_hit(&self, hit: EventHit, id: String) -> AlertDoc {
        let EventHit {
            index,
            id: doc_id,
            source,
            timestamp,
            ..
        } = hit;
        self.assemble(&index, &doc_id, source, timestamp, id)
    }

    fn assemble(
        &self,
        index: &str,
        doc_id: &str,
        mut source: Value,
        timestamp: DateTime<Utc>,
        id: String,
    ) -> AlertDoc {
        // Everything read from the event is read before its `_source` is taken apart.
        // Kibana keeps `@timestamp` as the original time even under a timestamp override.
        let original_time = lookup(&source, "@timestamp")
            .and_then(parse_timestamp)
            .unwrap_or(timestamp);
        let overridden = (!self.overrides.is_empty()).then(|| {
            self.overrides
                .apply(&source, self.severity, self.risk_score, &self.rule_name)
        });
        let reason = match &overridden {
            Some(o) => reason(&source, o.severity, &o.rule_name),
            None => reason(&source, self.severity, &self.rule_name),
        };
        // As Kibana: overrides and reason read the event as it is, the alert keeps only what
        // the ECS mapping can take.
        let removed = match &mut source {
            Value::Object(fields) => strip_non_ecs(fields),
            _ => Vec::new(),
        };
        let mut originals = Map::new();
        if let Value::Object(fields) = &source {
            copy_leaves(
                fields,
                "event",
                "kibana.alert.original_event",
                &mut originals,
            );
            copy_leaves(
                fields,
                "data_stream",
                "kibana.alert.original_data_stream",
                &mut originals,
            );
        }

        let fields = match source {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        // Start from the shared fields (`@timestamp` first): cloning the map copies its hash
        // table, where inserting the same keys one by one would hash each again.
        let mut doc = self.shared.clone();
        move_event_source(fields, &mut doc);
        doc.insert("event.kind".into(), json!("signal"));
        doc.extend(originals);
        doc.insert(
            "kibana.alert.original_time".into(),
            json!(format_timestamp(original_time)),
        );
        doc.insert(
            "kibana.alert.ancestors".into(),
            json!([{"id": doc_id, "type": "event", "index": index, "depth": 0}]),
        );
        doc.insert("kibana.alert.reason".into(), Value::String(reason));
        if let Some(o) = overridden {
            doc.insert("kibana.alert.severity".into(), json!(o.severity.as_str()));
            doc.insert(
                "kibana.alert.risk_score".into(),
                Value::Number(o.risk_score),
            );
            doc.insert("kibana.alert.rule.name".into(), Value::String(o.rule_name));
        }
        doc.insert("kibana.alert.uuid".into(), Value::String(id.clone()));
        if !removed.is_empty() {
            doc.insert(REMOVED_FIELDS.into(), json!(removed));
        }

        AlertDoc {
            id,
            rule_id: self.rule_id.clone(),
            event_time: timestamp,
            document: Value::Object(doc),
        }
    }
}

/// The event's `_source` minus reserved keys, with `event.kind` taken out (it becomes the flat
/// `"event.kind": "signal"`) and `@timestamp` left to the caller.
fn move_event_source(source: Map<String, Value>, doc: &mut Map<String, Value>) {
    for (key, value) in source {
        let root = key.split('.').next().unwrap_or(&key);
        if RESERVED_ROOTS.contains(&root) || key == "@timestamp" || key == "event.kind" {
            continue;
        }
        match value {
            Value::Object(mut event) if key == "event" => {
                event.shift_remove("kind");
                if !event.is_empty() {
                    doc.insert(key, Value::Object(event));
                }
            }
            value => {
                doc.insert(key, value);
            }
        }
    }
}

/// The fields every alert of this rule and run carries: lifecycle, execution, rule snapshot.
fn shared_fields(rule: &Rule, ctx: &RunContext, rule_uuid: Uuid) -> Map<String, Value> {
    let now = format_timestamp(ctx.now);
    let intended = ctx
        .intended_time
        .map_or_else(|| now.clone(), format_timestamp);
    let mut f = Map::new();
    let mut put = |key: &str, value: Value| {
        f.insert(key.to_owned(), value);
    };
    put("@timestamp", json!(now));
    put("kibana.alert.depth", json!(1));
    put("kibana.alert.status", json!("active"));
    put("kibana.alert.workflow_status", json!("open"));
    put("kibana.alert.workflow_tags", json!([]));
    put("kibana.alert.workflow_assignee_ids", json!([]));
    put("kibana.alert.severity", json!(rule.severity.as_str()));
    put("kibana.alert.risk_score", json!(rule.risk_score));
    put("kibana.alert.intended_timestamp", json!(intended));
    if let Some(kind) = &rule.building_block_type {
        put("kibana.alert.building_block_type", json!(kind));
        put("kibana.alert.rule.building_block_type", json!(kind));
    }
    put("kibana.alert.start", json!(now));
    put("kibana.alert.last_detected", json!(now));
    put("kibana.alert.rule.execution.timestamp", json!(now));
    put(
        "kibana.alert.rule.execution.uuid",
        json!(ctx.execution_uuid.to_string()),
    );
    put(
        "kibana.alert.rule.execution.type",
        json!(ctx.execution_type.as_str()),
    );
    put("kibana.alert.rule.uuid", json!(rule_uuid.to_string()));
    put("kibana.alert.rule.rule_id", json!(rule.rule_id));
    put("kibana.alert.rule.name", json!(rule.name));
    // Kibana's rule type ids and display names, which the Security app filters on.
    let (type_id, category) = match rule.rule_type.as_str() {
        "new_terms" => ("siem.newTermsRule", "New Terms Rule"),
        "threshold" => ("siem.thresholdRule", "Threshold Rule"),
        "eql" => ("siem.eqlRule", "Event Correlation Rule"),
        _ => ("siem.queryRule", "Custom Query Rule"),
    };
    put("kibana.alert.rule.rule_type_id", json!(type_id));
    put("kibana.alert.rule.category", json!(category));
    put("kibana.alert.rule.consumer", json!("siem"));
    put("kibana.alert.rule.producer", json!("siem"));
    put("kibana.alert.rule.type", json!(rule.rule_type));
    put("kibana.alert.rule.revision", json!(0));
    put("kibana.alert.rule.version", json!(rule.version));
    put("kibana.alert.rule.enabled", json!(rule.enabled));
    put("kibana.alert.rule.from", json!(rule.from));
    put("kibana.alert.rule.to", json!(rule.to));
    put("kibana.alert.rule.interval", json!(rule.interval));
    put("kibana.alert.rule.indices", json!(rule.index));
    put("kibana.alert.rule.max_signals", json!(rule.max_signals));
    if let Some(field) = &rule.timestamp_override {
        put("kibana.alert.rule.timestamp_override", json!(field));
    }
    put("kibana.alert.rule.risk_score", json!(rule.risk_score));
    put("kibana.alert.rule.severity", json!(rule.severity.as_str()));
    // The rule's own mappings (applied per alert in `assemble`), so the document agrees with
    // its `parameters`.
    for mapping in ["risk_score_mapping", "severity_mapping"] {
        let value = rule
            .extra
            .get(mapping)
            .cloned()
            .unwrap_or_else(|| json!([]));
        put(&format!("kibana.alert.rule.{mapping}"), value);
    }
    if let Some(field) = rule.extra.get("rule_name_override") {
        put("kibana.alert.rule.rule_name_override", field.clone());
    }
    put("kibana.alert.rule.author", json!(rule.author));
    if let Some(license) = &rule.license {
        put("kibana.alert.rule.license", json!(license));
    }
    put("kibana.alert.rule.description", json!(rule.description));
    put(
        "kibana.alert.rule.false_positives",
        json!(rule.false_positives),
    );
    put("kibana.alert.rule.references", json!(rule.references));
    let exceptions = rule.extra.get("exceptions_list").cloned();
    put(
        "kibana.alert.rule.exceptions_list",
        exceptions.unwrap_or_else(|| json!([])),
    );
    // Who made the rule and when: the export's or the detection-rules file's record of it;
    // rule-runner itself when the file says nothing.
    for (key, by) in [("created", "created_by"), ("updated", "updated_by")] {
        if let Some(at) = rule.extra.get(&format!("{key}_at")) {
            put(&format!("kibana.alert.rule.{key}_at"), at.clone());
        }
        let who = rule.extra.get(by).cloned();
        put(
            &format!("kibana.alert.rule.{by}"),
            who.unwrap_or_else(|| json!("rule-runner")),
        );
    }
    // rule-runner runs rules from files; none is a Kibana-managed prebuilt rule.
    put("kibana.alert.rule.immutable", json!(false));
    put("kibana.alert.rule.tags", json!(rule.tags));
    put("kibana.alert.rule.actions", json!([]));
    if let Some(note) = &rule.note {
        put("kibana.alert.rule.note", json!(note));
    }
    put(
        "kibana.alert.rule.threat",
        serde_json::to_value(&rule.threat).unwrap_or_else(|_| json!([])),
    );
    put("kibana.alert.rule.parameters", rule_parameters(rule));
    put("kibana.space_ids", json!([ctx.space_id]));
    put("kibana.version", json!(ctx.kibana_version));
    f
}

/// `kibana.alert.rule.parameters`: the rule's parameters in snake_case, as Kibana stores them
/// (schedule and saved-object attributes such as `name`, `tags`, `interval` are not parameters).
fn rule_parameters(rule: &Rule) -> Value {
    let mut params = match serde_json::to_value(rule) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for not_a_parameter in [
        "name",
        "tags",
        "interval",
        "enabled",
        "cron",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "id",
    ] {
        params.remove(not_a_parameter);
    }
    params.entry("language").or_insert_with(|| json!("kuery"));
    for list in [
        "filters",
        "exceptions_list",
        "risk_score_mapping",
        "severity_mapping",
        "related_integrations",
        "required_fields",
    ] {
        params.entry(list).or_insert_with(|| json!([]));
    }
    params.entry("immutable").or_insert_with(|| json!(false));
    params.entry("setup").or_insert_with(|| json!(""));
    Value::Object(params)
}

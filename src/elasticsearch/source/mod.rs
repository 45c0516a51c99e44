//! The event source: one rule over one window, as Kibana searches it (§5), paged through a
//! point in time.
//!
//! - [`request`]: the request bodies (pure functions, compared in tests with the docs).
//! - [`field_caps`]: field metadata from the cluster, cached for the length of a run.
//! - [`compile`]: the rule's query in Query DSL.
//! - [`stream`]: point in time, `search_after`, closing.
//! - [`groups`]: the group requests of the new_terms and threshold rule types.
//! - [`eql`]: the `_eql/search` of EQL rules (Elasticsearch only).

pub mod compile;
pub mod eql;
pub mod field_caps;
pub mod groups;
pub mod request;
pub mod stream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use self::field_caps::FieldCapsInfo;
use self::stream::{EsHitStream, open_pit};
use super::client::EsClient;
use super::dialect::Dialect;
use ::elasticsearch::http::Method;

use super::client::{Call, index_list};
use crate::engine::{
    EqlQuery, EqlReply, EventSource, GroupPage, GroupQuery, HitStream, PortError, WindowQuery,
};
use crate::rule::Rule;

/// How long field metadata is reused. A run searches its catch-up windows and its current
/// window within moments, so they share one `_field_caps` call; the next run, minutes
/// later, sees mapping changes.
pub const FIELD_CAPS_TTL: Duration = Duration::from_secs(60);

type CapsKey = (Vec<String>, Vec<String>);
type CapsCache = HashMap<CapsKey, (Instant, Arc<FieldCapsInfo>)>;

/// Searches Elasticsearch for a rule's events.
#[derive(Debug, Clone)]
pub struct EsEventSource {
    client: EsClient,
    caps_cache: Arc<Mutex<CapsCache>>,
    caps_ttl: Duration,
}

impl EsEventSource {
    pub fn new(client: EsClient) -> Self {
        EsEventSource {
            client,
            caps_cache: Arc::default(),
            caps_ttl: FIELD_CAPS_TTL,
        }
    }

    /// Change how long field metadata is reused (zero: never).
    pub fn with_field_caps_ttl(mut self, ttl: Duration) -> Self {
        self.caps_ttl = ttl;
        self
    }

    async fn field_caps(
        &self,
        patterns: &[String],
        fields: &[String],
        timestamp_fields: &[&str],
    ) -> Result<Arc<FieldCapsInfo>, PortError> {
        let key = (
            patterns.to_vec(),
            fields
                .iter()
                .cloned()
                .chain(timestamp_fields.iter().map(|f| format!("@ts:{f}")))
                .collect(),
        );
        let cached = {
            let cache = self.caps_cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&key)
                .filter(|(at, _)| at.elapsed() < self.caps_ttl)
                .map(|(_, info)| info.clone())
        };
        if let Some(info) = cached {
            return Ok(info);
        }
        let info =
            Arc::new(field_caps::fetch(&self.client, patterns, fields, timestamp_fields).await?);
        let mut cache = self.caps_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|_, (at, _)| at.elapsed() < self.caps_ttl);
        cache.insert(key, (Instant::now(), info.clone()));
        Ok(info)
    }
}

/// A rule made ready to search: its query in Query DSL for the mapped field types, or
/// `None` when no index matches its patterns, and the warnings met on the way.
struct Prepared {
    rule_query: Option<Value>,
    warnings: Vec<String>,
}

impl EsEventSource {
    async fn prepare(&self, rule: &Rule) -> Result<Prepared, PortError> {
        if !rule.runs_in_service() {
            return Err(PortError::Permanent(format!(
                "rule `{}` ({}) is a {} rule in {}; the service runs KQL query, new_terms, threshold and EQL rules",
                rule.name,
                rule.rule_id,
                rule.rule_type,
                rule.language.as_deref().unwrap_or("no language")
            )));
        }
        require_index_patterns(rule)?;
        let kql_query = compile::parse(rule).map_err(PortError::Permanent)?;
        let (primary, fallback) = rule.timestamp_fields();
        let timestamp_fields: Vec<&str> = std::iter::once(primary).chain(fallback).collect();
        let caps = self
            .field_caps(
                &rule.index,
                &compile::query_fields(&kql_query),
                &timestamp_fields,
            )
            .await?;
        let mut warnings = Vec::new();
        if caps.indices.is_empty() {
            // Kibana's wording, so people who know its warning recognise this one.
            warnings.push(format!(
                "This rule is attempting to query data from Elasticsearch indices listed in the \
                 \"Index patterns\" section of the rule definition, however no index matching: \
                 {:?} was found. This warning will continue to appear until a matching index is \
                 created or this rule is disabled.",
                rule.index
            ));
            return Ok(Prepared {
                rule_query: None,
                warnings,
            });
        }
        warnings.extend(missing_timestamp_warning(&caps, primary, fallback));
        let rule_query = compile::rule_query(rule, &kql_query, &caps.field_types)
            .map_err(PortError::Permanent)?;
        Ok(Prepared {
            rule_query: Some(rule_query),
            warnings,
        })
    }
}

#[async_trait]
impl EventSource for EsEventSource {
    async fn search(&self, query: WindowQuery) -> Result<Box<dyn HitStream>, PortError> {
        let rule = query.rule.clone();
        let Prepared {
            rule_query,
            warnings,
        } = self.prepare(&rule).await?;
        let Some(rule_query) = rule_query else {
            return Ok(Box::new(EsHitStream::new(
                self.client.clone(),
                Dialect::ELASTICSEARCH,
                query,
                Value::Null,
                None,
                warnings,
            )));
        };
        let full_query = request::query(rule_query, &rule, query.window);
        let dialect = self.client.dialect().await?;
        let pit_id = open_pit(&self.client, &dialect, &rule.index).await?;
        Ok(Box::new(EsHitStream::new(
            self.client.clone(),
            dialect,
            query,
            full_query,
            pit_id,
            warnings,
        )))
    }

    async fn groups(&self, query: GroupQuery) -> Result<GroupPage, PortError> {
        let rule = query.rule.clone();
        let Prepared {
            rule_query,
            mut warnings,
        } = self.prepare(&rule).await?;
        let Some(rule_query) = rule_query else {
            return Ok(GroupPage {
                warnings,
                ..GroupPage::default()
            });
        };
        let call = Call::new(
            format!(
                "group the events of rule `{}` over {}",
                rule.name,
                rule.index.join(", ")
            ),
            Method::Post,
            format!("/{}/_search", index_list(&rule.index)),
        )
        .param("allow_no_indices", "true")
        .param("ignore_unavailable", "true")
        .json(groups::body(rule_query, &query));
        let response = self.client.send(&call).await?.into_ok(&call.what)?;
        let mut page = groups::parse(&response, &query, &call.what)?;
        warnings.append(&mut page.warnings);
        page.warnings = warnings;
        Ok(page)
    }

    async fn eql(&self, query: EqlQuery) -> Result<EqlReply, PortError> {
        self.eql_search(query).await
    }
}

/// A rule without index patterns has nothing to search.
fn require_index_patterns(rule: &Rule) -> Result<(), PortError> {
    if rule.index.is_empty() {
        return Err(PortError::Permanent(format!(
            "rule `{}` ({}) names no index patterns",
            rule.name, rule.rule_id
        )));
    }
    Ok(())
}

/// Kibana warns about indices lacking the rule's timestamp field. With the `@timestamp`
/// fallback an index lacking only the override is still searched correctly, so the warning
/// names only indices lacking both.
fn missing_timestamp_warning(
    caps: &FieldCapsInfo,
    primary: &str,
    fallback: Option<&str>,
) -> Option<String> {
    let missing = |field: &str| {
        caps.timestamp_unmapped
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, indices)| indices.clone())
            .unwrap_or_default()
    };
    let mut lacking = missing(primary);
    if let Some(fallback) = fallback {
        let lacking_fallback = missing(fallback);
        lacking.retain(|index| lacking_fallback.contains(index));
    }
    if lacking.is_empty() {
        return None;
    }
    let field = match fallback {
        Some(fallback) => format!("\"{primary}\" (nor \"{fallback}\")"),
        None => format!("\"{primary}\""),
    };
    Some(format!(
        "The following indices are missing the timestamp field {field}: {lacking:?}"
    ))
}

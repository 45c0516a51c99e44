//! Events held in memory, searched the way the Elasticsearch adapter searches.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::alert::fields::{lookup, parse_timestamp};
use crate::engine::ports::{
    EqlQuery, EqlReply, EventHit, EventSource, GroupPage, GroupQuery, HitStream, PortError,
    RuleWindow, WindowQuery,
};
use crate::kql::MatchOptions;
use crate::rule::Rule;
use crate::rule::matcher::RuleMatcher;

/// A compiled rule query: does this event match?
pub type CompiledMatch = Arc<dyn Fn(&Value) -> bool + Send + Sync>;
/// Compiles a rule's query; the error says why the query cannot run.
pub type MatcherFactory = Arc<dyn Fn(&Rule) -> Result<CompiledMatch, String> + Send + Sync>;

struct StoredEvent {
    id: String,
    source: Value,
}

/// An in-memory event store that implements [`EventSource`].
pub struct MemorySource {
    indices: RwLock<BTreeMap<String, Vec<StoredEvent>>>,
    matcher: MatcherFactory,
    compiled: Mutex<HashMap<(String, Option<String>), CompiledMatch>>,
    unavailable: Mutex<Option<String>>,
    max_clauses: Mutex<Option<usize>>,
}

impl Default for MemorySource {
    fn default() -> Self {
        MemorySource::new()
    }
}

impl MemorySource {
    /// An empty store that evaluates each rule's KQL query and filters in memory, as `scan`
    /// does (no field metadata: keyword-ness does not change in-memory matching).
    pub fn new() -> Self {
        MemorySource::with_matcher(Arc::new(|rule: &Rule| {
            let compiled = RuleMatcher::new(rule, None, None, &MatchOptions::default())
                .map_err(|error| error.to_string())?;
            Ok(Arc::new(move |doc: &Value| compiled.matches(doc)) as CompiledMatch)
        }))
    }

    /// An empty store whose rule queries are evaluated by `matcher`.
    pub fn with_matcher(matcher: MatcherFactory) -> Self {
        MemorySource {
            indices: RwLock::new(BTreeMap::new()),
            matcher,
            compiled: Mutex::new(HashMap::new()),
            unavailable: Mutex::new(None),
            max_clauses: Mutex::new(None),
        }
    }

    /// Store `source` as document `id` of the concrete index `index`.
    pub fn insert(&self, index: &str, id: &str, source: Value) {
        let mut indices = self.indices.write().unwrap_or_else(|e| e.into_inner());
        indices
            .entry(index.to_owned())
            .or_default()
            .push(StoredEvent {
                id: id.to_owned(),
                source,
            });
    }

    /// Make every search fail with a transient error (`Some(reason)`), or work again (`None`).
    pub fn set_unavailable(&self, reason: Option<&str>) {
        *self.unavailable.lock().unwrap_or_else(|e| e.into_inner()) = reason.map(str::to_owned);
    }

    /// Refuse group requests restricted to more than `max` term clauses (terms times fields),
    /// as a cluster's `indices.query.bool.max_clause_count` does; `None`: no limit.
    pub fn set_max_clauses(&self, max: Option<usize>) {
        *self.max_clauses.lock().unwrap_or_else(|e| e.into_inner()) = max;
    }

    /// Number of stored events.
    pub fn len(&self) -> usize {
        let indices = self.indices.read().unwrap_or_else(|e| e.into_inner());
        indices.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn compiled(&self, rule: &Rule) -> Result<CompiledMatch, PortError> {
        let key = (rule.rule_id.clone(), rule.query.clone());
        let mut cache = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = cache.get(&key) {
            return Ok(Arc::clone(found));
        }
        let compiled = (self.matcher)(rule).map_err(|why| {
            PortError::Permanent(format!(
                "rule `{}`: cannot evaluate its query: {why}",
                rule.rule_id
            ))
        })?;
        cache.insert(key, Arc::clone(&compiled));
        Ok(compiled)
    }
}

/// Whether the concrete index `name` is selected by Elasticsearch-style `patterns`: `*`
/// wildcards, and `-pattern` entries that remove what earlier entries selected. A data
/// stream's backing index (`.ds-<stream>-<yyyy.MM.dd>-<generation>`) is selected through its
/// stream's name, as Elasticsearch resolves `logs-aws.cloudtrail-*`.
pub fn index_matches(patterns: &[String], name: &str) -> bool {
    let stream = data_stream_of(name);
    let hit = |pattern: &str| glob(pattern, name) || stream.is_some_and(|s| glob(pattern, s));
    let mut selected = false;
    for pattern in patterns {
        match pattern.strip_prefix('-') {
            Some(excluded) if selected && hit(excluded) => selected = false,
            Some(_) => {}
            None if hit(pattern) => selected = true,
            None => {}
        }
    }
    selected
}

/// The data stream a backing index belongs to, e.g. `logs-aws.cloudtrail-default` for
/// `.ds-logs-aws.cloudtrail-default-2025.01.01-000001`.
fn data_stream_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(".ds-")?;
    let (rest, generation) = rest.rsplit_once('-')?;
    let (stream, date) = rest.rsplit_once('-')?;
    let numeric =
        |s: &str, extra: char| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == extra);
    (numeric(generation, '0') && numeric(date, '.')).then_some(stream)
}

/// `*`-only wildcard matching, as index patterns have. Written here because it is a few lines
/// and the glob crates add path semantics (`/`, `**`, `?`) that index patterns do not have.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The time that places `source` in a window for `rule`: the timestamp override, or
/// `@timestamp` when the event lacks the override and fallback is on.
pub(crate) fn event_time(rule: &Rule, source: &Value) -> Option<DateTime<Utc>> {
    let (primary, fallback) = rule.timestamp_fields();
    match lookup(source, primary) {
        Some(value) => parse_timestamp(value),
        None => fallback
            .and_then(|field| lookup(source, field))
            .and_then(parse_timestamp),
    }
}

impl MemorySource {
    /// The rule's matching events in `range`, oldest first (ties by index and id), and
    /// whether any index matched the rule's patterns.
    pub(super) fn matching(
        &self,
        rule: &Rule,
        range: RuleWindow,
    ) -> Result<(Vec<EventHit>, bool), PortError> {
        if let Some(reason) = self
            .unavailable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(PortError::Transient(reason));
        }
        let matches = self.compiled(rule)?;
        let indices = self.indices.read().unwrap_or_else(|e| e.into_inner());
        let mut hits = Vec::new();
        let mut any_index = false;
        for (index, events) in indices
            .iter()
            .filter(|(name, _)| index_matches(&rule.index, name))
        {
            any_index = true;
            for event in events {
                let Some(time) = event_time(rule, &event.source) else {
                    continue;
                };
                if time < range.start || time > range.end || !matches(&event.source) {
                    continue;
                }
                hits.push(EventHit {
                    index: index.clone(),
                    id: event.id.clone(),
                    source: event.source.clone(),
                    timestamp: time,
                    sort: vec![Value::from(time.timestamp_millis())],
                });
            }
        }
        hits.sort_by(|a, b| (a.timestamp, &a.index, &a.id).cmp(&(b.timestamp, &b.index, &b.id)));
        Ok((hits, any_index))
    }
}

/// Kibana's warning for index patterns that match nothing.
pub(super) fn no_index_warning(rule: &Rule) -> String {
    format!(
        "This rule is attempting to query data from Elasticsearch indices listed in the \"Index patterns\" \
         section of the rule definition, however no index matching: {:?} was found.",
        rule.index
    )
}

#[async_trait]
impl EventSource for MemorySource {
    async fn search(&self, query: WindowQuery) -> Result<Box<dyn HitStream>, PortError> {
        let (mut hits, any_index) = self.matching(&query.rule, query.window)?;
        let warnings = if any_index {
            Vec::new()
        } else {
            vec![no_index_warning(&query.rule)]
        };
        hits.reverse(); // pages are popped from the end
        Ok(Box::new(MemoryHits {
            hits,
            page_size: query.page_size.max(1),
            warnings,
        }))
    }

    async fn groups(&self, query: GroupQuery) -> Result<GroupPage, PortError> {
        let clauses = query.only.len() * query.fields.len();
        if let Some(max) = *self.max_clauses.lock().unwrap_or_else(|e| e.into_inner())
            && clauses > max
        {
            return Err(PortError::TooManyClauses(format!(
                "query_shard_exception: failed to create query: Query contains too many nested \
                 clauses; maxClauseCount is set to {max} ({clauses} term clauses)"
            )));
        }
        let (hits, any_index) = self.matching(&query.rule, query.range)?;
        let mut page = super::groups::group(hits, &query);
        if !any_index {
            page.warnings.push(no_index_warning(&query.rule));
        }
        Ok(page)
    }

    async fn eql(&self, query: EqlQuery) -> Result<EqlReply, PortError> {
        let (hits, any_index) = self.matching(&query.rule, query.window)?;
        let mut reply = super::eql::search(&query.rule, hits, query.size)?;
        if !any_index {
            reply.warnings.push(no_index_warning(&query.rule));
        }
        Ok(reply)
    }
}

struct MemoryHits {
    /// Remaining hits, newest first, so a page is a cheap split off the end.
    hits: Vec<EventHit>,
    page_size: usize,
    warnings: Vec<String>,
}

#[async_trait]
impl HitStream for MemoryHits {
    async fn next_page(&mut self) -> Result<Option<Vec<EventHit>>, PortError> {
        if self.hits.is_empty() {
            return Ok(None);
        }
        let at = self.hits.len().saturating_sub(self.page_size);
        let mut page = self.hits.split_off(at);
        page.reverse();
        Ok(Some(page))
    }

    async fn close(&mut self) -> Result<(), PortError> {
        self.hits.clear();
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn index_patterns_select_like_elasticsearch() {
        let p = patterns(&["filebeat-*", "logs-aws.cloudtrail-*"]);
        assert!(index_matches(&p, "filebeat-8.17.0-2025.01.01"));
        assert!(index_matches(&p, "logs-aws.cloudtrail-default"));
        assert!(index_matches(
            &p,
            ".ds-logs-aws.cloudtrail-default-2025.01.01-000001"
        ));
        assert!(!index_matches(
            &p,
            ".ds-logs-aws.s3access-default-2025.01.01-000001"
        ));
        assert!(!index_matches(&p, "logs-aws.s3access-default"));
        assert!(!index_matches(&p, "xfilebeat-1"));
        let p = patterns(&["logs-*", "-logs-debug*"]);
        assert!(index_matches(&p, "logs-app"));
        assert!(!index_matches(&p, "logs-debug-1"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        assert!(glob("*", ""));
    }
}

//! Paging through one window: a point in time over the rule's indices, `search_after` from
//! page to page, the point in time closed at the end.

use std::sync::Arc;

use ::elasticsearch::http::Method;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::request::{PIT_KEEP_ALIVE, next_search_after, pit_page_body};
use crate::elasticsearch::client::{Call, EsClient, index_list};
use crate::elasticsearch::dialect::Dialect;
use crate::elasticsearch::error::EsError;
use crate::engine::{EventHit, HitStream, PortError, RuleWindow, WindowQuery};
use crate::rule::Rule;

/// Open a point in time over `patterns`. Missing concrete indices are skipped
/// (`ignore_unavailable`); patterns matching nothing give no point in time (`None`).
/// `allow_partial_search_results` is left at its default (false): a point in time that
/// cannot reach every shard fails, the run is retried, and no event goes unseen.
pub async fn open_pit(
    client: &EsClient,
    dialect: &Dialect,
    patterns: &[String],
) -> Result<Option<String>, EsError> {
    let call = Call::new(
        format!("open a point in time over {}", patterns.join(", ")),
        Method::Post,
        dialect.open_pit_path(&index_list(patterns)),
    )
    .param("keep_alive", PIT_KEEP_ALIVE)
    .param("ignore_unavailable", "true");
    let reply = client.send(&call).await?;
    if dialect.pit_over_nothing(reply.status, &reply.body) {
        return Ok(None);
    }
    let body = reply.into_ok(&call.what)?;
    dialect
        .pit_id(&body)
        .map(|id| Some(id.to_string()))
        .ok_or_else(|| EsError::Response {
            what: call.what,
            message: format!("no point-in-time id in {body}"),
        })
}

/// A window's hits, page by page.
pub struct EsHitStream {
    client: EsClient,
    dialect: Dialect,
    rule: Arc<Rule>,
    window: RuleWindow,
    query: Value,
    size: usize,
    pit_id: Option<String>,
    search_after: Option<Vec<Value>>,
    done: bool,
    warnings: Vec<String>,
}

impl EsHitStream {
    /// Page through `search` (the rule's full query for the window) over the point in time
    /// `pit_id`; without one (no index matched) the stream is empty, carrying its warnings.
    pub fn new(
        client: EsClient,
        dialect: Dialect,
        window: WindowQuery,
        search: Value,
        pit_id: Option<String>,
        warnings: Vec<String>,
    ) -> Self {
        EsHitStream {
            client,
            dialect,
            rule: window.rule,
            window: window.window,
            query: search,
            size: window.page_size.max(1),
            done: pit_id.is_none(),
            pit_id,
            search_after: None,
            warnings,
        }
    }

    fn hit(&mut self, raw: &Value) -> Result<EventHit, PortError> {
        parse_hit(&self.rule, self.window, raw, &mut self.warnings)
    }
}

/// A search hit as an event of `rule`'s `window`.
pub(super) fn parse_hit(
    rule: &Rule,
    window: RuleWindow,
    raw: &Value,
    warnings: &mut Vec<String>,
) -> Result<EventHit, PortError> {
    let text = |key: &str| raw.get(key).and_then(Value::as_str).map(String::from);
    let (Some(index), Some(id)) = (text("_index"), text("_id")) else {
        return Err(PortError::Permanent(format!(
            "a search hit without `_index`/`_id`: {raw}"
        )));
    };
    let (primary, fallback) = rule.timestamp_fields();
    let timestamp = std::iter::once(primary)
        .chain(fallback)
        .find_map(|field| event_time(raw, field));
    let timestamp = match timestamp {
        Some(t) => t,
        None => {
            // The range filter only admits events with a timestamp in the window, so this
            // is a cluster returning what it should not; place the event at the window's
            // start (the earliest it can be) rather than drop it.
            warnings.push(format!(
                "event {index}/{id} has no readable `{primary}`; placed at the window start"
            ));
            window.start
        }
    };
    Ok(EventHit {
        index,
        id,
        source: raw.get("_source").cloned().unwrap_or_else(|| json!({})),
        timestamp,
        sort: raw
            .get("sort")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
    })
}

/// An event's time from the `fields` section (formatted by the request), else `_source`
/// (dotted key or nested objects).
fn event_time(hit: &Value, field: &str) -> Option<DateTime<Utc>> {
    let from_fields = hit
        .get("fields")
        .and_then(|f| f.get(field))
        .and_then(|v| v.get(0));
    let source = hit.get("_source");
    let from_source = source.and_then(|s| s.get(field)).or_else(|| {
        field
            .split('.')
            .try_fold(source?, |node, part| node.get(part))
    });
    from_fields
        .into_iter()
        .chain(from_source)
        .filter_map(|v| match v {
            Value::Array(items) => items.first().and_then(Value::as_str),
            other => other.as_str(),
        })
        .find_map(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Shard failures that make a page untrustworthy. A missing sort mapping is harmless:
/// those shards hold no event with the field (§5.3).
pub(super) fn shard_failures(body: &Value) -> Vec<String> {
    body.pointer("/_shards/failures")
        .and_then(Value::as_array)
        .map(|failures| {
            failures
                .iter()
                .map(|f| {
                    let reason = f
                        .pointer("/reason/reason")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown reason");
                    let index = f.get("index").and_then(Value::as_str).unwrap_or("?");
                    format!("shard of `{index}`: {reason}")
                })
                .filter(|text| {
                    !(text.contains("No mapping found for [")
                        && text.contains("in order to sort on"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl HitStream for EsHitStream {
    async fn next_page(&mut self) -> Result<Option<Vec<EventHit>>, PortError> {
        let Some(pit_id) = self.pit_id.clone().filter(|_| !self.done) else {
            return Ok(None);
        };
        let body = pit_page_body(
            &self.dialect,
            &self.query,
            &self.rule,
            self.size,
            &pit_id,
            self.search_after.as_deref(),
        );
        let call = Call::new(
            format!(
                "search {} for rule `{}`",
                self.rule.index.join(", "),
                self.rule.name
            ),
            Method::Post,
            "/_search",
        )
        .json(body);
        let reply = self.client.send(&call).await?;
        if reply.status == 404 {
            // The point in time expired (a page took longer than its keep-alive).
            return Err(PortError::Transient(format!(
                "{}: the point in time expired ({}); the window is searched again next run",
                call.what,
                crate::elasticsearch::error::error_reason(&reply.body)
            )));
        }
        let body = reply.into_ok(&call.what)?;
        if body.get("timed_out").and_then(Value::as_bool) == Some(true) {
            return Err(PortError::Transient(format!(
                "{}: the search timed out on the cluster; the window is searched again next run",
                call.what
            )));
        }
        let failures = shard_failures(&body);
        if !failures.is_empty() {
            return Err(PortError::Transient(format!(
                "{}: {} shard failure(s): {}",
                call.what,
                failures.len(),
                failures.join("; ")
            )));
        }
        if let Some(id) = body.get("pit_id").and_then(Value::as_str) {
            self.pit_id = Some(id.to_string());
        }
        let raw_hits = body
            .pointer("/hits/hits")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if raw_hits.is_empty() {
            self.done = true;
            return Ok(None);
        }
        let hits = raw_hits
            .iter()
            .map(|raw| self.hit(raw))
            .collect::<Result<Vec<_>, _>>()?;
        let last_sort = hits.last().map(|h| h.sort.clone()).unwrap_or_default();
        self.search_after = next_search_after(&last_sort);
        if self.search_after.is_none() {
            self.done = true;
            self.warnings.push(format!(
                "paging stopped after an event with unusable sort values {last_sort:?}"
            ));
        }
        if hits.len() < self.size {
            self.done = true;
        }
        Ok(Some(hits))
    }

    async fn close(&mut self) -> Result<(), PortError> {
        self.done = true;
        let Some(pit_id) = self.pit_id.take() else {
            return Ok(());
        };
        let (path, body) = self.dialect.close_pit(&pit_id);
        let call = Call::new("close the point in time", Method::Delete, path).json(body);
        let reply = self.client.send(&call).await?;
        // 404: already gone (expired); nothing left to free.
        if reply.status != 404 {
            reply.into_ok(&call.what)?;
        }
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

//! An EQL rule's window as Kibana's EQL executor searches it: one `_eql/search` over the
//! rule's indices (`allow_no_indices=true`), the body from [`request::eql_body`], its events
//! or sequences read back as events of the window.

use ::elasticsearch::http::Method;
use serde_json::Value;

use super::request;
use super::stream::{parse_hit, shard_failures};
use super::{EsEventSource, compile};
use crate::elasticsearch::client::{Call, index_list};
use crate::engine::{EqlQuery, EqlReply, EventHit, PortError, RuleWindow};
use crate::rule::Rule;

impl EsEventSource {
    pub(super) async fn eql_search(&self, query: EqlQuery) -> Result<EqlReply, PortError> {
        let rule = &query.rule;
        let dialect = self.client.dialect().await?;
        if !dialect.supports_eql() {
            return Err(PortError::Permanent(format!(
                "rule `{}` ({}) is an EQL rule, and {} has no EQL (`_eql/search`): run it against \
                 Elasticsearch, or offline with `rule-runner scan`",
                rule.name,
                rule.rule_id,
                dialect.product()
            )));
        }
        super::require_index_patterns(rule)?;
        let filters = compile::filters_query(rule).map_err(PortError::Permanent)?;
        let call = Call::new(
            format!(
                "EQL search for rule `{}` over {}",
                rule.name,
                rule.index.join(", ")
            ),
            Method::Post,
            format!("/{}/_eql/search", index_list(&rule.index)),
        )
        .param("allow_no_indices", "true")
        .json(request::eql_body(
            &dialect,
            rule,
            filters,
            query.window,
            query.size,
        ));
        let body = self.client.send(&call).await?.into_ok(&call.what)?;
        parse(rule, query.window, &body, &call.what)
    }
}

/// The reply of `_eql/search`: `hits.events` for an event query, `hits.sequences` (each its
/// `events`) for a sequence. A timed-out or partial search fails the window, which the next
/// run searches again: an alert missed there would not come back.
pub fn parse(
    rule: &Rule,
    window: RuleWindow,
    body: &Value,
    what: &str,
) -> Result<EqlReply, PortError> {
    if body.get("timed_out").and_then(Value::as_bool) == Some(true) {
        return Err(PortError::Transient(format!(
            "{what}: the search timed out; the window is searched again next run"
        )));
    }
    let mut failures = shard_failures(body);
    failures.extend(
        body.get("shard_failures")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|f| {
                f.pointer("/reason/reason")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown reason")
                    .to_string()
            }),
    );
    if !failures.is_empty() {
        return Err(PortError::Transient(format!(
            "{what}: shards failed ({}); the window is searched again next run",
            failures.join("; ")
        )));
    }
    let hits = body.get("hits").ok_or_else(|| {
        PortError::Permanent(format!("{what}: no `hits` in the EQL reply: {body}"))
    })?;
    let mut reply = EqlReply::default();
    let events = |list: Option<&Value>, warnings: &mut Vec<String>| {
        list.and_then(Value::as_array)
            .into_iter()
            .flatten()
            // A missing event (`![...]`) holds no document: nothing to alert on.
            .filter(|raw| raw.get("missing").and_then(Value::as_bool) != Some(true))
            .map(|raw| parse_hit(rule, window, raw, warnings))
            .collect::<Result<Vec<EventHit>, PortError>>()
    };
    reply.events = events(hits.get("events"), &mut reply.warnings)?;
    for sequence in hits
        .get("sequences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let found = events(sequence.get("events"), &mut reply.warnings)?;
        if !found.is_empty() {
            reply.sequences.push(found);
        }
    }
    Ok(reply)
}

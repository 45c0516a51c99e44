//! EQL over a [`MemorySource`](super::MemorySource)'s events: what `_eql/search` returns for
//! a rule's window, from the events that match one of its queries (and its filters), oldest
//! first. The statement's `head` / `tail` pipes apply as Elasticsearch applies them.

use crate::engine::ports::{EqlReply, EventHit, PortError};
use crate::eql::apply_pipes;
use crate::rule::{Rule, RuleKind};

/// The events or sequences of `rule` among `candidates` (in time order), at most `size`.
pub(super) fn search(
    rule: &Rule,
    candidates: Vec<EventHit>,
    size: usize,
) -> Result<EqlReply, PortError> {
    let Ok(RuleKind::Eql(eql)) = rule.kind() else {
        return Err(PortError::Permanent(format!(
            "rule `{}` is not an EQL rule",
            rule.rule_id
        )));
    };
    let mut reply = EqlReply::default();
    match eql.join_matcher() {
        // An event query.
        None => {
            reply.events = apply_pipes(candidates, &eql.statement.pipes);
            reply.events.truncate(size);
        }
        Some(matcher) => {
            let mut matcher = matcher
                .map_err(|e| PortError::Permanent(format!("rule `{}`: {e}", rule.rule_id)))?;
            let mut found = Vec::new();
            for (i, hit) in candidates.iter().enumerate() {
                let nanos = hit.timestamp.timestamp_nanos_opt().map_or(0, i128::from);
                for done in matcher.push(i, nanos, &hit.source) {
                    found.push(done.events.iter().map(|&e| candidates[e].clone()).collect());
                }
            }
            for done in matcher.finish() {
                found.push(done.events.iter().map(|&e| candidates[e].clone()).collect());
            }
            reply.sequences = apply_pipes(found, &eql.statement.pipes);
            reply.sequences.truncate(size);
        }
    }
    Ok(reply)
}

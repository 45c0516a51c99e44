//! The rules a scan runs: loaded rules compiled into in-memory matchers, and the reasons the
//! others are left out.

use std::sync::Arc;

use crate::cloudtrail::{FieldMask, FieldSelector, Flavor};
use crate::kql::{FieldInfo, FieldTypes, MatchOptions};
use crate::rule::{LoadReport, Rule, RuleKind, RuleMatcher};

use super::prefilter::{Dispatch, Prefilter, RuleQuery};

/// One rule ready to run over documents.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub rule: Arc<Rule>,
    /// Where it was loaded from (`<built-in>/aws/x.toml`, a path, `file:line`).
    pub origin: String,
    /// The query AND the rule's enabled filters.
    pub matcher: RuleMatcher,
    /// What the rule does with its matches.
    pub kind: RuleKind,
    /// The rule's own necessary conditions on copied fields: a document failing them is not
    /// evaluated against the rule at all (`None`: every document is).
    pub pins: Option<Prefilter>,
    /// The document fields the rule's query and filters read, with those its pins are checked
    /// on: building just these for a record gives the rule the same answer.
    pub fields: FieldMask,
}

/// A rule that will not run in this scan, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub rule: String,
    pub origin: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<CompiledRule>,
    pub left_out: Vec<LeftOut>,
    /// Which raw records can match at all (`None`: every record must be evaluated).
    pub prefilter: Option<Prefilter>,
    /// The fields the rules read; each document is prepared with them once for all rules.
    pub slots: Arc<crate::rule::RuleSlots>,
}

impl RuleSet {
    /// The rules indexed by what their pins require (built for each scan, from the rules as
    /// they are then).
    pub fn dispatch(&self) -> Arc<Dispatch> {
        Arc::new(Dispatch::new(
            self.rules.iter().map(|r| r.pins.clone()).collect(),
        ))
    }

    /// Per raw record, the rules that can take it decide what is built: nothing when there
    /// are none, else the fields those rules read (the rules that matched then get their
    /// alerts from the whole document, `Document::whole`).
    pub fn selector(&self, dispatch: Arc<Dispatch>) -> Arc<FieldSelector> {
        let fields: Vec<FieldMask> = self.rules.iter().map(|r| r.fields).collect();
        Arc::new(move |raw| {
            let mut candidates = Vec::new();
            dispatch.candidates(raw, &mut candidates);
            let mut wanted: Option<FieldMask> = None;
            for i in candidates {
                let mask = wanted.unwrap_or(FieldMask::NONE).union(fields[i as usize]);
                if mask.is_all() {
                    return Some(mask);
                }
                wanted = Some(mask);
            }
            wanted
        })
    }
}

/// The index a scanned document would live in, for the rule's index patterns and the alert's
/// `ancestors`.
pub fn source_index(flavor: Flavor, namespace: &str) -> String {
    match flavor {
        Flavor::Integration => format!("logs-aws.cloudtrail-{namespace}"),
        Flavor::Filebeat => "filebeat-cloudtrail".to_string(),
    }
}

/// Field metadata for matching: the integration's mapping, or for Filebeat data the
/// template's `ignore_above: 1024` on every keyword (docs/cloudtrail-ecs.md §6).
pub fn field_types(flavor: Flavor) -> FieldTypes {
    let base = FieldTypes::ecs_cloudtrail();
    match flavor {
        Flavor::Integration => base.clone(),
        Flavor::Filebeat => {
            let mut types = FieldTypes::new();
            for field in base.iter() {
                let mut field: FieldInfo = field.clone();
                if field.es_types.iter().any(|t| t == "keyword") {
                    field.ignore_above = Some(field.ignore_above.map_or(1024, |n| n.min(1024)));
                }
                // `event.dataset`/`event.module` are plain keywords in filebeat-* (the module
                // writes them), not constants.
                for t in &mut field.es_types {
                    if t == "constant_keyword" {
                        *t = "keyword".into();
                    }
                }
                types.insert(field);
            }
            types
        }
    }
}

/// A glob over index names where `*` matches any run of characters.
fn index_pattern_matches(pattern: &str, index: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match pieces.split_first() {
        Some(split) => split,
        None => return false,
    };
    let Some(mut remaining) = index.strip_prefix(first) else {
        return false;
    };
    if rest.is_empty() {
        return remaining.is_empty();
    }
    for (i, piece) in rest.iter().enumerate() {
        if i == rest.len() - 1 {
            return remaining.ends_with(piece);
        }
        match remaining.find(piece) {
            Some(at) => remaining = &remaining[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Whether the rule would search the index the scanned documents stand for. Rules without
/// index patterns (data-view rules) are run.
pub fn rule_covers(rule: &Rule, index: &str) -> bool {
    rule.index.is_empty()
        || rule
            .index
            .iter()
            .filter(|p| !p.starts_with('-'))
            .any(|p| index_pattern_matches(p.trim(), index))
}

impl RuleSet {
    /// Compile every runnable rule of `report` that searches CloudTrail data.
    pub fn compile(report: &LoadReport, flavor: Flavor, namespace: &str) -> RuleSet {
        let types = field_types(flavor);
        let index = source_index(flavor, namespace);
        let options = MatchOptions::default();
        let mut set = RuleSet::default();
        let mut slots = crate::rule::RuleSlots::default();
        let mut queries = Vec::new();
        let mut unconstrained = false;
        for loaded in &report.rules {
            let rule = &loaded.rule;
            let origin = loaded.origin.to_string();
            let leave_out = |reason: String| LeftOut {
                rule: rule.name.clone(),
                origin: origin.clone(),
                reason,
            };
            if !loaded.is_runnable() {
                let reason = match &loaded.status {
                    crate::rule::RuleStatus::Unsupported(why) => why.clone(),
                    crate::rule::RuleStatus::Error(why) => format!("invalid: {why}"),
                    crate::rule::RuleStatus::Runnable => String::new(),
                };
                set.left_out.push(leave_out(reason));
                continue;
            }
            if !rule_covers(rule, &index) {
                set.left_out.push(leave_out(format!(
                    "its index patterns ({}) do not cover `{index}`",
                    rule.index.join(", ")
                )));
                continue;
            }
            // The loader parsed the query already; parse again only for rules built by hand.
            let query = match loaded.query.as_deref() {
                Some(query) => Some(query.clone()),
                None if rule.rule_type == "eql" => None,
                None => match rule.kql_query() {
                    Ok(query) => Some(query),
                    Err(e) => {
                        set.left_out.push(leave_out(e.to_string()));
                        continue;
                    }
                },
            };
            let kind = match rule.kind() {
                Ok(kind) => kind,
                Err(e) => {
                    set.left_out.push(leave_out(e));
                    continue;
                }
            };
            if kind != RuleKind::Query {
                let cadence = super::aggregate::Cadence::of(rule).and_then(|_| match &kind {
                    RuleKind::NewTerms(params) => super::aggregate::history_of(params).map(|_| ()),
                    _ => Ok(()),
                });
                if let Err(e) = cadence {
                    set.left_out.push(leave_out(e));
                    continue;
                }
            }
            match RuleMatcher::with_slots(rule, query.as_ref(), Some(&types), &options, &mut slots)
            {
                Ok(matcher) => {
                    // Filters only narrow a rule further, so the query alone still tells
                    // which records cannot match.
                    let own = match (query, &kind) {
                        (Some(query), _) => Some(RuleQuery::Kql(query)),
                        (None, RuleKind::Eql(eql)) => Some(RuleQuery::Eql(eql.statement.clone())),
                        (None, _) => None,
                    };
                    let pins = own
                        .as_ref()
                        .and_then(|own| Prefilter::for_rules(std::iter::once(own)));
                    match own {
                        Some(own) => queries.push(own),
                        None => unconstrained = true,
                    }
                    // What the aggregating types group by is read from the same document.
                    let grouped: Vec<&str> = match &kind {
                        RuleKind::NewTerms(params) => {
                            params.fields.iter().map(String::as_str).collect()
                        }
                        RuleKind::Threshold(params) => params
                            .field
                            .iter()
                            .chain(params.cardinality.as_ref().map(|c| &c.field))
                            .map(String::as_str)
                            .collect(),
                        RuleKind::Query | RuleKind::Eql(_) => Vec::new(),
                    };
                    let fields = match matcher.fields_read() {
                        Some(read) => FieldMask::reading_all(
                            read.into_iter()
                                .chain(grouped)
                                .chain(super::prefilter::copied_fields().map(|f| -> &str { f })),
                        ),
                        None => FieldMask::ALL,
                    };
                    set.rules.push(CompiledRule {
                        rule: Arc::clone(rule),
                        origin,
                        matcher,
                        kind,
                        pins,
                        fields,
                    });
                }
                Err(e) => set.left_out.push(leave_out(e.to_string())),
            }
        }
        set.prefilter = if unconstrained {
            None
        } else {
            Prefilter::for_rules(queries.iter())
        };
        set.slots = Arc::new(slots);
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_patterns() {
        assert!(index_pattern_matches(
            "logs-aws.cloudtrail-*",
            "logs-aws.cloudtrail-default"
        ));
        assert!(index_pattern_matches(
            "logs-aws.cloudtrail*",
            "logs-aws.cloudtrail-default"
        ));
        assert!(index_pattern_matches("*", "x"));
        assert!(index_pattern_matches(
            "logs-*-default",
            "logs-aws.cloudtrail-default"
        ));
        assert!(!index_pattern_matches(
            "filebeat-*",
            "logs-aws.cloudtrail-default"
        ));
        assert!(!index_pattern_matches(
            "logs-aws.cloudtrail",
            "logs-aws.cloudtrail-default"
        ));
    }
}

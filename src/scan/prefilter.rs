//! A cheap necessary condition for a raw record to match any rule, checked before the record
//! is normalized (normalization is most of a scan's cost, and most records match nothing).
//!
//! From each rule's query we keep the top-level conjuncts on `event.provider`, `event.action`,
//! `aws.cloudtrail.user_identity.type`, `aws.cloudtrail.user_identity.access_key_id` and
//! `user_agent.original`, which the pipeline copies verbatim from `eventSource`, `eventName`,
//! `userIdentity.type`, `userIdentity.accessKeyId` and `userAgent`:
//! `event.provider: lambda.amazonaws.com and event.action: (AddPermission* or X)` becomes
//! "eventSource is `lambda.amazonaws.com` and eventName matches `AddPermission*` or is `X`".
//! Under an `or` each side gives its own alternative (`(provider: a and action: b) or
//! (provider: c and action: d)` keeps both pairs). A record that satisfies no rule's
//! conditions cannot match, so it is counted but not
//! normalized. A rule without such conjuncts disables the prefilter (every record is then
//! normalized), so results never depend on it.

use crate::cloudtrail::RawFields;
use crate::kql::{Query, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawField {
    Source,
    Name,
    IdentityType,
    AccessKeyId,
    UserAgent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Glob(crate::kql::Wildcard),
    /// Equal once both are lowercased (EQL's `in~`); the pattern is stored lowercased.
    FoldedExact(String),
    /// An EQL wildcard pattern (`*`, `?`), lowercased when `folded`.
    EqlGlob {
        pattern: String,
        folded: bool,
    },
}

impl Pattern {
    fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Exact(s) => s == text,
            Pattern::Glob(w) => w.matches(text),
            Pattern::FoldedExact(s) => *s == text.to_lowercase(),
            Pattern::EqlGlob { pattern, folded } => match folded {
                true => crate::eql::wildcard_match(pattern, &text.to_lowercase()),
                false => crate::eql::wildcard_match(pattern, text),
            },
        }
    }
}

/// All conjuncts must hold; each is satisfied by any of its patterns.
type Conjuncts = Vec<(RawField, Vec<Pattern>)>;

fn raw_field(field: &Value) -> Option<RawField> {
    match field {
        Value::Text(name) | Value::Quoted(name) => raw_field_named(name),
        _ => None,
    }
}

/// Each copied field: its ECS name and where it came from.
const COPIED: [(&str, RawField); 5] = [
    ("event.provider", RawField::Source),
    ("event.action", RawField::Name),
    ("aws.cloudtrail.user_identity.type", RawField::IdentityType),
    (
        "aws.cloudtrail.user_identity.access_key_id",
        RawField::AccessKeyId,
    ),
    ("user_agent.original", RawField::UserAgent),
];

fn raw_field_named(name: &str) -> Option<RawField> {
    COPIED
        .iter()
        .find_map(|(ecs, field)| (*ecs == name).then_some(*field))
}

/// The document fields [`document_fields`] reads.
pub fn copied_fields() -> impl Iterator<Item = &'static str> {
    COPIED.iter().map(|(ecs, _)| *ecs)
}

/// The copied fields read from a normalized document instead of the raw record (they hold
/// the same values), so a rule's own conditions can be tested on it. `None` when one holds
/// something other than a string (an ECS input may hold an array), which the conditions
/// cannot judge.
pub fn document_fields(doc: &serde_json::Value) -> Option<RawFields<'_>> {
    let mut fields = RawFields::default();
    for (ecs, field) in COPIED {
        let text = match crate::alert::fields::lookup(doc, ecs) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) => Some(text.as_str()),
            Some(_) => return None,
        };
        *match field {
            RawField::Source => &mut fields.event_source,
            RawField::Name => &mut fields.event_name,
            RawField::IdentityType => &mut fields.identity_type,
            RawField::AccessKeyId => &mut fields.access_key_id,
            RawField::UserAgent => &mut fields.user_agent,
        } = text;
    }
    Some(fields)
}

fn pattern(value: &Value) -> Option<Pattern> {
    match value {
        Value::Text(s) | Value::Quoted(s) => Some(Pattern::Exact(s.clone())),
        Value::Wildcard(w) => Some(Pattern::Glob(w.clone())),
        _ => None,
    }
}

/// `field: value` on a copied field, as (field, pattern).
fn is_term(q: &Query) -> Option<(RawField, Pattern)> {
    match q {
        Query::Is {
            field: Some(field),
            value,
        } => Some((raw_field(field)?, pattern(value)?)),
        _ => None,
    }
}

/// More alternatives than this from one query keep the prefilter from narrowing it further
/// (an `and` of several `or`s multiplies them).
const MAX_ALTERNATIVES: usize = 64;

/// What all of `parts` require: one alternative of each, combined.
fn all_of(parts: impl IntoIterator<Item = Vec<Conjuncts>>) -> Vec<Conjuncts> {
    let mut product: Vec<Conjuncts> = vec![Conjuncts::new()];
    for options in parts {
        if product.len() * options.len() > MAX_ALTERNATIVES {
            // Dropping a conjunct only weakens the condition: still necessary.
            continue;
        }
        product = product
            .iter()
            .flat_map(|base| {
                options.iter().map(move |extra| {
                    let mut both = base.clone();
                    both.extend(extra.iter().cloned());
                    both
                })
            })
            .collect();
    }
    product
}

/// What one of `parts` requires: their alternatives together, or nothing when one side is
/// unconstrained.
fn any_of(parts: impl IntoIterator<Item = Vec<Conjuncts>>) -> Vec<Conjuncts> {
    let mut union = Vec::new();
    for options in parts {
        if options.iter().any(Vec::is_empty) || union.len() + options.len() > MAX_ALTERNATIVES {
            return vec![Conjuncts::new()];
        }
        union.extend(options);
    }
    union
}

/// Alternatives, one of which holds for every record `q` matches: `a and (b or c)` gives
/// `[a, b]` and `[a, c]`. An empty alternative constrains nothing.
fn alternatives(q: &Query) -> Vec<Conjuncts> {
    match q {
        Query::And(items) => all_of(items.iter().map(alternatives)),
        Query::Or(items) => {
            let terms: Option<Vec<(RawField, Pattern)>> = items.iter().map(is_term).collect();
            if let Some(terms) = terms
                && let Some(&(field, _)) = terms.first()
                && terms.iter().all(|(f, _)| *f == field)
            {
                return vec![vec![(field, terms.into_iter().map(|(_, p)| p).collect())]];
            }
            any_of(items.iter().map(alternatives))
        }
        other => match is_term(other) {
            Some((field, p)) => vec![vec![(field, vec![p])]],
            None => vec![Conjuncts::new()],
        },
    }
}

/// The same for an EQL condition: `==`, `in`, `:` and `like` (and their `~` forms) on a copied
/// field against string literals; anything else constrains nothing.
fn eql_alternatives(condition: &crate::eql::Expr) -> Vec<Conjuncts> {
    use crate::eql::{CmpOp, Expr, Literal, MatchOp};
    let field_of = |expr: &Expr| match expr {
        Expr::Field(field) => raw_field_named(&field.name),
        _ => None,
    };
    let text = |expr: &Expr| match expr {
        Expr::Literal(Literal::String(text)) => Some(text.clone()),
        _ => None,
    };
    let one = |field, patterns| vec![vec![(field, patterns)]];
    let nothing = || vec![Conjuncts::new()];
    match condition {
        Expr::And(items) => all_of(items.iter().map(eql_alternatives)),
        Expr::Or(items) => any_of(items.iter().map(eql_alternatives)),
        Expr::Compare {
            op: CmpOp::Eq,
            left,
            right,
        } => match (field_of(left), text(right), field_of(right), text(left)) {
            (Some(field), Some(value), _, _) | (_, _, Some(field), Some(value)) => {
                one(field, vec![Pattern::Exact(value)])
            }
            _ => nothing(),
        },
        Expr::In {
            expr,
            list,
            negated: false,
            insensitive,
        } => {
            let values: Option<Vec<String>> = list.iter().map(text).collect();
            match (field_of(expr), values) {
                (Some(field), Some(values)) => one(
                    field,
                    values
                        .into_iter()
                        .map(|v| match insensitive {
                            true => Pattern::FoldedExact(v.to_lowercase()),
                            false => Pattern::Exact(v),
                        })
                        .collect(),
                ),
                _ => nothing(),
            }
        }
        Expr::Match {
            expr,
            op: op @ (MatchOp::Colon | MatchOp::Like),
            insensitive,
            patterns,
            ..
        } => match field_of(expr) {
            Some(field) => {
                // `:` always folds case; `like` only as `like~`.
                let folded = *op == MatchOp::Colon || *insensitive;
                let patterns = patterns
                    .iter()
                    .map(|p| Pattern::EqlGlob {
                        pattern: if folded { p.to_lowercase() } else { p.clone() },
                        folded,
                    })
                    .collect();
                one(field, patterns)
            }
            None => nothing(),
        },
        _ => nothing(),
    }
}

/// The prefilter of a rule set, or `None` when some rule constrains none of the fields.
#[derive(Debug, Clone)]
pub struct Prefilter {
    /// A record may match when all conjuncts of one alternative hold.
    alternatives: Vec<Conjuncts>,
}

/// A rule's query, in either language.
#[derive(Debug, Clone)]
pub enum RuleQuery {
    Kql(Query),
    /// For a sequence, any of its stages (and `until`) may select a record.
    Eql(crate::eql::Statement),
}

impl RuleQuery {
    fn alternatives(&self) -> Vec<Conjuncts> {
        match self {
            RuleQuery::Kql(query) => alternatives(query),
            RuleQuery::Eql(statement) => match &statement.body {
                crate::eql::Body::Event(query) => eql_alternatives(&query.condition),
                joined => any_of(
                    joined
                        .queries()
                        .into_iter()
                        .map(|query| eql_alternatives(&query.condition)),
                ),
            },
        }
    }
}

impl Prefilter {
    pub fn new<'a>(queries: impl IntoIterator<Item = &'a Query>) -> Option<Prefilter> {
        let rules: Vec<RuleQuery> = queries.into_iter().cloned().map(RuleQuery::Kql).collect();
        Prefilter::for_rules(&rules)
    }

    /// The prefilter of rules in KQL and EQL.
    pub fn for_rules<'a>(queries: impl IntoIterator<Item = &'a RuleQuery>) -> Option<Prefilter> {
        let mut all = Vec::new();
        for q in queries {
            let options = q.alternatives();
            if options.iter().any(Vec::is_empty) {
                return None;
            }
            all.extend(options);
        }
        Some(Prefilter { alternatives: all })
    }

    /// Whether a record with these raw fields may match some rule.
    pub fn may_match(&self, raw: &RawFields) -> bool {
        self.alternatives.iter().any(|conjuncts| {
            conjuncts.iter().all(|(field, patterns)| {
                let value = match field {
                    RawField::Source => raw.event_source,
                    RawField::Name => raw.event_name,
                    RawField::IdentityType => raw.identity_type,
                    RawField::AccessKeyId => raw.access_key_id,
                    RawField::UserAgent => raw.user_agent,
                };
                value.is_some_and(|v| patterns.iter().any(|p| p.matches(v)))
            })
        })
    }
}

impl Prefilter {
    /// The exact values of `field` one of which every alternative requires, when each does:
    /// a record with another value (or none) cannot pass.
    fn required_exact(&self, field: RawField) -> Option<Vec<&str>> {
        let mut values = Vec::new();
        for conjuncts in &self.alternatives {
            let (_, patterns) = conjuncts.iter().find(|(f, _)| *f == field)?;
            for pattern in patterns {
                match pattern {
                    Pattern::Exact(value) => values.push(value.as_str()),
                    _ => return None,
                }
            }
        }
        Some(values)
    }
}

/// The rules of a scan indexed by the event name or source their pins require, so that a
/// record is tested only against the rules that can take it: those indexed under its
/// `eventName`, under its `eventSource`, and those indexed under neither.
#[derive(Debug, Clone, Default)]
pub struct Dispatch {
    by_name: rustc_hash::FxHashMap<String, Vec<u32>>,
    by_source: rustc_hash::FxHashMap<String, Vec<u32>>,
    unindexed: Vec<u32>,
    pins: Vec<Option<Prefilter>>,
}

impl Dispatch {
    /// Each rule's pins, in rule order (`None`: the rule takes every record).
    pub fn new(pins: Vec<Option<Prefilter>>) -> Dispatch {
        let mut dispatch = Dispatch::default();
        for (i, rule_pins) in pins.iter().enumerate() {
            let i = i as u32;
            let names = rule_pins
                .as_ref()
                .and_then(|p| p.required_exact(RawField::Name));
            let sources = rule_pins
                .as_ref()
                .and_then(|p| p.required_exact(RawField::Source));
            let (index, keys) = match (names, sources) {
                (Some(names), _) => (&mut dispatch.by_name, names),
                (None, Some(sources)) => (&mut dispatch.by_source, sources),
                (None, None) => {
                    dispatch.unindexed.push(i);
                    continue;
                }
            };
            let mut keys = keys;
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                index.entry(key.to_string()).or_default().push(i);
            }
        }
        dispatch.pins = pins;
        dispatch
    }

    /// Into `out`, in rule order: the rules whose pins `raw` passes.
    pub fn candidates(&self, raw: &RawFields, out: &mut Vec<u32>) {
        out.clear();
        if let Some(rules) = raw.event_name.and_then(|k| self.by_name.get(k)) {
            out.extend_from_slice(rules);
        }
        if let Some(rules) = raw.event_source.and_then(|k| self.by_source.get(k)) {
            out.extend_from_slice(rules);
        }
        out.extend_from_slice(&self.unindexed);
        out.sort_unstable();
        out.retain(|&i| {
            self.pins
                .get(i as usize)
                .and_then(Option::as_ref)
                .is_none_or(|pins| pins.may_match(raw))
        });
    }

    /// Every rule, in rule order (for a record whose copied fields cannot be judged).
    pub fn all(&self, out: &mut Vec<u32>) {
        out.clear();
        out.extend(0..self.pins.len() as u32);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dispatch_offers_a_record_only_the_rules_its_fields_can_satisfy() {
        let pins: Vec<Option<Prefilter>> = [
            "event.action: (AddPermission20150331v2 or CreateUser)",
            "event.provider: iam.amazonaws.com",
            "event.action: Create* and event.provider: iam.amazonaws.com",
            "event.dataset: aws.cloudtrail",
            "event.action: CreateUser and event.provider: s3.amazonaws.com",
        ]
        .iter()
        .map(|q| filter(&[q]))
        .collect();
        assert!(pins[3].is_none());
        let dispatch = Dispatch::new(pins);
        let raw = |source, name| RawFields {
            event_source: Some(source),
            event_name: Some(name),
            ..RawFields::default()
        };
        let mut out = Vec::new();
        dispatch.candidates(&raw("iam.amazonaws.com", "CreateUser"), &mut out);
        assert_eq!(out, [0, 1, 2, 3]);
        dispatch.candidates(
            &raw("lambda.amazonaws.com", "AddPermission20150331v2"),
            &mut out,
        );
        assert_eq!(out, [0, 3]);
        dispatch.candidates(&raw("s3.amazonaws.com", "GetObject"), &mut out);
        assert_eq!(out, [3]);
        dispatch.candidates(&RawFields::default(), &mut out);
        assert_eq!(out, [3]);
        dispatch.all(&mut out);
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }

    use super::*;

    fn filter(queries: &[&str]) -> Option<Prefilter> {
        let parsed: Vec<Query> = queries
            .iter()
            .map(|q| crate::kql::parse(q).unwrap())
            .collect();
        Prefilter::new(parsed.iter())
    }

    #[test]
    fn keeps_provider_and_action_conjuncts() {
        let f = filter(&[
            "event.dataset: aws.cloudtrail and event.provider: lambda.amazonaws.com and \
             event.outcome: success and event.action: (PublishLayerVersion* or UpdateFunctionConfiguration)",
        ])
        .unwrap();
        let may = |source, name| {
            f.may_match(&RawFields {
                event_source: source,
                event_name: name,
                identity_type: Some("IAMUser"),
                ..RawFields::default()
            })
        };
        let lambda = Some("lambda.amazonaws.com");
        assert!(may(lambda, Some("PublishLayerVersion20181031")));
        assert!(may(lambda, Some("UpdateFunctionConfiguration")));
        assert!(!may(lambda, Some("UpdateFunctionConfiguration20150331v2")));
        assert!(!may(
            Some("s3.amazonaws.com"),
            Some("PublishLayerVersion20181031")
        ));
        assert!(!may(None, Some("PublishLayerVersion20181031")));
    }

    #[test]
    fn an_unconstrained_rule_disables_it() {
        assert!(filter(&["event.provider: x", "user.name: bob"]).is_none());
        assert!(filter(&["aws.cloudtrail.user_identity.type: Root"]).is_some());
        assert!(filter(&["event.provider: x or user.name: bob"]).is_none());
        assert!(filter(&["not event.provider: x"]).is_none());
        assert!(filter(&["event.provider: x or (event.action: y and user.name: bob)"]).is_some());
        assert!(filter(&["event.provider: x or user.name: bob"]).is_none());
    }

    fn may_source_and_name(f: &Prefilter, source: &str, name: &str) -> bool {
        f.may_match(&RawFields {
            event_source: Some(source),
            event_name: Some(name),
            ..RawFields::default()
        })
    }

    #[test]
    fn eql_comparisons_in_and_wildcards_count() {
        let rule = |q: &str| {
            let statement = crate::eql::parse_statement(q).unwrap();
            Prefilter::for_rules(&[RuleQuery::Eql(statement)])
        };
        let f = rule(
            "sequence by user.name [any where event.provider == \"iam.amazonaws.com\" and \
             event.action : \"createuser\"] [any where event.action like~ (\"CreateAccessKey*\", \"X\")]",
        )
        .unwrap();
        let may = |source, name| may_source_and_name(&f, source, name);
        assert!(may("iam.amazonaws.com", "CreateUser"));
        assert!(!may("sts.amazonaws.com", "CreateUser"));
        assert!(may("sts.amazonaws.com", "createaccesskey2"));
        assert!(!may("iam.amazonaws.com", "DeleteUser"));
        let f = rule("any where aws.cloudtrail.user_identity.type in~ (\"root\")").unwrap();
        assert!(f.may_match(&RawFields {
            identity_type: Some("Root"),
            ..RawFields::default()
        }));
        assert!(rule("any where event.action == \"A\" or user.name == \"b\"").is_none());
        assert!(rule("any where not event.action == \"A\"").is_none());
        assert!(rule("any where event.action regex \"A.*\"").is_none());
    }

    #[test]
    fn an_or_of_conjunctions_gives_one_alternative_each() {
        let f = filter(&["event.outcome: success and not aws.cloudtrail.user_identity.type: AWSService \
             and ((event.provider: organizations.amazonaws.com and event.action: (ListAccounts or ListRoots)) \
             or (event.provider: iam.amazonaws.com and event.action: ListAccountAliases))"])
        .unwrap();
        let may = |source, name| may_source_and_name(&f, source, name);
        assert!(may("organizations.amazonaws.com", "ListRoots"));
        assert!(may("iam.amazonaws.com", "ListAccountAliases"));
        assert!(!may("iam.amazonaws.com", "ListRoots"));
        assert!(!may("organizations.amazonaws.com", "ListAccountAliases"));
    }

    #[test]
    fn access_key_and_user_agent_conditions_count() {
        let f = filter(&[
            "data_stream.dataset: aws.cloudtrail and event.outcome: success and source.ip:* \
             and aws.cloudtrail.user_identity.access_key_id: AKIA*",
            "user_agent.original: (*S3 Browser* or *Cyberduck*) and event.outcome: success",
        ])
        .unwrap();
        let may = |access_key_id, user_agent| {
            f.may_match(&RawFields {
                access_key_id,
                user_agent,
                ..RawFields::default()
            })
        };
        assert!(may(Some("AKIAEXAMPLE"), None));
        assert!(!may(Some("ASIAEXAMPLE"), Some("aws-cli/2.15")));
        assert!(may(None, Some("S3 Browser 11.4.5 https://s3browser.com")));
        assert!(!may(None, None));
    }
}

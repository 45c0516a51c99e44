//! A cheap necessary condition for a raw record to match any rule, checked before the record
//! is normalized (normalization is most of a scan's cost, and most records match nothing).
//!
//! From each rule's query we keep the top-level conjuncts on `event.provider`, `event.action`
//! and `aws.cloudtrail.user_identity.type`, which the pipeline copies verbatim from
//! `eventSource`, `eventName` and `userIdentity.type`:
//! `event.provider: lambda.amazonaws.com and event.action: (AddPermission* or X)` becomes
//! "eventSource is `lambda.amazonaws.com` and eventName matches `AddPermission*` or is `X`".
//! A record that satisfies no rule's conditions cannot match, so it is counted but not
//! normalized. A rule without such conjuncts disables the prefilter (every record is then
//! normalized), so results never depend on it.

use crate::cloudtrail::RawFields;
use crate::kql::{Query, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawField {
    Source,
    Name,
    IdentityType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Glob(crate::kql::Wildcard),
}

impl Pattern {
    fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Exact(s) => s == text,
            Pattern::Glob(w) => w.matches(text),
        }
    }
}

/// All conjuncts must hold; each is satisfied by any of its patterns.
type Conjuncts = Vec<(RawField, Vec<Pattern>)>;

fn raw_field(field: &Value) -> Option<RawField> {
    match field {
        Value::Text(name) | Value::Quoted(name) => match name.as_str() {
            "event.provider" => Some(RawField::Source),
            "event.action" => Some(RawField::Name),
            "aws.cloudtrail.user_identity.type" => Some(RawField::IdentityType),
            _ => None,
        },
        _ => None,
    }
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

fn conjuncts(q: &Query, out: &mut Conjuncts) {
    match q {
        Query::And(items) => items.iter().for_each(|item| conjuncts(item, out)),
        Query::Or(items) => {
            let terms: Option<Vec<(RawField, Pattern)>> = items.iter().map(is_term).collect();
            if let Some(terms) = terms
                && let Some(&(field, _)) = terms.first()
                && terms.iter().all(|(f, _)| *f == field)
            {
                out.push((field, terms.into_iter().map(|(_, p)| p).collect()));
            }
        }
        other => {
            if let Some((field, p)) = is_term(other) {
                out.push((field, vec![p]));
            }
        }
    }
}

/// The prefilter of a rule set, or `None` when some rule constrains neither field.
#[derive(Debug, Clone)]
pub struct Prefilter {
    rules: Vec<Conjuncts>,
}

impl Prefilter {
    pub fn new<'a>(queries: impl IntoIterator<Item = &'a Query>) -> Option<Prefilter> {
        let mut rules = Vec::new();
        for q in queries {
            let mut c = Conjuncts::new();
            conjuncts(q, &mut c);
            if c.is_empty() {
                return None;
            }
            rules.push(c);
        }
        Some(Prefilter { rules })
    }

    /// Whether a record with these raw fields may match some rule.
    pub fn may_match(&self, raw: &RawFields) -> bool {
        self.rules.iter().any(|conjuncts| {
            conjuncts.iter().all(|(field, patterns)| {
                let value = match field {
                    RawField::Source => raw.event_source,
                    RawField::Name => raw.event_name,
                    RawField::IdentityType => raw.identity_type,
                };
                value.is_some_and(|v| patterns.iter().any(|p| p.matches(v)))
            })
        })
    }
}

#[cfg(test)]
mod tests {
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
    }
}

//! Leaf tests: one resolved field against one document value, with the semantics of the query
//! Elasticsearch would run for that field's mapping (see kql.md §7).

use std::cmp::Ordering;
use std::net::IpAddr;

use serde_json::Value as Json;

use super::date::{self, Millis};
use super::text;
use crate::kql::ast::{RangeOp, glob_match};

/// One value the document holds for a field, as the leaf tests see it: arrays are already
/// flattened into their elements, and an object only says whether it holds any value (which is
/// all `exists` asks of it).
#[derive(Debug, Clone, Copy)]
pub enum Leaf<'a> {
    Null,
    Bool(bool),
    Num(&'a serde_json::Number),
    Str(&'a str),
    Composite { has_value: bool },
}

impl<'a> Leaf<'a> {
    pub fn of(value: &'a Json) -> Leaf<'a> {
        match value {
            Json::Null => Leaf::Null,
            Json::Bool(b) => Leaf::Bool(*b),
            Json::Number(n) => Leaf::Num(n),
            Json::String(s) => Leaf::Str(s),
            composite => Leaf::Composite {
                has_value: super::doc::has_value(composite),
            },
        }
    }
}

/// A query value prepared for comparisons.
#[derive(Debug, Clone)]
pub(crate) struct Scalar {
    pub text: String,
    pub number: Option<f64>,
}

impl Scalar {
    pub fn new(text: String) -> Self {
        let number = parse_number(&text);
        Scalar { text, number }
    }
}

fn parse_number(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("nan") || t.to_ascii_lowercase().contains("inf") {
        return None;
    }
    t.parse::<f64>().ok()
}

/// How a range bound compares, decided by the field's mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeMode {
    Numeric,
    Date,
    Ip,
    /// keyword and text fields: byte-wise string order.
    Lexicographic,
    /// No metadata: numbers numerically, date-looking strings as dates, other strings bytewise.
    Dynamic,
}

#[derive(Debug, Clone)]
pub(crate) enum Test {
    Never,
    Exists,
    /// `exists` on an `ip` field: only a value the field could index. A malformed address
    /// (`ignore_malformed`, as the CloudTrail integration maps `source.ip`) is not indexed,
    /// so Elasticsearch finds no value.
    IpExists,
    /// keyword semantics (also unknown fields): exact, case-sensitive unless `ci` (then `text`
    /// is lower-case); numbers and booleans in the document compare after coercion.
    Term {
        value: Scalar,
        ci: bool,
    },
    /// Anchored wildcard over literal pieces (lower-case if `ci`).
    Glob {
        pieces: Vec<String>,
        ci: bool,
    },
    /// `match` / `match_phrase` on a text field.
    Analyzed {
        tokens: Vec<String>,
        phrase: bool,
    },
    /// `query_string` with a wildcard on a text field: the pattern against each token.
    AnalyzedGlob {
        pieces: Vec<String>,
    },
    /// `term` on a numeric field.
    NumberEq(f64),
    /// `term` on a boolean field.
    BoolEq(bool),
    /// `gte`/`lte` equality on a date field, as an inclusive instant interval.
    DateBetween(Millis, Millis),
    /// `term` on an ip field: an address or a CIDR block.
    IpIn {
        net: IpAddr,
        prefix: u8,
    },
    Range {
        op: RangeOp,
        bound: Bound,
        mode: RangeMode,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub text: String,
    pub number: Option<f64>,
    pub date: Option<Millis>,
    pub ip: Option<IpAddr>,
}

impl Bound {
    pub fn new(text: String, op: RangeOp, now: Millis) -> Self {
        let round_up = matches!(op, RangeOp::Lte | RangeOp::Gt);
        Bound {
            number: parse_number(&text),
            date: date::parse(&text, round_up, now),
            ip: text.trim().parse().ok(),
            text,
        }
    }
}

/// Parse `addr` or `addr/prefix` (Elasticsearch's ip `term` accepts CIDR notation).
pub(crate) fn parse_ip_term(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let addr: IpAddr = addr.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((addr, prefix))
}

fn ip_in(candidate: IpAddr, net: IpAddr, prefix: u8) -> bool {
    fn bits(ip: IpAddr) -> (u128, u32) {
        match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    }
    let candidate = match (candidate, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        (c, _) => c,
    };
    let ((c, c_len), (n, n_len)) = (bits(candidate), bits(net));
    if c_len != n_len {
        return false;
    }
    // Addresses are left-aligned in 128 bits, so the prefix counts from the top bit.
    let keep = u32::from(prefix);
    if keep == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - keep);
    (c & mask) == (n & mask)
}

thread_local! {
    /// Scratch buffer for case-insensitive comparisons (allocated once per thread).
    static LOWER: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn with_lower<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    LOWER.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            buf.extend(s.chars().flat_map(char::to_lowercase));
            f(&buf)
        }
        Err(_) => f(&s.to_lowercase()),
    })
}

impl Test {
    /// Relative cost of one check (see `Node::cost`).
    pub fn cost(&self) -> u32 {
        match self {
            Test::Never | Test::Exists => 1,
            Test::IpExists => 2,
            Test::Term { .. } | Test::NumberEq(_) | Test::BoolEq(_) => 2,
            Test::Glob { .. } => 3,
            Test::DateBetween(..) | Test::IpIn { .. } | Test::Range { .. } => 4,
            Test::Analyzed { .. } | Test::AnalyzedGlob { .. } => 6,
        }
    }

    /// Whether one value stored in the document passes. `ignore_above` is the keyword length
    /// limit of the field, if known.
    pub fn matches(&self, value: Leaf<'_>, ignore_above: Option<usize>) -> bool {
        let too_long =
            |s: &str| ignore_above.is_some_and(|max| s.len() > max && s.chars().count() > max);
        match self {
            Test::Never => false,
            Test::Exists => match value {
                Leaf::Str(s) => !too_long(s),
                Leaf::Null => false,
                Leaf::Composite { has_value } => has_value,
                Leaf::Num(_) | Leaf::Bool(_) => true,
            },
            Test::Term { value: q, ci } => match value {
                Leaf::Str(s) if too_long(s) => false,
                Leaf::Str(s) if *ci => with_lower(s, |l| l == q.text),
                Leaf::Str(s) => s == q.text,
                Leaf::Num(n) => q.number.is_some_and(|qn| n.as_f64() == Some(qn)),
                Leaf::Bool(b) => q.text == bool_text(b),
                _ => false,
            },
            Test::Glob { pieces, ci } => match value {
                Leaf::Str(s) if too_long(s) => false,
                Leaf::Str(s) if *ci => with_lower(s, |l| glob_match(pieces, l)),
                Leaf::Str(s) => glob_match(pieces, s),
                Leaf::Num(n) => glob_match(pieces, &n.to_string()),
                Leaf::Bool(b) => glob_match(pieces, bool_text(b)),
                _ => false,
            },
            Test::Analyzed { tokens, phrase } => match value {
                Leaf::Str(s) if *phrase => text::matches_phrase(s, tokens),
                Leaf::Str(s) => text::matches_any(s, tokens),
                Leaf::Num(n) => text::matches_any(&n.to_string(), tokens),
                Leaf::Bool(b) => text::matches_any(bool_text(b), tokens),
                _ => false,
            },
            Test::AnalyzedGlob { pieces } => match value {
                Leaf::Str(s) => text::tokens(s).any(|t| with_lower(t, |l| glob_match(pieces, l))),
                _ => false,
            },
            Test::NumberEq(q) => doc_number(value) == Some(*q),
            Test::BoolEq(q) => match value {
                Leaf::Bool(b) => b == *q,
                Leaf::Str(s) => s == bool_text(*q),
                _ => false,
            },
            Test::DateBetween(lo, hi) => doc_date(value).is_some_and(|t| *lo <= t && t <= *hi),
            Test::IpExists => match value {
                Leaf::Str(s) => s.trim().parse::<IpAddr>().is_ok(),
                _ => false,
            },
            Test::IpIn { net, prefix } => match value {
                Leaf::Str(s) => s.trim().parse().is_ok_and(|ip| ip_in(ip, *net, *prefix)),
                _ => false,
            },
            Test::Range { op, bound, mode } => {
                if let Leaf::Str(s) = value
                    && too_long(s)
                {
                    return false;
                }
                compare(value, bound, *mode).is_some_and(|ord| match op {
                    RangeOp::Lt => ord == Ordering::Less,
                    RangeOp::Lte => ord != Ordering::Greater,
                    RangeOp::Gt => ord == Ordering::Greater,
                    RangeOp::Gte => ord != Ordering::Less,
                })
            }
        }
    }
}

fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

fn doc_number(value: Leaf<'_>) -> Option<f64> {
    match value {
        Leaf::Num(n) => n.as_f64(),
        Leaf::Str(s) => parse_number(s),
        _ => None,
    }
}

fn doc_date(value: Leaf<'_>) -> Option<Millis> {
    match value {
        Leaf::Num(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Leaf::Str(s) => date::parse_plain(s.trim(), false),
        _ => None,
    }
}

/// Order of the document value relative to the bound, or `None` if they cannot be compared.
fn compare(value: Leaf<'_>, bound: &Bound, mode: RangeMode) -> Option<Ordering> {
    match mode {
        RangeMode::Numeric => doc_number(value)?.partial_cmp(&bound.number?),
        RangeMode::Date => Some(doc_date(value)?.cmp(&bound.date?)),
        RangeMode::Ip => match value {
            Leaf::Str(s) => Some(s.trim().parse::<IpAddr>().ok()?.cmp(&bound.ip?)),
            _ => None,
        },
        RangeMode::Lexicographic => match value {
            Leaf::Str(s) => Some(s.cmp(bound.text.as_str())),
            Leaf::Num(n) => Some(n.to_string().as_str().cmp(bound.text.as_str())),
            Leaf::Bool(b) => Some(bool_text(b).cmp(bound.text.as_str())),
            _ => None,
        },
        RangeMode::Dynamic => match value {
            Leaf::Num(n) => n.as_f64()?.partial_cmp(&bound.number?),
            Leaf::Str(s) => match (date::parse_plain(s.trim(), false), bound.date) {
                (Some(t), Some(b)) if !s.trim().bytes().all(|c| c.is_ascii_digit()) => {
                    Some(t.cmp(&b))
                }
                _ => Some(s.cmp(bound.text.as_str())),
            },
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaf(value: &Json) -> Leaf<'_> {
        Leaf::of(value)
    }

    #[test]
    fn term_coerces_numbers_and_booleans_but_is_case_sensitive() {
        let t = Test::Term {
            value: Scalar::new("1024".into()),
            ci: false,
        };
        assert!(t.matches(leaf(&json!(1024)), None));
        assert!(t.matches(leaf(&json!(1024.0)), None));
        assert!(t.matches(leaf(&json!("1024")), None));
        assert!(!t.matches(leaf(&json!("01024")), None));
        let t = Test::Term {
            value: Scalar::new("true".into()),
            ci: false,
        };
        assert!(t.matches(leaf(&json!(true)), None));
        let t = Test::Term {
            value: Scalar::new("Success".into()),
            ci: false,
        };
        assert!(!t.matches(leaf(&json!("success")), None));
        let t = Test::Term {
            value: Scalar::new("success".into()),
            ci: true,
        };
        assert!(t.matches(leaf(&json!("SUCCESS")), None));
    }

    #[test]
    fn ignore_above_makes_long_keywords_unmatchable() {
        let t = Test::Glob {
            pieces: vec!["".into(), "".into(), "".into()],
            ci: false,
        };
        assert!(t.matches(leaf(&json!("ab")), Some(2)));
        assert!(!t.matches(leaf(&json!("abc")), Some(2)));
        // Characters, not bytes.
        assert!(t.matches(leaf(&json!("éé")), Some(2)));
        assert!(!Test::Exists.matches(leaf(&json!("abc")), Some(2)));
    }

    #[test]
    fn a_malformed_address_is_no_value_of_an_ip_field() {
        assert!(Test::IpExists.matches(leaf(&json!("10.0.0.1")), None));
        assert!(Test::IpExists.matches(leaf(&json!("2001:db8::1")), None));
        assert!(!Test::IpExists.matches(leaf(&json!("010.000.000.001")), None));
        assert!(!Test::IpExists.matches(leaf(&json!("lambda.amazonaws.com")), None));
    }

    #[test]
    fn ip_terms_accept_cidr_blocks() {
        let (net, prefix) = parse_ip_term("10.0.0.0/8").unwrap();
        let t = Test::IpIn { net, prefix };
        assert!(t.matches(leaf(&json!("10.1.2.3")), None));
        assert!(!t.matches(leaf(&json!("11.1.2.3")), None));
        assert!(t.matches(leaf(&json!("::ffff:10.0.0.1")), None));
        let (net, prefix) = parse_ip_term("fe80::/10").unwrap();
        assert!(Test::IpIn { net, prefix }.matches(leaf(&json!("fe80::1")), None));
        assert!(parse_ip_term("10.0.0.0/33").is_none());
        assert!(parse_ip_term("host").is_none());
    }

    #[test]
    fn ranges_by_mode() {
        let num = |op, b: &str| Test::Range {
            op,
            bound: Bound::new(b.into(), op, 0),
            mode: RangeMode::Numeric,
        };
        assert!(num(RangeOp::Gte, "1024").matches(leaf(&json!(1024)), None));
        assert!(num(RangeOp::Gt, "9").matches(leaf(&json!("10")), None));
        let lex = Test::Range {
            op: RangeOp::Gt,
            bound: Bound::new("9".into(), RangeOp::Gt, 0),
            mode: RangeMode::Lexicographic,
        };
        assert!(!lex.matches(leaf(&json!("10")), None));
        let date = |op, b: &str| Test::Range {
            op,
            bound: Bound::new(b.into(), op, 0),
            mode: RangeMode::Date,
        };
        assert!(
            date(RangeOp::Lte, "2024-01-01").matches(leaf(&json!("2024-01-01T12:00:00Z")), None)
        );
        assert!(
            !date(RangeOp::Lt, "2024-01-01").matches(leaf(&json!("2024-01-01T12:00:00Z")), None)
        );
        let dynamic = |op, b: &str| Test::Range {
            op,
            bound: Bound::new(b.into(), op, 0),
            mode: RangeMode::Dynamic,
        };
        assert!(dynamic(RangeOp::Gte, "1024").matches(leaf(&json!(2000)), None));
        assert!(
            dynamic(RangeOp::Gt, "2023-12-31").matches(leaf(&json!("2024-01-01T00:00:00Z")), None)
        );
        assert!(dynamic(RangeOp::Gt, "abc").matches(leaf(&json!("abd")), None));
        assert!(!dynamic(RangeOp::Gt, "x").matches(leaf(&json!(null)), None));
    }
}

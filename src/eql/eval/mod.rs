//! Evaluating a parsed EQL event query against JSON documents with Elasticsearch's semantics
//! (not endgame's):
//!
//! - A missing field (or a null, or an empty array) is null. Comparisons and predicates with a
//!   null operand are false, except `x == null` (true when x is null) and `x != null`.
//! - `==`, `!=`, `<`... are case-sensitive; `:` is case-insensitive with `*` / `?` wildcards;
//!   `in~`, `like~`, `regex~` and the `~` functions fold case.
//! - A multi-valued field matches a comparison or predicate when any of its values does (as a
//!   term query does), and `!=` / `not in` when none does. Functions given a multi-valued
//!   argument return null: Elasticsearch refuses arrays there.
//! - Numbers compare numerically whatever their type; a numeric string compares with a number
//!   as that number (Elasticsearch coerces such strings when it indexes a numeric field).
//! - Integer arithmetic that overflows or divides by zero is null (Elasticsearch fails the
//!   query instead).

mod doc;
mod text;

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use regex::Regex;
use serde_json::Value as Json;

use super::ast::{ArithOp, Category, CmpOp, Expr, Literal, MatchOp, Query};
use super::functions;

pub use text::wildcard_match;
pub(crate) use text::{cidr_match, lucene_wildcard_match, wildcard_match_folded};

/// The value of an expression over one document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// A field with more than one value.
    Many(Vec<Val<'a>>),
}

impl<'a> Val<'a> {
    fn from_json(json: &'a Json) -> Val<'a> {
        match json {
            Json::Bool(b) => Val::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => n.as_f64().map_or(Val::Null, Val::Float),
            },
            Json::String(s) => Val::Str(Cow::Borrowed(s)),
            Json::Null | Json::Array(_) | Json::Object(_) => Val::Null,
        }
    }

    fn from_literal(literal: &'a Literal) -> Val<'a> {
        match literal {
            Literal::Null => Val::Null,
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Int(n) => Val::Int(*n),
            Literal::Float(x) => Val::Float(*x),
            Literal::String(s) => Val::Str(Cow::Borrowed(s)),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// True only for `true` (or a multi-valued field holding `true`).
    fn truthy(&self) -> bool {
        match self {
            Val::Bool(b) => *b,
            Val::Many(items) => items.iter().any(Val::truthy),
            _ => false,
        }
    }

    /// The text `string()` and `concat()` give a scalar; `None` for null and arrays.
    pub(crate) fn to_text(&self) -> Option<Cow<'a, str>> {
        match self {
            Val::Str(s) => Some(s.clone()),
            Val::Int(n) => Some(Cow::Owned(n.to_string())),
            Val::Float(x) => Some(Cow::Owned(format!("{x:?}"))),
            Val::Bool(b) => Some(Cow::Owned(b.to_string())),
            Val::Null | Val::Many(_) => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Val::Int(n) => Some(*n as f64),
            Val::Float(x) => Some(*x),
            Val::Str(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
            _ => None,
        }
    }
}

/// Settings of the evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchOptions {
    /// The field holding the event category (`process where` compares it with `process`).
    pub event_category_field: String,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            event_category_field: "event.category".to_string(),
        }
    }
}

/// An event query ready to test documents.
#[derive(Debug, Clone)]
pub struct Matcher {
    query: Query,
    category_field: String,
    /// Compiled `regex` patterns by (pattern, case-insensitive).
    regexes: HashMap<(String, bool), Regex>,
}

/// `pattern` as a regular expression that must match the whole value, as Elasticsearch's
/// regexp query does.
pub(crate) fn compile_regex(pattern: &str, insensitive: bool) -> Result<Regex, regex::Error> {
    let flags = if insensitive { "(?i)" } else { "" };
    regex::RegexBuilder::new(&format!("{flags}^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
}

fn collect_regexes(e: &Expr, out: &mut HashMap<(String, bool), Regex>) -> Result<(), regex::Error> {
    match e {
        Expr::Match {
            expr,
            op,
            insensitive,
            patterns,
            ..
        } => {
            if *op == MatchOp::Regex {
                for p in patterns {
                    if let Entry::Vacant(slot) = out.entry((p.clone(), *insensitive)) {
                        slot.insert(compile_regex(p, *insensitive)?);
                    }
                }
            }
            collect_regexes(expr, out)
        }
        Expr::Literal(_) | Expr::Field(_) => Ok(()),
        Expr::And(items) | Expr::Or(items) | Expr::Call { args: items, .. } => {
            items.iter().try_for_each(|i| collect_regexes(i, out))
        }
        Expr::Not(inner) | Expr::Neg(inner) => collect_regexes(inner, out),
        Expr::Compare { left, right, .. } | Expr::Arith { left, right, .. } => {
            collect_regexes(left, out)?;
            collect_regexes(right, out)
        }
        Expr::In { expr, list, .. } => {
            collect_regexes(expr, out)?;
            list.iter().try_for_each(|i| collect_regexes(i, out))
        }
    }
}

impl Matcher {
    /// Compile `query`. Fails only on a regular expression the parser did not see (a tree
    /// built by hand).
    pub fn new(query: &Query, options: &MatchOptions) -> Result<Matcher, regex::Error> {
        let mut regexes = HashMap::new();
        collect_regexes(&query.condition, &mut regexes)?;
        Ok(Matcher {
            query: query.clone(),
            category_field: options.event_category_field.clone(),
            regexes,
        })
    }

    /// As [`Matcher::new`], also compiling the expressions `keys` that [`Matcher::key`] will
    /// evaluate (a sequence's join keys).
    pub(crate) fn with_keys(
        query: &Query,
        keys: &[Expr],
        options: &MatchOptions,
    ) -> Result<Matcher, regex::Error> {
        let mut matcher = Matcher::new(query, options)?;
        for key in keys {
            collect_regexes(key, &mut matcher.regexes)?;
        }
        Ok(matcher)
    }

    /// The value of a join key over `doc` as JSON; `None` when it has several values (a
    /// multi-valued field), which cannot join.
    pub(crate) fn key(&self, e: &Expr, doc: &Json) -> Option<Json> {
        Some(match self.eval(e, doc) {
            Val::Null => Json::Null,
            Val::Bool(b) => Json::Bool(b),
            Val::Int(n) => Json::from(n),
            Val::Float(x) => serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number),
            Val::Str(s) => Json::String(s.into_owned()),
            Val::Many(_) => return None,
        })
    }

    /// The fields [`Matcher::matches`] reads: a document holding them gives the same answer as
    /// the whole document.
    pub fn fields_read(&self) -> Vec<&str> {
        let mut fields = Vec::new();
        if let Category::Named(_) = &self.query.category {
            fields.push(self.category_field.as_str());
        }
        self.query.condition.fields(&mut fields);
        fields
    }

    /// Whether `doc` is an event of the query's category that meets its condition.
    pub fn matches(&self, doc: &Json) -> bool {
        self.category_matches(doc) && self.eval(&self.query.condition, doc).truthy()
    }

    fn category_matches(&self, doc: &Json) -> bool {
        let Category::Named(name) = &self.query.category else {
            return true;
        };
        let mut found = false;
        doc::each_value(doc, &self.category_field, &mut |v| {
            found |= v.as_str() == Some(name.as_str());
        });
        found
    }

    fn eval<'a>(&'a self, e: &'a Expr, doc: &'a Json) -> Val<'a> {
        match e {
            Expr::Literal(l) => Val::from_literal(l),
            Expr::Field(field) => {
                // Most fields hold one value: no list is built for it.
                let mut one: Option<&Json> = None;
                let mut more: Vec<Val<'a>> = Vec::new();
                doc::each_value(doc, &field.name, &mut |value| match one {
                    None if more.is_empty() => one = Some(value),
                    _ => {
                        if let Some(first) = one.take() {
                            more.push(Val::from_json(first));
                        }
                        more.push(Val::from_json(value));
                    }
                });
                match (one, more.is_empty()) {
                    (Some(value), true) => Val::from_json(value),
                    (None, true) => Val::Null,
                    _ => Val::Many(more),
                }
            }
            Expr::And(items) => Val::Bool(items.iter().all(|i| self.eval(i, doc).truthy())),
            Expr::Or(items) => Val::Bool(items.iter().any(|i| self.eval(i, doc).truthy())),
            Expr::Not(inner) => Val::Bool(!self.eval(inner, doc).truthy()),
            Expr::Compare { op, left, right } => {
                let l = self.eval(left, doc);
                let r = self.eval(right, doc);
                // `x == null` asks whether x is null; otherwise null makes the comparison fail.
                let null_test = matches!(**left, Expr::Literal(Literal::Null))
                    || matches!(**right, Expr::Literal(Literal::Null));
                match op {
                    CmpOp::Eq | CmpOp::Ne if null_test => {
                        Val::Bool((l.is_null() && r.is_null()) == (*op == CmpOp::Eq))
                    }
                    CmpOp::Ne if !l.is_null() && !r.is_null() => {
                        Val::Bool(!any_pair(&l, &r, &mut |a, b| equal(a, b, false)))
                    }
                    _ => Val::Bool(any_pair(&l, &r, &mut |a, b| compare(*op, a, b))),
                }
            }
            Expr::In {
                expr,
                list,
                negated,
                insensitive,
            } => {
                let v = self.eval(expr, doc);
                if v.is_null() {
                    return Val::Bool(false);
                }
                let found = list.iter().any(|item| {
                    let item = self.eval(item, doc);
                    any_pair(&v, &item, &mut |a, b| equal(a, b, *insensitive))
                });
                Val::Bool(found != *negated)
            }
            Expr::Match {
                expr,
                op,
                insensitive,
                patterns,
                ..
            } => {
                let v = self.eval(expr, doc);
                Val::Bool(any_value(&v, &mut |scalar| {
                    let Some(text) = scalar.to_text() else {
                        return false;
                    };
                    patterns
                        .iter()
                        .any(|p| self.pattern_matches(*op, *insensitive, p, &text))
                }))
            }
            Expr::Arith { op, left, right } => {
                arith(*op, &self.eval(left, doc), &self.eval(right, doc))
            }
            Expr::Neg(inner) => match self.eval(inner, doc) {
                Val::Int(n) => n.checked_neg().map_or(Val::Null, Val::Int),
                Val::Float(x) => Val::Float(-x),
                _ => Val::Null,
            },
            Expr::Call {
                name,
                insensitive,
                args,
            } => {
                if let Some(found) = self.pushed_down(name, *insensitive, args, doc) {
                    return found;
                }
                let args: Vec<Val<'a>> = args.iter().map(|a| self.eval(a, doc)).collect();
                functions::call(name, *insensitive, &args)
            }
        }
    }

    /// `stringContains(field, "text")` and `endsWith(field, "text")`: Elasticsearch runs these
    /// as a wildcard query on the field (`*text*`, `*text`; its EQL `QueryTranslator`) without
    /// escaping the text, so a `*`, `?` or `\` in it acts as in a wildcard query. Other
    /// arguments are evaluated as the functions define.
    fn pushed_down<'a>(
        &'a self,
        name: &str,
        insensitive: bool,
        args: &'a [Expr],
        doc: &'a Json,
    ) -> Option<Val<'a>> {
        let [field @ Expr::Field(_), Expr::Literal(Literal::String(text))] = args else {
            return None;
        };
        // Without wildcard characters the query matches as the function does: no pattern
        // needs building for the common case.
        if !text.contains(['*', '?', '\\']) {
            return None;
        }
        let pattern = match name {
            "stringContains" => format!("*{text}*"),
            "endsWith" => format!("*{text}"),
            _ => return None,
        };
        let value = self.eval(field, doc);
        Some(Val::Bool(any_value(&value, &mut |scalar| match scalar {
            Val::Str(s) => lucene_wildcard_match(&pattern, s, insensitive),
            _ => false,
        })))
    }

    fn pattern_matches(&self, op: MatchOp, insensitive: bool, pattern: &str, text: &str) -> bool {
        match op {
            MatchOp::Colon | MatchOp::Like if insensitive => wildcard_match_folded(pattern, text),
            MatchOp::Colon | MatchOp::Like => wildcard_match(pattern, text),
            MatchOp::Regex => self
                .regexes
                .get(&(pattern.to_string(), insensitive))
                .is_some_and(|re| re.is_match(text)),
        }
    }
}

/// `f` on each scalar of `v` (the values of a multi-valued field one by one) until true.
fn any_value<'a>(v: &Val<'a>, f: &mut dyn FnMut(&Val<'a>) -> bool) -> bool {
    match v {
        Val::Many(items) => items.iter().any(|i| any_value(i, f)),
        Val::Null => false,
        scalar => f(scalar),
    }
}

fn any_pair<'a>(l: &Val<'a>, r: &Val<'a>, f: &mut dyn FnMut(&Val<'a>, &Val<'a>) -> bool) -> bool {
    any_value(l, &mut |a| any_value(r, &mut |b| f(a, b)))
}

/// The order of two scalars, `None` when they do not compare (a string that is not a number
/// against a number, a boolean against anything else).
fn order(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Str(x), Val::Str(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Bool(_), _) | (_, Val::Bool(_)) => None,
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn equal(a: &Val<'_>, b: &Val<'_>, insensitive: bool) -> bool {
    if insensitive {
        if let (Val::Str(x), Val::Str(y)) = (a, b) {
            return x.to_lowercase() == y.to_lowercase();
        }
    }
    order(a, b) == Some(Ordering::Equal)
}

fn compare(op: CmpOp, a: &Val<'_>, b: &Val<'_>) -> bool {
    let Some(ord) = order(a, b) else {
        return false;
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

/// Arithmetic on two numbers: integers stay integers (division truncates, as in Java) unless
/// either side is a double; anything else is null.
pub(crate) fn arith<'a>(op: ArithOp, l: &Val<'a>, r: &Val<'a>) -> Val<'a> {
    match (l, r) {
        (Val::Int(a), Val::Int(b)) => {
            let out = match op {
                ArithOp::Add => a.checked_add(*b),
                ArithOp::Sub => a.checked_sub(*b),
                ArithOp::Mul => a.checked_mul(*b),
                ArithOp::Div => a.checked_div(*b),
                ArithOp::Mod => a.checked_rem(*b),
            };
            out.map_or(Val::Null, Val::Int)
        }
        (Val::Int(_) | Val::Float(_), Val::Int(_) | Val::Float(_)) => {
            let (Some(a), Some(b)) = (l.as_f64(), r.as_f64()) else {
                return Val::Null;
            };
            let out = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => a / b,
                ArithOp::Mod => a % b,
            };
            if out.is_finite() {
                Val::Float(out)
            } else {
                Val::Null
            }
        }
        _ => Val::Null,
    }
}

#[cfg(test)]
pub(crate) mod tests;

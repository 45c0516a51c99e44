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

mod compile;
mod doc;
mod prepared;
mod text;

use std::borrow::Cow;
use std::cmp::Ordering;

use regex::Regex;
use serde_json::Value as Json;

use super::ast::{ArithOp, Category, CmpOp, Expr, Literal, Query};
use super::functions;

use compile::{Node, Pattern, compile};
pub use prepared::{FieldSlots, PrepareBuffer, Prepared};
pub use text::wildcard_match;
pub(crate) use text::{LuceneWildcard, cidr_match, wildcard_match_folded};

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

/// A scalar value as JSON; `None` for null (and a list, which is no scalar).
fn val_json(value: &Val<'_>) -> Option<Json> {
    match value {
        Val::Null | Val::Many(_) => None,
        Val::Bool(b) => Some(Json::Bool(*b)),
        Val::Int(n) => Some(Json::from(*n)),
        Val::Float(x) => serde_json::Number::from_f64(*x).map(Json::Number),
        Val::Str(s) => Some(Json::String(s.to_string())),
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
    /// The category the query names (`None` for `any`) and the slot of the category field.
    category: Option<(String, Option<u32>)>,
    condition: Node,
    /// A sequence stage's join keys, see [`Matcher::keys`].
    keys: Vec<Node>,
    /// The [`FieldSlots`] the slot numbers belong to.
    slots_id: u64,
}

/// `pattern` as a regular expression that must match the whole value, as Elasticsearch's
/// regexp query does.
pub(crate) fn compile_regex(pattern: &str, insensitive: bool) -> Result<Regex, regex::Error> {
    let flags = if insensitive { "(?i)" } else { "" };
    regex::RegexBuilder::new(&format!("{flags}^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
}

/// Where the evaluator reads field values: a JSON document, or a block prepared from one.
pub(crate) trait Document {
    /// Call `f` with each value of the field `name` (at `slot` of blocks prepared for the
    /// slots `slots_id`).
    fn each<'s>(
        &'s self,
        slots_id: u64,
        name: &'s str,
        slot: Option<u32>,
        f: &mut dyn FnMut(Val<'s>),
    );

    /// The field's value: null when it has none, `Many` when it has several.
    fn field<'s>(&'s self, slots_id: u64, name: &'s str, slot: Option<u32>) -> Val<'s> {
        // Most fields hold one value: no list is built for it.
        let mut one: Option<Val<'s>> = None;
        let mut more: Vec<Val<'s>> = Vec::new();
        self.each(slots_id, name, slot, &mut |value| {
            if one.is_none() && more.is_empty() {
                one = Some(value);
            } else {
                more.extend(one.take());
                more.push(value);
            }
        });
        match (one, more.is_empty()) {
            (Some(value), true) => value,
            (None, true) => Val::Null,
            _ => Val::Many(more),
        }
    }
}

impl Document for Json {
    fn each<'s>(&'s self, _: u64, name: &'s str, _: Option<u32>, f: &mut dyn FnMut(Val<'s>)) {
        doc::each_value(self, name, &mut |v| f(Val::from_json(v)));
    }
}

impl Document for Prepared<'_> {
    fn each<'s>(
        &'s self,
        slots_id: u64,
        name: &'s str,
        slot: Option<u32>,
        f: &mut dyn FnMut(Val<'s>),
    ) {
        match slot.and_then(|slot| self.values(slots_id, slot)) {
            Some(values) => values.for_each(f),
            None => self.json().each(slots_id, name, None, f),
        }
    }

    fn field<'s>(&'s self, slots_id: u64, name: &'s str, slot: Option<u32>) -> Val<'s> {
        let Some(mut values) = slot.and_then(|slot| self.values(slots_id, slot)) else {
            return self.json().field(slots_id, name, None);
        };
        match values.len() {
            0 => Val::Null,
            1 => values.next().unwrap_or(Val::Null),
            _ => Val::Many(values.collect()),
        }
    }
}

impl Matcher {
    /// Compile `query`. Fails only on a regular expression the parser did not see (a tree
    /// built by hand).
    pub fn new(query: &Query, options: &MatchOptions) -> Result<Matcher, regex::Error> {
        Self::with_slots(query, options, &mut FieldSlots::new())
    }

    /// As [`Matcher::new`], reading field values from documents prepared with `slots` (see
    /// [`Matcher::matches_prepared`]).
    pub fn with_slots(
        query: &Query,
        options: &MatchOptions,
        slots: &mut FieldSlots,
    ) -> Result<Matcher, regex::Error> {
        Self::with_keys(query, &[], options, slots)
    }

    /// As [`Matcher::with_slots`], also compiling the expressions `keys` that
    /// [`Matcher::keys`] evaluates (a sequence stage's join keys).
    pub(crate) fn with_keys(
        query: &Query,
        keys: &[Expr],
        options: &MatchOptions,
        slots: &mut FieldSlots,
    ) -> Result<Matcher, regex::Error> {
        let category = match &query.category {
            Category::Named(name) => {
                Some((name.clone(), slots.slot(&options.event_category_field)))
            }
            Category::Any => None,
        };
        Ok(Matcher {
            query: query.clone(),
            category_field: options.event_category_field.clone(),
            category,
            condition: compile(&query.condition, slots)?,
            keys: keys
                .iter()
                .map(|k| compile(k, slots))
                .collect::<Result<_, _>>()?,
            slots_id: slots.id(),
        })
    }

    /// The values of the join keys over `doc` as JSON; `None` when one has several values (a
    /// multi-valued field), which cannot join.
    pub(crate) fn keys<D: Document + ?Sized>(&self, doc: &D) -> Option<Vec<Json>> {
        self.keys
            .iter()
            .map(|key| match self.eval(key, doc) {
                Val::Many(_) => None,
                one => Some(val_json(&one).unwrap_or(Json::Null)),
            })
            .collect()
    }

    /// Each join key's values over `doc` as JSON, every value of a multi-valued field apart
    /// (a sample groups an event under each, as a terms aggregation does); none for null.
    pub(crate) fn key_values<D: Document + ?Sized>(&self, doc: &D) -> Vec<Vec<Json>> {
        self.keys
            .iter()
            .map(|key| {
                let mut values = Vec::new();
                match self.eval(key, doc) {
                    Val::Many(items) => values.extend(items.iter().filter_map(val_json)),
                    one => values.extend(val_json(&one)),
                }
                values
            })
            .collect()
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
        self.matches_doc(doc)
    }

    /// As [`Matcher::matches`], on a prepared document.
    pub fn matches_prepared(&self, doc: &Prepared<'_>) -> bool {
        self.matches_doc(doc)
    }

    pub(crate) fn matches_doc<D: Document + ?Sized>(&self, doc: &D) -> bool {
        self.category_matches(doc) && self.eval(&self.condition, doc).truthy()
    }

    fn category_matches<D: Document + ?Sized>(&self, doc: &D) -> bool {
        let Some((name, slot)) = &self.category else {
            return true;
        };
        let mut found = false;
        doc.each(self.slots_id, &self.category_field, *slot, &mut |v| {
            found |= matches!(&v, Val::Str(s) if s == name);
        });
        found
    }

    fn eval<'a, D: Document + ?Sized>(&'a self, node: &'a Node, doc: &'a D) -> Val<'a> {
        match node {
            Node::Literal(l) => Val::from_literal(l),
            Node::Field { name, slot } => doc.field(self.slots_id, name, *slot),
            Node::And(items) => Val::Bool(items.iter().all(|i| self.eval(i, doc).truthy())),
            Node::Or(items) => Val::Bool(items.iter().any(|i| self.eval(i, doc).truthy())),
            Node::Not(inner) => Val::Bool(!self.eval(inner, doc).truthy()),
            Node::Compare {
                op,
                left,
                right,
                null_test,
            } => {
                let l = self.eval(left, doc);
                let r = self.eval(right, doc);
                match op {
                    // `x == null` asks whether x is null; otherwise null fails the comparison.
                    CmpOp::Eq | CmpOp::Ne if *null_test => {
                        Val::Bool((l.is_null() && r.is_null()) == (*op == CmpOp::Eq))
                    }
                    CmpOp::Ne if !l.is_null() && !r.is_null() => {
                        Val::Bool(!any_pair(&l, &r, &mut |a, b| equal(a, b, false)))
                    }
                    _ => Val::Bool(any_pair(&l, &r, &mut |a, b| compare(*op, a, b))),
                }
            }
            Node::In {
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
            Node::Match {
                expr,
                insensitive,
                patterns,
            } => {
                let v = self.eval(expr, doc);
                Val::Bool(any_value(&v, &mut |scalar| {
                    let Some(text) = scalar.to_text() else {
                        return false;
                    };
                    patterns.iter().any(|p| match p {
                        Pattern::Wildcard(p) if *insensitive => wildcard_match_folded(p, &text),
                        Pattern::Wildcard(p) => wildcard_match(p, &text),
                        Pattern::Regex(re) => re.is_match(&text),
                    })
                }))
            }
            Node::Arith { op, left, right } => {
                arith(*op, &self.eval(left, doc), &self.eval(right, doc))
            }
            Node::Neg(inner) => match self.eval(inner, doc) {
                Val::Int(n) => n.checked_neg().map_or(Val::Null, Val::Int),
                Val::Float(x) => Val::Float(-x),
                _ => Val::Null,
            },
            Node::Call {
                function,
                insensitive,
                args,
                wildcard,
            } => {
                let Some(function) = *function else {
                    return Val::Null;
                };
                if let (Some(pattern), Some(field)) = (wildcard, args.first()) {
                    let value = self.eval(field, doc);
                    return Val::Bool(any_value(&value, &mut |scalar| match scalar {
                        Val::Str(s) => pattern.matches(s),
                        _ => false,
                    }));
                }
                let eval = |a| self.eval(a, doc);
                // Calls of up to three arguments, nearly all, take them on the stack.
                match args.as_slice() {
                    [a] => functions::call(function, *insensitive, &[eval(a)]),
                    [a, b] => functions::call(function, *insensitive, &[eval(a), eval(b)]),
                    [a, b, c] => {
                        functions::call(function, *insensitive, &[eval(a), eval(b), eval(c)])
                    }
                    _ => {
                        let args: Vec<Val<'a>> = args.iter().map(eval).collect();
                        functions::call(function, *insensitive, &args)
                    }
                }
            }
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
    match (l, r) {
        (Val::Many(_), _) | (_, Val::Many(_)) => {
            any_value(l, &mut |a| any_value(r, &mut |b| f(a, b)))
        }
        (Val::Null, _) | (_, Val::Null) => false,
        // Two scalars, nearly always.
        _ => f(l, r),
    }
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

//! A hand-written recursive-descent parser for Kibana's KQL grammar.
//!
//! No Rust crate parses Kibana's KQL, and a parser generator would not reproduce peggy's exact
//! behaviour (ordered choice, greedy repetition, keyword look-ahead inside values), so this
//! follows Kibana's `grammar.peggy` rule by rule: every function below is one grammar rule and
//! keeps its name. Error reporting works like peggy's: the error is placed at the furthest
//! position any rule failed at, listing what the rules expected there.
//!
//! Recursion is bounded by [`MAX_DEPTH`] groups, so hostile input yields a [`ParseError`]
//! instead of exhausting the stack.

use super::ast::{Query, RangeOp, Value, Wildcard};
use super::error::ParseError;

/// How many parenthesised or braced groups may nest. Real rules nest a handful; the bound keeps
/// the parser, the translator and the evaluator well within a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 100;

/// Parser options (Kibana's `fromKueryExpression` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept values that start with a wildcard (`*foo`). The raw parser and the detection
    /// engine allow them; Kibana's `buildQueryFromKuery` does not by default.
    pub allow_leading_wildcards: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            allow_leading_wildcards: true,
        }
    }
}

/// Parse a KQL query with the default options (leading wildcards allowed).
pub fn parse(query: &str) -> Result<Query, ParseError> {
    parse_with(query, &ParseOptions::default())
}

/// Parse a KQL query. A blank query means "everything" and parses as `*:*`, as in Kibana.
pub fn parse_with(query: &str, options: &ParseOptions) -> Result<Query, ParseError> {
    Parser::new(query, options).start()
}

const LEADING_WILDCARDS_DISABLED: &str =
    "Leading wildcards are disabled. See query:allowLeadingWildcards in Advanced Settings.";

mod lexical;

use lexical::Parser;
pub(crate) use lexical::is_special;

/// A value list (`f: (a or b and not c)`) before the field is distributed over it.
enum ValueTree {
    Or(Vec<ValueTree>),
    And(Vec<ValueTree>),
    Not(Box<ValueTree>),
    Leaf(Value),
}

impl ValueTree {
    fn with_field(self, field: Value) -> Query {
        match self {
            ValueTree::Or(items) => Query::Or(Self::distribute(items, &field)),
            ValueTree::And(items) => Query::And(Self::distribute(items, &field)),
            ValueTree::Not(inner) => Query::Not(Box::new(inner.with_field(field))),
            // A lone value (the common case) takes the field without copying it.
            ValueTree::Leaf(value) => Query::Is {
                field: Some(field),
                value,
            },
        }
    }

    fn distribute(items: Vec<ValueTree>, field: &Value) -> Vec<Query> {
        items
            .into_iter()
            .map(|t| t.with_field(field.clone()))
            .collect()
    }
}

impl Parser<'_> {
    fn start(mut self) -> Result<Query, ParseError> {
        self.spaces();
        let before = self.pos;
        let query = self.or_query();
        if query.is_none() {
            self.pos = before;
        }
        self.spaces();
        if let Some(fatal) = self.fatal.take() {
            return Err(fatal);
        }
        if self.pos == self.src.len() {
            return Ok(query.unwrap_or_else(|| Query::Is {
                field: Some(lone_wildcard()),
                value: lone_wildcard(),
            }));
        }
        self.fail("end of input");
        Err(self.syntax_error())
    }

    fn or_query(&mut self) -> Option<Query> {
        self.chain(Self::and_query, Self::or_kw, Query::Or)
    }

    fn and_query(&mut self) -> Option<Query> {
        self.chain(Self::not_query, Self::and_kw, Query::And)
    }

    fn not_query(&mut self) -> Option<Query> {
        self.negation(Self::sub_query, Query::Not)
    }

    fn sub_query(&mut self) -> Option<Query> {
        let save = self.pos;
        if self.eat('(', "\"(\"") {
            if let Some(inner) = self.group_body(Self::or_query, ')', "\")\"") {
                return Some(inner);
            }
        }
        self.pos = save;
        self.nested_query()
    }

    /// `operand (operator operand)*`, flattened into one node when there are several.
    fn chain<T>(
        &mut self,
        operand: fn(&mut Self) -> Option<T>,
        operator: fn(&mut Self) -> bool,
        wrap: fn(Vec<T>) -> T,
    ) -> Option<T> {
        let first = operand(self)?;
        // Most operands stand alone: no vector unless an operator follows.
        let mut rest = Vec::new();
        loop {
            let save = self.pos;
            if operator(self) {
                if let Some(next) = operand(self) {
                    rest.push(next);
                    continue;
                }
            }
            self.pos = save;
            break;
        }
        if rest.is_empty() {
            return Some(first);
        }
        rest.insert(0, first);
        Some(wrap(rest))
    }

    /// `Not operand / operand`.
    fn negation<T>(
        &mut self,
        operand: fn(&mut Self) -> Option<T>,
        wrap: fn(Box<T>) -> T,
    ) -> Option<T> {
        let save = self.pos;
        if self.not_kw() {
            if let Some(inner) = operand(self) {
                return Some(wrap(Box::new(inner)));
            }
        }
        self.pos = save;
        operand(self)
    }

    /// After an opening bracket: `Space* inner Space* close`, counted against the depth limit.
    fn group_body<T>(
        &mut self,
        inner: fn(&mut Self) -> Option<T>,
        close: char,
        described: &'static str,
    ) -> Option<T> {
        if !self.enter() {
            return None;
        }
        self.spaces();
        let result = inner(self);
        self.leave();
        let result = result?;
        self.spaces();
        self.eat(close, described).then_some(result)
    }

    /// `NestedQuery / Expression`, where `Expression = FieldRangeExpression /
    /// FieldValueExpression / ValueExpression`. The first three alternatives all start with
    /// `Field Space*`: it is parsed once and the next character picks the alternative (peggy
    /// re-parses the field for each, with the same outcome).
    fn nested_query(&mut self) -> Option<Query> {
        let save = self.pos;
        if let Some(field) = self.field() {
            self.spaces();
            if self.eat(':', "\":\"") {
                self.spaces();
                if self.eat('{', "\"{\"") {
                    if let Some(inner) = self.group_body(Self::or_query, '}', "\"}\"") {
                        return Some(Query::Nested {
                            path: field,
                            query: Box::new(inner),
                        });
                    }
                    // A value list cannot start with `{` either: only free text is left.
                } else if let Some(values) = self.list_of_values() {
                    return Some(values.with_field(field));
                }
            } else if let Some(op) = self.range_operator() {
                self.spaces();
                if let Some(value) = self.named("literal", Self::literal) {
                    return Some(Query::Range { field, op, value });
                }
            }
        }
        self.pos = save;
        self.value().map(|value| Query::Is { field: None, value })
    }

    fn range_operator(&mut self) -> Option<RangeOp> {
        let rest = &self.src[self.pos..];
        let found = [
            ("<=", RangeOp::Lte),
            (">=", RangeOp::Gte),
            ("<", RangeOp::Lt),
            (">", RangeOp::Gt),
        ]
        .into_iter()
        .find(|(text, _)| rest.starts_with(text));
        match found {
            Some((text, op)) if self.fatal.is_none() => {
                self.pos += text.len();
                Some(op)
            }
            _ => {
                for described in ["\"<=\"", "\">=\"", "\"<\"", "\">\""] {
                    self.fail(described);
                }
                None
            }
        }
    }

    fn list_of_values(&mut self) -> Option<ValueTree> {
        let save = self.pos;
        if self.eat('(', "\"(\"") {
            if let Some(inner) = self.group_body(Self::or_list_of_values, ')', "\")\"") {
                return Some(inner);
            }
        }
        self.pos = save;
        self.value().map(ValueTree::Leaf)
    }

    fn or_list_of_values(&mut self) -> Option<ValueTree> {
        self.chain(Self::and_list_of_values, Self::or_kw, ValueTree::Or)
    }

    fn and_list_of_values(&mut self) -> Option<ValueTree> {
        self.chain(Self::not_list_of_values, Self::and_kw, ValueTree::And)
    }

    fn not_list_of_values(&mut self) -> Option<ValueTree> {
        self.negation(Self::list_of_values, ValueTree::Not)
    }

    /// `Value "value"`: a literal in value position, where leading wildcards may be refused.
    fn value(&mut self) -> Option<Value> {
        let start = self.pos;
        let value = self.named("value", Self::literal)?;
        if let Value::Wildcard(w) = &value {
            if !self.allow_leading_wildcards && w.has_leading_wildcard() && self.fatal.is_none() {
                self.fatal = Some(ParseError {
                    offset: start,
                    message: LEADING_WILDCARDS_DISABLED.to_string(),
                    expected: Vec::new(),
                });
                return None;
            }
        }
        Some(value)
    }

    /// `Field "fieldName"`.
    fn field(&mut self) -> Option<Value> {
        self.named("fieldName", Self::literal)
    }

    /// Run a named rule: its inner failures are silent; if it fails, its name is expected.
    pub(super) fn named(
        &mut self,
        name: &'static str,
        rule: fn(&mut Self) -> Option<Value>,
    ) -> Option<Value> {
        let start = self.pos;
        self.silent += 1;
        let result = rule(self);
        self.silent -= 1;
        if result.is_none() {
            self.pos = start;
            self.fail(name);
        }
        result
    }
}

fn lone_wildcard() -> Value {
    Value::Wildcard(Wildcard {
        pieces: vec![String::new(), String::new()],
    })
}

#[cfg(test)]
mod tests;

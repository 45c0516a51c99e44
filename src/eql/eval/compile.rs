//! The form of an expression the evaluator walks: the parsed tree with what does not depend
//! on the document worked out once, when the matcher is built, instead of on every document:
//! regular expressions compiled, the wildcard pattern of a pushed-down function built, the
//! `x == null` test recognised, and each field given its slot in a prepared block.

use regex::Regex;

use super::super::ast::{ArithOp, CmpOp, Expr, Literal, MatchOp};
use super::super::functions::{self, Signature};
use super::prepared::FieldSlots;
use super::{LuceneWildcard, compile_regex};

#[derive(Debug, Clone)]
pub(super) enum Node {
    Literal(Literal),
    Field {
        name: String,
        /// Where a block prepared with the matcher's slots holds its values.
        slot: Option<u32>,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Compare {
        op: CmpOp,
        left: Box<Node>,
        right: Box<Node>,
        /// One side is the literal `null`: the comparison asks whether the other is null.
        null_test: bool,
    },
    In {
        expr: Box<Node>,
        list: Vec<Node>,
        negated: bool,
        insensitive: bool,
    },
    Match {
        expr: Box<Node>,
        insensitive: bool,
        patterns: Vec<Pattern>,
    },
    Arith {
        op: ArithOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    Neg(Box<Node>),
    Call {
        /// `None` for a name no function has (a tree built by hand): the call is null.
        function: Option<Signature>,
        insensitive: bool,
        args: Vec<Node>,
        /// `stringContains` / `endsWith` whose text holds wildcard characters: Elasticsearch
        /// runs them as this wildcard query on the field.
        wildcard: Option<LuceneWildcard>,
    },
}

#[derive(Debug, Clone)]
pub(super) enum Pattern {
    /// `:` and `like`, with `*` and `?`.
    Wildcard(String),
    Regex(Regex),
}

/// Compile `e`, numbering its fields in `slots`.
pub(super) fn compile(e: &Expr, slots: &mut FieldSlots) -> Result<Node, regex::Error> {
    let boxed = |e: &Expr, slots: &mut FieldSlots| compile(e, slots).map(Box::new);
    let list = |items: &[Expr], slots: &mut FieldSlots| {
        items
            .iter()
            .map(|i| compile(i, slots))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match e {
        Expr::Literal(l) => Node::Literal(l.clone()),
        Expr::Field(field) => Node::Field {
            slot: slots.slot(&field.name),
            name: field.name.clone(),
        },
        Expr::And(items) => Node::And(list(items, slots)?),
        Expr::Or(items) => Node::Or(list(items, slots)?),
        Expr::Not(inner) => Node::Not(boxed(inner, slots)?),
        Expr::Compare { op, left, right } => Node::Compare {
            op: *op,
            null_test: matches!(**left, Expr::Literal(Literal::Null))
                || matches!(**right, Expr::Literal(Literal::Null)),
            left: boxed(left, slots)?,
            right: boxed(right, slots)?,
        },
        Expr::In {
            expr,
            list: items,
            negated,
            insensitive,
        } => Node::In {
            expr: boxed(expr, slots)?,
            list: list(items, slots)?,
            negated: *negated,
            insensitive: *insensitive,
        },
        Expr::Match {
            expr,
            op,
            insensitive,
            patterns,
            ..
        } => Node::Match {
            expr: boxed(expr, slots)?,
            insensitive: *insensitive,
            patterns: patterns
                .iter()
                .map(|p| match op {
                    MatchOp::Regex => compile_regex(p, *insensitive).map(Pattern::Regex),
                    MatchOp::Colon | MatchOp::Like => Ok(Pattern::Wildcard(p.clone())),
                })
                .collect::<Result<_, _>>()?,
        },
        Expr::Arith { op, left, right } => Node::Arith {
            op: *op,
            left: boxed(left, slots)?,
            right: boxed(right, slots)?,
        },
        Expr::Neg(inner) => Node::Neg(boxed(inner, slots)?),
        Expr::Call {
            name,
            insensitive,
            args,
        } => Node::Call {
            function: functions::signature(name),
            insensitive: *insensitive,
            wildcard: pushed_down(name, args)
                .map(|pattern| LuceneWildcard::new(&pattern, *insensitive)),
            args: list(args, slots)?,
        },
    })
}

/// The wildcard query Elasticsearch's EQL `QueryTranslator` makes of `stringContains(field,
/// "text")` (`*text*`) and `endsWith(field, "text")` (`*text`). It does not escape the text,
/// so a `*`, `?` or `\` in it acts as in a wildcard query; without one the query matches as
/// the function does, and the function is evaluated.
fn pushed_down(name: &str, args: &[Expr]) -> Option<String> {
    let [Expr::Field(_), Expr::Literal(Literal::String(text))] = args else {
        return None;
    };
    if !text.contains(['*', '?', '\\']) {
        return None;
    }
    match name {
        "stringContains" => Some(format!("*{text}*")),
        "endsWith" => Some(format!("*{text}")),
        _ => None,
    }
}

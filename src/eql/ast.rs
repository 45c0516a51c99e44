//! The syntax tree of an EQL event query, and its printer: `Display` writes EQL text that
//! parses back to the same tree (parentheses only where precedence needs them).

use std::fmt::{self, Write};

use super::lexer::{RESERVED, is_ident_char, is_ident_start};

/// `<category> where <condition>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub category: Category,
    pub condition: Expr,
}

/// Which events a query looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Category {
    /// `any where`: every event.
    Any,
    /// `process where`: events whose category field holds this value.
    Named(String),
}

/// A field reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The dotted path, e.g. `process.name`.
    pub name: String,
    /// Written `?name`: Elasticsearch treats a field absent from the mapping as null instead of
    /// rejecting the query. Over documents, every missing field is null, so both read the same.
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// The pattern operators, each of which takes one string or a parenthesised list of strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `:`, always case-insensitive, `*` and `?` wildcards.
    Colon,
    /// `like` / `like~`: `*` and `?` wildcards.
    Like,
    /// `regex` / `regex~`.
    Regex,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    Field(Field),
    /// Two or more operands, left to right.
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        op: CmpOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `expr in (...)`, `in~`, `not in`.
    In {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
        insensitive: bool,
    },
    Match {
        expr: Box<Expr>,
        op: MatchOp,
        insensitive: bool,
        patterns: Vec<String>,
        /// Written with parentheses (a list, even of one); kept so the text prints back as read.
        list: bool,
    },
    Arith {
        op: ArithOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Neg(Box<Expr>),
    Call {
        name: String,
        insensitive: bool,
        args: Vec<Expr>,
    },
}

impl Expr {
    /// Every field the expression names, in order of appearance.
    pub fn fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Literal(_) => {}
            Expr::Field(field) => out.push(&field.name),
            Expr::And(items) | Expr::Or(items) => items.iter().for_each(|e| e.fields(out)),
            Expr::Not(inner) | Expr::Neg(inner) => inner.fields(out),
            Expr::Compare { left, right, .. } | Expr::Arith { left, right, .. } => {
                left.fields(out);
                right.fields(out);
            }
            Expr::In { expr, list, .. } => {
                expr.fields(out);
                list.iter().for_each(|e| e.fields(out));
            }
            Expr::Match { expr, .. } => expr.fields(out),
            Expr::Call { args, .. } => args.iter().for_each(|e| e.fields(out)),
        }
    }
}

/// Binding strength, loosest first: `or`, `and`, `not`, comparisons and predicates, `+ -`,
/// `* / %`, unary minus, then atoms.
fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Or(_) => 1,
        Expr::And(_) => 2,
        Expr::Not(_) => 3,
        Expr::Compare { .. } | Expr::In { .. } | Expr::Match { .. } => 4,
        Expr::Arith {
            op: ArithOp::Add | ArithOp::Sub,
            ..
        } => 5,
        Expr::Arith { .. } => 6,
        Expr::Neg(_) => 7,
        Expr::Literal(_) | Expr::Field(_) | Expr::Call { .. } => 8,
    }
}

/// Writes `e`, in parentheses unless it binds tighter than `min`.
fn child(f: &mut fmt::Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if precedence(e) > min {
        write!(f, "{e}")
    } else {
        write!(f, "({e})")
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prec = precedence(self);
        match self {
            Expr::Literal(l) => write!(f, "{l}"),
            Expr::Field(field) => write!(f, "{field}"),
            Expr::And(items) | Expr::Or(items) => {
                let word = if matches!(self, Expr::And(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(word)?;
                    }
                    child(f, item, prec)?;
                }
                Ok(())
            }
            Expr::Not(inner) => {
                f.write_str("not ")?;
                // `not` takes a `not` or anything tighter without parentheses.
                child(f, inner, prec - 1)
            }
            Expr::Compare { op, left, right } => {
                child(f, left, prec)?;
                write!(f, " {op} ")?;
                child(f, right, prec)
            }
            Expr::In {
                expr,
                list,
                negated,
                insensitive,
            } => {
                child(f, expr, prec)?;
                f.write_str(if *negated { " not in" } else { " in" })?;
                f.write_str(if *insensitive { "~ (" } else { " (" })?;
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_char(')')
            }
            Expr::Match {
                expr,
                op,
                insensitive,
                patterns,
                list,
            } => {
                child(f, expr, prec)?;
                let word = match op {
                    MatchOp::Colon => " :",
                    MatchOp::Like => " like",
                    MatchOp::Regex => " regex",
                };
                f.write_str(word)?;
                // `:` is always case-insensitive and has no `~` form.
                let tilde = *insensitive && *op != MatchOp::Colon;
                f.write_str(if tilde { "~ " } else { " " })?;
                if *list {
                    f.write_char('(')?;
                }
                for (i, p) in patterns.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_string(f, p)?;
                }
                if *list {
                    f.write_char(')')?;
                }
                Ok(())
            }
            Expr::Arith { op, left, right } => {
                // Left-associative: an equal-precedence right operand needs parentheses.
                child(f, left, prec - 1)?;
                write!(f, " {op} ")?;
                child(f, right, prec)
            }
            Expr::Neg(inner) => {
                f.write_char('-')?;
                child(f, inner, prec - 1)
            }
            Expr::Call {
                name,
                insensitive,
                args,
            } => {
                f.write_str(name)?;
                if *insensitive {
                    f.write_char('~')?;
                }
                f.write_char('(')?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_char(')')
            }
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        })
    }
}

impl fmt::Display for ArithOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Mod => "%",
        })
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(n) => write!(f, "{n}"),
            // `{:?}` is the shortest text that reads back as the same double, always with a
            // `.` or an exponent so it does not read back as an integer.
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::String(s) => write_string(f, s),
        }
    }
}

/// A double-quoted string with EQL escapes.
fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Whether `word` can be written without backquotes.
pub(crate) fn is_plain_name(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(is_ident_start) && chars.all(is_ident_char) && !is_keyword(word)
}

pub(crate) fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "and"
            | "or"
            | "not"
            | "where"
            | "in"
            | "like"
            | "regex"
            | "any"
            | "true"
            | "false"
            | "null"
    ) || RESERVED.contains(&word)
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.optional {
            f.write_char('?')?;
        }
        if self.name.split('.').all(is_plain_name) {
            f.write_str(&self.name)
        } else {
            // One backquoted name covers the whole path: Elasticsearch joins the segments of
            // `a.b` into the same field name as `` `a.b` ``.
            write!(f, "`{}`", self.name.replace('`', "``"))
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.category {
            Category::Any => f.write_str("any")?,
            Category::Named(name) if is_plain_name(name) => f.write_str(name)?,
            Category::Named(name) => write_string(f, name)?,
        }
        write!(f, " where {}", self.condition)
    }
}

/// A whole EQL statement: an event query, a sequence or a sample, then pipes.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub body: Body,
    pub pipes: Vec<Pipe>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Event(Query),
    Sequence(Sequence),
    Sample(Sample),
}

impl Body {
    /// The event queries: the one of an event query, or every stage's (and `until`'s).
    pub fn queries(&self) -> Vec<&Query> {
        match self {
            Body::Event(query) => vec![query],
            Body::Sequence(sequence) => sequence
                .stages
                .iter()
                .chain(&sequence.until)
                .map(|stage| &stage.query)
                .collect(),
            Body::Sample(sample) => sample.stages.iter().map(|stage| &stage.query).collect(),
        }
    }

    /// Whether results join several events (a sequence or a sample).
    pub fn joins(&self) -> bool {
        !matches!(self, Body::Event(_))
    }
}

/// `| head N` keeps the first N results, `| tail N` the last N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    Head(u64),
    Tail(u64),
}

/// `results` (in Elasticsearch's order) through `pipes`, first to last.
pub fn apply_pipes<T>(mut results: Vec<T>, pipes: &[Pipe]) -> Vec<T> {
    for pipe in pipes {
        match *pipe {
            Pipe::Head(n) => results.truncate(usize::try_from(n).unwrap_or(usize::MAX)),
            Pipe::Tail(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                let drop = results.len().saturating_sub(n);
                results.drain(..drop);
            }
        }
    }
    results
}

/// `sequence [by k, ...] [with maxspan=N<unit>] [stage] [stage]... [until [stage]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// Join keys every stage shares, before each stage's own.
    pub by: Vec<Expr>,
    pub maxspan: Option<Maxspan>,
    /// Two or more.
    pub stages: Vec<Stage>,
    /// Events matching it drop the pending sequences of their join key.
    pub until: Option<Stage>,
}

/// `[query] by k, ... [with runs=N]`, or a missing event `![query] by k, ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub query: Query,
    pub by: Vec<Expr>,
    /// How many consecutive matches of this stage the sequence takes (`with runs=N`).
    pub runs: u32,
    /// `![...]`: an event that must not occur at this place of the sequence.
    pub missing: bool,
}

/// A time span as written: amount and unit (`ms`, `s`, `m`, `h`, `d`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maxspan {
    pub amount: i64,
    pub unit: String,
}

impl Maxspan {
    /// The span in nanoseconds (saturating: no real span comes near the bound).
    pub fn nanos(&self) -> i128 {
        let per_unit: i128 = match self.unit.as_str() {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => 86_400_000_000_000,
        };
        i128::from(self.amount).saturating_mul(per_unit)
    }
}

/// `sample [by k, ...] [filter] [by k, ...] [filter]...`: events, one per filter, sharing
/// their join key values, in no particular time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Join keys every filter shares, before each filter's own; fields only.
    pub by: Vec<Expr>,
    /// Two or more, each with `runs` 1 and not missing.
    pub stages: Vec<Stage>,
}

fn write_keys(f: &mut fmt::Formatter<'_>, keys: &[Expr]) -> fmt::Result {
    if keys.is_empty() {
        return Ok(());
    }
    f.write_str(" by ")?;
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{key}")?;
    }
    Ok(())
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.missing {
            f.write_str("!")?;
        }
        write!(f, "[{}]", self.query)?;
        write_keys(f, &self.by)?;
        if self.runs != 1 {
            write!(f, " with runs={}", self.runs)?;
        }
        Ok(())
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.body {
            Body::Event(query) => write!(f, "{query}")?,
            Body::Sequence(seq) => {
                f.write_str("sequence")?;
                write_keys(f, &seq.by)?;
                if let Some(span) = &seq.maxspan {
                    write!(f, " with maxspan={}{}", span.amount, span.unit)?;
                }
                for stage in &seq.stages {
                    write!(f, " {stage}")?;
                }
                if let Some(until) = &seq.until {
                    write!(f, " until {until}")?;
                }
            }
            Body::Sample(sample) => {
                f.write_str("sample")?;
                write_keys(f, &sample.by)?;
                for stage in &sample.stages {
                    write!(f, " {stage}")?;
                }
            }
        }
        for pipe in &self.pipes {
            match pipe {
                Pipe::Head(n) => write!(f, " | head {n}")?,
                Pipe::Tail(n) => write!(f, " | tail {n}")?,
            }
        }
        Ok(())
    }
}

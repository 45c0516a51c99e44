//! A recursive-descent parser for Elasticsearch's EQL event queries, following the rules of
//! `EqlBase.g4`: `or` < `and` < `not` < comparisons and predicates < `+ -` < `* / %` < unary
//! minus. Comparisons do not chain (`a < b < c` is an error, as in Elasticsearch).
//!
//! Recursion is bounded by [`MAX_DEPTH`] levels (groups, `not`, unary minus, calls, and each
//! arithmetic operator, since those build left-deep trees), so hostile input yields a
//! [`ParseError`] instead of exhausting the stack while parsing, printing, evaluating or
//! dropping the tree. `and` / `or` chains are flat lists and cost no depth.

use super::ast::{
    ArithOp, Body, Category, CmpOp, Expr, Field, Literal, MatchOp, Pipe, Query, Statement,
};
use super::error::ParseError;
use super::functions::{self, Signature};
use super::lexer::{RESERVED, Tok, Token, tokenize};

/// How deeply expressions may nest. Real rules nest a handful of levels; the bound keeps the
/// parser, printer and evaluator well within a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 100;
/// The most `runs` a sequence stage may repeat (Elasticsearch's limit).
pub const MAX_RUNS: u32 = 100;
/// The most filters a sample may have: real samples have a handful, and the bound keeps the
/// search for distinct events (one per filter) small whatever the data.
pub const MAX_SAMPLE_FILTERS: usize = 32;

/// The longest query accepted, in bytes. Elastic's rules are a few KiB at most.
pub const MAX_QUERY_BYTES: usize = 1 << 20;

/// Parse an EQL event query (`<category> where <condition>`), without pipes.
pub fn parse(query: &str) -> Result<Query, ParseError> {
    let mut parser = Parser::new(query)?;
    let parsed = parser.query()?;
    parser.end()?;
    Ok(parsed)
}

/// Parse a whole EQL statement: an event query, a sequence or a sample, then `| head N` /
/// `| tail N`.
pub fn parse_statement(query: &str) -> Result<Statement, ParseError> {
    let mut parser = Parser::new(query)?;
    let body = if parser.is_word("sequence") {
        parser.pos += 1;
        Body::Sequence(parser.sequence()?)
    } else if parser.is_word("sample") {
        parser.pos += 1;
        Body::Sample(parser.sample()?)
    } else {
        Body::Event(parser.query()?)
    };
    let mut pipes = Vec::new();
    while parser.eat(&Tok::Pipe) {
        let head = match parser.peek() {
            Tok::Ident(name) if name == "head" => true,
            Tok::Ident(name) if name == "tail" => false,
            _ => {
                return Err(ParseError::new(
                    parser.at(),
                    "expected \"head\" or \"tail\" after \"|\"",
                ));
            }
        };
        parser.pos += 1;
        let Tok::Int(n) = parser.peek().clone() else {
            return Err(parser.unexpected("a number of results"));
        };
        let n = u64::try_from(n).map_err(|_| parser.unexpected("a positive number"))?;
        parser.pos += 1;
        pipes.push(if head { Pipe::Head(n) } else { Pipe::Tail(n) });
    }
    parser.end()?;
    Ok(Statement { body, pipes })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn new(query: &str) -> Result<Parser, ParseError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(ParseError::new(
                0,
                format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
            ));
        }
        Ok(Parser {
            tokens: tokenize(query)?,
            pos: 0,
            depth: 0,
        })
    }

    fn end(&self) -> Result<(), ParseError> {
        if self.peek() == &Tok::Eof {
            Ok(())
        } else {
            Err(self.unexpected("an operator or end of input"))
        }
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        let category = self.category()?;
        self.expect(&Tok::Where, "\"where\"")?;
        let condition = self.expr()?;
        Ok(Query {
            category,
            condition,
        })
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Tok::Ident(w) if w == word)
    }

    fn peek(&self) -> &Tok {
        // The token list always ends with Eof and `pos` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }

    fn peek2(&self) -> &Tok {
        &self.tokens[(self.pos + 1).min(self.tokens.len() - 1)].tok
    }

    fn at(&self) -> usize {
        self.tokens[self.pos.min(self.tokens.len() - 1)].at
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == tok {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        ParseError::new(
            self.at(),
            format!("expected {expected} but found {}", self.peek().describe()),
        )
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<(), ParseError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// Enter one nesting level; pair with `self.depth -= 1`.
    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(ParseError::new(
                self.at(),
                format!("the query nests more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn category(&mut self) -> Result<Category, ParseError> {
        match self.peek().clone() {
            Tok::Any => {
                self.pos += 1;
                Ok(Category::Any)
            }
            Tok::Ident(name) | Tok::Str(name) => {
                self.pos += 1;
                Ok(Category::Named(name))
            }
            _ => Err(self.unexpected("an event category or \"any\"")),
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let result = self.or();
        self.depth -= 1;
        result
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.and()?];
        while self.eat(&Tok::Or) {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.not()?];
        while self.eat(&Tok::And) {
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.eat(&Tok::Not) {
            self.enter()?;
            let inner = self.not();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner?)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, ParseError> {
        let left = self.arith()?;
        if self.peek() == &Tok::Assign {
            return Err(ParseError::new(self.at(), "use == instead of ="));
        }
        let op = match self.peek() {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let right = self.arith()?;
            if matches!(
                self.peek(),
                Tok::Eq | Tok::Ne | Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge
            ) {
                return Err(ParseError::new(
                    self.at(),
                    "comparisons do not chain: use parentheses or \"and\"",
                ));
            }
            return Ok(Expr::Compare {
                op,
                left: Box::new(left),
                right: Box::new(right),
            });
        }
        let negated =
            self.peek() == &Tok::Not && matches!(self.peek2(), Tok::In | Tok::InInsensitive);
        if negated {
            self.pos += 1;
        }
        let (insensitive, is_in) = match self.peek() {
            Tok::In => (false, true),
            Tok::InInsensitive => (true, true),
            _ => (false, false),
        };
        if is_in {
            self.pos += 1;
            self.expect(&Tok::LParen, "\"(\"")?;
            let mut list = vec![self.expr()?];
            while self.eat(&Tok::Comma) {
                list.push(self.expr()?);
            }
            self.expect(&Tok::RParen, "\",\" or \")\"")?;
            return Ok(Expr::In {
                expr: Box::new(left),
                list,
                negated,
                insensitive,
            });
        }
        let (op, insensitive) = match self.peek() {
            Tok::Colon => (MatchOp::Colon, true),
            Tok::Like => (MatchOp::Like, false),
            Tok::LikeInsensitive => (MatchOp::Like, true),
            Tok::Regex => (MatchOp::Regex, false),
            Tok::RegexInsensitive => (MatchOp::Regex, true),
            _ => return Ok(left),
        };
        self.pos += 1;
        let list = self.eat(&Tok::LParen);
        let mut patterns = vec![self.pattern(op, insensitive)?];
        if list {
            while self.eat(&Tok::Comma) {
                patterns.push(self.pattern(op, insensitive)?);
            }
            self.expect(&Tok::RParen, "\",\" or \")\"")?;
        }
        Ok(Expr::Match {
            expr: Box::new(left),
            op,
            insensitive,
            patterns,
            list,
        })
    }

    /// A string constant after `:`, `like` or `regex`; regular expressions are checked here so
    /// that a bad one is reported where it is written.
    fn pattern(&mut self, op: MatchOp, insensitive: bool) -> Result<String, ParseError> {
        let at = self.at();
        let Tok::Str(pattern) = self.peek().clone() else {
            return Err(self.unexpected("a string constant"));
        };
        self.pos += 1;
        if op == MatchOp::Regex {
            if let Err(e) = super::eval::compile_regex(&pattern, insensitive) {
                return Err(ParseError::new(
                    at,
                    format!("invalid regular expression: {e}"),
                ));
            }
        }
        Ok(pattern)
    }

    fn arith(&mut self) -> Result<Expr, ParseError> {
        let depth = self.depth;
        let result = self.arith_chain();
        // Every operator of the chain entered one level: leave them all.
        self.depth = depth;
        result
    }

    fn arith_chain(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.term()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => ArithOp::Add,
                Tok::Minus => ArithOp::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            self.enter()?;
            let right = self.term()?;
            left = Expr::Arith {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let depth = self.depth;
        let result = self.term_chain();
        self.depth = depth;
        result
    }

    fn term_chain(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => ArithOp::Mul,
                Tok::Slash => ArithOp::Div,
                Tok::Percent => ArithOp::Mod,
                _ => return Ok(left),
            };
            self.pos += 1;
            self.enter()?;
            let right = self.unary()?;
            left = Expr::Arith {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let negate = match self.peek() {
            Tok::Minus => true,
            Tok::Plus => false,
            _ => return self.primary(),
        };
        self.pos += 1;
        self.enter()?;
        let inner = self.unary();
        self.depth -= 1;
        let inner = inner?;
        Ok(if negate {
            Expr::Neg(Box::new(inner))
        } else {
            inner
        })
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let literal = match self.peek().clone() {
            Tok::Null => Some(Literal::Null),
            Tok::True => Some(Literal::Bool(true)),
            Tok::False => Some(Literal::Bool(false)),
            Tok::Int(n) => Some(Literal::Int(n)),
            Tok::Float(x) => Some(Literal::Float(x)),
            Tok::Str(s) => Some(Literal::String(s)),
            _ => None,
        };
        if let Some(literal) = literal {
            self.pos += 1;
            return Ok(Expr::Literal(literal));
        }
        match self.peek().clone() {
            Tok::LParen => {
                self.pos += 1;
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "\")\"")?;
                Ok(inner)
            }
            Tok::Ident(name)
                if matches!(self.peek2(), Tok::LParen)
                    || (self.peek2() == &Tok::Tilde
                        && self.tokens.get(self.pos + 2).map(|t| &t.tok) == Some(&Tok::LParen)) =>
            {
                self.call(name)
            }
            Tok::Question => {
                self.pos += 1;
                self.field(true)
            }
            Tok::Ident(_) | Tok::Quoted(_) => self.field(false),
            _ => Err(self.unexpected("a value, a field or \"(\"")),
        }
    }

    fn field(&mut self, optional: bool) -> Result<Expr, ParseError> {
        let mut name = self.name_segment()?;
        while self.peek() == &Tok::Dot {
            self.pos += 1;
            name.push('.');
            name.push_str(&self.name_segment()?);
        }
        Ok(Expr::Field(Field { name, optional }))
    }

    fn name_segment(&mut self) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Ident(word) if RESERVED.contains(&word.as_str()) => Err(ParseError::new(
                self.at(),
                format!("\"{word}\" is a reserved word: write `{word}` to use it as a field"),
            )),
            Tok::Ident(word) | Tok::Quoted(word) => {
                self.pos += 1;
                Ok(word)
            }
            _ => Err(self.unexpected("a field name")),
        }
    }

    fn call(&mut self, name: String) -> Result<Expr, ParseError> {
        let at = self.at();
        self.pos += 1;
        let insensitive = self.eat(&Tok::Tilde);
        self.expect(&Tok::LParen, "\"(\"")?;
        let mut args = Vec::new();
        if !self.eat(&Tok::RParen) {
            args.push(self.expr()?);
            while self.eat(&Tok::Comma) {
                args.push(self.expr()?);
            }
            self.expect(&Tok::RParen, "\",\" or \")\"")?;
        }
        let Some(Signature {
            min,
            max,
            insensitive: folds,
            ..
        }) = functions::signature(&name)
        else {
            return Err(ParseError::new(at, format!("unknown function {name}")));
        };
        if insensitive && !folds {
            return Err(ParseError::new(
                at,
                format!("{name} has no case-insensitive form {name}~"),
            ));
        }
        if args.len() < min || max.is_some_and(|max| args.len() > max) {
            let arity = match max {
                Some(max) if max == min => format!("{min}"),
                Some(max) => format!("{min} to {max}"),
                None => format!("at least {min}"),
            };
            return Err(ParseError::new(
                at,
                format!("{name} takes {arity} arguments, not {}", args.len()),
            ));
        }
        Ok(Expr::Call {
            name,
            insensitive,
            args,
        })
    }
}

mod sequence;
#[cfg(test)]
pub(crate) mod tests;

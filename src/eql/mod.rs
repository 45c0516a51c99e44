//! Event Query Language, as Elasticsearch implements it (event queries; see `docs/eql.md`).
//!
//! - [`parse`]: text → [`Query`], or a [`ParseError`] with a byte offset and a line / column /
//!   caret rendering ([`ParseError::render`]). Nesting is bounded by [`MAX_DEPTH`].
//! - `Display` on [`Query`] / [`Expr`]: the tree back to EQL text that parses to the same tree.
//! - [`Matcher`]: a query evaluated in memory against JSON documents with Elasticsearch's
//!   semantics, the event category read from a configurable field ([`MatchOptions`]).
//! - [`FieldSlots`] / [`Prepared`]: the fields many matchers read, resolved once per document
//!   into a block they read by slot (`Matcher::with_slots`, `SequenceMatcher::with_slots`).
//! - [`parse_statement`]: also sequences, samples and `| head` / `| tail` pipes;
//!   [`SequenceMatcher`] matches a sequence over events fed in timestamp order,
//!   [`SampleMatcher`] a sample over events fed in any order.

mod ast;
mod error;
mod eval;
mod functions;
mod join;
mod lexer;
mod parser;
mod sample;
mod sequence;

pub use ast::{
    ArithOp, Body, Category, CmpOp, Expr, Field, Literal, MatchOp, Maxspan, Pipe, Query, Sample,
    Sequence, Stage, Statement, apply_pipes,
};
pub use error::ParseError;
pub use eval::{FieldSlots, MatchOptions, Matcher, PrepareBuffer, Prepared, wildcard_match};
pub use join::JoinMatcher;
pub use parser::{MAX_DEPTH, MAX_QUERY_BYTES, MAX_SAMPLE_FILTERS, parse, parse_statement};
pub use sample::SampleMatcher;
pub use sequence::{SequenceHit, SequenceMatcher};

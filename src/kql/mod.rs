//! Kibana Query Language, as Kibana implements it.
//!
//! - [`parse`] / [`parse_with`]: text → [`Query`], or a [`ParseError`] with a byte offset and a
//!   caret rendering ([`ParseError::render`]). Grammar and quirks follow Kibana's peggy grammar.
//! - [`to_dsl`] (or [`to_dsl_string`], the same as JSON text) / [`build_es_query`]: [`Query`] → Elasticsearch Query DSL, exactly as Kibana's
//!   `toElasticsearchQuery` / `buildEsQuery`, with or without [`FieldTypes`] metadata.
//! - [`Matcher`]: a query compiled once and evaluated in memory against JSON documents with
//!   Elasticsearch's semantics (what `scan` uses instead of a cluster). [`FieldSlots`] and
//!   [`Prepared`]: the fields a set of matchers reads, resolved once per document into a
//!   compact block that every matcher then reads ([`Matcher::matches_prepared`]).
//! - [`to_kql`]: [`Query`] back to KQL text that parses to the same tree.

mod ast;
mod dsl;
mod error;
pub mod eval;
mod fields;
mod parser;
mod print;

pub use ast::{Query, RangeOp, Value, Wildcard};
pub use dsl::{DslOptions, TranslateError, build_es_query, to_dsl, to_dsl_string};
pub use error::ParseError;
pub use eval::{FieldSlots, MatchOptions, Matcher, PrepareBuffer, Prepared};
pub use fields::{FieldInfo, FieldTypes, FieldTypesError};
pub use parser::{MAX_DEPTH, ParseOptions, parse, parse_with};
pub use print::to_kql;

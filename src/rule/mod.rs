//! Detection rules: the model, the loaders for detection-rules TOML and Kibana NDJSON, and the
//! time expressions (`interval`, date math) rules are written in.
//!
//! - [`model`]: the [`Rule`] every format loads into; [`kind`]: what its type does with
//!   the matches (`query`, `new_terms`, `threshold`), with the type's parameters.
//! - [`load`]: files and directories to a [`LoadReport`] (rules with a status, and problems).
//! - `toml` / [`ndjson`]: the two formats (NDJSON also exports).
//! - [`time`]: intervals, date math, Kibana's look-back.
//! - [`filters`]: Kibana filter objects to Query DSL clauses (and to KQL, for in-memory use).
//! - [`matcher`]: a runnable rule compiled for in-memory evaluation.
//! - [`examples`]: example events for `rules test`.
//! - [`embedded`]: the shipped `rules/` directory, built in.

pub mod embedded;
pub mod examples;
pub mod filters;
pub mod kind;
pub mod load;
pub mod matcher;
pub mod model;
pub mod ndjson;
pub mod parsed;
pub mod time;
mod toml;

pub use embedded::shipped_rules;
pub use kind::{NewTerms, RuleKind};
pub use load::{LoadReport, LoadedRule, Origin, Problem, ProblemKind, RuleStatus, load_paths};
pub use matcher::{MatcherError, PrepareBuffers, PreparedDoc, RuleMatcher, RuleSlots};
pub use model::{Rule, Severity, Technique, Threat, ThreatRef};
pub use time::{DateMath, RuleTiming, TimeError, parse_interval};

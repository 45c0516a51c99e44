//! Tests for the `kql` area: Kibana's vectors, the detection-rules corpus, the evaluator, the
//! command line and properties.

mod cli;
pub(crate) mod corpus;
pub mod eval;
mod properties;
mod vectors;

//! The Elasticsearch adapter: configuration, and contract tests against a mock cluster
//! (wiremock) with the exact requests sent and responses shaped like Elasticsearch 8.x's.
//! Tests against a real engine live in `crate::real`.

mod aggregating;
mod bodies;
mod cli;
mod config;
mod eql;
mod mapping;
pub(crate) mod mock;
mod opensearch;
mod rollover;
mod setup;
mod sink;
mod source;
mod state;

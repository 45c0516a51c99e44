//! The Elasticsearch adapter: configuration, and contract tests against a mock cluster
//! (wiremock) with the exact requests sent and responses shaped like Elasticsearch 8.x's.
//! Tests against a real cluster live in `real_cluster` and run only when
//! `ELASTICSEARCH_URL` is set.

mod bodies;
mod cli;
mod config;
mod mapping;
pub(crate) mod mock;
mod real_cluster;
mod setup;
mod sink;
mod source;
mod state;

//! Tests against a real search engine: the OpenSearch node of `tests/engine/` (started once
//! for the whole run), or the cluster `ELASTICSEARCH_URL` names. See [`engine`] for how one
//! is found, and when a test is skipped instead.
//!
//! Every test uses index names of its own and removes them afterwards, so the tests run in
//! parallel against one engine, and against a user's cluster without touching their data.

mod engine;

mod basics;
mod cli;
mod dataset;
mod differential;
mod ops;
mod proxy;
mod service;

pub use engine::engine;

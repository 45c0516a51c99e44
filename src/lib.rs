//! rule-runner: a standalone detection engine for the Elastic stack.
//!
//! A map of the crate, in the order each part stands on the one before:
//!
//! - [`kql`]: Kibana Query Language. Parses a query exactly as Kibana does, translates it to
//!   Elasticsearch Query DSL (what the service sends) and evaluates it in memory (what `scan`
//!   uses).
//! - [`rule`]: detection rules. The [`rule::Rule`] model, loaders for Elastic's detection-rules
//!   TOML and Kibana NDJSON exports, time expressions, the shipped rules.
//! - [`cloudtrail`]: raw CloudTrail records to the ECS documents Elastic's AWS integration
//!   produces, so offline scans see what Elasticsearch would hold.
//! - [`scan`]: the rules over raw CloudTrail files with no Elasticsearch (`rule-runner scan`):
//!   parallel, streaming, alerts built exactly as the service builds them.
//! - [`alert`]: Kibana-compatible alert documents with deterministic ids, shared by both modes.
//! - [`engine`]: the run logic, independent of Elasticsearch: windows, gaps, dedup, the
//!   `max_signals` cap, scheduling, state; it talks to the world through [`engine::ports`].
//! - [`elasticsearch`]: the adapter implementing the engine's ports over the official client.
//! - [`ops`]: what an operator needs: health and metrics endpoints, leases for scale-out.
//! - [`cli`]: the command line; `main.rs` only parses arguments and calls [`cli::run`].

pub mod alert;
pub mod cli;
pub mod cloudtrail;
pub mod elasticsearch;
pub mod engine;
pub mod kql;
pub mod ops;
pub mod rule;
pub mod scan;

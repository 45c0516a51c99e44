//! rule-runner: a standalone detection engine for the Elastic stack.
//!
//! A map of the crate, layer by layer: each module uses only those of a lower layer
//! (`tests/it/architecture.rs` holds it to that; `docs/architecture.md` walks a rule from its
//! file to an alert).
//!
//! - Layer 0, the languages and the data, importing nothing of the crate:
//!   - [`kql`]: Kibana Query Language. Parses a query exactly as Kibana does, translates it to
//!     query DSL (what the service sends) and evaluates it in memory (what `scan` uses).
//!   - [`cloudtrail`]: raw CloudTrail records to the ECS documents Elastic's AWS integration
//!     produces, so offline scans see what the cluster would hold.
//!   - [`eql`]: Event Query Language as Elasticsearch runs it: parser, printer, an in-memory
//!     evaluator for event queries and a streaming matcher for sequences (`rule-runner eql`).
//!   - [`new_terms`] and [`threshold`]: the semantics of Kibana's two aggregating rule types,
//!     which terms are new and which groups reach a count, over events held in memory.
//! - Layer 1:
//!   - [`rule`]: detection rules. The [`rule::Rule`] model, loaders for Elastic's
//!     detection-rules TOML and Kibana NDJSON exports, time expressions, the shipped rules.
//!   - [`s3`]: CloudTrail's delivery files read straight from a bucket, as inputs of
//!     [`cloudtrail`]'s reader.
//! - Layer 2, [`alert`]: the event a search found, and the Kibana-compatible alert built from
//!   it with a deterministic id, shared by both modes.
//! - Layer 3, [`engine`]: the run logic, independent of any backend: windows, gaps, dedup,
//!   the `max_signals` cap, scheduling, state; it talks to the world through
//!   [`engine::ports`].
//! - Layer 4, where rules meet data:
//!   - [`scan`]: the rules over raw CloudTrail files with no cluster (`rule-runner scan`):
//!     parallel, streaming, alerts built exactly as the service builds them.
//!   - [`elasticsearch`]: the adapter implementing the engine's ports over the official
//!     client, for Elasticsearch 8 and OpenSearch 2 (the differences in one dialect).
//! - Layer 5:
//!   - [`ops`]: what an operator needs: health and metrics endpoints, leases for scale-out,
//!     `load`.
//!   - [`kibana`]: Kibana's APIs: detection rules registered for rule-runner's rules, the
//!     Security app's alerts index, exceptions read back, saved objects.
//! - Layer 6, [`cli`]: the command line; `main.rs` only parses arguments and calls
//!   [`cli::run`].

pub mod alert;
pub mod cli;
pub mod cloudtrail;
pub mod elasticsearch;
pub mod engine;
pub mod eql;
pub mod kibana;
pub mod kql;
pub mod new_terms;
pub mod ops;
pub mod rule;
pub mod s3;
pub mod scan;
pub mod threshold;

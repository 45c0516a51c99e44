//! Operating the service, and what an operator uses around it.
//!
//! - [`http`]: `/healthz`, `/readyz` (behind [`http::ReadinessProbe`]; [`readiness`] asks
//!   Elasticsearch) and `/metrics`, served with axum when `run --http-addr` is set.
//! - [`metrics`]: the Prometheus registry; [`metered`] feeds it from decorators around the
//!   engine's ports, so neither the engine nor the adapter knows about Prometheus.
//! - [`lease`]: scale-out: per-rule leases in the state index (optimistic concurrency,
//!   renewal, take-over), over Elasticsearch or in memory.
//! - [`service`]: `run`'s operator flags put together (endpoints, metered ports, leases).
//! - [`load`]: `rule-runner load`: CloudTrail normalized and bulk-indexed, with its index
//!   template from `mappings/cloudtrail/`.

pub mod http;
pub mod lease;
pub mod load;
pub mod metered;
pub mod metrics;
pub mod readiness;
pub mod service;

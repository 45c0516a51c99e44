//! The Elasticsearch adapter: event source, alert sink and state store over the official client.
//!
//! - [`config`]: connection and service configuration (file, environment, flags).
//! - [`client`]: the client built from it, with retries and readable errors ([`error`]).
//! - [`dialect`]: everything that differs between Elasticsearch 8 and OpenSearch 2.x, so
//!   nothing else branches on the engine.
//! - [`templates`]: the index templates under `mappings/`, installed by `setup`, checked by `run`.
//! - [`rollover`]: rule-runner's alerts behind a write alias that rolls over (ILM on
//!   Elasticsearch, conditional `_rollover` on OpenSearch), and the move of an older plain index.
//! - [`source`]: the engine's [`EventSource`](crate::engine::EventSource): a rule's window,
//!   searched as Kibana searches it, paged through a point in time.
//! - [`sink`]: the [`AlertSink`](crate::engine::AlertSink): existing-id lookup, bulk `create`,
//!   dead letters.
//! - [`state`]: the [`StateStore`](crate::engine::StateStore): rule state and the execution
//!   log. [`status`]: what `rule-runner status` reads besides.

pub mod client;
pub mod config;
pub mod dialect;
pub mod error;
pub mod rollover;
pub mod sink;
pub mod source;
pub mod state;
pub mod status;
pub mod templates;

pub use client::{Body, Call, ClusterInfo, EsClient, Reply};
pub use config::{
    Auth, ConfigError, ConnectionConfig, ConnectionFlags, Destination, IndexNames, KibanaConfig,
    RetryPolicy, Rollover, Secret, ServiceConfig, security_alerts_alias,
};
pub use dialect::{Dialect, Distribution};
pub use error::EsError;
pub use sink::{AlertsTarget, EsAlertSink};
pub use source::EsEventSource;
pub use state::EsStateStore;

/// The engine's three ports over one cluster, on the indices `names`, alerts in
/// rule-runner's own index.
pub fn ports(
    client: &EsClient,
    names: &IndexNames,
) -> (
    std::sync::Arc<dyn crate::engine::EventSource>,
    std::sync::Arc<dyn crate::engine::AlertSink>,
    std::sync::Arc<dyn crate::engine::StateStore>,
) {
    let target = AlertsTarget::Own {
        index: names.alerts.clone(),
        rollover: Rollover::default(),
    };
    ports_to(client, names, target)
}

/// The engine's three ports for a service configuration: alerts where its destination says.
pub fn ports_for(
    client: &EsClient,
    config: &ServiceConfig,
) -> (
    std::sync::Arc<dyn crate::engine::EventSource>,
    std::sync::Arc<dyn crate::engine::AlertSink>,
    std::sync::Arc<dyn crate::engine::StateStore>,
) {
    ports_to(client, &config.indices, config.alerts())
}

/// The engine's three ports with alerts written to `target`.
pub fn ports_to(
    client: &EsClient,
    names: &IndexNames,
    target: AlertsTarget,
) -> (
    std::sync::Arc<dyn crate::engine::EventSource>,
    std::sync::Arc<dyn crate::engine::AlertSink>,
    std::sync::Arc<dyn crate::engine::StateStore>,
) {
    use std::sync::Arc;
    (
        Arc::new(EsEventSource::new(client.clone())),
        Arc::new(EsAlertSink::to_target(
            client.clone(),
            target,
            &names.dead_letter,
        )),
        Arc::new(EsStateStore::new(
            client.clone(),
            &names.state,
            &names.executions,
        )),
    )
}

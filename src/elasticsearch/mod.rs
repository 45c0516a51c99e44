//! The Elasticsearch adapter: event source, alert sink and state store over the official client.
//!
//! - [`config`]: connection and service configuration (file, environment, flags).
//! - [`client`]: the client built from it, with retries and readable errors ([`error`]).
//! - [`templates`]: the index templates under `mappings/`, installed by `setup`, checked by `run`.

pub mod client;
pub mod config;
pub mod error;
pub mod sink;
pub mod source;
pub mod state;
pub mod templates;

pub use client::{Body, Call, ClusterInfo, EsClient, Reply};
pub use config::{
    Auth, ConfigError, ConnectionConfig, ConnectionFlags, IndexNames, RetryPolicy, Secret,
    ServiceConfig, ServiceSettings,
};
pub use error::EsError;
pub use sink::EsAlertSink;
pub use source::EsEventSource;
pub use state::EsStateStore;

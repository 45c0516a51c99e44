//! Kibana's side of rule-runner: what makes its alerts first-class in the Security app.
//!
//! - [`client`]: where Kibana is and one retried, explained JSON request ([`ApiCall`]).
//! - [`alerts_index`]: the space's alerts index (`.alerts-security.alerts-<space>`),
//!   initialised through the detection engine API as Kibana does, and Kibana's version.
//! - [`rules`]: one disabled Kibana detection rule per rule-runner rule, created or updated
//!   idempotently, so that alerts link to a rule page; [`registry`] keeps each rule's Kibana
//!   id in the state index for the runs.
//! - [`exceptions`]: the exceptions analysts add in Kibana to those rules, read back as the
//!   negated filter Kibana's detection engine applies; [`amendments`] reads them before each
//!   run (the engine's [`RuleAmendments`](crate::engine::RuleAmendments)).
//! - [`saved_objects`]: the data view, saved search and dashboard of rule-runner's own index.

pub mod alerts_index;
pub mod amendments;
pub mod client;
pub mod exceptions;
pub mod registry;
pub mod rules;
pub mod saved_objects;

pub use client::{ApiCall, ApiReply, KibanaError, KibanaTarget, http_client};
pub use saved_objects::{DASHBOARD_ID, DATA_VIEW_ID, SAVED_OBJECTS, saved_objects_for};

use url::Url;

use crate::elasticsearch::{ConnectionConfig, KibanaConfig};

/// A Kibana to talk to: its address, space and credentials, and the HTTP client (with the
/// TLS settings used for Elasticsearch).
#[derive(Debug, Clone)]
pub struct Kibana {
    pub target: KibanaTarget,
    pub http: reqwest::Client,
    /// Kibana's address for people's browsers, in printed links.
    pub public_url: Option<Url>,
}

impl Kibana {
    pub fn new(
        config: &KibanaConfig,
        space: &str,
        connection: &ConnectionConfig,
    ) -> Result<Self, KibanaError> {
        let mut target = KibanaTarget::new(config.url.as_str())?;
        target.auth = config.auth.clone();
        target.space = space.to_string();
        Ok(Kibana {
            target,
            http: http_client(connection)?,
            public_url: config.public_url.clone(),
        })
    }

    /// Over an existing target (tests, and callers that set retries themselves).
    pub fn with_target(target: KibanaTarget) -> Self {
        Kibana {
            target,
            http: reqwest::Client::new(),
            public_url: None,
        }
    }

    pub async fn call(&self, call: &ApiCall) -> Result<ApiReply, KibanaError> {
        self.target.call(&self.http, call).await
    }

    pub fn space(&self) -> &str {
        &self.target.space
    }
}

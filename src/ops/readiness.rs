//! `/readyz` against Elasticsearch: the cluster answers with these credentials, and
//! rule-runner's indices exist with the mappings `setup` installs.

use async_trait::async_trait;

use super::http::{Check, ReadinessProbe};
use crate::elasticsearch::templates;
use crate::elasticsearch::{Destination, EsClient, IndexNames, ServiceConfig};

pub struct EsReadiness {
    /// A client without retries: a probe must answer now, not after a backoff.
    client: EsClient,
    indices: IndexNames,
    destination: Destination,
    space: String,
}

impl EsReadiness {
    pub fn new(client: EsClient, config: &ServiceConfig) -> Self {
        EsReadiness {
            client,
            indices: config.indices.clone(),
            destination: config.destination,
            space: config.engine.space_id.clone(),
        }
    }
}

#[async_trait]
impl ReadinessProbe for EsReadiness {
    async fn checks(&self) -> Vec<Check> {
        let reachable = match self.client.info().await {
            Ok(info) => Check::pass(
                "elasticsearch",
                format!("cluster `{}`, version {}", info.cluster_name, info.version),
            ),
            Err(e) => return vec![Check::fail("elasticsearch", e.to_string())],
        };
        // The same check `run` makes at start: indices present, mappings at this version.
        let checked = templates::check_destination(
            &self.client,
            &self.indices,
            self.destination,
            &self.space,
        );
        let indices = match checked.await {
            Ok(()) => Check::pass(
                "indices",
                match self.destination {
                    Destination::RuleRunner => {
                        "alerts, state, execution log and dead letter in place".to_string()
                    }
                    Destination::Security => format!(
                        "Kibana's alerts alias of space `{}`, state, execution log and dead letter in place",
                        self.space
                    ),
                },
            ),
            Err(e) => Check::fail("indices", e.to_string()),
        };
        vec![reachable, indices]
    }
}

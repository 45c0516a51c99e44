//! `/readyz` against Elasticsearch: the cluster answers with these credentials, and
//! rule-runner's indices exist with the mappings `setup` installs.

use async_trait::async_trait;

use super::http::{Check, ReadinessProbe};
use crate::elasticsearch::templates;
use crate::elasticsearch::{EsClient, IndexNames};

pub struct EsReadiness {
    /// A client without retries: a probe must answer now, not after a backoff.
    client: EsClient,
    indices: IndexNames,
}

impl EsReadiness {
    pub fn new(client: EsClient, indices: IndexNames) -> Self {
        EsReadiness { client, indices }
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
        let indices = match templates::check(&self.client, &self.indices).await {
            Ok(()) => Check::pass(
                "indices",
                "alerts, state, execution log and dead letter in place",
            ),
            Err(e) => Check::fail("indices", e.to_string()),
        };
        vec![reachable, indices]
    }
}

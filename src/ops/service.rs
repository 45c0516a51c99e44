//! What `rule-runner run` adds for operators: the health and metrics endpoints, metered
//! ports, and leases so several instances share the rules.

use std::net::SocketAddr;
use std::sync::Arc;

use super::http::{self, Endpoints, HttpError, HttpServer};
use super::lease::elasticsearch::EsLeaseBackend;
use super::lease::{LeaseManager, instance_id, system_now};
use super::metered::{MeteredSink, MeteredSource, MeteredStateStore};
use super::metrics::Metrics;
use super::readiness::EsReadiness;
use crate::elasticsearch::{EsClient, RetryPolicy, ServiceConfig};
use crate::engine::{AlertSink, EventSource, Leases, Shutdown, SoleInstance, StateStore};

/// `run`'s operator flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OpsFlags {
    /// Serve /healthz, /readyz and /metrics (Prometheus) on this address, e.g.
    /// `127.0.0.1:9464` or `0.0.0.0:9464`. Off unless set.
    #[arg(long, value_name = "ADDR", env = "RULE_RUNNER_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Share the rules with other instances on the same cluster: each run is claimed
    /// through a lease document in the state index, so no rule runs twice at once. Set it
    /// on every instance when running more than one.
    #[arg(long, env = "RULE_RUNNER_LEASES")]
    pub leases: bool,
}

/// The operator side of one `run` process.
pub struct Operations {
    flags: OpsFlags,
    metrics: Option<Arc<Metrics>>,
}

impl Operations {
    pub fn new(flags: &OpsFlags) -> Self {
        Operations {
            flags: flags.clone(),
            metrics: flags.http_addr.map(|_| Arc::new(Metrics::new())),
        }
    }

    /// Nothing extra: for one-off commands (`backfill`).
    pub fn disabled() -> Self {
        Operations {
            flags: OpsFlags::default(),
            metrics: None,
        }
    }

    /// The engine's ports, measured when metrics are on.
    pub fn meter(
        &self,
        source: Arc<dyn EventSource>,
        sink: Arc<dyn AlertSink>,
        state: Arc<dyn StateStore>,
    ) -> (
        Arc<dyn EventSource>,
        Arc<dyn AlertSink>,
        Arc<dyn StateStore>,
    ) {
        match &self.metrics {
            None => (source, sink, state),
            Some(m) => (
                Arc::new(MeteredSource::new(source, m.clone())),
                Arc::new(MeteredSink::new(sink, m.clone())),
                Arc::new(MeteredStateStore::new(state, m.clone())),
            ),
        }
    }

    /// Leases in the state index with `--leases`, else the sole-instance grant.
    pub fn leases(&self, client: &EsClient, config: &ServiceConfig) -> Arc<dyn Leases> {
        if !self.flags.leases {
            return Arc::new(SoleInstance);
        }
        let owner = instance_id();
        tracing::info!(instance = %owner, "sharing rules with other instances through leases in `{}`", config.indices.state);
        let backend = Arc::new(EsLeaseBackend::new(client.clone(), &config.indices.state));
        let mut manager = LeaseManager::new(backend, owner, system_now());
        if let Some(m) = &self.metrics {
            manager = manager.with_metrics(m.clone());
        }
        Arc::new(manager)
    }

    /// Start the endpoints when `--http-addr` is set; they stop with `shutdown`.
    pub async fn serve(
        &self,
        config: &ServiceConfig,
        shutdown: Shutdown,
    ) -> Result<Option<HttpServer>, ServeError> {
        let (Some(addr), Some(metrics)) = (self.flags.http_addr, &self.metrics) else {
            return Ok(None);
        };
        let probe_retry = RetryPolicy {
            max_attempts: 1,
            ..config.retry.clone()
        };
        let probe_client = EsClient::connect(&config.connection, probe_retry)
            .map_err(|e| ServeError::Probe(e.to_string()))?;
        let readiness = Arc::new(EsReadiness::new(probe_client, config));
        let endpoints = Endpoints::new(metrics.clone(), readiness);
        let server =
            http::serve(addr, endpoints, async move { shutdown.requested().await }).await?;
        eprintln!(
            "health and metrics on http://{}/ (healthz, readyz, metrics)",
            server.local_addr
        );
        Ok(Some(server))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("cannot build the Elasticsearch client for /readyz: {0}")]
    Probe(String),
}

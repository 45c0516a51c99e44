//! The operator's HTTP endpoints: `/healthz` (the process is alive and serving), `/readyz`
//! (Elasticsearch is reachable and rule-runner's indices and templates are in place) and
//! `/metrics` (Prometheus). Off unless an address is configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::metrics::{CONTENT_TYPE, Metrics};

/// One readiness check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Why it failed (or what was found), in words an operator can act on.
    pub detail: String,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
        }
    }
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// What `/readyz` asks. The Elasticsearch implementation checks the cluster and the indices;
/// tests use a scripted one.
#[async_trait]
pub trait ReadinessProbe: Send + Sync {
    async fn checks(&self) -> Vec<Check>;
}

/// Always ready: for processes with nothing to depend on.
pub struct AlwaysReady;

#[async_trait]
impl ReadinessProbe for AlwaysReady {
    async fn checks(&self) -> Vec<Check> {
        Vec::new()
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Arc<dyn ReadinessProbe>,
    readiness_timeout: Duration,
    started: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr} for the health and metrics endpoints: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running endpoint server.
pub struct HttpServer {
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// What the endpoints report on.
#[derive(Clone)]
pub struct Endpoints {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<dyn ReadinessProbe>,
    /// `/readyz` answers "not ready" when the checks take longer than this.
    pub readiness_timeout: Duration,
}

impl Endpoints {
    pub fn new(metrics: Arc<Metrics>, readiness: Arc<dyn ReadinessProbe>) -> Self {
        Endpoints {
            metrics,
            readiness,
            readiness_timeout: Duration::from_secs(5),
        }
    }
}

/// Bind `addr` now (so a port in use is reported at start-up) and serve until `shutdown`
/// completes.
pub async fn serve(
    addr: SocketAddr,
    endpoints: Endpoints,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<HttpServer, HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let app = router(AppState {
        metrics: endpoints.metrics,
        readiness: endpoints.readiness,
        readiness_timeout: endpoints.readiness_timeout,
        started: Instant::now(),
    });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("health and metrics endpoints stopped: {e}");
        }
    });
    tracing::info!(%local_addr, "serving /healthz, /readyz and /metrics");
    Ok(HttpServer { local_addr, task })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "uptime_seconds": state.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let checks = match tokio::time::timeout(state.readiness_timeout, state.readiness.checks()).await
    {
        Ok(checks) => checks,
        Err(_) => vec![Check::fail(
            "elasticsearch",
            format!("no answer within {}s", state.readiness_timeout.as_secs()),
        )],
    };
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({ "ready": ready, "checks": checks })),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

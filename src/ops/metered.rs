//! Decorators over the engine's ports that feed [`Metrics`]: wrap the Elasticsearch source,
//! sink and state store once at start-up and every search, bulk write and run record is
//! measured, without the engine or the adapter knowing about Prometheus.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::Deserialize as _;
use serde_json::Value;

use super::metrics::{Metrics, RunFacts};
use crate::engine::ports::{
    AlertDoc, AlertSink, EventSource, GroupPage, GroupQuery, HitStream, PortError, RuleState,
    StateStore, WindowQuery, WriteOutcome,
};

pub struct MeteredSource {
    inner: Arc<dyn EventSource>,
    metrics: Arc<Metrics>,
}

impl MeteredSource {
    pub fn new(inner: Arc<dyn EventSource>, metrics: Arc<Metrics>) -> Self {
        MeteredSource { inner, metrics }
    }
}

/// Time `call`, count an error under `operation`.
async fn timed<T>(
    metrics: &Metrics,
    operation: &str,
    observe: fn(&Metrics, std::time::Duration),
    call: impl std::future::Future<Output = Result<T, PortError>>,
) -> Result<T, PortError> {
    let start = Instant::now();
    let result = call.await;
    observe(metrics, start.elapsed());
    if result.is_err() {
        metrics.port_error(operation);
    }
    result
}

#[async_trait]
impl EventSource for MeteredSource {
    async fn search(&self, query: WindowQuery) -> Result<Box<dyn HitStream>, PortError> {
        let inner = timed(
            &self.metrics,
            "search",
            Metrics::observe_search,
            self.inner.search(query),
        )
        .await?;
        Ok(Box::new(MeteredStream {
            inner,
            metrics: self.metrics.clone(),
        }))
    }

    async fn groups(&self, query: GroupQuery) -> Result<GroupPage, PortError> {
        timed(
            &self.metrics,
            "search",
            Metrics::observe_search,
            self.inner.groups(query),
        )
        .await
    }
}

struct MeteredStream {
    inner: Box<dyn HitStream>,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl HitStream for MeteredStream {
    async fn next_page(
        &mut self,
    ) -> Result<Option<Vec<crate::engine::ports::EventHit>>, PortError> {
        timed(
            &self.metrics,
            "search",
            Metrics::observe_search,
            self.inner.next_page(),
        )
        .await
    }
    async fn close(&mut self) -> Result<(), PortError> {
        self.inner.close().await
    }
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }
}

pub struct MeteredSink {
    inner: Arc<dyn AlertSink>,
    metrics: Arc<Metrics>,
}

impl MeteredSink {
    pub fn new(inner: Arc<dyn AlertSink>, metrics: Arc<Metrics>) -> Self {
        MeteredSink { inner, metrics }
    }
}

#[async_trait]
impl AlertSink for MeteredSink {
    async fn existing_ids(&self, ids: &[String]) -> Result<HashSet<String>, PortError> {
        timed(
            &self.metrics,
            "existing_ids",
            Metrics::observe_search,
            self.inner.existing_ids(ids),
        )
        .await
    }
    async fn create(&self, alerts: &[AlertDoc]) -> Result<Vec<WriteOutcome>, PortError> {
        timed(
            &self.metrics,
            "bulk",
            Metrics::observe_bulk,
            self.inner.create(alerts),
        )
        .await
    }
    async fn dead_letter(&self, alert: &AlertDoc, reason: &str) -> Result<(), PortError> {
        let result = self.inner.dead_letter(alert, reason).await;
        if result.is_err() {
            self.metrics.port_error("dead_letter");
        }
        result
    }
    async fn dead_lettered_ids(&self, ids: &[String]) -> Result<HashSet<String>, PortError> {
        timed(
            &self.metrics,
            "dead_lettered_ids",
            Metrics::observe_search,
            self.inner.dead_lettered_ids(ids),
        )
        .await
    }
}

/// Counts every run from the execution record the engine saves.
pub struct MeteredStateStore {
    inner: Arc<dyn StateStore>,
    metrics: Arc<Metrics>,
}

impl MeteredStateStore {
    pub fn new(inner: Arc<dyn StateStore>, metrics: Arc<Metrics>) -> Self {
        MeteredStateStore { inner, metrics }
    }
}

#[async_trait]
impl StateStore for MeteredStateStore {
    async fn load(&self, rule_id: &str) -> Result<Option<RuleState>, PortError> {
        self.inner.load(rule_id).await
    }
    async fn save(&self, state: &RuleState) -> Result<(), PortError> {
        let result = self.inner.save(state).await;
        if result.is_err() {
            self.metrics.port_error("state");
        }
        result
    }
    async fn record_execution(&self, record: &Value) -> Result<(), PortError> {
        match RunFacts::deserialize(record) {
            Ok(facts) => self.metrics.record_run(&facts),
            Err(e) => tracing::warn!("execution record not counted in metrics: {e}"),
        }
        let result = self.inner.record_execution(record).await;
        if result.is_err() {
            self.metrics.port_error("state");
        }
        result
    }
}

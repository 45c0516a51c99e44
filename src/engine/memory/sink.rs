//! Alerts held in memory, with the write semantics of the alerts index.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::engine::ports::{AlertDoc, AlertSink, PortError, WriteOutcome};

/// Decides the outcome of writing one alert instead of the store (to simulate 429s, mapping
/// rejections...); `None` lets the store handle it.
pub type OutcomeRule = Box<dyn Fn(&AlertDoc) -> Option<WriteOutcome> + Send>;

#[derive(Default)]
struct Inner {
    alerts: Vec<AlertDoc>,
    ids: HashSet<String>,
    dead_letters: Vec<(AlertDoc, String)>,
    unavailable: Option<String>,
    outcome_rule: Option<OutcomeRule>,
}

/// An in-memory alerts index that implements [`AlertSink`].
#[derive(Default)]
pub struct MemorySink {
    inner: Mutex<Inner>,
}

impl MemorySink {
    pub fn new() -> Self {
        MemorySink::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make every call fail as a whole with a transient error (`Some`), or work again (`None`).
    pub fn set_unavailable(&self, reason: Option<&str>) {
        self.lock().unavailable = reason.map(str::to_owned);
    }

    /// Override per-alert outcomes (see [`OutcomeRule`]); `None` removes the override.
    pub fn set_outcome_rule(&self, rule: Option<OutcomeRule>) {
        self.lock().outcome_rule = rule;
    }

    /// The alerts written, in write order.
    pub fn alerts(&self) -> Vec<AlertDoc> {
        self.lock().alerts.clone()
    }

    pub fn len(&self) -> usize {
        self.lock().alerts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().ids.contains(id)
    }

    /// The alerts refused for good, with the reasons.
    pub fn dead_letters(&self) -> Vec<(AlertDoc, String)> {
        self.lock().dead_letters.clone()
    }

    fn check_available(inner: &Inner) -> Result<(), PortError> {
        match &inner.unavailable {
            Some(reason) => Err(PortError::Transient(reason.clone())),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl AlertSink for MemorySink {
    async fn existing_ids(&self, ids: &[String]) -> Result<HashSet<String>, PortError> {
        let inner = self.lock();
        Self::check_available(&inner)?;
        Ok(ids
            .iter()
            .filter(|id| inner.ids.contains(*id))
            .cloned()
            .collect())
    }

    async fn create(&self, alerts: &[AlertDoc]) -> Result<Vec<WriteOutcome>, PortError> {
        let mut inner = self.lock();
        Self::check_available(&inner)?;
        let mut outcomes = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let forced = inner.outcome_rule.as_ref().and_then(|rule| rule(alert));
            let outcome = match forced {
                Some(outcome) => outcome,
                None if inner.ids.contains(&alert.id) => WriteOutcome::Duplicate,
                None => {
                    inner.ids.insert(alert.id.clone());
                    inner.alerts.push(alert.clone());
                    WriteOutcome::Created
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn dead_letter(&self, alert: &AlertDoc, reason: &str) -> Result<(), PortError> {
        let mut inner = self.lock();
        Self::check_available(&inner)?;
        // Like a `create` into the dead-letter index: one entry per alert id.
        if !inner
            .dead_letters
            .iter()
            .any(|(kept, _)| kept.id == alert.id)
        {
            inner.dead_letters.push((alert.clone(), reason.to_owned()));
        }
        Ok(())
    }

    async fn dead_lettered_ids(&self, ids: &[String]) -> Result<HashSet<String>, PortError> {
        let inner = self.lock();
        Self::check_available(&inner)?;
        Ok(ids
            .iter()
            .filter(|id| inner.dead_letters.iter().any(|(kept, _)| kept.id == **id))
            .cloned()
            .collect())
    }
}

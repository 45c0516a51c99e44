//! Rule state and execution records held in memory. (In-memory leases for scale-out tests
//! are `ops::lease::memory`, which shares its claim logic with the Elasticsearch leases.)

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;

use crate::engine::ports::{PortError, RuleState, StateStore};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An in-memory [`StateStore`]. Share one between engines to simulate a restart.
#[derive(Default)]
pub struct MemoryStateStore {
    states: Mutex<HashMap<String, RuleState>>,
    executions: Mutex<Vec<Value>>,
    unavailable: Mutex<Option<String>>,
}

impl MemoryStateStore {
    pub fn new() -> Self {
        MemoryStateStore::default()
    }

    pub fn state(&self, rule_id: &str) -> Option<RuleState> {
        lock(&self.states).get(rule_id).cloned()
    }

    /// The execution records kept so far, oldest first.
    pub fn executions(&self) -> Vec<Value> {
        lock(&self.executions).clone()
    }

    /// Make loads and saves fail with a transient error (`Some`), or work again (`None`).
    pub fn set_unavailable(&self, reason: Option<&str>) {
        *lock(&self.unavailable) = reason.map(str::to_owned);
    }

    fn check(&self) -> Result<(), PortError> {
        match lock(&self.unavailable).as_ref() {
            Some(reason) => Err(PortError::Transient(reason.clone())),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl StateStore for MemoryStateStore {
    async fn load(&self, rule_id: &str) -> Result<Option<RuleState>, PortError> {
        self.check()?;
        Ok(self.state(rule_id))
    }

    async fn save(&self, state: &RuleState) -> Result<(), PortError> {
        self.check()?;
        lock(&self.states).insert(state.rule_id.clone(), state.clone());
        Ok(())
    }

    async fn record_execution(&self, record: &Value) -> Result<(), PortError> {
        self.check()?;
        lock(&self.executions).push(record.clone());
        Ok(())
    }
}

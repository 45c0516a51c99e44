//! Rule state, execution records and leases held in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::engine::clock::Clock;
use crate::engine::ports::{Leases, PortError, RuleState, StateStore};
use crate::engine::windows::delta;

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

/// Leases shared by several in-memory instances: who holds which rule, until when.
pub struct LeaseTable {
    clock: Arc<dyn Clock>,
    held: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
}

impl LeaseTable {
    pub fn new(clock: Arc<dyn Clock>) -> Arc<LeaseTable> {
        Arc::new(LeaseTable {
            clock,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The [`Leases`] of one instance named `instance`.
    pub fn instance(self: &Arc<Self>, instance: &str) -> MemoryLeases {
        MemoryLeases {
            table: Arc::clone(self),
            instance: instance.to_owned(),
        }
    }

    /// The live holder of `rule_id`'s lease.
    pub fn holder(&self, rule_id: &str) -> Option<String> {
        let now = self.clock.now();
        lock(&self.held)
            .get(rule_id)
            .filter(|(_, until)| *until > now)
            .map(|(holder, _)| holder.clone())
    }
}

/// One instance's view of a [`LeaseTable`].
pub struct MemoryLeases {
    table: Arc<LeaseTable>,
    instance: String,
}

#[async_trait]
impl Leases for MemoryLeases {
    async fn acquire(&self, rule_id: &str, ttl: Duration) -> Result<bool, PortError> {
        let now = self.table.clock.now();
        let mut held = lock(&self.table.held);
        if let Some((holder, until)) = held.get(rule_id)
            && *holder != self.instance
            && *until > now
        {
            return Ok(false);
        }
        held.insert(
            rule_id.to_owned(),
            (self.instance.clone(), now + delta(ttl)),
        );
        Ok(true)
    }

    async fn release(&self, rule_id: &str) -> Result<(), PortError> {
        let mut held = lock(&self.table.held);
        if held
            .get(rule_id)
            .is_some_and(|(holder, _)| *holder == self.instance)
        {
            held.remove(rule_id);
        }
        Ok(())
    }
}

//! Leases in process memory, with the same create / compare-and-set semantics as the
//! Elasticsearch backend: for tests, benchmarks and several engines in one process.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Lease, LeaseBackend, Version};
use crate::engine::ports::PortError;

/// One shared store; give every simulated instance its own `LeaseManager` over it.
#[derive(Debug, Default)]
pub struct MemoryLeaseBackend {
    leases: Mutex<HashMap<String, (Lease, Version)>>,
}

impl MemoryLeaseBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every lease, for assertions.
    pub fn snapshot(&self) -> Vec<Lease> {
        let mut all: Vec<_> = self.lock().values().map(|(l, _)| l.clone()).collect();
        all.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Lease, Version)>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl LeaseBackend for MemoryLeaseBackend {
    async fn read(&self, rule_id: &str) -> Result<Option<(Lease, Version)>, PortError> {
        Ok(self.lock().get(rule_id).cloned())
    }

    async fn create(&self, lease: &Lease) -> Result<bool, PortError> {
        let mut leases = self.lock();
        if leases.contains_key(&lease.rule_id) {
            return Ok(false);
        }
        let version = Version {
            seq_no: 0,
            primary_term: 1,
        };
        leases.insert(lease.rule_id.clone(), (lease.clone(), version));
        Ok(true)
    }

    async fn replace(&self, lease: &Lease, version: Version) -> Result<bool, PortError> {
        let mut leases = self.lock();
        match leases.get_mut(&lease.rule_id) {
            Some((stored, current)) if *current == version => {
                *stored = lease.clone();
                current.seq_no += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

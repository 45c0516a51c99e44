//! Scale-out: several rule-runner instances share one cluster's rules by claiming each rule's
//! run through a lease document in the state index.
//!
//! A lease names its owner and an expiry. An instance may run a rule when it creates the
//! lease (`op_type=create`), when it already owns it (renewal), or when the lease expired or
//! was released (take-over). Every write after the first is conditional on the version read
//! (`if_seq_no` / `if_primary_term`), so of two instances racing for one lease exactly one
//! wins; the other sees a 409 and skips the rule. While a run lasts, the lease is renewed in
//! the background every third of its time to live; a killed instance stops renewing and its
//! rules pass to another instance once its leases expire. If a lease is lost mid-run (a long
//! pause, a partition), two instances may briefly run one rule: the deterministic alert ids
//! turn the second write of each alert into a 409 duplicate, so no alert is doubled.
//!
//! [`LeaseManager`] holds that logic once; [`LeaseBackend`] is the storage it needs:
//! [`elasticsearch::EsLeaseBackend`] for the service and [`memory::MemoryLeaseBackend`] for
//! tests and single-process use. Expiry uses each instance's wall clock: keep the hosts'
//! clocks synchronized (NTP) to well within a lease's time to live.

pub mod elasticsearch;
pub mod memory;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use crate::engine::ports::{Leases, PortError};

/// The lease document (`lease` object of `lease:<rule_id>` in the state index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub rule_id: String,
    /// The instance holding it, or `None` once released.
    pub owner: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
}

/// The version a conditional write must match (Elasticsearch's `_seq_no` / `_primary_term`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub seq_no: i64,
    pub primary_term: i64,
}

/// Storage for lease documents with atomic create and compare-and-set.
#[async_trait]
pub trait LeaseBackend: Send + Sync + 'static {
    async fn read(&self, rule_id: &str) -> Result<Option<(Lease, Version)>, PortError>;
    /// Create the lease; `false` when it exists already (HTTP 409).
    async fn create(&self, lease: &Lease) -> Result<bool, PortError>;
    /// Replace the lease if it is still at `version`; `false` when it changed (HTTP 409).
    async fn replace(&self, lease: &Lease, version: Version) -> Result<bool, PortError>;
}

/// The current time; injectable so tests can move it.
pub type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_now() -> Now {
    Arc::new(Utc::now)
}

/// The engine's clock as a lease clock, so leases and schedules agree on the time.
pub fn clock_now(clock: Arc<dyn crate::engine::Clock>) -> Now {
    Arc::new(move || clock.now())
}

/// What an instance may do with a lease it has just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    Create,
    Replace(Version),
    HeldByOther,
}

fn claim(existing: Option<&(Lease, Version)>, me: &str, now: DateTime<Utc>) -> Claim {
    match existing {
        None => Claim::Create,
        Some((lease, version)) => {
            let mine = lease.owner.as_deref() == Some(me);
            let free = lease.owner.is_none() || lease.expires_at <= now;
            if mine || free {
                Claim::Replace(*version)
            } else {
                Claim::HeldByOther
            }
        }
    }
}

/// A name for this process that is unique across hosts and restarts.
pub fn instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "rule-runner".into());
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &unique[..8])
}

/// The [`Leases`] the scheduler asks before each run.
pub struct LeaseManager<B: LeaseBackend> {
    backend: Arc<B>,
    owner: String,
    now: Now,
    /// Background renewals of the leases this instance holds, by rule.
    renewals: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    metrics: Option<Arc<Metrics>>,
}

impl<B: LeaseBackend> LeaseManager<B> {
    pub fn new(backend: Arc<B>, owner: impl Into<String>, now: Now) -> Self {
        LeaseManager {
            backend,
            owner: owner.into(),
            now,
            renewals: Mutex::new(HashMap::new()),
            metrics: None,
        }
    }

    /// Report the number of leases held in `rule_runner_leases_held`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn report_held(&self) {
        if let Some(m) = &self.metrics {
            m.set_leases_held(self.lock().len());
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Rules this instance holds a lease on right now (for metrics and status).
    pub fn held(&self) -> Vec<String> {
        let mut held: Vec<_> = self.lock().keys().cloned().collect();
        held.sort();
        held
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::task::JoinHandle<()>>> {
        self.renewals.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start_renewing(&self, rule_id: &str, ttl: Duration) {
        let backend = self.backend.clone();
        let owner = self.owner.clone();
        let now = self.now.clone();
        let rule = rule_id.to_string();
        let period = (ttl / 3).max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match try_claim(backend.as_ref(), &rule, &owner, ttl, now()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            rule_id = %rule,
                            "lost the lease while running; another instance took the rule over \
                             (alert ids are deterministic, so no alert is written twice)"
                        );
                        return;
                    }
                    Err(e) => tracing::warn!(rule_id = %rule, "renewing the lease failed: {e}"),
                }
            }
        });
        if let Some(previous) = self.lock().insert(rule_id.to_string(), task) {
            previous.abort();
        }
    }
}

/// One claim attempt: read, decide, write conditionally.
async fn try_claim<B: LeaseBackend + ?Sized>(
    backend: &B,
    rule_id: &str,
    owner: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<bool, PortError> {
    let existing = backend.read(rule_id).await?;
    let expires_at = now
        + chrono::TimeDelta::from_std(ttl).map_err(|_| {
            PortError::Permanent(format!("lease time to live {ttl:?} is out of range"))
        })?;
    let acquired_at = match &existing {
        Some((lease, _)) if lease.owner.as_deref() == Some(owner) => lease.acquired_at,
        _ => now,
    };
    let lease = Lease {
        rule_id: rule_id.to_string(),
        owner: Some(owner.to_string()),
        expires_at,
        acquired_at,
        renewed_at: now,
    };
    match claim(existing.as_ref(), owner, now) {
        Claim::Create => backend.create(&lease).await,
        Claim::Replace(version) => backend.replace(&lease, version).await,
        Claim::HeldByOther => Ok(false),
    }
}

#[async_trait]
impl<B: LeaseBackend> Leases for LeaseManager<B> {
    async fn acquire(&self, rule_id: &str, ttl: Duration) -> Result<bool, PortError> {
        let won = try_claim(
            self.backend.as_ref(),
            rule_id,
            &self.owner,
            ttl,
            (self.now)(),
        )
        .await?;
        if won {
            self.start_renewing(rule_id, ttl);
        } else if let Some(stale) = self.lock().remove(rule_id) {
            stale.abort();
        }
        self.report_held();
        Ok(won)
    }

    async fn release(&self, rule_id: &str) -> Result<(), PortError> {
        if let Some(task) = self.lock().remove(rule_id) {
            task.abort();
        }
        self.report_held();
        let Some((lease, version)) = self.backend.read(rule_id).await? else {
            return Ok(());
        };
        if lease.owner.as_deref() != Some(self.owner.as_str()) {
            return Ok(());
        }
        let now = (self.now)();
        let released = Lease {
            owner: None,
            expires_at: now,
            renewed_at: now,
            ..lease
        };
        // A 409 means someone else took it meanwhile: nothing left to give up.
        self.backend.replace(&released, version).await.map(|_| ())
    }
}

impl<B: LeaseBackend> Drop for LeaseManager<B> {
    fn drop(&mut self) {
        for (_, task) in self.lock().drain() {
            task.abort();
        }
    }
}

/// RFC 3339 with milliseconds, as Elasticsearch `date` fields store it.
pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn lease(owner: Option<&str>, expires_min: u32) -> (Lease, Version) {
        let t = |m| Utc.with_ymd_and_hms(2025, 1, 1, 0, m, 0).unwrap();
        let l = Lease {
            rule_id: "r".into(),
            owner: owner.map(str::to_string),
            expires_at: t(expires_min),
            acquired_at: t(0),
            renewed_at: t(0),
        };
        (
            l,
            Version {
                seq_no: 7,
                primary_term: 1,
            },
        )
    }

    #[test]
    fn who_may_claim() {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 5, 0).unwrap();
        let v = Version {
            seq_no: 7,
            primary_term: 1,
        };
        assert_eq!(claim(None, "a", now), Claim::Create);
        assert_eq!(
            claim(Some(&lease(Some("a"), 9)), "a", now),
            Claim::Replace(v)
        );
        assert_eq!(
            claim(Some(&lease(Some("b"), 9)), "a", now),
            Claim::HeldByOther
        );
        assert_eq!(
            claim(Some(&lease(Some("b"), 5)), "a", now),
            Claim::Replace(v),
            "expired at now"
        );
        assert_eq!(
            claim(Some(&lease(None, 9)), "a", now),
            Claim::Replace(v),
            "released"
        );
    }

    #[test]
    fn instance_ids_differ() {
        assert_ne!(instance_id(), instance_id());
    }
}

//! Lease documents in the state index, written with Elasticsearch's optimistic concurrency
//! control: `op_type=create` for the first claim, `if_seq_no` / `if_primary_term` after.
//!
//! The document id is `lease:<rule_id>`, next to the rule's state document (id `<rule_id>`);
//! the lease sits under a `lease` object and has no top-level `rule_id`, so queries over
//! rule states (`exists: rule_id`) never see it.

use ::elasticsearch::http::Method;
use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Lease, LeaseBackend, Version};
use crate::elasticsearch::client::path_segment;
use crate::elasticsearch::{Call, EsClient};
use crate::engine::ports::PortError;

pub struct EsLeaseBackend {
    client: EsClient,
    index: String,
}

impl EsLeaseBackend {
    /// Leases in `state_index` (the configured state index).
    pub fn new(client: EsClient, state_index: impl Into<String>) -> Self {
        EsLeaseBackend {
            client,
            index: state_index.into(),
        }
    }

    fn doc_path(&self, rule_id: &str) -> String {
        format!(
            "/{}/_doc/{}",
            path_segment(&self.index),
            path_segment(&format!("lease:{rule_id}"))
        )
    }

    /// 2xx → true, 409 → false, anything else an error naming the request.
    async fn conditional_write(&self, call: Call) -> Result<bool, PortError> {
        let reply = self.client.send(&call).await.map_err(PortError::from)?;
        if reply.status == 409 {
            return Ok(false);
        }
        reply.into_ok(&call.what).map_err(PortError::from)?;
        Ok(true)
    }
}

fn body(lease: &Lease) -> Value {
    json!({
        "lease": {
            "rule_id": lease.rule_id,
            "owner": lease.owner,
            "expires_at": super::timestamp(lease.expires_at),
            "acquired_at": super::timestamp(lease.acquired_at),
            "renewed_at": super::timestamp(lease.renewed_at),
        }
    })
}

#[async_trait]
impl LeaseBackend for EsLeaseBackend {
    async fn read(&self, rule_id: &str) -> Result<Option<(Lease, Version)>, PortError> {
        let call = Call::new(
            format!("read the lease of rule {rule_id}"),
            Method::Get,
            self.doc_path(rule_id),
        );
        let reply = self.client.send(&call).await.map_err(PortError::from)?;
        if reply.status == 404 {
            return Ok(None);
        }
        let doc = reply.into_ok(&call.what).map_err(PortError::from)?;
        let malformed = |what: &str| {
            PortError::Permanent(format!(
                "{}: the lease document in `{}` has no valid {what}; delete it (it is \
                 recreated on the next claim)",
                call.what, self.index
            ))
        };
        let lease: Lease = serde_json::from_value(doc["_source"]["lease"].clone())
            .map_err(|_| malformed("`lease` object"))?;
        let version = Version {
            seq_no: doc["_seq_no"]
                .as_i64()
                .ok_or_else(|| malformed("_seq_no"))?,
            primary_term: doc["_primary_term"]
                .as_i64()
                .ok_or_else(|| malformed("_primary_term"))?,
        };
        Ok(Some((lease, version)))
    }

    async fn create(&self, lease: &Lease) -> Result<bool, PortError> {
        let call = Call::new(
            format!("claim the lease of rule {}", lease.rule_id),
            Method::Put,
            self.doc_path(&lease.rule_id),
        )
        .param("op_type", "create")
        .json(body(lease));
        self.conditional_write(call).await
    }

    async fn replace(&self, lease: &Lease, version: Version) -> Result<bool, PortError> {
        let call = Call::new(
            format!("update the lease of rule {}", lease.rule_id),
            Method::Put,
            self.doc_path(&lease.rule_id),
        )
        .param("if_seq_no", version.seq_no.to_string())
        .param("if_primary_term", version.primary_term.to_string())
        .json(body(lease));
        self.conditional_write(call).await
    }
}

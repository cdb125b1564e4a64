//! The audit log: who changed what, when.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::StoreError;

/// A change to record. Stores write it in the transaction of the change itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    /// When the change happened.
    pub at: OffsetDateTime,
    /// Who made it: `admin-token`, `api-key:<name>`, or `system`.
    pub actor: String,
    /// What was done, dotted: `abm_token.create`, `abm_token.upload`, `api_key.revoke`, ….
    pub action: String,
    /// What it was done to (an entry or key name).
    pub target: String,
    /// Facts about the change. Never secrets.
    pub details: serde_json::Value,
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Increasing identifier: later events have larger ids.
    pub id: i64,
    /// When the change happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who made it.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// What it was done to.
    pub target: String,
    /// Facts about the change.
    pub details: serde_json::Value,
}

/// Reading the audit log. Writing happens inside the other stores' mutating methods.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Up to `limit` events, newest first, only those with `id < before` when given.
    /// An empty list means there are none (left).
    async fn list_audit(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}

//! Named API tokens for the admin REST API. Only a hash of each token is stored.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{NewAuditEvent, StoreError};

/// A token to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApiKey {
    /// Identifier.
    pub id: Uuid,
    /// Name, unique among the keys that are not revoked.
    pub name: String,
    /// Hex SHA-256 of the token; the token itself is never stored.
    pub token_hash: String,
    /// Who created it (an audit actor).
    pub created_by: String,
    /// When.
    pub created_at: OffsetDateTime,
}

/// A stored token, without its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    /// Identifier.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last authenticated a request (kept to about a minute); `None` if never.
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked; `None` while it is valid.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Storage of API tokens.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key. [`StoreError::Conflict`] when a key that is not revoked has the name.
    async fn create_api_key(
        &self,
        key: &NewApiKey,
        audit: &NewAuditEvent,
    ) -> Result<ApiKey, StoreError>;

    /// Every key, revoked ones included, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// The key that is not revoked and has this hash; `None` when there is none.
    async fn find_active_api_key(&self, token_hash: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Records a use at `at`, unless one was recorded after `at - min_interval_secs` (so a busy
    /// key does not cost a write per request).
    async fn touch_api_key(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        min_interval_secs: i64,
    ) -> Result<(), StoreError>;

    /// Revokes the key with this name. [`StoreError::NotFound`] when no such key is valid.
    async fn revoke_api_key(
        &self,
        name: &str,
        at: OffsetDateTime,
        audit: &NewAuditEvent,
    ) -> Result<ApiKey, StoreError>;
}

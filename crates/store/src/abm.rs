//! ABM entries: one per "MDM server" in Apple Business Manager, with its key pair and, once
//! uploaded, its server token.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{EntryId, NewAuditEvent, StoreError};

/// An entry to create: the key pair exists, no server token yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAbmEntry {
    /// Identifier; also part of the sealing context of the entry's secrets.
    pub id: EntryId,
    /// Unique name (the CLI and API address entries by it).
    pub name: String,
    /// The public certificate the admin uploads to ABM.
    pub certificate_pem: String,
    /// The private key, sealed with the server's secret key.
    pub sealed_private_key: Vec<u8>,
    /// Devices per fetch/sync page.
    pub batch_size: u32,
    /// A DEP API base URL for this entry only; `None` means the server default.
    pub abm_url: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// The server token of an entry, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTokenRecord {
    /// The token JSON (four OAuth values and expiry), sealed.
    pub sealed_token: Vec<u8>,
    /// `access_token_expiry`, kept in clear for health checks and metrics.
    pub expires_at: OffsetDateTime,
    /// When it was uploaded.
    pub uploaded_at: OffsetDateTime,
}

/// What Apple's `GET /account` said about the entry's MDM server.
#[derive(Debug, Clone, PartialEq)]
pub struct AbmAccount {
    /// The MDM server's name in ABM.
    pub server_name: String,
    /// The MDM server's stable identifier in ABM.
    pub server_uuid: String,
    /// The organization.
    pub org_name: Option<String>,
    /// The Apple Account that downloaded the token.
    pub admin_id: Option<String>,
    /// When Apple said so.
    pub checked_at: OffsetDateTime,
}

/// A problem Apple reported for the entry's token, which its expiry alone does not show.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenProblem {
    /// Machine-readable kind, for example `terms_not_signed` or `rejected`.
    pub kind: String,
    /// What the admin should do.
    pub message: String,
    /// When it was first seen.
    pub since: OffsetDateTime,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AbmEntry {
    /// Identifier.
    pub id: EntryId,
    /// Unique name.
    pub name: String,
    /// The public certificate to upload to ABM.
    pub certificate_pem: String,
    /// The private key, sealed.
    pub sealed_private_key: Vec<u8>,
    /// Devices per fetch/sync page.
    pub batch_size: u32,
    /// Per-entry DEP API base URL; `None` means the server default.
    pub abm_url: Option<String>,
    /// The server token; `None` until one is uploaded.
    pub server_token: Option<ServerTokenRecord>,
    /// A problem reported by Apple; `None` when there is none.
    pub problem: Option<TokenProblem>,
    /// What Apple said about the MDM server; `None` until `/account` answered.
    pub account: Option<AbmAccount>,
    /// When the entry was created.
    pub created_at: OffsetDateTime,
    /// When anything about it last changed.
    pub updated_at: OffsetDateTime,
}

/// Storage of ABM entries.
#[async_trait]
pub trait AbmEntryStore: Send + Sync {
    /// Stores a new entry. [`StoreError::Conflict`] when the name or id is taken.
    async fn create_abm_entry(
        &self,
        entry: &NewAbmEntry,
        audit: &NewAuditEvent,
    ) -> Result<AbmEntry, StoreError>;

    /// Every entry, by name.
    async fn list_abm_entries(&self) -> Result<Vec<AbmEntry>, StoreError>;

    /// The entry with this name, or [`StoreError::NotFound`].
    async fn get_abm_entry(&self, name: &str) -> Result<AbmEntry, StoreError>;

    /// Changes an entry's settings. [`StoreError::NotFound`] when there is no such entry.
    async fn update_abm_settings(
        &self,
        name: &str,
        batch_size: u32,
        abm_url: Option<&str>,
        at: OffsetDateTime,
        audit: &NewAuditEvent,
    ) -> Result<AbmEntry, StoreError>;

    /// Installs or replaces the entry's server token and clears any [`TokenProblem`]
    /// (a new token is a fresh start); `account`, when given, replaces what Apple said about
    /// the server (when `None`, the previous account stays). Everything else about the entry
    /// stays. [`StoreError::NotFound`] when there is no such entry.
    async fn store_server_token(
        &self,
        name: &str,
        token: &ServerTokenRecord,
        account: Option<&AbmAccount>,
        audit: &NewAuditEvent,
    ) -> Result<AbmEntry, StoreError>;

    /// Sets or clears (`None`) the problem Apple reported for the entry's token.
    /// [`StoreError::NotFound`] when there is no such entry.
    async fn set_abm_problem(
        &self,
        name: &str,
        problem: Option<&TokenProblem>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Deletes the entry. [`StoreError::NotFound`] when there is no such entry.
    async fn delete_abm_entry(&self, name: &str, audit: &NewAuditEvent) -> Result<(), StoreError>;
}

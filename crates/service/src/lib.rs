//! GuardMDM's domain rules and services.
//!
//! Services are concrete structs built once at start-up and shared by the HTTP adapters and
//! background jobs. Rules that need no I/O ([`health::token_health`], name and setting
//! validation) are plain functions with unit tests.

pub mod abm_tokens;
pub mod actor;
pub mod api_keys;
pub mod audit;
pub mod dep_sync;
pub mod error;
pub mod health;
pub mod jobs;
pub mod names;
pub mod secrets;
pub mod sync_rules;

use std::sync::Arc;

pub use abm_tokens::{
    AbmEntryView, AbmSettings, AbmTokenService, AccountView, EntrySettings, NewEntry,
};
pub use actor::Actor;
pub use api_keys::{ApiKeyView, AuthService, CreatedApiKey};
pub use audit::AuditService;
pub use dep_sync::{DeviceFilter, DeviceView, SyncService, SyncStart, Trigger};
pub use error::ServiceError;
pub use health::{TokenHealth, TokenState};

use guardmdm_crypto::SecretKey;
use guardmdm_store::Store;
use secrecy::SecretString;

/// Every service, built once and shared (cheap to clone).
#[derive(Clone)]
pub struct Services {
    /// ABM entries and their server tokens.
    pub abm: AbmTokenService,
    /// Authentication and API keys.
    pub auth: AuthService,
    /// The audit log.
    pub audit: AuditService,
    /// ABM device sync.
    pub sync: SyncService,
    /// The store itself, for liveness checks.
    pub store: Arc<dyn Store>,
}

impl Services {
    /// Wires the services over one store and secret key.
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<SecretKey>,
        admin_token: Option<SecretString>,
        abm: AbmSettings,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Self {
        let abm = AbmTokenService::new(store.clone(), secrets, abm);
        Self {
            sync: SyncService::new(store.clone(), abm.clone(), cancel),
            abm,
            auth: AuthService::new(store.clone(), admin_token),
            audit: AuditService::new(store.clone()),
            store,
        }
    }
}

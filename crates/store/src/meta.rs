//! Backend identity and liveness, and a small key/value table for server-wide facts.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::StoreError;

/// The database behind a store.
#[async_trait]
pub trait Backend: Send + Sync {
    /// `"sqlite"` or `"postgres"`.
    fn backend_name(&self) -> &'static str;

    /// A round trip to the database; `Ok` means it answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Server-wide facts such as the check value of the secret key.
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// The value under `key`; `None` when it was never set.
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Sets `key` to `value` unless it already has a value. Returns the value now stored
    /// (the existing one when there was one), so concurrent first starts agree.
    async fn init_meta(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Takes the lease `name` for `holder` until `until`, or extends it when `holder` has it
    /// already. Returns `false`, changing nothing, while another holder's lease runs (its
    /// `expires_at` is after `now`).
    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Gives up the lease `name` if `holder` has it (another holder's lease stays).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}

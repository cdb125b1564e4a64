//! GuardMDM's PostgreSQL storage, for several `guardmdm serve` instances sharing one database.
//! Migrations are applied at connect; concurrent instances serialise them with sqlx's lock.

#[path = "../../store-sql/abm.rs"]
mod abm;
#[path = "../../store-sql/admins.rs"]
mod admins;
#[path = "../../store-sql/api_keys.rs"]
mod api_keys;
#[path = "../../store-sql/assignment.rs"]
mod assignment;
#[path = "../../store-sql/audit.rs"]
mod audit;
#[path = "../../store-sql/common.rs"]
mod common;
#[path = "../../store-sql/devices.rs"]
mod devices;
mod dialect;
#[path = "../../store-sql/mdm.rs"]
mod mdm;
#[path = "../../store-sql/os_updates.rs"]
mod os_updates;
pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use guardmdm_store::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use common::backend;
use dialect::Tx;

/// The store the shared modules in `crates/store-sql` implement the traits for.
pub(crate) type DbStore = PostgresStore;

/// The migrations embedded in this binary, applied at open.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL implementation of [`guardmdm_store::Store`].
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to a `postgres://` URL and applies migrations.
    ///
    /// # Errors
    /// When the URL is malformed, the server cannot be reached, or a migration fails.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(backend)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(backend)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self { pool })
    }

    /// A transaction for writing.
    pub(crate) async fn write_tx(&self) -> Result<Tx, StoreError> {
        self.pool.begin().await.map_err(backend)
    }
}

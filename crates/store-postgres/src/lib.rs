//! GuardMDM's PostgreSQL storage, for several `guardmdm serve` instances sharing one database.
//! Migrations are applied at connect; concurrent instances serialise them with sqlx's lock.

mod abm;
mod admins;
mod api_keys;
mod assignment;
mod audit;
mod devices;
mod mdm;
pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use guardmdm_store::{Backend, MetaStore, MigrationStatus, NewAuditEvent, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

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

    async fn write_tx(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(backend)
    }
}

#[async_trait]
impl Backend for PostgresStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn migrations(&self) -> Result<MigrationStatus, StoreError> {
        let known = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .collect();
        let rows: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(MigrationStatus::from_records(known, &rows))
    }
}

#[async_trait]
impl MetaStore for PostgresStore {
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn init_meta(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // One statement: a concurrent claim waits on the row's lock and then sees the
        // winner's holder and expiry in its WHERE.
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// Writes an audit event inside a transaction.
async fn insert_audit(
    tx: &mut Transaction<'static, Postgres>,
    event: &NewAuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, details) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event.at)
    .bind(&event.actor)
    .bind(&event.action)
    .bind(&event.target)
    .bind(&event.details)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Maps a driver error: no row is `NotFound`, a unique violation is `Conflict`.
fn backend(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        other => StoreError::Backend(Box::new(other)),
    }
}

//! What every shared module uses: the error mapping, timestamps in rows, the audit insert,
//! and the small stores (metadata, leases, migrations) that fit in a few statements.

use async_trait::async_trait;
use guardmdm_store::{
    Backend, Id, MetaStore, MigrationStatus, NewAuditEvent, StoreError, StoredText,
};
use sqlx::Row;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::DbStore;
use crate::dialect::{DbRow, Ts, Tx};

/// Maps a driver error: no row is `NotFound`, a unique violation is `Conflict`, a stored value
/// that does not decode (JSON, a timestamp out of range) is `Corrupt`.
pub(crate) fn backend(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::ColumnDecode { index, source } => {
            StoreError::Corrupt(format!("column {index}: {source}"))
        }
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        other => StoreError::Backend(Box::new(other)),
    }
}

/// Column `name` of `row`, decoded.
pub(crate) fn get<'r, T>(row: &'r DbRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, crate::dialect::Db> + sqlx::Type<crate::dialect::Db>,
{
    row.try_get(name).map_err(backend)
}

/// Column `name` of `row`, a typed id (stored as its inner value).
pub(crate) fn get_id<I>(row: &DbRow, name: &str) -> Result<I, StoreError>
where
    I: Id,
    I::Inner: for<'r> sqlx::Decode<'r, crate::dialect::Db> + sqlx::Type<crate::dialect::Db>,
{
    get::<I::Inner>(row, name).map(I::from_inner)
}

/// Nullable column `name` of `row`, a typed id.
pub(crate) fn opt_id<I>(row: &DbRow, name: &str) -> Result<Option<I>, StoreError>
where
    I: Id,
    I::Inner: for<'r> sqlx::Decode<'r, crate::dialect::Db> + sqlx::Type<crate::dialect::Db>,
{
    Ok(get::<Option<I::Inner>>(row, name)?.map(I::from_inner))
}

/// Column `name` of `row`, a value stored as one of a fixed set of texts.
pub(crate) fn stored<T: StoredText>(row: &DbRow, name: &str) -> Result<T, StoreError> {
    T::parse_stored(get::<&str>(row, name)?)
}

/// Timestamp column `name` of `row`.
pub(crate) fn ts(row: &DbRow, name: &str) -> Result<OffsetDateTime, StoreError> {
    Ok(get::<Ts>(row, name)?.0)
}

/// Nullable timestamp column `name` of `row`.
pub(crate) fn opt_ts(row: &DbRow, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
    Ok(get::<Option<Ts>>(row, name)?.map(|t| t.0))
}

/// Writes an audit event inside a transaction.
pub(crate) async fn insert_audit(tx: &mut Tx, event: &NewAuditEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, details) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Ts(event.at))
    .bind(&event.actor)
    .bind(&event.action)
    .bind(&event.target)
    .bind(Json(&event.details))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl Backend for DbStore {
    fn backend_name(&self) -> &'static str {
        crate::dialect::NAME
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn migrations(&self) -> Result<MigrationStatus, StoreError> {
        let known = crate::MIGRATOR
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
impl MetaStore for DbStore {
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn init_meta(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let stored: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // One statement: on PostgreSQL a concurrent claim waits on the row's lock and then
        // sees the winner's holder and expiry in its WHERE; SQLite has one writer at a time.
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(Ts(until))
        .bind(Ts(now))
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

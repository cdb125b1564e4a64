use async_trait::async_trait;
use guardmdm_store::{ApiKey, ApiKeyStore, NewApiKey, NewAuditEvent, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::DbStore;
use crate::common::{backend, get, insert_audit, opt_ts, ts};
use crate::dialect::{DbRow, Ts};

const COLUMNS: &str =
    "SELECT id, name, created_by, created_at, last_used_at, revoked_at FROM api_keys";

#[async_trait]
impl ApiKeyStore for DbStore {
    async fn create_api_key(
        &self,
        key: &NewApiKey,
        audit: &NewAuditEvent,
    ) -> Result<ApiKey, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, name, token_hash, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.id)
        .bind(&key.name)
        .bind(&key.token_hash)
        .bind(&key.created_by)
        .bind(Ts(key.created_at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(ApiKey {
            id: key.id,
            name: key.name.clone(),
            created_by: key.created_by.clone(),
            created_at: key.created_at,
            last_used_at: None,
            revoked_at: None,
        })
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COLUMNS} ORDER BY created_at, id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn find_active_api_key(&self, token_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{COLUMNS} WHERE token_hash = $1 AND revoked_at IS NULL"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn touch_api_key(
        &self,
        id: Uuid,
        at: OffsetDateTime,
        min_interval_secs: i64,
    ) -> Result<(), StoreError> {
        let threshold = at - time::Duration::seconds(min_interval_secs);
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(Ts(at))
        .bind(id)
        .bind(Ts(threshold))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn revoke_api_key(
        &self,
        name: &str,
        at: OffsetDateTime,
        audit: &NewAuditEvent,
    ) -> Result<ApiKey, StoreError> {
        let mut tx = self.write_tx().await?;
        let id: Uuid =
            sqlx::query_scalar("SELECT id FROM api_keys WHERE name = $1 AND revoked_at IS NULL")
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2")
            .bind(Ts(at))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE id = $1")))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        key_from_row(&row)
    }
}

fn key_from_row(row: &DbRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: get(row, "id")?,
        name: get(row, "name")?,
        created_by: get(row, "created_by")?,
        created_at: ts(row, "created_at")?,
        last_used_at: opt_ts(row, "last_used_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

use async_trait::async_trait;
use guardmdm_store::{
    AbmAccount, AbmEntry, AbmEntryStore, NewAbmEntry, NewAuditEvent, ServerTokenRecord, StoreError,
    TokenProblem,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::DbStore;
use crate::common::{backend, get, get_id, insert_audit, opt_ts, ts};
use crate::dialect::{DbRow, Ts, Tx};

const COLUMNS: &str = "SELECT id, name, certificate_pem, sealed_private_key, batch_size, abm_url, \
     sealed_server_token, token_expires_at, token_uploaded_at, problem_kind, problem_message, \
     problem_since, created_at, updated_at, server_name, server_uuid, org_name, admin_id, \
     account_checked_at FROM abm_entries";

/// A batch size as stored: PostgreSQL's column is an `INTEGER` (the service keeps it to 1,000).
fn stored_batch_size(size: u32) -> i32 {
    i32::try_from(size).unwrap_or(i32::MAX)
}

#[async_trait]
impl AbmEntryStore for DbStore {
    async fn create_abm_entry(
        &self,
        entry: &NewAbmEntry,
        audit: &NewAuditEvent,
    ) -> Result<AbmEntry, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO abm_entries (id, name, certificate_pem, sealed_private_key, batch_size, \
             abm_url, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(entry.id.get())
        .bind(&entry.name)
        .bind(&entry.certificate_pem)
        .bind(&entry.sealed_private_key)
        .bind(stored_batch_size(entry.batch_size))
        .bind(&entry.abm_url)
        .bind(Ts(entry.created_at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        let row = fetch(&mut tx, &entry.name).await?;
        tx.commit().await.map_err(backend)?;
        Ok(row)
    }

    async fn list_abm_entries(&self) -> Result<Vec<AbmEntry>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} ORDER BY name")))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn get_abm_entry(&self, name: &str) -> Result<AbmEntry, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE name = $1")))
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        entry_from_row(&row)
    }

    async fn update_abm_settings(
        &self,
        name: &str,
        batch_size: u32,
        abm_url: Option<&str>,
        at: OffsetDateTime,
        audit: &NewAuditEvent,
    ) -> Result<AbmEntry, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE abm_entries SET batch_size = $1, abm_url = $2, updated_at = $3 WHERE name = $4",
        )
        .bind(stored_batch_size(batch_size))
        .bind(abm_url)
        .bind(Ts(at))
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        finish_update(tx, done.rows_affected(), name, audit).await
    }

    async fn store_server_token(
        &self,
        name: &str,
        token: &ServerTokenRecord,
        account: Option<&AbmAccount>,
        audit: &NewAuditEvent,
    ) -> Result<AbmEntry, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE abm_entries SET sealed_server_token = $1, token_expires_at = $2, \
             token_uploaded_at = $3, problem_kind = NULL, problem_message = NULL, \
             problem_since = NULL, updated_at = $3, \
             server_name = COALESCE($4, server_name), server_uuid = COALESCE($5, server_uuid), \
             org_name = CASE WHEN $4 IS NULL THEN org_name ELSE $6 END, \
             admin_id = CASE WHEN $4 IS NULL THEN admin_id ELSE $7 END, \
             account_checked_at = COALESCE($8, account_checked_at) WHERE name = $9",
        )
        .bind(&token.sealed_token)
        .bind(Ts(token.expires_at))
        .bind(Ts(token.uploaded_at))
        .bind(account.map(|a| a.server_name.as_str()))
        .bind(account.map(|a| a.server_uuid.as_str()))
        .bind(account.and_then(|a| a.org_name.as_deref()))
        .bind(account.and_then(|a| a.admin_id.as_deref()))
        .bind(account.map(|a| Ts(a.checked_at)))
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        finish_update(tx, done.rows_affected(), name, audit).await
    }

    async fn set_abm_problem(
        &self,
        name: &str,
        problem: Option<&TokenProblem>,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE abm_entries SET problem_kind = $1, problem_message = $2, problem_since = $3, \
             updated_at = $4 WHERE name = $5",
        )
        .bind(problem.map(|p| p.kind.as_str()))
        .bind(problem.map(|p| p.message.as_str()))
        .bind(problem.map(|p| Ts(p.since)))
        .bind(Ts(at))
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_abm_entry(&self, name: &str, audit: &NewAuditEvent) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let id: Option<Uuid> =
            sqlx::query_scalar("DELETE FROM abm_entries WHERE name = $1 RETURNING id")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some(id) = id else {
            return Err(StoreError::NotFound);
        };
        // Staged records have no foreign key to cascade through (see migration 0011). Deleted
        // after the entry: on PostgreSQL a page being staged meanwhile holds the entry's sync
        // state, so the delete above waited for it to commit, and this statement sees its rows.
        sqlx::query("DELETE FROM abm_device_stage WHERE entry_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }
}

/// Ends a one-entry update: `NotFound` when no row changed (the transaction rolls back),
/// otherwise records the audit event and returns the entry as committed.
async fn finish_update(
    mut tx: Tx,
    rows_affected: u64,
    name: &str,
    audit: &NewAuditEvent,
) -> Result<AbmEntry, StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound);
    }
    insert_audit(&mut tx, audit).await?;
    let row = fetch(&mut tx, name).await?;
    tx.commit().await.map_err(backend)?;
    Ok(row)
}

async fn fetch(tx: &mut Tx, name: &str) -> Result<AbmEntry, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE name = $1")))
        .bind(name)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    entry_from_row(&row)
}

fn entry_from_row(row: &DbRow) -> Result<AbmEntry, StoreError> {
    let sealed: Option<Vec<u8>> = get(row, "sealed_server_token")?;
    let server_token = match sealed {
        None => None,
        Some(sealed_token) => Some(ServerTokenRecord {
            sealed_token,
            expires_at: ts(row, "token_expires_at")?,
            uploaded_at: ts(row, "token_uploaded_at")?,
        }),
    };
    let kind: Option<String> = get(row, "problem_kind")?;
    let problem = match kind {
        None => None,
        Some(kind) => Some(TokenProblem {
            kind,
            message: get(row, "problem_message")?,
            since: opt_ts(row, "problem_since")?
                .ok_or_else(|| StoreError::Corrupt("problem without a time".to_string()))?,
        }),
    };
    let server_uuid: Option<String> = get(row, "server_uuid")?;
    let account = match server_uuid {
        None => None,
        Some(server_uuid) => Some(AbmAccount {
            server_name: get(row, "server_name")?,
            server_uuid,
            org_name: get(row, "org_name")?,
            admin_id: get(row, "admin_id")?,
            checked_at: opt_ts(row, "account_checked_at")?
                .ok_or_else(|| StoreError::Corrupt("account without a time".to_string()))?,
        }),
    };
    let batch_size: i32 = get(row, "batch_size")?;
    Ok(AbmEntry {
        id: get_id(row, "id")?,
        name: get(row, "name")?,
        certificate_pem: get(row, "certificate_pem")?,
        sealed_private_key: get(row, "sealed_private_key")?,
        batch_size: u32::try_from(batch_size)
            .map_err(|_| StoreError::Corrupt(format!("batch size {batch_size}")))?,
        abm_url: get(row, "abm_url")?,
        server_token,
        problem,
        account,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

use async_trait::async_trait;
use guardmdm_store::{
    AbmAccount, AbmEntry, AbmEntryStore, NewAbmEntry, NewAuditEvent, ServerTokenRecord, StoreError,
    TokenProblem,
};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use time::OffsetDateTime;

use crate::{SqliteStore, backend, from_micros, insert_audit, micros, opt_from_micros};

const COLUMNS: &str = "SELECT id, name, certificate_pem, sealed_private_key, batch_size, abm_url, \
     sealed_server_token, token_expires_at, token_uploaded_at, problem_kind, problem_message, \
     problem_since, created_at, updated_at, server_name, server_uuid, org_name, admin_id, \
     account_checked_at FROM abm_entries";

#[async_trait]
impl AbmEntryStore for SqliteStore {
    async fn create_abm_entry(
        &self,
        entry: &NewAbmEntry,
        audit: &NewAuditEvent,
    ) -> Result<AbmEntry, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO abm_entries (id, name, certificate_pem, sealed_private_key, batch_size, \
             abm_url, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.id)
        .bind(&entry.name)
        .bind(&entry.certificate_pem)
        .bind(&entry.sealed_private_key)
        .bind(i64::from(entry.batch_size))
        .bind(&entry.abm_url)
        .bind(micros(entry.created_at))
        .bind(micros(entry.created_at))
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
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE name = ?")))
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
            "UPDATE abm_entries SET batch_size = ?, abm_url = ?, updated_at = ? WHERE name = ?",
        )
        .bind(i64::from(batch_size))
        .bind(abm_url)
        .bind(micros(at))
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
            "UPDATE abm_entries SET sealed_server_token = ?1, token_expires_at = ?2, \
             token_uploaded_at = ?3, problem_kind = NULL, problem_message = NULL, \
             problem_since = NULL, updated_at = ?4, \
             server_name = COALESCE(?5, server_name), server_uuid = COALESCE(?6, server_uuid), \
             org_name = CASE WHEN ?5 IS NULL THEN org_name ELSE ?7 END, \
             admin_id = CASE WHEN ?5 IS NULL THEN admin_id ELSE ?8 END, \
             account_checked_at = COALESCE(?9, account_checked_at) WHERE name = ?10",
        )
        .bind(&token.sealed_token)
        .bind(micros(token.expires_at))
        .bind(micros(token.uploaded_at))
        .bind(micros(token.uploaded_at))
        .bind(account.map(|a| a.server_name.as_str()))
        .bind(account.map(|a| a.server_uuid.as_str()))
        .bind(account.and_then(|a| a.org_name.as_deref()))
        .bind(account.and_then(|a| a.admin_id.as_deref()))
        .bind(account.map(|a| micros(a.checked_at)))
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
            "UPDATE abm_entries SET problem_kind = ?, problem_message = ?, problem_since = ?, \
             updated_at = ? WHERE name = ?",
        )
        .bind(problem.map(|p| p.kind.as_str()))
        .bind(problem.map(|p| p.message.as_str()))
        .bind(problem.map(|p| micros(p.since)))
        .bind(micros(at))
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
        let done = sqlx::query("DELETE FROM abm_entries WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }
}

/// Ends a one-entry update: `NotFound` when no row changed (the transaction rolls back),
/// otherwise records the audit event and returns the entry as committed.
async fn finish_update(
    mut tx: sqlx::Transaction<'static, sqlx::Sqlite>,
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

async fn fetch(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    name: &str,
) -> Result<AbmEntry, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE name = ?")))
        .bind(name)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    entry_from_row(&row)
}

fn entry_from_row(row: &SqliteRow) -> Result<AbmEntry, StoreError> {
    let sealed: Option<Vec<u8>> = row.try_get("sealed_server_token").map_err(backend)?;
    let server_token = match sealed {
        None => None,
        Some(sealed_token) => Some(ServerTokenRecord {
            sealed_token,
            expires_at: from_micros(row.try_get("token_expires_at").map_err(backend)?)?,
            uploaded_at: from_micros(row.try_get("token_uploaded_at").map_err(backend)?)?,
        }),
    };
    let kind: Option<String> = row.try_get("problem_kind").map_err(backend)?;
    let problem = match kind {
        None => None,
        Some(kind) => Some(TokenProblem {
            kind,
            message: row.try_get("problem_message").map_err(backend)?,
            since: opt_from_micros(row.try_get("problem_since").map_err(backend)?)?
                .ok_or_else(|| StoreError::Corrupt("problem without a time".to_string()))?,
        }),
    };
    let server_uuid: Option<String> = row.try_get("server_uuid").map_err(backend)?;
    let account = match server_uuid {
        None => None,
        Some(server_uuid) => Some(AbmAccount {
            server_name: row.try_get("server_name").map_err(backend)?,
            server_uuid,
            org_name: row.try_get("org_name").map_err(backend)?,
            admin_id: row.try_get("admin_id").map_err(backend)?,
            checked_at: opt_from_micros(row.try_get("account_checked_at").map_err(backend)?)?
                .ok_or_else(|| StoreError::Corrupt("account without a time".to_string()))?,
        }),
    };
    let batch_size: i64 = row.try_get("batch_size").map_err(backend)?;
    Ok(AbmEntry {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        certificate_pem: row.try_get("certificate_pem").map_err(backend)?,
        sealed_private_key: row.try_get("sealed_private_key").map_err(backend)?,
        batch_size: u32::try_from(batch_size)
            .map_err(|_| StoreError::Corrupt(format!("batch size {batch_size}")))?,
        abm_url: row.try_get("abm_url").map_err(backend)?,
        server_token,
        problem,
        account,
        created_at: from_micros(row.try_get("created_at").map_err(backend)?)?,
        updated_at: from_micros(row.try_get("updated_at").map_err(backend)?)?,
    })
}

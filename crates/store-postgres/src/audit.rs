use async_trait::async_trait;
use guardmdm_store::{AuditEvent, AuditStore, StoreError};
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::{PostgresStore, backend};

#[async_trait]
impl AuditStore for PostgresStore {
    async fn list_audit(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, details FROM audit_log \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(event_from_row).collect()
    }
}

fn event_from_row(row: &PgRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: row.try_get("id").map_err(backend)?,
        at: row.try_get("at").map_err(backend)?,
        actor: row.try_get("actor").map_err(backend)?,
        action: row.try_get("action").map_err(backend)?,
        target: row.try_get("target").map_err(backend)?,
        details: row.try_get("details").map_err(backend)?,
    })
}

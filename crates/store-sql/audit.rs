use async_trait::async_trait;
use guardmdm_store::{AuditEvent, AuditStore, StoreError};
use sqlx::types::Json;

use crate::DbStore;
use crate::common::{backend, get, ts};
use crate::dialect::DbRow;

#[async_trait]
impl AuditStore for DbStore {
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

fn event_from_row(row: &DbRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: get(row, "id")?,
        at: ts(row, "at")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        target: get(row, "target")?,
        details: get::<Json<serde_json::Value>>(row, "details")?.0,
    })
}

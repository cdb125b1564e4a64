//! The minimum OS settings and the events of enrollment against them
//! (`guardmdm_store::OsUpdateStore`).

use async_trait::async_trait;
use guardmdm_store::{
    MinimumOs, NewAuditEvent, OsKey, OsMinimum, OsUpdateEvent, OsUpdateStore, StoreError,
};

use crate::DbStore;
use crate::common::{backend, get, insert_audit, stored, ts};
use crate::dialect::Ts;

#[async_trait]
impl OsUpdateStore for DbStore {
    async fn minimum_os(&self) -> Result<Vec<MinimumOs>, StoreError> {
        let rows = sqlx::query("SELECT os, minimum, updated_at FROM minimum_os ORDER BY os")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(MinimumOs {
                    os: stored(row, "os")?,
                    minimum: OsMinimum::from_text(get::<&str>(row, "minimum")?),
                    updated_at: ts(row, "updated_at")?,
                })
            })
            .collect()
    }

    async fn set_minimum_os(
        &self,
        os: OsKey,
        minimum: Option<&OsMinimum>,
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        match minimum {
            Some(minimum) => {
                sqlx::query(
                    "INSERT INTO minimum_os (os, minimum, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (os) DO UPDATE SET minimum = $2, updated_at = $3",
                )
                .bind(os.as_str())
                .bind(minimum.as_text())
                .bind(Ts(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
            None => {
                sqlx::query("DELETE FROM minimum_os WHERE os = $1")
                    .bind(os.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn record_os_update_event(&self, event: &OsUpdateEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO os_update_events (serial_number, outcome, device_version, \
             required_version, udid, device_build, required_build, reason, first_at, last_at, \
             count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1) \
             ON CONFLICT (serial_number, outcome, device_version, required_version) DO UPDATE \
             SET udid = $5, device_build = $6, required_build = $7, reason = $8, last_at = $9, \
             count = os_update_events.count + 1",
        )
        .bind(&event.serial_number)
        .bind(event.outcome.as_str())
        .bind(&event.device_version)
        .bind(&event.required_version)
        .bind(&event.udid)
        .bind(&event.device_build)
        .bind(&event.required_build)
        .bind(&event.reason)
        .bind(Ts(event.last_at))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn os_update_events(&self, serial: &str) -> Result<Vec<OsUpdateEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT serial_number, outcome, device_version, required_version, udid, \
             device_build, required_build, reason, first_at, last_at, count \
             FROM os_update_events WHERE serial_number = $1 ORDER BY last_at DESC, outcome",
        )
        .bind(serial)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(OsUpdateEvent {
                    serial_number: get(row, "serial_number")?,
                    udid: get(row, "udid")?,
                    device_version: get(row, "device_version")?,
                    device_build: get(row, "device_build")?,
                    required_version: get(row, "required_version")?,
                    required_build: get(row, "required_build")?,
                    outcome: stored(row, "outcome")?,
                    reason: get(row, "reason")?,
                    first_at: ts(row, "first_at")?,
                    last_at: ts(row, "last_at")?,
                    count: get(row, "count")?,
                })
            })
            .collect()
    }
}

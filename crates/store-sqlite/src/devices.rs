use std::collections::HashMap;

use async_trait::async_trait;
use guardmdm_store::devices::{count_page, removed_at, serial_prefix_upper_bound};
use guardmdm_store::{
    AbmDevice, DeviceOrder, DeviceQuery, DeviceSyncStore, EnrollmentState, PageCounts, PageWrite,
    StoreError, StoredAbmDevice, SyncClaim, SyncPhase, SyncRun, SyncState,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{SqliteStore, backend, from_micros, micros, opt_from_micros};

/// Rows per INSERT statement: 20 columns each, well under SQLite's 32766 parameters.
const ROWS_PER_STATEMENT: usize = 500;

const DEVICE_COLUMNS: &str = "entry_id, serial_number, model, description, color, asset_tag, \
     device_family, os, device_assigned_by, device_assigned_date, profile_status, profile_uuid, \
     profile_assign_time, profile_push_time, op_type, op_date, removed_at, seen_generation, \
     first_seen_at, updated_at";

/// [`DEVICE_COLUMNS`] of the table aliased `d`.
pub(crate) const D_DEVICE_COLUMNS: &str = "d.entry_id, d.serial_number, d.model, \
     d.description, d.color, d.asset_tag, d.device_family, d.os, d.device_assigned_by, \
     d.device_assigned_date, d.profile_status, d.profile_uuid, d.profile_assign_time, \
     d.profile_push_time, d.op_type, d.op_date, d.removed_at, d.seen_generation, \
     d.first_seen_at, d.updated_at";

const RUN_COLUMNS: &str = "SELECT id, entry_id, trigger, holder, started_at, finished_at, pages, \
     added, modified, removed, outcome, error FROM abm_sync_runs";

#[async_trait]
impl DeviceSyncStore for SqliteStore {
    async fn apply_device_page(&self, page: &PageWrite<'_>) -> Result<PageCounts, StoreError> {
        let mut tx = self.write_tx().await?;
        let stored = stored_serials(&mut tx, page.entry_id, page.devices).await?;
        let counts = count_page(page.devices, &stored);
        for chunk in page.devices.chunks(ROWS_PER_STATEMENT) {
            upsert_devices(&mut tx, page, chunk).await?;
        }
        save_state(&mut tx, page.entry_id, page.state, page.at).await?;
        add_progress(&mut tx, page.run_id, 1, counts).await?;
        tx.commit().await.map_err(backend)?;
        Ok(counts)
    }

    async fn reconcile_unseen(
        &self,
        entry_id: Uuid,
        generation: i64,
        state: &SyncState,
        run_id: i64,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE abm_devices SET removed_at = ?, updated_at = ? \
             WHERE entry_id = ? AND removed_at IS NULL AND seen_generation < ?",
        )
        .bind(micros(at))
        .bind(micros(at))
        .bind(entry_id)
        .bind(generation)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let removed = done.rows_affected();
        save_state(&mut tx, entry_id, state, at).await?;
        let counts = PageCounts {
            removed,
            ..PageCounts::default()
        };
        add_progress(&mut tx, run_id, 0, counts).await?;
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    async fn sync_state(&self, entry_id: Uuid) -> Result<SyncState, StoreError> {
        let row = sqlx::query(
            "SELECT cursor, phase, generation, reconcile FROM abm_sync_state WHERE entry_id = ?",
        )
        .bind(entry_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(SyncState::default());
        };
        let phase: String = row.try_get("phase").map_err(backend)?;
        let reconcile: i64 = row.try_get("reconcile").map_err(backend)?;
        Ok(SyncState {
            cursor: row.try_get("cursor").map_err(backend)?,
            phase: SyncPhase::parse(&phase)?,
            generation: row.try_get("generation").map_err(backend)?,
            reconcile: reconcile != 0,
        })
    }

    async fn save_sync_state(
        &self,
        entry_id: Uuid,
        state: &SyncState,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        save_state(&mut tx, entry_id, state, at).await?;
        tx.commit().await.map_err(backend)
    }

    async fn list_abm_devices(
        &self,
        query: &DeviceQuery,
    ) -> Result<Vec<StoredAbmDevice>, StoreError> {
        // In serial order with a state filter the listing is driven by the assignment records'
        // state index (by serial, then entry), each device found by its key: a page costs
        // `limit` probes however rare the state. Otherwise it walks the index of its order
        // (serial, model or updated_at, each followed by serial and entry), testing filters
        // row by row; keyset conditions on the same columns make any page as cheap as the
        // first.
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {D_DEVICE_COLUMNS} "));
        let by_state = query.order == DeviceOrder::Serial && query.assignment_state.is_some();
        let key = if by_state && let Some(state) = &query.assignment_state {
            q.push(
                "FROM abm_device_assignments a JOIN abm_devices d \
                 ON d.entry_id = a.entry_id AND d.serial_number = a.serial_number \
                 WHERE a.state = ",
            )
            .push_bind(state.clone());
            "a"
        } else {
            q.push("FROM abm_devices d WHERE 1 = 1");
            if let Some(state) = &query.assignment_state {
                q.push(
                    " AND EXISTS (SELECT 1 FROM abm_device_assignments a \
                     WHERE a.entry_id = d.entry_id AND a.serial_number = d.serial_number \
                     AND a.state = ",
                )
                .push_bind(state.clone())
                .push(")");
            }
            "d"
        };
        if let Some(entry) = query.entry_id {
            q.push(format_args!(" AND {key}.entry_id = "))
                .push_bind(entry);
        }
        if let Some(os) = &query.os {
            q.push(" AND lower(d.os) = lower(")
                .push_bind(os.clone())
                .push(")");
        }
        match query.removed {
            Some(true) => {
                q.push(" AND d.removed_at IS NOT NULL");
            }
            Some(false) => {
                q.push(" AND d.removed_at IS NULL");
            }
            None => {}
        }
        if let Some(serial) = &query.serial {
            q.push(" AND d.serial_number = ").push_bind(serial.clone());
        }
        if let Some(prefix) = &query.serial_prefix {
            q.push(format_args!(" AND {key}.serial_number >= "))
                .push_bind(prefix.clone());
            if let Some(upper) = serial_prefix_upper_bound(prefix) {
                q.push(format_args!(" AND {key}.serial_number < "))
                    .push_bind(upper);
            }
        }
        if let Some(enrolled) = query.enrolled {
            q.push(if enrolled {
                " AND EXISTS"
            } else {
                " AND NOT EXISTS"
            })
            .push(
                " (SELECT 1 FROM mdm_enrollments e WHERE e.serial_number = d.serial_number \
                 AND e.status = 'enrolled')",
            );
        }
        if let Some(group) = query.group_id {
            q.push(
                " AND EXISTS (SELECT 1 FROM device_group_members m \
                 WHERE m.serial_number = d.serial_number AND m.group_id = ",
            )
            .push_bind(group)
            .push(")");
        }
        let (cmp, dir) = if query.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let sort = match query.order {
            DeviceOrder::Serial => None,
            DeviceOrder::Model => Some("d.model"),
            DeviceOrder::Updated => Some("d.updated_at"),
        };
        if let Some(cursor) = &query.after {
            match query.order {
                DeviceOrder::Serial => {
                    q.push(format_args!(
                        " AND ({key}.serial_number, {key}.entry_id) {cmp} ("
                    ));
                }
                DeviceOrder::Model => {
                    q.push(format_args!(
                        " AND (d.model, d.serial_number, d.entry_id) {cmp} ("
                    ))
                    .push_bind(cursor.model.clone())
                    .push(", ");
                }
                DeviceOrder::Updated => {
                    q.push(format_args!(
                        " AND (d.updated_at, d.serial_number, d.entry_id) {cmp} ("
                    ))
                    .push_bind(micros(cursor.updated_at))
                    .push(", ");
                }
            }
            q.push_bind(cursor.serial.clone())
                .push(", ")
                .push_bind(cursor.entry_id)
                .push(")");
        } else if let Some(after) = &query.after_serial {
            q.push(format_args!(" AND {key}.serial_number {cmp} "))
                .push_bind(after.clone());
        }
        q.push(" ORDER BY ");
        if let Some(column) = sort {
            q.push(format_args!("{column} {dir}, "));
        }
        q.push(format_args!(
            "{key}.serial_number {dir}, {key}.entry_id {dir} LIMIT "
        ))
        .push_bind(i64::from(query.limit));
        let rows = q.build().fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(device_from_row).collect()
    }

    async fn enrollment_states(
        &self,
        serials: &[String],
    ) -> Result<Vec<EnrollmentState>, StoreError> {
        let mut out = Vec::new();
        for chunk in serials.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT serial_number, status, MAX(last_seen_at) AS last_seen_at \
                 FROM mdm_enrollments WHERE serial_number IN (",
            );
            let mut list = q.separated(", ");
            for serial in chunk {
                list.push_bind(serial.clone());
            }
            q.push(") GROUP BY serial_number");
            for row in q.build().fetch_all(&self.pool).await.map_err(backend)? {
                out.push(EnrollmentState {
                    serial: row.try_get("serial_number").map_err(backend)?,
                    status: row.try_get("status").map_err(backend)?,
                    last_seen_at: from_micros(row.try_get("last_seen_at").map_err(backend)?)?,
                });
            }
        }
        Ok(out)
    }

    async fn count_abm_devices(
        &self,
        entry_id: Uuid,
        include_removed: bool,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM abm_devices WHERE entry_id = ? AND (? OR removed_at IS NULL)",
        )
        .bind(entry_id)
        .bind(include_removed)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn start_sync_run(
        &self,
        entry_id: Uuid,
        trigger: &str,
        holder: &str,
        at: OffsetDateTime,
    ) -> Result<SyncRun, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO abm_sync_runs (entry_id, trigger, holder, started_at, outcome) \
             VALUES (?, ?, ?, ?, 'running') RETURNING id",
        )
        .bind(entry_id)
        .bind(trigger)
        .bind(holder)
        .bind(micros(at))
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        self.get_sync_run(id).await
    }

    async fn finish_sync_run(
        &self,
        run_id: i64,
        outcome: &str,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<SyncRun, StoreError> {
        let done = sqlx::query(
            "UPDATE abm_sync_runs SET outcome = ?, error = ?, finished_at = ? WHERE id = ?",
        )
        .bind(outcome)
        .bind(error)
        .bind(micros(at))
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_sync_run(run_id).await
    }

    async fn get_sync_run(&self, run_id: i64) -> Result<SyncRun, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{RUN_COLUMNS} WHERE id = ?")))
            .bind(run_id)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        run_from_row(&row)
    }

    async fn list_sync_runs(&self, entry_id: Uuid, limit: u32) -> Result<Vec<SyncRun>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_COLUMNS} WHERE entry_id = ? ORDER BY id DESC LIMIT ?"
        )))
        .bind(entry_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn try_acquire_sync_lease(
        &self,
        entry_id: Uuid,
        holder: &str,
        at: OffsetDateTime,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let expires = at + time::Duration::seconds(ttl_secs);
        let done = sqlx::query(
            "INSERT INTO abm_sync_leases (entry_id, holder, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (entry_id) DO UPDATE SET holder = ?2, expires_at = ?3 \
             WHERE abm_sync_leases.holder = ?2 OR abm_sync_leases.expires_at <= ?4",
        )
        .bind(entry_id)
        .bind(holder)
        .bind(micros(expires))
        .bind(micros(at))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_sync_lease(&self, entry_id: Uuid, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM abm_sync_leases WHERE entry_id = ? AND holder = ?")
            .bind(entry_id)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn claim_sync_run(
        &self,
        entry_id: Uuid,
        trigger: &str,
        holder: &str,
        at: OffsetDateTime,
        ttl_secs: i64,
        dead_error: &str,
    ) -> Result<SyncClaim, StoreError> {
        // BEGIN IMMEDIATE: one claim at a time; the others see its lease and its run.
        let mut tx = self.write_tx().await?;
        end_dead_runs(&mut tx, Some(entry_id), at, dead_error).await?;
        let expires = at + time::Duration::seconds(ttl_secs);
        let taken = sqlx::query(
            "INSERT INTO abm_sync_leases (entry_id, holder, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (entry_id) DO UPDATE SET holder = ?2, expires_at = ?3 \
             WHERE abm_sync_leases.holder = ?2 OR abm_sync_leases.expires_at <= ?4",
        )
        .bind(entry_id)
        .bind(holder)
        .bind(micros(expires))
        .bind(micros(at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected()
            == 1;
        let claim = if taken {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO abm_sync_runs (entry_id, trigger, holder, started_at, outcome) \
                 VALUES (?, ?, ?, ?, 'running') RETURNING id",
            )
            .bind(entry_id)
            .bind(trigger)
            .bind(holder)
            .bind(micros(at))
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("{RUN_COLUMNS} WHERE id = ?")))
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            SyncClaim::Started(run_from_row(&row)?)
        } else {
            let running = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{RUN_COLUMNS} WHERE entry_id = ? AND outcome = 'running' ORDER BY id DESC LIMIT 1"
            )))
            .bind(entry_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            match running {
                Some(row) => SyncClaim::Running(run_from_row(&row)?),
                None => SyncClaim::Held {
                    holder: sqlx::query_scalar(
                        "SELECT holder FROM abm_sync_leases WHERE entry_id = ?",
                    )
                    .bind(entry_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?
                    .unwrap_or_default(),
                },
            }
        };
        tx.commit().await.map_err(backend)?;
        Ok(claim)
    }

    async fn end_dead_runs(
        &self,
        entry_id: Option<Uuid>,
        at: OffsetDateTime,
        error: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let n = end_dead_runs(&mut tx, entry_id, at, error).await?;
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }

    async fn clear_sync_leases(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM abm_sync_leases")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}

/// [`DeviceSyncStore::end_dead_runs`] inside a transaction.
async fn end_dead_runs(
    tx: &mut Transaction<'static, Sqlite>,
    entry_id: Option<Uuid>,
    at: OffsetDateTime,
    error: &str,
) -> Result<u64, StoreError> {
    // One statement per shape, so the entry's index is used when there is an entry.
    let which = if entry_id.is_some() {
        "entry_id = ?3 AND"
    } else {
        ""
    };
    let query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE abm_sync_runs SET outcome = 'interrupted', finished_at = ?1, error = ?2 \
         WHERE {which} outcome = 'running' \
         AND NOT EXISTS (SELECT 1 FROM abm_sync_leases l WHERE l.entry_id = abm_sync_runs.entry_id \
                         AND l.holder = abm_sync_runs.holder AND l.expires_at > ?1)"
    )))
    .bind(micros(at))
    .bind(error);
    let query = match entry_id {
        Some(entry_id) => query.bind(entry_id),
        None => query,
    };
    let done = query.execute(&mut **tx).await.map_err(backend)?;
    Ok(done.rows_affected())
}

/// The page's serials that are stored already, with whether they are removed.
async fn stored_serials(
    tx: &mut Transaction<'static, Sqlite>,
    entry_id: Uuid,
    devices: &[AbmDevice],
) -> Result<HashMap<String, bool>, StoreError> {
    let mut stored = HashMap::with_capacity(devices.len());
    for chunk in devices.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT serial_number, removed_at IS NOT NULL AS removed FROM abm_devices WHERE entry_id = ",
        );
        q.push_bind(entry_id).push(" AND serial_number IN (");
        let mut list = q.separated(", ");
        for d in chunk {
            list.push_bind(d.serial_number.clone());
        }
        q.push(")");
        for row in q.build().fetch_all(&mut **tx).await.map_err(backend)? {
            let serial: String = row.try_get("serial_number").map_err(backend)?;
            let removed: bool = row.try_get("removed").map_err(backend)?;
            stored.insert(serial, removed);
        }
    }
    Ok(stored)
}

async fn upsert_devices(
    tx: &mut Transaction<'static, Sqlite>,
    page: &PageWrite<'_>,
    devices: &[AbmDevice],
) -> Result<(), StoreError> {
    let at = micros(page.at);
    let mut q = QueryBuilder::<Sqlite>::new(format!("INSERT INTO abm_devices ({DEVICE_COLUMNS}) "));
    q.push_values(devices, |mut row, d| {
        row.push_bind(page.entry_id)
            .push_bind(d.serial_number.clone())
            .push_bind(d.model.clone())
            .push_bind(d.description.clone())
            .push_bind(d.color.clone())
            .push_bind(d.asset_tag.clone())
            .push_bind(d.device_family.clone())
            .push_bind(d.os.clone())
            .push_bind(d.device_assigned_by.clone())
            .push_bind(d.device_assigned_date.map(micros))
            .push_bind(d.profile_status.clone())
            .push_bind(d.profile_uuid.clone())
            .push_bind(d.profile_assign_time.map(micros))
            .push_bind(d.profile_push_time.map(micros))
            .push_bind(d.op_type.clone())
            .push_bind(d.op_date.map(micros))
            .push_bind(removed_at(d, page.at).map(micros))
            .push_bind(page.state.generation)
            .push_bind(at)
            .push_bind(at);
    });
    q.push(
        " ON CONFLICT (entry_id, serial_number) DO UPDATE SET model = excluded.model, \
         description = excluded.description, color = excluded.color, \
         asset_tag = excluded.asset_tag, device_family = excluded.device_family, \
         os = excluded.os, device_assigned_by = excluded.device_assigned_by, \
         device_assigned_date = excluded.device_assigned_date, \
         profile_status = excluded.profile_status, profile_uuid = excluded.profile_uuid, \
         profile_assign_time = excluded.profile_assign_time, \
         profile_push_time = excluded.profile_push_time, op_type = excluded.op_type, \
         op_date = COALESCE(excluded.op_date, abm_devices.op_date), \
         removed_at = excluded.removed_at, seen_generation = excluded.seen_generation, \
         updated_at = excluded.updated_at \
         WHERE excluded.op_date IS NULL OR abm_devices.op_date IS NULL \
         OR excluded.op_date >= abm_devices.op_date",
    );
    q.build().execute(&mut **tx).await.map_err(backend)?;
    Ok(())
}

async fn save_state(
    tx: &mut Transaction<'static, Sqlite>,
    entry_id: Uuid,
    state: &SyncState,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO abm_sync_state (entry_id, cursor, phase, generation, reconcile, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (entry_id) DO UPDATE SET cursor = ?2, \
         phase = ?3, generation = ?4, reconcile = ?5, updated_at = ?6",
    )
    .bind(entry_id)
    .bind(&state.cursor)
    .bind(state.phase.as_str())
    .bind(state.generation)
    .bind(state.reconcile)
    .bind(micros(at))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn add_progress(
    tx: &mut Transaction<'static, Sqlite>,
    run_id: i64,
    pages: i64,
    counts: PageCounts,
) -> Result<(), StoreError> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE abm_sync_runs SET pages = pages + ?, added = added + ?, \
         modified = modified + ?, removed = removed + ? WHERE id = ?",
    )
    .bind(pages)
    .bind(n(counts.added))
    .bind(n(counts.modified))
    .bind(n(counts.removed))
    .bind(run_id)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

pub(crate) fn device_from_row(row: &SqliteRow) -> Result<StoredAbmDevice, StoreError> {
    let time = |col: &str| -> Result<Option<OffsetDateTime>, StoreError> {
        opt_from_micros(row.try_get(col).map_err(backend)?)
    };
    Ok(StoredAbmDevice {
        entry_id: row.try_get("entry_id").map_err(backend)?,
        device: AbmDevice {
            serial_number: row.try_get("serial_number").map_err(backend)?,
            model: row.try_get("model").map_err(backend)?,
            description: row.try_get("description").map_err(backend)?,
            color: row.try_get("color").map_err(backend)?,
            asset_tag: row.try_get("asset_tag").map_err(backend)?,
            device_family: row.try_get("device_family").map_err(backend)?,
            os: row.try_get("os").map_err(backend)?,
            device_assigned_by: row.try_get("device_assigned_by").map_err(backend)?,
            device_assigned_date: time("device_assigned_date")?,
            profile_status: row.try_get("profile_status").map_err(backend)?,
            profile_uuid: row.try_get("profile_uuid").map_err(backend)?,
            profile_assign_time: time("profile_assign_time")?,
            profile_push_time: time("profile_push_time")?,
            op_type: row.try_get("op_type").map_err(backend)?,
            op_date: time("op_date")?,
        },
        removed_at: time("removed_at")?,
        first_seen_at: from_micros(row.try_get("first_seen_at").map_err(backend)?)?,
        updated_at: from_micros(row.try_get("updated_at").map_err(backend)?)?,
    })
}

fn run_from_row(row: &SqliteRow) -> Result<SyncRun, StoreError> {
    let n = |col: &str| -> Result<u64, StoreError> {
        let v: i64 = row.try_get(col).map_err(backend)?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    Ok(SyncRun {
        id: row.try_get("id").map_err(backend)?,
        entry_id: row.try_get("entry_id").map_err(backend)?,
        trigger: row.try_get("trigger").map_err(backend)?,
        holder: row.try_get("holder").map_err(backend)?,
        started_at: from_micros(row.try_get("started_at").map_err(backend)?)?,
        finished_at: opt_from_micros(row.try_get("finished_at").map_err(backend)?)?,
        pages: n("pages")?,
        counts: PageCounts {
            added: n("added")?,
            modified: n("modified")?,
            removed: n("removed")?,
        },
        outcome: row.try_get("outcome").map_err(backend)?,
        error: row.try_get("error").map_err(backend)?,
    })
}

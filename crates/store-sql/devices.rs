use async_trait::async_trait;
use guardmdm_store::devices::{count_page, removed_at, serial_prefix_upper_bound};
use guardmdm_store::{
    AbmDevice, DeviceOrder, DeviceQuery, DeviceSyncStore, EnrollmentState, EntryId, PageCounts,
    PageWrite, StoreError, StoredAbmDevice, SyncClaim, SyncRun, SyncRunId, SyncState,
};
use sqlx::QueryBuilder;
use time::OffsetDateTime;

use crate::DbStore;
use crate::common::{backend, get, get_id, opt_ts, stored, ts};
use crate::dialect::{self, Db, DbRow, Ts, Tx};

/// Rows per INSERT statement: 20 columns each, well under SQLite's 32,766 parameters (and
/// PostgreSQL's 65,535).
const ROWS_PER_STATEMENT: usize = 500;

/// The columns of `abm_devices`, of the table aliased `d`.
pub(crate) const D_DEVICE_COLUMNS: &str = "d.entry_id, d.serial_number, d.model, \
     d.description, d.color, d.asset_tag, d.device_family, d.os, d.device_assigned_by, \
     d.device_assigned_date, d.profile_status, d.profile_uuid, d.profile_assign_time, \
     d.profile_push_time, d.op_type, d.op_date, d.removed_at, d.seen_generation, \
     d.first_seen_at, d.updated_at";

/// The columns of a staged record, in `abm_device_stage` and as merged into `abm_devices`
/// (which adds `first_seen_at` and `updated_at`).
pub(crate) const STAGE_COLUMNS: &str = "entry_id, serial_number, model, description, color, asset_tag, \
     device_family, os, device_assigned_by, device_assigned_date, profile_status, profile_uuid, \
     profile_assign_time, profile_push_time, op_type, op_date, removed_at, seen_generation";

/// How a record Apple sent again updates the stored one: the latest `op_date` wins; a record
/// without one (a full fetch) always applies and keeps the stored `op_date`. `first_seen_at`
/// is never updated.
const UPSERT_DEVICE: &str = " ON CONFLICT (entry_id, serial_number) DO UPDATE SET \
     model = excluded.model, description = excluded.description, color = excluded.color, \
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
     OR excluded.op_date >= abm_devices.op_date";

/// Takes an entry's sync lease (`$1`) for holder `$2` until `$3`, when it is free, lapsed at
/// `$4`, or the holder's already: one row changed when taken.
const CLAIM_LEASE: &str = "INSERT INTO abm_sync_leases (entry_id, holder, expires_at) \
     VALUES ($1, $2, $3) ON CONFLICT (entry_id) DO UPDATE SET holder = excluded.holder, \
     expires_at = excluded.expires_at \
     WHERE abm_sync_leases.holder = excluded.holder OR abm_sync_leases.expires_at <= $4";

const RUN_COLUMNS: &str = "SELECT id, entry_id, trigger, holder, started_at, finished_at, pages, \
     added, modified, removed, outcome, error FROM abm_sync_runs";

#[async_trait]
impl DeviceSyncStore for DbStore {
    async fn apply_device_page(&self, page: &PageWrite<'_>) -> Result<PageCounts, StoreError> {
        let mut tx = self.write_tx().await?;
        let stored = dialect::stored_serials(&mut tx, page.entry_id, page.devices).await?;
        let counts = count_page(page.devices, &stored);
        for chunk in page.devices.chunks(ROWS_PER_STATEMENT) {
            upsert_devices(&mut tx, page, chunk).await?;
        }
        save_state(&mut tx, page.entry_id, page.state, page.at).await?;
        add_progress(&mut tx, page.run_id, 1, counts).await?;
        tx.commit().await.map_err(backend)?;
        Ok(counts)
    }

    async fn stage_device_page(&self, page: &PageWrite<'_>) -> Result<PageCounts, StoreError> {
        let mut tx = self.write_tx().await?;
        let stored = dialect::stored_serials(&mut tx, page.entry_id, page.devices).await?;
        let counts = count_page(page.devices, &stored);
        dialect::stage_devices(&mut tx, page).await?;
        save_state(&mut tx, page.entry_id, page.state, page.at).await?;
        add_progress(&mut tx, page.run_id, 1, counts).await?;
        tx.commit().await.map_err(backend)?;
        Ok(counts)
    }

    async fn merge_staged_devices(
        &self,
        entry_id: EntryId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // Most runs staged nothing: find that out with a read, not a write transaction (on
        // SQLite that waits its turn behind every writer). Only the entry's sync, which holds
        // its lease, stages for it, so nothing is staged between this read and the merge.
        let staged: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM abm_device_stage WHERE entry_id = $1 LIMIT 1")
                .bind(entry_id.get())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        if staged.is_none() {
            return Ok(false);
        }
        let mut tx = self.write_tx().await?;
        // In serial order: every serial-keyed B-tree is written front to back, each leaf once.
        if let Some(settings) = dialect::BEFORE_MERGE {
            sqlx::query(settings)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO abm_devices ({STAGE_COLUMNS}, first_seen_at, updated_at) {} {UPSERT_DEVICE}",
            dialect::staged_in_serial_order(STAGE_COLUMNS),
        )))
        .bind(entry_id.get())
        .bind(Ts(at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        clear_stage(&mut tx, entry_id).await?;
        tx.commit().await.map_err(backend)?;
        if let Some(statement) = dialect::AFTER_MERGE {
            sqlx::query(statement)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        Ok(true)
    }

    async fn reconcile_unseen(
        &self,
        entry_id: EntryId,
        generation: i64,
        state: &SyncState,
        run_id: SyncRunId,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE abm_devices SET removed_at = $1, updated_at = $2 \
             WHERE entry_id = $3 AND removed_at IS NULL AND seen_generation < $4",
        )
        .bind(Ts(at))
        .bind(Ts(at))
        .bind(entry_id.get())
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

    async fn sync_state(&self, entry_id: EntryId) -> Result<SyncState, StoreError> {
        let row = sqlx::query(
            "SELECT cursor, phase, generation, reconcile FROM abm_sync_state WHERE entry_id = $1",
        )
        .bind(entry_id.get())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(SyncState::default());
        };
        Ok(SyncState {
            cursor: get(&row, "cursor")?,
            phase: stored(&row, "phase")?,
            generation: get(&row, "generation")?,
            reconcile: get(&row, "reconcile")?,
        })
    }

    async fn save_sync_state(
        &self,
        entry_id: EntryId,
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
        let mut q = QueryBuilder::<Db>::new(format!("SELECT {D_DEVICE_COLUMNS} "));
        let key = push_device_source(&mut q, query);
        push_device_filters(&mut q, query, key);
        push_device_page(&mut q, query, key);
        let rows = q.build().fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(device_from_row).collect()
    }

    async fn enrollment_states(
        &self,
        serials: &[String],
    ) -> Result<Vec<EnrollmentState>, StoreError> {
        let rows = dialect::latest_enrollments(&self.pool, serials).await?;
        rows.iter()
            .map(|row| {
                Ok(EnrollmentState {
                    serial: get(row, "serial_number")?,
                    status: stored(row, "status")?,
                    last_seen_at: ts(row, "last_seen_at")?,
                })
            })
            .collect()
    }

    async fn count_abm_devices(
        &self,
        entry_id: EntryId,
        include_removed: bool,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM abm_devices WHERE entry_id = $1 AND ($2 OR removed_at IS NULL)",
        )
        .bind(entry_id.get())
        .bind(include_removed)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn start_sync_run(
        &self,
        entry_id: EntryId,
        trigger: &str,
        holder: &str,
        at: OffsetDateTime,
    ) -> Result<SyncRun, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO abm_sync_runs (entry_id, trigger, holder, started_at, outcome) \
             VALUES ($1, $2, $3, $4, 'running') RETURNING id",
        )
        .bind(entry_id.get())
        .bind(trigger)
        .bind(holder)
        .bind(Ts(at))
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        self.get_sync_run(SyncRunId::from_inner(id)).await
    }

    async fn finish_sync_run(
        &self,
        run_id: SyncRunId,
        outcome: &str,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<SyncRun, StoreError> {
        let done = sqlx::query(
            "UPDATE abm_sync_runs SET outcome = $1, error = $2, finished_at = $3 WHERE id = $4",
        )
        .bind(outcome)
        .bind(error)
        .bind(Ts(at))
        .bind(run_id.get())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_sync_run(run_id).await
    }

    async fn get_sync_run(&self, run_id: SyncRunId) -> Result<SyncRun, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{RUN_COLUMNS} WHERE id = $1")))
            .bind(run_id.get())
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        run_from_row(&row)
    }

    async fn list_sync_runs(
        &self,
        entry_id: EntryId,
        limit: u32,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUN_COLUMNS} WHERE entry_id = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(entry_id.get())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn try_acquire_sync_lease(
        &self,
        entry_id: EntryId,
        holder: &str,
        at: OffsetDateTime,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let expires = at + time::Duration::seconds(ttl_secs);
        let done = sqlx::query(CLAIM_LEASE)
            .bind(entry_id.get())
            .bind(holder)
            .bind(Ts(expires))
            .bind(Ts(at))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_sync_lease(&self, entry_id: EntryId, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM abm_sync_leases WHERE entry_id = $1 AND holder = $2")
            .bind(entry_id.get())
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn claim_sync_run(
        &self,
        entry_id: EntryId,
        trigger: &str,
        holder: &str,
        at: OffsetDateTime,
        ttl_secs: i64,
        dead_error: &str,
    ) -> Result<SyncClaim, StoreError> {
        // One claim at a time. SQLite: BEGIN IMMEDIATE, the others see its lease and its run.
        // PostgreSQL (read committed): a concurrent claim waits on the lease row until this one
        // commits, then finds the lease taken and, in its next statement, this run.
        let mut tx = self.write_tx().await?;
        end_dead_runs(&mut tx, Some(entry_id), at, dead_error).await?;
        let expires = at + time::Duration::seconds(ttl_secs);
        let taken = sqlx::query(CLAIM_LEASE)
            .bind(entry_id.get())
            .bind(holder)
            .bind(Ts(expires))
            .bind(Ts(at))
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected()
            == 1;
        let claim = if taken {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO abm_sync_runs (entry_id, trigger, holder, started_at, outcome) \
                 VALUES ($1, $2, $3, $4, 'running') RETURNING id",
            )
            .bind(entry_id.get())
            .bind(trigger)
            .bind(holder)
            .bind(Ts(at))
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("{RUN_COLUMNS} WHERE id = $1")))
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
            SyncClaim::Started(run_from_row(&row)?)
        } else {
            let running = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{RUN_COLUMNS} WHERE entry_id = $1 AND outcome = 'running' ORDER BY id DESC LIMIT 1"
            )))
            .bind(entry_id.get())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            match running {
                Some(row) => SyncClaim::Running(run_from_row(&row)?),
                None => SyncClaim::Held {
                    holder: sqlx::query_scalar(
                        "SELECT holder FROM abm_sync_leases WHERE entry_id = $1",
                    )
                    .bind(entry_id.get())
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
        entry_id: Option<EntryId>,
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
    tx: &mut Tx,
    entry_id: Option<EntryId>,
    at: OffsetDateTime,
    error: &str,
) -> Result<u64, StoreError> {
    // One statement per shape, so the entry's index is used when there is an entry.
    let which = if entry_id.is_some() {
        "entry_id = $3 AND"
    } else {
        ""
    };
    let query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE abm_sync_runs SET outcome = 'interrupted', finished_at = $1, error = $2 \
         WHERE {which} outcome = 'running' \
         AND NOT EXISTS (SELECT 1 FROM abm_sync_leases l WHERE l.entry_id = abm_sync_runs.entry_id \
                         AND l.holder = abm_sync_runs.holder AND l.expires_at > $1)"
    )))
    .bind(Ts(at))
    .bind(error);
    let query = match entry_id {
        Some(entry_id) => query.bind(entry_id.get()),
        None => query,
    };
    let done = query.execute(&mut **tx).await.map_err(backend)?;
    Ok(done.rows_affected())
}

/// Empties the entry's staging area after a merge: the whole table at once (the dialect's
/// cheapest way) when no other entry has staged records.
async fn clear_stage(tx: &mut Tx, entry_id: EntryId) -> Result<(), StoreError> {
    if let Some(lock) = dialect::LOCK_STAGE {
        sqlx::query(lock)
            .execute(&mut **tx)
            .await
            .map_err(backend)?;
    }
    let others: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM abm_device_stage WHERE entry_id <> $1 LIMIT 1")
            .bind(entry_id.get())
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
    let clear = match others {
        Some(_) => {
            sqlx::query("DELETE FROM abm_device_stage WHERE entry_id = $1").bind(entry_id.get())
        }
        None => sqlx::query(dialect::EMPTY_STAGE),
    };
    clear.execute(&mut **tx).await.map_err(backend)?;
    Ok(())
}

/// Binds a record's columns in [`STAGE_COLUMNS`] order.
pub(crate) fn push_record(
    row: &mut sqlx::query_builder::Separated<'_, Db, &'static str>,
    page: &PageWrite<'_>,
    d: &AbmDevice,
) {
    row.push_bind(page.entry_id.get())
        .push_bind(d.serial_number.clone())
        .push_bind(d.model.clone())
        .push_bind(d.description.clone())
        .push_bind(d.color.clone())
        .push_bind(d.asset_tag.clone())
        .push_bind(d.device_family.clone())
        .push_bind(d.os.clone())
        .push_bind(d.device_assigned_by.clone())
        .push_bind(d.device_assigned_date.map(Ts))
        .push_bind(d.profile_status.clone())
        .push_bind(d.profile_uuid.clone())
        .push_bind(d.profile_assign_time.map(Ts))
        .push_bind(d.profile_push_time.map(Ts))
        .push_bind(d.op_type.clone())
        .push_bind(d.op_date.map(Ts))
        .push_bind(removed_at(d, page.at).map(Ts))
        .push_bind(page.state.generation);
}

async fn upsert_devices(
    tx: &mut Tx,
    page: &PageWrite<'_>,
    devices: &[AbmDevice],
) -> Result<(), StoreError> {
    let mut q = QueryBuilder::<Db>::new(format!(
        "INSERT INTO abm_devices ({STAGE_COLUMNS}, first_seen_at, updated_at) "
    ));
    q.push_values(devices, |mut row, d| {
        push_record(&mut row, page, d);
        row.push_bind(Ts(page.at)).push_bind(Ts(page.at));
    });
    q.push(UPSERT_DEVICE);
    q.build().execute(&mut **tx).await.map_err(backend)?;
    Ok(())
}

async fn save_state(
    tx: &mut Tx,
    entry_id: EntryId,
    state: &SyncState,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO abm_sync_state (entry_id, cursor, phase, generation, reconcile, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (entry_id) DO UPDATE SET cursor = $2, \
         phase = $3, generation = $4, reconcile = $5, updated_at = $6",
    )
    .bind(entry_id.get())
    .bind(&state.cursor)
    .bind(state.phase.as_str())
    .bind(state.generation)
    .bind(state.reconcile)
    .bind(Ts(at))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn add_progress(
    tx: &mut Tx,
    run_id: SyncRunId,
    pages: i64,
    counts: PageCounts,
) -> Result<(), StoreError> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE abm_sync_runs SET pages = pages + $1, added = added + $2, \
         modified = modified + $3, removed = removed + $4 WHERE id = $5",
    )
    .bind(pages)
    .bind(n(counts.added))
    .bind(n(counts.modified))
    .bind(n(counts.removed))
    .bind(run_id.get())
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The FROM clause of a device listing, with its assignment state filter: driven by the
/// assignment records in serial order (`a`), else by the devices themselves (`d`). Returns
/// that alias, whose serial and entry columns the keyset and the order use.
fn push_device_source(q: &mut QueryBuilder<Db>, query: &DeviceQuery) -> &'static str {
    let by_state = query.order == DeviceOrder::Serial && query.assignment_state.is_some();
    if by_state && let Some(state) = &query.assignment_state {
        q.push(dialect::DEVICES_OF_ASSIGNMENTS)
            .push(" WHERE a.state = ")
            .push_bind(state.as_str());
        "a"
    } else {
        q.push("FROM abm_devices d WHERE 1 = 1");
        if let Some(state) = &query.assignment_state {
            q.push(
                " AND EXISTS (SELECT 1 FROM abm_device_assignments a \
                 WHERE a.entry_id = d.entry_id AND a.serial_number = d.serial_number \
                 AND a.state = ",
            )
            .push_bind(state.as_str())
            .push(")");
        }
        "d"
    }
}

/// The listing's other filters: entry, OS, removed or not, serial or serial prefix,
/// enrolled or not, group membership. `key` is the alias from [`push_device_source`].
fn push_device_filters(q: &mut QueryBuilder<Db>, query: &DeviceQuery, key: &str) {
    if let Some(entry) = query.entry_id {
        q.push(format_args!(" AND {key}.entry_id = "))
            .push_bind(entry.get());
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
        .push_bind(group.get())
        .push(")");
    }
}

/// The page: the keyset condition after the cursor (on the order's column, then serial and
/// entry), the order, and the limit. `key` is the alias from [`push_device_source`].
fn push_device_page(q: &mut QueryBuilder<Db>, query: &DeviceQuery, key: &str) {
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
                .push_bind(Ts(cursor.updated_at))
                .push(", ");
            }
        }
        q.push_bind(cursor.serial.clone())
            .push(", ")
            .push_bind(cursor.entry_id.get())
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
}

pub(crate) fn device_from_row(row: &DbRow) -> Result<StoredAbmDevice, StoreError> {
    Ok(StoredAbmDevice {
        entry_id: get_id(row, "entry_id")?,
        device: AbmDevice {
            serial_number: get(row, "serial_number")?,
            model: get(row, "model")?,
            description: get(row, "description")?,
            color: get(row, "color")?,
            asset_tag: get(row, "asset_tag")?,
            device_family: get(row, "device_family")?,
            os: get(row, "os")?,
            device_assigned_by: get(row, "device_assigned_by")?,
            device_assigned_date: opt_ts(row, "device_assigned_date")?,
            profile_status: get(row, "profile_status")?,
            profile_uuid: get(row, "profile_uuid")?,
            profile_assign_time: opt_ts(row, "profile_assign_time")?,
            profile_push_time: opt_ts(row, "profile_push_time")?,
            op_type: get(row, "op_type")?,
            op_date: opt_ts(row, "op_date")?,
        },
        removed_at: opt_ts(row, "removed_at")?,
        first_seen_at: ts(row, "first_seen_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn run_from_row(row: &DbRow) -> Result<SyncRun, StoreError> {
    let n = |col: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(get::<i64>(row, col)?).unwrap_or(0))
    };
    Ok(SyncRun {
        id: get_id(row, "id")?,
        entry_id: get_id(row, "entry_id")?,
        trigger: get(row, "trigger")?,
        holder: get(row, "holder")?,
        started_at: ts(row, "started_at")?,
        finished_at: opt_ts(row, "finished_at")?,
        pages: n("pages")?,
        counts: PageCounts {
            added: n("added")?,
            modified: n("modified")?,
            removed: n("removed")?,
        },
        outcome: get(row, "outcome")?,
        error: get(row, "error")?,
    })
}

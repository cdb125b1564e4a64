use std::collections::HashMap;

use async_trait::async_trait;
use guardmdm_store::{
    AdeProfile, AdeProfileVersion, AssignmentConfig, AssignmentConfigStore, AssignmentInput,
    AssignmentPass, AssignmentRecord, AssignmentStateStore, DeviceGroup, GroupUpdate, InputFilter,
    NewAuditEvent, NewDeviceGroup, OsDefault, ProfileDefinition, ProfileReferences, SerialPresence,
    StoreError,
};
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::devices::{D_DEVICE_COLUMNS, device_from_row};
use crate::{SqliteStore, backend, from_micros, insert_audit, micros, opt_from_micros};

/// The serials an incremental pass looks at: changed since, pending, or due for a retry; each
/// part through its own index.
const CANDIDATES_SQL: &str = "SELECT d.serial_number FROM abm_devices d \
     INDEXED BY abm_devices_entry_updated \
     WHERE d.entry_id = ?1 AND d.updated_at > ?2 AND d.removed_at IS NULL \
     UNION \
     SELECT a.serial_number FROM abm_device_assignments a \
     JOIN abm_devices d ON d.entry_id = a.entry_id AND d.serial_number = a.serial_number \
     WHERE a.entry_id = ?1 AND a.state = 'pending' AND d.removed_at IS NULL \
     UNION \
     SELECT a.serial_number FROM abm_device_assignments a \
     JOIN abm_devices d ON d.entry_id = a.entry_id AND d.serial_number = a.serial_number \
     WHERE a.entry_id = ?1 AND a.retry_at IS NOT NULL AND a.retry_at <= ?3 \
     AND d.removed_at IS NULL \
     ORDER BY 1";

/// Marks the records of an entry's removed devices, driven by those devices (few, through
/// their partial index: without `INDEXED BY` SQLite reads every device of the entry by its
/// primary key), each record found by its key.
const MARK_REMOVED_SQL: &str = "UPDATE abm_device_assignments SET state = 'removed', \
     updated_at = ?1 WHERE entry_id = ?2 AND state <> 'removed' AND serial_number IN \
     (SELECT serial_number FROM abm_devices INDEXED BY abm_devices_entry_removed \
      WHERE entry_id = ?2 AND removed_at IS NOT NULL)";

/// Rows (or serials) per statement: at most 12 parameters each, well under SQLite's 32766.
const ROWS_PER_STATEMENT: usize = 500;

type Tx = Transaction<'static, Sqlite>;

/// A profile with its current version's specification; `updated_at` is when that version was
/// written.
const PROFILE_SELECT: &str = "SELECT p.id, p.name, p.version, v.spec, p.created_at, \
     v.created_at AS updated_at FROM ade_profiles p \
     JOIN ade_profile_versions v ON v.profile_id = p.id AND v.version = p.version";

const GROUP_SELECT: &str = "SELECT g.id, g.name, g.rule, g.profile_id, g.priority, \
     g.created_at, g.updated_at, CASE WHEN g.rule IS NULL THEN \
     (SELECT COUNT(*) FROM device_group_members m WHERE m.group_id = g.id) ELSE 0 END \
     AS member_count FROM device_groups g";

const DEFINITION_SELECT: &str = "SELECT entry_id, profile_id, version, apple_uuid, defined_at \
     FROM ade_profile_definitions";

const RECORD_COLUMNS: &str = "serial_number, profile_id, profile_version, rule, state, \
     apple_uuid, attempted_at, retry_at, attempts, last_error, updated_at";

/// [`RECORD_COLUMNS`] of `abm_device_assignments a`, prefixed `r_` (next to a device's).
const R_RECORD_COLUMNS: &str = "a.serial_number AS r_serial_number, \
     a.profile_id AS r_profile_id, a.profile_version AS r_profile_version, a.rule AS r_rule, \
     a.state AS r_state, a.apple_uuid AS r_apple_uuid, a.attempted_at AS r_attempted_at, \
     a.retry_at AS r_retry_at, a.attempts AS r_attempts, a.last_error AS r_last_error, \
     a.updated_at AS r_updated_at";

#[async_trait]
impl AssignmentConfigStore for SqliteStore {
    async fn create_profile(
        &self,
        id: Uuid,
        name: &str,
        spec: &serde_json::Value,
        audit: &NewAuditEvent,
    ) -> Result<AdeProfile, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        sqlx::query("INSERT INTO ade_profiles (id, name, version, created_at) VALUES (?, ?, 1, ?)")
            .bind(id)
            .bind(name)
            .bind(micros(audit.at))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_version(&mut tx, id, 1, spec, audit).await?;
        insert_audit(&mut tx, audit).await?;
        let profile = profile_by_id(&mut tx, id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(profile)
    }

    async fn update_profile(
        &self,
        id: Uuid,
        spec: &serde_json::Value,
        expected_version: Option<i64>,
        audit: &NewAuditEvent,
    ) -> Result<AdeProfile, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        let row = sqlx::query("SELECT name, version FROM ade_profiles WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let name: String = row.try_get("name").map_err(backend)?;
        let current: i64 = row.try_get("version").map_err(backend)?;
        if let Some(expected) = expected_version
            && expected != current
        {
            return Err(StoreError::Conflict(format!(
                "profile {name:?} is at version {current}, not {expected}: it changed meanwhile"
            )));
        }
        let next = current + 1;
        insert_version(&mut tx, id, next, spec, audit).await?;
        sqlx::query("UPDATE ade_profiles SET version = ? WHERE id = ?")
            .bind(next)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        let profile = profile_by_id(&mut tx, id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(profile)
    }

    async fn get_profile(&self, name: &str) -> Result<AdeProfile, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{PROFILE_SELECT} WHERE p.name = ?"
        )))
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        profile_from_row(&row)
    }

    async fn list_profiles(&self) -> Result<Vec<AdeProfile>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        all_profiles(&mut conn).await
    }

    async fn profile_versions(&self, id: Uuid) -> Result<Vec<AdeProfileVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT profile_id, version, spec, created_by, created_at FROM ade_profile_versions \
             WHERE profile_id = ? ORDER BY version",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let spec: String = row.try_get("spec").map_err(backend)?;
                Ok(AdeProfileVersion {
                    profile_id: row.try_get("profile_id").map_err(backend)?,
                    version: row.try_get("version").map_err(backend)?,
                    spec: json(&spec, "profile spec")?,
                    created_by: row.try_get("created_by").map_err(backend)?,
                    created_at: from_micros(row.try_get("created_at").map_err(backend)?)?,
                })
            })
            .collect()
    }

    async fn profile_references(&self, id: Uuid) -> Result<ProfileReferences, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        references(&mut conn, id).await
    }

    async fn delete_profile(&self, id: Uuid, audit: &NewAuditEvent) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        let name: String = sqlx::query_scalar("SELECT name FROM ade_profiles WHERE id = ?")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let refs = references(&mut tx, id).await?;
        if !refs.is_empty() {
            return Err(StoreError::Conflict(refs.describe(&name)));
        }
        // Versions and definitions go with it (ON DELETE CASCADE); a default, group or device
        // using it would fail the delete (ON DELETE RESTRICT).
        sqlx::query("DELETE FROM ade_profiles WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| still_used(e, &name))?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn record_profile_definition(
        &self,
        definition: &ProfileDefinition,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ade_profile_definitions \
             (entry_id, profile_id, version, apple_uuid, defined_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (entry_id, profile_id, version) DO UPDATE SET \
             apple_uuid = excluded.apple_uuid, defined_at = excluded.defined_at",
        )
        .bind(definition.entry_id)
        .bind(definition.profile_id)
        .bind(definition.version)
        .bind(&definition.apple_uuid)
        .bind(micros(definition.defined_at))
        .execute(&self.pool)
        .await
        .map_err(missing_reference)?;
        Ok(())
    }

    async fn entry_profile_definitions(
        &self,
        entry_id: Uuid,
    ) -> Result<Vec<ProfileDefinition>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEFINITION_SELECT} WHERE entry_id = ? ORDER BY profile_id, version"
        )))
        .bind(entry_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(definition_from_row).collect()
    }

    async fn profile_definitions(
        &self,
        profile_id: Uuid,
    ) -> Result<Vec<ProfileDefinition>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEFINITION_SELECT} WHERE profile_id = ? ORDER BY entry_id, version"
        )))
        .bind(profile_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(definition_from_row).collect()
    }

    async fn set_os_default(
        &self,
        os: &str,
        profile_id: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        match profile_id {
            Some(profile_id) => {
                sqlx::query(
                    "INSERT INTO ade_os_defaults (os, profile_id, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (os) DO UPDATE SET profile_id = ?2, updated_at = ?3",
                )
                .bind(os)
                .bind(profile_id)
                .bind(micros(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(missing_reference)?;
            }
            None => {
                sqlx::query("DELETE FROM ade_os_defaults WHERE os = ?")
                    .bind(os)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn os_defaults(&self) -> Result<Vec<OsDefault>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        all_os_defaults(&mut conn).await
    }

    async fn create_group(
        &self,
        group: &NewDeviceGroup,
        audit: &NewAuditEvent,
    ) -> Result<DeviceGroup, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        sqlx::query(
            "INSERT INTO device_groups (id, name, rule, profile_id, priority, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(group.id)
        .bind(&group.name)
        .bind(group.rule.as_ref().map(serde_json::Value::to_string))
        .bind(group.profile_id)
        .bind(group.priority)
        .bind(micros(audit.at))
        .bind(micros(audit.at))
        .execute(&mut *tx)
        .await
        .map_err(missing_reference)?;
        insert_audit(&mut tx, audit).await?;
        let created = group_by_id(&mut tx, group.id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(created)
    }

    async fn update_group(
        &self,
        id: Uuid,
        update: &GroupUpdate,
        audit: &NewAuditEvent,
    ) -> Result<DeviceGroup, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        let current = group_by_id(&mut tx, id).await?;
        let rule = update.rule.as_ref().or(current.rule.as_ref());
        let profile_id = update.profile_id.unwrap_or(current.profile_id);
        let priority = update.priority.unwrap_or(current.priority);
        sqlx::query(
            "UPDATE device_groups SET rule = ?, profile_id = ?, priority = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(rule.map(serde_json::Value::to_string))
        .bind(profile_id)
        .bind(priority)
        .bind(micros(audit.at))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(missing_reference)?;
        insert_audit(&mut tx, audit).await?;
        let updated = group_by_id(&mut tx, id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(updated)
    }

    async fn get_group(&self, name: &str) -> Result<DeviceGroup, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{GROUP_SELECT} WHERE g.name = ?"
        )))
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        group_from_row(&row)
    }

    async fn list_groups(&self) -> Result<Vec<DeviceGroup>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        all_groups(&mut conn).await
    }

    async fn delete_group(&self, id: Uuid, audit: &NewAuditEvent) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        // Memberships go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM device_groups WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }

    async fn add_group_members(
        &self,
        group_id: Uuid,
        serials: &[String],
        audit: &NewAuditEvent,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        static_group(&mut tx, group_id).await?;
        let mut added = 0;
        for chunk in serials.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO device_group_members (group_id, serial_number) ",
            );
            q.push_values(chunk, |mut row, serial| {
                row.push_bind(group_id).push_bind(serial.as_str());
            });
            q.push(" ON CONFLICT (group_id, serial_number) DO NOTHING");
            added += q
                .build()
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected();
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(added)
    }

    async fn remove_group_members(
        &self,
        group_id: Uuid,
        serials: &[String],
        audit: &NewAuditEvent,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        static_group(&mut tx, group_id).await?;
        let mut removed = 0;
        for chunk in serials.chunks(ROWS_PER_STATEMENT) {
            let mut q =
                QueryBuilder::<Sqlite>::new("DELETE FROM device_group_members WHERE group_id = ");
            q.push_bind(group_id).push(" AND serial_number IN (");
            push_serials(&mut q, chunk);
            removed += q
                .build()
                .execute(&mut *tx)
                .await
                .map_err(backend)?
                .rows_affected();
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    async fn group_members(
        &self,
        group_id: Uuid,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT serial_number FROM device_group_members WHERE group_id = ",
        );
        q.push_bind(group_id);
        if let Some(after) = after {
            q.push(" AND serial_number > ").push_bind(after);
        }
        q.push(" ORDER BY serial_number LIMIT ")
            .push_bind(i64::from(limit));
        q.build_query_scalar()
            .fetch_all(&self.pool)
            .await
            .map_err(backend)
    }

    async fn groups_of_serial(&self, serial: &str) -> Result<Vec<Uuid>, StoreError> {
        sqlx::query_scalar(
            "SELECT m.group_id FROM device_group_members m \
             JOIN device_groups g ON g.id = m.group_id \
             WHERE m.serial_number = ? ORDER BY g.name",
        )
        .bind(serial)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn set_device_profiles(
        &self,
        serials: &[String],
        profile_id: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<u64, StoreError> {
        let serials = distinct(serials);
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        let mut changed = 0;
        for chunk in serials.chunks(ROWS_PER_STATEMENT) {
            let done = match profile_id {
                Some(profile_id) => {
                    let at = micros(audit.at);
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO device_profiles (serial_number, profile_id, updated_at) ",
                    );
                    q.push_values(chunk, |mut row, serial| {
                        row.push_bind(*serial).push_bind(profile_id).push_bind(at);
                    });
                    // A serial that has this profile already is not a change.
                    q.push(
                        " ON CONFLICT (serial_number) DO UPDATE SET \
                         profile_id = excluded.profile_id, updated_at = excluded.updated_at \
                         WHERE device_profiles.profile_id <> excluded.profile_id",
                    );
                    q.build()
                        .execute(&mut *tx)
                        .await
                        .map_err(missing_reference)?
                }
                None => {
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "DELETE FROM device_profiles WHERE serial_number IN (",
                    );
                    let mut list = q.separated(", ");
                    for serial in chunk {
                        list.push_bind(*serial);
                    }
                    q.push(")");
                    q.build().execute(&mut *tx).await.map_err(backend)?
                }
            };
            changed += done.rows_affected();
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(changed)
    }

    async fn device_profile(&self, serial: &str) -> Result<Option<Uuid>, StoreError> {
        sqlx::query_scalar("SELECT profile_id FROM device_profiles WHERE serial_number = ?")
            .bind(serial)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn serial_presence(&self, serials: &[String]) -> Result<Vec<SerialPresence>, StoreError> {
        // One snapshot for every chunk. `present`: some entry has it unremoved.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut known: HashMap<String, bool> = HashMap::with_capacity(serials.len());
        for chunk in serials.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT serial_number, MAX(removed_at IS NULL) AS present FROM abm_devices \
                 WHERE serial_number IN (",
            );
            push_serials(&mut q, chunk);
            q.push(" GROUP BY serial_number");
            for row in q.build().fetch_all(&mut *tx).await.map_err(backend)? {
                let serial: String = row.try_get("serial_number").map_err(backend)?;
                let present: i64 = row.try_get("present").map_err(backend)?;
                known.insert(serial, present != 0);
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(serials
            .iter()
            .map(|s| match known.get(s) {
                Some(true) => SerialPresence::InAbm,
                Some(false) => SerialPresence::Removed,
                None => SerialPresence::Unknown,
            })
            .collect())
    }

    async fn assignment_generation(&self) -> Result<i64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        generation(&mut conn).await
    }

    async fn assignment_config(&self) -> Result<AssignmentConfig, StoreError> {
        // A read transaction: in WAL mode every read in it sees the same snapshot.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let generation = generation(&mut tx).await?;
        let profiles = all_profiles(&mut tx).await?;
        let groups = all_groups(&mut tx).await?;
        let os_defaults = all_os_defaults(&mut tx).await?;
        tx.commit().await.map_err(backend)?;
        Ok(AssignmentConfig {
            generation,
            profiles,
            groups,
            os_defaults,
        })
    }
}

#[async_trait]
impl AssignmentStateStore for SqliteStore {
    async fn assignment_inputs(
        &self,
        entry_id: Uuid,
        after: Option<&str>,
        limit: u32,
        only: Option<&[String]>,
    ) -> Result<Vec<AssignmentInput>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The page of present devices with their explicit profile and record: one walk of the
        // entry's key range, each join a key lookup.
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {D_DEVICE_COLUMNS}, p.profile_id AS explicit_profile, {R_RECORD_COLUMNS} \
             FROM abm_devices d \
             LEFT JOIN device_profiles p ON p.serial_number = d.serial_number \
             LEFT JOIN abm_device_assignments a \
             ON a.entry_id = d.entry_id AND a.serial_number = d.serial_number \
             WHERE d.entry_id = "
        ));
        q.push_bind(entry_id).push(" AND d.removed_at IS NULL");
        if let Some(after) = after {
            q.push(" AND d.serial_number > ").push_bind(after);
        }
        if let Some(only) = only {
            if only.is_empty() {
                return Ok(Vec::new());
            }
            q.push(" AND d.serial_number IN (");
            let mut list = q.separated(", ");
            for serial in only {
                list.push_bind(serial.as_str());
            }
            q.push(")");
        }
        q.push(" ORDER BY d.serial_number LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&mut *tx).await.map_err(backend)?;
        let mut inputs = Vec::with_capacity(rows.len());
        for row in &rows {
            let has_record: Option<String> = row.try_get("r_serial_number").map_err(backend)?;
            inputs.push(AssignmentInput {
                device: device_from_row(row)?,
                explicit_profile: row.try_get("explicit_profile").map_err(backend)?,
                static_groups: Vec::new(),
                record: match has_record {
                    Some(_) => Some(record_from_row(row, "r_")?),
                    None => None,
                },
            });
        }
        // Their static groups, a chunk of serials per query.
        let mut groups: HashMap<String, Vec<Uuid>> = HashMap::new();
        let serials: Vec<&str> = inputs
            .iter()
            .map(|i| i.device.device.serial_number.as_str())
            .collect();
        for chunk in serials.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT m.serial_number, m.group_id FROM device_group_members m \
                 JOIN device_groups g ON g.id = m.group_id \
                 WHERE g.rule IS NULL AND m.serial_number IN (",
            );
            let mut list = q.separated(", ");
            for serial in chunk {
                list.push_bind(*serial);
            }
            q.push(") ORDER BY m.serial_number, m.group_id");
            for row in q.build().fetch_all(&mut *tx).await.map_err(backend)? {
                let serial: String = row.try_get("serial_number").map_err(backend)?;
                let group: Uuid = row.try_get("group_id").map_err(backend)?;
                groups.entry(serial).or_default().push(group);
            }
        }
        tx.commit().await.map_err(backend)?;
        for input in &mut inputs {
            if let Some(ids) = groups.remove(&input.device.device.serial_number) {
                input.static_groups = ids;
            }
        }
        Ok(inputs)
    }

    async fn assignment_candidates(
        &self,
        entry_id: Uuid,
        filter: &InputFilter,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(CANDIDATES_SQL)
            .bind(entry_id)
            .bind(micros(filter.changed_after))
            .bind(micros(filter.due_by))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows)
    }

    async fn write_assignments(
        &self,
        entry_id: Uuid,
        records: &[AssignmentRecord],
    ) -> Result<(), StoreError> {
        let records = last_per_serial(records);
        let mut tx = self.write_tx().await?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO abm_device_assignments (entry_id, {RECORD_COLUMNS}) "
            ));
            q.push_values(chunk, |mut row, r| {
                row.push_bind(entry_id)
                    .push_bind(r.serial_number.as_str())
                    .push_bind(r.profile_id)
                    .push_bind(r.profile_version)
                    .push_bind(r.rule.as_str())
                    .push_bind(r.state.as_str())
                    .push_bind(r.apple_uuid.as_deref())
                    .push_bind(r.attempted_at.map(micros))
                    .push_bind(r.retry_at.map(micros))
                    .push_bind(r.attempts)
                    .push_bind(r.last_error.as_deref())
                    .push_bind(micros(r.updated_at));
            });
            q.push(
                " ON CONFLICT (entry_id, serial_number) DO UPDATE SET \
                 profile_id = excluded.profile_id, profile_version = excluded.profile_version, \
                 rule = excluded.rule, state = excluded.state, apple_uuid = excluded.apple_uuid, \
                 attempted_at = excluded.attempted_at, retry_at = excluded.retry_at, \
                 attempts = excluded.attempts, last_error = excluded.last_error, \
                 updated_at = excluded.updated_at",
            );
            q.build()
                .execute(&mut *tx)
                .await
                .map_err(missing_reference)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn assignments(
        &self,
        entry_id: Uuid,
        serials: &[String],
    ) -> Result<Vec<AssignmentRecord>, StoreError> {
        let serials = distinct(serials);
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let mut records = Vec::new();
        for chunk in serials.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {RECORD_COLUMNS} FROM abm_device_assignments WHERE entry_id = "
            ));
            q.push_bind(entry_id).push(" AND serial_number IN (");
            let mut list = q.separated(", ");
            for serial in chunk {
                list.push_bind(*serial);
            }
            q.push(")");
            for row in q.build().fetch_all(&mut *tx).await.map_err(backend)? {
                records.push(record_from_row(&row, "")?);
            }
        }
        tx.commit().await.map_err(backend)?;
        records.sort_by(|a, b| a.serial_number.cmp(&b.serial_number));
        Ok(records)
    }

    async fn mark_removed_assignments(
        &self,
        entry_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(MARK_REMOVED_SQL)
            .bind(micros(at))
            .bind(entry_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn assignment_state_counts(
        &self,
        entry_id: Uuid,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM abm_device_assignments WHERE entry_id = ? \
             GROUP BY state ORDER BY state",
        )
        .bind(entry_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let n: i64 = row.try_get("n").map_err(backend)?;
                Ok((
                    row.try_get("state").map_err(backend)?,
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn finish_assignment_pass(&self, pass: &AssignmentPass) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO assignment_passes (entry_id, generation, finished_at, summary, error) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (entry_id) DO UPDATE SET \
             generation = ?2, finished_at = ?3, summary = ?4, error = ?5",
        )
        .bind(pass.entry_id)
        .bind(pass.generation)
        .bind(micros(pass.finished_at))
        .bind(pass.summary.to_string())
        .bind(pass.error.as_deref())
        .execute(&self.pool)
        .await
        .map_err(missing_reference)?;
        Ok(())
    }

    async fn last_assignment_pass(
        &self,
        entry_id: Uuid,
    ) -> Result<Option<AssignmentPass>, StoreError> {
        let row = sqlx::query(
            "SELECT entry_id, generation, finished_at, summary, error FROM assignment_passes \
             WHERE entry_id = ?",
        )
        .bind(entry_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let summary: String = row.try_get("summary").map_err(backend)?;
        Ok(Some(AssignmentPass {
            entry_id: row.try_get("entry_id").map_err(backend)?,
            generation: row.try_get("generation").map_err(backend)?,
            finished_at: from_micros(row.try_get("finished_at").map_err(backend)?)?,
            summary: json(&summary, "pass summary")?,
            error: row.try_get("error").map_err(backend)?,
        }))
    }
}

/// Bumps the assignment generation: every configuration change does, in its transaction.
async fn bump_generation(tx: &mut Tx) -> Result<(), StoreError> {
    sqlx::query("UPDATE assignment_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

async fn generation(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT generation FROM assignment_generation WHERE id = 1")
        .fetch_one(conn)
        .await
        .map_err(backend)
}

async fn insert_version(
    tx: &mut Tx,
    id: Uuid,
    version: i64,
    spec: &serde_json::Value,
    audit: &NewAuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ade_profile_versions (profile_id, version, spec, created_by, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(version)
    .bind(spec.to_string())
    .bind(&audit.actor)
    .bind(micros(audit.at))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn profile_by_id(tx: &mut Tx, id: Uuid) -> Result<AdeProfile, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PROFILE_SELECT} WHERE p.id = ?"
    )))
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    profile_from_row(&row)
}

async fn all_profiles(conn: &mut SqliteConnection) -> Result<Vec<AdeProfile>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PROFILE_SELECT} ORDER BY p.name"
    )))
    .fetch_all(conn)
    .await
    .map_err(backend)?;
    rows.iter().map(profile_from_row).collect()
}

async fn group_by_id(tx: &mut Tx, id: Uuid) -> Result<DeviceGroup, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{GROUP_SELECT} WHERE g.id = ?"
    )))
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    group_from_row(&row)
}

async fn all_groups(conn: &mut SqliteConnection) -> Result<Vec<DeviceGroup>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{GROUP_SELECT} ORDER BY g.name"
    )))
    .fetch_all(conn)
    .await
    .map_err(backend)?;
    rows.iter().map(group_from_row).collect()
}

async fn all_os_defaults(conn: &mut SqliteConnection) -> Result<Vec<OsDefault>, StoreError> {
    let rows = sqlx::query("SELECT os, profile_id, updated_at FROM ade_os_defaults ORDER BY os")
        .fetch_all(conn)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|row| {
            Ok(OsDefault {
                os: row.try_get("os").map_err(backend)?,
                profile_id: row.try_get("profile_id").map_err(backend)?,
                updated_at: from_micros(row.try_get("updated_at").map_err(backend)?)?,
            })
        })
        .collect()
}

/// Where a profile is used.
async fn references(
    conn: &mut SqliteConnection,
    id: Uuid,
) -> Result<ProfileReferences, StoreError> {
    let os_defaults =
        sqlx::query_scalar("SELECT os FROM ade_os_defaults WHERE profile_id = ? ORDER BY os")
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
    let groups =
        sqlx::query_scalar("SELECT name FROM device_groups WHERE profile_id = ? ORDER BY name")
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
    let devices: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM device_profiles WHERE profile_id = ?")
            .bind(id)
            .fetch_one(&mut *conn)
            .await
            .map_err(backend)?;
    Ok(ProfileReferences {
        os_defaults,
        groups,
        devices: u64::try_from(devices).unwrap_or(0),
    })
}

/// Checks that a group exists and is static (only static groups have members).
async fn static_group(tx: &mut Tx, id: Uuid) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT name, rule IS NULL AS is_static FROM device_groups WHERE id = ?")
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)?;
    let is_static: bool = row.try_get("is_static").map_err(backend)?;
    if !is_static {
        let name: String = row.try_get("name").map_err(backend)?;
        return Err(StoreError::Conflict(format!(
            "group {name:?} is a smart group: it has no static members"
        )));
    }
    Ok(())
}

/// Pushes `chunk` as bound values and the closing parenthesis of an `IN (` list.
fn push_serials(q: &mut QueryBuilder<Sqlite>, chunk: &[String]) {
    let mut list = q.separated(", ");
    for serial in chunk {
        list.push_bind(serial.as_str());
    }
    q.push(")");
}

/// The serials without repeats, in first-seen order.
fn distinct(serials: &[String]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::with_capacity(serials.len());
    serials
        .iter()
        .map(String::as_str)
        .filter(|s| seen.insert(*s))
        .collect()
}

/// One record per serial, the last given winning.
fn last_per_serial(records: &[AssignmentRecord]) -> Vec<&AssignmentRecord> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        last.insert(r.serial_number.as_str(), i);
    }
    records
        .iter()
        .enumerate()
        .filter(|(i, r)| last.get(r.serial_number.as_str()) == Some(i))
        .map(|(_, r)| r)
        .collect()
}

/// A write naming a profile, group or entry that does not exist.
fn missing_reference(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        other => backend(other),
    }
}

/// A profile delete refused by a foreign key: something still uses it.
fn still_used(err: sqlx::Error, name: &str) -> StoreError {
    match err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict(format!("profile {name:?} is still in use"))
        }
        other => backend(other),
    }
}

fn json(text: &str, what: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn profile_from_row(row: &SqliteRow) -> Result<AdeProfile, StoreError> {
    let spec: String = row.try_get("spec").map_err(backend)?;
    Ok(AdeProfile {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        version: row.try_get("version").map_err(backend)?,
        spec: json(&spec, "profile spec")?,
        created_at: from_micros(row.try_get("created_at").map_err(backend)?)?,
        updated_at: from_micros(row.try_get("updated_at").map_err(backend)?)?,
    })
}

fn group_from_row(row: &SqliteRow) -> Result<DeviceGroup, StoreError> {
    let rule: Option<String> = row.try_get("rule").map_err(backend)?;
    let members: i64 = row.try_get("member_count").map_err(backend)?;
    Ok(DeviceGroup {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        rule: rule.map(|r| json(&r, "group rule")).transpose()?,
        profile_id: row.try_get("profile_id").map_err(backend)?,
        priority: row.try_get("priority").map_err(backend)?,
        member_count: u64::try_from(members).unwrap_or(0),
        created_at: from_micros(row.try_get("created_at").map_err(backend)?)?,
        updated_at: from_micros(row.try_get("updated_at").map_err(backend)?)?,
    })
}

fn definition_from_row(row: &SqliteRow) -> Result<ProfileDefinition, StoreError> {
    Ok(ProfileDefinition {
        entry_id: row.try_get("entry_id").map_err(backend)?,
        profile_id: row.try_get("profile_id").map_err(backend)?,
        version: row.try_get("version").map_err(backend)?,
        apple_uuid: row.try_get("apple_uuid").map_err(backend)?,
        defined_at: from_micros(row.try_get("defined_at").map_err(backend)?)?,
    })
}

/// A record from columns named `{prefix}{column}`.
fn record_from_row(row: &SqliteRow, prefix: &str) -> Result<AssignmentRecord, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(AssignmentRecord {
        serial_number: row
            .try_get(col("serial_number").as_str())
            .map_err(backend)?,
        profile_id: row.try_get(col("profile_id").as_str()).map_err(backend)?,
        profile_version: row
            .try_get(col("profile_version").as_str())
            .map_err(backend)?,
        rule: row.try_get(col("rule").as_str()).map_err(backend)?,
        state: row.try_get(col("state").as_str()).map_err(backend)?,
        apple_uuid: row.try_get(col("apple_uuid").as_str()).map_err(backend)?,
        attempted_at: opt_from_micros(row.try_get(col("attempted_at").as_str()).map_err(backend)?)?,
        retry_at: opt_from_micros(row.try_get(col("retry_at").as_str()).map_err(backend)?)?,
        attempts: row.try_get(col("attempts").as_str()).map_err(backend)?,
        last_error: row.try_get(col("last_error").as_str()).map_err(backend)?,
        updated_at: from_micros(row.try_get(col("updated_at").as_str()).map_err(backend)?)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{CANDIDATES_SQL, MARK_REMOVED_SQL};
    use crate::SqliteStore;

    /// SQLite's plan for `sql`, one line per step.
    async fn plan(store: &SqliteStore, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind(uuid::Uuid::nil())
                .bind(0_i64)
                .bind(0_i64)
                .fetch_all(&store.pool)
                .await
                .unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    /// The queries every assignment pass runs read through their indexes, never every
    /// device of the entry (a scan that costs about half a second at a million devices).
    #[tokio::test]
    async fn pass_queries_use_their_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("plan.db"))
            .await
            .unwrap();
        let mark = plan(&store, MARK_REMOVED_SQL).await;
        assert!(
            mark.contains("USING INDEX abm_devices_entry_removed"),
            "{mark}"
        );
        let candidates = plan(&store, CANDIDATES_SQL).await;
        for index in [
            "abm_devices_entry_updated",
            "abm_device_assignments_entry_state",
            "abm_device_assignments_entry_retry",
        ] {
            assert!(candidates.contains(index), "{index}: {candidates}");
        }
        assert!(!candidates.contains("SCAN"), "{candidates}");
    }
}

use std::collections::HashMap;

use async_trait::async_trait;
use guardmdm_store::{
    AdeProfile, AdeProfileVersion, AssignState, AssignmentConfig, AssignmentConfigStore,
    AssignmentInput, AssignmentPass, AssignmentRecord, AssignmentStateStore, DeviceGroup, EntryId,
    GroupId, GroupUpdate, InputFilter, NewAuditEvent, NewDeviceGroup, OsDefault, OsKey,
    ProfileDefinition, ProfileId, ProfileReferences, RuleRef, SerialPresence, StoreError,
    StoredText,
};
use sqlx::QueryBuilder;
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::DbStore;
use crate::common::{backend, get, get_id, insert_audit, opt_id, opt_ts, stored, ts};
use crate::devices::device_from_row;
use crate::dialect::assignment as dialect;
use crate::dialect::{Db, DbRow, Ts, Tx};

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

pub(crate) const RECORD_COLUMNS: &str = "serial_number, profile_id, profile_version, rule, \
     state, apple_uuid, attempted_at, retry_at, attempts, last_error, updated_at";

/// [`RECORD_COLUMNS`] of `abm_device_assignments a`, prefixed `r_` (next to a device's).
pub(crate) const R_RECORD_COLUMNS: &str = "a.serial_number AS r_serial_number, \
     a.profile_id AS r_profile_id, a.profile_version AS r_profile_version, a.rule AS r_rule, \
     a.state AS r_state, a.apple_uuid AS r_apple_uuid, a.attempted_at AS r_attempted_at, \
     a.retry_at AS r_retry_at, a.attempts AS r_attempts, a.last_error AS r_last_error, \
     a.updated_at AS r_updated_at";

/// How an insert of records replaces an existing one (after the dialect's rows).
pub(crate) const RECORD_UPSERT: &str = " ON CONFLICT (entry_id, serial_number) DO UPDATE SET \
     profile_id = excluded.profile_id, profile_version = excluded.profile_version, \
     rule = excluded.rule, state = excluded.state, apple_uuid = excluded.apple_uuid, \
     attempted_at = excluded.attempted_at, retry_at = excluded.retry_at, \
     attempts = excluded.attempts, last_error = excluded.last_error, \
     updated_at = excluded.updated_at";

#[async_trait]
impl AssignmentConfigStore for DbStore {
    async fn create_profile(
        &self,
        id: ProfileId,
        name: &str,
        spec: &serde_json::Value,
        audit: &NewAuditEvent,
    ) -> Result<AdeProfile, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        sqlx::query(
            "INSERT INTO ade_profiles (id, name, version, created_at) VALUES ($1, $2, 1, $3)",
        )
        .bind(id.get())
        .bind(name)
        .bind(Ts(audit.at))
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
        id: ProfileId,
        spec: &serde_json::Value,
        expected_version: Option<i64>,
        audit: &NewAuditEvent,
    ) -> Result<AdeProfile, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name, version FROM ade_profiles WHERE id = $1{}",
            crate::dialect::FOR_UPDATE
        )))
        .bind(id.get())
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let name: String = get(&row, "name")?;
        let current: i64 = get(&row, "version")?;
        if let Some(expected) = expected_version
            && expected != current
        {
            return Err(StoreError::Conflict(format!(
                "profile {name:?} is at version {current}, not {expected}: it changed meanwhile"
            )));
        }
        let next = current + 1;
        insert_version(&mut tx, id, next, spec, audit).await?;
        sqlx::query("UPDATE ade_profiles SET version = $1 WHERE id = $2")
            .bind(next)
            .bind(id.get())
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
            "{PROFILE_SELECT} WHERE p.name = $1"
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

    async fn profile_versions(&self, id: ProfileId) -> Result<Vec<AdeProfileVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT profile_id, version, spec, created_by, created_at FROM ade_profile_versions \
             WHERE profile_id = $1 ORDER BY version",
        )
        .bind(id.get())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(AdeProfileVersion {
                    profile_id: get_id(row, "profile_id")?,
                    version: get(row, "version")?,
                    spec: get::<Json<serde_json::Value>>(row, "spec")?.0,
                    created_by: get(row, "created_by")?,
                    created_at: ts(row, "created_at")?,
                })
            })
            .collect()
    }

    async fn profile_references(&self, id: ProfileId) -> Result<ProfileReferences, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        references(&mut conn, id).await
    }

    async fn delete_profile(&self, id: ProfileId, audit: &NewAuditEvent) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        // Bumping first takes the generation row's lock (SQLite: the write lock): configuration
        // changes are serialised, so no default, group or device can start using the profile
        // between check and delete.
        bump_generation(&mut tx).await?;
        let name: String = sqlx::query_scalar("SELECT name FROM ade_profiles WHERE id = $1")
            .bind(id.get())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let refs = references(&mut tx, id).await?;
        if !refs.is_empty() {
            return Err(StoreError::Conflict(refs.describe(&name)));
        }
        // Versions and definitions go with it (ON DELETE CASCADE); a default, group or device
        // using it would fail the delete (ON DELETE RESTRICT).
        sqlx::query("DELETE FROM ade_profiles WHERE id = $1")
            .bind(id.get())
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
             (entry_id, profile_id, version, apple_uuid, defined_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (entry_id, profile_id, version) DO UPDATE SET \
             apple_uuid = excluded.apple_uuid, defined_at = excluded.defined_at",
        )
        .bind(definition.entry_id.get())
        .bind(definition.profile_id.get())
        .bind(definition.version)
        .bind(&definition.apple_uuid)
        .bind(Ts(definition.defined_at))
        .execute(&self.pool)
        .await
        .map_err(missing_reference)?;
        Ok(())
    }

    async fn entry_profile_definitions(
        &self,
        entry_id: EntryId,
    ) -> Result<Vec<ProfileDefinition>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEFINITION_SELECT} WHERE entry_id = $1 ORDER BY profile_id, version"
        )))
        .bind(entry_id.get())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(definition_from_row).collect()
    }

    async fn profile_definitions(
        &self,
        profile_id: ProfileId,
    ) -> Result<Vec<ProfileDefinition>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DEFINITION_SELECT} WHERE profile_id = $1 ORDER BY entry_id, version"
        )))
        .bind(profile_id.get())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(definition_from_row).collect()
    }

    async fn set_os_default(
        &self,
        os: OsKey,
        profile_id: Option<ProfileId>,
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        match profile_id {
            Some(profile_id) => {
                sqlx::query(
                    "INSERT INTO ade_os_defaults (os, profile_id, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (os) DO UPDATE SET profile_id = $2, updated_at = $3",
                )
                .bind(os.as_str())
                .bind(profile_id.get())
                .bind(Ts(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(missing_reference)?;
            }
            None => {
                sqlx::query("DELETE FROM ade_os_defaults WHERE os = $1")
                    .bind(os.as_str())
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
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(group.id.get())
        .bind(&group.name)
        .bind(group.rule.as_ref().map(Json))
        .bind(group.profile_id.map(ProfileId::get))
        .bind(group.priority)
        .bind(Ts(audit.at))
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
        id: GroupId,
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
            "UPDATE device_groups SET rule = $1, profile_id = $2, priority = $3, \
             updated_at = $4 WHERE id = $5",
        )
        .bind(rule.map(Json))
        .bind(profile_id.map(ProfileId::get))
        .bind(priority)
        .bind(Ts(audit.at))
        .bind(id.get())
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
            "{GROUP_SELECT} WHERE g.name = $1"
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

    async fn delete_group(&self, id: GroupId, audit: &NewAuditEvent) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        // Memberships go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM device_groups WHERE id = $1")
            .bind(id.get())
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
        group_id: GroupId,
        serials: &[String],
        audit: &NewAuditEvent,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        static_group(&mut tx, group_id).await?;
        let added = dialect::add_group_members(&mut tx, group_id, serials).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(added)
    }

    async fn remove_group_members(
        &self,
        group_id: GroupId,
        serials: &[String],
        audit: &NewAuditEvent,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        static_group(&mut tx, group_id).await?;
        let removed = dialect::remove_group_members(&mut tx, group_id, serials).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    async fn group_members(
        &self,
        group_id: GroupId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let mut q = QueryBuilder::<Db>::new(
            "SELECT serial_number FROM device_group_members WHERE group_id = ",
        );
        q.push_bind(group_id.get());
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

    async fn groups_of_serial(&self, serial: &str) -> Result<Vec<GroupId>, StoreError> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT m.group_id FROM device_group_members m \
             JOIN device_groups g ON g.id = m.group_id \
             WHERE m.serial_number = $1 ORDER BY g.name",
        )
        .bind(serial)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(ids.into_iter().map(GroupId::from_inner).collect())
    }

    async fn set_device_profiles(
        &self,
        serials: &[String],
        profile_id: Option<ProfileId>,
        audit: &NewAuditEvent,
    ) -> Result<u64, StoreError> {
        // Without repeats: one statement may not upsert a row twice.
        let serials = distinct(serials);
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        let changed = dialect::set_device_profiles(&mut tx, &serials, profile_id, audit.at).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(changed)
    }

    async fn device_profile(&self, serial: &str) -> Result<Option<ProfileId>, StoreError> {
        let id: Option<Uuid> =
            sqlx::query_scalar("SELECT profile_id FROM device_profiles WHERE serial_number = $1")
                .bind(serial)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(id.map(ProfileId::from_inner))
    }

    async fn serial_presence(&self, serials: &[String]) -> Result<Vec<SerialPresence>, StoreError> {
        // One snapshot for every chunk.
        let mut tx = dialect::read_snapshot(&self.pool).await?;
        let known = dialect::serial_presence(&mut tx, serials).await?;
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
        // Every read of the transaction sees one snapshot.
        let mut tx = dialect::read_snapshot(&self.pool).await?;
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
impl AssignmentStateStore for DbStore {
    async fn assignment_inputs(
        &self,
        entry_id: EntryId,
        after: Option<&str>,
        limit: u32,
        only: Option<&[String]>,
    ) -> Result<Vec<AssignmentInput>, StoreError> {
        if only.is_some_and(<[String]>::is_empty) {
            return Ok(Vec::new());
        }
        let mut tx = dialect::read_snapshot(&self.pool).await?;
        // The page of present devices with their explicit profile and record.
        let rows = dialect::assignment_input_page(&mut tx, entry_id, after, limit, only).await?;
        let mut inputs = Vec::with_capacity(rows.len());
        for row in &rows {
            let has_record: Option<String> = get(row, "r_serial_number")?;
            inputs.push(AssignmentInput {
                device: device_from_row(row)?,
                explicit_profile: opt_id(row, "explicit_profile")?,
                static_groups: Vec::new(),
                record: match has_record {
                    Some(_) => Some(record_from_row(row, true)?),
                    None => None,
                },
            });
        }
        // Their static groups.
        let serials: Vec<&str> = inputs
            .iter()
            .map(|i| i.device.device.serial_number.as_str())
            .collect();
        let mut groups = dialect::static_groups_of(&mut tx, &serials).await?;
        tx.commit().await.map_err(backend)?;
        for input in &mut inputs {
            if let Some(mut ids) = groups.remove(&input.device.device.serial_number) {
                ids.sort_unstable();
                input.static_groups = ids;
            }
        }
        Ok(inputs)
    }

    async fn assignment_candidates(
        &self,
        entry_id: EntryId,
        filter: &InputFilter,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(candidates_sql()))
            .bind(entry_id.get())
            .bind(Ts(filter.changed_after))
            .bind(Ts(filter.due_by))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)
    }

    async fn write_assignments(
        &self,
        entry_id: EntryId,
        records: &[AssignmentRecord],
    ) -> Result<(), StoreError> {
        // One record per serial: one statement may not upsert a row twice.
        let records = last_per_serial(records);
        let mut tx = self.write_tx().await?;
        dialect::upsert_assignments(&mut tx, entry_id, &records).await?;
        tx.commit().await.map_err(backend)
    }

    async fn assignments(
        &self,
        entry_id: EntryId,
        serials: &[String],
    ) -> Result<Vec<AssignmentRecord>, StoreError> {
        let serials = distinct(serials);
        let mut tx = dialect::read_snapshot(&self.pool).await?;
        let rows = dialect::assignment_rows(&mut tx, entry_id, &serials).await?;
        tx.commit().await.map_err(backend)?;
        let mut records = rows
            .iter()
            .map(|row| record_from_row(row, false))
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.serial_number.cmp(&b.serial_number));
        Ok(records)
    }

    async fn mark_removed_assignments(
        &self,
        entry_id: EntryId,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(dialect::MARK_REMOVED_SQL)
            .bind(Ts(at))
            .bind(entry_id.get())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn assignment_state_counts(
        &self,
        entry_id: EntryId,
    ) -> Result<Vec<(AssignState, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM abm_device_assignments WHERE entry_id = $1 \
             GROUP BY state ORDER BY state",
        )
        .bind(entry_id.get())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let n: i64 = get(row, "n")?;
                Ok((stored(row, "state")?, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    async fn finish_assignment_pass(&self, pass: &AssignmentPass) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO assignment_passes (entry_id, generation, finished_at, summary, error) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (entry_id) DO UPDATE SET \
             generation = $2, finished_at = $3, summary = $4, error = $5",
        )
        .bind(pass.entry_id.get())
        .bind(pass.generation)
        .bind(Ts(pass.finished_at))
        .bind(Json(&pass.summary))
        .bind(pass.error.as_deref())
        .execute(&self.pool)
        .await
        .map_err(missing_reference)?;
        Ok(())
    }

    async fn last_assignment_pass(
        &self,
        entry_id: EntryId,
    ) -> Result<Option<AssignmentPass>, StoreError> {
        let row = sqlx::query(
            "SELECT entry_id, generation, finished_at, summary, error FROM assignment_passes \
             WHERE entry_id = $1",
        )
        .bind(entry_id.get())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(AssignmentPass {
            entry_id: get_id(&row, "entry_id")?,
            generation: get(&row, "generation")?,
            finished_at: ts(&row, "finished_at")?,
            summary: get::<Json<serde_json::Value>>(&row, "summary")?.0,
            error: get(&row, "error")?,
        }))
    }
}

/// Bumps the assignment generation: every configuration change does, first thing in its
/// transaction. The row lock it takes serialises configuration changes on PostgreSQL (SQLite's
/// write transactions are serialised already).
async fn bump_generation(tx: &mut Tx) -> Result<(), StoreError> {
    sqlx::query("UPDATE assignment_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

async fn generation(conn: &mut <Db as sqlx::Database>::Connection) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT generation FROM assignment_generation WHERE id = 1")
        .fetch_one(conn)
        .await
        .map_err(backend)
}

async fn insert_version(
    tx: &mut Tx,
    id: ProfileId,
    version: i64,
    spec: &serde_json::Value,
    audit: &NewAuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ade_profile_versions (profile_id, version, spec, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.get())
    .bind(version)
    .bind(Json(spec))
    .bind(&audit.actor)
    .bind(Ts(audit.at))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn profile_by_id(tx: &mut Tx, id: ProfileId) -> Result<AdeProfile, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PROFILE_SELECT} WHERE p.id = $1"
    )))
    .bind(id.get())
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    profile_from_row(&row)
}

async fn all_profiles(
    conn: &mut <Db as sqlx::Database>::Connection,
) -> Result<Vec<AdeProfile>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PROFILE_SELECT} ORDER BY p.name"
    )))
    .fetch_all(conn)
    .await
    .map_err(backend)?;
    rows.iter().map(profile_from_row).collect()
}

async fn group_by_id(tx: &mut Tx, id: GroupId) -> Result<DeviceGroup, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{GROUP_SELECT} WHERE g.id = $1"
    )))
    .bind(id.get())
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    group_from_row(&row)
}

async fn all_groups(
    conn: &mut <Db as sqlx::Database>::Connection,
) -> Result<Vec<DeviceGroup>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{GROUP_SELECT} ORDER BY g.name"
    )))
    .fetch_all(conn)
    .await
    .map_err(backend)?;
    rows.iter().map(group_from_row).collect()
}

async fn all_os_defaults(
    conn: &mut <Db as sqlx::Database>::Connection,
) -> Result<Vec<OsDefault>, StoreError> {
    let rows = sqlx::query("SELECT os, profile_id, updated_at FROM ade_os_defaults ORDER BY os")
        .fetch_all(conn)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|row| {
            Ok(OsDefault {
                os: stored(row, "os")?,
                profile_id: get_id(row, "profile_id")?,
                updated_at: ts(row, "updated_at")?,
            })
        })
        .collect()
}

/// Where a profile is used.
async fn references(
    conn: &mut <Db as sqlx::Database>::Connection,
    id: ProfileId,
) -> Result<ProfileReferences, StoreError> {
    let os_defaults: Vec<String> =
        sqlx::query_scalar("SELECT os FROM ade_os_defaults WHERE profile_id = $1 ORDER BY os")
            .bind(id.get())
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
    let os_defaults = os_defaults
        .iter()
        .map(|os| OsKey::parse_stored(os))
        .collect::<Result<_, _>>()?;
    let groups =
        sqlx::query_scalar("SELECT name FROM device_groups WHERE profile_id = $1 ORDER BY name")
            .bind(id.get())
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
    let devices: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM device_profiles WHERE profile_id = $1")
            .bind(id.get())
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
async fn static_group(tx: &mut Tx, id: GroupId) -> Result<(), StoreError> {
    let row =
        sqlx::query("SELECT name, rule IS NULL AS is_static FROM device_groups WHERE id = $1")
            .bind(id.get())
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?;
    let is_static: bool = get(&row, "is_static")?;
    if !is_static {
        let name: String = get(&row, "name")?;
        return Err(StoreError::Conflict(format!(
            "group {name:?} is a smart group: it has no static members"
        )));
    }
    Ok(())
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
pub(crate) fn missing_reference(err: sqlx::Error) -> StoreError {
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

fn profile_from_row(row: &DbRow) -> Result<AdeProfile, StoreError> {
    Ok(AdeProfile {
        id: get_id(row, "id")?,
        name: get(row, "name")?,
        version: get(row, "version")?,
        spec: get::<Json<serde_json::Value>>(row, "spec")?.0,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn group_from_row(row: &DbRow) -> Result<DeviceGroup, StoreError> {
    let members: i64 = get(row, "member_count")?;
    Ok(DeviceGroup {
        id: get_id(row, "id")?,
        name: get(row, "name")?,
        rule: get::<Option<Json<serde_json::Value>>>(row, "rule")?.map(|r| r.0),
        profile_id: opt_id(row, "profile_id")?,
        priority: get(row, "priority")?,
        member_count: u64::try_from(members).unwrap_or(0),
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn definition_from_row(row: &DbRow) -> Result<ProfileDefinition, StoreError> {
    Ok(ProfileDefinition {
        entry_id: get_id(row, "entry_id")?,
        profile_id: get_id(row, "profile_id")?,
        version: get(row, "version")?,
        apple_uuid: get(row, "apple_uuid")?,
        defined_at: ts(row, "defined_at")?,
    })
}

/// Assignment rule column `name` of `row`.
fn rule(row: &DbRow, name: &str) -> Result<RuleRef, StoreError> {
    let text: String = get(row, name)?;
    RuleRef::parse_text(&text).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "unknown assignment rule {text:?} in abm_device_assignments"
        ))
    })
}

/// A record from columns named `{prefix}{column}`.
/// A record's row; `joined` when its columns carry the `r_` prefix of a join with devices.
fn record_from_row(row: &DbRow, joined: bool) -> Result<AssignmentRecord, StoreError> {
    // Names chosen, not formatted: this runs for every device of every pass.
    let col = |plain: &'static str, prefixed: &'static str| if joined { prefixed } else { plain };
    Ok(AssignmentRecord {
        serial_number: get(row, col("serial_number", "r_serial_number"))?,
        profile_id: opt_id(row, col("profile_id", "r_profile_id"))?,
        profile_version: get(row, col("profile_version", "r_profile_version"))?,
        rule: rule(row, col("rule", "r_rule"))?,
        state: stored(row, col("state", "r_state"))?,
        apple_uuid: get(row, col("apple_uuid", "r_apple_uuid"))?,
        attempted_at: opt_ts(row, col("attempted_at", "r_attempted_at"))?,
        retry_at: opt_ts(row, col("retry_at", "r_retry_at"))?,
        attempts: get(row, col("attempts", "r_attempts"))?,
        last_error: get(row, col("last_error", "r_last_error"))?,
        updated_at: ts(row, col("updated_at", "r_updated_at"))?,
    })
}

/// The serials an incremental pass looks at, in order: devices of entry `$1` changed since
/// `$2`, and those whose record is pending or due for a retry by `$3`; present devices only,
/// each part through its own index.
pub(crate) fn candidates_sql() -> String {
    format!(
        "SELECT d.serial_number FROM {} \
         WHERE d.entry_id = $1 AND d.updated_at > $2 AND d.removed_at IS NULL \
         UNION \
         SELECT a.serial_number FROM abm_device_assignments a \
         JOIN abm_devices d ON d.entry_id = a.entry_id AND d.serial_number = a.serial_number \
         WHERE a.entry_id = $1 AND a.state = 'pending' AND d.removed_at IS NULL \
         UNION \
         SELECT a.serial_number FROM abm_device_assignments a \
         JOIN abm_devices d ON d.entry_id = a.entry_id AND d.serial_number = a.serial_number \
         WHERE a.entry_id = $1 AND a.retry_at IS NOT NULL AND a.retry_at <= $3 \
         AND d.removed_at IS NULL \
         ORDER BY 1",
        dialect::CHANGED_DEVICES
    )
}

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use guardmdm_store::{
    AdeProfile, AdeProfileVersion, AssignmentConfig, AssignmentConfigStore, AssignmentInput,
    AssignmentPass, AssignmentRecord, AssignmentStateStore, DeviceGroup, GroupUpdate, InputFilter,
    NewAuditEvent, NewDeviceGroup, OsDefault, ProfileDefinition, ProfileReferences, SerialPresence,
    StoreError,
};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::devices::{D_DEVICE_COLUMNS, device_from_row};
use crate::{PostgresStore, backend, insert_audit};

/// Serials (or records) per statement, each column one array parameter
/// (`unnest($n::text[])`): chunked only to keep each statement's work bounded.
const SERIALS_PER_STATEMENT: usize = 5_000;

type Tx = Transaction<'static, Postgres>;

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
impl AssignmentConfigStore for PostgresStore {
    async fn create_profile(
        &self,
        id: Uuid,
        name: &str,
        spec: &serde_json::Value,
        audit: &NewAuditEvent,
    ) -> Result<AdeProfile, StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        sqlx::query(
            "INSERT INTO ade_profiles (id, name, version, created_at) VALUES ($1, $2, 1, $3)",
        )
        .bind(id)
        .bind(name)
        .bind(audit.at)
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
        let row = sqlx::query("SELECT name, version FROM ade_profiles WHERE id = $1 FOR UPDATE")
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
        sqlx::query("UPDATE ade_profiles SET version = $1 WHERE id = $2")
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

    async fn profile_versions(&self, id: Uuid) -> Result<Vec<AdeProfileVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT profile_id, version, spec, created_by, created_at FROM ade_profile_versions \
             WHERE profile_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(AdeProfileVersion {
                    profile_id: row.try_get("profile_id").map_err(backend)?,
                    version: row.try_get("version").map_err(backend)?,
                    spec: row.try_get("spec").map_err(backend)?,
                    created_by: row.try_get("created_by").map_err(backend)?,
                    created_at: row.try_get("created_at").map_err(backend)?,
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
        // Bumping first takes the generation row's lock: configuration changes are serialised,
        // so no default, group or device can start using the profile between check and delete.
        bump_generation(&mut tx).await?;
        let name: String = sqlx::query_scalar("SELECT name FROM ade_profiles WHERE id = $1")
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
        sqlx::query("DELETE FROM ade_profiles WHERE id = $1")
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
             (entry_id, profile_id, version, apple_uuid, defined_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (entry_id, profile_id, version) DO UPDATE SET \
             apple_uuid = excluded.apple_uuid, defined_at = excluded.defined_at",
        )
        .bind(definition.entry_id)
        .bind(definition.profile_id)
        .bind(definition.version)
        .bind(&definition.apple_uuid)
        .bind(definition.defined_at)
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
            "{DEFINITION_SELECT} WHERE entry_id = $1 ORDER BY profile_id, version"
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
            "{DEFINITION_SELECT} WHERE profile_id = $1 ORDER BY entry_id, version"
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
                    "INSERT INTO ade_os_defaults (os, profile_id, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (os) DO UPDATE SET profile_id = $2, updated_at = $3",
                )
                .bind(os)
                .bind(profile_id)
                .bind(audit.at)
                .execute(&mut *tx)
                .await
                .map_err(missing_reference)?;
            }
            None => {
                sqlx::query("DELETE FROM ade_os_defaults WHERE os = $1")
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
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(group.id)
        .bind(&group.name)
        .bind(&group.rule)
        .bind(group.profile_id)
        .bind(group.priority)
        .bind(audit.at)
        .bind(audit.at)
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
            "UPDATE device_groups SET rule = $1, profile_id = $2, priority = $3, \
             updated_at = $4 WHERE id = $5",
        )
        .bind(rule)
        .bind(profile_id)
        .bind(priority)
        .bind(audit.at)
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

    async fn delete_group(&self, id: Uuid, audit: &NewAuditEvent) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        bump_generation(&mut tx).await?;
        // Memberships go with it (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM device_groups WHERE id = $1")
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
        no_jit(&mut tx).await?;
        bump_generation(&mut tx).await?;
        static_group(&mut tx, group_id).await?;
        let mut added = 0;
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            added += sqlx::query(
                "INSERT INTO device_group_members (group_id, serial_number) \
                 SELECT $1, s.serial FROM unnest($2::text[]) AS s(serial) \
                 ON CONFLICT (group_id, serial_number) DO NOTHING",
            )
            .bind(group_id)
            .bind(chunk)
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
        no_jit(&mut tx).await?;
        bump_generation(&mut tx).await?;
        static_group(&mut tx, group_id).await?;
        let mut removed = 0;
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            removed += sqlx::query(
                "DELETE FROM device_group_members m USING unnest($2::text[]) AS s(serial) \
                 WHERE m.group_id = $1 AND m.serial_number = s.serial",
            )
            .bind(group_id)
            .bind(chunk)
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
        let mut q = QueryBuilder::<Postgres>::new(
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
             WHERE m.serial_number = $1 ORDER BY g.name",
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
        // Without repeats: one statement may not upsert a row twice.
        let serials = distinct(serials);
        let mut tx = self.write_tx().await?;
        no_jit(&mut tx).await?;
        bump_generation(&mut tx).await?;
        let mut changed = 0;
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            let done = match profile_id {
                // A serial that has this profile already is not a change.
                Some(profile_id) => sqlx::query(
                    "INSERT INTO device_profiles (serial_number, profile_id, updated_at) \
                     SELECT s.serial, $2, $3 FROM unnest($1::text[]) AS s(serial) \
                     ON CONFLICT (serial_number) DO UPDATE SET \
                     profile_id = excluded.profile_id, updated_at = excluded.updated_at \
                     WHERE device_profiles.profile_id <> excluded.profile_id",
                )
                .bind(chunk)
                .bind(profile_id)
                .bind(audit.at)
                .execute(&mut *tx)
                .await
                .map_err(missing_reference)?,
                None => sqlx::query(
                    "DELETE FROM device_profiles p USING unnest($1::text[]) AS s(serial) \
                     WHERE p.serial_number = s.serial",
                )
                .bind(chunk)
                .execute(&mut *tx)
                .await
                .map_err(backend)?,
            };
            changed += done.rows_affected();
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(changed)
    }

    async fn device_profile(&self, serial: &str) -> Result<Option<Uuid>, StoreError> {
        sqlx::query_scalar("SELECT profile_id FROM device_profiles WHERE serial_number = $1")
            .bind(serial)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn serial_presence(&self, serials: &[String]) -> Result<Vec<SerialPresence>, StoreError> {
        // One snapshot for every chunk. Each serial is probed through abm_devices_serial;
        // `present` is NULL when no entry has it, else whether some entry has it unremoved.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(backend)?;
        no_jit(&mut tx).await?;
        let mut known: HashMap<String, bool> = HashMap::with_capacity(serials.len());
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            let rows = sqlx::query(
                "SELECT s.serial, (SELECT bool_or(d.removed_at IS NULL) FROM abm_devices d \
                 WHERE d.serial_number = s.serial) AS present \
                 FROM unnest($1::text[]) AS s(serial)",
            )
            .bind(chunk)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            for row in rows {
                let present: Option<bool> = row.try_get("present").map_err(backend)?;
                if let Some(present) = present {
                    known.insert(row.try_get("serial").map_err(backend)?, present);
                }
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
        // REPEATABLE READ: every read of the transaction sees one snapshot.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(backend)?;
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
impl AssignmentStateStore for PostgresStore {
    async fn assignment_inputs(
        &self,
        entry_id: Uuid,
        after: Option<&str>,
        limit: u32,
        only: Option<&[String]>,
    ) -> Result<Vec<AssignmentInput>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(backend)?;
        // The page must come from walking the primary key in order. Before the first ANALYZE
        // of a freshly synced entry the planner expects a handful of rows and prefers reading
        // the entry's whole remaining range and sorting it, which makes a pass quadratic: no
        // sorting in this (read-only) transaction, and no JIT (see [`no_jit`]).
        sqlx::query(
            "SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true)",
        )
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // The page of present devices, then each one's explicit profile and record through
        // their keys. The LIMITs keep PostgreSQL from merging whole tables (which it prefers
        // before the first ANALYZE): every join is a probe, a page costs `limit` of them.
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {D_DEVICE_COLUMNS}, p.profile_id AS explicit_profile, {R_RECORD_COLUMNS} \
             FROM (SELECT * FROM abm_devices WHERE entry_id = "
        ));
        q.push_bind(entry_id).push(" AND removed_at IS NULL");
        if let Some(after) = after {
            q.push(" AND serial_number > ").push_bind(after);
        }
        if let Some(only) = only {
            if only.is_empty() {
                return Ok(Vec::new());
            }
            q.push(" AND serial_number = ANY(")
                .push_bind(only.to_vec())
                .push("::text[])");
        }
        q.push(" ORDER BY serial_number LIMIT ")
            .push_bind(i64::from(limit))
            .push(format_args!(
                ") d \
                 LEFT JOIN LATERAL (SELECT profile_id FROM device_profiles \
                                    WHERE serial_number = d.serial_number LIMIT 1) p ON true \
                 LEFT JOIN LATERAL (SELECT {RECORD_COLUMNS} FROM abm_device_assignments \
                                    WHERE entry_id = d.entry_id \
                                    AND serial_number = d.serial_number LIMIT 1) a ON true \
                 ORDER BY d.serial_number"
            ));
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
        // Their static groups: each serial probed through device_group_members_serial (the
        // groups table is left out of that join, so no plan can walk memberships group by
        // group; only static groups have members, checked against the few group ids).
        let static_ids: HashSet<Uuid> =
            sqlx::query_scalar("SELECT id FROM device_groups WHERE rule IS NULL")
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?
                .into_iter()
                .collect();
        let mut groups: HashMap<String, Vec<Uuid>> = HashMap::new();
        let serials: Vec<&str> = inputs
            .iter()
            .map(|i| i.device.device.serial_number.as_str())
            .collect();
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            let rows = sqlx::query(
                "SELECT s.serial AS serial_number, m.group_id FROM unnest($1::text[]) AS s(serial) \
                 CROSS JOIN LATERAL (SELECT group_id FROM device_group_members \
                                     WHERE serial_number = s.serial OFFSET 0) m",
            )
            .bind(chunk)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            for row in rows {
                let serial: String = row.try_get("serial_number").map_err(backend)?;
                let group: Uuid = row.try_get("group_id").map_err(backend)?;
                if static_ids.contains(&group) {
                    groups.entry(serial).or_default().push(group);
                }
            }
        }
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
        entry_id: Uuid,
        filter: &InputFilter,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT serial_number FROM abm_devices \
             WHERE entry_id = $1 AND updated_at > $2 AND removed_at IS NULL \
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
        )
        .bind(entry_id)
        .bind(filter.changed_after)
        .bind(filter.due_by)
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
        // One record per serial: one statement may not upsert a row twice.
        let records = last_per_serial(records);
        let mut tx = self.write_tx().await?;
        no_jit(&mut tx).await?;
        // One array per column: a chunk is one statement with 12 parameters (100,000 records
        // took 1.8 s so, 10 s as VALUES lists of 500 bound rows).
        for chunk in records.chunks(SERIALS_PER_STATEMENT) {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO abm_device_assignments (entry_id, {RECORD_COLUMNS}) \
                 SELECT $1, * FROM unnest($2::text[], $3::uuid[], $4::bigint[], $5::text[], \
                 $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bigint[], \
                 $11::text[], $12::timestamptz[]) \
                 ON CONFLICT (entry_id, serial_number) DO UPDATE SET \
                 profile_id = excluded.profile_id, profile_version = excluded.profile_version, \
                 rule = excluded.rule, state = excluded.state, apple_uuid = excluded.apple_uuid, \
                 attempted_at = excluded.attempted_at, retry_at = excluded.retry_at, \
                 attempts = excluded.attempts, last_error = excluded.last_error, \
                 updated_at = excluded.updated_at"
            )))
            .bind(entry_id)
            .bind(
                chunk
                    .iter()
                    .map(|r| r.serial_number.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.profile_id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.profile_version).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.rule.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.state.as_str()).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.apple_uuid.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.attempted_at).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.retry_at).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.attempts).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.last_error.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.updated_at).collect::<Vec<_>>())
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
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(backend)?;
        no_jit(&mut tx).await?;
        let mut records = Vec::new();
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            // Each serial probed through the primary key (LIMIT 1: a probe, never a merge).
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT a.* FROM unnest($2::text[]) AS s(serial) \
                 CROSS JOIN LATERAL (SELECT {RECORD_COLUMNS} FROM abm_device_assignments \
                                     WHERE entry_id = $1 AND serial_number = s.serial \
                                     LIMIT 1) a"
            )))
            .bind(entry_id)
            .bind(chunk)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
            for row in &rows {
                records.push(record_from_row(row, "")?);
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
        let done = sqlx::query(
            "UPDATE abm_device_assignments a SET state = 'removed', updated_at = $1 \
             FROM abm_devices d \
             WHERE a.entry_id = $2 AND a.state <> 'removed' \
             AND d.entry_id = a.entry_id AND d.serial_number = a.serial_number \
             AND d.removed_at IS NOT NULL",
        )
        .bind(at)
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
            "SELECT state, COUNT(*) AS n FROM abm_device_assignments WHERE entry_id = $1 \
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
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (entry_id) DO UPDATE SET \
             generation = $2, finished_at = $3, summary = $4, error = $5",
        )
        .bind(pass.entry_id)
        .bind(pass.generation)
        .bind(pass.finished_at)
        .bind(&pass.summary)
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
             WHERE entry_id = $1",
        )
        .bind(entry_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(AssignmentPass {
            entry_id: row.try_get("entry_id").map_err(backend)?,
            generation: row.try_get("generation").map_err(backend)?,
            finished_at: row.try_get("finished_at").map_err(backend)?,
            summary: row.try_get("summary").map_err(backend)?,
            error: row.try_get("error").map_err(backend)?,
        }))
    }
}

/// Turns JIT compilation off for the rest of the transaction. Bulk statements here probe an
/// index once per serial; before the first ANALYZE PostgreSQL expects hundreds of rows per probe
/// and JIT-compiles the statement, which costs several times more than running it.
async fn no_jit(tx: &mut Tx) -> Result<(), StoreError> {
    sqlx::query("SET LOCAL jit = off")
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Bumps the assignment generation: every configuration change does, first thing in its
/// transaction. The row lock it takes serialises configuration changes.
async fn bump_generation(tx: &mut Tx) -> Result<(), StoreError> {
    sqlx::query("UPDATE assignment_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

async fn generation(conn: &mut PgConnection) -> Result<i64, StoreError> {
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
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(version)
    .bind(spec)
    .bind(&audit.actor)
    .bind(audit.at)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn profile_by_id(tx: &mut Tx, id: Uuid) -> Result<AdeProfile, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{PROFILE_SELECT} WHERE p.id = $1"
    )))
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    profile_from_row(&row)
}

async fn all_profiles(conn: &mut PgConnection) -> Result<Vec<AdeProfile>, StoreError> {
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
        "{GROUP_SELECT} WHERE g.id = $1"
    )))
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    group_from_row(&row)
}

async fn all_groups(conn: &mut PgConnection) -> Result<Vec<DeviceGroup>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{GROUP_SELECT} ORDER BY g.name"
    )))
    .fetch_all(conn)
    .await
    .map_err(backend)?;
    rows.iter().map(group_from_row).collect()
}

async fn all_os_defaults(conn: &mut PgConnection) -> Result<Vec<OsDefault>, StoreError> {
    let rows = sqlx::query("SELECT os, profile_id, updated_at FROM ade_os_defaults ORDER BY os")
        .fetch_all(conn)
        .await
        .map_err(backend)?;
    rows.iter()
        .map(|row| {
            Ok(OsDefault {
                os: row.try_get("os").map_err(backend)?,
                profile_id: row.try_get("profile_id").map_err(backend)?,
                updated_at: row.try_get("updated_at").map_err(backend)?,
            })
        })
        .collect()
}

/// Where a profile is used.
async fn references(conn: &mut PgConnection, id: Uuid) -> Result<ProfileReferences, StoreError> {
    let os_defaults =
        sqlx::query_scalar("SELECT os FROM ade_os_defaults WHERE profile_id = $1 ORDER BY os")
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
    let groups =
        sqlx::query_scalar("SELECT name FROM device_groups WHERE profile_id = $1 ORDER BY name")
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
    let devices: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM device_profiles WHERE profile_id = $1")
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
    let row =
        sqlx::query("SELECT name, rule IS NULL AS is_static FROM device_groups WHERE id = $1")
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

/// The serials without repeats, in first-seen order.
fn distinct(serials: &[String]) -> Vec<&str> {
    let mut seen = HashSet::with_capacity(serials.len());
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

fn profile_from_row(row: &PgRow) -> Result<AdeProfile, StoreError> {
    Ok(AdeProfile {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        version: row.try_get("version").map_err(backend)?,
        spec: row.try_get("spec").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        updated_at: row.try_get("updated_at").map_err(backend)?,
    })
}

fn group_from_row(row: &PgRow) -> Result<DeviceGroup, StoreError> {
    let members: i64 = row.try_get("member_count").map_err(backend)?;
    Ok(DeviceGroup {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        rule: row.try_get("rule").map_err(backend)?,
        profile_id: row.try_get("profile_id").map_err(backend)?,
        priority: row.try_get("priority").map_err(backend)?,
        member_count: u64::try_from(members).unwrap_or(0),
        created_at: row.try_get("created_at").map_err(backend)?,
        updated_at: row.try_get("updated_at").map_err(backend)?,
    })
}

fn definition_from_row(row: &PgRow) -> Result<ProfileDefinition, StoreError> {
    Ok(ProfileDefinition {
        entry_id: row.try_get("entry_id").map_err(backend)?,
        profile_id: row.try_get("profile_id").map_err(backend)?,
        version: row.try_get("version").map_err(backend)?,
        apple_uuid: row.try_get("apple_uuid").map_err(backend)?,
        defined_at: row.try_get("defined_at").map_err(backend)?,
    })
}

/// A record from columns named `{prefix}{column}`.
fn record_from_row(row: &PgRow, prefix: &str) -> Result<AssignmentRecord, StoreError> {
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
        attempted_at: row.try_get(col("attempted_at").as_str()).map_err(backend)?,
        retry_at: row.try_get(col("retry_at").as_str()).map_err(backend)?,
        attempts: row.try_get(col("attempts").as_str()).map_err(backend)?,
        last_error: row.try_get(col("last_error").as_str()).map_err(backend)?,
        updated_at: row.try_get(col("updated_at").as_str()).map_err(backend)?,
    })
}

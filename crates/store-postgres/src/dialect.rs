//! PostgreSQL's side of the shared SQL in `crates/store-sql`: the driver's types and how a
//! timestamp is stored.

use std::collections::HashMap;

use guardmdm_store::devices::removed_at;
use guardmdm_store::{AbmDevice, EntryId, PageWrite, StoreError};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, PgPool, Postgres, Type};
use time::OffsetDateTime;

use crate::common::{backend, get};

/// The name `Backend::backend_name` reports.
pub(crate) const NAME: &str = "postgres";

pub(crate) type Db = Postgres;
pub(crate) type DbRow = sqlx::postgres::PgRow;
pub(crate) type Tx = sqlx::Transaction<'static, Postgres>;

/// A timestamp as PostgreSQL stores it: `TIMESTAMPTZ` (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ts(pub OffsetDateTime);

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <OffsetDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl PgHasArrayType for Ts {
    fn array_type_info() -> PgTypeInfo {
        <OffsetDateTime as PgHasArrayType>::array_type_info()
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <OffsetDateTime as Decode<'r, Postgres>>::decode(value).map(Ts)
    }
}

/// Appended to a `SELECT` of a row about to be updated in the same transaction: locks the row,
/// so a concurrent transaction reads it only once this one committed.
pub(crate) const FOR_UPDATE: &str = " FOR UPDATE";

// ---- devices ----

/// The assignment records `a` joined with their devices `d`. A lateral probe per record: the
/// planner otherwise hashes the whole device table for a page of a rare state.
pub(crate) const DEVICES_OF_ASSIGNMENTS: &str = "FROM abm_device_assignments a CROSS JOIN LATERAL \
     (SELECT * FROM abm_devices WHERE entry_id = a.entry_id \
      AND serial_number = a.serial_number LIMIT 1) d";

/// The page's serials that are stored already, with whether they are removed.
///
/// One array parameter probed serial by serial through the primary key: an `IN (…)` list of
/// hundreds of parameters gets a cached plan that scans the whole entry until the table is
/// first analyzed, which made the first minute of a large initial sync quadratic.
pub(crate) async fn stored_serials(
    tx: &mut Tx,
    entry_id: EntryId,
    devices: &[AbmDevice],
) -> Result<HashMap<String, bool>, StoreError> {
    let serials: Vec<&str> = devices.iter().map(|d| d.serial_number.as_str()).collect();
    let rows = sqlx::query(
        "SELECT s.serial AS serial_number, d.removed \
         FROM unnest($2::text[]) AS s(serial) \
         CROSS JOIN LATERAL (SELECT removed_at IS NOT NULL AS removed FROM abm_devices \
                             WHERE entry_id = $1 AND serial_number = s.serial LIMIT 1) d",
    )
    .bind(entry_id.get())
    .bind(&serials)
    .fetch_all(&mut **tx)
    .await
    .map_err(backend)?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in rows {
        stored.insert(get(&row, "serial_number")?, get(&row, "removed")?);
    }
    Ok(stored)
}

/// `SELECT` of the entry's (`$1`) staged records for a merge at `$2`, in serial order.
/// PostgreSQL refuses to upsert one row twice in a statement, so a serial staged twice
/// keeps its last record.
pub(crate) fn staged_in_serial_order(columns: &str) -> String {
    format!(
        "SELECT DISTINCT ON (serial_number) {columns}, $2::timestamptz, $2::timestamptz \
         FROM abm_device_stage WHERE entry_id = $1 ORDER BY serial_number, seq DESC"
    )
}

/// Appends a page's records to the staging area: one statement with an array per column.
/// A multi-row `VALUES` of 18,000 parameters cost PostgreSQL 36 ms a page to parse and plan;
/// `unnest` of 18 arrays is one small plan.
pub(crate) async fn stage_devices(tx: &mut Tx, page: &PageWrite<'_>) -> Result<(), StoreError> {
    let d = page.devices;
    let text = |f: fn(&AbmDevice) -> &Option<String>| -> Vec<Option<&str>> {
        d.iter().map(|x| f(x).as_deref()).collect()
    };
    let time = |f: fn(&AbmDevice) -> Option<OffsetDateTime>| -> Vec<Option<Ts>> {
        d.iter().map(|x| f(x).map(Ts)).collect()
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO abm_device_stage ({}) \
         SELECT $1, u.*, $18 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[], \
         $12::text[], $13::timestamptz[], $14::timestamptz[], $15::text[], $16::timestamptz[], \
         $17::timestamptz[]) AS u",
        crate::devices::STAGE_COLUMNS
    )))
    .bind(page.entry_id.get())
    .bind(
        d.iter()
            .map(|x| x.serial_number.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(d.iter().map(|x| x.model.as_str()).collect::<Vec<_>>())
    .bind(text(|x| &x.description))
    .bind(text(|x| &x.color))
    .bind(text(|x| &x.asset_tag))
    .bind(text(|x| &x.device_family))
    .bind(text(|x| &x.os))
    .bind(text(|x| &x.device_assigned_by))
    .bind(time(|x| x.device_assigned_date))
    .bind(text(|x| &x.profile_status))
    .bind(text(|x| &x.profile_uuid))
    .bind(time(|x| x.profile_assign_time))
    .bind(time(|x| x.profile_push_time))
    .bind(text(|x| &x.op_type))
    .bind(time(|x| x.op_date))
    .bind(
        d.iter()
            .map(|x| removed_at(x, page.at).map(Ts))
            .collect::<Vec<_>>(),
    )
    .bind(page.state.generation)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Run at the start of a merge's transaction: memory for sorting the staged records by serial
/// in one pass instead of through temporary files (`work_mem` is 4 MB by default), for this
/// transaction only.
pub(crate) const BEFORE_MERGE: Option<&str> = Some("SET LOCAL work_mem = '128MB'");

/// Run after a merge committed: fresh statistics for the device table, which may have grown
/// from nothing to a million rows at once. Until autovacuum's next analyze (a minute or more
/// later) the planner would otherwise plan the device list's first page for an empty table:
/// 100 ms instead of 3 ms at a million devices. It reads a sample (30,000 rows), not the table.
pub(crate) const AFTER_MERGE: Option<&str> = Some("ANALYZE abm_devices");

/// Locks the staging table before a merge checks whether other entries staged, so that none
/// stages between the check and [`EMPTY_STAGE`].
pub(crate) const LOCK_STAGE: Option<&str> =
    Some("LOCK TABLE abm_device_stage IN SHARE ROW EXCLUSIVE MODE");

/// Empties the whole staging table when no other entry staged: no dead rows left for vacuum.
pub(crate) const EMPTY_STAGE: &str = "TRUNCATE abm_device_stage";

/// Each serial's latest enrollment: `serial_number`, `status`, `last_seen_at`.
pub(crate) async fn latest_enrollments(
    pool: &PgPool,
    serials: &[String],
) -> Result<Vec<DbRow>, StoreError> {
    sqlx::query(
        "SELECT DISTINCT ON (serial_number) serial_number, status, last_seen_at \
         FROM mdm_enrollments WHERE serial_number = ANY($1) \
         ORDER BY serial_number, last_seen_at DESC",
    )
    .bind(serials)
    .fetch_all(pool)
    .await
    .map_err(backend)
}

// ---- admins ----

/// The advisory lock class of sign-in reservations per name (the key is the name's hash).
const SIGN_IN_NAME_LOCK: i32 = 0x5349_4e31; // "SIN1"
/// The advisory lock class of sign-in reservations per client address.
const SIGN_IN_CLIENT_LOCK: i32 = 0x5349_4e32; // "SIN2"

/// The transaction of a sign-in reservation (`AdminStore::reserve_sign_in_attempt`): the
/// count of recent failures and the insert of the new one must not interleave with another
/// reservation's. Reservations for one name, and from one client, take turns across every
/// instance: transaction-scoped advisory locks, always the name's before the client's, so two
/// reservations never wait on each other in a cycle. Each statement after the locks reads
/// what the previous holder committed (READ COMMITTED).
pub(crate) async fn sign_in_reservation_tx(
    store: &crate::DbStore,
    name: &str,
    client: &str,
) -> Result<Tx, StoreError> {
    let mut tx = store.write_tx().await?;
    for (class, key) in [(SIGN_IN_NAME_LOCK, name), (SIGN_IN_CLIENT_LOCK, client)] {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(class)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    Ok(tx)
}

// ---- assignment ----

/// The assignment store's queries (`crates/store-sql/assignment.rs`) that PostgreSQL runs its own way.
pub(crate) mod assignment {
    use std::collections::{HashMap, HashSet};

    use guardmdm_store::{AssignmentRecord, EntryId, GroupId, ProfileId, StoreError};
    use sqlx::{Postgres, QueryBuilder, Row};
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::{DbRow, Ts, Tx};
    use crate::assignment::{R_RECORD_COLUMNS, RECORD_COLUMNS, RECORD_UPSERT, missing_reference};
    use crate::common::{backend, get_id};
    use crate::devices::D_DEVICE_COLUMNS;

    /// Serials (or records) per statement, each column one array parameter
    /// (`unnest($n::text[])`): chunked only to keep each statement's work bounded.
    const SERIALS_PER_STATEMENT: usize = 5_000;

    /// The devices an incremental pass finds by their change time (`d`).
    pub(crate) const CHANGED_DEVICES: &str = "abm_devices d";

    /// Marks the records of entry $2's removed devices (at $1).
    pub(crate) const MARK_REMOVED_SQL: &str = "UPDATE abm_device_assignments a \
         SET state = 'removed', updated_at = $1 \
         FROM abm_devices d \
         WHERE a.entry_id = $2 AND a.state <> 'removed' \
         AND d.entry_id = a.entry_id AND d.serial_number = a.serial_number \
         AND d.removed_at IS NOT NULL";

    /// A transaction whose reads all see one snapshot: REPEATABLE READ, read-only.
    pub(crate) async fn read_snapshot(pool: &sqlx::Pool<Postgres>) -> Result<Tx, StoreError> {
        pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(backend)
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

    /// Adds serials to a group's members; how many were new.
    pub(crate) async fn add_group_members(
        tx: &mut Tx,
        group_id: GroupId,
        serials: &[String],
    ) -> Result<u64, StoreError> {
        no_jit(tx).await?;
        let mut added = 0;
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            added += sqlx::query(
                "INSERT INTO device_group_members (group_id, serial_number) \
                 SELECT $1, s.serial FROM unnest($2::text[]) AS s(serial) \
                 ON CONFLICT (group_id, serial_number) DO NOTHING",
            )
            .bind(group_id.get())
            .bind(chunk)
            .execute(&mut **tx)
            .await
            .map_err(backend)?
            .rows_affected();
        }
        Ok(added)
    }

    /// Removes serials from a group's members; how many were members.
    pub(crate) async fn remove_group_members(
        tx: &mut Tx,
        group_id: GroupId,
        serials: &[String],
    ) -> Result<u64, StoreError> {
        no_jit(tx).await?;
        let mut removed = 0;
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            removed += sqlx::query(
                "DELETE FROM device_group_members m USING unnest($2::text[]) AS s(serial) \
                 WHERE m.group_id = $1 AND m.serial_number = s.serial",
            )
            .bind(group_id.get())
            .bind(chunk)
            .execute(&mut **tx)
            .await
            .map_err(backend)?
            .rows_affected();
        }
        Ok(removed)
    }

    /// Sets (or with `None` clears) the explicit profile of distinct serials; how many changed.
    pub(crate) async fn set_device_profiles(
        tx: &mut Tx,
        serials: &[&str],
        profile_id: Option<ProfileId>,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        no_jit(tx).await?;
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
                .bind(profile_id.get())
                .bind(Ts(at))
                .execute(&mut **tx)
                .await
                .map_err(missing_reference)?,
                None => sqlx::query(
                    "DELETE FROM device_profiles p USING unnest($1::text[]) AS s(serial) \
                     WHERE p.serial_number = s.serial",
                )
                .bind(chunk)
                .execute(&mut **tx)
                .await
                .map_err(backend)?,
            };
            changed += done.rows_affected();
        }
        Ok(changed)
    }

    /// The known serials among `serials`, each with whether some entry has it unremoved. Each
    /// serial is probed through abm_devices_serial; `present` is NULL when no entry has it.
    pub(crate) async fn serial_presence(
        tx: &mut Tx,
        serials: &[String],
    ) -> Result<HashMap<String, bool>, StoreError> {
        no_jit(tx).await?;
        let mut known = HashMap::with_capacity(serials.len());
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            let rows = sqlx::query(
                "SELECT s.serial, (SELECT bool_or(d.removed_at IS NULL) FROM abm_devices d \
                 WHERE d.serial_number = s.serial) AS present \
                 FROM unnest($1::text[]) AS s(serial)",
            )
            .bind(chunk)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
            for row in rows {
                let present: Option<bool> = row.try_get("present").map_err(backend)?;
                if let Some(present) = present {
                    known.insert(row.try_get("serial").map_err(backend)?, present);
                }
            }
        }
        Ok(known)
    }

    /// A page of an entry's present devices (`D_DEVICE_COLUMNS`), each with its explicit profile
    /// (`explicit_profile`) and record (`R_RECORD_COLUMNS`). `only`, when given, is not empty.
    ///
    /// The page must come from walking the primary key in order. Before the first ANALYZE of a
    /// freshly synced entry the planner expects a handful of rows and prefers reading the entry's
    /// whole remaining range and sorting it, which makes a pass quadratic: no sorting in the rest
    /// of this (read-only) transaction, and no JIT (see [`no_jit`]). The LIMITs keep PostgreSQL
    /// from merging whole tables (which it prefers before the first ANALYZE): every join is a
    /// probe, a page costs `limit` of them.
    pub(crate) async fn assignment_input_page(
        tx: &mut Tx,
        entry_id: EntryId,
        after: Option<&str>,
        limit: u32,
        only: Option<&[String]>,
    ) -> Result<Vec<DbRow>, StoreError> {
        sqlx::query(
            "SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true)",
        )
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {D_DEVICE_COLUMNS}, p.profile_id AS explicit_profile, {R_RECORD_COLUMNS} \
             FROM (SELECT * FROM abm_devices WHERE entry_id = "
        ));
        q.push_bind(entry_id.get()).push(" AND removed_at IS NULL");
        if let Some(after) = after {
            q.push(" AND serial_number > ").push_bind(after);
        }
        if let Some(only) = only {
            q.push(" AND serial_number = ANY(")
                .push_bind(only)
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
        q.build().fetch_all(&mut **tx).await.map_err(backend)
    }

    /// The static groups of each of `serials` that has any: each serial probed through
    /// device_group_members_serial (the groups table is left out of that join, so no plan can walk
    /// memberships group by group; only static groups have members, checked against the few group
    /// ids).
    pub(crate) async fn static_groups_of(
        tx: &mut Tx,
        serials: &[&str],
    ) -> Result<HashMap<String, Vec<GroupId>>, StoreError> {
        let static_ids: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM device_groups WHERE rule IS NULL")
                .fetch_all(&mut **tx)
                .await
                .map_err(backend)?;
        let static_ids: HashSet<GroupId> =
            static_ids.into_iter().map(GroupId::from_inner).collect();
        let mut groups: HashMap<String, Vec<GroupId>> = HashMap::new();
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            let rows = sqlx::query(
                "SELECT s.serial AS serial_number, m.group_id FROM unnest($1::text[]) AS s(serial) \
                 CROSS JOIN LATERAL (SELECT group_id FROM device_group_members \
                                     WHERE serial_number = s.serial OFFSET 0) m",
            )
            .bind(chunk)
            .fetch_all(&mut **tx)
            .await
            .map_err(backend)?;
            for row in rows {
                let serial: String = row.try_get("serial_number").map_err(backend)?;
                let group = get_id(&row, "group_id")?;
                if static_ids.contains(&group) {
                    groups.entry(serial).or_default().push(group);
                }
            }
        }
        Ok(groups)
    }

    /// Inserts or replaces an entry's records (one per serial). One array per column: a chunk is
    /// one statement with 12 parameters (100,000 records took 1.8 s so, 10 s as VALUES lists of
    /// 500 bound rows).
    pub(crate) async fn upsert_assignments(
        tx: &mut Tx,
        entry_id: EntryId,
        records: &[&AssignmentRecord],
    ) -> Result<(), StoreError> {
        no_jit(tx).await?;
        for chunk in records.chunks(SERIALS_PER_STATEMENT) {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO abm_device_assignments (entry_id, {RECORD_COLUMNS}) \
                 SELECT $1, * FROM unnest($2::text[], $3::uuid[], $4::bigint[], $5::text[], \
                 $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bigint[], \
                 $11::text[], $12::timestamptz[]){RECORD_UPSERT}"
            )))
            .bind(entry_id.get())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.serial_number.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|r| r.profile_id.map(ProfileId::get))
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.profile_version).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.rule.as_text()).collect::<Vec<_>>())
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
            .execute(&mut **tx)
            .await
            .map_err(missing_reference)?;
        }
        Ok(())
    }

    /// The records (`RECORD_COLUMNS`) of distinct serials in an entry, in no particular order:
    /// each serial probed through the primary key (LIMIT 1: a probe, never a merge).
    pub(crate) async fn assignment_rows(
        tx: &mut Tx,
        entry_id: EntryId,
        serials: &[&str],
    ) -> Result<Vec<DbRow>, StoreError> {
        no_jit(tx).await?;
        let mut rows = Vec::new();
        for chunk in serials.chunks(SERIALS_PER_STATEMENT) {
            rows.extend(
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT a.* FROM unnest($2::text[]) AS s(serial) \
                     CROSS JOIN LATERAL (SELECT {RECORD_COLUMNS} FROM abm_device_assignments \
                                         WHERE entry_id = $1 AND serial_number = s.serial \
                                         LIMIT 1) a"
                )))
                .bind(entry_id.get())
                .bind(chunk)
                .fetch_all(&mut **tx)
                .await
                .map_err(backend)?,
            );
        }
        Ok(rows)
    }
}

// ---- mdm ----

/// Marks the device's oldest queued command `sent` and returns it (`COMMAND_COLUMNS`).
/// The subquery is one probe into mdm_commands_queue at (udid, 'queued'). It locks the row
/// it picks and skips rows a concurrent caller holds, so two callers never take the same
/// command; the outer status check is the second guard.
pub(crate) async fn mdm_take_next_command(
    tx: &mut Tx,
    udid: &str,
    at: OffsetDateTime,
) -> Result<Option<DbRow>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE mdm_commands SET status = 'sent', updated_at = $1 WHERE uuid = \
         (SELECT uuid FROM mdm_commands WHERE udid = $2 AND status = 'queued' \
          ORDER BY created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED) \
         AND status = 'queued' RETURNING {}",
        crate::mdm::COMMAND_COLUMNS
    )))
    .bind(at)
    .bind(udid)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)
}

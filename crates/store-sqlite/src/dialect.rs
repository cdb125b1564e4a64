//! SQLite's side of the shared SQL in `crates/store-sql`: the driver's types, how a write
//! transaction begins, and how a timestamp is stored.

use std::collections::HashMap;

use guardmdm_store::{AbmDevice, EntryId, PageWrite, StoreError};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, QueryBuilder, Sqlite, SqlitePool, Type};
use time::OffsetDateTime;

use crate::common::{backend, get};

/// The name `Backend::backend_name` reports.
pub(crate) const NAME: &str = "sqlite";

pub(crate) type Db = Sqlite;
pub(crate) type DbRow = sqlx::sqlite::SqliteRow;
/// A write transaction: begun with `BEGIN IMMEDIATE` (see `SqliteStore::write_tx`).
pub(crate) type Tx = sqlx::Transaction<'static, Sqlite>;

/// A timestamp as SQLite stores it: integer microseconds since the Unix epoch, which sorts
/// and compares like the time it stands for and keeps PostgreSQL's precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ts(pub OffsetDateTime);

impl Ts {
    fn micros(self) -> i64 {
        i64::try_from(self.0.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
    }
}

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'_, Sqlite>>::encode(self.micros(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Ts {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let us = <i64 as Decode<'r, Sqlite>>::decode(value)?;
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
            .map(Ts)
            .map_err(|e| format!("timestamp {us} µs: {e}").into())
    }
}

/// Appended to a `SELECT` of a row about to be updated in the same transaction: nothing on
/// SQLite, whose write transaction holds the database's write lock already.
pub(crate) const FOR_UPDATE: &str = "";

// ---- devices ----

/// The assignment records `a` joined with their devices `d`, each found by its key.
pub(crate) const DEVICES_OF_ASSIGNMENTS: &str = "FROM abm_device_assignments a JOIN abm_devices d \
     ON d.entry_id = a.entry_id AND d.serial_number = a.serial_number";

/// Serials per `IN (…)` list: well under SQLite's 32,766 parameters.
const SERIALS_PER_LIST: usize = 500;

/// Binds `chunk` as the rest of an `IN (` list and closes it.
fn push_serials<S: AsRef<str>>(q: &mut QueryBuilder<Sqlite>, chunk: &[S]) {
    let mut list = q.separated(", ");
    for serial in chunk {
        list.push_bind(serial.as_ref());
    }
    q.push(")");
}

/// The page's serials that are stored already, with whether they are removed.
pub(crate) async fn stored_serials(
    tx: &mut Tx,
    entry_id: EntryId,
    devices: &[AbmDevice],
) -> Result<HashMap<String, bool>, StoreError> {
    let mut stored = HashMap::with_capacity(devices.len());
    for chunk in devices.chunks(SERIALS_PER_LIST) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT serial_number, removed_at IS NOT NULL AS removed FROM abm_devices \
             WHERE entry_id = ",
        );
        q.push_bind(entry_id.get()).push(" AND serial_number IN (");
        let serials: Vec<&str> = chunk.iter().map(|d| d.serial_number.as_str()).collect();
        push_serials(&mut q, &serials);
        for row in q.build().fetch_all(&mut **tx).await.map_err(backend)? {
            stored.insert(get(&row, "serial_number")?, get(&row, "removed")?);
        }
    }
    Ok(stored)
}

/// `SELECT` of the entry's (`$1`) staged records for a merge at `$2`, in serial order. SQLite
/// applies an `INSERT … SELECT` row by row, so a serial staged twice is upserted twice, in
/// the order it was staged.
pub(crate) fn staged_in_serial_order(columns: &str) -> String {
    format!(
        "SELECT {columns}, $2, $2 FROM abm_device_stage WHERE entry_id = $1 \
         ORDER BY serial_number, seq"
    )
}

/// Appends a page's records to the staging area: multi-row `VALUES`, 500 rows (9,000 values)
/// a statement.
pub(crate) async fn stage_devices(tx: &mut Tx, page: &PageWrite<'_>) -> Result<(), StoreError> {
    for chunk in page.devices.chunks(SERIALS_PER_LIST) {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "INSERT INTO abm_device_stage ({}) ",
            crate::devices::STAGE_COLUMNS
        ));
        q.push_values(chunk, |mut row, d| {
            crate::devices::push_record(&mut row, page, d);
        });
        q.build().execute(&mut **tx).await.map_err(backend)?;
    }
    Ok(())
}

/// Run at the start of a merge's transaction: nothing on SQLite.
pub(crate) const BEFORE_MERGE: Option<&str> = None;

/// Run after a merge committed: nothing on SQLite, whose plans here name their indexes or need
/// no statistics.
pub(crate) const AFTER_MERGE: Option<&str> = None;

/// Locks the staging table before a merge checks whether other entries staged: nothing on
/// SQLite, whose write transaction is the only writer already.
pub(crate) const LOCK_STAGE: Option<&str> = None;

/// Empties the whole staging table when no other entry staged: SQLite frees the pages of a
/// `DELETE` without `WHERE` instead of rewriting each one.
pub(crate) const EMPTY_STAGE: &str = "DELETE FROM abm_device_stage";

/// Each serial's latest enrollment: `serial_number`, `status`, `last_seen_at`.
pub(crate) async fn latest_enrollments(
    pool: &SqlitePool,
    serials: &[String],
) -> Result<Vec<DbRow>, StoreError> {
    let mut out = Vec::new();
    for chunk in serials.chunks(SERIALS_PER_LIST) {
        // SQLite takes the other columns from the row that holds the MAX.
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT serial_number, status, MAX(last_seen_at) AS last_seen_at \
             FROM mdm_enrollments WHERE serial_number IN (",
        );
        push_serials(&mut q, chunk);
        q.push(" GROUP BY serial_number");
        out.extend(q.build().fetch_all(pool).await.map_err(backend)?);
    }
    Ok(out)
}

// ---- admins ----

/// The transaction of a sign-in reservation (`AdminStore::reserve_sign_in_attempt`): the
/// count of recent failures and the insert of the new one must not interleave with another
/// reservation's. `BEGIN IMMEDIATE` makes it the one writer, in this process or another on
/// the same file, so the name and the client need no lock of their own.
pub(crate) async fn sign_in_reservation_tx(
    store: &crate::DbStore,
    _name: &str,
    _client: &str,
) -> Result<Tx, StoreError> {
    store.write_tx().await
}

// ---- assignment ----

/// The assignment store's queries (`crates/store-sql/assignment.rs`) that SQLite runs its own way.
pub(crate) mod assignment {
    use std::collections::HashMap;

    use guardmdm_store::{AssignmentRecord, EntryId, GroupId, ProfileId, StoreError};
    use sqlx::{QueryBuilder, Row, Sqlite};
    use time::OffsetDateTime;

    use super::{DbRow, SERIALS_PER_LIST, Ts, Tx, push_serials};
    use crate::assignment::{R_RECORD_COLUMNS, RECORD_COLUMNS, RECORD_UPSERT, missing_reference};
    use crate::common::{backend, get_id};
    use crate::devices::D_DEVICE_COLUMNS;

    /// The devices an incremental pass finds by their change time (`d`): through the entry's
    /// index of change times, which SQLite would otherwise pass over for the primary key.
    pub(crate) const CHANGED_DEVICES: &str = "abm_devices d INDEXED BY abm_devices_entry_updated";

    /// Marks the records of entry $2's removed devices (at $1), driven by those devices (few,
    /// through their partial index: without `INDEXED BY` SQLite reads every device of the entry by
    /// its primary key), each record found by its key.
    pub(crate) const MARK_REMOVED_SQL: &str = "UPDATE abm_device_assignments SET state = 'removed', \
         updated_at = $1 WHERE entry_id = $2 AND state <> 'removed' AND serial_number IN \
         (SELECT serial_number FROM abm_devices INDEXED BY abm_devices_entry_removed \
          WHERE entry_id = $2 AND removed_at IS NOT NULL)";

    /// A transaction whose reads all see one snapshot (in WAL mode, any read transaction).
    pub(crate) async fn read_snapshot(pool: &sqlx::Pool<Sqlite>) -> Result<Tx, StoreError> {
        pool.begin().await.map_err(backend)
    }

    /// Adds serials to a group's members; how many were new.
    pub(crate) async fn add_group_members(
        tx: &mut Tx,
        group_id: GroupId,
        serials: &[String],
    ) -> Result<u64, StoreError> {
        let mut added = 0;
        for chunk in serials.chunks(SERIALS_PER_LIST) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO device_group_members (group_id, serial_number) ",
            );
            q.push_values(chunk, |mut row, serial| {
                row.push_bind(group_id.get()).push_bind(serial.as_str());
            });
            q.push(" ON CONFLICT (group_id, serial_number) DO NOTHING");
            added += q
                .build()
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
        let mut removed = 0;
        for chunk in serials.chunks(SERIALS_PER_LIST) {
            let mut q =
                QueryBuilder::<Sqlite>::new("DELETE FROM device_group_members WHERE group_id = ");
            q.push_bind(group_id.get()).push(" AND serial_number IN (");
            push_serials(&mut q, chunk);
            removed += q
                .build()
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
        let mut changed = 0;
        for chunk in serials.chunks(SERIALS_PER_LIST) {
            let done = match profile_id {
                Some(profile_id) => {
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO device_profiles (serial_number, profile_id, updated_at) ",
                    );
                    q.push_values(chunk, |mut row, serial| {
                        row.push_bind(*serial)
                            .push_bind(profile_id.get())
                            .push_bind(Ts(at));
                    });
                    // A serial that has this profile already is not a change.
                    q.push(
                        " ON CONFLICT (serial_number) DO UPDATE SET \
                         profile_id = excluded.profile_id, updated_at = excluded.updated_at \
                         WHERE device_profiles.profile_id <> excluded.profile_id",
                    );
                    q.build()
                        .execute(&mut **tx)
                        .await
                        .map_err(missing_reference)?
                }
                None => {
                    let mut q = QueryBuilder::<Sqlite>::new(
                        "DELETE FROM device_profiles WHERE serial_number IN (",
                    );
                    push_serials(&mut q, chunk);
                    q.build().execute(&mut **tx).await.map_err(backend)?
                }
            };
            changed += done.rows_affected();
        }
        Ok(changed)
    }

    /// The known serials among `serials`, each with whether some entry has it unremoved.
    pub(crate) async fn serial_presence(
        tx: &mut Tx,
        serials: &[String],
    ) -> Result<HashMap<String, bool>, StoreError> {
        let mut known = HashMap::with_capacity(serials.len());
        for chunk in serials.chunks(SERIALS_PER_LIST) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT serial_number, MAX(removed_at IS NULL) AS present FROM abm_devices \
                 WHERE serial_number IN (",
            );
            push_serials(&mut q, chunk);
            q.push(" GROUP BY serial_number");
            for row in q.build().fetch_all(&mut **tx).await.map_err(backend)? {
                let serial: String = row.try_get("serial_number").map_err(backend)?;
                let present: i64 = row.try_get("present").map_err(backend)?;
                known.insert(serial, present != 0);
            }
        }
        Ok(known)
    }

    /// A page of an entry's present devices (`D_DEVICE_COLUMNS`), each with its explicit profile
    /// (`explicit_profile`) and record (`R_RECORD_COLUMNS`): one walk of the entry's key range,
    /// each join a key lookup. `only`, when given, is not empty.
    pub(crate) async fn assignment_input_page(
        tx: &mut Tx,
        entry_id: EntryId,
        after: Option<&str>,
        limit: u32,
        only: Option<&[String]>,
    ) -> Result<Vec<DbRow>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {D_DEVICE_COLUMNS}, p.profile_id AS explicit_profile, {R_RECORD_COLUMNS} \
             FROM abm_devices d \
             LEFT JOIN device_profiles p ON p.serial_number = d.serial_number \
             LEFT JOIN abm_device_assignments a \
             ON a.entry_id = d.entry_id AND a.serial_number = d.serial_number \
             WHERE d.entry_id = "
        ));
        q.push_bind(entry_id.get())
            .push(" AND d.removed_at IS NULL");
        if let Some(after) = after {
            q.push(" AND d.serial_number > ").push_bind(after);
        }
        if let Some(only) = only {
            q.push(" AND d.serial_number IN (");
            push_serials(&mut q, only);
        }
        q.push(" ORDER BY d.serial_number LIMIT ")
            .push_bind(i64::from(limit));
        q.build().fetch_all(&mut **tx).await.map_err(backend)
    }

    /// The static groups of each of `serials` that has any, a chunk of serials per query.
    pub(crate) async fn static_groups_of(
        tx: &mut Tx,
        serials: &[&str],
    ) -> Result<HashMap<String, Vec<GroupId>>, StoreError> {
        let mut groups: HashMap<String, Vec<GroupId>> = HashMap::new();
        for chunk in serials.chunks(SERIALS_PER_LIST) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT m.serial_number, m.group_id FROM device_group_members m \
                 JOIN device_groups g ON g.id = m.group_id \
                 WHERE g.rule IS NULL AND m.serial_number IN (",
            );
            push_serials(&mut q, chunk);
            for row in q.build().fetch_all(&mut **tx).await.map_err(backend)? {
                let serial: String = row.try_get("serial_number").map_err(backend)?;
                let group = get_id(&row, "group_id")?;
                groups.entry(serial).or_default().push(group);
            }
        }
        Ok(groups)
    }

    /// Inserts or replaces an entry's records (one per serial).
    pub(crate) async fn upsert_assignments(
        tx: &mut Tx,
        entry_id: EntryId,
        records: &[&AssignmentRecord],
    ) -> Result<(), StoreError> {
        for chunk in records.chunks(SERIALS_PER_LIST) {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "INSERT INTO abm_device_assignments (entry_id, {RECORD_COLUMNS}) "
            ));
            q.push_values(chunk, |mut row, r| {
                row.push_bind(entry_id.get())
                    .push_bind(r.serial_number.as_str())
                    .push_bind(r.profile_id.map(ProfileId::get))
                    .push_bind(r.profile_version)
                    .push_bind(r.rule.as_text())
                    .push_bind(r.state.as_str())
                    .push_bind(r.apple_uuid.as_deref())
                    .push_bind(r.attempted_at.map(Ts))
                    .push_bind(r.retry_at.map(Ts))
                    .push_bind(r.attempts)
                    .push_bind(r.last_error.as_deref())
                    .push_bind(Ts(r.updated_at));
            });
            q.push(RECORD_UPSERT);
            q.build()
                .execute(&mut **tx)
                .await
                .map_err(missing_reference)?;
        }
        Ok(())
    }

    /// The records (`RECORD_COLUMNS`) of distinct serials in an entry, in no particular order.
    pub(crate) async fn assignment_rows(
        tx: &mut Tx,
        entry_id: EntryId,
        serials: &[&str],
    ) -> Result<Vec<DbRow>, StoreError> {
        let mut rows = Vec::new();
        for chunk in serials.chunks(SERIALS_PER_LIST) {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {RECORD_COLUMNS} FROM abm_device_assignments WHERE entry_id = "
            ));
            q.push_bind(entry_id.get()).push(" AND serial_number IN (");
            push_serials(&mut q, chunk);
            rows.extend(q.build().fetch_all(&mut **tx).await.map_err(backend)?);
        }
        Ok(rows)
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]

        use super::MARK_REMOVED_SQL;
        use crate::SqliteStore;
        use crate::assignment::candidates_sql;

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
            let candidates = plan(&store, &candidates_sql()).await;
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
}

// ---- mdm ----

/// Marks the device's oldest queued command `sent` and returns it (`COMMAND_COLUMNS`).
/// The subquery is one probe into mdm_commands_queue at (udid, 'queued'); a concurrent
/// caller waits for the write transaction, then finds the taken command `sent`.
pub(crate) async fn mdm_take_next_command(
    tx: &mut Tx,
    udid: &str,
    at: OffsetDateTime,
) -> Result<Option<DbRow>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE mdm_commands SET status = 'sent', updated_at = $1 WHERE seq = \
         (SELECT seq FROM mdm_commands WHERE udid = $2 AND status = 'queued' \
          ORDER BY created_at, seq LIMIT 1) \
         RETURNING {}",
        crate::mdm::COMMAND_COLUMNS
    )))
    .bind(Ts(at))
    .bind(udid)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_is_stored_as_microseconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(Ts(t).micros(), 1_700_000_000_123_456);
    }
}

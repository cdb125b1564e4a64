//! SQLite's side of the shared SQL in `crates/store-sql`: the driver's types, how a write
//! transaction begins, and how a timestamp is stored.

use std::collections::HashMap;

use guardmdm_store::{AbmDevice, StoreError};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, QueryBuilder, Sqlite, SqlitePool, Type};
use time::OffsetDateTime;
use uuid::Uuid;

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

// ---- devices ----

/// The assignment records `a` joined with their devices `d`, each found by its key.
pub(crate) const DEVICES_OF_ASSIGNMENTS: &str = "FROM abm_device_assignments a JOIN abm_devices d \
     ON d.entry_id = a.entry_id AND d.serial_number = a.serial_number";

/// Serials per `IN (…)` list: well under SQLite's 32,766 parameters.
const SERIALS_PER_LIST: usize = 500;

/// The page's serials that are stored already, with whether they are removed.
pub(crate) async fn stored_serials(
    tx: &mut Tx,
    entry_id: Uuid,
    devices: &[AbmDevice],
) -> Result<HashMap<String, bool>, StoreError> {
    let mut stored = HashMap::with_capacity(devices.len());
    for chunk in devices.chunks(SERIALS_PER_LIST) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT serial_number, removed_at IS NOT NULL AS removed FROM abm_devices \
             WHERE entry_id = ",
        );
        q.push_bind(entry_id).push(" AND serial_number IN (");
        let mut list = q.separated(", ");
        for d in chunk {
            list.push_bind(d.serial_number.clone());
        }
        q.push(")");
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

/// Empties the entry's staging area after a merge. When no other entry has staged records
/// the whole table is emptied, which SQLite does by freeing its pages instead of rewriting
/// each one.
pub(crate) async fn clear_stage(tx: &mut Tx, entry_id: Uuid) -> Result<(), StoreError> {
    let others: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM abm_device_stage WHERE entry_id <> $1 LIMIT 1")
            .bind(entry_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
    let clear = match others {
        Some(_) => sqlx::query("DELETE FROM abm_device_stage WHERE entry_id = $1").bind(entry_id),
        None => sqlx::query("DELETE FROM abm_device_stage"),
    };
    clear.execute(&mut **tx).await.map_err(backend)?;
    Ok(())
}

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
        let mut list = q.separated(", ");
        for serial in chunk {
            list.push_bind(serial.clone());
        }
        q.push(") GROUP BY serial_number");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_is_stored_as_microseconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(Ts(t).micros(), 1_700_000_000_123_456);
    }
}

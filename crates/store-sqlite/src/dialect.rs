//! SQLite's side of the shared SQL in `crates/store-sql`: the driver's types, how a write
//! transaction begins, and how a timestamp is stored.

use guardmdm_store::StoreError;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Sqlite, Type};
use time::OffsetDateTime;

use crate::common::backend;

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

// ---- mdm ----

/// `enrolled_at` of enrollment `udid` (`None`: no such enrollment), read in `tx` so that the
/// update after it is exact: SQLite's write transaction already excludes other writers.
pub(crate) async fn mdm_enrolled_at_locked(
    tx: &mut Tx,
    udid: &str,
) -> Result<Option<Option<OffsetDateTime>>, StoreError> {
    let enrolled_at: Option<Option<Ts>> =
        sqlx::query_scalar("SELECT enrolled_at FROM mdm_enrollments WHERE udid = $1")
            .bind(udid)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
    Ok(enrolled_at.map(|t| t.map(|t| t.0)))
}

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

//! SQLite's side of the shared SQL in `crates/store-sql`: the driver's types, how a write
//! transaction begins, and how a timestamp is stored.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Sqlite, Type};
use time::OffsetDateTime;

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

// admins

/// The transaction of a sign-in reservation (`AdminStore::reserve_sign_in_attempt`): the
/// count of recent failures and the insert of the new one must not interleave with another
/// reservation's. `BEGIN IMMEDIATE` makes it the one writer, in this process or another on
/// the same file, so the name and the client need no lock of their own.
pub(crate) async fn sign_in_reservation_tx(
    store: &crate::DbStore,
    _name: &str,
    _client: &str,
) -> Result<Tx, guardmdm_store::StoreError> {
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

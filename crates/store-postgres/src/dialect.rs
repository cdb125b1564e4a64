//! PostgreSQL's side of the shared SQL in `crates/store-sql`: the driver's types and how a
//! timestamp is stored.

use guardmdm_store::StoreError;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};
use time::OffsetDateTime;

use crate::common::backend;

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

// ---- mdm ----

/// `enrolled_at` of enrollment `udid` (`None`: no such enrollment), read in `tx` so that the
/// update after it is exact: the row lock makes "was this the first since Authenticate" exact
/// under concurrency.
pub(crate) async fn mdm_enrolled_at_locked(
    tx: &mut Tx,
    udid: &str,
) -> Result<Option<Option<OffsetDateTime>>, StoreError> {
    sqlx::query_scalar("SELECT enrolled_at FROM mdm_enrollments WHERE udid = $1 FOR UPDATE")
        .bind(udid)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)
}

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

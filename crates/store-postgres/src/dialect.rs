//! PostgreSQL's side of the shared SQL in `crates/store-sql`: the driver's types and how a
//! timestamp is stored.

use std::collections::HashMap;

use guardmdm_store::{AbmDevice, StoreError};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, PgPool, Postgres, Type};
use time::OffsetDateTime;
use uuid::Uuid;

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
    entry_id: Uuid,
    devices: &[AbmDevice],
) -> Result<HashMap<String, bool>, StoreError> {
    let serials: Vec<&str> = devices.iter().map(|d| d.serial_number.as_str()).collect();
    let rows = sqlx::query(
        "SELECT s.serial AS serial_number, d.removed \
         FROM unnest($2::text[]) AS s(serial) \
         CROSS JOIN LATERAL (SELECT removed_at IS NOT NULL AS removed FROM abm_devices \
                             WHERE entry_id = $1 AND serial_number = s.serial LIMIT 1) d",
    )
    .bind(entry_id)
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

/// Empties the entry's staging area after a merge. When no other entry has staged records
/// the table is truncated (no dead rows left for vacuum); the lock taken first keeps another
/// entry from staging between the check and the truncate.
pub(crate) async fn clear_stage(tx: &mut Tx, entry_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("LOCK TABLE abm_device_stage IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    let others: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM abm_device_stage WHERE entry_id <> $1 LIMIT 1")
            .bind(entry_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
    let clear = match others {
        Some(_) => sqlx::query("DELETE FROM abm_device_stage WHERE entry_id = $1").bind(entry_id),
        None => sqlx::query("TRUNCATE abm_device_stage"),
    };
    clear.execute(&mut **tx).await.map_err(backend)?;
    Ok(())
}

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

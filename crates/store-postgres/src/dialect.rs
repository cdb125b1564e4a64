//! PostgreSQL's side of the shared SQL in `crates/store-sql`: the driver's types and how a
//! timestamp is stored.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};
use time::OffsetDateTime;

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

// admins

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
) -> Result<Tx, guardmdm_store::StoreError> {
    let mut tx = store.write_tx().await?;
    for (class, key) in [(SIGN_IN_NAME_LOCK, name), (SIGN_IN_CLIENT_LOCK, client)] {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(class)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(crate::backend)?;
    }
    Ok(tx)
}

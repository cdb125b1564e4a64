use async_trait::async_trait;
use guardmdm_store::{
    Admin, AdminStore, NewAdmin, NewAuditEvent, NewSession, Session, SignInFailures, SignInLimits,
    SignInReservation, StoreError,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;

use crate::{PostgresStore, backend, insert_audit};

const ADMIN_COLUMNS: &str =
    "SELECT id, name, password_hash, created_by, created_at, last_sign_in_at FROM admins";

#[async_trait]
impl AdminStore for PostgresStore {
    async fn create_admin(
        &self,
        admin: &NewAdmin,
        audit: &NewAuditEvent,
    ) -> Result<Admin, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO admins (id, name, password_hash, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(admin.id)
        .bind(&admin.name)
        .bind(&admin.password_hash)
        .bind(&admin.created_by)
        .bind(admin.created_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Admin {
            id: admin.id,
            name: admin.name.clone(),
            password_hash: admin.password_hash.clone(),
            created_by: admin.created_by.clone(),
            created_at: admin.created_at,
            last_sign_in_at: None,
        })
    }

    async fn list_admins(&self) -> Result<Vec<Admin>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ADMIN_COLUMNS} ORDER BY name"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(admin_from_row).collect()
    }

    async fn find_admin(&self, name: &str) -> Result<Option<Admin>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ADMIN_COLUMNS} WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(admin_from_row).transpose()
    }

    async fn delete_admin(&self, name: &str, audit: &NewAuditEvent) -> Result<Admin, StoreError> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ADMIN_COLUMNS} WHERE name = $1"
        )))
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let admin = admin_from_row(&row)?;
        sqlx::query("DELETE FROM admin_sessions WHERE admin_id = $1")
            .bind(admin.id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("DELETE FROM admins WHERE id = $1")
            .bind(admin.id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(admin)
    }

    async fn open_session(
        &self,
        session: &NewSession,
        name: &str,
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO admin_sessions \
             (token_hash, admin_id, csrf_token, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.token_hash)
        .bind(session.admin_id)
        .bind(&session.csrf_token)
        .bind(session.created_at)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("UPDATE admins SET last_sign_in_at = $1 WHERE id = $2")
            .bind(session.created_at)
            .bind(session.admin_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if let Some(attempt) = session.attempt {
            sqlx::query("DELETE FROM admin_sign_in_failures WHERE id = $1")
                .bind(attempt)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        sqlx::query("UPDATE admin_sign_in_failures SET counts_for_name = FALSE WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn find_session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT s.token_hash, s.admin_id, a.name, s.csrf_token, s.created_at, \
             s.last_seen_at, s.expires_at \
             FROM admin_sessions s JOIN admins a ON a.id = s.admin_id WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn touch_session(
        &self,
        token_hash: &str,
        at: OffsetDateTime,
        min_interval: time::Duration,
    ) -> Result<(), StoreError> {
        let threshold = at - min_interval;
        sqlx::query(
            "UPDATE admin_sessions SET last_seen_at = $1 WHERE token_hash = $2 AND last_seen_at <= $3",
        )
        .bind(at)
        .bind(token_hash)
        .bind(threshold)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn close_session(
        &self,
        token_hash: &str,
        audit: Option<&NewAuditEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let existed = done.rows_affected() > 0;
        if existed && let Some(audit) = audit {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(existed)
    }

    async fn purge_sessions(
        &self,
        expired_before: OffsetDateTime,
        idle_before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM admin_sessions WHERE expires_at < $1 OR last_seen_at < $2")
                .bind(expired_before)
                .bind(idle_before)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn reserve_sign_in_attempt(
        &self,
        name: &str,
        client: &str,
        at: OffsetDateTime,
        limits: SignInLimits,
    ) -> Result<SignInReservation, StoreError> {
        let mut tx = self.write_tx().await?;
        // Reservations for one name, and from one client, take turns across every instance:
        // transaction-scoped advisory locks, always the name's before the client's, so two
        // reservations never wait on each other in a cycle. Each statement after the locks
        // reads what the previous holder committed (READ COMMITTED).
        for (class, key) in [(SIGN_IN_NAME_LOCK, name), (SIGN_IN_CLIENT_LOCK, client)] {
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(class)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        let failures = recent_failures(
            &mut tx,
            name,
            client,
            limits.since,
            (limits.per_name, limits.per_client),
        )
        .await?;
        if failures.by_name.len() >= usize::try_from(limits.per_name).unwrap_or(usize::MAX)
            || failures.by_client.len() >= usize::try_from(limits.per_client).unwrap_or(usize::MAX)
        {
            tx.rollback().await.map_err(backend)?;
            return Ok(SignInReservation::Refused(failures));
        }
        let attempt: i64 = sqlx::query_scalar(
            "INSERT INTO admin_sign_in_failures (name, client, at) VALUES ($1, $2, $3) \
             RETURNING id",
        )
        .bind(name)
        .bind(client)
        .bind(at)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(SignInReservation::Reserved { attempt })
    }

    async fn release_sign_in_attempt(&self, attempt: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_sign_in_failures WHERE id = $1")
            .bind(attempt)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn sign_in_failures(
        &self,
        name: &str,
        client: &str,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<SignInFailures, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        recent_failures(&mut conn, name, client, since, (limit, limit)).await
    }

    async fn purge_sign_in_failures(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM admin_sign_in_failures WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}

/// The advisory lock class of sign-in reservations per name (the key is the name's hash).
const SIGN_IN_NAME_LOCK: i32 = 0x5349_4e31; // "SIN1"
/// The advisory lock class of sign-in reservations per client address.
const SIGN_IN_CLIENT_LOCK: i32 = 0x5349_4e32; // "SIN2"

/// Failures since `since`, newest first: at most `limits.0` for the name (those still
/// counting for it) and `limits.1` from the client.
async fn recent_failures(
    conn: &mut PgConnection,
    name: &str,
    client: &str,
    since: OffsetDateTime,
    limits: (u32, u32),
) -> Result<SignInFailures, StoreError> {
    let mut out = SignInFailures::default();
    for (column, only, value, limit, into) in [
        (
            "name",
            "counts_for_name AND ",
            name,
            limits.0,
            &mut out.by_name,
        ),
        ("client", "", client, limits.1, &mut out.by_client),
    ] {
        *into = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT at FROM admin_sign_in_failures WHERE {only}{column} = $1 AND at >= $2 \
             ORDER BY at DESC LIMIT $3"
        )))
        .bind(value)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
    }
    Ok(out)
}

fn admin_from_row(row: &PgRow) -> Result<Admin, StoreError> {
    Ok(Admin {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        created_by: row.try_get("created_by").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        last_sign_in_at: row.try_get("last_sign_in_at").map_err(backend)?,
    })
}

fn session_from_row(row: &PgRow) -> Result<Session, StoreError> {
    Ok(Session {
        token_hash: row.try_get("token_hash").map_err(backend)?,
        admin_id: row.try_get("admin_id").map_err(backend)?,
        admin_name: row.try_get("name").map_err(backend)?,
        csrf_token: row.try_get("csrf_token").map_err(backend)?,
        created_at: row.try_get("created_at").map_err(backend)?,
        last_seen_at: row.try_get("last_seen_at").map_err(backend)?,
        expires_at: row.try_get("expires_at").map_err(backend)?,
    })
}

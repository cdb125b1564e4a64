use async_trait::async_trait;
use guardmdm_store::{
    Admin, AdminStore, NewAdmin, NewAuditEvent, NewSession, Session, SignInFailures, SignInLimits,
    SignInReservation, StoreError,
};
use time::OffsetDateTime;

use crate::DbStore;
use crate::common::{backend, get, insert_audit, opt_ts, ts};
use crate::dialect::{Db, DbRow, Ts};

const ADMIN_COLUMNS: &str =
    "SELECT id, name, password_hash, created_by, created_at, last_sign_in_at FROM admins";

#[async_trait]
impl AdminStore for DbStore {
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
        .bind(Ts(admin.created_at))
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
             VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(&session.token_hash)
        .bind(session.admin_id)
        .bind(&session.csrf_token)
        .bind(Ts(session.created_at))
        .bind(Ts(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("UPDATE admins SET last_sign_in_at = $1 WHERE id = $2")
            .bind(Ts(session.created_at))
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
        sqlx::query(
            "UPDATE admin_sessions SET last_seen_at = $1 \
             WHERE token_hash = $2 AND last_seen_at <= $3",
        )
        .bind(Ts(at))
        .bind(token_hash)
        .bind(Ts(at - min_interval))
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
                .bind(Ts(expired_before))
                .bind(Ts(idle_before))
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
        // The count and the insert are never interleaved with another reservation's for the
        // same name or client, in this process or another sharing the database.
        let mut tx = crate::dialect::sign_in_reservation_tx(self, name, client).await?;
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
        .bind(Ts(at))
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
            .bind(Ts(before))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}

/// Failures since `since`, newest first: at most `limits.0` for the name (those still
/// counting for it) and `limits.1` from the client.
async fn recent_failures(
    conn: &mut <Db as sqlx::Database>::Connection,
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
        *into = sqlx::query_scalar::<_, Ts>(sqlx::AssertSqlSafe(format!(
            "SELECT at FROM admin_sign_in_failures WHERE {only}{column} = $1 AND at >= $2 \
             ORDER BY at DESC LIMIT $3"
        )))
        .bind(value)
        .bind(Ts(since))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?
        .into_iter()
        .map(|t| t.0)
        .collect();
    }
    Ok(out)
}

fn admin_from_row(row: &DbRow) -> Result<Admin, StoreError> {
    Ok(Admin {
        id: get(row, "id")?,
        name: get(row, "name")?,
        password_hash: get(row, "password_hash")?,
        created_by: get(row, "created_by")?,
        created_at: ts(row, "created_at")?,
        last_sign_in_at: opt_ts(row, "last_sign_in_at")?,
    })
}

fn session_from_row(row: &DbRow) -> Result<Session, StoreError> {
    Ok(Session {
        token_hash: get(row, "token_hash")?,
        admin_id: get(row, "admin_id")?,
        admin_name: get(row, "name")?,
        csrf_token: get(row, "csrf_token")?,
        created_at: ts(row, "created_at")?,
        last_seen_at: ts(row, "last_seen_at")?,
        expires_at: ts(row, "expires_at")?,
    })
}

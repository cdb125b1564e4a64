use async_trait::async_trait;
use guardmdm_store::{
    Authenticated, CommandStatus, EnrollChallenge, Enrollment, EnrollmentQuery, EnrollmentStatus,
    IssuedIdentity, MdmCommand, MdmStore, NewAuditEvent, NewCommand, Release, StoreError,
    TokenUpdated,
};
use sqlx::QueryBuilder;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::DbStore;
use crate::common::{backend, get, insert_audit, opt_ts, stored, ts};
use crate::dialect::{self, Db, DbRow, Ts};

const CHALLENGE_COLUMNS: &str =
    "challenge_hash, serial_number, udid, profile, created_at, expires_at, used_at";

const IDENTITY_COLUMNS: &str =
    "fingerprint, cert_serial, udid, serial_number, issued_at, not_after";

const ENROLLMENT_COLUMNS: &str = "udid, serial_number, status, topic, identity_fingerprint, \
     push_token, push_magic, unlock_token, awaiting_configuration, awaiting_since, device_info, \
     enrolled_at, last_seen_at, created_at, updated_at";

/// The columns `command_from_row` reads (the dialects' `mdm_take_next_command` returns them).
pub(crate) const COMMAND_COLUMNS: &str = "uuid, udid, request_type, payload, status, result, \
     created_by, not_now_count, created_at, updated_at, completed_at";

#[async_trait]
impl MdmStore for DbStore {
    async fn create_enroll_challenge(&self, challenge: &EnrollChallenge) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO mdm_enroll_challenges ({CHALLENGE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )))
        .bind(&challenge.challenge_hash)
        .bind(&challenge.serial_number)
        .bind(&challenge.udid)
        .bind(&challenge.profile)
        .bind(Ts(challenge.created_at))
        .bind(Ts(challenge.expires_at))
        .bind(challenge.used_at.map(Ts))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn consume_enroll_challenge(
        &self,
        challenge_hash: &str,
        at: OffsetDateTime,
    ) -> Result<Option<EnrollChallenge>, StoreError> {
        // One statement: of two consumers, the second finds `used_at` set and changes (and
        // returns) nothing. SQLite runs writes one at a time; on PostgreSQL the second waits
        // for the first's row lock, then re-checks the row.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE mdm_enroll_challenges SET used_at = $1 WHERE challenge_hash = $2 \
             AND used_at IS NULL AND expires_at > $1 RETURNING {CHALLENGE_COLUMNS}"
        )))
        .bind(Ts(at))
        .bind(challenge_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(challenge_from_row).transpose()
    }

    async fn purge_enroll_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM mdm_enroll_challenges WHERE expires_at < $1")
            .bind(Ts(before))
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn record_identity(&self, identity: &IssuedIdentity) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO mdm_identities ({IDENTITY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        )))
        .bind(&identity.fingerprint)
        .bind(&identity.cert_serial)
        .bind(&identity.udid)
        .bind(&identity.serial_number)
        .bind(Ts(identity.issued_at))
        .bind(Ts(identity.not_after))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn identity(&self, fingerprint: &str) -> Result<Option<IssuedIdentity>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {IDENTITY_COLUMNS} FROM mdm_identities WHERE fingerprint = $1"
        )))
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(identity_from_row).transpose()
    }

    async fn record_authenticate(&self, auth: &Authenticated) -> Result<Enrollment, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO mdm_enrollments (udid, serial_number, status, topic, \
             identity_fingerprint, awaiting_configuration, device_info, last_seen_at, \
             created_at, updated_at) \
             VALUES ($1, $2, 'authenticated', $3, $4, false, $5, $6, $6, $6) \
             ON CONFLICT (udid) DO UPDATE SET serial_number = excluded.serial_number, \
             status = 'authenticated', topic = excluded.topic, \
             identity_fingerprint = excluded.identity_fingerprint, push_token = NULL, \
             push_magic = NULL, unlock_token = NULL, awaiting_configuration = false, \
             awaiting_since = NULL, device_info = excluded.device_info, enrolled_at = NULL, \
             last_seen_at = excluded.last_seen_at, updated_at = excluded.updated_at \
             RETURNING {ENROLLMENT_COLUMNS}"
        )))
        .bind(&auth.udid)
        .bind(&auth.serial_number)
        .bind(&auth.topic)
        .bind(&auth.identity_fingerprint)
        .bind(Json(&auth.device_info))
        .bind(Ts(auth.at))
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        enrollment_from_row(&row)
    }

    async fn record_token_update(
        &self,
        update: &TokenUpdated,
    ) -> Result<(Enrollment, bool), StoreError> {
        let mut tx = self.write_tx().await?;
        // Read with the row locked (PostgreSQL; SQLite's write transaction excludes other
        // writers), so "was this the first TokenUpdate since Authenticate" is exact under
        // concurrency.
        let enrolled_at: Option<Option<Ts>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT enrolled_at FROM mdm_enrollments WHERE udid = $1{}",
            dialect::FOR_UPDATE
        )))
        .bind(&update.udid)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(enrolled_at) = enrolled_at.map(|t| t.map(|t| t.0)) else {
            return Err(StoreError::NotFound);
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE mdm_enrollments SET topic = $1, push_token = $2, push_magic = $3, \
             unlock_token = COALESCE($4, unlock_token), awaiting_configuration = $5, \
             awaiting_since = CASE WHEN $5 THEN COALESCE(awaiting_since, $6) ELSE NULL END, \
             status = 'enrolled', enrolled_at = COALESCE(enrolled_at, $6), last_seen_at = $6, \
             updated_at = $6 WHERE udid = $7 RETURNING {ENROLLMENT_COLUMNS}"
        )))
        .bind(&update.topic)
        .bind(&update.push_token)
        .bind(&update.push_magic)
        .bind(&update.unlock_token)
        .bind(update.awaiting_configuration)
        .bind(Ts(update.at))
        .bind(&update.udid)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let enrollment = enrollment_from_row(&row)?;
        tx.commit().await.map_err(backend)?;
        Ok((enrollment, enrolled_at.is_none()))
    }

    async fn set_enrollment_status(
        &self,
        udid: &str,
        status: EnrollmentStatus,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE mdm_enrollments SET status = $1, updated_at = $2 WHERE udid = $3")
                .bind(status.as_str())
                .bind(Ts(at))
                .bind(udid)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        found(done.rows_affected())
    }

    async fn set_awaiting_configuration(
        &self,
        udid: &str,
        awaiting: bool,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE mdm_enrollments SET awaiting_configuration = $1, \
             awaiting_since = CASE WHEN $1 THEN COALESCE(awaiting_since, $2) ELSE NULL END, \
             updated_at = $2 WHERE udid = $3",
        )
        .bind(awaiting)
        .bind(Ts(at))
        .bind(udid)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        found(done.rows_affected())
    }

    async fn touch_enrollment(&self, udid: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mdm_enrollments SET last_seen_at = $1 WHERE udid = $2 AND last_seen_at < $1",
        )
        .bind(Ts(at))
        .bind(udid)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn enrollment(&self, udid: &str) -> Result<Option<Enrollment>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM mdm_enrollments WHERE udid = $1"
        )))
        .bind(udid)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(enrollment_from_row).transpose()
    }

    async fn list_enrollments(
        &self,
        query: &EnrollmentQuery,
    ) -> Result<Vec<Enrollment>, StoreError> {
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM mdm_enrollments WHERE 1 = 1"
        ));
        if let Some(status) = query.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(serial) = &query.serial_number {
            q.push(" AND serial_number = ").push_bind(serial.clone());
        }
        if let Some(after) = &query.after {
            q.push(" AND udid > ").push_bind(after.clone());
        }
        q.push(" ORDER BY udid LIMIT ")
            .push_bind(i64::from(query.limit));
        let rows = q.build().fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(enrollment_from_row).collect()
    }

    async fn list_awaiting(
        &self,
        waiting_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Enrollment>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENROLLMENT_COLUMNS} FROM mdm_enrollments \
             WHERE awaiting_since IS NOT NULL AND awaiting_since <= $1 \
             AND status = 'enrolled' ORDER BY awaiting_since, udid LIMIT $2"
        )))
        .bind(Ts(waiting_since))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(enrollment_from_row).collect()
    }

    async fn count_awaiting(&self, waiting_since: OffsetDateTime) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mdm_enrollments WHERE awaiting_since IS NOT NULL \
             AND awaiting_since <= $1 AND status = 'enrolled'",
        )
        .bind(Ts(waiting_since))
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn open_commands(&self, udid: &str) -> Result<Vec<MdmCommand>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COMMAND_COLUMNS} FROM mdm_commands WHERE udid = $1 \
             AND status IN ('queued', 'sent', 'not_now') ORDER BY created_at, seq"
        )))
        .bind(udid)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(command_from_row).collect()
    }

    async fn release_enrollment(&self, release: &Release) -> Result<MdmCommand, StoreError> {
        let mut tx = self.write_tx().await?;
        // The enrollment row locked (PostgreSQL; SQLite's write transaction excludes other
        // writers): of two releases, the second sees the first's DeviceConfigured.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT status, awaiting_configuration FROM mdm_enrollments WHERE udid = $1{}",
            dialect::FOR_UPDATE
        )))
        .bind(&release.udid)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let status: EnrollmentStatus = stored(&row, "status")?;
        let awaiting: bool = get(&row, "awaiting_configuration")?;
        if status != EnrollmentStatus::Enrolled || !awaiting {
            return Err(StoreError::Conflict(format!(
                "device {} is not waiting in Setup Assistant",
                release.udid
            )));
        }
        let at = release.command.at;
        for uuid in &release.cancel {
            sqlx::query(
                "UPDATE mdm_commands SET status = 'cancelled', updated_at = $1, \
                 completed_at = $1 WHERE udid = $2 AND uuid = $3 \
                 AND status IN ('queued', 'sent', 'not_now')",
            )
            .bind(Ts(at))
            .bind(&release.udid)
            .bind(uuid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        let oldest: Option<Ts> = sqlx::query_scalar(
            "SELECT MIN(created_at) FROM mdm_commands WHERE udid = $1 \
             AND status IN ('queued', 'sent', 'not_now')",
        )
        .bind(&release.udid)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        // Ahead of every open command: the queue is taken in created_at order.
        let created_at = oldest.map_or(at, |t| t.0.min(at) - time::Duration::microseconds(1));
        let command = &release.command;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO mdm_commands (uuid, udid, request_type, payload, status, created_by, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7) \
             RETURNING {COMMAND_COLUMNS}"
        )))
        .bind(&command.uuid)
        .bind(&release.udid)
        .bind(&command.request_type)
        .bind(&command.payload)
        .bind(&command.created_by)
        .bind(Ts(created_at))
        .bind(Ts(at))
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let queued = command_from_row(&row)?;
        insert_audit(&mut tx, &release.audit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(queued)
    }

    async fn enqueue_command(
        &self,
        command: &NewCommand,
        audit: Option<&NewAuditEvent>,
    ) -> Result<MdmCommand, StoreError> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO mdm_commands (uuid, udid, request_type, payload, status, created_by, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 'queued', $5, $6, $6) \
             RETURNING {COMMAND_COLUMNS}"
        )))
        .bind(&command.uuid)
        .bind(&command.udid)
        .bind(&command.request_type)
        .bind(&command.payload)
        .bind(&command.created_by)
        .bind(Ts(command.at))
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let queued = command_from_row(&row)?;
        if let Some(audit) = audit {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(queued)
    }

    async fn next_command(
        &self,
        udid: &str,
        new_session: bool,
        at: OffsetDateTime,
    ) -> Result<Option<MdmCommand>, StoreError> {
        // Most requests find nothing to requeue or take: that is one read (a probe into
        // mdm_commands_queue), without a write transaction (which on SQLite would wait its
        // turn behind every other writer). A command queued after this read is taken by the
        // device's next request, as if it had been queued just after this one.
        let open = sqlx::query(if new_session {
            "SELECT 1 FROM mdm_commands WHERE udid = $1 \
             AND status IN ('queued', 'sent', 'not_now') LIMIT 1"
        } else {
            "SELECT 1 FROM mdm_commands WHERE udid = $1 AND status = 'queued' LIMIT 1"
        })
        .bind(udid)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        if open.is_none() {
            return Ok(None);
        }
        // Requeueing and taking are one write transaction (on SQLite, begun with BEGIN
        // IMMEDIATE: a concurrent caller waits for it, then finds the taken command `sent`).
        let mut tx = self.write_tx().await?;
        if new_session {
            sqlx::query(
                "UPDATE mdm_commands SET status = 'queued', updated_at = $1 \
                 WHERE udid = $2 AND status IN ('sent', 'not_now')",
            )
            .bind(Ts(at))
            .bind(udid)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        let row = dialect::mdm_take_next_command(&mut tx, udid, at).await?;
        let next = row.as_ref().map(command_from_row).transpose()?;
        tx.commit().await.map_err(backend)?;
        Ok(next)
    }

    async fn record_command_result(
        &self,
        udid: &str,
        uuid: &str,
        status: CommandStatus,
        result: Option<&[u8]>,
        at: OffsetDateTime,
    ) -> Result<MdmCommand, StoreError> {
        // A status that is not a device's answer is a caller's bug: refused as a conflict
        // with the store's rules, with nothing written.
        if !status.is_answer() {
            return Err(StoreError::Conflict(format!(
                "{status} is not a command result status"
            )));
        }
        // Keyed by device and UUID: another device's command is not found.
        let query = if status == CommandStatus::NotNow {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE mdm_commands SET status = 'not_now', \
                 not_now_count = not_now_count + 1, updated_at = $1 WHERE udid = $2 AND uuid = $3 RETURNING {COMMAND_COLUMNS}"
            )))
            .bind(Ts(at))
            .bind(udid)
            .bind(uuid)
        } else {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE mdm_commands SET status = $1, result = $2, updated_at = $3, \
                 completed_at = $3 WHERE udid = $4 AND uuid = $5 RETURNING {COMMAND_COLUMNS}"
            )))
            .bind(status.as_str())
            .bind(result)
            .bind(Ts(at))
            .bind(udid)
            .bind(uuid)
        };
        let row = query.fetch_one(&self.pool).await.map_err(backend)?;
        command_from_row(&row)
    }

    async fn command(&self, uuid: &str) -> Result<Option<MdmCommand>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COMMAND_COLUMNS} FROM mdm_commands WHERE uuid = $1"
        )))
        .bind(uuid)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(command_from_row).transpose()
    }

    async fn count_open_commands(&self, udid: &str, created_by: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mdm_commands WHERE udid = $1 AND created_by = $2 \
             AND status IN ('queued', 'sent', 'not_now')",
        )
        .bind(udid)
        .bind(created_by)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn list_commands(&self, udid: &str, limit: u32) -> Result<Vec<MdmCommand>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COMMAND_COLUMNS} FROM mdm_commands WHERE udid = $1 \
             ORDER BY created_at DESC, seq DESC LIMIT $2"
        )))
        .bind(udid)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(command_from_row).collect()
    }

    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar("SELECT sealed FROM mdm_secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn init_secret(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        // Like `init_meta`: a concurrent first insert makes this one wait and then do
        // nothing; the read after it sees the winner's value (on PostgreSQL each statement
        // of the transaction takes a new snapshot).
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO mdm_secrets (name, sealed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(sealed)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM mdm_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn put_secret(
        &self,
        name: &str,
        sealed: &[u8],
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO mdm_secrets (name, sealed) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed",
        )
        .bind(name)
        .bind(sealed)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await.map_err(backend)
    }
}

/// `NotFound` when a keyed update changed no row.
fn found(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

fn challenge_from_row(row: &DbRow) -> Result<EnrollChallenge, StoreError> {
    Ok(EnrollChallenge {
        challenge_hash: get(row, "challenge_hash")?,
        serial_number: get(row, "serial_number")?,
        udid: get(row, "udid")?,
        profile: get(row, "profile")?,
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
        used_at: opt_ts(row, "used_at")?,
    })
}

fn identity_from_row(row: &DbRow) -> Result<IssuedIdentity, StoreError> {
    Ok(IssuedIdentity {
        fingerprint: get(row, "fingerprint")?,
        cert_serial: get(row, "cert_serial")?,
        udid: get(row, "udid")?,
        serial_number: get(row, "serial_number")?,
        issued_at: ts(row, "issued_at")?,
        not_after: ts(row, "not_after")?,
    })
}

fn enrollment_from_row(row: &DbRow) -> Result<Enrollment, StoreError> {
    Ok(Enrollment {
        udid: get(row, "udid")?,
        serial_number: get(row, "serial_number")?,
        status: stored(row, "status")?,
        topic: get(row, "topic")?,
        identity_fingerprint: get(row, "identity_fingerprint")?,
        push_token: get(row, "push_token")?,
        push_magic: get(row, "push_magic")?,
        unlock_token: get(row, "unlock_token")?,
        awaiting_configuration: get(row, "awaiting_configuration")?,
        awaiting_since: opt_ts(row, "awaiting_since")?,
        device_info: get::<Json<serde_json::Value>>(row, "device_info")?.0,
        enrolled_at: opt_ts(row, "enrolled_at")?,
        last_seen_at: ts(row, "last_seen_at")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn command_from_row(row: &DbRow) -> Result<MdmCommand, StoreError> {
    Ok(MdmCommand {
        uuid: get(row, "uuid")?,
        udid: get(row, "udid")?,
        request_type: get(row, "request_type")?,
        payload: get(row, "payload")?,
        status: stored(row, "status")?,
        result: get(row, "result")?,
        created_by: get(row, "created_by")?,
        not_now_count: u32::try_from(get::<i64>(row, "not_now_count")?).unwrap_or_default(),
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
        completed_at: opt_ts(row, "completed_at")?,
    })
}

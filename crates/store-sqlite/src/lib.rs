//! GuardMDM's embedded storage: one SQLite file in WAL mode, migrated at open.
//!
//! SQLite has one writer at a time, so every writing transaction starts with
//! `BEGIN IMMEDIATE`: it takes the write lock up front instead of failing on upgrade.

mod abm;
mod admins;
mod api_keys;
mod assignment;
mod audit;
pub mod backup;
mod devices;
mod mdm;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use guardmdm_store::{Backend, MetaStore, MigrationStatus, NewAuditEvent, StoreError};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use time::OffsetDateTime;

/// The migrations embedded in this binary, applied at open.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The SQLite implementation of [`guardmdm_store::Store`].
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` and applies migrations.
    ///
    /// # Errors
    /// When the file cannot be opened or a migration fails.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        prepare_private_file(path)?;
        let options = SqliteConnectOptions::new().filename(path);
        Self::connect(options).await
    }

    /// Opens a `sqlite:` URL (for example `sqlite:///var/lib/guardmdm/guardmdm.db`).
    ///
    /// # Errors
    /// When the URL is malformed, the file cannot be opened, or a migration fails.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(backend)?;
        if !is_in_memory_url(url) {
            prepare_private_file(options.get_filename())?;
        }
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(backend)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Self { pool })
    }

    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl Backend for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn migrations(&self) -> Result<MigrationStatus, StoreError> {
        let known = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .collect();
        let rows: Vec<(i64, bool)> =
            sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(MigrationStatus::from_records(known, &rows))
    }
}

#[async_trait]
impl MetaStore for SqliteStore {
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn init_meta(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let stored: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn claim_lease(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = ?2, expires_at = ?3 \
             WHERE leases.holder = ?2 OR leases.expires_at <= ?4",
        )
        .bind(name)
        .bind(holder)
        .bind(micros(until))
        .bind(micros(now))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }
}

/// Whether a `sqlite:` URL names an in-memory database (no file to protect).
fn is_in_memory_url(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Makes the database file readable by its owner only before SQLite opens it: creates it empty
/// with mode 0600 when it does not exist (SQLite takes an empty file as a new database), and
/// restricts an existing one (and its `-wal` and `-shm` files) that others could read.
/// SQLite creates the `-wal` and `-shm` files with the database file's mode, so they are 0600
/// too, whatever the process umask.
fn prepare_private_file(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mut files = vec![path.to_path_buf()];
                for suffix in ["-wal", "-shm"] {
                    let mut name = path.as_os_str().to_owned();
                    name.push(suffix);
                    files.push(name.into());
                }
                for file in files {
                    let Ok(meta) = std::fs::metadata(&file) else {
                        continue;
                    };
                    if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                            .map_err(|e| {
                                StoreError::Backend(
                                    format!("cannot restrict {} to its owner: {e}", file.display())
                                        .into(),
                                )
                            })?;
                        tracing::warn!(path = %file.display(), "the SQLite file was readable by other users: restricted it to mode 0600");
                    }
                }
            }
            Err(e) => {
                return Err(StoreError::Backend(
                    format!("cannot create the SQLite file {}: {e}", path.display()).into(),
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes an audit event inside a transaction.
async fn insert_audit(
    tx: &mut Transaction<'static, Sqlite>,
    event: &NewAuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(micros(event.at))
    .bind(&event.actor)
    .bind(&event.action)
    .bind(&event.target)
    .bind(event.details.to_string())
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

/// A timestamp as stored: microseconds since the Unix epoch.
fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// A stored timestamp back.
fn from_micros(us: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}

fn opt_from_micros(us: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    us.map(from_micros).transpose()
}

/// Maps a driver error: no row is `NotFound`, a unique violation is `Conflict`.
fn backend(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        other => StoreError::Backend(Box::new(other)),
    }
}

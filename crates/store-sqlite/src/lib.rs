//! GuardMDM's embedded storage: one SQLite file in WAL mode, migrated at open.
//!
//! SQLite has one writer at a time, so every writing transaction starts with
//! `BEGIN IMMEDIATE`: it takes the write lock up front instead of failing on upgrade.

#[path = "../../store-sql/abm.rs"]
mod abm;
#[path = "../../store-sql/admins.rs"]
mod admins;
#[path = "../../store-sql/api_keys.rs"]
mod api_keys;
#[path = "../../store-sql/assignment.rs"]
mod assignment;
#[path = "../../store-sql/audit.rs"]
mod audit;
pub mod backup;
#[path = "../../store-sql/common.rs"]
mod common;
#[path = "../../store-sql/devices.rs"]
mod devices;
mod dialect;
#[path = "../../store-sql/mdm.rs"]
mod mdm;
#[path = "../../store-sql/os_updates.rs"]
mod os_updates;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use guardmdm_store::StoreError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use common::backend;
use dialect::Tx;

/// The store the shared modules in `crates/store-sql` implement the traits for.
pub(crate) type DbStore = SqliteStore;

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

/// Rows a connection's thread may read ahead of the query's consumer.
const ROW_BUFFER: usize = 256;

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
            // A merge of a large full fetch is one transaction, and the WAL grows to hold it;
            // once checkpointed the file is cut back to this size instead of staying as large.
            .pragma("journal_size_limit", "67108864")
            .busy_timeout(Duration::from_secs(10))
            // sqlx runs each connection on a thread of its own and hands rows over a bounded
            // channel; at its default of 50 the two threads take turns every few rows (a
            // context switch each), which cost a 1,000-row read of the assignment pass more
            // than SQLite's own work. A larger buffer lets the connection's thread run ahead.
            .row_buffer_size(ROW_BUFFER);
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

    /// A transaction that takes SQLite's write lock up front.
    pub(crate) async fn write_tx(&self) -> Result<Tx, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
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

//! An online, consistent copy of the database file while servers keep using it.
//!
//! `VACUUM INTO` writes a snapshot of one read transaction into a new file: writers go on
//! meanwhile (WAL mode), and the copy is compact and self-contained (no `-wal` file to carry
//! along). The copy is written next to its destination under a temporary name, checked with
//! `PRAGMA integrity_check`, synced, and only then renamed into place, so a failed or
//! interrupted backup never leaves a partial file under the name asked for.

use std::path::{Path, PathBuf};

use guardmdm_store::StoreError;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// The copy.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The highest migration version in it (what a restored server expects at least).
    pub schema_version: i64,
}

fn failed(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(what.to_string().into())
}

/// Copies the SQLite database at `database` into the new file `to` (which must not exist).
///
/// # Errors
/// When `database` is missing or not a GuardMDM database, `to` exists or cannot be written,
/// or the copy fails its integrity check; nothing is left at `to` then.
pub async fn backup(database: &Path, to: &Path) -> Result<BackupReport, StoreError> {
    if !database.is_file() {
        return Err(failed(format!(
            "there is no database at {} (is --data-dir right?)",
            database.display()
        )));
    }
    if to.exists() {
        return Err(failed(format!(
            "{} already exists: choose a new file name",
            to.display()
        )));
    }
    let dir = match to.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = to
        .file_name()
        .ok_or_else(|| failed(format!("{} is not a file name", to.display())))?;
    let mut partial_name = std::ffi::OsString::from(".");
    partial_name.push(name);
    partial_name.push(format!(".partial-{}", std::process::id()));
    let partial = dir.join(partial_name);
    let result = write_copy(database, &partial).await;
    let report = match result {
        Ok(schema_version) => finish(&partial, to, schema_version),
        Err(e) => Err(e),
    };
    if report.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    report
}

async fn write_copy(database: &Path, partial: &Path) -> Result<i64, StoreError> {
    let target = partial
        .to_str()
        .ok_or_else(|| failed(format!("{} is not valid UTF-8", partial.display())))?
        .to_string();
    // Read-only: a backup never migrates or changes the database it copies.
    let mut source = SqliteConnectOptions::new()
        .filename(database)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| failed(format!("opening {}: {e}", database.display())))?;
    let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut source)
        .await
        .map_err(|_| {
            failed(format!(
                "{} is not a GuardMDM database (it has no migration table)",
                database.display()
            ))
        })?;
    sqlx::query("VACUUM INTO ?")
        .bind(&target)
        .execute(&mut source)
        .await
        .map_err(|e| failed(format!("copying the database: {e}")))?;
    source.close().await.map_err(failed)?;
    let mut copy = SqliteConnectOptions::new()
        .filename(partial)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| failed(format!("opening the copy: {e}")))?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut copy)
        .await
        .map_err(|e| failed(format!("checking the copy: {e}")))?;
    copy.close().await.map_err(failed)?;
    if check != "ok" {
        return Err(failed(format!(
            "the copy failed its integrity check: {check}"
        )));
    }
    Ok(version.unwrap_or(0))
}

fn finish(partial: &Path, to: &Path, schema_version: i64) -> Result<BackupReport, StoreError> {
    let io = |what: &str, e: std::io::Error| failed(format!("{what} {}: {e}", to.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Device data and sealed secrets: readable by the owner only, like the database.
        std::fs::set_permissions(partial, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("protecting", e))?;
    }
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("syncing", e))?;
    // A hard link fails if `to` appeared meanwhile, where a rename would replace it.
    std::fs::hard_link(partial, to).map_err(|e| io("writing", e))?;
    std::fs::remove_file(partial).map_err(|e| io("cleaning up next to", e))?;
    let bytes = std::fs::metadata(to).map_err(|e| io("reading", e))?.len();
    Ok(BackupReport {
        path: to.to_path_buf(),
        bytes,
        schema_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backup_is_a_working_database_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("guardmdm.db");
        let store = crate::SqliteStore::open(&db).await.unwrap();
        let to = dir.path().join("copy.db");
        let report = backup(&db, &to).await.unwrap();
        assert!(report.bytes > 0 && report.schema_version > 0, "{report:?}");
        drop(store);
        // The copy opens as a store (its migrations are all there).
        crate::SqliteStore::open(&to).await.unwrap();
        let again = backup(&db, &to).await.unwrap_err().to_string();
        assert!(again.contains("already exists"), "{again}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".partial-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn not_a_database_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("notes.txt");
        std::fs::write(&bogus, "hello").unwrap();
        let to = dir.path().join("copy.db");
        let e = backup(&bogus, &to).await.unwrap_err().to_string();
        assert!(
            e.contains("not a GuardMDM database") || e.contains("opening"),
            "{e}"
        );
        assert!(!to.exists());
        let missing = backup(&dir.path().join("nope.db"), &to)
            .await
            .unwrap_err()
            .to_string();
        assert!(missing.contains("no database"), "{missing}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

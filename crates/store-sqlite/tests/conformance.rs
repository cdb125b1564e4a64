//! The shared conformance suite against SQLite (always runs: a file in a temp dir), one test
//! per case, and the SQLite-only cases.

// The helper that makes each case's store fails by panicking, like the cases.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use guardmdm_store::Store;
use guardmdm_store::testsuite::Fresh;
use guardmdm_store_sqlite::SqliteStore;

/// A store in a file of its own temporary directory, removed when the case ends.
async fn fresh_store() -> Option<Fresh> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("case.db"))
        .await
        .unwrap();
    Some(Fresh {
        store: Arc::new(store) as Arc<dyn Store>,
        keep: Box::new(dir),
    })
}

guardmdm_store::conformance_tests!(fresh_store);

#[tokio::test]
async fn sqlite_uses_wal_and_reopens_with_data() {
    use guardmdm_store::MetaStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.init_meta("k", "v").await.unwrap();
    assert!(dir.path().join("g.db-wal").exists(), "WAL file");
    drop(store);
    let url = format!("sqlite://{}", path.display());
    let again = SqliteStore::open_url(&url).await.unwrap();
    assert_eq!(again.get_meta("k").await.unwrap().as_deref(), Some("v"));
}

/// The database and its `-wal` and `-shm` files hold every secret's ciphertext and every
/// device record: only their owner may read them, whatever the umask (the test process runs
/// with the usual 022, under which SQLite alone would create them 0644).
#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_created_readable_by_their_owner_only() {
    use guardmdm_store::MetaStore;
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.init_meta("k", "v").await.unwrap();
    for name in ["g.db", "g.db-wal", "g.db-shm"] {
        assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
    }
    drop(store);

    // A file an earlier version left readable by others is restricted when opened.
    let old = dir.path().join("old.db");
    std::fs::write(&old, b"").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open_url(&format!("sqlite://{}", old.display()))
        .await
        .unwrap();
    store.init_meta("k", "v").await.unwrap();
    for name in ["old.db", "old.db-wal", "old.db-shm"] {
        assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
    }
}

/// A migration recorded by a newer GuardMDM shows as unknown; one that failed midway as
/// failed (the doctor reports both).
#[tokio::test]
async fn sqlite_reports_unknown_and_failed_migrations() {
    use guardmdm_store::Backend;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for (version, success) in [(99_990_101_000_000_i64, true), (99_990_102_000_000, false)] {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?, 'from a newer GuardMDM', ?, X'00', 0)",
        )
        .bind(version)
        .bind(success)
        .execute(&pool)
        .await
        .unwrap();
    }
    let status = store.migrations().await.unwrap();
    assert_eq!(status.unknown(), vec![99_990_101_000_000]);
    assert_eq!(status.failed, vec![99_990_102_000_000]);
    assert!(status.missing().is_empty());
}

/// A state, rule or OS key the store does not know (a manual edit, or a newer GuardMDM) reads
/// as corrupt data naming the value, not as some other state.
#[tokio::test]
async fn sqlite_unknown_assignment_texts_are_corrupt() {
    use guardmdm_store::testsuite::{audit, new_entry};
    use guardmdm_store::{
        AbmEntryStore, AssignState, AssignmentConfigStore, AssignmentRecord, AssignmentStateStore,
        OsKey, RuleRef, StoreError, now,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let entry = store
        .create_abm_entry(&new_entry("e"), &audit("test", "test"))
        .await
        .unwrap();
    let profile = store
        .create_profile(
            guardmdm_store::ProfileId::new_v4(),
            "p",
            &serde_json::json!({}),
            &audit("test", "test"),
        )
        .await
        .unwrap();
    store
        .set_os_default(OsKey::Ios, Some(profile.id), &audit("test", "test"))
        .await
        .unwrap();
    let record = |serial: &str| AssignmentRecord {
        serial_number: serial.to_string(),
        profile_id: None,
        profile_version: None,
        rule: RuleRef::None,
        state: AssignState::Pending,
        apple_uuid: None,
        attempted_at: None,
        retry_at: None,
        attempts: 0,
        last_error: None,
        updated_at: now(),
    };
    store
        .write_assignments(entry.id, &[record("A"), record("B")])
        .await
        .unwrap();
    let serials = ["A".to_string(), "B".to_string()];
    assert_eq!(
        store.assignments(entry.id, &serials).await.unwrap().len(),
        2
    );

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let corrupt = |err: StoreError| match err {
        StoreError::Corrupt(message) => message,
        other => panic!("expected corrupt data, got {other:?}"),
    };
    sqlx::query("UPDATE abm_device_assignments SET state = 'Pending' WHERE serial_number = 'A'")
        .execute(&pool)
        .await
        .unwrap();
    let message = corrupt(store.assignments(entry.id, &serials).await.unwrap_err());
    assert!(
        message.contains("assignment state \"Pending\""),
        "{message}"
    );
    let message = corrupt(store.assignment_state_counts(entry.id).await.unwrap_err());
    assert!(message.contains("\"Pending\""), "{message}");
    sqlx::query(
        "UPDATE abm_device_assignments SET state = 'pending', rule = 'default:android' \
         WHERE serial_number = 'A'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let message = corrupt(store.assignments(entry.id, &serials).await.unwrap_err());
    assert!(message.contains("rule \"default:android\""), "{message}");
    sqlx::query("UPDATE ade_os_defaults SET os = 'android'")
        .execute(&pool)
        .await
        .unwrap();
    let message = corrupt(store.os_defaults().await.unwrap_err());
    assert!(message.contains("OS \"android\""), "{message}");
    let message = corrupt(store.profile_references(profile.id).await.unwrap_err());
    assert!(message.contains("OS \"android\""), "{message}");
}

/// A status the database holds that no GuardMDM status is spelled as (a newer version's, or
/// a hand edit) reads as corrupt, naming the value, instead of a status the code misreads.
#[tokio::test]
async fn sqlite_an_unknown_stored_status_is_corrupt() {
    use guardmdm_store::{Authenticated, MdmStore, NewCommand, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let at = guardmdm_store::now();
    store
        .record_authenticate(&Authenticated {
            udid: "U1".to_string(),
            serial_number: None,
            topic: "com.apple.mgmt.test".to_string(),
            identity_fingerprint: None,
            device_info: serde_json::json!({}),
            at,
        })
        .await
        .unwrap();
    store
        .enqueue_command(
            &NewCommand {
                uuid: "C1".to_string(),
                udid: "U1".to_string(),
                request_type: "DeviceInformation".to_string(),
                payload: b"<plist/>".to_vec(),
                created_by: "admin".to_string(),
                at,
            },
            None,
        )
        .await
        .unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE mdm_enrollments SET status = 'paused'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE mdm_commands SET status = 'Acknowledged'")
        .execute(&pool)
        .await
        .unwrap();
    match store.enrollment("U1").await {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("\"paused\""), "{message}");
        }
        other => panic!("an unknown enrollment status read as {other:?}"),
    }
    match store.command("C1").await {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("\"Acknowledged\""), "{message}");
        }
        other => panic!("an unknown command status read as {other:?}"),
    }
}

//! The shared conformance suite against PostgreSQL. Needs `GUARDMDM_TEST_DATABASE_URL`
//! (`.ci/run` starts PostgreSQL and sets it); without it every case says SKIPPED loudly.
//! One test per case.

// The helper that makes each case's store fails by panicking, like the cases.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use guardmdm_store::Store;
use guardmdm_store::testsuite::Fresh;
use guardmdm_store_postgres::PostgresStore;
use guardmdm_store_postgres::testing::fresh_database;

/// A new database of its own; `None` (saying so) without `GUARDMDM_TEST_DATABASE_URL`.
async fn fresh_url(what: &str) -> Option<String> {
    #[allow(clippy::disallowed_methods)] // tests read their own switch
    let Ok(admin_url) = std::env::var("GUARDMDM_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: set GUARDMDM_TEST_DATABASE_URL to run {what}");
        return None;
    };
    Some(fresh_database(&admin_url).await.unwrap())
}

/// A store on a database of its own; `None` (saying so) without
/// `GUARDMDM_TEST_DATABASE_URL`.
async fn fresh_store() -> Option<Fresh> {
    let url = fresh_url("the PostgreSQL conformance suite").await?;
    Some(Fresh {
        store: Arc::new(PostgresStore::connect(&url).await.unwrap()) as Arc<dyn Store>,
        keep: Box::new(()),
    })
}

guardmdm_store::conformance_tests!(fresh_store);

/// A merge of staged devices leaves fresh statistics for the device table (until autovacuum
/// analyzes a table loaded in bulk, the device list's first page is planned as for an empty
/// one).
#[tokio::test]
async fn postgres_a_merge_analyzes_the_device_table() {
    use guardmdm_store::testsuite::{audit, new_entry};
    use guardmdm_store::{AbmDevice, AbmEntryStore, DeviceSyncStore, PageWrite, SyncState, now};
    let Some(url) = fresh_url("the PostgreSQL merge test").await else {
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    let entry = store
        .create_abm_entry(&new_entry("e"), &audit("abm.create", "e"))
        .await
        .unwrap();
    let run = store
        .start_sync_run(entry.id, "manual", "me", now())
        .await
        .unwrap();
    let devices: Vec<AbmDevice> = (0..50)
        .map(|i| AbmDevice {
            serial_number: format!("S{i:04}"),
            model: "iPhone 16".to_string(),
            ..AbmDevice::default()
        })
        .collect();
    store
        .stage_device_page(&PageWrite {
            entry_id: entry.id,
            devices: &devices,
            state: &SyncState::default(),
            run_id: run.id,
            at: now(),
        })
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let analyzed = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables \
             WHERE relname = 'abm_devices'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    assert!(!analyzed().await, "not analyzed before the merge");
    assert!(store.merge_staged_devices(entry.id, now()).await.unwrap());
    // Statistics views show what the backend reported; a new snapshot sees the ANALYZE.
    let mut seen = false;
    for _ in 0..50 {
        if analyzed().await {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "abm_devices analyzed by the merge");
}

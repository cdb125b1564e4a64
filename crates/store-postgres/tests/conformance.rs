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

/// A store on a database of its own; `None` (saying so) without
/// `GUARDMDM_TEST_DATABASE_URL`.
async fn fresh_store() -> Option<Fresh> {
    #[allow(clippy::disallowed_methods)] // tests read their own switch
    let Ok(admin_url) = std::env::var("GUARDMDM_TEST_DATABASE_URL") else {
        eprintln!(
            "SKIPPED: set GUARDMDM_TEST_DATABASE_URL to run the PostgreSQL conformance suite"
        );
        return None;
    };
    let url = fresh_database(&admin_url).await.unwrap();
    Some(Fresh {
        store: Arc::new(PostgresStore::connect(&url).await.unwrap()) as Arc<dyn Store>,
        keep: Box::new(()),
    })
}

guardmdm_store::conformance_tests!(fresh_store);

/// A migration recorded by a newer GuardMDM shows as unknown; one that failed midway as
/// failed (the doctor reports both).
#[tokio::test]
async fn postgres_reports_unknown_and_failed_migrations() {
    use guardmdm_store::Backend;
    #[allow(clippy::disallowed_methods)] // tests read their own switch
    let Ok(admin_url) = std::env::var("GUARDMDM_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: set GUARDMDM_TEST_DATABASE_URL to run the PostgreSQL migration case");
        return;
    };
    let url = fresh_database(&admin_url).await.unwrap();
    let store = PostgresStore::connect(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for (version, success) in [(99_990_101_000_000_i64, true), (99_990_102_000_000, false)] {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, 'from a newer GuardMDM', $2, '\\x00'::bytea, 0)",
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

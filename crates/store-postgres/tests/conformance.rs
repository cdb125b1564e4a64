//! The shared conformance suite against PostgreSQL. Needs `GUARDMDM_TEST_DATABASE_URL`
//! (`.ci/run` starts PostgreSQL and sets it); without it the test says SKIPPED loudly.

use std::sync::Arc;

use guardmdm_store::Store;
use guardmdm_store_postgres::PostgresStore;
use guardmdm_store_postgres::testing::fresh_database;

#[tokio::test]
async fn postgres_passes_the_conformance_suite() {
    #[allow(clippy::disallowed_methods)] // tests read their own switch
    let Ok(admin_url) = std::env::var("GUARDMDM_TEST_DATABASE_URL") else {
        eprintln!(
            "SKIPPED: set GUARDMDM_TEST_DATABASE_URL to run the PostgreSQL conformance suite"
        );
        return;
    };
    guardmdm_store::testsuite::run_all(|| {
        let admin_url = admin_url.clone();
        async move {
            let url = fresh_database(&admin_url).await.unwrap();
            Arc::new(PostgresStore::connect(&url).await.unwrap()) as Arc<dyn Store>
        }
    })
    .await;
}

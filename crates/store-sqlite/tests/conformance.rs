//! The shared conformance suite against SQLite (always runs: a file in a temp dir).

use std::sync::Arc;

use guardmdm_store::Store;
use guardmdm_store_sqlite::SqliteStore;

#[tokio::test]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    guardmdm_store::testsuite::run_all(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = dir.path().join(format!("case-{n}.db"));
        async move { Arc::new(SqliteStore::open(&path).await.unwrap()) as Arc<dyn Store> }
    })
    .await;
}

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

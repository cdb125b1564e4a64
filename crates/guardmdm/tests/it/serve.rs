//! `guardmdm serve` as a process: starts with no flags (environment twins only) on SQLite,
//! with `--database-url` on PostgreSQL, answers, keeps secrets out of its logs, and exits
//! cleanly on SIGTERM.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_healthy(base: &str) -> serde_json::Value {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(resp) = client.get(format!("{base}/healthz")).send().await {
            return resp.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not come up at {base}");
}

/// Runs `guardmdm serve ARGS` with `XDG_DATA_HOME` in a temp dir; returns the health answer,
/// the logs, and the data dir's contents.
async fn run_serve(args: &[&str]) -> (serde_json::Value, String, Vec<String>) {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardmdm"))
        .arg("serve")
        .args(args)
        .env("XDG_DATA_HOME", home.path())
        .env("GUARDMDM_LISTEN", format!("127.0.0.1:{port}"))
        // Tests run side by side: each metrics listener on a port of its own.
        .env("GUARDMDM_METRICS_LISTEN", "127.0.0.1:0")
        .env_remove("GUARDMDM_DATABASE_URL")
        .env_remove("GUARDMDM_ADMIN_TOKEN")
        .env_remove("GUARDMDM_SECRET_KEY")
        .env_remove("GUARDMDM_DATA_DIR")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let health = wait_healthy(&format!("http://127.0.0.1:{port}")).await;
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .await
        .unwrap();
    assert!(status.success(), "exit {status:?}: {logs}");
    assert!(
        logs.contains("shutting down") && logs.contains("stopped"),
        "{logs}"
    );
    let data = home.path().join("guardmdm");
    let mut files: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    for secret in ["secret.key", "admin-token"] {
        let value = std::fs::read_to_string(data.join(secret)).unwrap();
        assert!(!logs.contains(value.trim()), "{secret} value in the logs");
    }
    (health, logs, files)
}

#[tokio::test]
async fn serve_starts_with_no_flags_on_sqlite_and_stops_on_sigterm() {
    let (health, logs, files) = run_serve(&[]).await;
    assert_eq!(health["database"], "sqlite");
    assert!(files.contains(&"guardmdm.db".to_string()), "{files:?}");
    assert!(
        files.contains(&"secret.key".to_string()) && files.contains(&"admin-token".to_string())
    );
    assert!(logs.contains("GuardMDM 0.1.0 is serving"), "{logs}");
}

#[tokio::test]
async fn serve_runs_on_postgresql_with_database_url() {
    let Some(admin_url) = common::pg_admin_url() else {
        eprintln!("SKIPPED: set GUARDMDM_TEST_DATABASE_URL to run serve on PostgreSQL");
        return;
    };
    let url = guardmdm_store_postgres::testing::fresh_database(&admin_url)
        .await
        .unwrap();
    let (health, logs, files) = run_serve(&["--database-url", &url]).await;
    assert_eq!(health["database"], "postgres");
    assert!(!files.contains(&"guardmdm.db".to_string()), "{files:?}");
    let password = url.split(':').nth(2).unwrap().split('@').next().unwrap();
    assert!(
        !logs.contains(&format!(":{password}@")),
        "database password in the logs: {logs}"
    );
}

//! `guardmdm backup` while the server runs and writes, then the documented restore: stop,
//! put the copy and `secret.key` into a new data dir, start, everything is there.

#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::path::Path;

use common::serve::Serve;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Nothing answers here: the test never syncs.
const NO_ABM: &str = "http://127.0.0.1:9";

async fn profile_names(serve: &Serve) -> Vec<String> {
    let (status, list) = serve.json(Method::GET, "/api/v1/profiles", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn public_key(serve: &Serve) -> String {
    let resp = serve
        .http
        .get(serve.url("/api/v1/abm/tokens/main/public-key"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

fn backup(data_dir: &Path, file: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_guardmdm"))
        .arg("backup")
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("GUARDMDM_DATABASE_URL")
        .output()
        .unwrap()
}

#[tokio::test]
async fn an_online_backup_restores_into_a_new_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let old = root.path().join("old");
    let serve = Serve::start(&old, NO_ABM, &[]).await;
    let (status, body) = serve
        .json(
            Method::POST,
            "/api/v1/abm/tokens",
            Some(json!({ "name": "main" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key_before = public_key(&serve).await;
    for i in 0..20 {
        let (status, body) = serve
            .json(
                Method::POST,
                "/api/v1/profiles",
                Some(json!({ "name": format!("p{i:02}") })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // Writes go on while the copy is taken: the copy holds a consistent prefix of them.
    let writer = {
        let base = serve.base.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 20..60 {
                let resp = http
                    .post(format!("{base}/api/v1/profiles"))
                    .bearer_auth(common::ADMIN_TOKEN)
                    .json(&json!({ "name": format!("p{i:02}") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::CREATED);
            }
        })
    };
    let file = root.path().join("guardmdm-backup.db");
    let out = tokio::task::spawn_blocking({
        let (old, file) = (old.clone(), file.clone());
        move || backup(&old, &file)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("secret.key"),
        "the restore needs the key: {stdout}"
    );
    writer.await.unwrap();

    // A second backup to the same file is refused; the first stays whole.
    let again = backup(&old, &file);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    serve.stop().await;

    // Restore without the key: the server refuses to start rather than run on secrets it
    // cannot open.
    let keyless = root.path().join("keyless");
    std::fs::create_dir(&keyless).unwrap();
    std::fs::copy(&file, keyless.join("guardmdm.db")).unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_guardmdm"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--data-dir",
        ])
        .arg(&keyless)
        .args(["--admin-token", common::ADMIN_TOKEN])
        .env_remove("GUARDMDM_DATABASE_URL")
        .env_remove("GUARDMDM_SECRET_KEY")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("secret key"), "{why}");

    // The documented restore: the copy as guardmdm.db, and secret.key, in a new data dir.
    let new = root.path().join("new");
    std::fs::create_dir(&new).unwrap();
    std::fs::copy(&file, new.join("guardmdm.db")).unwrap();
    std::fs::copy(old.join("secret.key"), new.join("secret.key")).unwrap();
    let restored = Serve::start(&new, NO_ABM, &[]).await;
    let names = profile_names(&restored).await;
    assert!(names.len() >= 20 && names.len() <= 60, "{names:?}");
    let expected: Vec<String> = (0..names.len()).map(|i| format!("p{i:02}")).collect();
    assert_eq!(
        names, expected,
        "a consistent prefix of the writes, no gaps"
    );
    // The entry's private key was sealed with secret.key: it opens, and is the same key.
    assert_eq!(public_key(&restored).await, key_before);
    restored.stop().await;
}

#[tokio::test]
async fn backup_reads_the_database_url_like_serve_and_refuses_postgres() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("elsewhere.db");
    drop(guardmdm_store_sqlite::SqliteStore::open(&db).await.unwrap());
    let run = |url: String, file: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_guardmdm"))
            .arg("backup")
            .arg(file)
            .args(["--database-url", &url])
            .output()
            .unwrap()
    };
    let copy = root.path().join("copy.db");
    let out = run(format!("sqlite://{}", db.display()), &copy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(copy.is_file());

    let refused = run(
        "postgres://guardmdm@db.example.com/guardmdm".to_string(),
        &root.path().join("pg.db"),
    );
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("pg_dump"), "{why}");
    assert!(!root.path().join("pg.db").exists());
}

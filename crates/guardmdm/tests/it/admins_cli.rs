//! `guardmdm admins …`: the first dashboard admin comes from the command line, the password
//! from standard input; every change is audited.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use common::web::WebClient;
use common::{ADMIN_TOKEN, Backend, TestApp, run_cli};
use reqwest::{Method, StatusCode};

use common::run_cli_stdin as run_with_stdin;

#[tokio::test]
async fn admins_create_list_delete_from_the_cli() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();

    let created = run_with_stdin(
        &app,
        &["admins", "create", "alice", "--password-stdin"],
        "a long enough password\n",
    )
    .await;
    assert!(created.ok, "{}", created.stderr);
    assert!(
        created.stderr.contains("Created admin \"alice\""),
        "{}",
        created.stderr
    );
    assert!(created.stderr.contains("/signin"));

    // The password works in the dashboard.
    let mut web = WebClient::new(&app);
    let page = web
        .sign_in("alice", "a long enough password", "/devices")
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);

    // Bad input is refused with the reason.
    let short = run_with_stdin(
        &app,
        &["admins", "create", "bob", "--password-stdin"],
        "short\n",
    )
    .await;
    assert!(!short.ok);
    assert!(short.stderr.contains("at least 12"), "{}", short.stderr);
    let no_flag = run_with_stdin(
        &app,
        &["admins", "create", "bob"],
        "a long enough password\n",
    )
    .await;
    assert!(!no_flag.ok);
    assert!(
        no_flag.stderr.contains("--password-stdin"),
        "{}",
        no_flag.stderr
    );
    let spaced = run_with_stdin(
        &app,
        &["admins", "create", "alice smith", "--password-stdin"],
        "a long enough password\n",
    )
    .await;
    assert!(!spaced.ok);
    assert!(spaced.stderr.contains("admin name"), "{}", spaced.stderr);
    let dup = run_with_stdin(
        &app,
        &["admins", "create", "alice", "--password-stdin"],
        "another long password\n",
    )
    .await;
    assert!(!dup.ok);
    assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);

    let list = run_cli(&app, Some(ADMIN_TOKEN), dir.path(), &["admins", "list"]).await;
    assert!(list.ok, "{}", list.stderr);
    assert!(list.stdout.starts_with("NAME"), "{}", list.stdout);
    assert!(list.stdout.contains("alice"));
    assert!(!list.stdout.contains("argon2"), "no hashes");
    let json = run_cli(
        &app,
        Some(ADMIN_TOKEN),
        dir.path(),
        &["admins", "list", "--json"],
    )
    .await;
    let admins: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(admins[0]["name"], "alice");
    assert!(admins[0]["last_sign_in_at"].is_string());
    assert!(admins[0].get("password_hash").is_none());

    let deleted = run_cli(
        &app,
        Some(ADMIN_TOKEN),
        dir.path(),
        &["admins", "delete", "alice"],
    )
    .await;
    assert!(deleted.ok, "{}", deleted.stderr);
    // Deleting ends the admin's sessions.
    assert_eq!(web.get("/devices").await.status, StatusCode::SEE_OTHER);
    let again = run_cli(
        &app,
        Some(ADMIN_TOKEN),
        dir.path(),
        &["admins", "delete", "alice"],
    )
    .await;
    assert!(!again.ok);
    assert!(again.stderr.contains("no admin named"), "{}", again.stderr);

    let (_, audit) = app.json(Method::GET, "/api/v1/audit?limit=10", None).await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["admin.delete", "admin.sign_in", "admin.create"]);
    app.stop().await;
}

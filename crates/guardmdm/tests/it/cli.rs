//! The admin CLI, run as the real binary against a real server: the ABM token flow end to
//! end, API tokens, the audit log, and a clear error with a non-zero exit for every mistake.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::path::Path;

use common::{ADMIN_TOKEN, Backend, TestApp};

use common::CliOutput as Output;

async fn guardmdm(app: &TestApp, token: Option<&str>, cwd: &Path, args: &[&str]) -> Output {
    common::run_cli(app, token, cwd, args).await
}

async fn admin(app: &TestApp, cwd: &Path, args: &[&str]) -> Output {
    guardmdm(app, Some(ADMIN_TOKEN), cwd, args).await
}

fn fails_with(out: &Output, message: &str) {
    assert!(!out.ok, "expected a failure, got: {}", out.stdout);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(
        out.stderr.contains(message),
        "expected {message:?} in {:?}",
        out.stderr
    );
}

#[tokio::test]
async fn abm_token_flow_through_the_cli() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let work = tempfile::tempdir().unwrap();
        let cwd = work.path();

        let out = admin(
            &app,
            cwd,
            &[
                "abm",
                "token",
                "create",
                "main",
                "-o",
                "main.pem",
                "--batch-size",
                "200",
            ],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert!(
            out.stderr.contains("guardmdm abm entry upload main"),
            "{}",
            out.stderr
        );
        let pem = std::fs::read_to_string(cwd.join("main.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));

        let out = admin(&app, cwd, &["abm", "entry", "public-key", "main"]).await;
        assert_eq!(out.stdout, pem);

        // The admin registers the PEM in (simulated) ABM and downloads the server token.
        let server = app.abm.sim.register_server("GuardMDM Main", &pem).unwrap();
        let token = app
            .abm
            .sim
            .download_token(&server.server_uuid, None)
            .unwrap();
        assert!(
            token.file_name.ends_with("_smime.p7m"),
            "{}",
            token.file_name
        );
        std::fs::write(cwd.join(&token.file_name), &token.contents).unwrap();
        let out = admin(
            &app,
            cwd,
            &["abm", "entry", "upload", "main", &token.file_name],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert!(
            out.stdout.contains("Server token installed for \"main\""),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("ABM MDM server \"GuardMDM Main\""),
            "{}",
            out.stdout
        );

        let out = admin(&app, cwd, &["abm", "entry", "list"]).await;
        assert!(out.ok, "{}", out.stderr);
        let row = out.stdout.lines().find(|l| l.starts_with("main ")).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            (cells[1], cells[3], cells[5]),
            ("active", "364", "200"),
            "{row}"
        );
        // `abm token`, the entry's name in earlier releases, is an alias.
        let alias = admin(&app, cwd, &["abm", "token", "list"]).await;
        assert_eq!(
            alias.stdout,
            admin(&app, cwd, &["abm", "entry", "list"]).await.stdout
        );
        let out = admin(&app, cwd, &["abm", "entry", "list", "--json"]).await;
        let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(json[0]["health"]["state"], "active");

        // Renewal with another MDM server's token needs --force.
        let other = app.abm.sim.register_server("Other", &pem).unwrap();
        let other_token = app
            .abm
            .sim
            .download_token(&other.server_uuid, None)
            .unwrap();
        std::fs::write(cwd.join("other.p7m"), &other_token.contents).unwrap();
        fails_with(
            &admin(&app, cwd, &["abm", "entry", "upload", "main", "other.p7m"]).await,
            "--force",
        );
        let out = admin(
            &app,
            cwd,
            &["abm", "entry", "upload", "main", "other.p7m", "--force"],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);

        let out = admin(
            &app,
            cwd,
            &[
                "abm",
                "token",
                "set",
                "main",
                "--abm-url",
                "http://127.0.0.1:1/",
            ],
        )
        .await;
        assert!(
            out.ok && out.stdout.contains("http://127.0.0.1:1/"),
            "{}{}",
            out.stdout,
            out.stderr
        );

        let out = admin(&app, cwd, &["audit", "--limit", "3"]).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(
            out.stdout.contains("abm_token.set") && out.stdout.contains("abm_token.renew"),
            "{}",
            out.stdout
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn cli_mistakes_fail_with_a_clear_message() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();
    assert!(
        admin(&app, cwd, &["abm", "entry", "create", "main"])
            .await
            .ok
    );
    assert!(
        cwd.join("GuardMDM_main.pem").exists(),
        "default PEM file name"
    );
    std::fs::write(cwd.join("notes.txt"), "hello").unwrap();

    fails_with(
        &admin(&app, cwd, &["abm", "entry", "upload", "main", "notes.txt"]).await,
        "not an ABM server token",
    );
    fails_with(
        &admin(
            &app,
            cwd,
            &["abm", "entry", "upload", "main", "missing.p7m"],
        )
        .await,
        "cannot read the token file missing.p7m",
    );
    fails_with(
        &admin(&app, cwd, &["abm", "entry", "upload", "ghost", "notes.txt"]).await,
        "no ABM entry named \"ghost\"",
    );
    fails_with(
        &admin(&app, cwd, &["abm", "entry", "create", "main"]).await,
        "already exists",
    );
    fails_with(
        &admin(
            &app,
            cwd,
            &["abm", "entry", "set", "main", "--batch-size", "5000"],
        )
        .await,
        "1 to 1000",
    );
    fails_with(
        &admin(&app, cwd, &["abm", "entry", "set", "main"]).await,
        "nothing to change",
    );
    fails_with(
        &admin(&app, cwd, &["abm", "entry", "delete", "main"]).await,
        "--yes",
    );
    fails_with(
        &guardmdm(&app, None, cwd, &["abm", "entry", "list"]).await,
        "no API token",
    );
    fails_with(
        &guardmdm(&app, Some("wrong-token"), cwd, &["abm", "entry", "list"]).await,
        "HTTP 401",
    );
    let mut dead = guardmdm(
        &app,
        Some(ADMIN_TOKEN),
        cwd,
        &["abm", "entry", "list", "--url", "http://127.0.0.1:9"],
    )
    .await;
    dead.stderr = dead.stderr.replace('\n', " ");
    fails_with(&dead, "cannot reach GuardMDM at http://127.0.0.1:9");
    assert!(
        admin(&app, cwd, &["abm", "entry", "delete", "main", "--yes"])
            .await
            .ok
    );
    app.stop().await;
}

#[tokio::test]
async fn api_tokens_through_the_cli() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();
    let out = admin(&app, cwd, &["api-tokens", "create", "ci"]).await;
    assert!(out.ok, "{}", out.stderr);
    let token = out.stdout.trim().to_string();
    assert!(
        token.starts_with("gmdm_") && !token.contains(char::is_whitespace),
        "{token}"
    );
    let out = guardmdm(&app, Some(&token), cwd, &["api-tokens", "list"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.lines().nth(1).unwrap().starts_with("ci "),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&token));
    assert!(admin(&app, cwd, &["api-tokens", "revoke", "ci"]).await.ok);
    fails_with(
        &guardmdm(&app, Some(&token), cwd, &["api-tokens", "list"]).await,
        "HTTP 401",
    );
    app.stop().await;
}

#[tokio::test]
async fn sync_now_syncs_and_devices_through_the_cli() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();
    let server = app.connect_abm("main").await;
    let _ = app.abm.sim.add_devices(130, None);

    let out = admin(&app, cwd, &["abm", "sync", "main", "--wait"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("succeeded") && out.stdout.contains("130 added"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("Started sync #1"), "{}", out.stderr);

    let out = admin(&app, cwd, &["abm", "syncs", "main"]).await;
    assert!(out.ok, "{}", out.stderr);
    let row: Vec<&str> = out
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        (row[0], row[1], row[4], row[6]),
        ("1", "manual", "succeeded", "130"),
        "{}",
        out.stdout
    );

    let out = admin(
        &app,
        cwd,
        &["devices", "list", "--token", "main", "--limit", "1000"],
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 131, "a header and 130 devices");
    let first = app.abm_set(&server).into_iter().next().unwrap();
    assert!(out.stdout.lines().nth(1).unwrap().starts_with(&first));
    let out = admin(&app, cwd, &["devices", "list", "--limit", "100"]).await;
    let cursor = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("More: --after "))
        .unwrap_or_else(|| panic!("{}", out.stderr))
        .to_string();
    let rest = admin(
        &app,
        cwd,
        &["devices", "list", "--limit", "100", "--after", &cursor],
    )
    .await;
    assert!(rest.ok, "{}", rest.stderr);
    assert_eq!(rest.stdout.lines().count(), 31, "a header and the other 30");
    assert!(!rest.stderr.contains("More:"), "{}", rest.stderr);
    // The same page by the last serial, as scripts paged before cursors.
    let last = out.stdout.lines().last().unwrap().split_whitespace().next();
    let by_serial = admin(
        &app,
        cwd,
        &[
            "devices",
            "list",
            "--limit",
            "100",
            "--after",
            last.unwrap(),
        ],
    )
    .await;
    assert_eq!(by_serial.stdout, rest.stdout);
    // The API behind it: the next page's Link repeats the filters.
    let first = app
        .admin(
            reqwest::Method::GET,
            "/api/v1/devices?token=main&abm_status=assigned&limit=100",
        )
        .send()
        .await
        .unwrap();
    let link = first.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(
        first.json::<Vec<serde_json::Value>>().await.unwrap().len(),
        100
    );
    let next = link
        .strip_prefix('<')
        .and_then(|l| l.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("{link}"));
    assert!(
        next.contains("entry=main") && next.contains("abm_status=assigned"),
        "{next}"
    );
    let last = app.admin(reqwest::Method::GET, next).send().await.unwrap();
    assert!(last.headers().get("link").is_none(), "the last page");
    assert_eq!(
        last.json::<Vec<serde_json::Value>>().await.unwrap().len(),
        30
    );
    let (_, removed) = app
        .json(
            reqwest::Method::GET,
            "/api/v1/devices?abm_status=removed",
            None,
        )
        .await;
    assert_eq!(removed, serde_json::json!([]));

    // The entry shows its last sync; mistakes are named.
    let out = admin(&app, cwd, &["abm", "entry", "list"]).await;
    assert!(
        !out.stdout.lines().nth(1).unwrap().contains(" never "),
        "{}",
        out.stdout
    );
    fails_with(
        &admin(&app, cwd, &["abm", "sync", "ghost"]).await,
        "no ABM entry named \"ghost\"",
    );
    assert!(
        admin(&app, cwd, &["abm", "entry", "create", "later"])
            .await
            .ok
    );
    fails_with(
        &admin(&app, cwd, &["abm", "sync", "later"]).await,
        "no server token yet",
    );
    fails_with(
        &admin(&app, cwd, &["devices", "list", "--status", "lost"]).await,
        "use unassigned, pending, assigned, pushed, enrolled or removed",
    );
    app.stop().await;
}

#[tokio::test]
async fn profiles_groups_and_device_explanations_through_the_cli() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let work = tempfile::tempdir().unwrap();
        let cwd = work.path();
        let _server = app.connect_abm("main").await;
        let tvs = app
            .abm
            .sim
            .add_devices(3, Some(guardmdm_sim::DeviceFamily::AppleTv));
        let phones = app
            .abm
            .sim
            .add_devices(3, Some(guardmdm_sim::DeviceFamily::IPhone));
        app.sync("main", false).await;

        std::fs::write(
            cwd.join("corp.yaml"),
            "name: corp\nenrollment_type: automated\ndepartment: IT\nskip_setup_items: [Siri, AppleId]\n",
        )
        .unwrap();
        let out = admin(&app, cwd, &["profiles", "create", "--file", "corp.yaml"]).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(
            out.stdout.contains("Created profile \"corp\""),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("AppleID"),
            "did you mean: {}",
            out.stdout
        );

        std::fs::write(
            cwd.join("bad.json"),
            r#"{"name": "bad", "is_supervised": false, "is_mdm_removable": false, "support_email_address": "x"}"#,
        )
        .unwrap();
        let out = admin(&app, cwd, &["profiles", "create", "--file", "bad.json"]).await;
        fails_with(&out, "FLAGS_INVALID");
        assert!(
            out.stderr.contains("SUPPORT_EMAIL_INVALID"),
            "{}",
            out.stderr
        );

        let out = admin(&app, cwd, &["profiles", "default", "--os", "ios", "corp"]).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(
            out.stdout.contains("uses the iOS default corp"),
            "iPadOS falls back: {}",
            out.stdout
        );
        let out = admin(
            &app,
            cwd,
            &["profiles", "default", "--os", "android", "corp"],
        )
        .await;
        fails_with(&out, "unknown OS");

        let out = admin(
            &app,
            cwd,
            &[
                "groups",
                "create",
                "tvs",
                "--rule",
                "family=AppleTV",
                "--profile",
                "corp",
                "--priority",
                "5",
            ],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("family=AppleTV"), "{}", out.stdout);
        let out = admin(&app, cwd, &["groups", "create", "x", "--rule", "imei=1"]).await;
        fails_with(&out, "unknown rule field");

        std::fs::write(
            cwd.join("serials.csv"),
            format!(
                "Serial Number\r\n{}\r\nNOTASERIAL00\r\nbad!\r\n",
                phones[0].serial_number.to_lowercase()
            ),
        )
        .unwrap();
        let out = admin(
            &app,
            cwd,
            &[
                "profiles",
                "assign",
                "corp",
                "--csv",
                "serials.csv",
                "--dry-run",
            ],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("would apply 1"), "{}", out.stdout);
        assert!(out.stdout.contains("unknown_serial"), "{}", out.stdout);
        assert!(out.stdout.contains("malformed"), "{}", out.stdout);
        assert!(out.stdout.contains("dry run"), "{}", out.stdout);
        let out = admin(
            &app,
            cwd,
            &[
                "profiles",
                "assign",
                "corp",
                "--serial",
                &phones[1].serial_number,
            ],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("applied 1"), "{}", out.stdout);

        app.sync("main", false).await;
        let out = admin(&app, cwd, &["devices", "show", &tvs[0].serial_number]).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(
            out.stdout.contains("corp v1 (by group \"tvs\")"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("Why:"), "{}", out.stdout);
        assert!(
            out.stdout.contains("Assignment:         assigned"),
            "{}",
            out.stdout
        );
        let out = admin(&app, cwd, &["devices", "list", "--assignment", "assigned"]).await;
        assert!(out.ok, "{}", out.stderr);
        assert_eq!(out.stdout.lines().count(), 1 + 6, "{}", out.stdout);
        let out = admin(&app, cwd, &["devices", "show", "NOSUCHSERIAL1"]).await;
        fails_with(&out, "no ABM device with serial NOSUCHSERIAL1");

        let out = admin(&app, cwd, &["profiles", "show", "corp"]).await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("automated"), "{}", out.stdout);
        assert!(
            out.stdout.contains("(current)"),
            "Apple's UUID: {}",
            out.stdout
        );
        std::fs::write(
            cwd.join("corp2.yaml"),
            "name: corp\ndepartment: Facilities\n",
        )
        .unwrap();
        let out = admin(
            &app,
            cwd,
            &[
                "profiles",
                "update",
                "corp",
                "--file",
                "corp2.yaml",
                "--expected-version",
                "7",
            ],
        )
        .await;
        fails_with(&out, "is at version 1");
        let out = admin(
            &app,
            cwd,
            &["profiles", "update", "corp", "--file", "corp2.yaml"],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("now version 2"), "{}", out.stdout);
        let out = admin(&app, cwd, &["profiles", "versions", "corp"]).await;
        assert!(out.ok && out.stdout.lines().count() == 3, "{}", out.stdout);
        let out = admin(&app, cwd, &["profiles", "delete", "corp"]).await;
        fails_with(&out, "ios");
        let out = admin(&app, cwd, &["groups", "list", "--json"]).await;
        let groups: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(groups[0]["name"], "tvs");
        app.stop().await;
    }
}

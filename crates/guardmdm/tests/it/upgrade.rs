//! Databases written by an earlier release upgrade in place with nothing lost.
//!
//! `tests/fixtures/upgrade-0.1-sqlite/` holds a SQLite data dir (an ABM entry with its token,
//! synced devices, profiles with versions, an OS default, a static group, a device-level
//! assignment, two enrolled devices with answered commands, the push certificate, an admin, an
//! API token, the audit log) and `manifest.json`, everything the REST API showed of it then;
//! `upgrade-0.1-postgres/` the same written to PostgreSQL, as a `pg_dump` (restored with
//! `psql`). Both were written by the binary of commit a75f798 (version 0.1.0, migrations 1–9)
//! running `write_the_fixtures` (ignored), this file copied into a checkout of that commit. The
//! tests start today's binary on a copy (its later migrations run) and check that the API shows
//! exactly the same. Run the writer again only on a released commit's checkout, to freeze that
//! release's format, never on the current code and never to make a test pass.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::path::{Path, PathBuf};

use common::mdm::{buy, pushed, setup};
use common::serve::Serve;
use common::{ADMIN_TOKEN, Backend, all_pages};
use guardmdm_sim::SimDevice;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

/// Fields not stored but computed: from the clock (`days_left`, `health`), kept in memory
/// (`push`), or rendered from a profile's stored spec with this server's `--public-url`
/// (`apple`, what Apple receives, and `warnings`).
const VOLATILE: &[&str] = &["days_left", "health", "push", "apple", "warnings"];

/// The last migration of 0.1. The fixtures hold exactly migrations 1 to this one, so every
/// later migration runs on their data.
const FROZEN_AT: i64 = 9;

fn frozen_versions() -> Vec<i64> {
    (1..=FROZEN_AT).collect()
}

fn fixture_dir(backend: Backend) -> PathBuf {
    let name = match backend {
        Backend::Sqlite => "upgrade-0.1-sqlite",
        Backend::Postgres => "upgrade-0.1-postgres",
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected(fixture: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture.join("manifest.json")).unwrap()).unwrap()
}

/// Today's binary on the restored data: the API must show what 0.1 showed.
async fn check(data: &Path, fixture: &Path, args: &[&str]) {
    // Nothing answers at this ABM URL: the schedule's syncs fail and change no record shown.
    let serve = Serve::start(data, "http://127.0.0.1:9", args).await;
    let seen = dump(&serve.http, &serve.base).await;
    serve.stop().await;
    let expected = expected(fixture);
    for (part, want) in expected.as_object().unwrap() {
        if let Err(at) = shows_all_of(&seen[part], want, part) {
            panic!("{at} changed in the upgrade: {}", seen[part]);
        }
    }
    assert_eq!(
        seen.as_object().unwrap().len(),
        expected.as_object().unwrap().len()
    );
}

/// Whether `seen` shows everything `want` shows: the same arrays, element by element, and
/// objects with at least `want`'s fields and the same values (a field added to the API
/// since is not a change); `Err` with where they differ.
fn shows_all_of(seen: &Value, want: &Value, at: &str) -> Result<(), String> {
    match (seen, want) {
        (Value::Object(seen), Value::Object(want)) => want.iter().try_for_each(|(k, w)| {
            shows_all_of(seen.get(k).unwrap_or(&Value::Null), w, &format!("{at}.{k}"))
        }),
        (Value::Array(seen), Value::Array(want)) if seen.len() == want.len() => seen
            .iter()
            .zip(want)
            .enumerate()
            .try_for_each(|(i, (s, w))| shows_all_of(s, w, &format!("{at}[{i}]"))),
        _ if seen == want => Ok(()),
        _ => Err(at.to_string()),
    }
}

fn run(command: &mut std::process::Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GET `path` with the admin token, as JSON.
async fn get(http: &reqwest::Client, base: &str, path: &str) -> Value {
    let resp = http
        .get(format!("{base}/api/v1{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.json().await.unwrap()
}

/// Drops the volatile fields, recursively.
fn stable(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !VOLATILE.contains(&k.as_str()))
                .map(|(k, v)| (k, stable(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(stable).collect()),
        other => other,
    }
}

/// What the REST API shows of everything stored.
async fn dump(http: &reqwest::Client, base: &str) -> Value {
    let mut out = Map::new();
    out.insert("abm_tokens".into(), get(http, base, "/abm/tokens").await);
    out.insert(
        "devices".into(),
        Value::Array(all_pages(http, base, "/api/v1/devices", "serial_number").await),
    );
    let profiles = get(http, base, "/profiles").await;
    let mut versions = Map::new();
    for p in profiles.as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        versions.insert(
            name.into(),
            get(http, base, &format!("/profiles/{name}/versions")).await,
        );
    }
    out.insert("profiles".into(), profiles);
    out.insert("profile_versions".into(), Value::Object(versions));
    out.insert("os_defaults".into(), get(http, base, "/os-defaults").await);
    let groups = get(http, base, "/groups").await;
    let mut members = Map::new();
    for g in groups.as_array().unwrap() {
        let name = g["name"].as_str().unwrap();
        if g["kind"] == "static" || g["rule"].is_null() {
            members.insert(
                name.into(),
                get(http, base, &format!("/groups/{name}/members")).await,
            );
        }
    }
    out.insert("groups".into(), groups);
    out.insert("group_members".into(), Value::Object(members));
    let enrollments = get(http, base, "/enrollments").await;
    let mut commands = Map::new();
    for e in enrollments.as_array().unwrap() {
        let udid = e["udid"].as_str().unwrap();
        let list = get(http, base, &format!("/enrollments/{udid}/commands")).await;
        let mut full = Vec::new();
        for c in list.as_array().unwrap() {
            let uuid = c["uuid"].as_str().unwrap();
            full.push(get(http, base, &format!("/commands/{uuid}")).await);
        }
        commands.insert(udid.into(), Value::Array(full));
    }
    out.insert("enrollments".into(), enrollments);
    out.insert("commands".into(), Value::Object(commands));
    let mut apns = get(http, base, "/apns").await;
    // Its state and message follow the clock (active, then expiring, then expired).
    for computed in ["state", "message"] {
        apns.as_object_mut().unwrap().remove(computed);
    }
    out.insert("apns".into(), apns);
    out.insert("admins".into(), get(http, base, "/admins").await);
    out.insert("api_tokens".into(), get(http, base, "/api-tokens").await);
    out.insert("audit".into(), get(http, base, "/audit?limit=500").await);
    stable(Value::Object(out))
}

#[tokio::test]
async fn a_sqlite_database_written_by_release_0_1_upgrades_with_nothing_lost() {
    let fixture = fixture_dir(Backend::Sqlite);
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    for file in ["guardmdm.db", "secret.key"] {
        std::fs::copy(fixture.join(file), data.join(file)).unwrap();
    }
    let db = data.join("guardmdm.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    assert_eq!(versions, frozen_versions(), "the fixture is 0.1's schema");
    check(&data, &fixture, &[]).await;
}

#[tokio::test]
async fn a_postgres_database_written_by_release_0_1_upgrades_with_nothing_lost() {
    if common::pg_or_skip("run the PostgreSQL upgrade test").is_none() {
        return;
    }
    let fixture = fixture_dir(Backend::Postgres);
    let dump = std::fs::read_to_string(fixture.join("dump.sql")).unwrap();
    let versions: Vec<i64> = dump
        .lines()
        .skip_while(|line| !line.starts_with("COPY public._sqlx_migrations "))
        .skip(1)
        .take_while(|line| *line != "\\.")
        .map(|line| line.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(versions, frozen_versions(), "the fixture is 0.1's schema");
    let url = common::fresh_database_url(Backend::Postgres).await.unwrap();
    run(std::process::Command::new("psql")
        .args(["--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(fixture.join("dump.sql"))
        .arg(&url));
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(fixture.join("secret.key"), data.join("secret.key")).unwrap();
    check(&data, &fixture, &["--database-url", &url]).await;
}

#[tokio::test]
#[ignore = "writes tests/fixtures/upgrade-0.1-*: run by hand to freeze a release's format"]
async fn write_the_fixtures() {
    assert!(
        common::pg_admin_url().is_some(),
        "both fixtures: set GUARDMDM_TEST_DATABASE_URL"
    );
    for backend in [Backend::Sqlite, Backend::Postgres] {
        write_fixture(backend).await;
    }
}

async fn write_fixture(backend: Backend) {
    let mdm = setup(backend).await;
    let app = &mdm.app;
    let serials = buy(&mdm, 6).await;
    for serial in &serials[..2] {
        let device = SimDevice::new(&app.abm.sim, serial, &mdm.ca).unwrap();
        device.attach_apns(&mdm.apns.apns);
        assert!(device.enroll_and_run(&app.abm.sim).await.unwrap().enrolled);
        let (status, c) = app
            .json(
                Method::POST,
                &format!("/api/v1/enrollments/{}/commands", device.udid()),
                Some(json!({ "request_type": "DeviceInformation" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        pushed(&mdm, device.udid()).await;
    }
    for (method, path, body) in [
        (
            Method::POST,
            "/profiles",
            json!({ "name": "exec", "department": "Board", "skip_setup_items": ["Siri"] }),
        ),
        (
            Method::PUT,
            "/profiles/exec",
            json!({ "name": "exec", "department": "Board room", "skip_setup_items": ["Siri"] }),
        ),
        (
            Method::POST,
            "/groups",
            json!({ "name": "board", "profile": "exec" }),
        ),
        (
            Method::POST,
            "/groups/board/members",
            json!({ "serials": [serials[2].clone()] }),
        ),
        (
            Method::POST,
            "/profiles/exec/assign",
            json!({ "serials": [serials[3].clone()] }),
        ),
        (
            Method::POST,
            "/admins",
            json!({ "name": "ada", "password": "correct horse battery staple" }),
        ),
        (Method::POST, "/api-tokens", json!({ "name": "ci" })),
    ] {
        let (status, answer) = app
            .json(method, &format!("/api/v1{path}"), Some(body))
            .await;
        assert!(status.is_success(), "{path}: {status} {answer}");
    }
    app.sync("main", false).await;
    let manifest = dump(&app.http, &app.base).await;
    let database_url = app.database_url.clone();
    let dir = mdm.app.stop().await;
    let data = dir.path().join("data");
    let fixture = fixture_dir(backend);
    let _ = std::fs::remove_dir_all(&fixture);
    std::fs::create_dir_all(&fixture).unwrap();
    match database_url {
        None => guardmdm_store_sqlite::backup::backup(
            &data.join("guardmdm.db"),
            &fixture.join("guardmdm.db"),
        )
        .await
        .map(drop)
        .unwrap(),
        Some(url) => run(std::process::Command::new("pg_dump")
            .args(["--no-owner", "--no-privileges", "--file"])
            .arg(fixture.join("dump.sql"))
            .arg(&url)),
    }
    std::fs::copy(data.join("secret.key"), fixture.join("secret.key")).unwrap();
    std::fs::write(
        fixture.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap() + "\n",
    )
    .unwrap();
}

//! `guardmdm demo` starts the whole story: ABM connected, profiles per OS, devices synced and
//! enrolling over time, all visible through the REST API.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use std::time::Duration;

use guardmdm::demo::{DemoArgs, start};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_connects_abm_assigns_profiles_and_enrolls_devices() {
    guardmdm::telemetry::init(guardmdm::telemetry::LogFormat::Text, "warn");
    let dir = tempfile::tempdir().unwrap();
    let demo = start(DemoArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(dir.path().to_path_buf()),
        devices: 12,
        enroll_every: 0.05,
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let get = |path: &str| {
        http.get(format!("{}/api/v1{path}", demo.url))
            .bearer_auth(&demo.admin_token)
            .send()
    };
    let entries: Value = get("/abm/tokens").await.unwrap().json().await.unwrap();
    assert_eq!(entries[0]["health"]["state"], "active", "{entries}");
    let defaults: Value = get("/os-defaults").await.unwrap().json().await.unwrap();
    assert!(
        defaults
            .as_array()
            .unwrap()
            .iter()
            .all(|d| !d["profile"].is_null()),
        "{defaults}"
    );
    let mut enrolled = 0;
    for _ in 0..400 {
        let list: Value = get("/enrollments?status=enrolled")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        enrolled = list.as_array().unwrap().len();
        if enrolled >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(enrolled >= 8, "only {enrolled} devices enrolled");
    let devices: Value = get("/devices?limit=100")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assigned = devices
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            matches!(
                d["assignment"]["state"].as_str(),
                Some("assigned" | "pushed")
            )
        })
        .count();
    assert_eq!(assigned, 12, "{devices}");

    // The first dashboard admin exists: signing in opens onto the devices, Enrolled ones
    // among them.
    assert_eq!(demo.admin_name, "admin");
    assert!(demo.admin_password.len() >= 12);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = format!("name=admin&password={}&next=%2F", demo.admin_password);
    let signed_in = browser
        .post(format!("{}/signin", demo.url))
        .header("origin", &demo.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), reqwest::StatusCode::SEE_OTHER);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = browser
        .get(format!("{}/devices?status=enrolled", demo.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("status-enrolled"), "{page}");
    demo.stop().await.unwrap();
}

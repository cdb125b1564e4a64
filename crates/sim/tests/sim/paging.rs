//! Fetch and sync paging and cursor errors (`docs/protocol.md` §3.2–§3.4).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::common::setup;

#[tokio::test]
async fn fetch_pages_then_exhausts_then_syncs() {
    let (running, mut dep) = setup(250).await;
    let first = dep.post("/server/devices", json!({"limit": 100})).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.headers["content-type"],
        "application/json;charset=UTF8"
    );
    let page = first.json();
    assert_eq!(page["devices"].as_array().unwrap().len(), 100);
    assert_eq!(page["more_to_follow"], true);
    assert!(page["fetched_until"].as_str().unwrap().ends_with('Z'));
    let device = &page["devices"][0];
    for key in [
        "serial_number",
        "model",
        "description",
        "color",
        "device_family",
        "os",
        "device_assigned_date",
        "profile_status",
    ] {
        assert!(device.get(key).is_some(), "{key} in {device}");
    }
    assert!(
        device.get("op_type").is_none(),
        "fetch records carry no op_type"
    );
    assert_eq!(device["device_assigned_by"], "-1", "automatic assignment");
    let (devices, cursor) = dep.fetch_all(100).await;
    assert_eq!(devices.len(), 250);
    let serials: HashSet<&str> = devices
        .iter()
        .map(|d| d["serial_number"].as_str().unwrap())
        .collect();
    assert_eq!(serials.len(), 250);
    let again = dep.post("/server/devices", json!({"cursor": cursor})).await;
    again.assert(400, "EXHAUSTED_CURSOR");
    let sync = dep.sync(&cursor).await;
    assert_eq!(sync["devices"].as_array().unwrap().len(), 0);
    assert_eq!(sync["more_to_follow"], false);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn limits_default_to_100_and_clamp_at_1000() {
    let (running, mut dep) = setup(1100).await;
    let page = dep.post("/server/devices", json!({})).await.json();
    assert_eq!(page["devices"].as_array().unwrap().len(), 100);
    let page = dep
        .post("/server/devices", json!({"limit": 5000}))
        .await
        .json();
    assert_eq!(page["devices"].as_array().unwrap().len(), 1000);
    let page = dep
        .post("/server/devices", json!({"limit": 0}))
        .await
        .json();
    assert_eq!(page["devices"].as_array().unwrap().len(), 100);
    dep.post("/server/devices", json!({"limit": "ten"}))
        .await
        .assert(400, "MALFORMED_REQUEST_BODY");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn sync_returns_the_whole_history_in_pages() {
    let (running, mut dep) = setup(30).await;
    let first = dep
        .post("/server/devices", json!({"limit": 1000}))
        .await
        .json();
    let cursor = first["cursor"].as_str().unwrap().to_string();
    let _ = running.sim.add_devices(25, None);
    let page = dep
        .post("/devices/sync", json!({"cursor": cursor, "limit": 10}))
        .await
        .json();
    assert_eq!(page["devices"].as_array().unwrap().len(), 10);
    assert_eq!(page["more_to_follow"], true);
    let d = &page["devices"][0];
    assert_eq!(d["op_type"], "added");
    assert_eq!(
        d["op_date"], d["device_assigned_date"],
        "op_date equals the assignment date for added"
    );
    let mut cursor = page["cursor"].as_str().unwrap().to_string();
    let mut seen = 10;
    loop {
        let page = dep.sync(&cursor).await;
        seen += page["devices"].as_array().unwrap().len();
        cursor = page["cursor"].as_str().unwrap().to_string();
        if page["more_to_follow"] == false {
            break;
        }
    }
    assert_eq!(seen, 25);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn cursor_errors() {
    let (running, mut dep) = setup(5).await;
    dep.post("/devices/sync", json!({}))
        .await
        .assert(400, "CURSOR_REQUIRED");
    dep.post("/devices/sync", json!({"cursor": ""}))
        .await
        .assert(400, "CURSOR_REQUIRED");
    dep.post("/devices/sync", json!({"cursor": "MTY1NzI2ODE5Ny0x"}))
        .await
        .assert(400, "INVALID_CURSOR");
    dep.post("/server/devices", json!({"cursor": "garbage!"}))
        .await
        .assert(400, "INVALID_CURSOR");
    dep.post("/devices/sync", json!({"cursor": 5}))
        .await
        .assert(400, "MALFORMED_REQUEST_BODY");
    dep.post("/devices/sync", json!("{"))
        .await
        .assert(400, "MALFORMED_REQUEST_BODY");
    let (_, cursor) = dep.fetch_all(100).await;
    let page = dep.sync(&cursor).await;
    let synced = page["cursor"].as_str().unwrap().to_string();
    // Six days idle is fine (a fresh session is needed: the old one idled out).
    running.sim.advance_clock(Duration::from_secs(6 * 86_400));
    dep.session = None;
    let page = dep.sync(&synced).await;
    let fresh = page["cursor"].as_str().unwrap().to_string();
    running.sim.advance_clock(Duration::from_secs(86_400 + 60));
    dep.session = None;
    // The older cursor is now more than seven days old; the newer one is not.
    dep.post("/devices/sync", json!({"cursor": synced}))
        .await
        .assert(400, "EXPIRED_CURSOR");
    dep.sync(&fresh).await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn another_servers_cursor_is_invalid() {
    let (running, mut a) = setup(3).await;
    let mut b = crate::common::Dep::register(&running, "Other").await;
    let (_, cursor) = a.fetch_all(10).await;
    b.post("/devices/sync", json!({"cursor": cursor}))
        .await
        .assert(400, "INVALID_CURSOR");
    running.stop().await.unwrap();
}

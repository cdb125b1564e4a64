//! Devices stuck in Setup Assistant, end to end on every backend: a device that answers
//! `NotNow` to an initial command forever, and one that stops checking in, are listed as stuck
//! (`--stuck-after 2s`) with why, counted on `/metrics`, listed by the CLI, and released by the
//! API and the CLI: `DeviceConfigured` goes first, the unanswered initial command is
//! cancelled, the device leaves Setup Assistant, and the audit log has it.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use common::TestApp;
use common::mdm::{Mdm, buy, ios_default, mobileconfig, pushed, setup_with};
use guardmdm_sim::SimDevice;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A server that calls a device stuck after 2 s, whose iOS default profile has two initial
/// commands, with `n` devices bought.
pub(crate) async fn stuck_setup(backend: common::Backend, n: usize) -> (Mdm, Vec<String>) {
    stuck_setup_releasing(backend, n, None).await
}

/// [`stuck_setup`], the profile with `release_after` when given.
async fn stuck_setup_releasing(
    backend: common::Backend,
    n: usize,
    release_after: Option<&str>,
) -> (Mdm, Vec<String>) {
    let mdm = setup_with(backend, &["--stuck-after", "2s"]).await;
    let payload =
        base64::engine::general_purpose::STANDARD.encode(mobileconfig("com.example.wifi"));
    let mut spec = json!({
        "name": "setup-phones",
        "await_device_configured": true,
        "initial_commands": [
            { "request_type": "InstallProfile", "payload_base64": payload },
            { "request_type": "DeviceInformation", "queries": ["SerialNumber"] }
        ]
    });
    if let Some(after) = release_after {
        spec["release_after"] = json!(after);
    }
    ios_default(&mdm.app, spec).await;
    let serials = buy(&mdm, n).await;
    (mdm, serials)
}

/// Enrolls a device that answers `NotNow` to `InstallProfile` forever.
pub(crate) async fn not_now_device(mdm: &Mdm, serial: &str) -> SimDevice {
    let device = SimDevice::new(&mdm.app.abm.sim, serial, &mdm.ca).unwrap();
    device.attach_apns(&mdm.apns.apns);
    device.answer_not_now_forever("InstallProfile");
    assert!(
        device
            .enroll_and_run(&mdm.app.abm.sim)
            .await
            .unwrap()
            .enrolled
    );
    pushed(mdm, device.udid()).await;
    device
}

/// Enrolls a device that stops checking in once enrolled.
pub(crate) async fn silent_device(mdm: &Mdm, serial: &str) -> SimDevice {
    let device = SimDevice::new(&mdm.app.abm.sim, serial, &mdm.ca).unwrap();
    device.attach_apns(&mdm.apns.apns);
    device.stop_checking_in();
    assert!(
        device
            .enroll_and_run(&mdm.app.abm.sim)
            .await
            .unwrap()
            .enrolled
    );
    pushed(mdm, device.udid()).await;
    device
}

pub(crate) async fn stuck(app: &TestApp) -> Vec<Value> {
    let (status, list) = app
        .json(Method::GET, "/api/v1/enrollments/stuck", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

/// Waits until both devices are stuck, the NotNow one asking again (as a device does after
/// NotNow) meanwhile; answers the list.
pub(crate) async fn wait_stuck(app: &TestApp, asking: &SimDevice, n: usize) -> Vec<Value> {
    let mut list = Vec::new();
    for _ in 0..60 {
        asking.poll().await.unwrap();
        list = stuck(app).await;
        if list.len() == n {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("not {n} stuck devices: {list:?}");
}

fn gauge(metrics: &str) -> Option<&str> {
    metrics
        .lines()
        .find(|l| l.starts_with("guardmdm_setup_assistant_stuck_devices "))
        .and_then(|l| l.split_whitespace().nth(1))
}

#[tokio::test]
async fn stuck_devices_are_listed_with_why_counted_and_released() {
    for backend in common::backends() {
        let (mdm, serials) = stuck_setup(backend, 2).await;
        let app = &mdm.app;
        assert_eq!(gauge(&app.metrics().await), Some("0"));
        let busy = not_now_device(&mdm, &serials[0]).await;
        let silent = silent_device(&mdm, &serials[1]).await;

        let list = wait_stuck(app, &busy, 2).await;
        let by_udid = |udid: &str| {
            list.iter()
                .find(|d| d["udid"] == udid)
                .unwrap_or_else(|| panic!("{udid} not in {list:?}"))
                .clone()
        };
        let b = by_udid(busy.udid());
        assert_eq!(b["serial_number"], serials[0].as_str());
        assert_eq!(b["reason"]["kind"], "pending_command", "{b}");
        assert_eq!(b["reason"]["request_type"], "InstallProfile", "{b}");
        assert!(b["reason"]["not_now_count"].as_u64().unwrap() >= 2, "{b}");
        assert!(b["waiting_since"].is_string(), "{b}");
        let s = by_udid(silent.udid());
        assert_eq!(s["reason"]["kind"], "no_check_in", "{s}");
        assert!(
            s["reason_text"]
                .as_str()
                .unwrap()
                .starts_with("no check-in since "),
            "{s}"
        );
        assert_eq!(gauge(&app.metrics().await), Some("2"));

        // The CLI lists both, with the reason.
        let dir = tempfile::tempdir().unwrap();
        let out = common::run_cli(
            app,
            Some(common::ADMIN_TOKEN),
            dir.path(),
            &["enrollments", "stuck"],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert!(out.stdout.contains("WAITING SINCE"), "{}", out.stdout);
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(busy.udid()))
            .unwrap_or_else(|| panic!("{}", out.stdout));
        assert!(
            line.contains(&serials[0]) && line.contains("initial command InstallProfile pending"),
            "{line}"
        );
        assert!(out.stdout.contains(silent.udid()), "{}", out.stdout);

        // Released by the API: DeviceConfigured goes first, InstallProfile is cancelled, and
        // the device leaves Setup Assistant.
        assert!(busy.status().awaiting_configuration);
        let (_, waiting) = app
            .json(
                Method::GET,
                &format!("/api/v1/enrollments/{}", busy.udid()),
                None,
            )
            .await;
        assert!(waiting["awaiting_since"].is_string(), "{waiting}");
        let (status, released) = app
            .json(
                Method::POST,
                &format!("/api/v1/enrollments/{}/release", busy.udid()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{released}");
        assert_eq!(released["automatic"], false);
        assert_eq!(released["skipped"][0]["request_type"], "InstallProfile");
        pushed(&mdm, busy.udid()).await;
        assert!(
            !busy.status().awaiting_configuration,
            "the device left Setup Assistant"
        );
        let (_, commands) = app
            .json(
                Method::GET,
                &format!("/api/v1/enrollments/{}/commands", busy.udid()),
                None,
            )
            .await;
        let status_of = |request_type: &str| {
            commands
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["request_type"] == request_type)
                .map(|c| c["status"].clone())
        };
        assert_eq!(status_of("InstallProfile"), Some(json!("cancelled")));
        assert_eq!(status_of("DeviceConfigured"), Some(json!("acknowledged")));
        let (_, e) = app
            .json(
                Method::GET,
                &format!("/api/v1/enrollments/{}", busy.udid()),
                None,
            )
            .await;
        assert_eq!(e["awaiting_configuration"], false, "{e}");
        assert!(e["awaiting_since"].is_null(), "{e}");
        let (_, audit) = app.json(Method::GET, "/api/v1/audit", None).await;
        let event = audit
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "enrollment.release")
            .unwrap_or_else(|| panic!("{audit}"))
            .clone();
        assert_eq!(event["actor"], "admin-token", "{event}");
        assert_eq!(event["target"], format!("device:{}", busy.udid()));
        assert_eq!(event["details"]["automatic"], false);
        assert_eq!(
            event["details"]["skipped"][0]["request_type"],
            "InstallProfile"
        );

        // A device no longer waiting is a clear 409.
        let (status, again) = app
            .json(
                Method::POST,
                &format!("/api/v1/enrollments/{}/release", busy.udid()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{again}");
        assert!(
            again["message"]
                .as_str()
                .unwrap()
                .contains("not waiting in Setup Assistant"),
            "{again}"
        );
        assert_eq!(gauge(&app.metrics().await), Some("1"));

        // The CLI releases the silent one (DeviceConfigured waits for it) and says which
        // UDID it could not release.
        let out = common::run_cli(
            app,
            Some(common::ADMIN_TOKEN),
            dir.path(),
            &["enrollments", "release", silent.udid(), "NO-SUCH-UDID"],
        )
        .await;
        assert!(!out.ok, "one UDID is unknown: {}", out.stdout);
        assert!(
            out.stdout
                .contains(&format!("Released {}: DeviceConfigured", silent.udid())),
            "{}",
            out.stdout
        );
        assert!(out.stderr.contains("NO-SUCH-UDID"), "{}", out.stderr);
        let (_, commands) = app
            .json(
                Method::GET,
                &format!("/api/v1/enrollments/{}/commands", silent.udid()),
                None,
            )
            .await;
        let queued: Vec<(&str, &str)> = commands
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["request_type"].as_str().unwrap(),
                    c["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(
            queued.contains(&("DeviceConfigured", "queued"))
                && queued.contains(&("InstallProfile", "cancelled"))
                && queued.contains(&("DeviceInformation", "cancelled")),
            "{queued:?}"
        );
        mdm.app.stop().await;
    }
}

/// Moves the start of `udid`'s wait in Setup Assistant `ago` into the past, as a TokenUpdate
/// replayed then would have left it.
async fn waiting_since(app: &TestApp, udid: &str, ago: time::Duration) {
    let store = app.store().await;
    let e = store.enrollment(udid).await.unwrap().unwrap();
    let update = |awaiting: bool, at: time::OffsetDateTime| guardmdm_store::TokenUpdated {
        udid: udid.to_string(),
        topic: e.topic.clone().unwrap(),
        push_token: e.push_token.clone().unwrap(),
        push_magic: e.push_magic.clone().unwrap(),
        unlock_token: None,
        awaiting_configuration: awaiting,
        at,
    };
    let now = guardmdm_store::now();
    store
        .record_token_update(&update(false, now))
        .await
        .unwrap();
    store
        .record_token_update(&update(true, now - ago))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_profiles_release_after_releases_devices_by_itself() {
    for backend in common::backends() {
        let (mdm, serials) = stuck_setup_releasing(backend, 2, Some("5m")).await;
        let app = &mdm.app;
        let busy = not_now_device(&mdm, &serials[0]).await;
        let fresh = not_now_device(&mdm, &serials[1]).await;
        waiting_since(app, busy.udid(), time::Duration::minutes(6)).await;

        // Within a few checks (every --stuck-after here), DeviceConfigured goes out and the
        // device leaves Setup Assistant; the one waiting less than 5 minutes stays.
        for _ in 0..100 {
            if !busy.status().awaiting_configuration {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!busy.status().awaiting_configuration, "released by itself");
        let (_, audit) = app.json(Method::GET, "/api/v1/audit", None).await;
        let events: Vec<&Value> = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "enrollment.release")
            .collect();
        assert_eq!(events.len(), 1, "{audit}");
        assert_eq!(events[0]["actor"], "system");
        assert_eq!(events[0]["target"], format!("device:{}", busy.udid()));
        assert_eq!(events[0]["details"]["automatic"], true);
        assert_eq!(
            events[0]["details"]["skipped"][0]["request_type"],
            "InstallProfile"
        );
        assert!(fresh.status().awaiting_configuration);

        // A release_after out of range, or without awaiting configuration, is refused.
        for (spec, needle) in [
            (
                json!({ "name": "quick", "await_device_configured": true, "release_after": "1m" }),
                "from 5 minutes",
            ),
            (
                json!({ "name": "free", "release_after": "45m" }),
                "await_device_configured: true",
            ),
        ] {
            let (status, body) = app.json(Method::POST, "/api/v1/profiles", Some(spec)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            let text = body.to_string();
            assert!(
                text.contains("RELEASE_AFTER_INVALID") && text.contains(needle),
                "{text}"
            );
        }
        mdm.app.stop().await;
    }
}

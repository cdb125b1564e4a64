//! A minimum OS at enrollment, end to end on every backend (`docs/protocol.md` §6.5): with no
//! minimum a device enrolls as before; an iPhone below the minimum is answered 403 "software
//! update required", updates and enrolls on the required version; a device that cannot be
//! asked enrolls and is reported; the device detail shows both; changes are audited.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic)]

use crate::common;

use common::mdm::{buy, enrollment, setup};
use guardmdm_sim::{SimDevice, SimDeviceOptions};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn on_ios(version: &str, build: &str, can_ask: bool) -> SimDeviceOptions {
    SimDeviceOptions {
        os: Some((version.to_string(), build.to_string())),
        can_request_software_update: can_ask,
        ..SimDeviceOptions::default()
    }
}

async fn detail(app: &common::TestApp, serial: &str) -> Value {
    let (status, shown) = app
        .json(Method::GET, &format!("/api/v1/devices/{serial}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    shown[0].clone()
}

#[tokio::test]
async fn devices_below_the_minimum_update_before_they_enroll_or_are_reported() {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let app = &mdm.app;
        let serials = buy(&mdm, 3).await;

        // No minimum: a device on 17.2 enrolls as it is.
        let before = SimDevice::with_options(
            &app.abm.sim,
            &serials[0],
            &mdm.ca,
            on_ios("17.2", "21C62", true),
        )
        .unwrap();
        let report = before.enroll_and_run(&app.abm.sim).await.unwrap();
        assert!(
            report.enrolled && report.os_updates.is_empty(),
            "{report:?}"
        );
        assert_eq!(before.os_version(), "17.2");
        assert_eq!(detail(app, &serials[0]).await["os_updates"], json!([]));

        // Invalid minimums are refused; a valid one is set and audited.
        for (os, body) in [
            ("ios", json!({ "minimum": "seventeen" })),
            ("tvos", json!({ "minimum": "17.5" })),
            ("android", json!({ "minimum": "17.5" })),
            // Not stored and left unenforced: GuardMDM does not read Apple's catalogue yet.
            ("ios", json!({ "minimum": "latest" })),
        ] {
            let (status, e) = app
                .json(Method::PUT, &format!("/api/v1/minimum-os/{os}"), Some(body))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{os}: {e}");
        }
        let (status, list) = app
            .json(
                Method::PUT,
                "/api/v1/minimum-os/ios",
                Some(json!({ "minimum": "17.5" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list[0]["os"], "ios", "{list}");
        assert_eq!(list[0]["minimum"], "17.5", "{list}");
        assert_eq!(list[1]["minimum"], Value::Null, "{list}");
        let (_, listed) = app.json(Method::GET, "/api/v1/minimum-os", None).await;
        assert_eq!(listed, list);
        let (_, audit) = app.json(Method::GET, "/api/v1/audit", None).await;
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "minimum_os.set" && e["target"] == "os:ios"),
            "{audit}"
        );

        // Below the minimum and able to update: held, updated, enrolled on 17.5.
        let held = SimDevice::with_options(
            &app.abm.sim,
            &serials[1],
            &mdm.ca,
            on_ios("17.2", "21C62", true),
        )
        .unwrap();
        let report = held.enroll_and_run(&app.abm.sim).await.unwrap();
        assert!(report.enrolled, "{report:?}");
        assert_eq!(report.os_updates, ["17.5"]);
        assert_eq!(held.os_version(), "17.5");
        assert_eq!(enrollment(app, &serials[1]).await["status"], "enrolled");
        let shown = detail(app, &serials[1]).await;
        let events = shown["os_updates"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{shown}");
        assert_eq!(events[0]["outcome"], "held");
        assert_eq!(events[0]["device_version"], "17.2");
        assert_eq!(events[0]["required_version"], "17.5");

        // Below the minimum without MDM_CAN_REQUEST_SOFTWARE_UPDATE: enrolls, reported.
        let unasked = SimDevice::with_options(
            &app.abm.sim,
            &serials[2],
            &mdm.ca,
            on_ios("17.2", "21C62", false),
        )
        .unwrap();
        let report = unasked.enroll_and_run(&app.abm.sim).await.unwrap();
        assert!(
            report.enrolled && report.os_updates.is_empty(),
            "{report:?}"
        );
        assert_eq!(unasked.os_version(), "17.2");
        let shown = detail(app, &serials[2]).await;
        assert_eq!(shown["os_updates"][0]["outcome"], "not_asked", "{shown}");
        assert!(
            shown["os_updates"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("MDM_CAN_REQUEST_SOFTWARE_UPDATE"),
            "{shown}"
        );

        // Cleared: back to no minimum.
        let (status, list) = app
            .json(
                Method::PUT,
                "/api/v1/minimum-os/ios",
                Some(json!({ "minimum": null })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list[0]["minimum"], Value::Null, "{list}");
    }
}

/// The 403 itself, as a device reads it: the version asked for, without a build when the
/// minimum is a plain version; the device is recorded as held.
#[tokio::test]
async fn the_refusal_is_apples_software_update_document() {
    let backend = common::backends().into_iter().next().unwrap();
    let mdm = setup(backend).await;
    let app = &mdm.app;
    let serials = buy(&mdm, 1).await;
    let (status, _) = app
        .json(
            Method::PUT,
            "/api/v1/minimum-os/ios",
            Some(json!({ "minimum": "18.4.1" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let device = SimDevice::with_options(
        &app.abm.sim,
        &serials[0],
        &mdm.ca,
        on_ios("17.2", "21C62", true),
    )
    .unwrap();
    device.activate(&app.abm.sim).unwrap();
    match device.post_machine_info().await {
        Err(guardmdm_sim::DeviceError::SoftwareUpdateRequired {
            os_version,
            build_version,
        }) => {
            assert_eq!(os_version, "18.4.1");
            assert_eq!(build_version, None);
        }
        other => panic!("expected software update required, got {other:?}"),
    }
    let shown = detail(app, &serials[0]).await;
    assert_eq!(shown["os_updates"][0]["outcome"], "held", "{shown}");
}

#[tokio::test]
async fn minimums_are_set_listed_and_cleared_from_the_cli() {
    let app = common::TestApp::spawn(common::Backend::Sqlite).await;
    let cwd = tempfile::tempdir().unwrap();
    let cli = |args: &'static [&'static str]| {
        common::run_cli(&app, Some(common::ADMIN_TOKEN), cwd.path(), args)
    };
    let out = cli(&["minimum-os", "set", "--os", "ios", "17.5"]).await;
    assert!(out.ok, "{}", out.stderr);
    let row = |stdout: &str, os: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(os))
            .unwrap_or_else(|| panic!("{stdout}"))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(row(&out.stdout, "iOS "), "17.5");
    let out = cli(&["minimum-os", "list"]).await;
    assert_eq!(
        (row(&out.stdout, "iOS "), row(&out.stdout, "macOS")),
        ("17.5".to_string(), "(none)".to_string())
    );
    let out = cli(&["minimum-os", "set", "--os", "tvos", "17.5"]).await;
    assert!(!out.ok && out.stderr.contains("tvOS"), "{}", out.stderr);
    let out = cli(&["minimum-os", "set", "--os", "ios", "latest"]).await;
    assert!(
        !out.ok && out.stderr.contains("not available yet"),
        "{}",
        out.stderr
    );
    let out = cli(&["minimum-os", "clear", "--os", "ios"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(row(&out.stdout, "iOS "), "(none)");
    app.stop().await;
}

/// A profile's own minimum wins over the global one for the devices given that profile.
#[tokio::test]
async fn a_profiles_minimum_wins_over_the_global_one() {
    let backend = common::backends().into_iter().next().unwrap();
    let mdm = setup(backend).await;
    let app = &mdm.app;
    let serials = buy(&mdm, 1).await;
    let (status, _) = app
        .json(
            Method::PUT,
            "/api/v1/minimum-os/ios",
            Some(json!({ "minimum": "17.5" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The iOS default profile of the setup, now asking for 18.2.
    let (status, updated) = app
        .json(
            Method::PUT,
            "/api/v1/profiles/phones",
            Some(json!({
                "name": "phones",
                "await_device_configured": true,
                "minimum_os": { "ios": "18.2" }
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    // On 17.5 it meets the global minimum, not its profile's.
    let device = SimDevice::with_options(
        &app.abm.sim,
        &serials[0],
        &mdm.ca,
        on_ios("17.5", "21F79", true),
    )
    .unwrap();
    let report = device.enroll_and_run(&app.abm.sim).await.unwrap();
    assert!(report.enrolled, "{report:?}");
    assert_eq!(report.os_updates, ["18.2"]);
    let shown = detail(app, &serials[0]).await;
    assert_eq!(
        shown["os_updates"][0]["required_version"], "18.2",
        "{shown}"
    );
    mdm.app.stop().await;
}

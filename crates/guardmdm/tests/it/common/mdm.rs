//! An MDM-ready test server: a simulated device CA, the APNs simulator, a push certificate,
//! an ABM entry and an iOS default profile; purchases and enrollment lookups.
#![allow(dead_code)]

use guardmdm_crypto::{DeviceCa, PushCertificate};
use guardmdm_sim::{ApnsSim, DeviceFamily, RunningApnsSim};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Backend, TestApp};

pub const TOPIC: &str = "com.apple.mgmt.External.9f0e6c7a-1b2c-4d3e-8f90-a1b2c3d4e5f6";

pub struct Mdm {
    pub app: TestApp,
    pub apns: RunningApnsSim,
    pub ca: DeviceCa,
    pub files: tempfile::TempDir,
}

/// A server trusting a simulated device CA, pushing to the APNs simulator, with a push
/// certificate, an ABM entry and an iOS default profile that waits for DeviceConfigured.
pub async fn setup(backend: Backend) -> Mdm {
    setup_with(backend, &[]).await
}

/// [`setup`] with extra `serve` flags.
pub async fn setup_with(backend: Backend, extra: &[&str]) -> Mdm {
    let mdm = setup_without_push_certificate(backend, extra).await;
    let push = PushCertificate::generate_self_signed(TOPIC).unwrap();
    let pem = push.identity_pem();
    let split = pem.find("-----BEGIN PRIVATE KEY-----").unwrap();
    let (status, view) = mdm
        .app
        .json(
            Method::PUT,
            "/api/v1/apns",
            Some(json!({ "certificate_pem": &pem[..split], "key_pem": &pem[split..] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["topic"], TOPIC);
    mdm
}

/// [`setup_with`] without a push certificate: the test installs one.
pub async fn setup_without_push_certificate(backend: Backend, extra: &[&str]) -> Mdm {
    let files = tempfile::tempdir().unwrap();
    let ca = DeviceCa::generate("Enrollment Test Devices").unwrap();
    let anchors = files.path().join("device-ca.pem");
    std::fs::write(&anchors, ca.anchor_pem()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let apns = ApnsSim::for_topic(TOPIC).start(listener).unwrap();
    let mut flags = vec![
        "--device-ca-file".to_string(),
        anchors.to_str().unwrap().to_string(),
    ];
    // A test may point pushes elsewhere (an APNs that never answers).
    if !extra.contains(&"--apns-url") {
        flags.extend(["--apns-url".to_string(), apns.base_url()]);
    }
    flags.extend(extra.iter().map(ToString::to_string));
    let app = TestApp::spawn_reachable(backend, &flags).await;
    app.connect_abm("main").await;
    ios_default(
        &app,
        json!({ "name": "phones", "await_device_configured": true }),
    )
    .await;
    Mdm {
        app,
        apns,
        ca,
        files,
    }
}

/// Buys `n` iPhones at the simulator and syncs them in (the pass assigns them the default
/// profile at Apple).
pub async fn buy(mdm: &Mdm, n: usize) -> Vec<String> {
    let serials: Vec<String> = mdm
        .app
        .abm
        .sim
        .add_devices(n, Some(DeviceFamily::IPhone))
        .into_iter()
        .map(|d| d.serial_number)
        .collect();
    let run = mdm.app.sync("main", false).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    for serial in &serials {
        let (status, _) = mdm
            .app
            .json(Method::GET, &format!("/api/v1/devices/{serial}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{serial} synced");
    }
    serials
}

pub async fn enrollment(app: &TestApp, serial: &str) -> Value {
    let (status, list) = app
        .json(
            Method::GET,
            &format!("/api/v1/enrollments?serial={serial}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list[0].clone()
}

/// Waits until the push to `udid` asked for last has an outcome (pushes run in the
/// background), then until the device it woke has finished its session.
pub async fn pushed(mdm: &Mdm, udid: &str) {
    let mut push = Value::Null;
    for _ in 0..600 {
        let (status, e) = mdm
            .app
            .json(Method::GET, &format!("/api/v1/enrollments/{udid}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{e}");
        push = e["push"].clone();
        if push["state"] != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_ne!(push["state"], "pending", "the push never ended: {push}");
    assert!(
        mdm.apns
            .apns
            .settle(std::time::Duration::from_secs(30))
            .await
    );
}

/// Creates the profile `spec` and makes it the iOS default.
pub async fn ios_default(app: &TestApp, spec: Value) {
    let (status, body) = app
        .json(Method::POST, "/api/v1/profiles", Some(spec.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .json(
            Method::PUT,
            "/api/v1/os-defaults/ios",
            Some(json!({ "profile": spec["name"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A small unsigned configuration profile (`.mobileconfig`) with `identifier`.
pub fn mobileconfig(identifier: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>{identifier}</string>
<key>PayloadUUID</key><string>5B7E9C2A-3D4F-4A1B-9C8D-7E6F5A4B3C2D</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadDisplayName</key><string>Wi-Fi</string>
<key>PayloadContent</key><array/>
</dict></plist>"#
    )
    .into_bytes()
}

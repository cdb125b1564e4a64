//! Zero-touch enrollment end to end on every backend: a device ABM assigned to GuardMDM
//! activates against the ABM simulator, posts its signed MachineInfo to GuardMDM's enrollment
//! URL, gets its identity over SCEP, checks in, shows as Enrolled, gets `DeviceConfigured`,
//! and answers commands woken by pushes through the APNs simulator; an expired ABM token
//! leaves it working; and every bad input on the device side is refused with a 4xx, never
//! 401.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use common::TestApp;
use common::mdm::{TOPIC, buy, enrollment, ios_default, mobileconfig, pushed, setup, setup_with};
use guardmdm_crypto::DeviceCa;
use guardmdm_sim::{DeviceError, DeviceFamily, SimDevice};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Waits until a command reaches a final status.
async fn wait_command(app: &TestApp, uuid: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (_, c) = app
            .json(Method::GET, &format!("/api/v1/commands/{uuid}"), None)
            .await;
        if !matches!(c["status"].as_str(), Some("queued" | "sent")) {
            return c;
        }
        last = c;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("command {uuid} did not finish: {last}");
}

async fn send(app: &TestApp, udid: &str, body: Value) -> Value {
    let (status, c) = app
        .json(
            Method::POST,
            &format!("/api/v1/enrollments/{udid}/commands"),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    wait_command(app, c["uuid"].as_str().unwrap()).await
}

#[tokio::test]
async fn a_device_goes_from_abm_assignment_to_enrolled_to_answering_commands() {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let app = &mdm.app;
        let serials = buy(&mdm, 2).await;

        let device = SimDevice::new(&app.abm.sim, &serials[0], &mdm.ca).unwrap();
        device.attach_apns(&mdm.apns.apns);
        let report = device.enroll_and_run(&app.abm.sim).await.unwrap();
        assert!(report.enrolled, "{report:?}");
        pushed(&mdm, device.udid()).await;

        // Enrolled in GuardMDM, and released from Setup Assistant with DeviceConfigured.
        let e = enrollment(app, &serials[0]).await;
        assert_eq!(e["status"], "enrolled", "{e}");
        assert_eq!(e["udid"], device.udid());
        assert_eq!(e["pushable"], true);
        let udid = device.udid().to_string();
        let mut configured = Value::Null;
        for _ in 0..100 {
            let (_, list) = app
                .json(
                    Method::GET,
                    &format!("/api/v1/enrollments/{udid}/commands"),
                    None,
                )
                .await;
            configured = list[0].clone();
            if configured["status"] == "acknowledged" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            configured["request_type"], "DeviceConfigured",
            "{configured}"
        );
        assert_eq!(configured["status"], "acknowledged", "{configured}");
        assert_eq!(
            enrollment(app, &serials[0]).await["awaiting_configuration"],
            false
        );
        assert!(!mdm.apns.apns.pushes().is_empty(), "the device was pushed");
        let (_, shown) = app
            .json(
                Method::GET,
                &format!("/api/v1/devices/{}", serials[0]),
                None,
            )
            .await;
        assert_eq!(shown[0]["enrollment"]["status"], "enrolled", "{shown}");
        // The list says Enrolled, as the dashboard does, to the API and the CLI alike; the
        // other bought device is not.
        let (_, enrolled) = app
            .json(Method::GET, "/api/v1/devices?status=enrolled", None)
            .await;
        assert_eq!(enrolled.as_array().unwrap().len(), 1, "{enrolled}");
        assert_eq!(enrolled[0]["serial_number"], serials[0].as_str());
        assert_eq!(enrolled[0]["status"], "enrolled", "{enrolled}");
        assert!(enrolled[0]["last_seen_at"].is_string(), "{enrolled}");
        let (_, other) = app
            .json(
                Method::GET,
                &format!("/api/v1/devices?serial={}", serials[1]),
                None,
            )
            .await;
        assert_ne!(other[0]["status"], "enrolled", "{other}");
        let out = common::run_cli(
            app,
            Some(common::ADMIN_TOKEN),
            tempfile::tempdir().unwrap().path(),
            &["devices", "list", "--status", "enrolled"],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(&serials[0]))
            .unwrap_or_else(|| panic!("{}", out.stdout));
        assert!(line.contains("Enrolled"), "{line}");
        assert!(!out.stdout.contains(&serials[1]), "{}", out.stdout);
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("guardmdm_apns_certificate_expiry_timestamp_seconds"),
            "{metrics}"
        );

        // Commands, each pushed and answered.
        let info = send(app, &udid, json!({ "request_type": "DeviceInformation" })).await;
        assert_eq!(info["status"], "acknowledged", "{info}");
        let result = info["result"].as_str().unwrap();
        assert!(
            result.contains("QueryResponses") && result.contains(&serials[0]),
            "{result}"
        );
        let payload =
            base64::engine::general_purpose::STANDARD.encode(mobileconfig("com.example.wifi"));
        let installed = send(
            app,
            &udid,
            json!({ "request_type": "InstallProfile", "payload_base64": payload }),
        )
        .await;
        assert_eq!(installed["status"], "acknowledged", "{installed}");
        let list = send(app, &udid, json!({ "request_type": "ProfileList" })).await;
        assert!(
            list["result"]
                .as_str()
                .unwrap()
                .contains("com.example.wifi"),
            "{list}"
        );
        let removed = send(
            app,
            &udid,
            json!({ "request_type": "RemoveProfile", "identifier": "com.example.wifi" }),
        )
        .await;
        assert_eq!(removed["status"], "acknowledged", "{removed}");
        assert!(
            !device
                .installed_profiles()
                .iter()
                .any(|p| p.identifier == "com.example.wifi")
        );
        // A raw command the device does not know: its Error is stored.
        let raw = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>Command</key><dict><key>RequestType</key><string>NoSuchThing</string></dict></dict></plist>"#;
        let resp = app
            .admin(
                Method::POST,
                &format!("/api/v1/enrollments/{udid}/commands"),
            )
            .header("content-type", "application/x-plist")
            .body(raw.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let queued: Value = resp.json().await.unwrap();
        let answered = wait_command(app, queued["uuid"].as_str().unwrap()).await;
        assert_eq!(answered["status"], "error", "{answered}");

        // The CLI: the push certificate, sending a command, listing the queue.
        let cwd = tempfile::tempdir().unwrap();
        let token = Some(common::ADMIN_TOKEN);
        let out = common::run_cli(app, token, cwd.path(), &["apns", "show"]).await;
        assert!(
            out.ok && out.stdout.contains(TOPIC),
            "{} {}",
            out.stdout,
            out.stderr
        );
        let out = common::run_cli(
            app,
            token,
            cwd.path(),
            &["commands", "send", &udid, "ProfileList", "--json"],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        let sent: Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            wait_command(app, sent["uuid"].as_str().unwrap()).await["status"],
            "acknowledged"
        );
        let out = common::run_cli(app, token, cwd.path(), &["commands", "list", &udid]).await;
        assert!(
            out.ok && out.stdout.contains("ProfileList"),
            "{}",
            out.stdout
        );
        let out = common::run_cli(
            app,
            token,
            cwd.path(),
            &["commands", "send", "NO-SUCH-UDID", "DeviceInformation"],
        )
        .await;
        assert!(
            !out.ok && out.stderr.contains("no enrolled device"),
            "{}",
            out.stderr
        );

        // NotNow keeps the command for a later session, without a busy loop.
        device.answer_not_now(1);
        let (_, c) = app
            .json(
                Method::POST,
                &format!("/api/v1/enrollments/{udid}/commands"),
                Some(json!({ "request_type": "ProfileList" })),
            )
            .await;
        let uuid = c["uuid"].as_str().unwrap().to_string();
        pushed(&mdm, &udid).await;
        let (_, kept) = app
            .json(Method::GET, &format!("/api/v1/commands/{uuid}"), None)
            .await;
        assert_eq!(kept["status"], "not_now", "{kept}");
        device.poll().await.unwrap();
        assert_eq!(wait_command(app, &uuid).await["status"], "acknowledged");

        // The ABM token expires: enrolled devices keep working.
        let store = app.store().await;
        let entry = store.get_abm_entry("main").await.unwrap();
        let mut token = entry.server_token.clone().unwrap();
        token.expires_at = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        store
            .store_server_token(
                "main",
                &token,
                entry.account.as_ref(),
                &guardmdm_store::NewAuditEvent {
                    at: guardmdm_store::now(),
                    actor: "test".to_string(),
                    action: "expire".to_string(),
                    target: "main".to_string(),
                    details: json!({}),
                },
            )
            .await
            .unwrap();
        let (_, entries) = app.json(Method::GET, "/api/v1/abm/tokens", None).await;
        assert_eq!(entries[0]["health"]["state"], "expired", "{entries}");
        let info = send(app, &udid, json!({ "request_type": "DeviceInformation" })).await;
        assert_eq!(info["status"], "acknowledged", "{info}");
        let payload =
            base64::engine::general_purpose::STANDARD.encode(mobileconfig("com.example.vpn"));
        let installed = send(
            app,
            &udid,
            json!({ "request_type": "InstallProfile", "payload_base64": payload }),
        )
        .await;
        assert_eq!(installed["status"], "acknowledged", "{installed}");
        mdm.app.stop().await;
    }
}

/// The commands a session ran: (request type, the device's status).
fn ran(session: guardmdm_sim::PollSummary) -> Vec<(String, String)> {
    session
        .commands
        .into_iter()
        .map(|c| (c.request_type, c.status))
        .collect()
}

#[tokio::test]
async fn a_profiles_initial_commands_run_before_device_configured() {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let app = &mdm.app;
        let payload =
            base64::engine::general_purpose::STANDARD.encode(mobileconfig("com.example.setup"));
        ios_default(
            app,
            json!({
                "name": "setup-phones",
                "await_device_configured": true,
                "initial_commands": [
                    { "request_type": "InstallProfile", "payload_base64": payload },
                    { "request_type": "DeviceInformation", "queries": ["SerialNumber"] }
                ]
            }),
        )
        .await;
        let serials = buy(&mdm, 1).await;

        // The device puts off the first initial command: Setup Assistant keeps waiting.
        let device = SimDevice::new(&app.abm.sim, &serials[0], &mdm.ca).unwrap();
        device.answer_not_now(1);
        let report = device.enroll_and_run(&app.abm.sim).await.unwrap();
        assert!(report.enrolled, "{report:?}");
        let first = ran(report.first_poll.unwrap());
        assert_eq!(
            first,
            [
                ("InstallProfile".to_string(), "NotNow".to_string()),
                ("DeviceInformation".to_string(), "Acknowledged".to_string()),
            ],
            "the initial commands in order, and no DeviceConfigured while one is open"
        );
        let udid = device.udid().to_string();
        let (_, list) = app
            .json(
                Method::GET,
                &format!("/api/v1/enrollments/{udid}/commands"),
                None,
            )
            .await;
        let list = list.as_array().unwrap().clone();
        assert_eq!(list.len(), 2, "{list:?}");
        assert!(
            list.iter().all(|c| c["created_by"] == "initial-commands"),
            "{list:?}"
        );
        assert_eq!(
            enrollment(app, &serials[0]).await["awaiting_configuration"],
            true
        );

        // Next session: the put-off command is answered, and DeviceConfigured follows in the
        // same session.
        let second = ran(device.poll().await.unwrap());
        assert_eq!(
            second,
            [
                ("InstallProfile".to_string(), "Acknowledged".to_string()),
                ("DeviceConfigured".to_string(), "Acknowledged".to_string()),
            ]
        );
        assert!(
            device
                .installed_profiles()
                .iter()
                .any(|p| p.identifier == "com.example.setup")
        );
        assert_eq!(
            enrollment(app, &serials[0]).await["awaiting_configuration"],
            false
        );
        mdm.app.stop().await;
    }
}

#[tokio::test]
async fn invalid_initial_commands_are_refused_with_the_field_and_code() {
    let app = TestApp::spawn(common::Backend::Sqlite).await;
    let (status, body) = app
        .json(
            Method::POST,
            "/api/v1/profiles",
            Some(json!({
                "name": "bad",
                "await_device_configured": true,
                "initial_commands": [
                    { "request_type": "ProfileList" },
                    { "request_type": "EraseDevice" }
                ]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let text = body.to_string();
    assert!(
        text.contains("initial_commands[1]") && text.contains("INITIAL_COMMAND_INVALID"),
        "{text}"
    );
    app.stop().await;
}

fn http_status(err: &DeviceError) -> Option<u16> {
    match err {
        DeviceError::Status { status, .. } => Some(*status),
        _ => None,
    }
}

#[tokio::test]
async fn bad_device_requests_are_refused_with_the_reason_and_never_401() {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let app = &mdm.app;
        let serials = buy(&mdm, 3).await;

        // A device whose identity does not chain to the trusted device CA.
        let stranger_ca = DeviceCa::generate("Not Apple").unwrap();
        let forged = SimDevice::new(&app.abm.sim, &serials[0], &stranger_ca).unwrap();
        forged.activate(&app.abm.sim).unwrap();
        let err = forged.post_machine_info().await.unwrap_err();
        assert_eq!(http_status(&err), Some(403), "{err}");
        assert!(err.to_string().contains("not trusted"), "{err}");

        // A serial ABM gave a profile with GuardMDM's URL (defined here directly at Apple),
        // but that GuardMDM never synced: it is not one of its ABM devices.
        let late = app.abm.sim.add_devices(1, Some(DeviceFamily::IPhone));
        let server_uuid = app
            .abm
            .sim
            .device(&serials[1])
            .unwrap()
            .server_uuid
            .unwrap();
        app.abm
            .sim
            .define_profile(
                &server_uuid,
                &json!({
                    "profile_name": "direct",
                    "url": app.url("/mdm/enroll"),
                    "is_supervised": true,
                    "is_mdm_removable": false,
                    "devices": [late[0].serial_number],
                }),
            )
            .unwrap();
        let unknown = SimDevice::new(&app.abm.sim, &late[0].serial_number, &mdm.ca).unwrap();
        unknown.activate(&app.abm.sim).unwrap();
        let err = unknown.post_machine_info().await.unwrap_err();
        assert_eq!(http_status(&err), Some(403), "{err}");
        assert!(
            err.to_string().contains("not assigned to this MDM server"),
            "{err}"
        );

        // A SCEP challenge works once.
        let device = SimDevice::new(&app.abm.sim, &serials[1], &mdm.ca).unwrap();
        device.activate(&app.abm.sim).unwrap();
        device.post_machine_info().await.unwrap();
        device.scep().await.unwrap();
        let again = device.scep().await.unwrap_err();
        assert!(matches!(again, DeviceError::Scep(_)), "{again}");
        device.check_in_authenticate().await.unwrap();
        device.check_in_token_update().await.unwrap();

        let checkin = |body: Vec<u8>| {
            app.http
                .put(app.url("/mdm/checkin"))
                .header("content-type", "application/x-apple-aspen-mdm-checkin")
                .body(body)
        };
        // Not a plist, from the device itself (a stranger's is refused before it is read).
        let resp = checkin(b"not a plist".to_vec())
            .header(
                "mdm-signature",
                device.mdm_signature(b"not a plist").unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let resp = checkin(b"not a plist".to_vec()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        // No identity at all.
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>MessageType</key><string>CheckOut</string><key>Topic</key><string>{TOPIC}</string><key>UDID</key><string>{}</string></dict></plist>"#,
            device.udid()
        );
        let resp = checkin(body.clone().into_bytes()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        // A forged Mdm-Signature.
        let resp = checkin(body.clone().into_bytes())
            .header("mdm-signature", "MIIBforged")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(resp.text().await.unwrap().contains("Mdm-Signature"));
        // Oversized, from the device itself.
        let big = vec![b'x'; 2 * 1024 * 1024];
        let resp = checkin(big.clone())
            .header("mdm-signature", device.mdm_signature(&big).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Wrong content type.
        let resp = app
            .http
            .put(app.url("/mdm/checkin"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        // The configuration_web_url form: the same signed MachineInfo, base64 in the
        // x-apple-aspen-deviceinfo header of a GET.
        let udid = "00008140-000A1B2C3D4E5F60";
        let identity = mdm.ca.issue_identity(udid).unwrap();
        let info = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>{udid}</string><key>SERIAL</key><string>{}</string><key>PRODUCT</key><string>iPhone17,2</string><key>VERSION</key><string>22B83</string><key>OS_VERSION</key><string>18.1</string></dict></plist>"#,
            serials[2]
        );
        let signed = guardmdm_crypto::sign_attached(info.as_bytes(), &identity).unwrap();
        let header = base64::engine::general_purpose::STANDARD.encode(signed);
        let resp = app
            .http
            .get(app.url("/mdm/enroll"))
            .header("x-apple-aspen-deviceinfo", header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"],
            "application/x-apple-aspen-config"
        );
        for header in [None, Some("not base64!")] {
            let mut request = app.http.get(app.url("/mdm/enroll"));
            if let Some(h) = header {
                request = request.header("x-apple-aspen-deviceinfo", h);
            }
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{header:?}");
        }
        // The enrollment endpoint with garbage.
        let resp = app
            .http
            .post(app.url("/mdm/enroll"))
            .header("content-type", "application/pkcs7-signature")
            .body(b"garbage".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        // SCEP with garbage, and an unknown operation.
        let resp = app
            .http
            .post(app.url("/scep?operation=PKIOperation"))
            .body(b"garbage".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let resp = app
            .http
            .get(app.url("/scep?operation=GetNextCACert"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        // The device itself still works.
        device.poll().await.unwrap();
        assert_eq!(enrollment(app, &serials[1]).await["status"], "enrolled");
        mdm.app.stop().await;
    }
}

#[tokio::test]
async fn a_device_can_never_speak_for_another_udid() {
    for backend in common::backends() {
        // Behind a TLS-terminating proxy that forwards the client certificate.
        let mdm = setup_with(backend, &["--client-cert-header", "X-Client-Cert"]).await;
        let serials = buy(&mdm, 2).await;
        let a = SimDevice::new(&mdm.app.abm.sim, &serials[0], &mdm.ca).unwrap();
        let b = SimDevice::new(&mdm.app.abm.sim, &serials[1], &mdm.ca).unwrap();
        a.enroll_and_run(&mdm.app.abm.sim).await.unwrap();
        b.enroll_and_run(&mdm.app.abm.sim).await.unwrap();

        // A's certificate, B's UDID.
        let cert_a = a.mdm_certificate().unwrap().to_pem();
        let escaped: String = cert_a
            .bytes()
            .map(|c| match c {
                b'\n' => "%0A".to_string(),
                b' ' => "%20".to_string(),
                c => (c as char).to_string(),
            })
            .collect();
        let as_b = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Idle</string><key>UDID</key><string>{}</string></dict></plist>"#,
            b.udid()
        );
        let resp = mdm
            .app
            .http
            .put(mdm.app.url("/mdm/connect"))
            .header("x-client-cert", &escaped)
            .body(as_b.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let text = resp.text().await.unwrap();
        assert!(text.contains(a.udid()) && text.contains(b.udid()), "{text}");
        // With its own UDID, A's forwarded certificate is accepted.
        let as_a = as_b.replace(b.udid(), a.udid());
        let resp = mdm
            .app
            .http
            .put(mdm.app.url("/mdm/connect"))
            .header("x-client-cert", &escaped)
            .body(as_a)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        // A certificate GuardMDM's CA did not issue (the device's own ADE identity).
        let foreign = a.device_certificate().to_pem().replace('\n', "%0A");
        let resp = mdm
            .app
            .http
            .put(mdm.app.url("/mdm/connect"))
            .header("x-client-cert", foreign)
            .body(as_b)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        mdm.app.stop().await;
    }
}

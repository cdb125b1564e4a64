//! The MDM push certificate from request to renewal, over a real socket on every backend:
//! GuardMDM makes the key and request, a stand-in for Apple's push portal issues the
//! certificate, which is uploaded alone and matched against the key; pushes then reach a
//! device through the APNs simulator; a renewal keeps the topic, a different topic is refused
//! with the reason, and a certificate for another key is refused without changing anything.
//! The CLI makes, signs (with a vendor chain made by the `openssl` tool) and uploads requests.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::mdm::{TOPIC, buy, pushed, setup_without_push_certificate};
use common::{ADMIN_TOKEN, Backend, TestApp};
use guardmdm_crypto::{PushPortal, generate_push_request};
use guardmdm_sim::SimDevice;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const OTHER_TOPIC: &str = "com.apple.mgmt.External.00000000-1111-4222-8333-444455556666";

async fn new_request(app: &TestApp) -> Value {
    let (status, request) = app.json(Method::POST, "/api/v1/apns/csr", None).await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    request
}

async fn upload_alone(app: &TestApp, certificate: &str) -> (StatusCode, Value) {
    app.json(
        Method::PUT,
        "/api/v1/apns",
        Some(json!({ "certificate_pem": certificate })),
    )
    .await
}

async fn wait_command(app: &TestApp, uuid: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
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

/// Sends DeviceInformation and waits for the device, woken by a push, to answer it.
async fn answered_after_a_push(mdm: &common::mdm::Mdm, udid: &str) {
    let pushes_before = mdm.apns.apns.pushes().len();
    let (status, c) = mdm
        .app
        .json(
            Method::POST,
            &format!("/api/v1/enrollments/{udid}/commands"),
            Some(json!({ "request_type": "DeviceInformation" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    pushed(mdm, udid).await;
    let done = wait_command(&mdm.app, c["uuid"].as_str().unwrap()).await;
    assert_eq!(done["status"], "acknowledged", "{done}");
    let pushes = mdm.apns.apns.pushes();
    let last = pushes.last().unwrap();
    assert!(pushes.len() > pushes_before, "a push was sent");
    assert_eq!(last.status, 200, "{last:?}");
    assert_eq!(last.topic.as_deref(), Some(TOPIC));
}

#[tokio::test]
async fn request_upload_alone_push_renew_and_refuse_a_topic_change() {
    for backend in common::backends() {
        let mdm = setup_without_push_certificate(backend, &[]).await;
        let app = &mdm.app;
        let portal = PushPortal::generate().unwrap();

        let (status, none) = app.json(Method::GET, "/api/v1/apns", None).await;
        assert_eq!((status, none), (StatusCode::OK, Value::Null));
        let (status, none) = app.json(Method::GET, "/api/v1/apns/csr", None).await;
        assert_eq!((status, none), (StatusCode::OK, Value::Null));

        // A certificate alone before any request: GuardMDM holds no key for it.
        let stray = generate_push_request().unwrap();
        let stray_cert = portal.issue(stray.csr_pem.as_bytes(), TOPIC, 365).unwrap();
        let (status, err) = upload_alone(app, &stray_cert).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("guardmdm apns csr"),
            "{err}"
        );

        let request = new_request(app).await;
        let csr = request["csr_pem"].as_str().unwrap();
        assert!(
            csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
            "{request}"
        );
        assert_eq!(request["replaced"], Value::Null);
        assert_eq!(request["installed"], false);
        assert!(!request.to_string().contains("PRIVATE KEY"));
        let (_, shown) = app.json(Method::GET, "/api/v1/apns/csr", None).await;
        assert_eq!(shown["csr_pem"], request["csr_pem"]);

        // A certificate issued for another key: refused with what to do, nothing stored.
        let (status, err) = upload_alone(app, &stray_cert).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("this certificate was not issued for GuardMDM's last request")
                && message.contains("upload its key too or make a new request"),
            "{message}"
        );
        let (_, none) = app.json(Method::GET, "/api/v1/apns", None).await;
        assert_eq!(none, Value::Null, "nothing was installed");

        // Apple's certificate for GuardMDM's request, uploaded alone.
        let issued = portal.issue(csr.as_bytes(), TOPIC, 365).unwrap();
        let (status, view) = upload_alone(app, &issued).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["topic"], TOPIC);
        assert_eq!(view["state"], "active");
        let first_fingerprint = view["fingerprint"].clone();
        let (_, shown) = app.json(Method::GET, "/api/v1/apns/csr", None).await;
        assert_eq!(shown["installed"], true, "{shown}");

        // Devices enroll with its topic and are pushed with it.
        let serials = buy(&mdm, 1).await;
        let device = SimDevice::new(&app.abm.sim, &serials[0], &mdm.ca).unwrap();
        device.attach_apns(&mdm.apns.apns);
        let report = device.enroll_and_run(&app.abm.sim).await.unwrap();
        assert!(report.enrolled, "{report:?}");
        let udid = device.udid().to_string();
        pushed(&mdm, &udid).await;
        answered_after_a_push(&mdm, &udid).await;

        // Renewal: a new request, the same topic; pushes keep working.
        let renewal = new_request(app).await;
        assert_eq!(
            renewal["replaced"],
            Value::Null,
            "the last request was used"
        );
        assert!(
            renewal["message"]
                .as_str()
                .unwrap()
                .contains("keeps working"),
            "{renewal}"
        );
        let renewed = portal
            .issue(renewal["csr_pem"].as_str().unwrap().as_bytes(), TOPIC, 365)
            .unwrap();
        let (status, view) = upload_alone(app, &renewed).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["topic"], TOPIC);
        assert_ne!(view["fingerprint"], first_fingerprint);
        answered_after_a_push(&mdm, &udid).await;

        // A certificate with another topic would orphan the device: refused with the reason.
        let again = new_request(app).await;
        let foreign = portal
            .issue(
                again["csr_pem"].as_str().unwrap().as_bytes(),
                OTHER_TOPIC,
                365,
            )
            .unwrap();
        let (status, err) = upload_alone(app, &foreign).await;
        assert_eq!(status, StatusCode::CONFLICT, "{err}");
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("every enrolled device") && message.contains("--force"),
            "{message}"
        );
        let (_, current) = app.json(Method::GET, "/api/v1/apns", None).await;
        assert_eq!(current["fingerprint"], view["fingerprint"], "unchanged");
        answered_after_a_push(&mdm, &udid).await;

        let (_, audit) = app.json(Method::GET, "/api/v1/audit?limit=100", None).await;
        let actions: Vec<&str> = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with("apns."))
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "apns.csr",
                "apns.upload",
                "apns.csr",
                "apns.upload",
                "apns.csr"
            ],
            "newest first"
        );
        mdm.app.stop().await;
    }
}

fn run(cwd: &Path, program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A vendor PKI made with the `openssl` tool: `root.pem`, `intermediate.pem`, and the
/// vendor's `vendor.pem` with `vendor.key`.
fn vendor_pki(dir: &Path) {
    std::fs::write(
        dir.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    run(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Test Vendor Root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    for (name, cn, issuer, ext) in [
        ("intermediate", "Test Vendor Intermediate", "root", true),
        ("vendor", "MDM Vendor: GuardMDM Test", "intermediate", false),
    ] {
        run(
            dir,
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        let mut args = vec![
            "x509".to_string(),
            "-req".into(),
            "-in".into(),
            format!("{name}.csr"),
            "-CA".into(),
            format!("{issuer}.pem"),
            "-CAkey".into(),
            format!("{issuer}.key"),
            "-CAcreateserial".into(),
            "-days".into(),
            "2".into(),
            "-out".into(),
            format!("{name}.pem"),
        ];
        if ext {
            args.extend(["-extfile".into(), "ca.ext".into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(dir, "openssl", &args);
    }
}

fn pem_blocks(text: &str) -> Vec<String> {
    text.split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("-----BEGIN CERTIFICATE-----"))
        .map(|b| b.trim().to_string())
        .collect()
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn the_cli_makes_signs_and_uploads_push_certificate_requests() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();
    let cli = |args: &'static [&'static str]| common::run_cli(&app, Some(ADMIN_TOKEN), cwd, args);
    vendor_pki(cwd);
    let portal = PushPortal::generate().unwrap();

    // The vendor certificate without its chain: refused before the server makes a key.
    let out = cli(&[
        "apns",
        "csr",
        "--vendor-cert",
        "vendor.pem",
        "--vendor-key",
        "vendor.key",
        "-o",
        "signed.b64",
    ])
    .await;
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("incomplete")
            && out.stderr.contains("CN=Test Vendor Intermediate")
            && out
                .stderr
                .contains("https://www.apple.com/certificateauthority/"),
        "{}",
        out.stderr
    );
    let (_, none) = app.json(Method::GET, "/api/v1/apns/csr", None).await;
    assert_eq!(none, Value::Null, "no request was made");
    assert!(!cwd.join("signed.b64").exists());

    // A key that is not the vendor certificate's.
    let out = cli(&[
        "apns",
        "csr",
        "--vendor-cert",
        "vendor.pem",
        "--vendor-chain",
        "intermediate.pem",
        "--vendor-key",
        "root.key",
    ])
    .await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("belongs to the vendor private key"),
        "{}",
        out.stderr
    );

    // With the chain: the signed request Apple's portal takes.
    let out = cli(&[
        "apns",
        "csr",
        "--vendor-cert",
        "vendor.pem",
        "--vendor-chain",
        "intermediate.pem",
        "--vendor-chain",
        "root.pem",
        "--vendor-key",
        "vendor.key",
        "-o",
        "signed.b64",
    ])
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("identity.apple.com"), "{}", out.stderr);
    assert!(out.stderr.contains("not Apple Root CA"), "{}", out.stderr);
    let encoded = std::fs::read_to_string(cwd.join("signed.b64")).unwrap();
    let xml = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap();
    let plist = plist::Value::from_reader_xml(xml.as_slice()).unwrap();
    let dict = plist.as_dictionary().unwrap();
    let text = |k: &str| dict.get(k).unwrap().as_string().unwrap().to_string();
    let csr_der = base64::engine::general_purpose::STANDARD
        .decode(text("PushCertRequestCSR"))
        .unwrap();
    let (_, pending) = app.json(Method::GET, "/api/v1/apns/csr", None).await;
    assert_eq!(
        csr_der,
        pem_der(pending["csr_pem"].as_str().unwrap()),
        "the server's pending request"
    );
    let chain = pem_blocks(&text("PushCertCertificateChain"));
    let expected: Vec<String> = ["vendor.pem", "intermediate.pem", "root.pem"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(cwd.join(f))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(chain, expected, "vendor certificate, intermediate, root");
    // The signature verifies with the vendor certificate's key (checked by openssl).
    std::fs::write(cwd.join("csr.der"), &csr_der).unwrap();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(text("PushCertSignature"))
        .unwrap();
    std::fs::write(cwd.join("sig.bin"), signature).unwrap();
    let public = run(
        cwd,
        "openssl",
        &["x509", "-in", "vendor.pem", "-noout", "-pubkey"],
    );
    std::fs::write(cwd.join("vendor.pub"), public).unwrap();
    let verified = run(
        cwd,
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-verify",
            "vendor.pub",
            "-signature",
            "sig.bin",
            "csr.der",
        ],
    );
    assert!(verified.contains("Verified OK"), "{verified}");

    // Without a vendor certificate: the request itself. It replaces the unused one.
    let out = cli(&["apns", "csr"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr.contains("replaced the pending request"),
        "{}",
        out.stderr
    );
    let csr = std::fs::read_to_string(cwd.join("GuardMDM_push.csr")).unwrap();
    assert!(
        csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{csr}"
    );
    let out = cli(&["apns", "csr", "--pending", "-o", "again.csr"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(cwd.join("again.csr")).unwrap(), csr);

    // A certificate for another key is refused; Apple's for this request is taken alone.
    let stray = generate_push_request().unwrap();
    let wrong = portal.issue(stray.csr_pem.as_bytes(), TOPIC, 365).unwrap();
    std::fs::write(cwd.join("wrong.pem"), wrong).unwrap();
    let out = cli(&["apns", "upload", "--cert", "wrong.pem"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("this certificate was not issued for GuardMDM's last request; upload its key too or make a new request"),
        "{}",
        out.stderr
    );
    let issued = portal.issue(csr.as_bytes(), TOPIC, 365).unwrap();
    std::fs::write(cwd.join("apple.pem"), issued).unwrap();
    let out = cli(&["apns", "upload", "--cert", "apple.pem"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains(TOPIC), "{}", out.stdout);
    let out = cli(&["apns", "show"]).await;
    assert!(out.stdout.contains("State:     active"), "{}", out.stdout);

    // A renewal with another topic is refused unless --force.
    let out = cli(&["apns", "csr", "-o", "renew.csr"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stderr.contains("keeps working"), "{}", out.stderr);
    let renew = std::fs::read_to_string(cwd.join("renew.csr")).unwrap();
    let other = portal.issue(renew.as_bytes(), OTHER_TOPIC, 365).unwrap();
    std::fs::write(cwd.join("other.pem"), other).unwrap();
    let out = cli(&["apns", "upload", "--cert", "other.pem"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("every enrolled device"),
        "{}",
        out.stderr
    );
    let out = cli(&["apns", "upload", "--cert", "other.pem", "--force"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains(OTHER_TOPIC), "{}", out.stdout);
    app.stop().await;
}

#[tokio::test]
async fn the_settings_page_walks_from_request_to_upload_with_a_banner_until_done() {
    use common::web::{WebClient, create_admin};
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        create_admin(&app, "alice", common::web::PASSWORD).await;
        let web = WebClient::signed_in(&app, "alice").await;
        let portal = PushPortal::generate().unwrap();
        let banner = "<p><strong>Push certificate: ";

        // Before ABM is connected a missing certificate is a set-up step, not a banner.
        assert!(!web.get("/devices").await.body.contains(banner));
        app.create_entry("main").await;
        let devices = web.get("/devices").await;
        assert!(
            devices.body.contains("Push certificate: missing.</strong>"),
            "{}",
            devices.body
        );
        assert!(devices.body.contains("<a href=\"/settings/apns\">"));

        let page = web.get("/settings/apns").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body
                .contains("href=\"/settings/apns\" aria-current=\"page\"")
        );
        assert!(page.body.contains(">Missing</span>"), "{}", page.body);
        assert!(page.body.contains("No request yet."));
        assert!(page.body.contains("identity.apple.com"));
        assert!(
            page.body
                .contains("the same Apple Account for every renewal")
        );
        assert!(!page.body.contains("id=\"download-request\""));
        let csrf = page.csrf();

        // Changes need the session's CSRF token.
        let refused = web.post("/settings/apns/request", &[], None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let (_, none) = app.json(Method::GET, "/api/v1/apns/csr", None).await;
        assert_eq!(none, Value::Null);

        let made = web
            .post("/settings/apns/request", &[("csrf_token", &csrf)], None)
            .await;
        assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
        assert_eq!(made.location(), "/settings/apns");
        let page = web.get("/settings/apns").await;
        assert!(
            page.body.contains("id=\"download-request\""),
            "{}",
            page.body
        );
        assert!(page.body.contains("Pending request made"), "{}", page.body);
        let download = web.get("/settings/apns/request.csr").await;
        assert_eq!(download.status, StatusCode::OK);
        assert_eq!(
            download.headers["content-disposition"],
            "attachment; filename=\"GuardMDM_push.csr\""
        );
        let (_, pending) = app.json(Method::GET, "/api/v1/apns/csr", None).await;
        assert_eq!(download.body, pending["csr_pem"].as_str().unwrap());

        // A certificate for another key: the reason on the form, nothing installed.
        let stray = generate_push_request().unwrap();
        let wrong = portal.issue(stray.csr_pem.as_bytes(), TOPIC, 365).unwrap();
        let refused = web
            .post(
                "/settings/apns/certificate",
                &[("csrf_token", &csrf), ("certificate_text", &wrong)],
                None,
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            refused
                .body
                .contains("this certificate was not issued for GuardMDM&#39;s last request")
                || refused
                    .body
                    .contains("this certificate was not issued for GuardMDM&#x27;s last request"),
            "{}",
            refused.body
        );
        assert!(refused.body.contains("id=\"certificate-error\""));

        // Apple's certificate as a file (htmx, multipart): installed, the banner goes.
        let issued = portal.issue(download.body.as_bytes(), TOPIC, 365).unwrap();
        let done = web
            .post_multipart(
                "/settings/apns/certificate",
                &[],
                &[(
                    "certificate_file",
                    "MDM_GuardMDM_Certificate.pem",
                    issued.as_bytes(),
                )],
                Some(&csrf),
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        let page = web.get("/settings/apns").await;
        assert!(page.body.contains(">Active</span>"), "{}", page.body);
        assert!(page.body.contains(TOPIC));
        assert!(
            page.body
                .contains("the installed certificate was issued for it")
        );
        assert!(!web.get("/devices").await.body.contains(banner));

        // A renewal that expires soon: installed, with a warning banner on every page.
        web.post("/settings/apns/request", &[("csrf_token", &csrf)], None)
            .await;
        let (_, renewal) = app.json(Method::GET, "/api/v1/apns/csr", None).await;
        let csr = renewal["csr_pem"].as_str().unwrap().as_bytes().to_vec();
        let soon = portal.issue(&csr, TOPIC, 10).unwrap();
        let done = web
            .post(
                "/settings/apns/certificate",
                &[("csrf_token", &csrf), ("certificate_text", &soon)],
                None,
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        let page = web.get("/settings/apns").await;
        assert!(page.body.contains(">Expiring soon</span>"), "{}", page.body);
        let devices = web.get("/devices").await;
        assert!(
            devices
                .body
                .contains("Push certificate: expiring.</strong>"),
            "{}",
            devices.body
        );
        assert!(devices.body.contains("same Apple Account"));

        // Another topic is refused with the reason unless the box is ticked.
        let other = portal.issue(&csr, OTHER_TOPIC, 365).unwrap();
        let refused = web
            .post(
                "/settings/apns/certificate",
                &[("csrf_token", &csrf), ("certificate_text", &other)],
                None,
            )
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert!(
            refused.body.contains("every enrolled device"),
            "{}",
            refused.body
        );
        app.stop().await;
    }
}

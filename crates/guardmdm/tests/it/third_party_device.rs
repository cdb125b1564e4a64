//! A device made only of third-party tools, following Apple's protocol as documented and
//! knowing nothing of GuardMDM's code: the `openssl` command line signs its MachineInfo and
//! its check-ins (a detached CMS `Mdm-Signature`), `curl` speaks HTTP, and micromdm's
//! `scepclient` (Debian package `scep`) gets its identity from GuardMDM's own `/scep`, which
//! runs with `--scep-allow-single-des` since that client always envelopes with single DES.
//! The device enrolls from its ADE profile's URL, checks in, shows as Enrolled, and answers
//! `DeviceConfigured` and an admin's command; a check-in signed by a key GuardMDM never
//! issued is refused with 403, never 401.
//!
//! Without `scepclient` the test says SKIPPED and passes, unless
//! `GUARDMDM_REQUIRE_SCEPCLIENT=1` (set by `.ci/run`) makes that a failure.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use common::mdm::{TOPIC, buy, enrollment, setup_with};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Runs a tool to its end. The server under test shares this runtime, so the wait must not
/// hold a worker thread (`block_in_place`).
fn output(command: &mut Command) -> std::process::Output {
    tokio::task::block_in_place(|| command.output()).unwrap()
}

/// Runs a tool, panicking with its output when it fails.
fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = output(Command::new(program).args(args));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// What `curl` got: the HTTP status, the content type and the body.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// `curl -X method url` with a body file and headers.
fn curl(dir: &Path, method: &str, url: &str, body: &Path, headers: &[String]) -> Answer {
    let out = dir.join("curl.out");
    let mut args = vec![
        "-sS".to_string(),
        "-X".to_string(),
        method.to_string(),
        "--data-binary".to_string(),
        format!("@{}", body.display()),
        "-o".to_string(),
        out.display().to_string(),
        "-w".to_string(),
        "%{http_code} %{content_type}".to_string(),
    ];
    for h in headers {
        args.push("-H".to_string());
        args.push(h.clone());
    }
    args.push(url.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let meta = String::from_utf8(run("curl", &args)).unwrap();
    let (status, content_type) = meta.split_once(' ').unwrap_or((meta.as_str(), ""));
    Answer {
        status: status.parse().unwrap(),
        content_type: content_type.to_string(),
        body: std::fs::read(&out).unwrap_or_default(),
    }
}

/// `openssl cms -sign`: attached (`detached == false`) or detached DER SignedData.
fn cms_sign(dir: &Path, input: &Path, cert: &Path, key: &Path, detached: bool) -> Vec<u8> {
    let out = dir.join("signed.der");
    let mut args = vec![
        "cms",
        "-sign",
        "-binary",
        "-outform",
        "DER",
        "-md",
        "sha256",
        "-in",
        input.to_str().unwrap(),
        "-signer",
        cert.to_str().unwrap(),
        "-inkey",
        key.to_str().unwrap(),
        "-out",
        out.to_str().unwrap(),
    ];
    if !detached {
        args.push("-nodetach");
    }
    // The chain up to the trust anchor travels with the signature, as a device sends it.
    let chain = cert.with_extension("chain.pem");
    if chain.exists() {
        args.extend(["-certfile", chain.to_str().unwrap()]);
    }
    run("openssl", &args);
    std::fs::read(out).unwrap()
}

fn plist_xml(value: &plist::Value) -> Vec<u8> {
    let mut out = Vec::new();
    value.to_writer_xml(&mut out).unwrap();
    out
}

fn dict(entries: &[(&str, plist::Value)]) -> plist::Value {
    plist::Value::Dictionary(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect(),
    )
}

fn string(s: &str) -> plist::Value {
    plist::Value::String(s.to_string())
}

/// The device: an identity key and certificate, and where to reach the server.
struct Device {
    dir: PathBuf,
    udid: String,
    serial: String,
    identity_cert: PathBuf,
    identity_key: PathBuf,
    checkin_url: String,
    server_url: String,
}

impl Device {
    /// A signed check-in or command report, sent the way a device does.
    fn put(&self, url: &str, content_type: &str, body: &plist::Value) -> Answer {
        let file = self.dir.join("message.plist");
        std::fs::write(&file, plist_xml(body)).unwrap();
        let signature = cms_sign(
            &self.dir,
            &file,
            &self.identity_cert,
            &self.identity_key,
            true,
        );
        let signature = base64::engine::general_purpose::STANDARD.encode(signature);
        curl(
            &self.dir,
            "PUT",
            url,
            &file,
            &[
                format!("Content-Type: {content_type}"),
                format!("Mdm-Signature: {signature}"),
            ],
        )
    }

    fn check_in(&self, body: &plist::Value) -> Answer {
        self.put(
            &self.checkin_url,
            "application/x-apple-aspen-mdm-checkin",
            body,
        )
    }

    fn report(&self, body: &plist::Value) -> Answer {
        self.put(&self.server_url, "application/x-apple-aspen-mdm", body)
    }
}

/// The payload of `PayloadType` `kind` in an enrollment profile.
fn payload<'a>(profile: &'a plist::Dictionary, kind: &str) -> &'a plist::Dictionary {
    profile["PayloadContent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(plist::Value::as_dictionary)
        .find(|p| p["PayloadType"].as_string() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} payload in {profile:?}"))
}

fn text<'a>(d: &'a plist::Dictionary, key: &str) -> &'a str {
    d.get(key)
        .and_then(plist::Value::as_string)
        .unwrap_or_else(|| panic!("no string {key} in {d:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_built_from_third_party_tools_enrolls_and_answers_commands() {
    if !common::require_tools(
        &["scepclient"],
        "GUARDMDM_REQUIRE_SCEPCLIENT",
        "apt-get install scep",
    ) {
        return;
    }
    for backend in common::backends() {
        let mdm = setup_with(backend, &["--scep-allow-single-des"]).await;
        let app = &mdm.app;
        let serial = buy(&mdm, 1).await.remove(0);
        let dir = mdm.files.path().to_path_buf();

        // Setup Assistant: Apple's activation names the ADE profile's URL.
        let activation = app.abm.sim.activate(&serial).unwrap();
        assert_eq!(activation.status, "profile", "{activation:?}");
        let enroll_url = activation.profile.as_ref().unwrap()["url"]
            .as_str()
            .unwrap()
            .to_string();

        // The MachineInfo, signed by the device's own identity (from the device CA the
        // server trusts), as an attached CMS.
        let device_identity = mdm.ca.issue_identity("third-party device").unwrap();
        let device_cert = dir.join("device.pem");
        let device_key = dir.join("device.key");
        std::fs::write(&device_cert, device_identity.certificates_pem()).unwrap();
        std::fs::write(
            dir.join("device.chain.pem"),
            mdm.ca.issuing_certificate().to_pem(),
        )
        .unwrap();
        std::fs::write(
            &device_key,
            secrecy::ExposeSecret::expose_secret(&device_identity.private_key_pem().unwrap()),
        )
        .unwrap();
        let udid = "00008030-000A1B2C3D4E5F60".to_string();
        let machine_info = dir.join("machine-info.plist");
        std::fs::write(
            &machine_info,
            plist_xml(&dict(&[
                ("UDID", string(&udid)),
                ("SERIAL", string(&serial)),
                ("PRODUCT", string("iPhone14,5")),
                ("VERSION", string("22A3354")),
                ("LANGUAGE", string("en-US")),
            ])),
        )
        .unwrap();
        let signed = dir.join("machine-info.p7");
        std::fs::write(
            &signed,
            cms_sign(&dir, &machine_info, &device_cert, &device_key, false),
        )
        .unwrap();
        let answer = curl(
            &dir,
            "POST",
            &enroll_url,
            &signed,
            &["Content-Type: application/pkcs7-signature".to_string()],
        );
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.content_type, "application/x-apple-aspen-config");

        // The enrollment profile: openssl checks its signature and takes the plist out.
        let profile_der = dir.join("enrollment.p7");
        std::fs::write(&profile_der, &answer.body).unwrap();
        let profile_plist = dir.join("enrollment.plist");
        run(
            "openssl",
            &[
                "cms",
                "-verify",
                "-noverify",
                "-inform",
                "DER",
                "-in",
                profile_der.to_str().unwrap(),
                "-out",
                profile_plist.to_str().unwrap(),
            ],
        );
        let profile = plist::Value::from_file(&profile_plist).unwrap();
        let profile = profile.as_dictionary().unwrap();
        let scep_payload = payload(profile, "com.apple.security.scep")["PayloadContent"]
            .as_dictionary()
            .unwrap()
            .clone();
        let mdm_payload = payload(profile, "com.apple.mdm").clone();
        assert_eq!(text(&mdm_payload, "Topic"), TOPIC);
        assert_eq!(
            mdm_payload
                .get("SignMessage")
                .and_then(plist::Value::as_boolean),
            Some(true)
        );

        // SCEP with micromdm's client, against GuardMDM's own endpoint and challenge.
        // scepclient keeps its CSR (with the challenge in it) beside its key and sends it
        // again on the next run, so every attempt gets a directory of its own; the one that
        // works is the device's identity.
        let scep = |challenge: &str| {
            let attempt = tempfile::tempdir_in(&dir).unwrap().keep();
            let key = attempt.join("identity.key");
            let cert = attempt.join("identity.pem");
            let out = output(
                Command::new("scepclient")
                    .current_dir(&attempt)
                    .arg("-server-url")
                    .arg(text(&scep_payload, "URL"))
                    .arg("-challenge")
                    .arg(challenge)
                    .arg("-private-key")
                    .arg(&key)
                    .arg("-certificate")
                    .arg(&cert)
                    .arg("-cn")
                    .arg(&udid),
            );
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success() && cert.exists(), log, key, cert)
        };
        // A wrong challenge first: refused, and nothing written.
        let (ok, log, _, _) = scep("not-the-challenge");
        assert!(
            !ok && log.contains("badRequest"),
            "a wrong challenge must fail: {log}"
        );
        let challenge = text(&scep_payload, "Challenge");
        let (ok, log, identity_key, identity_cert) = scep(challenge);
        assert!(ok, "scepclient with the profile's challenge: {log}");
        // The challenge was single use.
        let (ok, log, _, _) = scep(challenge);
        assert!(
            !ok && log.contains("badRequest"),
            "a replayed challenge must fail: {log}"
        );

        let device = Device {
            dir: dir.clone(),
            udid: udid.clone(),
            serial: serial.clone(),
            identity_cert,
            identity_key,
            checkin_url: text(&mdm_payload, "CheckInURL").to_string(),
            server_url: text(&mdm_payload, "ServerURL").to_string(),
        };
        let authenticate = device.check_in(&dict(&[
            ("MessageType", string("Authenticate")),
            ("Topic", string(TOPIC)),
            ("UDID", string(&device.udid)),
            ("SerialNumber", string(&device.serial)),
            ("Model", string("iPhone14,5")),
            ("ModelName", string("iPhone")),
            ("ProductName", string("iPhone14,5")),
            ("OSVersion", string("18.0")),
            ("BuildVersion", string("22A3354")),
        ]));
        assert_eq!(
            authenticate.status,
            200,
            "{}",
            String::from_utf8_lossy(&authenticate.body)
        );
        let token_update = device.check_in(&dict(&[
            ("MessageType", string("TokenUpdate")),
            ("Topic", string(TOPIC)),
            ("UDID", string(&device.udid)),
            ("Token", plist::Value::Data(vec![0xab; 32])),
            ("PushMagic", string("5E0E1A5C-6F0D-4B7B-8C4B-2B8F6A1D9E31")),
            ("UnlockToken", plist::Value::Data(vec![0x01; 64])),
            ("AwaitingConfiguration", plist::Value::Boolean(true)),
        ]));
        assert_eq!(
            token_update.status,
            200,
            "{}",
            String::from_utf8_lossy(&token_update.body)
        );
        let e = enrollment(app, &serial).await;
        assert_eq!(e["status"], "enrolled", "{e}");
        assert_eq!(e["udid"], udid.as_str());

        // The command channel: Idle gets DeviceConfigured; the result is stored; an admin's
        // command follows.
        let idle = dict(&[("Status", string("Idle")), ("UDID", string(&udid))]);
        let first = device.report(&idle);
        assert_eq!(first.status, 200);
        let command = plist::Value::from_reader(std::io::Cursor::new(&first.body)).unwrap();
        let command = command.as_dictionary().unwrap();
        assert_eq!(
            text(command["Command"].as_dictionary().unwrap(), "RequestType"),
            "DeviceConfigured"
        );
        let uuid = text(command, "CommandUUID").to_string();
        let done = device.report(&dict(&[
            ("Status", string("Acknowledged")),
            ("UDID", string(&udid)),
            ("CommandUUID", string(&uuid)),
        ]));
        assert_eq!(done.status, 200);
        assert!(done.body.is_empty(), "nothing more queued");
        assert_eq!(
            enrollment(app, &serial).await["awaiting_configuration"],
            false
        );

        let (status, sent) = app
            .json(
                Method::POST,
                &format!("/api/v1/enrollments/{udid}/commands"),
                Some(json!({ "request_type": "ProfileList" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sent}");
        let next = device.report(&idle);
        let command = plist::Value::from_reader(std::io::Cursor::new(&next.body)).unwrap();
        let uuid = text(command.as_dictionary().unwrap(), "CommandUUID").to_string();
        assert_eq!(uuid, sent["uuid"].as_str().unwrap());
        let result = device.report(&dict(&[
            ("Status", string("Acknowledged")),
            ("UDID", string(&udid)),
            ("CommandUUID", string(&uuid)),
            ("ProfileList", plist::Value::Array(Vec::new())),
        ]));
        assert_eq!(result.status, 200);
        let (_, shown) = app
            .json(Method::GET, &format!("/api/v1/commands/{uuid}"), None)
            .await;
        assert_eq!(shown["status"], "acknowledged", "{shown}");
        assert!(
            shown["result"].as_str().unwrap().contains("ProfileList"),
            "{shown}"
        );

        // A check-in signed by a key GuardMDM never issued: 403 with the reason, not 401.
        let stranger_key = dir.join("stranger.key");
        let stranger_cert = dir.join("stranger.pem");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={udid}"),
                "-days",
                "1",
                "-keyout",
                stranger_key.to_str().unwrap(),
                "-out",
                stranger_cert.to_str().unwrap(),
            ],
        );
        let forged = Device {
            identity_cert: stranger_cert,
            identity_key: stranger_key,
            ..device
        };
        let refused = forged.report(&idle);
        assert_eq!(refused.status, 403);
        let reason = String::from_utf8_lossy(&refused.body);
        assert!(reason.contains("not issued by GuardMDM"), "{reason}");
        mdm.app.stop().await;
    }
}

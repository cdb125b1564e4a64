//! Fuzzing the device-facing endpoints over a real socket: mutated bodies to `/mdm/enroll`,
//! `/mdm/checkin`, `/mdm/connect` and `/scep` (POST and GET), and mutated
//! `x-apple-aspen-deviceinfo` headers on `GET /mdm/enroll`, against a test server with a
//! simulated device CA and one device that holds a real SCEP identity. Structure-aware: most
//! mutated check-ins, reports and MachineInfo bodies are signed validly after mutation (with
//! the device's SCEP identity, or its device CA identity for MachineInfo), so they get past the
//! signature checks and reach the parsers behind them; the rest mutate the signature itself.
//!
//! Checked per request: never a 5xx, never a 401 (a 401 unenrolls a device); after each
//! endpoint's cases the server still answers `/healthz`.
//!
//! `fuzz_http_smoke` runs a few dozen cases per endpoint in the normal test run;
//! `fuzz_http_full` runs `GUARDMDM_FUZZ_CASES` (default 3,000) per endpoint:
//! `cargo test --release -p guardmdm --test fuzz_http -- --ignored --nocapture`.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::mdm::{Mdm, TOPIC, buy, enrollment, setup};
use guardmdm_crypto::scep::PKI_MESSAGE_CONTENT_TYPE;
use guardmdm_crypto::{Certificate, DeviceKey, Identity, ScepClient, sign_attached, sign_detached};
use guardmdm_fuzz::{Campaign, Mutator, Stats, Verdict};
use guardmdm_mdm_protocol::{
    CHECKIN_CONTENT_TYPE, DEVICE_INFO_HEADER, MACHINE_INFO_CONTENT_TYPE, REPORT_CONTENT_TYPE,
};
use guardmdm_sim::SimDevice;
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;

const FULL_CASES: u64 = 3_000;
const SMOKE_CASES: u64 = 40;

/// The UDID and topic the seed fixtures carry, replaced by the fuzzed device's.
const FIXTURE_UDID: &str = "00008140-001A2B3C4D5E801C";
const FIXTURE_TOPIC: &str = "com.apple.mgmt.External.5a1c3b2e-9d4f-4e6a-8b7c-0d1e2f3a4b5c";
const FIXTURE_SERIAL: &str = "F2LXK3ABHG7F";

/// A device GuardMDM knows: its SCEP identity (key kept here) and its device CA identity.
struct Device {
    udid: String,
    serial: String,
    mdm_identity: Identity,
    ca_identity: Identity,
    scep_request: Vec<u8>,
}

/// Enrolls one device by hand: the simulator's device posts its MachineInfo (which gives the
/// SCEP challenge); the SCEP request, `Authenticate` and `TokenUpdate` are made here so the
/// test holds the identity's key.
async fn enrolled_device(mdm: &Mdm) -> Device {
    let app = &mdm.app;
    let serial = buy(mdm, 1).await.remove(0);
    let sim = SimDevice::new(&app.abm.sim, &serial, &mdm.ca).unwrap();
    sim.activate(&app.abm.sim).unwrap();
    let info = sim.post_machine_info().await.unwrap();
    let udid = sim.udid().to_string();
    let ca_der = app
        .http
        .get(app.url("/scep?operation=GetCACert"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let ca_cert = Certificate::from_der(&ca_der).unwrap();
    let key = DeviceKey::generate().unwrap();
    let challenge = info.scep.challenge.as_ref().unwrap().expose_secret();
    let (request, pending) = ScepClient::default()
        .pkcs_req(&ca_cert, &key, &udid, challenge)
        .unwrap();
    let reply = app
        .http
        .post(app.url("/scep?operation=PKIOperation"))
        .header("content-type", PKI_MESSAGE_CONTENT_TYPE)
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let cert = pending
        .read_cert_rep(&reply.bytes().await.unwrap())
        .unwrap();
    let mdm_identity = Identity::from_device_key(cert, &key, Vec::new()).unwrap();
    let device = Device {
        ca_identity: mdm.ca.issue_identity(&udid).unwrap(),
        udid,
        serial,
        mdm_identity,
        scep_request: request,
    };
    check_in(mdm, &device).await;
    assert_eq!(
        enrollment(app, &device.serial).await["status"],
        "enrolled",
        "the fuzzed device is enrolled"
    );
    device
}

/// `Authenticate` and `TokenUpdate`: (re-)enrolls the device, after a fuzzed `CheckOut` or
/// `Authenticate` may have legitimately ended or reset its enrollment.
async fn check_in(mdm: &Mdm, device: &Device) {
    for fixture in ["authenticate_ios.plist", "token_update_ios.plist"] {
        let body = fixture_for(device, "checkin", fixture);
        let status = put(
            mdm,
            "/mdm/checkin",
            CHECKIN_CONTENT_TYPE,
            &body,
            Some(device),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{fixture}");
    }
}

fn testdata(dir: &str) -> Vec<(String, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mdm-protocol/testdata")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// A fixture of `mdm-protocol/testdata` speaking for `device`.
fn fixture_for(device: &Device, dir: &str, name: &str) -> Vec<u8> {
    let (_, bytes) = testdata(dir).into_iter().find(|(n, _)| n == name).unwrap();
    personalize(device, &bytes)
}

fn personalize(device: &Device, bytes: &[u8]) -> Vec<u8> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .replace(FIXTURE_UDID, &device.udid)
        .replace(FIXTURE_TOPIC, TOPIC)
        .replace(FIXTURE_SERIAL, &device.serial)
        .into_bytes()
}

fn plist_mutator(device: &Device, dir: &str) -> Mutator {
    let seeds = testdata(dir)
        .iter()
        .map(|(_, bytes)| personalize(device, bytes))
        .collect();
    Mutator::new(seeds).with_tokens([
        "<array>",
        "</array>",
        "<dict>",
        "</dict>",
        "<key>",
        "<string>",
        "</string>",
        "<data>",
        "<integer>",
        "<true/>",
        "<key>UDID</key>",
        "<key>Status</key>",
        "<key>CommandUUID</key>",
        "&#0;",
        "<!DOCTYPE plist [<!ENTITY a \"a\">]>",
        "bplist00",
    ])
}

/// PUTs `body`, signed by the device's SCEP identity when `signer` is given.
fn put_request(
    mdm: &Mdm,
    path: &str,
    content_type: &str,
    body: &[u8],
    signer: Option<&Device>,
) -> reqwest::RequestBuilder {
    let mut request = mdm
        .app
        .http
        .put(mdm.app.url(path))
        .header("content-type", content_type)
        .body(body.to_vec());
    if let Some(device) = signer {
        let signature = sign_detached(body, &device.mdm_identity).unwrap();
        request = request.header("mdm-signature", STANDARD.encode(signature));
    }
    request
}

async fn put(
    mdm: &Mdm,
    path: &str,
    content_type: &str,
    body: &[u8],
    signer: Option<&Device>,
) -> StatusCode {
    put_request(mdm, path, content_type, body, signer)
        .send()
        .await
        .unwrap()
        .status()
}

/// What became of one request.
enum Sent {
    /// The server answered.
    Status(StatusCode),
    /// The mutated input cannot be sent at all (a header value with a line break, a URL
    /// longer than HTTP clients build).
    Unsendable,
    /// The request failed on the way: the server dropped the connection.
    Failed(String),
}

async fn send(request: reqwest::RequestBuilder) -> Sent {
    match request.send().await {
        Ok(resp) => Sent::Status(resp.status()),
        Err(e) if e.is_builder() => Sent::Unsendable,
        Err(e) => Sent::Failed(e.to_string()),
    }
}

/// A status a device may get: anything but a 5xx or a 401.
fn judge(status: StatusCode) -> Verdict {
    if status.is_server_error() || status == StatusCode::UNAUTHORIZED {
        Verdict::Broken(format!("answered {status}"))
    } else if status.is_success() {
        Verdict::Accepted
    } else {
        Verdict::Refused
    }
}

/// One endpoint's campaign: `case_request` makes and sends case `i`'s request and returns
/// what became of it.
async fn endpoint<F, Fut>(mdm: &Mdm, campaign: &Campaign, cases: u64, mut case_request: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = (Vec<u8>, Sent)>,
{
    eprintln!(
        "fuzz {}: seed {:#x} (set GUARDMDM_FUZZ_SEED to repeat)",
        campaign.name(),
        campaign.seed()
    );
    let mut stats = Stats::new(campaign);
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let numbers = campaign.case_numbers();
    for case in numbers.start..numbers.end.min(numbers.start + cases) {
        let started = Instant::now();
        let (input, status) = case_request(case).await;
        let verdict = match status {
            Sent::Status(status) => {
                *statuses.entry(status.as_u16()).or_default() += 1;
                judge(status)
            }
            Sent::Unsendable => Verdict::Refused,
            Sent::Failed(e) => Verdict::Broken(format!("the request failed: {e}")),
        };
        stats.record(case, input, started.elapsed(), verdict);
    }
    let report = stats.finish();
    eprintln!("  statuses: {statuses:?}");
    let health = mdm
        .app
        .http
        .get(mdm.app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the server still answers");
    report.assert_clean();
}

fn campaign(name: &str, full: bool) -> Campaign {
    if full {
        Campaign::full(name, FULL_CASES)
    } else {
        Campaign::smoke(name)
    }
}

async fn fuzz_every_endpoint(full: bool) {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let device = enrolled_device(&mdm).await;
        let cases = if full { u64::MAX } else { SMOKE_CASES };

        // /mdm/checkin: mutated bodies, mostly signed validly after mutation.
        let m = plist_mutator(&device, "checkin");
        let c = campaign("http PUT /mdm/checkin", full);
        endpoint(&mdm, &c, cases, |case| {
            let body = c.input(&m, case);
            let signed = !c.rng(case).one_in(5);
            let (mdm, device) = (&mdm, &device);
            async move {
                let signer = signed.then_some(device);
                let request = put_request(mdm, "/mdm/checkin", CHECKIN_CONTENT_TYPE, &body, signer);
                (body, send(request).await)
            }
        })
        .await;

        check_in(&mdm, &device).await;

        // /mdm/connect: mutated reports, mostly signed validly.
        let m = plist_mutator(&device, "report");
        let c = campaign("http PUT /mdm/connect", full);
        endpoint(&mdm, &c, cases, |case| {
            let body = c.input(&m, case);
            let signed = !c.rng(case).one_in(5);
            let (mdm, device) = (&mdm, &device);
            async move {
                let signer = signed.then_some(device);
                let request = put_request(mdm, "/mdm/connect", REPORT_CONTENT_TYPE, &body, signer);
                (body, send(request).await)
            }
        })
        .await;

        // Mdm-Signature itself mutated, over a valid Idle report.
        let idle = fixture_for(&device, "report", "idle.plist");
        let signature = sign_detached(&idle, &device.mdm_identity).unwrap();
        let m = Mutator::new(vec![
            signature.clone(),
            STANDARD.encode(&signature).into_bytes(),
        ]);
        let c = campaign("http Mdm-Signature header", full);
        endpoint(&mdm, &c, cases, |case| {
            let mutated = c.input(&m, case);
            let (mdm, idle) = (&mdm, &idle);
            async move {
                let value = if mutated.first() == Some(&0x30) {
                    STANDARD.encode(&mutated).into_bytes()
                } else {
                    mutated.clone()
                };
                let Ok(value) = HeaderValue::from_bytes(&value) else {
                    return (mutated, Sent::Unsendable);
                };
                let request = mdm
                    .app
                    .http
                    .put(mdm.app.url("/mdm/connect"))
                    .header("content-type", REPORT_CONTENT_TYPE)
                    .header("mdm-signature", value)
                    .body(idle.clone());
                (mutated, send(request).await)
            }
        })
        .await;

        // POST /mdm/enroll: the MachineInfo mutated then signed by a trusted device identity,
        // or the signed DER mutated.
        let info = machine_info(&device);
        let signed_info = sign_attached(&info, &device.ca_identity).unwrap();
        let plist_m = Mutator::new(vec![info.clone()]).with_tokens(["<dict>", "<key>UDID</key>"]);
        let der_m = Mutator::new(vec![signed_info.clone()]);
        let c = campaign("http POST /mdm/enroll", full);
        endpoint(&mdm, &c, cases, |case| {
            let body = if c.rng(case).one_in(2) {
                sign_attached(&c.input(&plist_m, case), &device.ca_identity).unwrap()
            } else {
                c.input(&der_m, case)
            };
            let mdm = &mdm;
            async move {
                let request = mdm
                    .app
                    .http
                    .post(mdm.app.url("/mdm/enroll"))
                    .header("content-type", MACHINE_INFO_CONTENT_TYPE)
                    .body(body.clone());
                (body, send(request).await)
            }
        })
        .await;

        // GET /mdm/enroll with x-apple-aspen-deviceinfo: base64 of mutated DER, or mutated
        // base64 text.
        let text_m = Mutator::new(vec![STANDARD.encode(&signed_info).into_bytes()])
            .with_tokens(["=", "-", "_", " ", "%2B"]);
        let c = campaign("http GET /mdm/enroll (aspen header)", full);
        endpoint(&mdm, &c, cases, |case| {
            let value = if c.rng(case).one_in(2) {
                STANDARD.encode(c.input(&der_m, case)).into_bytes()
            } else {
                c.input(&text_m, case)
            };
            let mdm = &mdm;
            async move {
                let Ok(header) = HeaderValue::from_bytes(&value) else {
                    return (value, Sent::Unsendable);
                };
                let request = mdm
                    .app
                    .http
                    .get(mdm.app.url("/mdm/enroll"))
                    .header(DEVICE_INFO_HEADER, header);
                (value, send(request).await)
            }
        })
        .await;

        // SCEP PKIOperation: mutated PKCSReq, POSTed as DER or sent base64 with GET.
        let m = Mutator::new(vec![device.scep_request.clone()]);
        let c = campaign("http /scep PKIOperation", full);
        endpoint(&mdm, &c, cases, |case| {
            let der = c.input(&m, case);
            let get = c.rng(case).one_in(2);
            let mdm = &mdm;
            async move {
                let request = if get {
                    let mut url = url::Url::parse(&mdm.app.url("/scep")).unwrap();
                    url.query_pairs_mut()
                        .append_pair("operation", "PKIOperation")
                        .append_pair("message", &STANDARD.encode(&der));
                    mdm.app.http.get(url.as_str())
                } else {
                    mdm.app
                        .http
                        .post(mdm.app.url("/scep?operation=PKIOperation"))
                        .header("content-type", PKI_MESSAGE_CONTENT_TYPE)
                        .body(der.clone())
                };
                (der, send(request).await)
            }
        })
        .await;

        // The device still works after all that (enrolling again: a fuzzed CheckOut may
        // have ended its enrollment, as it should).
        check_in(&mdm, &device).await;
        let idle = fixture_for(&device, "report", "idle.plist");
        let status = put(
            &mdm,
            "/mdm/connect",
            REPORT_CONTENT_TYPE,
            &idle,
            Some(&device),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        mdm.app.stop().await;
    }
}

fn machine_info(device: &Device) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>UDID</key><string>{}</string><key>SERIAL</key><string>{}</string><key>PRODUCT</key><string>iPhone17,2</string><key>VERSION</key><string>22B83</string><key>OS_VERSION</key><string>18.1</string><key>LANGUAGE</key><string>en</string></dict></plist>"#,
        device.udid, device.serial
    )
    .into_bytes()
}

// The server runs on worker threads, as `guardmdm serve` does, not on the test's own thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_http_smoke() {
    fuzz_every_endpoint(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a long fuzz campaign; run in release with --ignored"]
async fn fuzz_http_full() {
    fuzz_every_endpoint(true).await;
}

/// Found by fuzzing `command_from_upload`: a binary plist holding a UID was accepted as a
/// command, then failed to serialize when queued, and the admin got a 500. It is a 400 now.
#[tokio::test]
async fn a_command_upload_holding_a_uid_is_refused_with_400() {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let device = enrolled_device(&mdm).await;
        let mut command = plist::Dictionary::new();
        command.insert(
            "RequestType".into(),
            plist::Value::String("RestartDevice".into()),
        );
        command.insert("Odd".into(), plist::Value::Uid(plist::Uid::new(8)));
        let mut body = Vec::new();
        plist::Value::Dictionary(command)
            .to_writer_binary(&mut body)
            .unwrap();
        let resp = mdm
            .app
            .admin(
                reqwest::Method::POST,
                &format!("/api/v1/enrollments/{}/commands", device.udid),
            )
            .header("content-type", "application/x-plist")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert!(text.contains("UID"), "{text}");
        mdm.app.stop().await;
    }
}

/// Found by fuzzing `parse_checkin`: dictionaries nested where a key belongs escaped the depth
/// limit and overflowed the stack, aborting the whole server. Now a 400, and the server lives.
/// The bodies are signed by an enrolled device: unsigned ones are refused before they are
/// read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dictionaries_nested_in_key_position_are_refused_and_the_server_lives() {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let device = enrolled_device(&mdm).await;
        let head = r#"<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key>"#;
        // Under the default check-in limit (256 KiB): over 30,000 levels, three times what
        // overflowed a worker's stack in a release build before the fix.
        let levels = (200 * 1024 - head.len()) / "<dict>".len();
        let body = format!("{head}{}", "<dict>".repeat(levels));
        for (path, content_type) in [
            ("/mdm/checkin", CHECKIN_CONTENT_TYPE),
            ("/mdm/connect", REPORT_CONTENT_TYPE),
        ] {
            let resp = put_request(&mdm, path, content_type, body.as_bytes(), Some(&device))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {text}");
            assert!(text.contains("levels deep"), "{path}: {text}");
        }
        let health = mdm
            .app
            .http
            .get(mdm.app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        mdm.app.stop().await;
    }
}

/// Found by fuzzing `/mdm/connect` on PostgreSQL: a `CommandUUID` holding a NUL character
/// reached the database, which cannot store one in text, and the device got a 500. Strings
/// with a NUL are refused by the parser now: a 400 on every backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_report_string_is_refused_with_400() {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let device = enrolled_device(&mdm).await;
        let report = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>CommandUUID</key><string>6A2B3C4D-5E6F-4A7B-8C9D-0E1F{}A3B4C5D</string><key>Status</key><string>Acknowledged</string><key>UDID</key><string>{}</string></dict></plist>"#,
            '\0', device.udid
        );
        let status = put(
            &mdm,
            "/mdm/connect",
            REPORT_CONTENT_TYPE,
            report.as_bytes(),
            Some(&device),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{backend:?}");
        mdm.app.stop().await;
    }
}

//! The MDM round-trip benchmark (`#[ignore]`d; figures in `docs/benchmarks.md`): SCEP
//! issuance, check-in (`Authenticate` + `TokenUpdate`), command round trips (`Idle` →
//! command → result → empty) and Idle connects with an empty queue for N devices against a GuardMDM server over real sockets,
//! with bounded concurrency, on a fresh SQLite file or PostgreSQL database.
//!
//! The devices share one RSA key (generating 10,000 keys would take most of the run; the
//! server sees 10,000 distinct certificates either way), and every request body is signed
//! before its phase starts, so the latencies are the server's and the network's, not the
//! client's signing.
//!
//! ```text
//! cargo test --release -p guardmdm --test bench_mdm -- --ignored --nocapture
//! GUARDMDM_BENCH_BACKEND=postgres \
//!   GUARDMDM_TEST_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres \
//!   cargo test --release -p guardmdm --test bench_mdm -- --ignored --nocapture
//! ```
//!
//! `GUARDMDM_BENCH_DEVICES` (default 10000), `GUARDMDM_BENCH_CONCURRENCY` (default 32) and
//! `GUARDMDM_BENCH_IDLE` (Idle connects per device with an empty queue, default 20) change
//! the sizes.

// Helpers outside #[test] functions fail by panicking too.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::print_stdout
)]

#[path = "it/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use guardmdm_crypto::{Certificate, DeviceKey, Identity, ScepClient, sign_detached};
use guardmdm_mdm_protocol::{Command, CommandRequest};
use guardmdm_store::{EnrollChallenge, NewCommand};
use tokio::sync::Semaphore;

const TOPIC: &str = "com.apple.mgmt.External.0b3f1a2c-4d5e-6f70-8192-a3b4c5d6e7f8";

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map_or(default, |v| v.parse().unwrap())
}

/// Requests per second and latency percentiles of one phase.
fn report(label: &str, took: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[i].as_secs_f64() * 1000.0
    };
    println!(
        "  {label}: {} requests in {:.2} s = {:.0} req/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        took.as_secs_f64(),
        latencies.len() as f64 / took.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
}

/// One signed request: path, content type, body, `Mdm-Signature`.
#[derive(Clone)]
struct Signed {
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    signature: String,
}

fn signed(
    identity: &Identity,
    path: &'static str,
    content_type: &'static str,
    body: String,
) -> Signed {
    let signature = base64::engine::general_purpose::STANDARD
        .encode(sign_detached(body.as_bytes(), identity).unwrap());
    Signed {
        path,
        content_type,
        body: body.into_bytes(),
        signature,
    }
}

/// Sends every request list (one per device, in order within a device) with at most
/// `concurrency` devices at a time; returns the wall time and each request's latency.
async fn run(
    base: &str,
    http: &reqwest::Client,
    per_device: Vec<Vec<Signed>>,
    concurrency: usize,
    expect_body: Option<bool>,
) -> (Duration, Vec<Duration>) {
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for requests in per_device {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let http = http.clone();
        let base = base.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for (i, r) in requests.into_iter().enumerate() {
                let t = Instant::now();
                let response = http
                    .put(format!("{base}{}", r.path))
                    .header("content-type", r.content_type)
                    .header("mdm-signature", &r.signature)
                    .body(r.body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.bytes().await.unwrap();
                latencies.push(t.elapsed());
                assert!(
                    status.is_success(),
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                );
                if let Some(first_has_body) = expect_body {
                    assert_eq!(!body.is_empty(), first_has_body == (i == 0), "request {i}");
                }
            }
            drop(permit);
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    (started.elapsed(), all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in release mode with --ignored --nocapture"]
async fn bench_mdm_round_trips() {
    let backend = match std::env::var("GUARDMDM_BENCH_BACKEND").as_deref() {
        Ok("postgres") => common::Backend::Postgres,
        _ => common::Backend::Sqlite,
    };
    let n = env_number("GUARDMDM_BENCH_DEVICES", 10_000);
    let concurrency = env_number("GUARDMDM_BENCH_CONCURRENCY", 32);
    println!("MDM round-trip benchmark: {backend:?}, {n} devices, {concurrency} at a time");
    // The APNs simulator answers the push after each first TokenUpdate (the tokens are not
    // registered with it: BadDeviceToken, at once).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let apns = guardmdm_sim::ApnsSim::new().start(listener).unwrap();
    let app =
        common::TestApp::spawn_reachable(backend, &["--apns-url".to_string(), apns.base_url()])
            .await;
    let push = guardmdm_crypto::PushCertificate::generate_self_signed(TOPIC).unwrap();
    let pem = push.identity_pem();
    let split = pem.find("-----BEGIN PRIVATE KEY-----").unwrap();
    let (status, body) = app
        .json(
            reqwest::Method::PUT,
            "/api/v1/apns",
            Some(serde_json::json!({ "certificate_pem": &pem[..split], "key_pem": &pem[split..] })),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let store = app.store().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let ca_der = http
        .get(app.url("/scep?operation=GetCACert"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let ca = Certificate::from_der(&ca_der).unwrap();
    let key = Arc::new(DeviceKey::generate().unwrap());

    // 1. SCEP: n identities, each from a one-time challenge.
    let now = guardmdm_store::now();
    let devices: Vec<(String, String)> = (0..n)
        .map(|i| (format!("BENCH-UDID-{i:06}"), format!("BENCH{i:07}")))
        .collect();
    for (udid, serial) in &devices {
        store
            .create_enroll_challenge(&EnrollChallenge {
                challenge_hash: guardmdm_crypto::digest::sha256_hex(udid.as_bytes()),
                serial_number: serial.clone(),
                udid: udid.clone(),
                profile: None,
                created_at: now,
                expires_at: now + time::Duration::hours(1),
                used_at: None,
            })
            .await
            .unwrap();
    }
    let client = ScepClient::default();
    let requests: Vec<_> = devices
        .iter()
        .map(|(udid, _)| client.pkcs_req(&ca, &key, udid, udid).unwrap())
        .collect();
    let gate = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (message, pending) in requests {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let http = http.clone();
        let url = app.url("/scep?operation=PKIOperation");
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let reply = http
                .post(url)
                .header("content-type", "application/x-pki-message")
                .body(message)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let took = t.elapsed();
            drop(permit);
            (took, pending.read_cert_rep(&reply).unwrap())
        }));
    }
    let mut latencies = Vec::new();
    let mut identities = Vec::new();
    for task in tasks {
        let (took, cert) = task.await.unwrap();
        latencies.push(took);
        identities.push(Identity::from_device_key(cert, &key, vec![]).unwrap());
    }
    report(
        "SCEP PKIOperation (issue an identity)",
        started.elapsed(),
        latencies,
    );

    // 2. Check-in: Authenticate then TokenUpdate per device.
    let checkins: Vec<Vec<Signed>> = devices
        .iter()
        .zip(&identities)
        .enumerate()
        .map(|(i, ((udid, serial), id))| {
            let auth = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>MessageType</key><string>Authenticate</string><key>Topic</key><string>{TOPIC}</string><key>UDID</key><string>{udid}</string><key>SerialNumber</key><string>{serial}</string><key>OSVersion</key><string>18.1</string><key>ProductName</key><string>iPhone17,2</string></dict></plist>"#
            );
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{i:032}"));
            let update = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>MessageType</key><string>TokenUpdate</string><key>Topic</key><string>{TOPIC}</string><key>UDID</key><string>{udid}</string><key>Token</key><data>{token}</data><key>PushMagic</key><string>magic-{i}</string><key>AwaitingConfiguration</key><false/></dict></plist>"#
            );
            let ct = "application/x-apple-aspen-mdm-checkin";
            vec![
                signed(id, "/mdm/checkin", ct, auth),
                signed(id, "/mdm/checkin", ct, update),
            ]
        })
        .collect();
    let (took, latencies) = run(&app.base, &http, checkins, concurrency, None).await;
    report("check-in (Authenticate, TokenUpdate)", took, latencies);

    // 3. Commands: one DeviceInformation queued per device, then Idle → command, result →
    // empty.
    let mut sessions = Vec::with_capacity(n);
    for ((udid, serial), id) in devices.iter().zip(&identities) {
        let command = Command::new(CommandRequest::device_information());
        store
            .enqueue_command(
                &NewCommand {
                    uuid: command.command_uuid.clone(),
                    udid: udid.clone(),
                    request_type: "DeviceInformation".to_string(),
                    payload: command.to_xml().unwrap(),
                    created_by: "bench".to_string(),
                    at: guardmdm_store::now(),
                },
                None,
            )
            .await
            .unwrap();
        let idle = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Idle</string><key>UDID</key><string>{udid}</string></dict></plist>"#
        );
        let result = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>UDID</key><string>{udid}</string><key>CommandUUID</key><string>{}</string><key>QueryResponses</key><dict><key>SerialNumber</key><string>{serial}</string><key>OSVersion</key><string>18.1</string><key>DeviceName</key><string>Bench iPhone</string></dict></dict></plist>"#,
            command.command_uuid
        );
        let ct = "application/x-apple-aspen-mdm";
        sessions.push(vec![
            signed(id, "/mdm/connect", ct, idle),
            signed(id, "/mdm/connect", ct, result),
        ]);
    }
    let (took, latencies) = run(&app.base, &http, sessions, concurrency, Some(true)).await;
    report(
        "command round trips (Idle → command, result → empty)",
        took,
        latencies,
    );
    let sample = store.list_commands(&devices[0].0, 1).await.unwrap();
    assert_eq!(sample[0].status.as_str(), "acknowledged");

    // 4. Idle connects with nothing queued (a device checking in with an empty queue, the
    // commonest request): `GUARDMDM_BENCH_IDLE` per device, in a row.
    let idles = env_number("GUARDMDM_BENCH_IDLE", 20);
    let sessions: Vec<Vec<Signed>> = devices
        .iter()
        .zip(&identities)
        .map(|((udid, _), id)| {
            let idle = format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Idle</string><key>UDID</key><string>{udid}</string></dict></plist>"#
            );
            let request = signed(id, "/mdm/connect", "application/x-apple-aspen-mdm", idle);
            vec![request; idles]
        })
        .collect();
    let (took, latencies) = run(&app.base, &http, sessions, concurrency, None).await;
    report("Idle connects, nothing queued", took, latencies);
    app.stop().await;
}

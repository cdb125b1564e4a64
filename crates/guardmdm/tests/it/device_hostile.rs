//! Hostile requests on the device endpoints, over real sockets: a stranger's body is refused
//! before it is read (the identity comes from the headers first), a body that does not match
//! its `Mdm-Signature` is refused, an enrolled device's oversized body is refused with 413,
//! and a device cannot claim another device's serial number. On SQLite, and on PostgreSQL
//! when `GUARDMDM_TEST_DATABASE_URL` is set.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic)]

use crate::common;

use std::time::Duration;

use common::mdm::{TOPIC, buy, enrollment, setup_with};
use common::{Backend, TestApp};
use guardmdm_sim::SimDevice;
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the attacker of issue 12 declared: a 31 MB command report.
const HUGE: usize = 31 * 1024 * 1024;

/// Sends `head` (request line and headers, without the blank line) and the first `sent`
/// bytes of the body it declares, then reads the answer without sending the rest. An answer
/// at all proves the server did not wait for (let alone read) the body.
async fn answer_before_body(app: &TestApp, head: &str, sent: &[u8]) -> (u16, String) {
    let addr = app.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    let mut answer = Vec::new();
    // A safety net only: the server answers at once, or the test fails here.
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0_u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if complete(&answer) {
                break;
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no answer while the body was unsent: the server waits for it ({} bytes so far)",
        answer.len()
    );
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    (status, text)
}

/// Whether `answer` holds the whole head and the body its `content-length` announces.
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .is_some_and(|n| body.len() >= n)
}

fn idle(udid: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Idle</string><key>UDID</key><string>{udid}</string></dict></plist>"#
    )
}

fn authenticate(udid: &str, serial: Option<&str>) -> String {
    let serial = serial.map_or_else(String::new, |s| {
        format!("<key>SerialNumber</key><string>{s}</string>")
    });
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>MessageType</key><string>Authenticate</string><key>Topic</key><string>{TOPIC}</string><key>UDID</key><string>{udid}</string>{serial}<key>OSVersion</key><string>18.1</string><key>BuildVersion</key><string>22B83</string><key>ProductName</key><string>iPhone17,2</string></dict></plist>"#
    )
}

#[tokio::test]
async fn a_strangers_huge_body_is_refused_before_it_is_read() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let prefix = vec![b'<'; 1024];
        // The attack of issue 12: a 31 MB report with `Mdm-Signature: AAAA`.
        let (status, text) = answer_before_body(
            &app,
            &format!(
                "PUT /mdm/connect HTTP/1.1\r\nContent-Type: application/x-apple-aspen-mdm\r\nMdm-Signature: AAAA\r\nContent-Length: {HUGE}"
            ),
            &prefix,
        )
        .await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("the Mdm-Signature is not usable"), "{text}");
        // The same on the check-in URL, and without any identity.
        let (status, text) = answer_before_body(
            &app,
            &format!(
                "PUT /mdm/checkin HTTP/1.1\r\nContent-Type: application/x-apple-aspen-mdm-checkin\r\nMdm-Signature: AAAA\r\nContent-Length: {HUGE}"
            ),
            &prefix,
        )
        .await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("Mdm-Signature"), "{text}");
        let (status, text) = answer_before_body(
            &app,
            &format!("PUT /mdm/connect HTTP/1.1\r\nContent-Length: {HUGE}"),
            &prefix,
        )
        .await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("no device identity"), "{text}");
        // A chunked body announces no length: still refused before a chunk is read.
        let (status, text) = answer_before_body(
            &app,
            "PUT /mdm/connect HTTP/1.1\r\nMdm-Signature: AAAA\r\nTransfer-Encoding: chunked",
            b"400\r\n",
        )
        .await;
        assert_eq!(status, 403, "{text}");
        // An Mdm-Signature far longer than a signature is refused before it is decoded.
        let long = "A".repeat(20 * 1024);
        let (status, text) = answer_before_body(
            &app,
            &format!(
                "PUT /mdm/connect HTTP/1.1\r\nMdm-Signature: {long}\r\nContent-Length: {HUGE}"
            ),
            &prefix,
        )
        .await;
        assert_eq!(status, 431, "{text}");
        assert!(text.contains("the Mdm-Signature header is"), "{text}");
        // The enrollment and SCEP endpoints refuse a declared oversized body unread too.
        for path in ["/mdm/enroll", "/scep?operation=PKIOperation"] {
            let (status, text) = answer_before_body(
                &app,
                &format!("POST {path} HTTP/1.1\r\nContent-Length: {HUGE}"),
                &prefix,
            )
            .await;
            assert_eq!(status, 413, "{path}: {text}");
            assert!(text.contains("too large"), "{path}: {text}");
        }
        let health = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        app.stop().await;
    }
}

async fn enrolled(backend: Backend, extra: &[&str]) -> (common::mdm::Mdm, SimDevice) {
    let mdm = setup_with(backend, extra).await;
    let serials = buy(&mdm, 1).await;
    let device = SimDevice::new(&mdm.app.abm.sim, &serials[0], &mdm.ca).unwrap();
    device.enroll_and_run(&mdm.app.abm.sim).await.unwrap();
    assert_eq!(
        enrollment(&mdm.app, &serials[0]).await["status"],
        "enrolled"
    );
    (mdm, device)
}

#[tokio::test]
async fn a_body_must_match_its_signature_and_fit_the_limit() {
    for backend in common::backends() {
        let (mdm, device) = enrolled(backend, &["--report-max-bytes", "64KiB"]).await;
        let app = &mdm.app;
        let connect = |body: Vec<u8>, signature: String| {
            app.http
                .put(app.url("/mdm/connect"))
                .header("content-type", "application/x-apple-aspen-mdm")
                .header("mdm-signature", signature)
                .body(body)
        };
        let report = idle(device.udid()).into_bytes();

        // A valid plist with a signature the device made over another body.
        let forged = device.mdm_signature(b"another body").unwrap();
        let resp = connect(report.clone(), forged).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let text = resp.text().await.unwrap();
        assert!(text.contains("does not verify over the body"), "{text}");
        // One byte changed after signing.
        let signature = device.mdm_signature(&report).unwrap();
        let mut altered = report.clone();
        altered[report.len() - 10] ^= 0x01;
        let resp = connect(altered, signature.clone()).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        // Garbage for a signature on a small valid plist.
        let resp = connect(report.clone(), "AAAA".to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        // The right signature passes.
        let resp = connect(report.clone(), signature).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);

        // The device's own, correctly signed report over --report-max-bytes: 413.
        let padding = "x".repeat(100 * 1024);
        let big = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>Status</key><string>Idle</string><key>UDID</key><string>{}</string><key>Padding</key><string>{padding}</string></dict></plist>"#,
            device.udid()
        )
        .into_bytes();
        let signature = device.mdm_signature(&big).unwrap();
        let resp = connect(big.clone(), signature.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let text = resp.text().await.unwrap();
        assert!(
            text.contains("too large") && text.contains(&(64 * 1024).to_string()),
            "{text}"
        );
        // Declared too large: refused before the body is sent.
        let (status, text) = answer_before_body(
            app,
            &format!(
                "PUT /mdm/connect HTTP/1.1\r\nMdm-Signature: {signature}\r\nContent-Length: {HUGE}"
            ),
            &big[..1024],
        )
        .await;
        assert_eq!(status, 413, "{text}");
        // Chunked, without a length: cut off at the limit.
        let mut chunked = Vec::new();
        for chunk in big.chunks(16 * 1024) {
            chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            chunked.extend_from_slice(chunk);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let (status, text) = answer_before_body(
            app,
            &format!(
                "PUT /mdm/connect HTTP/1.1\r\nMdm-Signature: {signature}\r\nTransfer-Encoding: chunked"
            ),
            &chunked,
        )
        .await;
        assert_eq!(status, 413, "{text}");

        // The device itself still works.
        device.poll().await.unwrap();
        assert_eq!(enrollment(app, device.serial()).await["status"], "enrolled");
        mdm.app.stop().await;
    }
}

#[tokio::test]
async fn a_forwarded_client_certificate_is_checked_before_the_body() {
    for backend in common::backends() {
        let (mdm, device) = enrolled(backend, &["--client-cert-header", "X-Client-Cert"]).await;
        let app = &mdm.app;
        // A certificate GuardMDM's CA did not issue (the device's own ADE identity).
        let foreign = device.device_certificate().to_pem().replace('\n', "%0A");
        let (status, text) = answer_before_body(
            app,
            &format!(
                "PUT /mdm/connect HTTP/1.1\r\nX-Client-Cert: {foreign}\r\nContent-Length: {HUGE}"
            ),
            &[b'<'; 1024],
        )
        .await;
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("not issued by GuardMDM's CA"), "{text}");
        // Its own forwarded certificate works.
        let own = device
            .mdm_certificate()
            .unwrap()
            .to_pem()
            .replace('\n', "%0A");
        let resp = app
            .http
            .put(app.url("/mdm/connect"))
            .header("x-client-cert", own)
            .body(idle(device.udid()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        mdm.app.stop().await;
    }
}

#[tokio::test]
async fn a_device_cannot_claim_another_serial() {
    for backend in common::backends() {
        let mdm = setup_with(backend, &[]).await;
        let app = &mdm.app;
        let serials = buy(&mdm, 2).await;
        let a = SimDevice::new(&app.abm.sim, &serials[0], &mdm.ca).unwrap();
        let b = SimDevice::new(&app.abm.sim, &serials[1], &mdm.ca).unwrap();
        a.enroll_and_run(&app.abm.sim).await.unwrap();
        b.enroll_and_run(&app.abm.sim).await.unwrap();
        let checkin = |body: String, signature: String| {
            app.http
                .put(app.url("/mdm/checkin"))
                .header("content-type", "application/x-apple-aspen-mdm-checkin")
                .header("mdm-signature", signature)
                .body(body)
        };

        // A's identity, A's UDID, B's serial.
        let spoof = authenticate(a.udid(), Some(b.serial()));
        let resp = checkin(spoof.clone(), a.mdm_signature(spoof.as_bytes()).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let text = resp.text().await.unwrap();
        assert!(
            text.contains(a.serial()) && text.contains(b.serial()),
            "{text}"
        );
        // B's serial still leads to B alone, and A keeps its own.
        let (status, list) = app
            .json(
                Method::GET,
                &format!("/api/v1/enrollments?serial={}", b.serial()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let udids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["udid"].as_str())
            .collect();
        assert_eq!(udids, [b.udid()], "{list}");
        let (_, shown) = app
            .json(
                Method::GET,
                &format!("/api/v1/devices/{}", b.serial()),
                None,
            )
            .await;
        assert_eq!(shown[0]["enrollment"]["udid"], b.udid(), "{shown}");
        let a_now = enrollment(app, a.serial()).await;
        assert_eq!(a_now["udid"], a.udid(), "{a_now}");
        assert_eq!(a_now["status"], "enrolled", "{a_now}");

        // An Authenticate without a serial number is recorded with the bound one.
        let plain = authenticate(a.udid(), None);
        let resp = checkin(plain.clone(), a.mdm_signature(plain.as_bytes()).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let a_now = enrollment(app, a.serial()).await;
        assert_eq!(a_now["udid"], a.udid(), "{a_now}");
        assert_eq!(a_now["serial_number"], a.serial(), "{a_now}");
        mdm.app.stop().await;
    }
}

//! The HTTP edge against hostile clients, over raw sockets: junk methods mint no metric
//! labels and `/metrics` needs a token on the main listener; connections that send half a
//! head, half a body, nothing, sit idle, or read no answer are closed by the server; the connection cap
//! closes connections beyond it at once and frees its slots when connections end; HTTP/2
//! (prior knowledge) is served and held to the same limits.
//!
//! The edge does not touch storage, so these run on SQLite only.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::time::Duration;

use common::{Backend, TestApp};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A safety net only: every close under test comes after a 1 s limit.
const SAFETY: Duration = Duration::from_secs(20);

/// Reads until the server closes the connection (EOF or reset) and returns what it sent;
/// fails if it is still open after [`SAFETY`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(SAFETY, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open for {SAFETY:?}; it sent {} bytes, starting {:?}",
                received.len(),
                String::from_utf8_lossy(&received[..received.len().min(200)])
            ),
            Ok(Ok(0)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Ok(Err(e)) => panic!("reading: {e}"),
        }
    }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// A server whose edge limits are all 1 s, so that the tests stay fast.
async fn quick_timeouts() -> TestApp {
    let flags: Vec<String> = [
        "--header-read-timeout",
        "1s",
        "--request-body-timeout",
        "1s",
        "--keep-alive-timeout",
        "1s",
        "--send-timeout",
        "1s",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    TestApp::spawn_reachable(Backend::Sqlite, &flags).await
}

#[tokio::test]
async fn junk_methods_mint_no_metric_labels_and_metrics_need_a_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let address = app.base.trim_start_matches("http://").to_string();
    let padding = "X".repeat(32_000);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let address = address.clone();
        let padding = padding.clone();
        tasks.spawn(async move {
            for i in (worker..1000).step_by(8) {
                let mut stream = TcpStream::connect(&address).await.unwrap();
                let request = format!(
                    "M{i:06}{padding} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(request.as_bytes()).await.unwrap();
                let answer = read_until_closed(&mut stream).await;
                assert!(
                    answer.starts_with(b"HTTP/1.1 405"),
                    "{}",
                    String::from_utf8_lossy(&answer)
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }

    let text = app.metrics().await;
    assert!(!text.contains("M000"), "a junk method became a label");
    assert!(
        text.contains(
            "guardmdm_http_requests_total{method=\"other\",route=\"/healthz\",status=\"405\"} 1000"
        ),
        "{text}"
    );
    assert!(text.len() < 16 * 1024, "/metrics is {} bytes", text.len());

    let anonymous = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let app = quick_timeouts().await;
    let mut stream = connect(&app).await;
    assert_eq!(read_until_closed(&mut stream).await, b"");
    app.stop().await;
}

#[tokio::test]
async fn half_a_request_head_is_closed() {
    let app = quick_timeouts().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert_eq!(read_until_closed(&mut stream).await, b"");

    // Half of HTTP/2's connection preface: the server is still telling HTTP/1 from HTTP/2.
    let mut stream = connect(&app).await;
    stream.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert_eq!(read_until_closed(&mut stream).await, b"");
    app.stop().await;
}

#[tokio::test]
async fn half_a_body_is_answered_408_and_closed() {
    let app = quick_timeouts().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(
            // The enrollment endpoint reads a body from anyone (the MachineInfo is its own
            // proof); check-ins are refused before their body without a device identity.
            b"POST /mdm/enroll HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/pkcs7-signature\r\n\
              Content-Length: 1000\r\n\r\n0\x82\x03",
        )
        .await
        .unwrap();
    let answer = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("the request body did not arrive in full within 1 s"),
        "{answer}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_its_answer() {
    let app = quick_timeouts().await;
    let mut stream = connect(&app).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_until_closed(&mut stream).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");

    // A second request started in time is served; only the idle wait is limited.
    let mut stream = connect(&app).await;
    for _ in 0..2 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(SAFETY, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_read_its_answers_is_closed() {
    // Connections idle for a minute may stay: only the send timeout can close this one.
    let flags = ["--send-timeout", "1s", "--keep-alive-timeout", "60s"].map(String::from);
    let app = TestApp::spawn_reachable(Backend::Sqlite, &flags).await;
    // A small receive window, and 200 pipelined requests for the 120 KB OpenAPI document:
    // far more than the kernel buffers hold, so the server's writes stall.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket
        .connect(app.base.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    let request = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    stream.write_all(&request).await.unwrap();
    // Read nothing for a while (longer than the send timeout, well within the safety net).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let received = read_until_closed(&mut stream).await;
    let answers = received
        .windows(15)
        .filter(|w| w == b"HTTP/1.1 200 OK")
        .count();
    assert!(
        answers < 200,
        "all {answers} answers were sent to a client that did not read"
    );
    app.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once_until_one_ends() {
    let flags = ["--max-connections".to_string(), "2".to_string()];
    let app = TestApp::spawn_reachable(Backend::Sqlite, &flags).await;
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    // Two kept-alive connections, each answered once: both hold a slot.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&app).await;
        stream.write_all(healthz).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(SAFETY, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }

    let mut third = connect(&app).await;
    // The server may close before the request is written: a failed write is fine too.
    let _ = third.write_all(healthz).await;
    assert_eq!(
        read_until_closed(&mut third).await,
        b"",
        "served beyond the cap"
    );

    // Once a held connection ends, its slot serves a new one.
    drop(held.pop());
    let served = tokio::time::timeout(SAFETY, async {
        loop {
            let mut stream = connect(&app).await;
            if stream.write_all(healthz).await.is_ok() {
                let mut buf = [0u8; 1024];
                if let Ok(n) = stream.read(&mut buf).await
                    && buf[..n].starts_with(b"HTTP/1.1 200")
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "no slot was freed after a connection ended");
    app.stop().await;
}

#[tokio::test]
async fn http2_is_still_served_and_a_silent_http2_connection_is_closed() {
    let app = quick_timeouts().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for _ in 0..2 {
        let resp = client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    }

    // An HTTP/2 connection that opens (preface and SETTINGS) and then sends no request is
    // closed as an HTTP/1 one is: hyper has no such limit of its own for HTTP/2.
    let mut stream = connect(&app).await;
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let settings = read_until_closed(&mut stream).await;
    assert_eq!(
        settings.get(3),
        Some(&4),
        "the server's SETTINGS frame first"
    );
    app.stop().await;
}

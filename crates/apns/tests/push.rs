//! `ApnsClient` against a local APNs stand-in speaking cleartext HTTP/2 (prior knowledge).
//!
//! The stand-in records every request and answers by the token's first byte:
//! `00` 200 + `apns-id`, `41` 410 Unregistered, `40` 400 BadDeviceToken, `50` 500 once then
//! 200, `53` always 503, `5a` too slow for the client's timeout, `d0` 200 after a short pause.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use guardmdm_apns::{ApnsClient, ApnsConfig, PushOutcome, PushProvider, PushTarget};
use url::Url;

const TOPIC: &str = "com.apple.mgmt.External.2d5ec1f4-93c8-4bd3-8d5e-0c3a2f1e4b77";
const GONE_AT_MS: u64 = 1_700_000_000_123;

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
    peer: SocketAddr,
}

#[derive(Default)]
struct FakeApns {
    seen: Mutex<Vec<Seen>>,
    attempts: Mutex<HashMap<String, u32>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl FakeApns {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn seen_for(&self, token_hex: &str) -> Vec<Seen> {
        let path = format!("/3/device/{token_hex}");
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

#[allow(clippy::too_many_arguments)] // an axum handler takes one argument per extractor
async fn device(
    State(apns): State<Arc<FakeApns>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    version: Version,
    uri: Uri,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    apns.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        version,
        headers,
        body,
        peer,
    });
    let attempt = {
        let mut attempts = apns.attempts.lock().unwrap();
        let n = attempts.entry(token.clone()).or_default();
        *n += 1;
        *n
    };
    let now = apns.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    apns.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let response = answer(&token, attempt).await;
    apns.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn answer(token: &str, attempt: u32) -> Response {
    let ok = || ([("apns-id", format!("id-{token}"))], StatusCode::OK).into_response();
    let json = |status: StatusCode, body: String| {
        (status, [("content-type", "application/json")], body).into_response()
    };
    match &token[..2] {
        "00" => ok(),
        "41" => json(
            StatusCode::GONE,
            format!(r#"{{"reason":"Unregistered","timestamp":{GONE_AT_MS}}}"#),
        ),
        "40" => json(
            StatusCode::BAD_REQUEST,
            r#"{"reason":"BadDeviceToken"}"#.to_owned(),
        ),
        "50" if attempt == 1 => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"reason":"InternalServerError"}"#.to_owned(),
        ),
        "50" => ok(),
        "53" => json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"reason":"ServiceUnavailable"}"#.to_owned(),
        ),
        "5a" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            ok()
        }
        "d0" => {
            tokio::time::sleep(Duration::from_millis(5)).await;
            ok()
        }
        _ => json(StatusCode::NOT_FOUND, r#"{"reason":"BadPath"}"#.to_owned()),
    }
}

/// Starts the stand-in on 127.0.0.1:0.
async fn start() -> (Arc<FakeApns>, SocketAddr) {
    let apns = Arc::new(FakeApns::default());
    let app = Router::new()
        .route("/3/device/{token}", any(device))
        .with_state(apns.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (apns, addr)
}

fn config(addr: SocketAddr) -> ApnsConfig {
    ApnsConfig {
        endpoint: Url::parse(&format!("http://{addr}")).unwrap(),
        timeout: Duration::from_millis(300),
        ..ApnsConfig::default()
    }
}

/// A 32-byte token: the behaviour byte, then `n` big-endian, then filler.
fn token(kind: u8, n: u32) -> Vec<u8> {
    let mut token = vec![kind];
    token.extend_from_slice(&n.to_be_bytes());
    token.resize(32, 0xee);
    token
}

fn target(kind: u8, n: u32) -> PushTarget {
    PushTarget::new(token(kind, n), format!("magic-{kind:02x}-{n}"), TOPIC)
}

fn assert_request_shape(seen: &Seen, target: &PushTarget) {
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, format!("/3/device/{}", target.token_hex()));
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.headers["apns-push-type"], "mdm");
    assert_eq!(seen.headers["apns-topic"], TOPIC);
    assert_eq!(seen.headers["content-type"], "application/json");
    assert!(seen.headers.get("apns-expiration").is_none());
    let expected = format!(r#"{{"mdm":"{}"}}"#, target.push_magic);
    assert_eq!(std::str::from_utf8(&seen.body).unwrap(), expected);
}

#[tokio::test]
async fn outcomes_come_back_in_order_and_requests_follow_apples_format() {
    let (apns, addr) = start().await;
    let client: Arc<dyn PushProvider> = Arc::new(ApnsClient::new(config(addr)).unwrap());
    let targets = vec![
        target(0x00, 1),
        target(0x41, 2),
        target(0x40, 3),
        target(0x50, 4),
        target(0x5a, 5),
        target(0x53, 6),
        target(0x00, 7),
    ];

    let outcomes = client.push(&targets).await;

    assert_eq!(outcomes.len(), targets.len());
    let delivered = |t: &PushTarget| PushOutcome::Delivered {
        apns_id: Some(format!("id-{}", t.token_hex())),
    };
    assert_eq!(outcomes[0], delivered(&targets[0]));
    assert_eq!(
        outcomes[1],
        PushOutcome::Unregistered {
            timestamp_ms: Some(GONE_AT_MS)
        }
    );
    assert_eq!(
        outcomes[2],
        PushOutcome::Rejected {
            status: 400,
            reason: "BadDeviceToken".to_owned()
        }
    );
    assert_eq!(
        outcomes[3],
        delivered(&targets[3]),
        "500 then 200 is retried"
    );
    let PushOutcome::Failed { message } = &outcomes[4] else {
        panic!("slow push should fail: {:?}", outcomes[4]);
    };
    assert!(message.contains("timed out"), "{message}");
    assert!(message.contains("3 attempts"), "{message}");
    assert!(!message.contains(&targets[4].token_hex()), "{message}");
    let PushOutcome::Failed { message } = &outcomes[5] else {
        panic!("503 push should fail: {:?}", outcomes[5]);
    };
    assert!(message.contains("503 ServiceUnavailable"), "{message}");
    assert_eq!(outcomes[6], delivered(&targets[6]));

    // Every request, retries included, has Apple's shape and travelled over HTTP/2.
    for target in &targets {
        for seen in apns.seen_for(&target.token_hex()) {
            assert_request_shape(&seen, target);
        }
    }
    let attempts = |t: &PushTarget| apns.seen_for(&t.token_hex()).len();
    assert_eq!(attempts(&targets[0]), 1);
    assert_eq!(attempts(&targets[1]), 1, "410 is final");
    assert_eq!(attempts(&targets[2]), 1, "400 is final");
    assert_eq!(attempts(&targets[3]), 2, "500 is retried once, then 200");
    assert_eq!(attempts(&targets[4]), 3, "timeouts are retried, bounded");
    assert_eq!(attempts(&targets[5]), 3, "503 is retried, bounded");
}

#[tokio::test]
async fn a_thousand_pushes_share_one_http2_connection_with_bounded_concurrency() {
    let (apns, addr) = start().await;
    let client = ApnsClient::new(config(addr)).unwrap();
    let targets: Vec<PushTarget> = (0..1000).map(|n| target(0xd0, n)).collect();

    let outcomes = client.push(&targets).await;

    assert_eq!(outcomes.len(), 1000);
    for (target, outcome) in targets.iter().zip(&outcomes) {
        assert_eq!(
            outcome,
            &PushOutcome::Delivered {
                apns_id: Some(format!("id-{}", target.token_hex()))
            }
        );
    }
    let seen = apns.seen();
    assert_eq!(seen.len(), 1000);
    let paths: HashSet<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths.len(), 1000, "every target arrived exactly once");
    assert!(seen.iter().all(|s| s.version == Version::HTTP_2));
    let connections: HashSet<SocketAddr> = seen.iter().map(|s| s.peer).collect();
    assert_eq!(
        connections.len(),
        1,
        "one HTTP/2 connection: {connections:?}"
    );
    let max = apns.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=guardmdm_apns::DEFAULT_MAX_IN_FLIGHT).contains(&max),
        "pushes in flight at once: {max}"
    );
}

#[tokio::test]
async fn expiration_and_topic_headers_follow_the_config() {
    let (apns, addr) = start().await;
    let in_an_hour = ApnsClient::new(ApnsConfig {
        expiration: Some(Duration::from_secs(3600)),
        ..config(addr)
    })
    .unwrap();
    let once = ApnsClient::new(ApnsConfig {
        expiration: Some(Duration::ZERO),
        ..config(addr)
    })
    .unwrap();
    let with_topic = target(0x00, 1);
    let without_topic = PushTarget::new(token(0x00, 2), "magic", "");

    assert!(in_an_hour.push(std::slice::from_ref(&with_topic)).await[0].is_delivered());
    assert!(once.push(std::slice::from_ref(&without_topic)).await[0].is_delivered());

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let first = &apns.seen_for(&with_topic.token_hex())[0];
    let expiration: u64 = first.headers["apns-expiration"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (now + 3590..=now + 3600).contains(&expiration),
        "{expiration}"
    );
    let second = &apns.seen_for(&without_topic.token_hex())[0];
    assert_eq!(second.headers["apns-expiration"], "0");
    assert!(second.headers.get("apns-topic").is_none());
}

#[tokio::test]
async fn an_empty_batch_sends_nothing() {
    let (apns, addr) = start().await;
    let client = ApnsClient::new(config(addr)).unwrap();
    assert!(client.push(&[]).await.is_empty());
    assert!(apns.seen().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_fails_every_target_without_leaking_tokens() {
    // A port that was just free: nothing listens there.
    let addr = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let client = ApnsClient::new(config(addr)).unwrap();
    let targets = [target(0x00, 1), target(0x00, 2)];

    let outcomes = client.push(&targets).await;

    assert_eq!(outcomes.len(), 2);
    for (target, outcome) in targets.iter().zip(&outcomes) {
        let PushOutcome::Failed { message } = outcome else {
            panic!("expected a failure: {outcome:?}");
        };
        assert!(message.starts_with("cannot reach APNs"), "{message}");
        assert!(!message.contains(&target.token_hex()), "{message}");
        assert!(!message.contains(&target.push_magic), "{message}");
    }
}

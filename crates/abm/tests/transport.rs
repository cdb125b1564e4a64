//! The client's session and retry rules against a scripted local server, one odd answer at a
//! time (`docs/protocol.md` §2.4, §2.5, §3.15). Whole flows run against the ABM simulator in
//! `simulator.rs`.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use guardmdm_abm::{Client, ClientOptions, Credentials, DepError};

/// A scripted answer for one request.
#[derive(Clone)]
struct Scripted {
    status: u16,
    body: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    delay: Duration,
}

fn answer(status: u16, body: &'static str) -> Scripted {
    Scripted {
        status,
        body,
        headers: Vec::new(),
        delay: Duration::ZERO,
    }
}

/// What the fake saw.
#[derive(Default)]
struct Seen {
    sessions: usize,
    calls: Vec<(Option<String>, Option<String>, Option<String>)>,
}

#[derive(Clone)]
struct Fake {
    script: Arc<Mutex<Vec<Scripted>>>,
    seen: Arc<Mutex<Seen>>,
}

impl Fake {
    fn next(&self) -> Scripted {
        let mut script = self.script.lock().unwrap();
        if script.is_empty() {
            answer(200, "{}")
        } else {
            script.remove(0)
        }
    }
}

fn respond(s: Scripted) -> Response {
    let mut resp = (StatusCode::from_u16(s.status).unwrap(), s.body).into_response();
    for (k, v) in s.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

async fn start(script: Vec<Scripted>) -> (Client, Fake) {
    let fake = Fake {
        script: Arc::new(Mutex::new(script)),
        seen: Arc::default(),
    };
    let session_fake = fake.clone();
    let call_fake = fake.clone();
    let app = Router::new()
        .route(
            "/session",
            get(move |headers: HeaderMap| {
                let fake = session_fake.clone();
                async move {
                    assert!(
                        headers["authorization"]
                            .to_str()
                            .unwrap()
                            .starts_with("OAuth ")
                    );
                    assert_eq!(headers["x-server-protocol-version"], "10");
                    let n = {
                        let mut seen = fake.seen.lock().unwrap();
                        seen.sessions += 1;
                        seen.sessions
                    };
                    let body = format!("{{\"auth_session_token\":\"session-{n}\"}}");
                    (StatusCode::OK, body).into_response()
                }
            }),
        )
        .route(
            "/account",
            get({
                let fake = call_fake.clone();
                move |headers: HeaderMap| handle(fake.clone(), headers, Bytes::new())
            }),
        )
        .route(
            "/devices/sync",
            post({
                let fake = call_fake.clone();
                move |headers: HeaderMap, body: Bytes| handle(fake.clone(), headers, body)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = Client::new(&format!("http://{addr}/"), credentials(), fast_options()).unwrap();
    (client, fake)
}

async fn handle(fake: Fake, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
    fake.seen.lock().unwrap().calls.push((
        header("x-adm-auth-session"),
        header("user-agent"),
        (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
    ));
    let scripted = fake.next();
    tokio::time::sleep(scripted.delay).await;
    respond(scripted)
}

fn credentials() -> Credentials {
    Credentials {
        consumer_key: "CK_test".into(),
        consumer_secret: "CS_test".into(),
        access_token: "AT_test".into(),
        access_secret: "AS_test".into(),
    }
}

fn fast_options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        max_retries: 2,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(2),
        ..ClientOptions::default()
    }
}

const ACCOUNT: &str = r#"{"server_name":"Main","server_uuid":"u-1","org_name":"Org"}"#;

#[tokio::test]
async fn authenticates_once_and_reuses_the_session_with_user_agent() {
    let (client, fake) = start(vec![answer(200, ACCOUNT), answer(200, ACCOUNT)]).await;
    assert_eq!(client.account().await.unwrap().server_name, "Main");
    client.account().await.unwrap();
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.sessions, 1);
    assert_eq!(seen.calls[1].0.as_deref(), Some("session-1"));
    assert!(seen.calls[0].1.as_deref().unwrap().starts_with("GuardMDM/"));
}

#[tokio::test]
async fn adopts_a_rotated_session_token() {
    let mut rotated = answer(200, ACCOUNT);
    rotated.headers.push(("x-adm-auth-session", "rotated-7"));
    let (client, fake) = start(vec![rotated, answer(200, ACCOUNT)]).await;
    client.account().await.unwrap();
    client.account().await.unwrap();
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.calls[1].0.as_deref(), Some("rotated-7"));
    assert_eq!(seen.sessions, 1);
}

#[tokio::test]
async fn reauthenticates_once_on_401_and_on_403_forbidden() {
    for refusal in [answer(401, "UNAUTHORIZED"), answer(403, "FORBIDDEN")] {
        let (client, fake) = start(vec![refusal, answer(200, ACCOUNT)]).await;
        client.account().await.unwrap();
        let seen = fake.seen.lock().unwrap();
        assert_eq!(seen.sessions, 2, "a fresh session after the refusal");
        assert_eq!(seen.calls[1].0.as_deref(), Some("session-2"));
    }
}

#[tokio::test]
async fn a_refusal_right_after_reauthentication_means_the_token_is_bad() {
    let (client, fake) = start(vec![answer(401, "UNAUTHORIZED"), answer(403, "FORBIDDEN")]).await;
    let err = client.account().await.unwrap_err();
    assert!(
        matches!(err, DepError::TokenRejected { status: 403, .. }),
        "{err:?}"
    );
    assert_eq!(err.token_problem().unwrap().0, "rejected");
    assert_eq!(fake.seen.lock().unwrap().sessions, 2);
}

#[tokio::test]
async fn terms_not_signed_and_access_denied_are_never_retried() {
    for (body, expected) in [
        ("T_C_NOT_SIGNED", DepError::TermsNotSigned),
        ("ACCESS_DENIED", DepError::AccessDenied),
    ] {
        let (client, fake) = start(vec![answer(403, body), answer(200, ACCOUNT)]).await;
        assert_eq!(client.account().await.unwrap_err(), expected);
        let seen = fake.seen.lock().unwrap();
        assert_eq!(
            (seen.calls.len(), seen.sessions),
            (1, 1),
            "{body}: no retry, no re-auth"
        );
    }
}

#[tokio::test]
async fn honours_retry_after_on_429_and_503() {
    for status in [429, 503] {
        let mut busy = answer(status, "");
        busy.headers.push(("retry-after", "1"));
        let (client, fake) = start(vec![busy, answer(200, ACCOUNT)]).await;
        let started = std::time::Instant::now();
        client.account().await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "waited Retry-After"
        );
        assert_eq!(fake.seen.lock().unwrap().calls.len(), 2);
    }
}

#[tokio::test]
async fn a_retry_after_longer_than_the_client_waits_is_returned() {
    let mut busy = answer(429, "");
    busy.headers.push(("retry-after", "3600"));
    let (client, fake) = start(vec![busy]).await;
    let err = client.account().await.unwrap_err();
    assert_eq!(
        err,
        DepError::Throttled {
            status: 429,
            retry_after: Some(Duration::from_secs(3600))
        }
    );
    assert!(err.is_transient());
    assert_eq!(fake.seen.lock().unwrap().calls.len(), 1);
}

#[tokio::test]
async fn server_errors_back_off_then_give_up() {
    let (client, fake) = start(vec![answer(500, ""), answer(502, ""), answer(200, ACCOUNT)]).await;
    client.account().await.unwrap();
    assert_eq!(fake.seen.lock().unwrap().calls.len(), 3);
    let (client, fake) = start(vec![answer(500, ""), answer(500, ""), answer(500, "")]).await;
    assert_eq!(
        client.account().await.unwrap_err(),
        DepError::Server { status: 500 }
    );
    assert_eq!(
        fake.seen.lock().unwrap().calls.len(),
        3,
        "first try and two retries"
    );
}

#[tokio::test]
async fn slow_answers_time_out() {
    let mut slow = answer(200, ACCOUNT);
    slow.delay = Duration::from_secs(2);
    let (client, _) = start(vec![slow.clone(), slow.clone(), slow]).await;
    let err = client.account().await.unwrap_err();
    assert!(
        matches!(&err, DepError::Transport { message, .. } if message.contains("timed out")),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_servers_are_transport_errors() {
    let client = Client::new("http://127.0.0.1:9", credentials(), fast_options()).unwrap();
    let err = client.account().await.unwrap_err();
    assert!(matches!(err, DepError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:9"));
}

#[tokio::test]
async fn cursor_codes_and_malformed_json_are_distinct_errors() {
    let (client, fake) = start(vec![
        answer(400, "EXPIRED_CURSOR"),
        answer(400, "\"INVALID_CURSOR\""),
        answer(400, "CURSOR_REQUIRED"),
        answer(200, "{\"devices\": [ {\"serial_"),
    ])
    .await;
    assert_eq!(
        client.sync_devices("c1", Some(1000)).await.unwrap_err(),
        DepError::CursorExpired
    );
    assert_eq!(
        client.sync_devices("c1", None).await.unwrap_err(),
        DepError::CursorInvalid
    );
    assert_eq!(
        client.sync_devices("", None).await.unwrap_err(),
        DepError::CursorRequired
    );
    assert!(matches!(
        client.sync_devices("c1", None).await.unwrap_err(),
        DepError::Decode(_)
    ));
    let seen = fake.seen.lock().unwrap();
    assert_eq!(
        seen.calls[0].2.as_deref(),
        Some(r#"{"cursor":"c1","limit":1000}"#)
    );
    assert_eq!(seen.calls[1].2.as_deref(), Some(r#"{"cursor":"c1"}"#));
}

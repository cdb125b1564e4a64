//! The APNs simulator's answers, over HTTP/2 with prior knowledge.

use guardmdm_sim::{ApnsSim, RunningApnsSim};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOPIC: &str = "com.apple.mgmt.External.11111111-2222-4333-8444-555555555555";
const TOKEN: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
const MAGIC: &str = "0E9B4F3C-6A1D-4B2E-8C7F-5D3A2B1C0E9F";

async fn start(apns: ApnsSim) -> RunningApnsSim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    apns.start(listener).unwrap()
}

fn h2() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

struct Push<'a> {
    token: &'a str,
    push_type: Option<&'a str>,
    topic: Option<&'a str>,
    body: Vec<u8>,
    extra: Vec<(&'a str, &'a str)>,
}

impl Default for Push<'_> {
    fn default() -> Self {
        Self {
            token: TOKEN,
            push_type: Some("mdm"),
            topic: Some(TOPIC),
            body: serde_json::to_vec(&json!({ "mdm": MAGIC })).unwrap(),
            extra: Vec::new(),
        }
    }
}

/// Sends a push; returns the status, the `reason` and the whole JSON body (if any), and the
/// `apns-id`.
async fn send(base: &str, push: Push<'_>) -> (StatusCode, Option<String>, Value, Option<String>) {
    let mut request = h2()
        .post(format!("{base}/3/device/{}", push.token))
        .body(push.body);
    if let Some(t) = push.push_type {
        request = request.header("apns-push-type", t);
    }
    if let Some(t) = push.topic {
        request = request.header("apns-topic", t);
    }
    for (k, v) in push.extra {
        request = request.header(k, v);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let status = response.status();
    let apns_id = response
        .headers()
        .get("apns-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let reason = body["reason"].as_str().map(str::to_string);
    (status, reason, body, apns_id)
}

#[tokio::test]
async fn a_good_push_is_accepted_with_an_apns_id() {
    let running = start(ApnsSim::for_topic(TOPIC)).await;
    running.apns.register(TOKEN, TOPIC, MAGIC);
    let (status, reason, _, apns_id) = send(&running.base_url(), Push::default()).await;
    assert_eq!((status, reason), (StatusCode::OK, None));
    assert!(uuid::Uuid::parse_str(&apns_id.unwrap()).is_ok());

    // The provider's own apns-id is echoed; the token is case-insensitive.
    let id = "eabeae54-14a8-11e5-b60b-1697f925ec7b";
    let upper = TOKEN.to_ascii_uppercase();
    let (status, _, _, apns_id) = send(
        &running.base_url(),
        Push {
            token: &upper,
            extra: vec![
                ("apns-id", id),
                ("apns-priority", "10"),
                ("apns-expiration", "0"),
            ],
            ..Push::default()
        },
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(apns_id.as_deref(), Some(id));
    let pushes = running.apns.pushes();
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[0].push_magic.as_deref(), Some(MAGIC));
    assert_eq!(pushes[0].woke, None, "a bare token wakes nobody");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_apples_reasons() {
    let running = start(ApnsSim::for_topic(TOPIC)).await;
    running.apns.register(TOKEN, TOPIC, MAGIC);
    let other_topic = "com.apple.mgmt.External.99999999-2222-4333-8444-555555555555";
    let long = "x".repeat(5000);
    let cases: Vec<(Push<'_>, u16, &str)> = vec![
        (
            Push {
                token: "",
                ..Push::default()
            },
            400,
            "MissingDeviceToken",
        ),
        (
            Push {
                token: "not-hex",
                ..Push::default()
            },
            400,
            "BadDeviceToken",
        ),
        (
            Push {
                token: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                ..Push::default()
            },
            400,
            "BadDeviceToken",
        ),
        (
            Push {
                push_type: None,
                ..Push::default()
            },
            400,
            "InvalidPushType",
        ),
        (
            Push {
                push_type: Some("alert"),
                ..Push::default()
            },
            400,
            "InvalidPushType",
        ),
        (
            Push {
                topic: None,
                ..Push::default()
            },
            400,
            "MissingTopic",
        ),
        (
            Push {
                topic: Some("com.example.app"),
                ..Push::default()
            },
            400,
            "BadTopic",
        ),
        (
            Push {
                topic: Some(other_topic),
                ..Push::default()
            },
            400,
            "TopicDisallowed",
        ),
        (
            Push {
                body: Vec::new(),
                ..Push::default()
            },
            400,
            "PayloadEmpty",
        ),
        (
            Push {
                body: b"{not json".to_vec(),
                ..Push::default()
            },
            400,
            "BadPayload",
        ),
        (
            Push {
                body: br#"{"aps":{"alert":"hi"}}"#.to_vec(),
                ..Push::default()
            },
            400,
            "BadPayload",
        ),
        (
            Push {
                body: format!(r#"{{"mdm":"{long}"}}"#).into_bytes(),
                ..Push::default()
            },
            413,
            "PayloadTooLarge",
        ),
        (
            Push {
                extra: vec![("apns-priority", "7")],
                ..Push::default()
            },
            400,
            "BadPriority",
        ),
        (
            Push {
                extra: vec![("apns-expiration", "soon")],
                ..Push::default()
            },
            400,
            "BadExpirationDate",
        ),
        (
            Push {
                extra: vec![("apns-id", "not-a-uuid")],
                ..Push::default()
            },
            400,
            "BadMessageId",
        ),
        (
            Push {
                extra: vec![("apns-topic", TOPIC)],
                ..Push::default()
            },
            400,
            "DuplicateHeaders",
        ),
    ];
    for (push, status, reason) in cases {
        let (got, got_reason, _, apns_id) = send(&running.base_url(), push).await;
        assert_eq!(
            (got.as_u16(), got_reason.as_deref()),
            (status, Some(reason))
        );
        assert!(apns_id.is_some(), "refusals carry an apns-id too");
    }

    // A token registered for another topic (on a service accepting any MDM topic).
    let any = start(ApnsSim::new()).await;
    any.apns.register(TOKEN, other_topic, MAGIC);
    let (status, reason, _, _) = send(&any.base_url(), Push::default()).await;
    assert_eq!(
        (status.as_u16(), reason.as_deref()),
        (400, Some("DeviceTokenNotForTopic"))
    );
}

#[tokio::test]
async fn an_unregistered_token_is_gone_with_a_timestamp() {
    let running = start(ApnsSim::new()).await;
    running.apns.register(TOKEN, TOPIC, MAGIC);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    running.apns.unregister(TOKEN);
    let (status, reason, body, _) = send(&running.base_url(), Push::default()).await;
    assert_eq!(
        (status.as_u16(), reason.as_deref()),
        (410, Some("Unregistered"))
    );
    let timestamp = body["timestamp"].as_u64().unwrap();
    assert!(timestamp >= before, "{timestamp} >= {before}");
}

#[tokio::test]
async fn wrong_methods_paths_and_protocols_are_refused() {
    let running = start(ApnsSim::new()).await;
    let base = running.base_url();
    let response = h2()
        .get(format!("{base}/3/device/{TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "MethodNotAllowed");

    let response = h2()
        .post(format!("{base}/2/device/{TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "BadPath");

    // HTTP/1.1: Apple's service speaks HTTP/2 only.
    let http1 = reqwest::Client::builder().http1_only().build().unwrap();
    let response = http1
        .post(format!("{base}/3/device/{TOKEN}"))
        .header("apns-push-type", "mdm")
        .header("apns-topic", TOPIC)
        .body(r#"{"mdm":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 505);
}

#[tokio::test]
async fn injected_faults_come_first() {
    let running = start(ApnsSim::new()).await;
    running.apns.register(TOKEN, TOPIC, MAGIC);
    running.apns.fail_next(2, 503, "ServiceUnavailable");
    for _ in 0..2 {
        let (status, reason, _, _) = send(&running.base_url(), Push::default()).await;
        assert_eq!(
            (status.as_u16(), reason.as_deref()),
            (503, Some("ServiceUnavailable"))
        );
    }
    let (status, _, _, _) = send(&running.base_url(), Push::default()).await;
    assert_eq!(status.as_u16(), 200);
}

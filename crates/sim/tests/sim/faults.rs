//! Every injectable fault, through the Rust API and the portal.

use std::time::{Duration, Instant};

use guardmdm_sim::Fault;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{http, setup};

#[tokio::test]
async fn terms_not_signed_and_access_denied_block_until_cleared() {
    let (running, mut dep) = setup(1).await;
    running.sim.inject_fault(Fault::TermsNotSigned).unwrap();
    dep.session().await.assert(403, "T_C_NOT_SIGNED");
    running.sim.clear_faults();
    assert_eq!(dep.session().await.status, 200);
    running.sim.inject_fault(Fault::TermsNotSigned).unwrap();
    dep.call(Method::GET, "/account", None)
        .await
        .assert(403, "T_C_NOT_SIGNED");
    dep.call(Method::GET, "/account", None)
        .await
        .assert(403, "T_C_NOT_SIGNED");
    running.sim.clear_faults();
    running.sim.inject_fault(Fault::AccessDenied).unwrap();
    assert_eq!(dep.session().await.status, 200, "/session still works");
    dep.call(Method::GET, "/account", None)
        .await
        .assert(403, "ACCESS_DENIED");
    running.sim.clear_faults();
    assert_eq!(dep.call(Method::GET, "/account", None).await.status, 200);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn error_statuses_with_retry_after_for_the_next_requests() {
    let (running, mut dep) = setup(1).await;
    dep.session().await;
    // Through the portal, as a script would.
    let portal = format!("{}/portal/faults", running.base_url());
    let armed = http()
        .post(&portal)
        .body(r#"{"kind": "status", "status": 503, "count": 2, "retry_after": 7}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(armed.status(), 200);
    for _ in 0..2 {
        let r = dep.call(Method::GET, "/account", None).await;
        r.assert(503, "SERVICE_UNAVAILABLE");
        assert_eq!(r.headers["retry-after"], "7");
    }
    assert_eq!(dep.call(Method::GET, "/account", None).await.status, 200);
    running
        .sim
        .inject_fault(Fault::Status {
            status: 429,
            count: 1,
            retry_after: Some(3),
            path: Some("/devices/sync".into()),
        })
        .unwrap();
    assert_eq!(
        dep.call(Method::GET, "/account", None).await.status,
        200,
        "other paths unaffected"
    );
    let r = dep.post("/devices/sync", json!({"cursor": "x"})).await;
    r.assert(429, "TOO_MANY_REQUESTS");
    running
        .sim
        .inject_fault(Fault::Status {
            status: 500,
            count: 1,
            retry_after: None,
            path: None,
        })
        .unwrap();
    let r = dep.call(Method::GET, "/account", None).await;
    r.assert(500, "INTERNAL_SERVER_ERROR");
    assert!(r.headers.get("retry-after").is_none());
    let list: Value = http()
        .get(&portal)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn slow_responses() {
    let (running, mut dep) = setup(1).await;
    dep.session().await;
    running
        .sim
        .inject_fault(Fault::Delay {
            millis: 300,
            count: Some(1),
            path: None,
        })
        .unwrap();
    let start = Instant::now();
    assert_eq!(dep.call(Method::GET, "/account", None).await.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    let start = Instant::now();
    dep.call(Method::GET, "/account", None).await;
    assert!(start.elapsed() < Duration::from_millis(300));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn forced_session_and_cursor_expiry() {
    let (running, mut dep) = setup(3).await;
    let (_, cursor) = dep.fetch_all(100).await;
    running.sim.inject_fault(Fault::ExpireSessions).unwrap();
    dep.call(Method::GET, "/account", None)
        .await
        .assert(401, "UNAUTHORIZED");
    dep.session = None;
    let reply = http()
        .post(format!("{}/portal/cursors/expire", running.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    dep.post("/devices/sync", json!({"cursor": cursor}))
        .await
        .assert(400, "EXPIRED_CURSOR");
    let (_, fresh) = dep.fetch_all(100).await;
    dep.sync(&fresh).await;
    running.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_json_and_the_repeated_cursor_quirk() {
    let (running, mut dep) = setup(5).await;
    running
        .sim
        .inject_fault(Fault::MalformedJson {
            count: 1,
            path: Some("/server/devices".into()),
        })
        .unwrap();
    let r = dep.post("/server/devices", json!({"limit": 2})).await;
    assert_eq!(r.status, 200);
    assert!(
        serde_json::from_str::<Value>(&r.text).is_err(),
        "{}",
        r.text
    );
    let page = dep
        .post("/server/devices", json!({"limit": 2}))
        .await
        .json();
    let cursor = page["cursor"].as_str().unwrap().to_string();
    running
        .sim
        .inject_fault(Fault::RepeatedCursor { count: 1 })
        .unwrap();
    let quirk = dep
        .post("/server/devices", json!({"cursor": cursor, "limit": 2}))
        .await
        .json();
    assert_eq!(
        quirk["cursor"],
        cursor.as_str(),
        "the request's cursor comes back"
    );
    assert_eq!(quirk["more_to_follow"], true);
    let normal = dep
        .post("/server/devices", json!({"cursor": cursor, "limit": 2}))
        .await
        .json();
    assert_ne!(normal["cursor"], cursor.as_str());
    running.stop().await.unwrap();
}

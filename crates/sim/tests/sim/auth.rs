//! `/session` verification, sessions, required headers (`docs/protocol.md` §2).

use std::time::Duration;

use guardmdm_sim::{SimConfig, oauth};
use reqwest::Method;
use secrecy::ExposeSecret;

use crate::common::{Dep, nonce, now, oauth_header, setup, setup_with};

#[test]
fn the_test_signer_matches_the_rfc_5849_example() {
    // RFC 5849 §1.2, through the crate's public helpers (the verifier's building blocks).
    let params: Vec<(String, String)> = [
        ("file", "vacation.jpg"),
        ("size", "original"),
        ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
        ("oauth_token", "nnch734d00sl2jdk"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131202"),
        ("oauth_nonce", "chapoH"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    let base = oauth::base_string("GET", "http://photos.example.net/photos", &params);
    assert_eq!(
        oauth::sign("kd94hf93k423kf44", "pfkkdhi9sl3r4s00", &base),
        "MdpQcU8iPSUjWoN/UDMsK2sui9I="
    );
}

#[tokio::test]
async fn a_signed_session_opens_and_account_names_the_server() {
    let (running, mut dep) = setup(0).await;
    let reply = dep.session().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let account = dep.call(Method::GET, "/account", None).await.json();
    assert_eq!(account["server_name"], "GuardMDM Test");
    assert_eq!(account["server_uuid"], dep.server.server_uuid.as_str());
    assert_eq!(account["org_name"], "Example Corp");
    assert_eq!(account["admin_id"], "admin@example.com");
    assert_eq!(account["org_id_hash"].as_str().unwrap().len(), 64);
    assert_eq!(account["urls"][1]["limit"]["maximum"], 1000);
    dep.version = 2;
    let old = dep.call(Method::GET, "/account", None).await.json();
    assert!(old.get("org_id").is_none() && old.get("urls").is_none());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn tampered_stale_reused_and_unknown_credentials_are_refused() {
    let (running, dep) = setup(0).await;
    let url = format!("{}/session", dep.base);
    let get = |header: String| {
        let dep = &dep;
        async move { dep.raw(Method::GET, "/session", None, Some(&header)).await }
    };
    let good = oauth_header(&url, &dep.tokens, now(), "fixed-nonce");
    get(good.replace("oauth_signature=\"", "oauth_signature=\"A"))
        .await
        .assert(401, "signature_invalid");
    assert_eq!(get(good.clone()).await.status, 200);
    get(good).await.assert(401, "nonce_used");
    get(oauth_header(&url, &dep.tokens, now() - 600, &nonce()))
        .await
        .assert(401, "timestamp_refused");
    get(oauth_header(&url, &dep.tokens, now() + 600, &nonce()))
        .await
        .assert(401, "timestamp_refused");
    // The signature covers the URL the request was sent to.
    let elsewhere = oauth_header(
        "https://mdmenrollment.apple.com/session",
        &dep.tokens,
        now(),
        &nonce(),
    );
    get(elsewhere).await.assert(401, "signature_invalid");
    let mut other = crate::common::decrypt(
        &running
            .sim
            .download_token(&dep.server.server_uuid, None)
            .unwrap()
            .contents,
    );
    other.consumer_key = "CK_unknown".to_string().into();
    get(oauth_header(&url, &other, now(), &nonce()))
        .await
        .assert(401, "consumer_key_unknown");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_oauth_requests_are_400() {
    let (running, dep) = setup(0).await;
    let url = format!("{}/session", dep.base);
    let reply = dep.raw(Method::GET, "/session", None, None).await;
    assert_eq!(reply.status, 400);
    assert!(reply.text.contains("parameter_absent"));
    let header = oauth_header(&url, &dep.tokens, now(), &nonce());
    let without_nonce: String = header
        .split(", ")
        .filter(|p| !p.starts_with("oauth_nonce"))
        .collect::<Vec<_>>()
        .join(", ");
    let reply = dep
        .raw(Method::GET, "/session", None, Some(&without_nonce))
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.text.contains("oauth_parameters_absent=oauth_nonce"),
        "{}",
        reply.text
    );
    let plaintext = header.replace("HMAC-SHA1", "PLAINTEXT");
    let reply = dep
        .raw(Method::GET, "/session", None, Some(&plaintext))
        .await;
    assert!(reply.text.contains("signature_method_rejected"));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_newer_token_revokes_the_older_one() {
    let (running, mut dep) = setup(0).await;
    assert_eq!(dep.session().await.status, 200);
    let old_tokens = dep.tokens.clone();
    let newer = running
        .sim
        .download_token(&dep.server.server_uuid, Some("it2@example.com"))
        .unwrap();
    let new_tokens = crate::common::decrypt(&newer.contents);
    assert_eq!(
        new_tokens.consumer_key.expose_secret(),
        old_tokens.consumer_key.expose_secret(),
        "consumer_key is stable per server"
    );
    // The old session belongs to the revoked token (§9.8: 403 FORBIDDEN on /account).
    dep.call(Method::GET, "/account", None)
        .await
        .assert(403, "FORBIDDEN");
    dep.session = None;
    dep.session().await.assert(401, "token_rejected");
    dep.tokens = new_tokens;
    assert_eq!(dep.session().await.status, 200);
    let account = dep.call(Method::GET, "/account", None).await.json();
    assert_eq!(account["admin_id"], "it2@example.com");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn tokens_expire_after_a_year() {
    let (running, mut dep) = setup(0).await;
    running.sim.advance_clock(Duration::from_secs(366 * 86_400));
    dep.session().await.assert(401, "token_rejected");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn required_headers() {
    let (running, mut dep) = setup(0).await;
    dep.session().await;
    let http = crate::common::http();
    let url = format!("{}/account", dep.base);
    let session = dep.session.clone().unwrap();
    let no_ua = http
        .get(&url)
        .header("X-ADM-Auth-Session", &session)
        .header("X-Server-Protocol-Version", "10");
    let reply = no_ua.send().await.unwrap();
    assert_eq!(reply.status(), 400);
    assert_eq!(reply.text().await.unwrap(), "USER_AGENT_MISSING");
    let no_version = http
        .get(&url)
        .header("X-ADM-Auth-Session", &session)
        .header("User-Agent", "t");
    let reply = no_version.send().await.unwrap();
    assert_eq!(
        reply.text().await.unwrap(),
        "X_SERVER_PROTOCOL_VERSION_MISSING"
    );
    let bad = http
        .get(&url)
        .header("X-ADM-Auth-Session", &session)
        .header("User-Agent", "t")
        .header("X-Server-Protocol-Version", "ten");
    assert_eq!(
        bad.send().await.unwrap().text().await.unwrap(),
        "X_SERVER_PROTOCOL_VERSION_INVALID"
    );
    dep.session = Some("not-a-session".into());
    dep.call(Method::GET, "/account", None)
        .await
        .assert(401, "UNAUTHORIZED");
    dep.session = None;
    dep.raw(Method::GET, "/account", None, None)
        .await
        .assert(401, "UNAUTHORIZED");
    let wrong_method = dep.call(Method::GET, "/server/devices", None).await;
    assert_eq!(wrong_method.status, 405);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn sessions_expire_when_idle_and_rotate() {
    let config = SimConfig {
        session_rotate_every: Some(2),
        ..SimConfig::default()
    };
    let (running, mut dep) = setup_with(config).await;
    dep.session().await;
    let first = dep.session.clone().unwrap();
    let r1 = dep.call(Method::GET, "/account", None).await;
    assert_eq!(r1.headers["x-adm-auth-session"].to_str().unwrap(), first);
    let r2 = dep.call(Method::GET, "/account", None).await;
    let rotated = r2.headers["x-adm-auth-session"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(rotated, first, "the second call rotates the token");
    // The old token works during the grace period, then not.
    let mut old = Dep {
        session: Some(first.clone()),
        ..clone_dep(&dep)
    };
    assert_eq!(
        old.raw(Method::GET, "/account", None, None).await.status,
        200
    );
    running.sim.advance_clock(Duration::from_secs(61));
    old.session = Some(first);
    old.raw(Method::GET, "/account", None, None)
        .await
        .assert(401, "UNAUTHORIZED");
    assert_eq!(dep.call(Method::GET, "/account", None).await.status, 200);
    // Idle for longer than three minutes: gone.
    running.sim.advance_clock(Duration::from_secs(181));
    dep.call(Method::GET, "/account", None)
        .await
        .assert(401, "UNAUTHORIZED");
    running.stop().await.unwrap();
}

fn clone_dep(dep: &Dep) -> Dep {
    Dep {
        base: dep.base.clone(),
        server: dep.server.clone(),
        tokens: dep.tokens.clone(),
        session: dep.session.clone(),
        version: dep.version,
        http: dep.http.clone(),
    }
}

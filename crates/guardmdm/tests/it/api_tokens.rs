//! Named API tokens: created by an admin, usable at once, stored hashed, revocable.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use common::{Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn api_token_lifecycle() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let (status, created) = app
            .json(
                Method::POST,
                "/api/v1/api-tokens",
                Some(json!({"name": "ci"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let token = created["token"].as_str().unwrap().to_string();
        assert!(token.starts_with("gmdm_"), "{token}");

        // The new token works, and acts under its own name.
        let resp = app
            .http
            .post(app.url("/api/v1/abm/tokens"))
            .bearer_auth(&token)
            .json(&json!({"name": "by-ci"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let (_, audit) = app.json(Method::GET, "/api/v1/audit?limit=1", None).await;
        assert_eq!(audit[0]["actor"], "api-key:ci");

        // Listed without its value or hash, with its last use.
        let (_, list) = app.json(Method::GET, "/api/v1/api-tokens", None).await;
        assert_eq!(list[0]["name"], "ci");
        assert!(list[0]["last_used_at"].is_string());
        assert!(
            !list.to_string().contains(&token[5..]),
            "token value listed"
        );
        let stored_hash = guardmdm_crypto::api_token::hash(&token.clone().into());
        assert!(!list.to_string().contains(&stored_hash));

        let (status, _) = app
            .json(
                Method::POST,
                "/api/v1/api-tokens",
                Some(json!({"name": "ci"})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);

        // Revoked: refused at once.
        let (status, revoked) = app
            .json(Method::DELETE, "/api/v1/api-tokens/ci", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{revoked}");
        assert!(revoked["revoked_at"].is_string());
        let resp = app
            .http
            .get(app.url("/api/v1/abm/tokens"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let (status, _) = app
            .json(Method::DELETE, "/api/v1/api-tokens/ci", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        app.stop().await;
    }
}

#[tokio::test]
async fn tokens_are_stored_hashed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, created) = app
        .json(
            Method::POST,
            "/api/v1/api-tokens",
            Some(json!({"name": "x"})),
        )
        .await;
    let token = created["token"].as_str().unwrap().to_string();
    let dir = app.stop().await;
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(!all.is_empty(), "the database files were read");
    assert!(
        !String::from_utf8_lossy(&all).contains(&token),
        "token stored in clear"
    );
}

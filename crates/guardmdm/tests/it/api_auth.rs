//! Every admin route requires a bearer token; public routes stay public. Driven by the
//! OpenAPI document, so a new route is covered by being documented.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use common::{ADMIN_TOKEN, Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn documented_operations(app: &TestApp) -> Vec<(Method, String)> {
    let resp = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the OpenAPI document is public"
    );
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                let concrete = path.replace("{name}", "some-name").replace("{id}", "1");
                ops.push((
                    method.to_uppercase().parse().unwrap(),
                    format!("/api/v1{concrete}"),
                ));
            }
        }
    }
    ops
}

#[tokio::test]
async fn every_api_route_answers_401_json_without_a_valid_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut ops = documented_operations(&app).await;
    assert!(ops.len() >= 11, "{ops:?}");
    ops.push((Method::GET, "/api/v1/no-such-route".to_string()));
    for (method, path) in &ops {
        for auth in [
            None,
            Some("Bearer wrong-token-value"),
            Some("Basic Zm9vOmJhcg=="),
            Some("Bearer "),
        ] {
            let mut req = app.http.request(method.clone(), app.url(path));
            if let Some(value) = auth {
                req = req.header("authorization", value);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {auth:?}"
            );
            assert!(
                resp.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer")
            );
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "unauthorized", "{method} {path}");
            assert!(body["message"].as_str().unwrap().len() > 10);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (method, path) in documented_operations(&app).await {
        let resp = app.admin(method.clone(), &path).send().await.unwrap();
        assert_ne!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_ne!(
            body["message"], "no such route",
            "{method} {path} is documented but not routed"
        );
    }
    let (status, body) = app.json(Method::GET, "/api/v1/no-such-route", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = app.json(Method::POST, "/api/v1/audit", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["error"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn healthz_is_public_and_metrics_need_a_token_or_the_metrics_listener() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().contains_key("x-request-id"));
        let body: Value = resp.json().await.unwrap();
        let db = if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        };
        assert_eq!(
            (body["status"].as_str(), body["database"].as_str()),
            (Some("ok"), Some(db))
        );
        let text = app.metrics().await;
        assert!(text.contains("guardmdm_build_info{version=\""), "{text}");
        assert!(
            text.contains(
                "guardmdm_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));

        // On the main listener: an admin or API token, else 401 with the API's JSON error.
        let anonymous = app.http.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        let body: Value = anonymous.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized", "{body}");
        let wrong = app
            .http
            .get(app.url("/metrics"))
            .bearer_auth("not-the-token-at-all")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let with_token = app.admin(Method::GET, "/metrics").send().await.unwrap();
        assert_eq!(with_token.status(), StatusCode::OK);
        assert!(
            with_token
                .text()
                .await
                .unwrap()
                .contains("guardmdm_build_info")
        );

        // The metrics listener serves /healthz too, and nothing else.
        let health = app
            .http
            .get(format!("{}/healthz", app.metrics_base))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        let other = app
            .http
            .get(format!("{}/api/v1/audit", app.metrics_base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), StatusCode::NOT_FOUND);
        app.stop().await;
    }
}

#[tokio::test]
async fn admin_token_is_compared_exactly() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let longer = format!("{ADMIN_TOKEN}x");
    let prefix = &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1];
    for token in [longer.as_str(), prefix] {
        let resp = app
            .http
            .get(app.url("/api/v1/audit"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{token}");
    }
    let resp = app
        .admin(Method::GET, "/api/v1/audit")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_json_400s_and_oversized_bodies_413() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let resp = app
        .admin(Method::POST, "/api/v1/abm/tokens")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let (status, body) = app
        .json(
            Method::POST,
            "/api/v1/abm/tokens",
            Some(serde_json::json!({"name": "x", "bach_size": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"].as_str().unwrap().contains("bach_size"),
        "{body}"
    );
    let (status, body) = app.json(Method::GET, "/api/v1/audit?limit=abc", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let huge = serde_json::json!({ "name": "x".repeat(2 * 1024 * 1024) });
    let (status, body) = app
        .json(Method::POST, "/api/v1/abm/tokens", Some(huge))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "payload_too_large");
    app.stop().await;
}

//! The ABM token exchange over a real socket, on every backend: create an entry, download its
//! public key, upload the server token ABM encrypted to it, renew, and refuse bad files.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use common::{TestApp, abm_token_file, days_from_now, token_json};
use guardmdm_store::{ServerTokenRecord, TokenProblem};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn token_lifecycle_create_upload_renew_list() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let created = app.create_entry("main").await;
        assert_eq!(created["health"]["state"], "pending", "{backend:?}");
        assert_eq!(created["batch_size"], 100);
        assert_eq!(created["account"], Value::Null);

        // Step 1: the public key, as the file to upload to ABM.
        let resp = app
            .admin(Method::GET, "/api/v1/abm/tokens/main/public-key")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "application/x-pem-file");
        assert!(
            resp.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("GuardMDM_main.pem")
        );
        let pem = resp.text().await.unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");

        // Steps 2-4: register it in (simulated) ABM, download the token, upload it back.
        let server_uuid = app.register_in_abm("main", "GuardMDM Main").await;
        let first_token = app.download_token(&server_uuid);
        let (status, body) = app.upload("main", first_token.clone(), false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["health"]["state"], "active");
        assert_eq!(body["health"]["days_left"], 364);
        assert_eq!(
            body["account"]["server_name"], "GuardMDM Main",
            "from Apple's /account"
        );
        assert_eq!(body["account"]["server_uuid"], server_uuid.as_str());
        assert_eq!(body["account"]["org_name"], "Example Corp");

        // Renewal: a newer token for the same MDM server replaces the old one, which ABM
        // revokes; the entry is kept.
        let (status, body) = app
            .upload("main", app.download_token(&server_uuid), false)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["health"]["state"], "active");
        assert_eq!(body["id"], created["id"], "the entry is kept");
        // `/abm/entries` is the entry's path; `/abm/tokens`, its old name, answers the same.
        let (_, by_entries) = app
            .json(Method::GET, "/api/v1/abm/entries/main", None)
            .await;
        let (_, by_tokens) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert_eq!(by_entries["id"], created["id"], "{by_entries}");
        assert_eq!(by_entries, by_tokens);
        let (status, body) = app.upload("main", first_token, false).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"], "token_rejected");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Download a new server token"),
            "{body}"
        );

        // Several entries coexist.
        app.create_entry("europe").await;
        let (status, list) = app.json(Method::GET, "/api/v1/abm/tokens", None).await;
        assert_eq!(status, StatusCode::OK);
        let summary: Vec<(String, String)> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().into(),
                    e["health"]["state"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("europe".into(), "pending".into()),
                ("main".into(), "active".into())
            ]
        );

        // Nothing secret in any answer.
        let text = list.to_string();
        for secret in ["CK_", "CS_", "AT_", "AS_", "PRIVATE"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }

        // The audit log has every change, attributed; the refused upload changed nothing.
        let (_, audit) = app.json(Method::GET, "/api/v1/audit", None).await;
        let actions: Vec<&str> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "abm_token.create",
                "abm_token.renew",
                "abm_token.upload",
                "abm_token.create"
            ]
        );
        assert_eq!(audit[0]["actor"], "admin-token");
        assert_eq!(
            audit[2]["details"]["server_name"], "GuardMDM Main",
            "{audit}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn terms_not_signed_at_upload_is_stored_as_the_entrys_state() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        app.create_entry("main").await;
        let server = app.register_in_abm("main", "Main").await;
        app.abm
            .sim
            .inject_fault(guardmdm_sim::Fault::TermsNotSigned)
            .unwrap();
        let (status, body) = app.upload("main", app.download_token(&server), false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["health"]["state"], "terms_not_signed");
        assert!(
            body["health"]["message"]
                .as_str()
                .unwrap()
                .contains("accept"),
            "{body}"
        );
        assert_eq!(
            body["account"],
            Value::Null,
            "Apple said nothing about the server"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_token_apple_does_not_know_is_refused() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        app.create_entry("main").await;
        let pem = app.public_key("main").await;
        // Well formed and encrypted to the entry, but never issued by (simulated) ABM.
        let (status, body) = app
            .upload(
                "main",
                abm_token_file(&pem, &token_json("CK_unknown", &days_from_now(300))),
                false,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"], "token_rejected");
        let (_, entry) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert_eq!(entry["health"]["state"], "pending", "nothing stored");
        app.stop().await;
    }
}

#[tokio::test]
async fn settings_change_and_delete() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        app.create_entry("main").await;
        let (status, body) = app
            .json(
                Method::PATCH,
                "/api/v1/abm/tokens/main",
                Some(json!({"batch_size": 1000, "abm_url": "http://127.0.0.1:9001"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (body["batch_size"].as_u64(), body["abm_url"].as_str()),
            (Some(1000), Some("http://127.0.0.1:9001/"))
        );
        let (status, body) = app
            .json(
                Method::PATCH,
                "/api/v1/abm/tokens/main",
                Some(json!({"abm_url": null})),
            )
            .await;
        assert_eq!(
            (status, &body["abm_url"], body["batch_size"].as_u64()),
            (StatusCode::OK, &Value::Null, Some(1000))
        );
        let (status, body) = app
            .json(
                Method::PATCH,
                "/api/v1/abm/tokens/main",
                Some(json!({"batch_size": 1001})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"].as_str().unwrap().contains("1 to 1000"),
            "{body}"
        );
        let (status, body) = app
            .json(
                Method::POST,
                "/api/v1/abm/tokens",
                Some(json!({"name": "big", "batch_size": 5000})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = app
            .json(
                Method::POST,
                "/api/v1/abm/tokens",
                Some(json!({"name": "main"})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, body) = app
            .json(
                Method::POST,
                "/api/v1/abm/tokens",
                Some(json!({"name": "bad name"})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let resp = app
            .admin(Method::DELETE, "/api/v1/abm/tokens/main")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        let (status, body) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["message"], "no ABM entry named \"main\"");
        app.stop().await;
    }
}

#[tokio::test]
async fn expired_and_problem_states_show_in_list_and_metrics() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        for name in ["old", "terms", "fine", "soon"] {
            app.create_entry(name).await;
        }
        let server = app.register_in_abm("fine", "Fine").await;
        let (status, _) = app.upload("fine", app.download_token(&server), false).await;
        assert_eq!(status, StatusCode::OK);
        // Arrange what only time or Apple can cause: expired and expiring tokens, a T&C
        // problem.
        let store = app.store().await;
        let now = guardmdm_store::now();
        let expired = ServerTokenRecord {
            sealed_token: vec![1; 40],
            expires_at: now - time::Duration::days(2),
            uploaded_at: now - time::Duration::days(400),
        };
        store
            .store_server_token("old", &expired, None, &system_audit("old"))
            .await
            .unwrap();
        let later = ServerTokenRecord {
            expires_at: now + time::Duration::days(100),
            ..expired.clone()
        };
        store
            .store_server_token("terms", &later, None, &system_audit("terms"))
            .await
            .unwrap();
        let problem = TokenProblem {
            kind: "terms_not_signed".into(),
            message: "Accept the new terms in Apple Business Manager".into(),
            since: now,
        };
        store
            .set_abm_problem("terms", Some(&problem), now)
            .await
            .unwrap();
        let soon = ServerTokenRecord {
            expires_at: now + time::Duration::days(20),
            ..expired
        };
        store
            .store_server_token("soon", &soon, None, &system_audit("soon"))
            .await
            .unwrap();

        let (_, list) = app.json(Method::GET, "/api/v1/abm/tokens", None).await;
        let states: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["health"]["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            ["active", "expired", "expiring", "terms_not_signed"]
        );
        assert!(
            list[2]["health"]["message"]
                .as_str()
                .unwrap()
                .contains("in 19 days"),
            "{list}"
        );
        assert!(
            list[1]["health"]["message"]
                .as_str()
                .unwrap()
                .contains("Regenerate")
        );
        assert_eq!(list[1]["health"]["days_left"], -2);

        let metrics = app.metrics().await;
        let expiry = (now - time::Duration::days(2)).unix_timestamp();
        assert!(
            metrics.contains(&format!(
                "guardmdm_abm_token_expiry_timestamp_seconds{{token=\"old\"}} {expiry}"
            )),
            "{metrics}"
        );
        assert!(metrics.contains("guardmdm_abm_token_state{token=\"old\",state=\"expired\"} 1"));
        assert!(
            metrics
                .contains("guardmdm_abm_token_state{token=\"terms\",state=\"terms_not_signed\"} 1")
        );
        assert!(!metrics.contains("guardmdm_abm_token_expiry_timestamp_seconds{token=\"pending"));
        app.stop().await;
    }
}

fn system_audit(target: &str) -> guardmdm_store::NewAuditEvent {
    guardmdm_store::NewAuditEvent {
        at: guardmdm_store::now(),
        actor: "test".into(),
        action: "test.arrange".into(),
        target: target.into(),
        details: json!({}),
    }
}

/// Uploads `file` to an entry that has a valid token and checks the answer and that the
/// stored token did not change.
async fn refused(app: &TestApp, file: Vec<u8>, status: StatusCode, code: &str, message: &str) {
    let (_, before) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
    let (got, body) = app.upload("main", file, false).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let text = body["message"].as_str().unwrap();
    assert!(text.contains(message), "expected {message:?} in {text:?}");
    let (_, after) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
    assert_eq!(before, after, "the stored token is unchanged");
    assert_eq!(after["health"]["state"], "active");
}

async fn app_with_token(backend: common::Backend) -> (TestApp, String) {
    let app = TestApp::spawn(backend).await;
    app.create_entry("main").await;
    let pem = app.public_key("main").await;
    let server = app.register_in_abm("main", "Main").await;
    let (status, body) = app.upload("main", app.download_token(&server), false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (app, pem)
}

#[tokio::test]
async fn refuses_a_file_that_is_not_smime() {
    for backend in common::backends() {
        let (app, _) = app_with_token(backend).await;
        refused(
            &app,
            b"%PDF-1.7 not a token".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token_file",
            "not an ABM server token",
        )
        .await;
        refused(
            &app,
            token_json("CK_main", &days_from_now(9)).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token_file",
            "MIME headers",
        )
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn refuses_truncated_or_corrupt_base64() {
    for backend in common::backends() {
        let (app, pem) = app_with_token(backend).await;
        let file = String::from_utf8(abm_token_file(
            &pem,
            &token_json("CK_main", &days_from_now(9)),
        ))
        .unwrap();
        let truncated = file[..file.len() / 2].to_string();
        refused(
            &app,
            truncated.into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token_file",
            "corrupt or truncated",
        )
        .await;
        let body_at = file.find("\r\n\r\n").unwrap() + 20;
        let corrupt = format!("{}!!{}", &file[..body_at], &file[body_at + 2..]);
        refused(
            &app,
            corrupt.into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token_file",
            "base64",
        )
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn refuses_a_token_encrypted_to_another_entry() {
    for backend in common::backends() {
        let (app, _) = app_with_token(backend).await;
        app.create_entry("other").await;
        let other_pem = app.public_key("other").await;
        let file = abm_token_file(&other_pem, &token_json("CK_main", &days_from_now(9)));
        refused(
            &app,
            file,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token_file",
            "encrypted to a different key",
        )
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn refuses_inner_json_with_a_missing_field_or_malformed_expiry() {
    for backend in common::backends() {
        let (app, pem) = app_with_token(backend).await;
        let missing = r#"{"consumer_key":"CK_main","consumer_secret":"CS","access_token":"AT","access_token_expiry":"2030-01-01T00:00:00Z"}"#;
        refused(
            &app,
            abm_token_file(&pem, missing),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token_file",
            "no `access_secret`",
        )
        .await;
        let malformed = token_json("CK_main", "31/12/2030");
        refused(
            &app,
            abm_token_file(&pem, &malformed),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_token_file",
            "access_token_expiry \"31/12/2030\"",
        )
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn refuses_an_expired_token() {
    for backend in common::backends() {
        let (app, pem) = app_with_token(backend).await;
        let file = abm_token_file(&pem, &token_json("CK_main", &days_from_now(-1)));
        refused(
            &app,
            file,
            StatusCode::UNPROCESSABLE_ENTITY,
            "token_expired",
            "expired on",
        )
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn refuses_an_oversized_body() {
    for backend in common::backends() {
        let (app, _) = app_with_token(backend).await;
        refused(
            &app,
            vec![b'A'; 65 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "64 KiB",
        )
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn refuses_upload_to_an_unknown_entry() {
    for backend in common::backends() {
        let (app, pem) = app_with_token(backend).await;
        let (status, body) = app
            .upload(
                "ghost",
                abm_token_file(&pem, &token_json("CK_main", &days_from_now(9))),
                false,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["message"], "no ABM entry named \"ghost\"");
        app.stop().await;
    }
}

#[tokio::test]
async fn refuses_another_servers_token_unless_forced() {
    for backend in common::backends() {
        let (app, pem) = app_with_token(backend).await;
        // The admin uploaded the same public key to a second MDM server in ABM, and now
        // uploads that server's token to this entry by mistake.
        let other = app
            .abm
            .sim
            .register_server("Other Server", &pem)
            .unwrap()
            .server_uuid;
        let file = app.download_token(&other);
        refused(
            &app,
            file.clone(),
            StatusCode::CONFLICT,
            "conflict",
            "\"Other Server\"",
        )
        .await;
        let (status, body) = app.upload("main", file, true).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["account"]["server_name"], "Other Server",
            "forced: switched servers"
        );
        let (_, audit) = app.json(Method::GET, "/api/v1/audit?limit=1", None).await;
        assert_eq!(audit[0]["details"]["forced"], true);
        app.stop().await;
    }
}

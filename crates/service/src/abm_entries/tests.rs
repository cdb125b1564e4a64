use super::*;
use guardmdm_store_sqlite::SqliteStore;
use time::Duration;

struct Fixture {
    service: AbmEntryService,
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("g.db")).await.unwrap());
    let secrets = Arc::new(SecretKey::generate().unwrap());
    Fixture {
        service: AbmEntryService::new(store.clone(), secrets, unreachable_abm()),
        store,
        dir,
    }
}

/// Apple out of reach: a closed local port, no retries. Uploads store the token unchecked.
fn unreachable_abm() -> AbmSettings {
    AbmSettings {
        default_url: "http://127.0.0.1:9".to_string(),
        client_options: ClientOptions {
            max_retries: 0,
            ..ClientOptions::default()
        },
    }
}

fn token_json(consumer_key: &str, expiry: OffsetDateTime) -> String {
    serde_json::json!({
        "consumer_key": consumer_key,
        "consumer_secret": "CS_secret_value_1234",
        "access_token": "AT_access_token_5678",
        "access_secret": "AS_access_secret_9012",
        "access_token_expiry": rfc3339(expiry.replace_nanosecond(0).unwrap()),
    })
    .to_string()
}

fn p7m_for(cert: &str, consumer_key: &str, expires_in: Duration) -> Vec<u8> {
    let json = token_json(consumer_key, OffsetDateTime::now_utc() + expires_in);
    guardmdm_crypto::encrypt_server_token(&json, cert).unwrap()
}

fn named(name: &str) -> NewEntry {
    NewEntry {
        name: name.to_string(),
        ..NewEntry::default()
    }
}

const ADMIN: Actor = Actor::AdminToken;

#[tokio::test]
async fn create_then_upload_makes_an_active_entry() {
    let f = fixture().await;
    let view = f.service.create(&ADMIN, named("main")).await.unwrap();
    assert_eq!(view.health.state, crate::TokenState::Pending);
    assert_eq!(view.batch_size, DEFAULT_BATCH_SIZE);
    let pem = f.service.public_key("main").await.unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let file = p7m_for(&pem, "CK_one", Duration::days(365));
    let view = f
        .service
        .upload_server_token(&ADMIN, "main", &file, false)
        .await
        .unwrap();
    assert_eq!(view.health.state, crate::TokenState::Active);
    assert_eq!(view.health.days_left, Some(364));
    let creds = f.service.credentials("main").await.unwrap().unwrap();
    assert_eq!(creds.consumer_key.expose_secret(), "CK_one");
    assert_eq!(creds.access_secret.expose_secret(), "AS_access_secret_9012");
    let actions: Vec<String> = f
        .store
        .list_audit(10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["abm_token.upload", "abm_token.create"]);
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest() {
    let f = fixture().await;
    f.service.create(&ADMIN, named("main")).await.unwrap();
    let pem = f.service.public_key("main").await.unwrap();
    let file = p7m_for(&pem, "CK_findme", Duration::days(365));
    f.service
        .upload_server_token(&ADMIN, "main", &file, false)
        .await
        .unwrap();
    drop(f.service);
    drop(f.store);
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(f.dir.path()).unwrap() {
        raw.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let haystack = String::from_utf8_lossy(&raw);
    assert!(
        haystack.contains("BEGIN CERTIFICATE"),
        "the public certificate is stored"
    );
    for secret in [
        "PRIVATE KEY",
        "CK_findme",
        "CS_secret",
        "AT_access",
        "AS_access",
    ] {
        assert!(
            !haystack.contains(secret),
            "{secret} found in the database files"
        );
    }
}

#[tokio::test]
async fn refuses_bad_names_and_settings() {
    let f = fixture().await;
    assert!(matches!(
        f.service.create(&ADMIN, named("bad name")).await,
        Err(ServiceError::Invalid(_))
    ));
    for size in [0, 1001] {
        let err = f
            .service
            .create(
                &ADMIN,
                NewEntry {
                    batch_size: Some(size),
                    ..named("x")
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("1 to 1000"), "{err}");
    }
    let err = f
        .service
        .create(
            &ADMIN,
            NewEntry {
                abm_url: Some("ftp://x".into()),
                ..named("x")
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("http"), "{err}");
    f.service.create(&ADMIN, named("x")).await.unwrap();
    assert!(matches!(
        f.service.create(&ADMIN, named("x")).await,
        Err(ServiceError::Conflict(_))
    ));
    let set = f
        .service
        .update_settings(
            &ADMIN,
            "x",
            EntrySettings {
                batch_size: Some(1000),
                abm_url: Some(Some("http://127.0.0.1:9000".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (set.batch_size, set.abm_url.as_deref()),
        (1000, Some("http://127.0.0.1:9000/"))
    );
    assert!(matches!(
        f.service
            .update_settings(
                &ADMIN,
                "x",
                EntrySettings {
                    batch_size: Some(5000),
                    abm_url: None
                }
            )
            .await,
        Err(ServiceError::Invalid(_))
    ));
    assert!(matches!(
        f.service
            .update_settings(&ADMIN, "nope", EntrySettings::default())
            .await,
        Err(ServiceError::NotFound(_))
    ));
}

#[tokio::test]
async fn renewal_keeps_the_entry_and_refuses_another_servers_token() {
    let f = fixture().await;
    f.service
        .create(
            &ADMIN,
            NewEntry {
                batch_size: Some(500),
                ..named("main")
            },
        )
        .await
        .unwrap();
    let pem = f.service.public_key("main").await.unwrap();
    let first = f
        .service
        .upload_server_token(
            &ADMIN,
            "main",
            &p7m_for(&pem, "CK_one", Duration::days(20)),
            false,
        )
        .await
        .unwrap();
    assert_eq!(first.health.state, crate::TokenState::Expiring);
    let renewed = f
        .service
        .upload_server_token(
            &ADMIN,
            "main",
            &p7m_for(&pem, "CK_one", Duration::days(365)),
            false,
        )
        .await
        .unwrap();
    assert_eq!(renewed.health.state, crate::TokenState::Active);
    assert_eq!((renewed.id, renewed.batch_size), (first.id, 500));
    assert_eq!(
        f.service.public_key("main").await.unwrap(),
        pem,
        "same key pair"
    );

    let other = p7m_for(&pem, "CK_two", Duration::days(300));
    let err = f
        .service
        .upload_server_token(&ADMIN, "main", &other, false)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(
        f.service.get("main").await.unwrap().health,
        renewed.health,
        "unchanged"
    );
    let forced = f
        .service
        .upload_server_token(&ADMIN, "main", &other, true)
        .await
        .unwrap();
    assert_eq!(forced.health.days_left, Some(299));
    let creds = f.service.credentials("main").await.unwrap().unwrap();
    assert_eq!(creds.consumer_key.expose_secret(), "CK_two");
}

#[tokio::test]
async fn bad_uploads_leave_the_stored_token_unchanged() {
    let f = fixture().await;
    f.service.create(&ADMIN, named("main")).await.unwrap();
    f.service.create(&ADMIN, named("other")).await.unwrap();
    let pem = f.service.public_key("main").await.unwrap();
    let other_pem = f.service.public_key("other").await.unwrap();
    let good = f
        .service
        .upload_server_token(
            &ADMIN,
            "main",
            &p7m_for(&pem, "CK_one", Duration::days(100)),
            false,
        )
        .await
        .unwrap();
    let expired = p7m_for(&pem, "CK_one", Duration::days(-1));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"hello".to_vec(), "not an ABM server token"),
        (
            p7m_for(&other_pem, "CK_one", Duration::days(100)),
            "different key",
        ),
        (expired, "expired"),
        (vec![b'A'; MAX_TOKEN_FILE_BYTES + 1], "limit 64 KiB"),
    ];
    for (file, expected) in cases {
        let err = f
            .service
            .upload_server_token(&ADMIN, "main", &file, true)
            .await
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{expected}: {err}");
        assert_eq!(
            f.service.get("main").await.unwrap(),
            good,
            "{expected}: unchanged"
        );
        let creds = f.service.credentials("main").await.unwrap().unwrap();
        assert_eq!(creds.consumer_key.expose_secret(), "CK_one");
    }
    let err = f
        .service
        .upload_server_token(&ADMIN, "ghost", b"x", false)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn delete_removes_the_entry() {
    let f = fixture().await;
    f.service.create(&ADMIN, named("gone")).await.unwrap();
    f.service.delete(&ADMIN, "gone").await.unwrap();
    assert!(matches!(
        f.service.get("gone").await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(matches!(
        f.service.delete(&ADMIN, "gone").await,
        Err(ServiceError::NotFound(_))
    ));
}

#[tokio::test]
async fn the_health_check_flags_expiring_tokens_only() {
    let f = fixture().await;
    f.service.create(&ADMIN, named("soon")).await.unwrap();
    f.service.create(&ADMIN, named("fine")).await.unwrap();
    f.service.create(&ADMIN, named("pending")).await.unwrap();
    for (name, days) in [("soon", 10), ("fine", 200)] {
        let pem = f.service.public_key(name).await.unwrap();
        f.service
            .upload_server_token(
                &ADMIN,
                name,
                &p7m_for(&pem, "CK", Duration::days(days)),
                false,
            )
            .await
            .unwrap();
    }
    let flagged = crate::jobs::check_token_health(&f.service).await.unwrap();
    let names: Vec<&str> = flagged.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["soon"]);
}

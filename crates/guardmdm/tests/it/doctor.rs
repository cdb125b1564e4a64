//! `GET /api/v1/doctor` and `guardmdm doctor`, each check against a deployment broken that
//! way: a plain-HTTP or unreachable public URL, an HTTPS front whose certificate is
//! untrusted (then trusted through the ADE profiles' anchors), names another host, expires
//! soon or has expired; no push certificate, one whose key does not match, APNs down; no ABM
//! entry, a pending one, a failed sync; a clock minutes off Apple's `Date`; migrations from
//! a newer GuardMDM; a dropped database. And a healthy deployment, where the CLI exits 0.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::{ADMIN_TOKEN, Backend, TestApp, run_cli};
use guardmdm_sim::Fault;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

async fn doctor(app: &TestApp) -> Value {
    let (status, report) = app.json(Method::GET, "/api/v1/doctor", None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

fn finding<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == check)
        .unwrap_or_else(|| panic!("no {check} finding in {report:#}"))
}

/// The status of `check`, asserting that anything not ok says what to do.
fn status(report: &Value, check: &str) -> String {
    let f = finding(report, check);
    let status = f["status"].as_str().unwrap().to_string();
    if status == "ok" {
        assert!(f["fix"].is_null(), "{f}");
    } else {
        assert!(!f["fix"].as_str().unwrap().is_empty(), "{f}");
    }
    status
}

fn summary(report: &Value, check: &str) -> String {
    finding(report, check)["summary"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A test CA and the certificates it signs for the HTTPS front.
struct Pki {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

impl Pki {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Doctor Test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { params, key, cert }
    }

    /// The CA as an ADE profile's `anchor_certs` carries it.
    fn anchor(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.cert.der())
    }

    /// A leaf for `names`, valid from `from` to `until` days from now: the chain (leaf, then
    /// this CA) and the leaf's key.
    fn issue(
        &self,
        names: &[&str],
        from: i64,
        until: i64,
    ) -> (Vec<rcgen::Certificate>, rcgen::KeyPair) {
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(ToString::to_string).collect::<Vec<_>>(),
        )
        .unwrap();
        let now = OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(from);
        params.not_after = now + time::Duration::days(until);
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let leaf = params.signed_by(&key, &issuer).unwrap();
        (vec![leaf, self.cert.clone()], key)
    }

    /// A server config presenting a leaf for `names`, valid from `from` to `until` days from
    /// now, with this CA after it.
    fn server(&self, names: &[&str], from: i64, until: i64) -> Arc<rustls::ServerConfig> {
        let (chain, key) = self.issue(names, from, until);
        let chain = chain.iter().map(|c| c.der().clone()).collect();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
        )
    }
}

/// A TLS-terminating front (as a reverse proxy would be) answering `/healthz` with 200,
/// whose certificate a test can change.
struct Front {
    addr: SocketAddr,
    config: Arc<Mutex<Arc<rustls::ServerConfig>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Front {
    async fn start(config: Arc<rustls::ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Arc::new(Mutex::new(config));
        let current = config.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let config = current.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                    else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0_u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = r#"{"status":"ok"}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self { addr, config, task }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    fn serve(&self, config: Arc<rustls::ServerConfig>) {
        *self.config.lock().unwrap() = config;
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_fresh_server_says_what_blocks_enrollment() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;

        // Admin or API token only.
        let anonymous = app
            .http
            .get(app.url("/api/v1/doctor"))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

        let report = doctor(&app).await;
        // The test server's public URL is https://mdm.guardmdm.test, which resolves nowhere.
        assert_eq!(status(&report, "public_url"), "ok");
        assert_eq!(status(&report, "public_url.reachable"), "blocking");
        assert!(summary(&report, "public_url.reachable").contains("/healthz"));
        // It serves plain HTTP itself (HTTPS is a proxy's job then).
        assert_eq!(status(&report, "tls"), "ok");
        assert_eq!(status(&report, "push_certificate"), "blocking");
        assert_eq!(status(&report, "apns"), "warning");
        assert_eq!(status(&report, "abm"), "blocking");
        assert_eq!(status(&report, "clock"), "ok");
        assert_eq!(status(&report, "scep_ca"), "ok");
        assert!(summary(&report, "scep_ca").contains("valid until"));
        assert_eq!(status(&report, "database"), "ok");
        assert_eq!(status(&report, "migrations"), "ok");
        assert!(summary(&report, "disk").contains("data dir"));
        let blocking = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["status"] == "blocking")
            .count();
        assert_eq!(report["blocking"], blocking);
        assert!(blocking >= 3, "{report:#}");

        // A pending ABM entry blocks (its devices get no profile); a failed sync warns.
        app.create_entry("main").await;
        let report = doctor(&app).await;
        assert_eq!(status(&report, "abm:main"), "blocking");
        assert!(summary(&report, "abm:main").contains("No server token"));
        app.stop().await;
    }
}

#[tokio::test]
async fn a_plain_http_public_url_blocks() {
    let app =
        TestApp::spawn_reachable(Backend::Sqlite, &["--log-format".into(), "text".into()]).await;
    let report = doctor(&app).await;
    assert_eq!(status(&report, "public_url"), "blocking");
    assert!(summary(&report, "public_url").contains("plain http"));
    assert!(
        finding(&report, "public_url")["fix"]
            .as_str()
            .unwrap()
            .contains("--tls-cert")
    );
    // Nothing else about the public URL is checked then.
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["check"] != "public_url.reachable")
    );
    app.stop().await;
}

#[tokio::test]
async fn the_public_urls_certificate_trust_names_and_expiry() {
    let pki = Pki::new();
    let front = Front::start(pki.server(&["localhost"], -1, 90)).await;
    for backend in common::backends() {
        let app = TestApp::spawn_reachable(backend, &["--public-url".into(), front.url()]).await;

        // A private CA: reachable, right name, valid, but devices do not trust it.
        front.serve(pki.server(&["localhost"], -1, 90));
        let report = doctor(&app).await;
        assert_eq!(status(&report, "public_url.reachable"), "ok");
        assert_eq!(status(&report, "public_url.trust"), "blocking");
        assert!(
            finding(&report, "public_url.trust")["fix"]
                .as_str()
                .unwrap()
                .contains("anchor_certs")
        );
        assert_eq!(status(&report, "public_url.names"), "ok");
        assert_eq!(status(&report, "public_url.expiry"), "ok");

        // Every ADE profile carries the CA as an anchor: trusted.
        let (code, body) = app
            .json(
                Method::POST,
                "/api/v1/profiles",
                Some(json!({ "name": "phones", "anchor_certs": [pki.anchor()] })),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let report = doctor(&app).await;
        assert_eq!(status(&report, "public_url.trust"), "ok");
        assert!(summary(&report, "public_url.trust").contains("phones"));

        // A profile without it: devices given that one refuse the server.
        let (code, body) = app
            .json(
                Method::POST,
                "/api/v1/profiles",
                Some(json!({ "name": "macs" })),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let report = doctor(&app).await;
        assert_eq!(status(&report, "public_url.trust"), "warning");
        assert!(
            finding(&report, "public_url.trust")["fix"]
                .as_str()
                .unwrap()
                .contains("macs")
        );

        // Another host's certificate.
        front.serve(pki.server(&["mdm.example.com"], -1, 90));
        let report = doctor(&app).await;
        assert_eq!(status(&report, "public_url.names"), "blocking");
        assert!(summary(&report, "public_url.names").contains("mdm.example.com"));

        // Expiring, then expired.
        front.serve(pki.server(&["localhost"], -60, 10));
        let report = doctor(&app).await;
        assert_eq!(status(&report, "public_url.expiry"), "warning");
        front.serve(pki.server(&["localhost"], -60, -1));
        let report = doctor(&app).await;
        assert_eq!(status(&report, "public_url.expiry"), "blocking");
        assert!(summary(&report, "public_url.expiry").contains("expired"));
        app.stop().await;
    }
}

#[tokio::test]
async fn push_certificate_apns_abm_and_clock() {
    for backend in common::backends() {
        let mdm = common::mdm::setup(backend).await;
        let app = &mdm.app;
        let report = doctor(app).await;
        assert_eq!(status(&report, "push_certificate"), "ok");
        assert!(summary(&report, "push_certificate").contains(common::mdm::TOPIC));
        assert_eq!(status(&report, "apns"), "ok");
        assert_eq!(status(&report, "clock"), "ok");

        // The entry has a valid token; once synced it is fine.
        assert_eq!(app.sync("main", false).await["outcome"], "succeeded");
        let report = doctor(app).await;
        assert_eq!(status(&report, "abm:main"), "ok");

        // A failed sync warns, with Apple's error.
        app.abm
            .sim
            .inject_fault(Fault::Status {
                status: 503,
                count: 20,
                retry_after: None,
                path: None,
            })
            .unwrap();
        assert_eq!(app.sync("main", false).await["outcome"], "failed");
        app.abm.sim.clear_faults();
        let report = doctor(app).await;
        assert_eq!(status(&report, "abm:main"), "warning");
        assert!(summary(&report, "abm:main").contains("failed"));

        // Apple's clock 2 minutes ahead: a warning; 10 minutes: blocking, with the reason.
        app.abm.sim.advance_clock(Duration::from_secs(120));
        let report = doctor(app).await;
        assert_eq!(status(&report, "clock"), "warning");
        app.abm.sim.advance_clock(Duration::from_secs(480));
        let report = doctor(app).await;
        assert_eq!(status(&report, "clock"), "blocking");
        assert!(summary(&report, "clock").contains("behind"));
        assert!(summary(&report, "clock").contains("OAuth"));

        // APNs gone.
        let endpoint = mdm.apns.base_url();
        mdm.apns.stop().await.unwrap();
        let report = doctor(app).await;
        assert_eq!(status(&report, "apns"), "blocking");
        assert!(summary(&report, "apns").contains(&endpoint));

        // A stored push certificate whose key is not its own.
        let store = app.store().await;
        let secrets = guardmdm_crypto::SecretKey::from_base64(&app.secret_key()).unwrap();
        let cert =
            guardmdm_crypto::PushCertificate::generate_self_signed(common::mdm::TOPIC).unwrap();
        let other =
            guardmdm_crypto::PushCertificate::generate_self_signed(common::mdm::TOPIC).unwrap();
        let pem = |p: &guardmdm_crypto::PushCertificate| p.identity_pem().to_string();
        let split = |s: &str| s.find("-----BEGIN PRIVATE KEY-----").unwrap();
        let (mine, theirs) = (pem(&cert), pem(&other));
        let mismatched = format!("{}{}", &mine[..split(&mine)], &theirs[split(&theirs)..]);
        let sealed = secrets.seal(mismatched.as_bytes(), "apns").unwrap();
        store
            .put_secret(
                "apns",
                &sealed,
                &guardmdm_store::NewAuditEvent {
                    at: guardmdm_store::now(),
                    actor: "test".into(),
                    action: "apns.upload".into(),
                    target: "apns:test".into(),
                    details: json!({}),
                },
            )
            .await
            .unwrap();
        let report = doctor(app).await;
        assert_eq!(status(&report, "push_certificate"), "blocking");
        drop(mdm.app);
    }
}

#[tokio::test]
async fn migrations_from_a_newer_guardmdm_and_a_dropped_database() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                      VALUES (99990101000000, 'from a newer GuardMDM', TRUE, '00', 0)";
        match &app.database_url {
            None => {
                let path = app.dir.path().join("data/guardmdm.db");
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                sqlx::query(insert).execute(&pool).await.unwrap();
                pool.close().await;
            }
            Some(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(
                    insert.replace("'00'", "'\\x00'::bytea"),
                ))
                .execute(&pool)
                .await
                .unwrap();
                pool.close().await;
            }
        }
        let report = doctor(&app).await;
        assert_eq!(status(&report, "database"), "ok");
        assert_eq!(status(&report, "migrations"), "blocking");
        assert!(summary(&report, "migrations").contains("99990101000000"));
        assert!(
            finding(&report, "migrations")["fix"]
                .as_str()
                .unwrap()
                .contains("Upgrade")
        );

        // PostgreSQL: the database dropped under the server.
        if let Some(url) = &app.database_url {
            let name = url.rsplit('/').next().unwrap().to_string();
            let admin = sqlx::PgPool::connect(&common::pg_admin_url().unwrap())
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE \"{name}\" WITH (FORCE)"
            )))
            .execute(&admin)
            .await
            .unwrap();
            let report = doctor(&app).await;
            assert_eq!(status(&report, "database"), "blocking");
            assert!(
                report["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|f| f["check"] != "migrations"),
                "{report:#}"
            );
        }
        drop(app);
    }
}

#[tokio::test]
async fn the_cli_exits_zero_only_when_nothing_blocks() {
    let pki = Pki::new();
    let front = Front::start(pki.server(&["localhost"], -1, 90)).await;
    let url = front.url();
    let mdm = common::mdm::setup_with(Backend::Sqlite, &["--public-url", &url]).await;
    let app = &mdm.app;
    let cwd = tempfile::tempdir().unwrap();

    // The profile carries the CA, the entry has synced: nothing blocks.
    let (code, body) = app
        .json(
            Method::PUT,
            "/api/v1/profiles/phones",
            Some(json!({
                "name": "phones",
                "await_device_configured": true,
                "anchor_certs": [pki.anchor()],
            })),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(app.sync("main", false).await["outcome"], "succeeded");
    let out = run_cli(app, Some(ADMIN_TOKEN), cwd.path(), &["doctor"]).await;
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("Nothing blocks enrollment"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("push_certificate"), "{}", out.stdout);
    let out = run_cli(app, Some(ADMIN_TOKEN), cwd.path(), &["doctor", "--json"]).await;
    assert!(out.ok, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["blocking"], 0, "{report:#}");

    // An untrusted certificate blocks: exit status 1, the finding and its fix in the table.
    front.serve(Pki::new().server(&["localhost"], -1, 90));
    let out = run_cli(app, Some(ADMIN_TOKEN), cwd.path(), &["doctor"]).await;
    assert!(!out.ok);
    assert!(
        out.stdout.contains("BLOCKING  public_url.trust"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("-> "), "{}", out.stdout);
    assert!(out.stderr.contains("block enrollment"), "{}", out.stderr);
    let out = run_cli(app, Some(ADMIN_TOKEN), cwd.path(), &["doctor", "--json"]).await;
    assert!(!out.ok);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status(&report, "public_url.trust"), "blocking");

    // A refused token and no token are blocking findings with what to do.
    let out = run_cli(
        app,
        Some("not-the-token-0123456789"),
        cwd.path(),
        &["doctor", "--json"],
    )
    .await;
    assert!(!out.ok);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status(&report, "server"), "blocking");
    assert!(summary(&report, "server").contains("refused the API token"));
    let out = run_cli(app, None, cwd.path(), &["doctor"]).await;
    assert!(!out.ok);
    assert!(out.stdout.contains("GUARDMDM_API_TOKEN"), "{}", out.stdout);

    // No server there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardmdm"))
        .args(["doctor", "--json"])
        .env("GUARDMDM_URL", &nowhere)
        .env("GUARDMDM_API_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status(&report, "server"), "blocking");
    assert!(summary(&report, "server").contains("Cannot reach GuardMDM"));
}

#[tokio::test]
async fn settings_health_shows_the_same_findings() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let anonymous = common::web::WebClient::new(&app)
            .get("/settings/health")
            .await;
        assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
        assert!(anonymous.location().starts_with("/signin?next="));

        common::web::create_admin(&app, "ada", common::web::PASSWORD).await;
        let web = common::web::WebClient::signed_in(&app, "ada").await;
        let page = web.get("/settings/health").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("<h1>Health</h1>"));
        assert!(page.body.contains("Devices cannot enroll yet"));
        assert!(
            page.body
                .contains(r#"<a href="/settings/health" aria-current="page">"#)
        );
        let report = doctor(&app).await;
        for f in report["findings"].as_array().unwrap() {
            let check = f["check"].as_str().unwrap();
            assert!(
                page.body.contains(&format!(r#"<tr id="check-{check}">"#)),
                "{check} missing"
            );
        }
        assert!(page.body.contains("No MDM push certificate"));
        assert!(page.body.contains("guardmdm apns upload"));
        // The nav leads there from every page.
        let devices = web.get("/devices").await;
        assert!(devices.body.contains(r#"href="/settings/health""#));
        app.stop().await;
    }
}

#[tokio::test]
async fn this_instances_own_https_certificate() {
    let pki = Pki::new();
    let files = tempfile::tempdir().unwrap();
    let (chain, key) = pki.issue(&["localhost"], -80, 10);
    let cert_file = files.path().join("cert.pem");
    let key_file = files.path().join("key.pem");
    std::fs::write(
        &cert_file,
        chain
            .iter()
            .map(rcgen::Certificate::pem)
            .collect::<String>(),
    )
    .unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    for backend in common::backends() {
        let app = TestApp::spawn_reachable(
            backend,
            &[
                "--tls-cert".into(),
                cert_file.to_str().unwrap().into(),
                "--tls-key".into(),
                key_file.to_str().unwrap().into(),
            ],
        )
        .await;
        // The listener speaks HTTPS now; its certificate is not what this check is about.
        let https = app
            .client_builder()
            .resolve(common::tls::HOST, app.server().addr)
            .tls_danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let report: Value = https
            .get(format!("{}/api/v1/doctor", app.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status(&report, "tls"), "warning");
        assert!(summary(&report, "tls").contains("expires in"), "{report:#}");
        app.stop().await;
    }
}

#[tokio::test]
async fn an_expired_scep_ca_blocks() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        // A CA that expired yesterday, stored before the server first needs its CA.
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "GuardMDM Device CA");
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(3650);
        params.not_after = now - time::Duration::days(1);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pair = json!({ "certificate_pem": cert.pem(), "key_pem": key.serialize_pem() });
        let secrets = guardmdm_crypto::SecretKey::from_base64(&app.secret_key()).unwrap();
        let sealed = secrets
            .seal(pair.to_string().as_bytes(), "scep_ca")
            .unwrap();
        let store = app.store().await;
        assert_eq!(store.init_secret("scep_ca", &sealed).await.unwrap(), sealed);
        let report = doctor(&app).await;
        assert_eq!(status(&report, "scep_ca"), "blocking");
        assert!(
            summary(&report, "scep_ca").contains("expired"),
            "{report:#}"
        );
        app.stop().await;
    }
}

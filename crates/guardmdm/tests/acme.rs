//! `serve --acme` against pebble, Let's Encrypt's ACME test server, for real: the
//! certificate is issued over TLS-ALPN-01 on the server's own listener and served, renewed
//! without dropping connections, picked up by a second instance on the same database without
//! a second order, answered by whichever instance the CA reaches, re-ordered with a new
//! account when the CA forgot the old one, and a failed challenge is reported with the CA's
//! words.
//!
//! Each test runs its own `pebble` (its `tlsPort` is the server's port) and a
//! `pebble-challtestsrv` as its DNS server answering 127.0.0.1 for every name. Without them
//! (`apt-get install pebble`) the tests say SKIPPED and pass, unless
//! `GUARDMDM_REQUIRE_PEBBLE=1` (set by `.ci/run`) makes that a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::{ADMIN_TOKEN, Backend, backends, pg_admin_url};
use guardmdm::config::{ServeArgs, Settings};
use guardmdm::server::RunningServer;
use guardmdm_service::tls_status::{TlsHealthState, TlsState, tls_health};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DOMAIN: &str = "mdm.guardmdm.test";
/// Generous: a safety net, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(90);

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: ServeArgs,
}

/// Whether pebble is installed; panics when it is required and missing.
fn pebble_installed() -> bool {
    let found = ["pebble", "pebble-challtestsrv"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !found {
        assert!(
            std::env::var("GUARDMDM_REQUIRE_PEBBLE").as_deref() != Ok("1"),
            "pebble is required (GUARDMDM_REQUIRE_PEBBLE=1): apt-get install pebble"
        );
        eprintln!("SKIPPED: pebble is not installed (apt-get install pebble)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running pebble and its DNS server, stopped on drop.
struct Pebble {
    children: Vec<Child>,
    dir: tempfile::TempDir,
    directory: String,
    management: String,
    dns_port: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Pebble {
    /// Pebble validating TLS-ALPN-01 on `tls_port`, issuing certificates valid for
    /// `validity_secs` (its default, about 5 years, when `None`).
    async fn start(tls_port: u16, validity_secs: Option<u64>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Pebble's own HTTPS (directory and management API) with a CA made here.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble API test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let leaf = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.path().join("api-ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("api.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("api-key.pem"), key.serialize_pem()).unwrap();

        let (acme_port, mgmt_port, dns_port, dns_mgmt_port, http_port) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
                "certificate": dir.path().join("api.pem"),
                "privateKey": dir.path().join("api-key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(secs) = validity_secs {
            config["pebble"]["certificateValidityPeriod"] = secs.into();
        }
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args([
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{dns_mgmt_port}"),
            ])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .unwrap();
        let mut me = Self {
            children: vec![dns],
            dir,
            directory: format!("https://127.0.0.1:{acme_port}/dir"),
            management: format!("https://127.0.0.1:{mgmt_port}"),
            dns_port,
        };
        me.spawn_ca().await;
        me
    }

    /// Starts pebble itself (the CA keeps its state in memory: a new run knows no accounts
    /// and issues under new roots).
    async fn spawn_ca(&mut self) {
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(name))
                .unwrap()
        };
        let pebble = Command::new("pebble")
            .args([
                "-config",
                self.dir.path().join("pebble.json").to_str().unwrap(),
            ])
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Every order validates afresh, renewals included.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .unwrap();
        self.children.push(pebble);
        let client = self.api_client();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if client
                .get(&self.directory)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pebble did not start: {}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops pebble and starts it again on the same ports.
    async fn restart_ca(&mut self) {
        let mut old = self.children.pop().unwrap();
        old.kill().unwrap();
        old.wait().unwrap();
        self.spawn_ca().await;
    }

    fn api_ca(&self) -> PathBuf {
        self.dir.path().join("api-ca.pem")
    }

    fn api_client(&self) -> reqwest::Client {
        let ca = std::fs::read(self.api_ca()).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap()
    }

    /// The root pebble issues certificates under (a new one per pebble run).
    async fn issuing_root(&self) -> Vec<u8> {
        self.api_client()
            .get(format!("{}/roots/0", self.management))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    fn logs(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|f| {
                format!(
                    "--- {f}\n{}",
                    std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default()
                )
            })
            .collect()
    }
}

/// A `serve --acme` instance.
struct Instance {
    server: RunningServer,
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
}

impl Instance {
    async fn start(
        listener: TcpListener,
        pebble: &Pebble,
        database_url: Option<&str>,
        secret_key: Option<String>,
    ) -> Self {
        Self::start_polling(listener, pebble, database_url, secret_key, "200ms").await
    }

    async fn start_polling(
        listener: TcpListener,
        pebble: &Pebble,
        database_url: Option<&str>,
        secret_key: Option<String>,
        poll_interval: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut argv = vec![
            "serve".to_string(),
            "--data-dir".into(),
            data_dir.to_str().unwrap().into(),
            "--admin-token".into(),
            ADMIN_TOKEN.into(),
            "--metrics-listen".into(),
            "off".into(),
            "--acme".into(),
            DOMAIN.into(),
            "--acme-email".into(),
            "admin@guardmdm.test".into(),
            "--acme-directory".into(),
            pebble.directory.clone(),
            "--acme-ca-file".into(),
            pebble.api_ca().to_str().unwrap().into(),
            "--acme-poll-interval".into(),
            poll_interval.into(),
        ];
        if let Some(url) = database_url {
            argv.extend(["--database-url".into(), url.to_string()]);
        }
        if let Some(key) = secret_key {
            argv.extend(["--secret-key".into(), key]);
        }
        let settings = Settings::from_args(Wrapper::parse_from(argv).args).unwrap();
        let server = guardmdm::server::start(settings, listener).await.unwrap();
        Self {
            server,
            _dir: dir,
            data_dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn tls(&self) -> TlsState {
        self.server.tls_status().snapshot()
    }

    fn secret_key(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("secret.key"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Waits until `check` holds for the TLS state.
    async fn wait_for(&self, what: &str, pebble: &Pebble, check: impl Fn(&TlsState) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let state = self.tls();
            if check(&state) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not reached; TLS state {state:?}\n{}",
                pebble.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.server.shutdown();
        self.server.wait().await.unwrap();
    }
}

async fn database_for(backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(
            guardmdm_store_postgres::testing::fresh_database(&pg_admin_url().unwrap())
                .await
                .unwrap(),
        ),
    }
}

/// A client that trusts only `root` and finds `DOMAIN` at `addr`.
fn https_client(root: &[u8], addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(root).unwrap()])
        .resolve(DOMAIN, addr)
        .build()
        .unwrap()
}

fn fingerprint(state: &TlsState) -> Option<String> {
    state.certificate.as_ref().map(|c| c.fingerprint.clone())
}

async fn audit_count(store: &dyn guardmdm_store::Store, action: &str) -> usize {
    store
        .list_audit(1000, None)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == action)
        .count()
}

#[tokio::test]
async fn a_certificate_is_issued_served_and_shared_with_a_second_instance() {
    if !pebble_installed() {
        return;
    }
    for backend in backends() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pebble = Pebble::start(listener.local_addr().unwrap().port(), None).await;
        let database_url = database_for(backend).await;
        let first = Instance::start(listener, &pebble, database_url.as_deref(), None).await;

        // Until the first certificate exists there is none to serve: handshakes fail, and
        // the status says so. (The order takes at least a poll interval, so this runs
        // before it; the checks hold either way.)
        let root = pebble.issuing_root().await;
        let url = format!("https://{DOMAIN}:{}/healthz", first.addr().port());
        let before = first.tls();
        if before.certificate.is_none() {
            let health = tls_health(&before, time::OffsetDateTime::now_utc()).unwrap();
            assert_eq!(health.state, TlsHealthState::Missing, "{backend:?}");
            let attempt = https_client(&root, first.addr()).get(&url).send().await;
            if first.tls().certificate.is_none() {
                assert!(attempt.is_err(), "no certificate yet: {attempt:?}");
            }
        }

        first
            .wait_for("the first certificate", &pebble, |s| {
                s.certificate.is_some()
            })
            .await;
        let state = first.tls();
        let cert = state.certificate.clone().unwrap();
        assert_eq!(cert.names, vec![DOMAIN.to_string()]);
        assert_eq!(
            cert.source,
            guardmdm_service::tls_status::CertificateSource::Acme
        );
        assert_eq!(state.problem, None);
        let next = state.next_renewal.expect("the next renewal is known");
        assert!(
            next > cert.not_before && next < cert.not_after,
            "renewal {next} within the lifetime {} .. {}",
            cert.not_before,
            cert.not_after
        );
        assert_eq!(
            tls_health(&state, time::OffsetDateTime::now_utc())
                .unwrap()
                .state,
            TlsHealthState::Active
        );

        // A real HTTPS request, verified against pebble's issuing root only.
        let client = https_client(&root, first.addr());
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{backend:?}");

        // A second instance on the same PostgreSQL database serves the same certificate
        // without ordering one (its listener is not the one the CA validates, so an order
        // of its own would fail).
        if backend == Backend::Postgres {
            let second_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let second = Instance::start(
                second_listener,
                &pebble,
                database_url.as_deref(),
                Some(first.secret_key()),
            )
            .await;
            second
                .wait_for("the shared certificate", &pebble, |s| {
                    fingerprint(s) == Some(cert.fingerprint.clone())
                })
                .await;
            let client = https_client(&root, second.addr());
            let url = format!("https://{DOMAIN}:{}/healthz", second.addr().port());
            assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
            let store = guardmdm::server::open_store(&guardmdm::config::Database::Postgres(
                database_url.clone().unwrap(),
            ))
            .await
            .unwrap();
            assert_eq!(audit_count(store.as_ref(), "acme.order_started").await, 1);
            assert_eq!(
                audit_count(store.as_ref(), "acme.certificate_issued").await,
                1
            );
            assert_eq!(second.tls().problem, None);
            second.stop().await;
        }
        first.stop().await;
    }
    if pg_admin_url().is_none() {
        eprintln!(
            "SKIPPED (second instance): set GUARDMDM_TEST_DATABASE_URL to share a certificate between two instances on PostgreSQL"
        );
    }
}

#[tokio::test]
async fn the_instance_the_ca_reaches_answers_another_instances_challenge() {
    if !pebble_installed() {
        return;
    }
    let Some(admin_url) = pg_admin_url() else {
        eprintln!(
            "SKIPPED: set GUARDMDM_TEST_DATABASE_URL to run the two-instance ACME test on PostgreSQL"
        );
        return;
    };
    let database_url = guardmdm_store_postgres::testing::fresh_database(&admin_url)
        .await
        .unwrap();
    // The CA validates on B's port; A orders.
    let a_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pebble = Pebble::start(b_listener.local_addr().unwrap().port(), None).await;
    // A waits a poll interval (2 s) after publishing its challenge before the CA looks.
    let a = Instance::start_polling(a_listener, &pebble, Some(&database_url), None, "2s").await;
    let store =
        guardmdm::server::open_store(&guardmdm::config::Database::Postgres(database_url.clone()))
            .await
            .unwrap();
    let key = guardmdm_crypto::SecretKey::from_base64(&a.secret_key()).unwrap();
    let acme = guardmdm_service::acme::AcmeService::new(store.clone(), Arc::new(key));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while acme.order_state().await.unwrap().challenges.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A did not publish its challenge"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B starts only now (so A holds the lease), answers from the database at once.
    let b = Instance::start_polling(
        b_listener,
        &pebble,
        Some(&database_url),
        Some(a.secret_key()),
        "2s",
    )
    .await;
    a.wait_for("A's certificate", &pebble, |s| s.certificate.is_some())
        .await;
    let issued = a.tls().certificate.unwrap();
    b.wait_for("B serving A's certificate", &pebble, |s| {
        fingerprint(s) == Some(issued.fingerprint.clone())
    })
    .await;
    assert_eq!(audit_count(store.as_ref(), "acme.order_started").await, 1);
    assert_eq!(audit_count(store.as_ref(), "acme.order_failed").await, 0);
    let root = pebble.issuing_root().await;
    for instance in [&a, &b] {
        let url = format!("https://{DOMAIN}:{}/healthz", instance.addr().port());
        let client = https_client(&root, instance.addr());
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    }
    b.stop().await;
    a.stop().await;
}

/// One HTTP/1.1 request on an open connection; returns the status line.
async fn get_on<S: AsyncReadExt + AsyncWriteExt + Unpin>(stream: &mut S) -> String {
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "the connection closed mid-response");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head.lines().next().unwrap().to_string()
}

async fn tls_connect(root: &[u8], addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .unwrap()
}

fn peer_fingerprint(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let der = stream.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    guardmdm_crypto::Certificate::from_der(&der)
        .unwrap()
        .sha256_fingerprint()
        .to_string()
}

#[tokio::test]
async fn the_certificate_is_renewed_at_two_thirds_without_dropping_connections() {
    if !pebble_installed() {
        return;
    }
    let backend = Backend::Sqlite;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Certificates valid for 30 s: renewal is due after 20.
    let pebble = Pebble::start(listener.local_addr().unwrap().port(), Some(30)).await;
    let server = Instance::start(
        listener,
        &pebble,
        database_for(backend).await.as_deref(),
        None,
    )
    .await;
    server
        .wait_for("the first certificate", &pebble, |s| {
            s.certificate.is_some()
        })
        .await;
    let first = server.tls().certificate.unwrap();
    let due = server.tls().next_renewal.unwrap();
    let lifetime = first.not_after - first.not_before;
    assert_eq!(
        due,
        first.not_before + lifetime * 2 / 3,
        "renewal at two thirds of the lifetime"
    );

    let root = pebble.issuing_root().await;
    let mut open = tls_connect(&root, server.addr()).await;
    assert_eq!(peer_fingerprint(&open), first.fingerprint);
    assert_eq!(get_on(&mut open).await, "HTTP/1.1 200 OK");

    server
        .wait_for("the renewed certificate", &pebble, |s| {
            fingerprint(s).is_some_and(|f| f != first.fingerprint)
        })
        .await;
    let renewed = server.tls().certificate.unwrap();
    assert!(renewed.not_after > first.not_after);

    // The connection opened before the renewal still works; new ones get the new certificate.
    assert_eq!(get_on(&mut open).await, "HTTP/1.1 200 OK");
    let mut fresh = tls_connect(&root, server.addr()).await;
    let served = peer_fingerprint(&fresh);
    assert_ne!(served, first.fingerprint);
    assert_eq!(get_on(&mut fresh).await, "HTTP/1.1 200 OK");
    server.stop().await;
}

#[tokio::test]
async fn a_ca_that_forgot_the_account_gets_a_new_one_at_the_next_renewal() {
    if !pebble_installed() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut pebble = Pebble::start(listener.local_addr().unwrap().port(), Some(30)).await;
    let server = Instance::start(listener, &pebble, None, None).await;
    server
        .wait_for("the first certificate", &pebble, |s| {
            s.certificate.is_some()
        })
        .await;
    let first = server.tls().certificate.unwrap();
    pebble.restart_ca().await;
    server
        .wait_for("the renewed certificate", &pebble, |s| {
            fingerprint(s).is_some_and(|f| f != first.fingerprint)
        })
        .await;
    assert_eq!(server.tls().problem, None);
    // Issued by the new pebble run, under its new root.
    let root = pebble.issuing_root().await;
    let client = https_client(&root, server.addr());
    let url = format!("https://{DOMAIN}:{}/healthz", server.addr().port());
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    let store = guardmdm::server::open_store(&guardmdm::config::Database::Sqlite(
        server.data_dir.join("guardmdm.db"),
    ))
    .await
    .unwrap();
    assert_eq!(audit_count(store.as_ref(), "acme.account_create").await, 2);
    assert_eq!(audit_count(store.as_ref(), "acme.order_failed").await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_failed_challenge_is_reported_with_the_cas_words_and_retried_later() {
    if !pebble_installed() {
        return;
    }
    for backend in backends() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        // The CA validates on a port nothing listens on.
        let pebble = Pebble::start(free_port(), None).await;
        let database_url = database_for(backend).await;
        let server = Instance::start(listener, &pebble, database_url.as_deref(), None).await;
        server
            .wait_for("the problem", &pebble, |s| s.problem.is_some())
            .await;
        let state = server.tls();
        let problem = state.problem.clone().unwrap();
        assert!(
            problem.contains(&format!("could not validate {DOMAIN}")),
            "{problem}"
        );
        // Pebble's own words for a refused connection (Let's Encrypt's say "Connection
        // refused"), naming where it tried.
        assert!(
            problem.contains("Failed to connect to 127.0.0.1:") && problem.contains("tls-alpn-01"),
            "the CA's own words: {problem}"
        );
        assert_eq!(state.certificate, None);
        let health = tls_health(&state, time::OffsetDateTime::now_utc()).unwrap();
        assert_eq!(health.state, TlsHealthState::Missing);
        assert!(health.message.contains(&problem), "{}", health.message);
        // Retried after the back-off (a minute for the first failure), as stored in the
        // database for every instance.
        let store = match &database_url {
            Some(url) => guardmdm::config::Database::Postgres(url.clone()),
            None => guardmdm::config::Database::Sqlite(server.data_dir.join("guardmdm.db")),
        };
        let store = guardmdm::server::open_store(&store).await.unwrap();
        let key = guardmdm_crypto::SecretKey::from_base64(&server.secret_key()).unwrap();
        let acme = guardmdm_service::acme::AcmeService::new(store.clone(), Arc::new(key));
        let order = acme.order_state().await.unwrap();
        assert_eq!(order.failures, 1);
        assert_eq!(order.problem.as_deref(), Some(problem.as_str()));
        assert!(order.challenges.is_empty(), "the challenges are withdrawn");
        let retry = order.retry_at.expect("the retry time");
        assert_eq!(state.next_renewal, Some(retry));
        assert!(retry <= time::OffsetDateTime::now_utc() + time::Duration::minutes(1));
        assert_eq!(audit_count(store.as_ref(), "acme.order_failed").await, 1);
        server.stop().await;
    }
}

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

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;

use common::tls::{HOST, connect, healthz_on, reqwest_builder};
use common::{Backend, TestApp, backends, bind, eventually, eventually_or, free_port};
use guardmdm_service::tls_status::{TlsHealthState, TlsState, tls_health};
use tokio::net::TcpStream;

/// Whether pebble is installed; panics when it is required and missing.
fn pebble_installed() -> bool {
    common::require_tools(
        &["pebble", "pebble-challtestsrv"],
        "GUARDMDM_REQUIRE_PEBBLE",
        "apt-get install pebble",
    )
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
        let client = &self.api_client();
        let directory = &self.directory;
        eventually_or(
            || async {
                client
                    .get(directory)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
            || format!("pebble did not start: {}", self.logs()),
        )
        .await;
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

/// The `serve` flags of an instance ordering its certificate for [`HOST`] from `pebble`,
/// reading the database every `poll_interval`.
fn acme_flags(pebble: &Pebble, poll_interval: &str) -> Vec<String> {
    [
        "--acme",
        HOST,
        "--acme-email",
        "admin@guardmdm.test",
        "--acme-directory",
        &pebble.directory,
        "--acme-ca-file",
        pebble.api_ca().to_str().unwrap(),
        "--acme-poll-interval",
        poll_interval,
    ]
    .map(String::from)
    .to_vec()
}

/// The instance's TLS state now.
fn tls(app: &TestApp) -> TlsState {
    app.server().tls_status().snapshot()
}

/// Waits until `check` holds for `app`'s TLS state.
async fn wait_for(app: &TestApp, what: &str, pebble: &Pebble, check: impl Fn(&TlsState) -> bool) {
    eventually_or(
        || {
            let reached = check(&tls(app));
            async move { reached }
        },
        || {
            format!(
                "{what}: not reached; TLS state {:?}\n{}",
                tls(app),
                pebble.logs()
            )
        },
    )
    .await;
}

/// A client that trusts only `root` and finds [`HOST`] at `app`.
fn https_client(root: &[u8], app: &TestApp) -> reqwest::Client {
    reqwest_builder(root, app.server().addr).build().unwrap()
}

/// `https://mdm.guardmdm.test:PORT/healthz` of `app`.
fn healthz_url(app: &TestApp) -> String {
    format!("https://{HOST}:{}/healthz", app.server().addr.port())
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
        let listener = bind().await;
        let pebble = Pebble::start(listener.local_addr().unwrap().port(), None).await;
        // A 2 s poll interval: the instance waits 2.5 s after publishing its challenge before
        // the CA looks, so no certificate can exist during the checks right after the start.
        let first = TestApp::spawn_on(backend, listener, &acme_flags(&pebble, "2s")).await;

        // Until the first certificate exists there is none to serve: handshakes fail, and
        // the status says so.
        let root = pebble.issuing_root().await;
        let url = healthz_url(&first);
        let before = tls(&first);
        assert_eq!(before.certificate, None, "{backend:?}: no certificate yet");
        let health = tls_health(&before, time::OffsetDateTime::now_utc()).unwrap();
        assert_eq!(health.state, TlsHealthState::Missing, "{backend:?}");
        let attempt = https_client(&root, &first).get(&url).send().await;
        assert!(attempt.is_err(), "no certificate yet: {attempt:?}");
        assert_eq!(
            tls(&first).certificate,
            None,
            "{backend:?}: still no certificate after the attempt"
        );

        wait_for(&first, "the first certificate", &pebble, |s| {
            s.certificate.is_some()
        })
        .await;
        let state = tls(&first);
        let cert = state.certificate.clone().unwrap();
        assert_eq!(cert.names, vec![HOST.to_string()]);
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
        let client = https_client(&root, &first);
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{backend:?}");

        // A second instance on the same PostgreSQL database serves the same certificate
        // without ordering one (its listener is not the one the CA validates, so an order
        // of its own would fail).
        if backend == Backend::Postgres {
            let second = first
                .instance_on(bind().await, &acme_flags(&pebble, "200ms"))
                .await;
            wait_for(&second, "the shared certificate", &pebble, |s| {
                fingerprint(s) == Some(cert.fingerprint.clone())
            })
            .await;
            let client = https_client(&root, &second);
            assert_eq!(
                client
                    .get(healthz_url(&second))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                200
            );
            let store = first.store().await;
            assert_eq!(audit_count(store.as_ref(), "acme.order_started").await, 1);
            assert_eq!(
                audit_count(store.as_ref(), "acme.certificate_issued").await,
                1
            );
            assert_eq!(tls(&second).problem, None);
            second.stop().await;
        }
        first.stop().await;
    }
    if common::pg_admin_url().is_none() {
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
    if common::pg_or_skip("run the two-instance ACME test on PostgreSQL").is_none() {
        return;
    }
    // The CA validates on B's port; A orders.
    let a_listener = bind().await;
    let b_listener = bind().await;
    let pebble = Pebble::start(b_listener.local_addr().unwrap().port(), None).await;
    // A waits a poll interval (2 s) after publishing its challenge before the CA looks.
    let flags = acme_flags(&pebble, "2s");
    let a = TestApp::spawn_on(Backend::Postgres, a_listener, &flags).await;
    let store = a.store().await;
    let key = guardmdm_crypto::SecretKey::from_base64(&a.secret_key()).unwrap();
    let acme = &guardmdm_service::acme::AcmeService::new(store.clone(), Arc::new(key));
    eventually("A publishes its challenge", || async {
        !acme.order_state().await.unwrap().challenges.is_empty()
    })
    .await;
    // B starts only now (so A holds the lease), answers from the database at once.
    let b = a.instance_on(b_listener, &flags).await;
    wait_for(&a, "A's certificate", &pebble, |s| s.certificate.is_some()).await;
    let issued = tls(&a).certificate.unwrap();
    wait_for(&b, "B serving A's certificate", &pebble, |s| {
        fingerprint(s) == Some(issued.fingerprint.clone())
    })
    .await;
    assert_eq!(audit_count(store.as_ref(), "acme.order_started").await, 1);
    assert_eq!(audit_count(store.as_ref(), "acme.order_failed").await, 0);
    let root = pebble.issuing_root().await;
    for instance in [&a, &b] {
        let client = https_client(&root, instance);
        assert_eq!(
            client
                .get(healthz_url(instance))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    b.stop().await;
    a.stop().await;
}

fn peer_fingerprint(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> String {
    guardmdm_crypto::Certificate::from_der(&common::tls::presented(stream))
        .unwrap()
        .sha256_fingerprint()
        .to_string()
}

#[tokio::test]
async fn the_certificate_is_renewed_at_two_thirds_without_dropping_connections() {
    if !pebble_installed() {
        return;
    }
    let listener = bind().await;
    // Certificates valid for 30 s: renewal is due after 20.
    let pebble = Pebble::start(listener.local_addr().unwrap().port(), Some(30)).await;
    let server = TestApp::spawn_on(Backend::Sqlite, listener, &acme_flags(&pebble, "200ms")).await;
    wait_for(&server, "the first certificate", &pebble, |s| {
        s.certificate.is_some()
    })
    .await;
    let first = tls(&server).certificate.unwrap();
    let due = tls(&server).next_renewal.unwrap();
    let lifetime = first.not_after - first.not_before;
    assert_eq!(
        due,
        first.not_before + lifetime * 2 / 3,
        "renewal at two thirds of the lifetime"
    );

    let root = pebble.issuing_root().await;
    let addr = server.server().addr;
    let mut open = connect(&root, addr).await;
    assert_eq!(peer_fingerprint(&open), first.fingerprint);
    assert_eq!(healthz_on(&mut open).await, "HTTP/1.1 200 OK");

    wait_for(&server, "the renewed certificate", &pebble, |s| {
        fingerprint(s).is_some_and(|f| f != first.fingerprint)
    })
    .await;
    let renewed = tls(&server).certificate.unwrap();
    assert!(renewed.not_after > first.not_after);

    // The connection opened before the renewal still works; new ones get the new certificate.
    assert_eq!(healthz_on(&mut open).await, "HTTP/1.1 200 OK");
    let mut fresh = connect(&root, addr).await;
    let served = peer_fingerprint(&fresh);
    assert_ne!(served, first.fingerprint);
    assert_eq!(healthz_on(&mut fresh).await, "HTTP/1.1 200 OK");
    server.stop().await;
}

#[tokio::test]
async fn a_ca_that_forgot_the_account_gets_a_new_one_at_the_next_renewal() {
    if !pebble_installed() {
        return;
    }
    let listener = bind().await;
    let mut pebble = Pebble::start(listener.local_addr().unwrap().port(), Some(30)).await;
    let server = TestApp::spawn_on(Backend::Sqlite, listener, &acme_flags(&pebble, "200ms")).await;
    wait_for(&server, "the first certificate", &pebble, |s| {
        s.certificate.is_some()
    })
    .await;
    let first = tls(&server).certificate.unwrap();
    pebble.restart_ca().await;
    wait_for(&server, "the renewed certificate", &pebble, |s| {
        fingerprint(s).is_some_and(|f| f != first.fingerprint)
    })
    .await;
    assert_eq!(tls(&server).problem, None);
    // Issued by the new pebble run, under its new root.
    let root = pebble.issuing_root().await;
    let client = https_client(&root, &server);
    assert_eq!(
        client
            .get(healthz_url(&server))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let store = server.store().await;
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
        let listener = bind().await;
        // The CA validates on a port nothing listens on.
        let pebble = Pebble::start(free_port(), None).await;
        let server = TestApp::spawn_on(backend, listener, &acme_flags(&pebble, "200ms")).await;
        wait_for(&server, "the problem", &pebble, |s| s.problem.is_some()).await;
        let state = tls(&server);
        let problem = state.problem.clone().unwrap();
        assert!(
            problem.contains(&format!("could not validate {HOST}")),
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
        let store = server.store().await;
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

//! HTTPS from `--tls-cert`/`--tls-key` over real sockets: HTTP/1.1 and HTTP/2 with a test CA
//! (root → intermediate → server certificate); certificate files replaced the way certbot and
//! acme.sh do it, picked up by new connections while open ones keep going; the reload handle
//! and the real SIGHUP on the real binary; a broken replacement kept out, reported (status,
//! log, dashboard banner) and cleared by a good one; a client that never handshakes closed
//! after the header read timeout; plain HTTP on the TLS port answered, not left hanging; and
//! start-up refused, with the reason, for an unusable pair.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use common::tls::{HOST, Pki, ServerCert, healthz_on, install, paths, presented, replace};
use common::web::{WebClient, create_admin};
use common::{ADMIN_TOKEN, Backend, PATIENCE, TestApp, backends, eventually};
use guardmdm::tls_files::Reload;
use reqwest::{StatusCode, Version};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::process::Command;

/// `--tls-cert`/`--tls-key` flags for the files in `dir`.
fn tls_flags(dir: &Path) -> Vec<String> {
    let (cert, key) = paths(dir);
    vec![
        "--tls-cert".into(),
        cert.to_str().unwrap().into(),
        "--tls-key".into(),
        key.to_str().unwrap().into(),
    ]
}

/// A server on `backend` serving `cert` from files in `dir`, with `extra` flags.
async fn spawn(
    backend: Backend,
    pki: &Pki,
    dir: &Path,
    cert: &ServerCert,
    extra: &[&str],
) -> TestApp {
    install(dir, cert);
    let mut flags = tls_flags(dir);
    flags.extend(extra.iter().map(|s| (*s).to_string()));
    TestApp::spawn_tls(backend, pki, &flags).await
}

/// The certificate a new connection to `addr` is served.
async fn served_to_new_connections(pki: &Pki, addr: SocketAddr) -> Vec<u8> {
    presented(&pki.connect(addr).await).to_vec()
}

#[tokio::test]
async fn https_over_http1_and_http2_with_the_certificate_in_the_metrics() {
    for backend in backends() {
        let pki = Pki::new();
        let dir = tempfile::tempdir().unwrap();
        let cert = pki.issue(90);
        let app = spawn(backend, &pki, dir.path(), &cert, &[]).await;
        assert!(app.base.starts_with("https://"), "{}", app.base);

        let h1 = app.client_builder().http1_only().build().unwrap();
        let resp = h1.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{backend:?}");
        assert_eq!(resp.version(), Version::HTTP_11);
        let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), Version::HTTP_2, "h2 over ALPN");
        // The API over HTTPS, with the admin token.
        app.create_entry("main").await;
        let resp = app
            .http
            .get(app.url("/api/v1/abm/tokens/main/public-key"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), Version::HTTP_2);

        let metrics = app.metrics().await;
        let line = format!(
            "guardmdm_tls_certificate_expiry_timestamp_seconds{{source=\"files\"}} {}",
            cert.not_after.unix_timestamp()
        );
        assert!(metrics.contains(&line), "{line}\n{metrics}");
        let snapshot = app.server().tls_status().snapshot();
        assert_eq!(snapshot.certificate.unwrap().names, vec![HOST]);
        assert_eq!(snapshot.problem, None);

        // Plain HTTP on the HTTPS port: answered at once with what to do, not left hanging.
        let plain = reqwest::Client::new()
            .get(format!("http://{}/healthz", app.server().addr))
            .timeout(PATIENCE)
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
        assert!(plain.text().await.unwrap().contains("use https://"));
        app.stop().await;
    }
    // Behind a proxy (no TLS) there is no certificate to report.
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert!(!app.metrics().await.contains("guardmdm_tls_"));
}

#[tokio::test]
async fn a_replaced_certificate_reaches_new_connections_while_open_ones_keep_working() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let old = pki.issue(90);
    let app = spawn(Backend::Sqlite, &pki, dir.path(), &old, &[]).await;
    let addr = app.server().addr;
    let mut open = pki.connect(addr).await;
    assert_eq!(presented(&open), old.leaf_der);
    assert!(healthz_on(&mut open).await.contains("200"));

    // Renewed on disk, certificate first: the poll picks it up without any signal.
    let new = pki.issue(120);
    install(dir.path(), &new);
    eventually("new connections get the new certificate", || async {
        served_to_new_connections(&pki, addr).await == new.leaf_der.to_vec()
    })
    .await;
    // The connection opened before keeps working, on the certificate it started with.
    assert!(healthz_on(&mut open).await.contains("200"));
    assert_eq!(presented(&open), old.leaf_der);
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let snapshot = app.server().tls_status().snapshot();
    assert_eq!(snapshot.certificate.unwrap().not_after, new.not_after);
    assert_eq!(snapshot.problem, None);
    let line = format!(
        "guardmdm_tls_certificate_expiry_timestamp_seconds{{source=\"files\"}} {}",
        new.not_after.unix_timestamp()
    );
    assert!(app.metrics().await.contains(&line));
}

#[tokio::test]
async fn the_reload_handle_takes_the_files_at_once_and_reports_a_bad_pair_at_once() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let old = pki.issue(90);
    let app = spawn(Backend::Sqlite, &pki, dir.path(), &old, &[]).await;
    let addr = app.server().addr;

    let new = pki.issue(100);
    install(dir.path(), &new);
    let Some(Reload::Replaced(served)) = app.server().reload_tls().await else {
        panic!("a good pair is taken");
    };
    assert_eq!(served.not_after, new.not_after);
    assert_eq!(
        served_to_new_connections(&pki, addr).await,
        new.leaf_der.to_vec()
    );

    // A key of another certificate: refused at once, naming both files.
    let (cert_path, key_path) = paths(dir.path());
    replace(&key_path, &pki.issue(90).key_pem);
    let Some(Reload::Rejected(message)) = app.server().reload_tls().await else {
        panic!("a key that does not fit is refused");
    };
    assert!(message.contains("does not fit"), "{message}");
    assert!(message.contains(key_path.to_str().unwrap()), "{message}");
    assert!(message.contains(cert_path.to_str().unwrap()), "{message}");
    assert_eq!(app.server().tls_status().snapshot().problem, Some(message));
    assert_eq!(
        served_to_new_connections(&pki, addr).await,
        new.leaf_der.to_vec()
    );

    // Without TLS files there is nothing to reload.
    let plain = TestApp::spawn(Backend::Sqlite).await;
    assert!(plain.server().reload_tls().await.is_none());
}

#[tokio::test]
async fn a_broken_replacement_keeps_the_old_certificate_and_is_reported_until_a_good_one_comes() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let old = pki.issue(90);
    let app = spawn(Backend::Sqlite, &pki, dir.path(), &old, &[]).await;
    let addr = app.server().addr;
    create_admin(&app, "alice", common::web::PASSWORD).await;
    let web = WebClient::signed_in(&app, "alice").await;
    assert!(!web.get("/devices").await.body.contains("tls-banner"));

    // The certificate file truncated to garbage: it stays that way, so the poll reports it.
    let (cert_path, _) = paths(dir.path());
    replace(
        &cert_path,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n",
    );
    let status = app.server().tls_status();
    eventually("the problem is reported", || async {
        status.snapshot().problem.is_some()
    })
    .await;
    let problem = status.snapshot().problem.unwrap();
    assert!(problem.contains("--tls-cert"), "{problem}");
    assert!(problem.contains(cert_path.to_str().unwrap()), "{problem}");
    assert!(
        problem.contains("Still serving the certificate valid until"),
        "{problem}"
    );
    assert_eq!(
        served_to_new_connections(&pki, addr).await,
        old.leaf_der.to_vec()
    );
    let page = web.get("/devices").await;
    assert!(page.body.contains("id=\"tls-banner\""), "{}", page.body);
    assert!(page.body.contains("HTTPS certificate: needs attention"));
    assert!(page.body.contains("the TLS files were not reloaded"));

    // A good pair clears it.
    let new = pki.issue(90);
    install(dir.path(), &new);
    eventually("the good pair is served", || async {
        served_to_new_connections(&pki, addr).await == new.leaf_der.to_vec()
    })
    .await;
    assert_eq!(status.snapshot().problem, None);
    assert!(!web.get("/devices").await.body.contains("tls-banner"));
}

#[tokio::test]
async fn an_expiring_certificate_shows_in_the_banner() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(Backend::Sqlite, &pki, dir.path(), &pki.issue(5), &[]).await;
    create_admin(&app, "alice", common::web::PASSWORD).await;
    let web = WebClient::signed_in(&app, "alice").await;
    let page = web.get("/devices").await;
    assert!(page.body.contains("id=\"tls-banner\""), "{}", page.body);
    assert!(
        page.body.contains("The HTTPS certificate expires in"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("Replace the --tls-cert and --tls-key files")
    );
}

#[tokio::test]
async fn a_client_that_never_handshakes_is_closed_after_the_header_read_timeout() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn(
        Backend::Sqlite,
        &pki,
        dir.path(),
        &pki.issue(90),
        &["--header-read-timeout", "1s"],
    )
    .await;
    let mut silent = TcpStream::connect(app.server().addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(PATIENCE, silent.read(&mut buf))
        .await
        .expect("the server closes a connection that never handshakes");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The server still serves others.
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

/// `guardmdm serve` with TLS files as a child process, its log in `log`.
fn serve_command(data_dir: &Path, tls_dir: &Path, listen: &str, log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guardmdm"));
    cmd.args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .args(["--admin-token", ADMIN_TOKEN])
        .args(["--metrics-listen", "off"])
        .args(tls_flags(tls_dir))
        .env("RUST_LOG", "info")
        .env_remove("GUARDMDM_DATABASE_URL")
        .env_remove("GUARDMDM_SECRET_KEY")
        .env_remove("GUARDMDM_PUBLIC_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true);
    cmd
}

/// Spoils the TLS files in a directory.
type Breakage<'a> = Box<dyn Fn(&Path) + 'a>;

#[tokio::test]
async fn serve_refuses_to_start_with_an_unusable_pair_and_says_why() {
    let pki = Pki::new();
    let good = pki.issue(90);
    let cases: [(&str, Breakage<'_>, &str); 4] = [
        (
            "a key of another certificate",
            Box::new(|dir: &Path| replace(&paths(dir).1, &pki.issue(90).key_pem)),
            "does not fit the certificate",
        ),
        (
            "a certificate file that is not PEM",
            Box::new(|dir: &Path| replace(&paths(dir).0, "hello")),
            "no certificate (\"-----BEGIN CERTIFICATE-----\") found",
        ),
        (
            "a missing key file",
            Box::new(|dir: &Path| std::fs::remove_file(paths(dir).1).unwrap()),
            "cannot read it",
        ),
        (
            "an expired certificate",
            Box::new(|dir: &Path| install(dir, &pki.issue(-1))),
            "expired on",
        ),
    ];
    for (what, break_it, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        install(dir.path(), &good);
        break_it(dir.path());
        let log = dir.path().join("serve.log");
        let mut child = serve_command(&dir.path().join("data"), dir.path(), "127.0.0.1:0", &log)
            .spawn()
            .unwrap();
        let status = tokio::time::timeout(PATIENCE, child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(!status.success(), "{what}: {status:?}");
        let stderr = std::fs::read_to_string(&log).unwrap();
        assert!(stderr.contains(expected), "{what}: {stderr}");
        assert!(
            stderr.contains("--tls-"),
            "{what}: names the flag: {stderr}"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_re_reads_the_files_in_the_real_binary() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let old = pki.issue(90);
    install(dir.path(), &old);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.path().join("serve.log");
    let mut child = serve_command(
        &dir.path().join("data"),
        dir.path(),
        &addr.to_string(),
        &log,
    )
    .spawn()
    .unwrap();
    let pid = child.id().unwrap().to_string();
    let http = pki.reqwest_builder(addr).build().unwrap();
    let health = format!("https://{HOST}:{port}/healthz");
    eventually("the server answers over HTTPS", || async {
        http.get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    let hangup = || async {
        let status = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    };
    let log_text = || std::fs::read_to_string(&log).unwrap();

    // Unchanged files: only an explicit reload loads them again (the poll would not).
    hangup().await;
    eventually("the SIGHUP reload is logged", || async {
        let text = log_text();
        text.find("SIGHUP: re-reading the TLS files")
            .is_some_and(|at| text[at..].contains("HTTPS certificate loaded from the TLS files"))
    })
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP does not end the process"
    );

    // New files, then SIGHUP: new connections get them.
    let new = pki.issue(100);
    install(dir.path(), &new);
    hangup().await;
    eventually("new connections get the new certificate", || async {
        served_to_new_connections(&pki, addr).await == new.leaf_der.to_vec()
    })
    .await;
    let resp = http.get(&health).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // SIGTERM still shuts it down cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}\n{}", log_text());
}

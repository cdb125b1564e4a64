//! The HTTPS certificate banner in a real headless Chromium, over HTTPS: a server on
//! `--tls-cert`/`--tls-key` whose certificate expires in 5 days shows it on every page after
//! sign-in, and no longer once a renewed certificate is in the files.
//!
//! Chromium is told to accept the test CA's certificate (`--ignore-certificate-errors`); that
//! the chain is valid is proven with a real verifier in `tests/tls.rs`.
//! Skipped loudly without chromedriver, unless `GUARDMDM_REQUIRE_BROWSER=1` (CI).

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use common::browser::{Browser, screenshot_path};
use common::tls::{HOST, Pki, install, paths};
use common::web::{PASSWORD, create_admin};
use common::{Backend, TestApp};
use guardmdm::tls_files::Reload;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_certificate_banner_shows_until_the_certificate_is_renewed() {
    let resolve = format!("--host-resolver-rules=MAP {HOST} 127.0.0.1");
    let Some(browser) = Browser::start_with(&["--ignore-certificate-errors", &resolve]).await
    else {
        return;
    };
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &pki.issue(5));
    let (cert, key) = paths(dir.path());
    let app = TestApp::spawn_tls(
        Backend::Sqlite,
        &pki,
        &[
            "--tls-cert".into(),
            cert.to_str().unwrap().into(),
            "--tls-key".into(),
            key.to_str().unwrap().into(),
        ],
    )
    .await;
    create_admin(&app, "ada", PASSWORD).await;

    browser
        .sign_in_at(&app.url("/devices"), "ada", PASSWORD)
        .await;
    browser.wait_url("/devices").await;
    let banner = browser
        .wait_for("#tls-banner", "HTTPS certificate: needs attention.")
        .await;
    let text = browser.text(&banner).await;
    assert!(text.contains("The HTTPS certificate expires in"), "{text}");
    assert!(
        text.contains("Replace the --tls-cert and --tls-key files"),
        "{text}"
    );
    browser.screenshot(&screenshot_path("tls-banner.png")).await;
    // On the other pages too.
    browser.goto(&app.url("/profiles")).await;
    browser.wait_for("#tls-banner", "expires in").await;

    // Renewed: the banner is gone.
    install(dir.path(), &pki.issue(90));
    assert!(matches!(
        app.server().reload_tls().await,
        Some(Reload::Replaced(_))
    ));
    browser.goto(&app.url("/devices")).await;
    browser.wait_for("h1", "ABM Devices").await;
    assert!(browser.find_all("#tls-banner").await.is_empty());
    browser.quit().await;
}

//! Settings > Push certificate in a real headless Chromium (WebDriver): with ABM connected but
//! no push certificate, every page shows a banner linking to the page; the admin makes a
//! certificate request there, downloads it, and uploads the certificate a stand-in for
//! Apple's portal issued for it, as a file; the page then shows the topic and the state.
//! Saves `settings-apns.png` under `docs/screenshots/`.
//!
//! Skipped loudly without chromedriver, unless `GUARDMDM_REQUIRE_BROWSER=1` (CI).

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use common::Backend;
use common::browser::{Browser, screenshot_path};
use common::mdm::{TOPIC, setup_without_push_certificate};
use common::web::{PASSWORD, create_admin};
use guardmdm_crypto::PushPortal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_requests_and_uploads_the_push_certificate() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let mdm = setup_without_push_certificate(Backend::Sqlite, &[]).await;
    let app = &mdm.app;
    create_admin(app, "ada", PASSWORD).await;

    browser
        .sign_in_at(&app.url("/devices"), "ada", PASSWORD)
        .await;
    // The banner says what is missing and links to the page that fixes it.
    browser
        .wait_for(".banner", "Push certificate: missing.")
        .await;
    browser
        .click(
            &browser
                .wait_for(".banner a", "Settings > Push certificate")
                .await,
        )
        .await;
    browser.wait_url("/settings/apns").await;
    browser.wait_for("h1", "Missing").await;
    browser
        .wait_for("#pending-request", "No request yet.")
        .await;

    browser
        .click(
            &browser
                .wait_for("#request-form button", "Make a certificate request")
                .await,
        )
        .await;
    browser.wait_for(".flash", "Certificate request made").await;
    let download = browser.wait_for("#download-request", "Download").await;
    assert_eq!(
        browser.attr(&download, "href").await.as_deref(),
        Some("/settings/apns/request.csr")
    );
    browser
        .wait_for("#pending-request", "Pending request made")
        .await;

    // Apple (a stand-in) issues the certificate for the request; the admin uploads the file.
    let (_, request) = app
        .json(reqwest::Method::GET, "/api/v1/apns/csr", None)
        .await;
    let portal = PushPortal::generate().unwrap();
    let issued = portal
        .issue(request["csr_pem"].as_str().unwrap().as_bytes(), TOPIC, 365)
        .unwrap();
    let file = mdm.files.path().join("MDM_GuardMDM_Certificate.pem");
    std::fs::write(&file, issued).unwrap();
    browser.choose_file("#certificate-file", &file).await;
    browser
        .click(
            &browser
                .wait_for("#certificate-form button", "Upload certificate")
                .await,
        )
        .await;
    browser
        .wait_for(".flash", "Push certificate installed")
        .await;
    browser.wait_for("h1", "Active").await;
    browser.wait_for("#push-topic", TOPIC).await;
    browser
        .wait_for(
            "#pending-request",
            "the installed certificate was issued for it",
        )
        .await;
    assert!(
        browser.find_all(".banner").await.is_empty(),
        "no banner once the certificate is installed"
    );
    browser
        .screenshot(&screenshot_path("settings-apns.png"))
        .await;
    browser.quit().await;
    mdm.app.stop().await;
}

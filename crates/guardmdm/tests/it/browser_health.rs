//! Settings > Health in a real headless Chromium: an admin follows the nav link, sees what
//! blocks enrollment with what to do, and after an ABM entry is connected (through the API,
//! as a colleague would) checks again. Saves `health.png` under `docs/screenshots/`.
//!
//! Skipped loudly without chromedriver, unless `GUARDMDM_REQUIRE_BROWSER=1` (CI).

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use common::browser::{Browser, screenshot_path};
use common::web::{PASSWORD, create_admin};
use common::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_checks_the_deployment_in_settings_health() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // Reachable at its own plain-HTTP address: the public URL check blocks.
    let app =
        TestApp::spawn_reachable(Backend::Sqlite, &["--log-format".into(), "text".into()]).await;
    create_admin(&app, "ada", PASSWORD).await;

    browser
        .sign_in_at(&app.url("/devices"), "ada", PASSWORD)
        .await;
    browser.wait_url("/devices").await;

    // The nav link.
    browser
        .click(&browser.find("nav a[href='/settings/health']").await)
        .await;
    browser.wait_for("h1", "Health").await;
    browser
        .wait_for("#verdict-h", "Devices cannot enroll yet")
        .await;
    let current = browser.find("nav a[aria-current='page']").await;
    assert!(browser.text(&current).await.contains("Health"));
    let public = browser.find("tr[id='check-public_url']").await;
    let text = browser.text(&public).await;
    assert!(text.contains("blocking"), "{text}");
    assert!(text.contains("plain http"), "{text}");
    assert!(text.contains("--tls-cert"), "{text}");
    let abm = browser.find("tr[id='check-abm']").await;
    assert!(browser.text(&abm).await.contains("No ABM entry"));
    browser.screenshot(&screenshot_path("health.png")).await;

    // An ABM entry connected meanwhile: "Check again" shows it in place of "No ABM entry".
    app.connect_abm("main").await;
    browser
        .click(
            &browser
                .find("a[href='/settings/health']:not([aria-current])")
                .await,
        )
        .await;
    let entry = browser
        .wait_for("tr[id='check-abm:main']", "ABM entry main")
        .await;
    let text = browser.text(&entry).await;
    assert!(text.contains("never synced"), "{text}");
    assert!(browser.find_all("tr[id='check-abm']").await.is_empty());

    browser.quit().await;
    app.stop().await;
}

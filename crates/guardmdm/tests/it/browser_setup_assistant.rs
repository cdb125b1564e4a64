//! Devices stuck in Setup Assistant in a real headless Chromium: the banner on every page
//! links to the "Stuck in Setup Assistant" filter, which shows why each device waits; an
//! admin ticks one and releases the selection, and the device leaves Setup Assistant.
//!
//! Skipped loudly without chromedriver, unless `GUARDMDM_REQUIRE_BROWSER=1` (CI).

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::time::Duration;

use common::browser::Browser;
use common::web::{PASSWORD, create_admin};

use crate::setup_assistant::{not_now_device, silent_device, stuck, stuck_setup, wait_stuck};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_releases_a_stuck_device_from_the_banner() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (mdm, serials) = stuck_setup(common::Backend::Sqlite, 2).await;
    let app = &mdm.app;
    create_admin(app, "ada", PASSWORD).await;
    let busy = not_now_device(&mdm, &serials[0]).await;
    let silent = silent_device(&mdm, &serials[1]).await;
    wait_stuck(app, &busy, 2).await;

    browser
        .sign_in_at(&app.url("/devices"), "ada", PASSWORD)
        .await;
    browser.wait_url("/devices").await;
    let banner = browser
        .wait_for("#stuck-banner", "2 devices: stuck in Setup Assistant")
        .await;
    assert!(browser.text(&banner).await.contains("DeviceConfigured"));
    browser
        .click(
            &browser
                .find("#stuck-banner a[href='/enrollments?stuck=1']")
                .await,
        )
        .await;
    browser.wait_url("stuck=1").await;
    let table = browser
        .wait_for("#stuck", "initial command InstallProfile pending")
        .await;
    let text = browser.text(&table).await;
    assert!(text.contains(busy.udid()), "{text}");
    assert!(text.contains("no check-in since"), "{text}");
    assert_eq!(
        browser
            .find_all("#e-stuck option[value='1'][selected]")
            .await
            .len(),
        1,
        "the filter shows what is listed"
    );

    // Tick the busy device and release the selection.
    browser
        .click(
            &browser
                .find(&format!("input[name='udid'][value='{}']", busy.udid()))
                .await,
        )
        .await;
    browser
        .click(&browser.find("#release-selected").await)
        .await;
    browser.wait_for(".banners", "Released").await;
    for _ in 0..100 {
        if !busy.status().awaiting_configuration {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !busy.status().awaiting_configuration,
        "left Setup Assistant"
    );
    let left = stuck(app).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["udid"], silent.udid());

    browser.quit().await;
    mdm.app.stop().await;
}

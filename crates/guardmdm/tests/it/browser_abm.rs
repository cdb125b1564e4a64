//! The phase-2a dashboard pages in a real headless Chromium (WebDriver): an admin generates
//! an ABM token in Settings > ABM Integration, registers its public key in the ABM simulator,
//! uploads the simulator-issued server token as a file, presses Sync Now and watches the
//! progress reach success, finds the devices in ABM Devices, then opens an enrolled device
//! and sends it a command whose answer appears by itself. Saves `settings-abm.png`,
//! `sync.png` and `enrollment.png` under `docs/screenshots/`.
//!
//! Skipped loudly without chromedriver, unless `GUARDMDM_REQUIRE_BROWSER=1` (CI).

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use common::Backend;
use common::browser::{Browser, screenshot_path};
use common::mdm::{buy, setup};
use common::web::{PASSWORD, create_admin};
use guardmdm_sim::{Fault, SimDevice};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_connects_abm_syncs_and_sends_a_command() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // A server devices and the browser reach at its own http address, with a push
    // certificate and an entry "main" whose devices get the iOS default profile.
    let mdm = setup(Backend::Sqlite).await;
    let app = &mdm.app;
    let serials = buy(&mdm, 1).await;
    let device = SimDevice::new(&app.abm.sim, &serials[0], &mdm.ca).unwrap();
    device.attach_apns(&mdm.apns.apns);
    assert!(device.enroll_and_run(&app.abm.sim).await.unwrap().enrolled);
    create_admin(app, "ada", PASSWORD).await;

    browser
        .sign_in_at(&app.url("/settings/abm"), "ada", PASSWORD)
        .await;
    browser.wait_for("h1", "ABM Integration").await;

    // Settings > ABM Integration > Generate Token.
    browser.type_into("#entry-name", "school").await;
    browser
        .click(&browser.wait_for("#generate button", "Generate Token").await)
        .await;
    browser.wait_url("/settings/abm/school").await;
    browser.wait_for(".flash", "Token generated").await;
    let download = browser.find("#download-key").await;
    assert_eq!(
        browser.attr(&download, "href").await.as_deref(),
        Some("/settings/abm/school/public-key")
    );
    // The admin uploads the public key to ABM (the simulator's portal), makes that MDM server
    // the default for new purchases, and downloads its server token.
    let pem = app.public_key("school").await;
    let server = app
        .abm
        .sim
        .register_server("GuardMDM School", &pem)
        .unwrap()
        .server_uuid;
    app.abm.sim.set_default_server(None, Some(&server)).unwrap();
    let _ = app.abm.sim.add_devices(60, None);
    let token = mdm.files.path().join("school_smime.p7m");
    std::fs::write(&token, app.download_token(&server)).unwrap();

    // Upload the server token as a file (multipart through htmx).
    browser.choose_file("#token-file", &token).await;
    browser
        .click(
            &browser
                .wait_for("#token-form button", "Upload server token")
                .await,
        )
        .await;
    browser.wait_for(".flash", "Server token installed").await;
    browser.wait_for("h1", "Active").await;
    browser.wait_for("#health-h", "Token health").await;
    browser.goto(&app.url("/settings/abm")).await;
    browser.wait_for("table.entries", "school").await;
    browser
        .screenshot(&screenshot_path("settings-abm.png"))
        .await;

    // Sync Now from ABM Devices; a slow ABM with small pages, so the progress is seen.
    app.abm
        .sim
        .inject_fault(Fault::Delay {
            millis: 400,
            count: Some(6),
            path: Some("/server/devices".to_string()),
        })
        .unwrap();
    let (status, _) = app
        .json(
            reqwest::Method::PATCH,
            "/api/v1/abm/tokens/school",
            Some(serde_json::json!({ "batch_size": 20 })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    browser.goto(&app.url("/devices")).await;
    browser
        .click(
            &browser
                .wait_for("button[aria-label='Sync Now: school']", "Sync Now")
                .await,
        )
        .await;
    browser.wait_url("/settings/abm/school/sync").await;
    browser.wait_for(".flash", "Sync started").await;
    browser.wait_for("#sync-status", "Sync running").await;
    // The fragment is polled until the run ends, without a reload.
    browser.wait_for("#sync-status", "succeeded after").await;
    browser
        .wait_for("#sync-runs td[data-label=Outcome]", "Succeeded")
        .await;
    browser
        .wait_for("#sync-status", "60 devices fetched (60 added")
        .await;
    browser.screenshot(&screenshot_path("sync.png")).await;

    // The devices are in ABM Devices.
    browser
        .click(
            &browser
                .wait_for("#sync a", "This entry's devices in ABM Devices")
                .await,
        )
        .await;
    browser.wait_url("/devices?entry=school").await;
    browser.wait_for("#devices caption", "").await;
    let rows = browser.find_all("#devices td.serial").await;
    assert!(!rows.is_empty(), "the synced devices are listed");
    for cell in browser
        .find_all("#devices td[data-label='ABM entry']")
        .await
    {
        assert_eq!(browser.text(&cell).await, "school");
    }

    // The enrolled device: from its ABM page to its enrollment, then a command.
    browser
        .goto(&app.url(&format!("/devices/{}", serials[0])))
        .await;
    browser
        .click(
            &browser
                .wait_for("#enrollment-link", "Enrolled device")
                .await,
        )
        .await;
    browser
        .wait_url(&format!("/enrollments/{}", device.udid()))
        .await;
    browser.wait_for("#commands", "DeviceConfigured").await;
    browser
        .click(
            &browser
                .wait_for("form.command button", "Send DeviceInformation")
                .await,
        )
        .await;
    browser.wait_for(".flash", "Command queued").await;
    // The answer appears by itself (the table polls while the command waits).
    browser
        .wait_for("#command-queue tbody tr", "DeviceInformation")
        .await;
    browser
        .wait_for("#command-queue tbody tr:first-child", "acknowledged")
        .await;
    let summary = browser
        .wait_for("#command-queue tr.result-row summary", "Result plist")
        .await;
    browser.click(&summary).await;
    browser
        .wait_for("#command-queue pre.plist", "QueryResponses")
        .await;
    browser
        .run_async("document.getElementById('commands').scrollIntoView(); arguments[0](true);")
        .await;
    browser.screenshot(&screenshot_path("enrollment.png")).await;

    // The list of enrolled devices, filtered by status.
    browser.goto(&app.url("/enrollments")).await;
    browser.select("#e-status", "enrolled").await;
    browser
        .click(&browser.find(".filters button[type=submit]").await)
        .await;
    browser.wait_url("status=enrolled").await;
    browser
        .wait_for("#enrollments td[data-label=UDID]", device.udid())
        .await;
    browser.quit().await;
    mdm.app.stop().await;
}

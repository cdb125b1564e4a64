//! The dashboard end to end in a real headless Chromium (WebDriver): the first admin from the
//! CLI, sign-in (a wrong password first), the devices after a sync against the ABM simulator,
//! filters, search, sorting, paging, a device page with its explanation, a POST without the
//! CSRF token refused, sign-out. Saves the screenshots under `docs/screenshots/`.
//!
//! Skipped loudly without chromedriver, unless `GUARDMDM_REQUIRE_BROWSER=1` (CI).

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use common::browser::{Browser, screenshot_path};
use common::web::PASSWORD;
use common::{Backend, TestApp, run_cli_stdin};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_finds_devices_and_signs_out() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    // The server's public URL is its own http address, as a browser reaches it.
    let app = TestApp::spawn_reachable(
        Backend::Sqlite,
        &["--session-lifetime".into(), "12h".into()],
    )
    .await;
    app.connect_abm("main").await;
    let _ = app.abm.sim.add_devices(75, None);
    let (status, body) = app
        .json(
            Method::POST,
            "/api/v1/profiles",
            Some(json!({ "name": "phones", "department": "IT" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .json(
            Method::PUT,
            "/api/v1/os-defaults/ios",
            Some(json!({ "profile": "phones" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = app.sync("main", false).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    // One more pass settles the assignments the default started.
    app.sync("main", false).await;

    // The first admin, from the CLI.
    let created = run_cli_stdin(
        &app,
        &["admins", "create", "ada", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(created.ok, "{}", created.stderr);

    // Not signed in: the sign-in form, remembering where we were going.
    browser.goto(&app.url("/devices?os=iOS")).await;
    browser.wait_url("/signin?next=").await;
    browser.wait_for("h1", "Sign in").await;
    browser.type_into("#name", "ada").await;
    browser.type_into("#password", "not my password").await;
    browser
        .click(&browser.find("button[type=submit]").await)
        .await;
    browser
        .wait_for("#signin-error", "Wrong name or password.")
        .await;
    browser.screenshot(&screenshot_path("sign-in.png")).await;
    browser.type_into("#password", PASSWORD).await;
    browser
        .click(&browser.find("button[type=submit]").await)
        .await;
    browser.wait_url("/devices?os=iOS").await;
    browser.wait_for("h1", "ABM Devices").await;
    browser.wait_for("header", "Signed in as ada").await;

    // All devices, then filters (a GET form: works without JavaScript, htmx boosts it).
    browser.goto(&app.url("/devices")).await;
    browser.wait_for("#devices tbody tr", "").await;
    browser.screenshot(&screenshot_path("devices.png")).await;
    browser.select("#f-os", "iOS").await;
    browser.select("#f-status", "assigned").await;
    browser
        .click(&browser.find(".filters button[type=submit]").await)
        .await;
    browser.wait_url("status=assigned").await;
    browser.wait_for("#devices caption", "").await;
    let os_cells = browser.find_all("#devices td[data-label=OS]").await;
    assert!(
        !os_cells.is_empty(),
        "iOS devices with the default are assigned"
    );
    for cell in &os_cells {
        assert_eq!(browser.text(cell).await, "iOS");
    }
    for cell in browser.find_all("#devices td[data-label=Status]").await {
        assert_eq!(browser.text(&cell).await, "Assigned");
    }
    for cell in browser.find_all("#devices td[data-label=Profile]").await {
        assert!(browser.text(&cell).await.starts_with("phones"));
    }

    // Search by serial (prefix).
    browser.goto(&app.url("/devices?limit=10")).await;
    let first = browser.wait_for("#devices td.serial a", "").await;
    let serial = browser.text(&first).await;
    let prefix = &serial[..serial.len() - 3];
    browser.type_into("#f-serial", prefix).await;
    browser
        .click(&browser.find(".filters button[type=submit]").await)
        .await;
    browser.wait_url("serial=").await;
    browser.wait_for("#devices td.serial", &serial).await;
    for cell in browser.find_all("#devices td.serial").await {
        assert!(browser.text(&cell).await.starts_with(prefix));
    }

    // Sort by model from its column header, then back by serial, descending.
    browser.goto(&app.url("/devices?limit=10")).await;
    let model_header = browser.wait_for("#devices th a", "Model").await;
    browser.click(&model_header).await;
    browser.wait_url("sort=model").await;
    browser.wait_for("th[aria-sort=ascending]", "Model").await;
    browser
        .goto(&app.url("/devices?limit=10&sort=serial&dir=desc"))
        .await;
    let top = browser.wait_for("#devices td.serial a", "").await;
    assert!(browser.text(&top).await > serial, "descending");

    // Page forward.
    browser.goto(&app.url("/devices?limit=10")).await;
    browser.wait_for("#devices td.serial", &serial).await;
    browser.click(&browser.find("#next-page").await).await;
    browser.wait_url("after=").await;
    browser.wait_for("nav.pager a", "First page").await;
    let second_page = browser.find("#devices td.serial a").await;
    assert!(browser.text(&second_page).await > serial);

    // A device page with its explanation.
    browser.goto(&app.url("/devices?os=iOS&limit=5")).await;
    let link = browser.wait_for("#devices td.serial a", "").await;
    let ios_serial = browser.text(&link).await;
    browser.click(&link).await;
    browser
        .wait_for("h1", &format!("Device {ios_serial}"))
        .await;
    browser
        .wait_for("#why", "Profile phones, given by the iOS default.")
        .await;
    browser
        .wait_for(".timeline", "First synced from ABM entry main")
        .await;
    browser.screenshot(&screenshot_path("device.png")).await;

    // The same list on a phone.
    browser.set_window_size(390, 844).await;
    browser.goto(&app.url("/devices?limit=5#devices")).await;
    browser.wait_for("#devices td.serial", "").await;
    browser
        .screenshot(&screenshot_path("devices-phone.png"))
        .await;
    browser.set_window_size(1280, 900).await;

    // A state change without the CSRF token is refused, even from the page itself.
    let status = browser
        .run_async(
            "const done = arguments[0];
             fetch('/signout', { method: 'POST',
                 headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'x=1' })
               .then(r => done(r.status), e => done(String(e)));",
        )
        .await;
    assert_eq!(status, 403);
    browser.goto(&app.url("/devices")).await;
    browser.wait_for("h1", "ABM Devices").await;

    // Sign out: back to the sign-in form, and the pages are closed.
    browser
        .click(&browser.find("header form button").await)
        .await;
    browser.wait_url("/signin").await;
    browser.wait_for(".flash", "You are signed out.").await;
    browser.goto(&app.url("/devices")).await;
    browser.wait_url("/signin?next=").await;
    browser.quit().await;
    app.stop().await;
}

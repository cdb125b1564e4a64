//! The profile, OS default and group pages in a real headless Chromium (WebDriver): create a
//! profile with Setup Assistant panes to skip, make it the iOS default and see the iPhones
//! of the ABM Devices list get it after a sync, then add devices to a static group from a
//! CSV upload (through htmx, multipart) with a dry run before applying. Saves screenshots
//! under `docs/screenshots/`.
//!
//! Skipped loudly without chromedriver, unless `GUARDMDM_REQUIRE_BROWSER=1` (CI).

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use common::browser::{Browser, screenshot_path};
use common::web::{PASSWORD, create_admin};
use common::{Backend, TestApp};
use reqwest::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_becomes_the_ios_default_and_a_csv_fills_a_group() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::spawn_reachable(Backend::Sqlite, &[]).await;
    app.connect_abm("main").await;
    let devices = app.abm.sim.add_devices(20, None);
    let run = app.sync("main", false).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    create_admin(&app, "ada", PASSWORD).await;
    browser.set_window_size(1280, 900).await;

    browser.goto(&app.url("/signin")).await;
    browser.type_into("#name", "ada").await;
    browser.type_into("#password", PASSWORD).await;
    browser
        .click(&browser.find("main button[type=submit]").await)
        .await;
    browser.wait_for("h1", "ABM Devices").await;

    // A new profile through the form, skipping two panes.
    browser
        .click(&browser.find("a[href=\"/profiles\"]").await)
        .await;
    browser.wait_for("h1", "ADE profiles").await;
    browser
        .click(&browser.find("a[href=\"/profiles/new\"]").await)
        .await;
    browser.wait_for("h1", "New ADE profile").await;
    browser.type_into("#f-name", "phones").await;
    browser
        .type_into("#f-profile_name", "Company iPhones")
        .await;
    browser.type_into("#f-department", "IT").await;
    browser.select("#f-allow_pairing", "false").await;
    browser
        .click(&browser.find("#skip-ios-AppleID").await)
        .await;
    browser.click(&browser.find("#skip-ios-Siri").await).await;
    browser
        .screenshot(&screenshot_path("profile-edit.png"))
        .await;
    // A mistake first: the error sits next to its field, which gets the focus.
    browser.type_into("#f-language", "EN").await;
    browser
        .click(&browser.find("form.profile-form button[type=submit]").await)
        .await;
    browser.wait_for("#e-language", "lower case").await;
    let focused = browser
        .run_async("arguments[0](document.activeElement.id)")
        .await;
    assert_eq!(focused, "f-language");
    browser.type_into("#f-language", "en").await;
    browser
        .click(&browser.find("form.profile-form button[type=submit]").await)
        .await;
    browser.wait_for("h1", "Profile phones").await;
    let (status, p) = app.json(Method::GET, "/api/v1/profiles/phones", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        p["spec"]["skip_setup_items"],
        serde_json::json!(["AppleID", "Siri"]),
        "{p}"
    );
    assert_eq!(p["spec"]["allow_pairing"], false);
    browser.goto(&app.url("/profiles")).await;
    browser.wait_for("#profiles", "phones").await;
    browser.screenshot(&screenshot_path("profiles.png")).await;

    // The iOS default.
    browser
        .click(&browser.find("a[href=\"/os-defaults\"]").await)
        .await;
    browser.wait_for("h1", "OS defaults").await;
    browser.select("#os-ios-profile", "phones").await;
    browser
        .click(&browser.find("#os-ios button[type=submit]").await)
        .await;
    browser.wait_for(".flash", "OS default saved").await;
    browser
        .wait_for("#os-ipados-note", "iPads use the iOS default, phones")
        .await;
    browser
        .screenshot(&screenshot_path("os-defaults.png"))
        .await;

    // After a sync, the iPhones in ABM Devices have the profile, assigned at Apple.
    app.sync("main", false).await;
    app.sync("main", false).await;
    browser.goto(&app.url("/devices?os=iOS")).await;
    browser.wait_for("#devices", "phones").await;
    let text = browser.text(&browser.find("#devices").await).await;
    let iphones = devices.iter().filter(|d| d.os == "iOS").count();
    assert_eq!(text.matches("phones").count(), iphones, "{text}");
    assert!(!text.contains("Unassigned"), "{text}");

    // A static group, filled from a CSV: dry run, then apply.
    browser.goto(&app.url("/groups/new")).await;
    browser.type_into("#f-name", "loaners").await;
    browser
        .click(&browser.find("form.panel button[type=submit]").await)
        .await;
    browser.wait_for("h1", "Group loaners").await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("loaners.csv");
    std::fs::write(
        &csv,
        format!(
            "serial\n{}\n{}\nNOTASERIAL01\nbad!\n",
            devices[0].serial_number, devices[1].serial_number
        ),
    )
    .unwrap();
    browser.choose_file("#b-csv", &csv).await;
    browser
        .click(&browser.find("button[name=mode][value=dry_run]").await)
        .await;
    browser
        .wait_for("#report-summary", "4 rows: 2 would be applied")
        .await;
    browser.wait_for("#report", "malformed").await;
    browser
        .run_async("document.getElementById('bulk').scrollIntoView(); arguments[0](true)")
        .await;
    browser.screenshot(&screenshot_path("groups.png")).await;
    let (_, g) = app.json(Method::GET, "/api/v1/groups/loaners", None).await;
    assert_eq!(g["member_count"], 0, "a dry run writes nothing");
    browser.click(&browser.find("#apply").await).await;
    browser.wait_for("#report h3", "Done").await;
    browser.wait_for("#member-count", "2").await;
    let (_, g) = app.json(Method::GET, "/api/v1/groups/loaners", None).await;
    assert_eq!(g["member_count"], 2);

    // A file too large to carry in the page (over 32 KiB): chosen again, its full report
    // downloads through report.js (fetch with the CSRF header), as CSV with every row.
    let big = dir.path().join("big.csv");
    let mut text = String::from("serial\n");
    for i in 0..3_000 {
        text.push_str(&format!("ZZ{i:010}\n"));
    }
    std::fs::write(&big, &text).unwrap();
    browser.choose_file("#b-csv", &big).await;
    browser
        .click(&browser.find("button[name=mode][value=dry_run]").await)
        .await;
    browser
        .wait_for("#report-caption", "The first 100 of 3000 rows not applied")
        .await;
    browser.choose_file("#again-csv", &big).await;
    browser
        .run_async(
            "const f = window.fetch; window.__csv = null; \
             window.fetch = (...a) => f(...a).then(r => { r.clone().text().then(t => { window.__csv = t; }); return r; }); \
             arguments[0](true)",
        )
        .await;
    browser.click(&browser.find("#download-report").await).await;
    let mut csv = serde_json::Value::Null;
    for _ in 0..100 {
        csv = browser.run_async("arguments[0](window.__csv)").await;
        if !csv.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let csv = csv.as_str().expect("report.js fetched the report");
    assert!(csv.starts_with("line,serial,outcome,detail\r\n2,ZZ0000000000,unknown_serial,"));
    assert_eq!(csv.lines().count(), 3_001);
    browser.wait_for("#report-caption", "The first 100").await;
    let error = browser.find("#download-error").await;
    assert_eq!(
        browser.attr(&error, "hidden").await.as_deref(),
        Some("true")
    );

    browser.quit().await;
    app.stop().await;
}

//! The dashboard's phase-2a pages over a real socket, on every backend: Settings > ABM
//! Integration (Generate Token, the public key, server token uploads as a file and pasted, a
//! corrupt token, settings, deletion with its confirmation), Sync Now with its progress
//! fragment and recent runs (a run already going shown as that run), and Enrolled devices
//! with a device's commands: sent from the dashboard, answered by a simulated device, shown.

// Helpers outside #[test] functions fail by panicking too.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use crate::common;

use std::time::Duration;

use common::TestApp;
use common::mdm::{buy, enrollment, mobileconfig, setup};
use common::web::{PASSWORD, Page, WebClient, create_admin};
use guardmdm_sim::{Fault, SimDevice};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn signed_in(app: &TestApp) -> (WebClient, String) {
    create_admin(app, "alice", PASSWORD).await;
    let web = WebClient::signed_in(app, "alice").await;
    let csrf = web.get("/settings/abm").await.csrf();
    (web, csrf)
}

/// Checks that `answer` is a 303 to `to` setting flash `flash`, and follows it: the next
/// page shows the message.
async fn follow(web: &WebClient, answer: &Page, to: &str, flash: &str) -> Page {
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location(), to);
    let code = answer
        .set_cookies()
        .into_iter()
        .find_map(|c| {
            c.strip_prefix("guardmdm_flash=")
                .map(|v| v.split(';').next().unwrap().to_string())
        })
        .expect("a flash cookie");
    assert_eq!(code, flash);
    let page = web
        .get_with_cookie(
            to.split('#').next().unwrap(),
            &format!("guardmdm_flash={code}"),
        )
        .await;
    assert!(
        page.body.contains("<div class=\"flash\" role=\"status\">"),
        "{}",
        page.body
    );
    page
}

/// Polls the sync fragment of `name` until no run is going; returns the last fragment.
async fn wait_sync_page(web: &WebClient, name: &str) -> Page {
    for _ in 0..400 {
        let page = web.get_htmx(&format!("/settings/abm/{name}/sync")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        if !page.body.contains("hx-trigger=\"every 1s\"") {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the sync of {name} did not end");
}

#[tokio::test]
async fn abm_settings_generate_token_upload_settings_and_delete() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let (web, csrf) = signed_in(&app).await;

        // The page: the nav marks it, the ABM connection steps are there, nothing configured yet.
        let page = web.get("/settings/abm").await;
        assert_eq!(page.status, StatusCode::OK);
        for needle in [
            "<h1>ABM Integration</h1>",
            "href=\"/settings/abm\" aria-current=\"page\"",
            "href=\"/enrollments\"",
            "<h2 id=\"generate-h\">Generate Token</h2>",
            "under Settings &gt; MDM Server",
            "No ABM entries yet",
        ] {
            assert!(page.body.contains(needle), "{needle}");
        }

        // Generate Token: CSRF required; a bad name and a bad batch size are named, nothing
        // is created; then a good one.
        let refused = web.post("/settings/abm", &[("name", "main")], None).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let bad = web
            .post(
                "/settings/abm",
                &[("csrf_token", &csrf), ("name", "no spaces")],
                None,
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            bad.body.contains("may only contain letters"),
            "{}",
            bad.body
        );
        assert!(
            bad.body.contains("value=\"no spaces\""),
            "the form keeps it"
        );
        let bad = web
            .post(
                "/settings/abm",
                &[
                    ("csrf_token", &csrf),
                    ("name", "main"),
                    ("batch_size", "5000"),
                ],
                None,
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.body.contains("out of range"), "{}", bad.body);
        let (_, list) = app.json(Method::GET, "/api/v1/abm/tokens", None).await;
        assert_eq!(list.as_array().unwrap().len(), 0, "nothing half-written");
        let created = web
            .post(
                "/settings/abm",
                &[
                    ("csrf_token", &csrf),
                    ("name", "main"),
                    ("batch_size", "250"),
                ],
                None,
            )
            .await;
        let entry = follow(&web, &created, "/settings/abm/main", "abm_created").await;
        assert!(entry.body.contains("Token generated"), "the flash shows");
        assert!(entry.body.contains("Waiting for the server token"));
        assert!(entry.body.contains("Download GuardMDM_main.pem"));
        let (_, view) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert_eq!(view["batch_size"], 250);
        let again = web
            .post(
                "/settings/abm",
                &[("csrf_token", &csrf), ("name", "main")],
                None,
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert!(again.body.contains("already exists"), "{}", again.body);

        // The public key, as a download.
        let key = web.get("/settings/abm/main/public-key").await;
        assert_eq!(key.status, StatusCode::OK);
        assert_eq!(key.headers["content-type"], "application/x-pem-file");
        assert_eq!(
            key.headers["content-disposition"],
            "attachment; filename=\"GuardMDM_main.pem\""
        );
        assert!(key.body.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(key.body, app.public_key("main").await);

        // The admin uploads it to ABM (the simulator's portal) and downloads a server token.
        let server = app
            .abm
            .sim
            .register_server("GuardMDM main", &key.body)
            .unwrap()
            .server_uuid;

        // A corrupt file is refused with the service's message; nothing is stored.
        let corrupt = web
            .post_multipart(
                "/settings/abm/main/token",
                &[],
                &[("token_file", "main_smime.p7m", b"%PDF-1.7 not a token")],
                Some(&csrf),
            )
            .await;
        assert_eq!(corrupt.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(corrupt.body.contains("id=\"token-error\""));
        assert!(
            corrupt.body.contains("not an ABM server token"),
            "{}",
            corrupt.body
        );
        let file = app.download_token(&server);
        let truncated = web
            .post_multipart(
                "/settings/abm/main/token",
                &[],
                &[("token_file", "main_smime.p7m", &file[..file.len() / 2])],
                Some(&csrf),
            )
            .await;
        assert_eq!(truncated.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(truncated.body.contains("corrupt or truncated"));
        let empty = web
            .post_multipart("/settings/abm/main/token", &[], &[], Some(&csrf))
            .await;
        assert_eq!(empty.status, StatusCode::BAD_REQUEST);
        assert!(empty.body.contains("Choose the server token file"));
        let (_, view) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert_eq!(view["health"]["state"], "pending");
        // A multipart form cannot carry the token in its body: without the header, 403.
        let no_header = web
            .post_multipart(
                "/settings/abm/main/token",
                &[("csrf_token", &csrf)],
                &[("token_file", "main_smime.p7m", &file)],
                None,
            )
            .await;
        assert_eq!(no_header.status, StatusCode::FORBIDDEN);

        // Pasted (the no-JavaScript fallback), then renewed as a file.
        let text = String::from_utf8(file).unwrap();
        let pasted = web
            .post(
                "/settings/abm/main/token",
                &[("csrf_token", &csrf), ("token_text", &text)],
                None,
            )
            .await;
        let entry = follow(&web, &pasted, "/settings/abm/main", "token_uploaded").await;
        assert!(entry.body.contains(">Active</span>"), "{}", entry.body);
        assert!(
            entry.body.contains("GuardMDM main"),
            "the ABM server's name"
        );
        assert!(entry.body.contains("Renew the server token"));
        let renewed = web
            .post_multipart(
                "/settings/abm/main/token",
                &[],
                &[("token_file", "main_smime.p7m", &app.download_token(&server))],
                Some(&csrf),
            )
            .await;
        follow(&web, &renewed, "/settings/abm/main", "token_uploaded").await;
        // Another MDM server's token (the same key uploaded twice in ABM): refused with the
        // reason, unless the admin ticks "replace".
        let other = app
            .abm
            .sim
            .register_server("Other Server", &key.body)
            .unwrap()
            .server_uuid;
        let other = app.download_token(&other);
        let conflict = web
            .post_multipart(
                "/settings/abm/main/token",
                &[],
                &[("token_file", "other_smime.p7m", &other)],
                Some(&csrf),
            )
            .await;
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        assert!(conflict.body.contains("Other Server"), "{}", conflict.body);
        let forced = web
            .post_multipart(
                "/settings/abm/main/token",
                &[("force", "1")],
                &[("token_file", "other_smime.p7m", &other)],
                Some(&csrf),
            )
            .await;
        let entry = follow(&web, &forced, "/settings/abm/main", "token_uploaded").await;
        assert!(entry.body.contains("<dd>Other Server"), "{}", entry.body);

        // Settings: a bad batch size is named; a good one is saved.
        let bad = web
            .post(
                "/settings/abm/main/settings",
                &[("csrf_token", &csrf), ("batch_size", "0")],
                None,
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.body.contains("id=\"settings-error\""));
        assert!(bad.body.contains("out of range"));
        let bad = web
            .post(
                "/settings/abm/main/settings",
                &[("csrf_token", &csrf), ("batch_size", "ten")],
                None,
            )
            .await;
        assert!(
            bad.body.contains("&#34;ten&#34; is not a whole number"),
            "{}",
            bad.body
        );
        let saved = web
            .post(
                "/settings/abm/main/settings",
                &[
                    ("csrf_token", &csrf),
                    ("batch_size", "500"),
                    ("abm_url", ""),
                ],
                None,
            )
            .await;
        let entry = follow(&web, &saved, "/settings/abm/main", "settings_saved").await;
        assert!(entry.body.contains("value=\"500\""));
        let (_, view) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert_eq!(view["batch_size"], 500);
        assert_eq!(view["abm_url"], Value::Null);

        // The list shows the entry's health.
        let list = web.get("/settings/abm").await;
        for needle in ["href=\"/settings/abm/main\"", ">Active</span>", "never"] {
            assert!(list.body.contains(needle), "{needle}");
        }

        // Delete: a confirmation step; the wrong name deletes nothing.
        let confirm = web.get("/settings/abm/main/delete").await;
        assert_eq!(confirm.status, StatusCode::OK);
        assert!(confirm.body.contains("Delete ABM entry main?"));
        let wrong = web
            .post(
                "/settings/abm/main/delete",
                &[("csrf_token", &csrf), ("confirm_name", "mian")],
                None,
            )
            .await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
        assert!(wrong.body.contains("nothing was deleted"));
        assert_eq!(
            app.json(Method::GET, "/api/v1/abm/tokens/main", None)
                .await
                .0,
            StatusCode::OK
        );
        let no_csrf = web
            .post(
                "/settings/abm/main/delete",
                &[("confirm_name", "main")],
                None,
            )
            .await;
        assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
        let deleted = web
            .post(
                "/settings/abm/main/delete",
                &[("csrf_token", &csrf), ("confirm_name", "main")],
                None,
            )
            .await;
        let list = follow(&web, &deleted, "/settings/abm", "abm_deleted").await;
        assert!(list.body.contains("No ABM entries yet"));
        assert_eq!(
            web.get("/settings/abm/main").await.status,
            StatusCode::NOT_FOUND
        );

        // The audit log names the admin for each change.
        let (_, audit) = app.json(Method::GET, "/api/v1/audit?limit=20", None).await;
        let actions: Vec<&str> = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"] == "admin:alice")
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        for a in [
            "abm_token.create",
            "abm_token.upload",
            "abm_token.renew",
            "abm_token.set",
            "abm_token.delete",
        ] {
            assert!(actions.contains(&a), "{a} in {actions:?}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn sync_now_shows_progress_then_the_run_and_devices_appear() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let (web, csrf) = signed_in(&app).await;
        app.create_entry("empty").await;
        app.connect_abm("main").await;
        let _ = app.abm.sim.add_devices(120, None);

        // No token: Sync Now is not offered, and a forged POST gets the service's message.
        let page = web.get("/settings/abm/empty/sync").await;
        assert!(page.body.contains("upload the server token first"));
        assert!(!page.body.contains("id=\"sync-now\""));
        let refused = web
            .post("/settings/abm/empty/sync", &[("csrf_token", &csrf)], None)
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            refused.body.contains("has no server token yet"),
            "{}",
            refused.body
        );

        // ABM Devices offers Sync Now per entry with a token, and links the progress.
        let devices = web.get("/devices").await;
        assert!(devices.body.contains("action=\"/settings/abm/main/sync\""));
        assert!(!devices.body.contains("action=\"/settings/abm/empty/sync\""));
        assert!(devices.body.contains("href=\"/settings/abm/empty/sync\""));

        // A slow ABM and small pages: the run is seen going, with its progress so far.
        app.json(
            Method::PATCH,
            "/api/v1/abm/tokens/main",
            Some(serde_json::json!({ "batch_size": 20 })),
        )
        .await;
        app.abm
            .sim
            .inject_fault(Fault::Delay {
                millis: 150,
                count: Some(8),
                path: None,
            })
            .unwrap();
        let missing = web.post("/settings/abm/main/sync", &[], None).await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN, "CSRF required");
        let started = web
            .post("/settings/abm/main/sync", &[("csrf_token", &csrf)], None)
            .await;
        let running = follow(&web, &started, "/settings/abm/main/sync", "sync_started").await;
        assert!(running.body.contains("Sync started"));
        assert!(running.body.contains("aria-live=\"polite\""));
        assert!(
            running.body.contains("Sync running (started"),
            "{}",
            running.body
        );
        assert!(running.body.contains("hx-trigger=\"every 1s\""));
        // Sync Now again while it runs: the running run, not an error.
        let again = web
            .post("/settings/abm/main/sync", &[("csrf_token", &csrf)], None)
            .await;
        let page = follow(&web, &again, "/settings/abm/main/sync", "sync_running").await;
        assert!(page.body.contains("already running"));
        // The fragment htmx polls: progress and the runs table (out of band), no layout.
        let fragment = web.get_htmx("/settings/abm/main/sync").await;
        assert_eq!(fragment.status, StatusCode::OK);
        assert!(!fragment.body.contains("<html"), "{}", fragment.body);
        assert!(fragment.body.contains("id=\"sync-status\""));
        assert!(
            fragment
                .body
                .contains("id=\"sync-runs\" hx-swap-oob=\"true\"")
        );
        // A boosted link gets the whole page.
        let boosted = web.get("/settings/abm/main/sync").await;
        assert!(boosted.body.contains("<html"));

        // It ends: polling stops, the run is listed with its counts.
        let done = wait_sync_page(&web, "main").await;
        assert!(!done.body.contains("hx-trigger"), "polling stops");
        assert!(
            done.body.contains("Last sync started") && done.body.contains("succeeded after"),
            "{}",
            done.body
        );
        assert!(
            done.body
                .contains("120 devices fetched (120 added, 0 updated, 0 removed)"),
            "{}",
            done.body
        );
        assert!(done.body.contains(">Succeeded</span>"));
        assert!(
            done.body
                .contains("<td data-label=\"Trigger\">Sync Now</td>")
        );
        // Nothing changed since the poll saw the run's state: no content, nothing swapped.
        let (_, runs) = app
            .json(Method::GET, "/api/v1/abm/tokens/main/syncs", None)
            .await;
        let r = &runs[0];
        let seen = format!(
            "{}-succeeded-{}-{}-{}-{}",
            r["id"],
            r["pages"],
            r["counts"]["added"],
            r["counts"]["modified"],
            r["counts"]["removed"]
        );
        let same = web
            .get_htmx(&format!("/settings/abm/main/sync?seen={seen}"))
            .await;
        assert_eq!(same.status, StatusCode::NO_CONTENT);
        let changed = web
            .get_htmx("/settings/abm/main/sync?seen=0-running-0-0-0-0")
            .await;
        assert_eq!(changed.status, StatusCode::OK);

        // The entry page shows the same section and the last sync; the devices are there.
        let entry = web.get("/settings/abm/main").await;
        assert!(entry.body.contains("id=\"sync-now\""));
        assert!(entry.body.contains(">Succeeded</span>"));
        assert!(!entry.body.contains("Last successful sync</dt><dd>never"));
        let devices = web.get("/devices?entry=main&limit=200").await;
        assert_eq!(devices.rows(), 120, "{}", devices.body);

        // A failed run shows Apple's problem.
        app.abm
            .sim
            .inject_fault(Fault::Status {
                status: 400,
                count: 50,
                retry_after: None,
                path: Some("/devices/sync".to_string()),
            })
            .unwrap();
        let started = web
            .post("/settings/abm/main/sync", &[("csrf_token", &csrf)], None)
            .await;
        assert_eq!(started.status, StatusCode::SEE_OTHER);
        let failed = wait_sync_page(&web, "main").await;
        assert!(failed.body.contains(">Failed</span>"), "{}", failed.body);
        assert!(failed.body.contains("class=\"small run-error\""));
        app.stop().await;
    }
}

#[tokio::test]
async fn enrolled_devices_and_commands_from_the_dashboard() {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let app = &mdm.app;
        let serials = buy(&mdm, 2).await;
        let device = SimDevice::new(&app.abm.sim, &serials[0], &mdm.ca).unwrap();
        device.attach_apns(&mdm.apns.apns);
        let report = device.enroll_and_run(&app.abm.sim).await.unwrap();
        assert!(report.enrolled, "{report:?}");
        let udid = device.udid().to_string();
        assert_eq!(enrollment(app, &serials[0]).await["status"], "enrolled");
        let (web, csrf) = signed_in(app).await;

        // The list, its filters, a bad filter named.
        let list = web.get("/enrollments").await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(
            list.body
                .contains("href=\"/enrollments\" aria-current=\"page\"")
        );
        assert!(list.body.contains(&format!("href=\"/enrollments/{udid}\"")));
        assert!(
            list.body
                .contains(&format!("href=\"/devices/{}\"", serials[0]))
        );
        assert!(
            list.body.contains("1 enrolled device, by UDID."),
            "{}",
            list.body
        );
        let enrolled = web.get("/enrollments?status=enrolled").await;
        assert!(enrolled.body.contains(&udid));
        let out = web.get("/enrollments?status=checked_out").await;
        assert!(!out.body.contains(&udid));
        assert!(out.body.contains("id=\"no-enrollments\""));
        let by_serial = web
            .get(&format!("/enrollments?serial={}", serials[0]))
            .await;
        assert!(by_serial.body.contains(&udid));
        let other = web
            .get(&format!("/enrollments?serial={}", serials[1]))
            .await;
        assert!(!other.body.contains(&udid));
        let bad = web.get("/enrollments?status=asleep").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(
            bad.body.contains("status &#34;asleep&#34;: use one of"),
            "{}",
            bad.body
        );

        // The ABM device page links the enrollment.
        let abm_page = web.get(&format!("/devices/{}", serials[0])).await;
        assert!(
            abm_page.body.contains(&format!(
                "href=\"/enrollments/{udid}\" id=\"enrollment-link\""
            )),
            "{}",
            abm_page.body
        );

        // The device page: facts, the queue with DeviceConfigured from enrollment.
        let page = web.get(&format!("/enrollments/{udid}")).await;
        assert_eq!(page.status, StatusCode::OK);
        for needle in [
            "<h2 id=\"send-h\">Send a command</h2>",
            "DeviceConfigured",
            "<dt>Pushable</dt><dd>yes</dd>",
            "value=\"EraseDevice\"",
        ] {
            assert!(page.body.contains(needle), "{needle}");
        }
        assert_eq!(
            web.get("/enrollments/NO-SUCH-UDID").await.status,
            StatusCode::NOT_FOUND
        );

        // Send DeviceInformation: CSRF required; then queued, pushed, answered, shown.
        let path = format!("/enrollments/{udid}/commands");
        let forged = web
            .post(&path, &[("request_type", "DeviceInformation")], None)
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        let sent = web
            .post(
                &path,
                &[("csrf_token", &csrf), ("request_type", "DeviceInformation")],
                None,
            )
            .await;
        follow(
            &web,
            &sent,
            &format!("/enrollments/{udid}#commands"),
            "command_sent",
        )
        .await;
        let page = wait_answered(&web, &udid).await;
        assert!(
            page.body
                .contains("<span class=\"status status-acknowledged\">acknowledged</span>")
        );
        // The result plist, escaped in a <pre>.
        assert!(
            page.body
                .contains("&#60;key&#62;QueryResponses&#60;/key&#62;"),
            "{}",
            page.body
        );
        assert!(page.body.contains("admin:alice"), "who sent it");

        // InstallProfile with a file (multipart through htmx), then ProfileList shows it.
        let profile = mobileconfig("com.example.dashboard");
        let installed = web
            .post_multipart(
                &path,
                &[("request_type", "InstallProfile")],
                &[("profile_file", "wifi.mobileconfig", &profile)],
                Some(&csrf),
            )
            .await;
        assert_eq!(
            installed.status,
            StatusCode::SEE_OTHER,
            "{}",
            installed.body
        );
        wait_answered(&web, &udid).await;
        assert!(
            device
                .installed_profiles()
                .iter()
                .any(|p| p.identifier == "com.example.dashboard")
        );
        web.post(
            &path,
            &[("csrf_token", &csrf), ("request_type", "ProfileList")],
            None,
        )
        .await;
        let page = wait_answered(&web, &udid).await;
        assert!(page.body.contains("com.example.dashboard"));

        // Refused before anything is queued: erase without its confirmation, a remove
        // without an identifier, an unknown type.
        let (_, before) = app
            .json(
                Method::GET,
                &format!("/api/v1/enrollments/{udid}/commands"),
                None,
            )
            .await;
        let erase = web
            .post(
                &path,
                &[
                    ("csrf_token", &csrf),
                    ("request_type", "EraseDevice"),
                    ("pin", "123456"),
                ],
                None,
            )
            .await;
        assert_eq!(erase.status, StatusCode::BAD_REQUEST);
        assert!(erase.body.contains("tick the box"), "{}", erase.body);
        assert!(erase.body.contains("id=\"command-error\""));
        let remove = web
            .post(
                &path,
                &[("csrf_token", &csrf), ("request_type", "RemoveProfile")],
                None,
            )
            .await;
        assert_eq!(remove.status, StatusCode::BAD_REQUEST);
        assert!(remove.body.contains("RemoveProfile needs identifier"));
        let unknown = web
            .post(
                &path,
                &[("csrf_token", &csrf), ("request_type", "Restart")],
                None,
            )
            .await;
        assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
        assert!(unknown.body.contains("unknown request_type"));
        let (_, after) = app
            .json(
                Method::GET,
                &format!("/api/v1/enrollments/{udid}/commands"),
                None,
            )
            .await;
        assert_eq!(before, after, "nothing queued");

        // RemoveProfile with its identifier; the fragment htmx polls has no layout.
        web.post(
            &path,
            &[
                ("csrf_token", &csrf),
                ("request_type", "RemoveProfile"),
                ("identifier", "com.example.dashboard"),
            ],
            None,
        )
        .await;
        wait_answered(&web, &udid).await;
        assert!(
            !device
                .installed_profiles()
                .iter()
                .any(|p| p.identifier == "com.example.dashboard")
        );
        let fragment = web.get_htmx(&path).await;
        assert!(fragment.body.contains("id=\"command-queue\""));
        assert!(!fragment.body.contains("<html"));
        mdm.app.stop().await;
    }
}

/// Waits until no command of `udid` is queued or sent; returns its page.
async fn wait_answered(web: &WebClient, udid: &str) -> Page {
    for _ in 0..200 {
        let page = web.get(&format!("/enrollments/{udid}")).await;
        if !page.body.contains("hx-trigger=\"every 2s\"") {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a command of {udid} was not answered");
}

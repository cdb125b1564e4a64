//! The web dashboard over a real socket, without a browser: sign-in, sessions, CSRF, rate
//! limits (across instances), session expiry, sign-out, the token banner, assets, and the
//! devices list with its filters and pages, on every backend where storage is involved.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::time::Duration;

use common::web::{PASSWORD, WebClient, create_admin};
use common::{Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn sign_in_pages_csrf_and_sign_out() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        create_admin(&app, "alice", PASSWORD).await;
        let mut web = WebClient::new(&app);

        // Not signed in: pages redirect to the sign-in form with `next`.
        let root = web.get("/").await;
        assert_eq!(root.status, StatusCode::SEE_OTHER);
        assert_eq!(root.location(), "/devices");
        let page = web.get("/devices?os=iOS").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/signin?next=%2Fdevices%3Fos%3DiOS");
        let form = web.get("/signin?next=%2Fdevices").await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(
            form.body
                .contains("<form method=\"post\" action=\"/signin\">")
        );
        assert!(form.body.contains("autocomplete=\"current-password\""));

        // A wrong password is refused with a message that does not say which part was wrong.
        let wrong = web.sign_in("alice", "not the password", "/devices").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(
            wrong.body.contains("Wrong name or password."),
            "{}",
            wrong.body
        );
        assert!(web.session.is_none());
        let unknown = web.sign_in("mallory", PASSWORD, "/devices").await;
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);

        // A sign-in from another site is refused (login CSRF).
        web.origin = Some("https://evil.example".to_string());
        let cross = web.sign_in("alice", PASSWORD, "/devices").await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN);
        web.origin = Some(app.base.clone());

        // Signed in: the cookie is HttpOnly, SameSite=Strict, Path=/, and Secure because the
        // public URL is https; `next` only ever leads to a local path.
        let ok = web.sign_in("alice", PASSWORD, "//evil.example/x").await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
        assert_eq!(ok.location(), "/devices");
        let cookie = ok
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("guardmdm_session="))
            .unwrap();
        for attr in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Secure",
            "Max-Age=43200",
        ] {
            assert!(cookie.contains(attr), "{attr} in {cookie}");
        }
        let session = web.session.clone().unwrap();

        // The layout: landmarks, skip link, nav, the signed-in admin, security headers.
        let devices = web.get("/devices").await;
        assert_eq!(devices.status, StatusCode::OK);
        for needle in [
            "<a class=\"skip-link\" href=\"#main\">",
            "<header class=\"site-header\">",
            "<nav class=\"site-nav\" aria-label=\"Main\">",
            "<main id=\"main\"",
            "aria-current=\"page\"",
            "Signed in as <strong>alice</strong>",
            "<h1>ABM Devices</h1>",
            "/assets/htmx.min.js?v=",
        ] {
            assert!(devices.body.contains(needle), "{needle}");
        }
        let csp = devices.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(devices.headers["x-frame-options"], "DENY");
        assert_eq!(devices.headers["cache-control"], "no-store");

        // State changes need the CSRF token and a same-origin request.
        let csrf = devices.csrf();
        let missing = web.post("/signout", &[], None).await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN);
        assert!(missing.body.contains("security token"), "{}", missing.body);
        let wrong = web
            .post("/signout", &[("csrf_token", "forged")], None)
            .await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN);
        web.origin = Some("https://evil.example".to_string());
        let cross = web
            .post("/signout", &[("csrf_token", csrf.as_str())], None)
            .await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN);
        assert!(cross.body.contains("Origin check failed"));
        web.origin = None;
        let no_origin = web.post("/signout", &[], Some(&csrf)).await;
        assert_eq!(
            no_origin.status,
            StatusCode::FORBIDDEN,
            "neither Origin nor Referer"
        );
        web.origin = Some(app.base.clone());
        assert_eq!(
            web.get("/devices").await.status,
            StatusCode::OK,
            "still signed in"
        );

        // Sign-out (here with the htmx header form of the token) ends the session.
        let out = web.post("/signout", &[], Some(&csrf)).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
        assert_eq!(out.location(), "/signin");
        assert!(
            out.set_cookies()
                .iter()
                .any(|c| c.starts_with("guardmdm_session=;") && c.contains("Max-Age=0"))
        );
        let after = web.get("/devices").await;
        assert_eq!(
            after.status,
            StatusCode::SEE_OTHER,
            "the old cookie is dead"
        );
        web.session = None;
        let signin = web.get("/signin").await;
        assert!(signin.body.contains("Sign in"));
        web.session = Some(session);
        assert_eq!(web.get("/devices").await.status, StatusCode::SEE_OTHER);

        // The audit log names the admin.
        let (_, audit) = app.json(Method::GET, "/api/v1/audit?limit=10", None).await;
        let actions: Vec<(String, String)> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["actor"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            actions[..3],
            [
                ("admin.sign_out".to_string(), "admin:alice".to_string()),
                ("admin.sign_in".to_string(), "admin:alice".to_string()),
                ("admin.create".to_string(), "admin-token".to_string()),
            ]
        );
        // The REST API keeps its bearer tokens: a session cookie is not enough there.
        let resp = app
            .http
            .get(app.url("/api/v1/abm/tokens"))
            .header(
                "cookie",
                format!("guardmdm_session={}", web.session.clone().unwrap()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        app.stop().await;
    }
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_name_and_per_client_across_instances() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        create_admin(&app, "alice", PASSWORD).await;
        create_admin(&app, "bob", PASSWORD).await;
        let mut web = WebClient::new(&app);
        for _ in 0..4 {
            let p = web.sign_in("alice", "wrong password!", "/devices").await;
            assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        }
        // A success clears the name's count.
        assert_eq!(
            web.sign_in("alice", PASSWORD, "/devices").await.status,
            StatusCode::SEE_OTHER
        );
        web.session = None;
        // Five failures lock the name, on every instance sharing the database, even with
        // the right password; the message says when to retry.
        // (SQLite is one file per server: the second instance is the same one there.)
        let second = match backend {
            Backend::Postgres => Some(app.second_instance().await),
            Backend::Sqlite => None,
        };
        let mut other = WebClient::new(second.as_ref().unwrap_or(&app));
        for i in 0..5 {
            let client = if i % 2 == 0 { &mut web } else { &mut other };
            let p = client.sign_in("alice", "wrong password!", "/devices").await;
            assert_eq!(p.status, StatusCode::UNAUTHORIZED, "attempt {i}");
        }
        for client in [&mut web, &mut other] {
            let locked = client.sign_in("alice", PASSWORD, "/devices").await;
            assert_eq!(
                locked.status,
                StatusCode::TOO_MANY_REQUESTS,
                "{}",
                locked.body
            );
            assert!(
                locked
                    .body
                    .contains("Too many failed sign-in attempts. Try again after"),
                "{}",
                locked.body
            );
            let retry: i64 = locked.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((800..=900).contains(&retry), "{retry}");
        }
        // Other names are not locked by it...
        assert_eq!(
            web.sign_in("bob", PASSWORD, "/devices").await.status,
            StatusCode::SEE_OTHER
        );
        web.session = None;
        // ...until the client itself reaches 20 failures (9 so far from 127.0.0.1: the
        // success only cleared the name's count; refused attempts do not count).
        for i in 0..11 {
            let p = web
                .sign_in(&format!("guess{i}"), "wrong password!", "/devices")
                .await;
            assert_eq!(p.status, StatusCode::UNAUTHORIZED, "guess {i}");
        }
        let locked = web.sign_in("bob", PASSWORD, "/devices").await;
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
        if let Some(second) = second {
            second.stop().await;
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn idle_sessions_expire() {
    for backend in common::backends() {
        let app =
            TestApp::spawn_reachable(backend, &["--session-idle-timeout".into(), "2s".into()])
                .await;
        create_admin(&app, "alice", PASSWORD).await;
        let mut web = WebClient::new(&app);
        let ok = web.sign_in("alice", PASSWORD, "/devices").await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER);
        let cookie = ok.set_cookies().join("\n");
        assert!(!cookie.contains("Secure"), "http public URL: {cookie}");
        assert_eq!(web.get("/devices").await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let expired = web.get("/devices/ABC").await;
        assert_eq!(expired.status, StatusCode::SEE_OTHER);
        assert_eq!(expired.location(), "/signin?next=%2Fdevices%2FABC");
        // htmx requests are told where to go instead.
        let resp = reqwest::Client::new()
            .get(app.url("/devices"))
            .header("hx-request", "true")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()["hx-redirect"], "/signin?next=%2Fdevices");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_banner_on_every_page_for_tokens_that_need_an_admin() {
    use guardmdm_store::{NewAuditEvent, ServerTokenRecord, TokenProblem};
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        create_admin(&app, "alice", PASSWORD).await;
        let web = WebClient::signed_in(&app, "alice").await;
        assert!(!web.get("/devices").await.body.contains("class=\"banner"));
        for name in ["soon", "old", "terms", "fine"] {
            app.create_entry(name).await;
        }
        let store = app.store().await;
        let now = guardmdm_store::now();
        let audit = |t: &str| NewAuditEvent {
            at: now,
            actor: "system".into(),
            action: "abm_token.upload".into(),
            target: t.into(),
            details: serde_json::json!({}),
        };
        let record = |days: i64| ServerTokenRecord {
            sealed_token: vec![1; 40],
            expires_at: now + time::Duration::days(days),
            uploaded_at: now,
        };
        for (name, days) in [("soon", 12), ("old", -3), ("terms", 200), ("fine", 200)] {
            store
                .store_server_token(name, &record(days), None, &audit(name))
                .await
                .unwrap();
        }
        let problem = TokenProblem {
            kind: "terms_not_signed".into(),
            message: "Apple refuses calls until the new terms are accepted.".into(),
            since: now,
        };
        store
            .set_abm_problem("terms", Some(&problem), now)
            .await
            .unwrap();

        for path in ["/devices", "/devices/NOSUCHSERIAL1"] {
            let page = web.get(path).await;
            let banners = page.body.matches("<p><strong>ABM entry ").count();
            assert_eq!(banners, 3, "{path}: {}", page.body);
            for needle in [
                "ABM entry soon: server token expiring.</strong> Token expires in 11 days",
                "ABM entry old: server token expired.",
                "ABM entry terms: blocked until Apple&#39;s terms are accepted.",
                "accept the new terms and conditions",
                "download a new server token",
            ] {
                assert!(
                    page.body.contains(needle)
                        || page.body.contains(&needle.replace("&#39;", "&#x27;")),
                    "{path}: {needle}"
                );
            }
            assert!(!page.body.contains("ABM entry fine"));
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn assets_are_in_the_binary_and_cached() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let web = WebClient::new(&app);
    for (path, kind) in [
        ("/assets/htmx.min.js", "text/javascript"),
        ("/assets/dashboard.css", "text/css"),
    ] {
        let page = web.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(
            page.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert_eq!(
            page.headers["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(page.body.len() > 1000);
    }
    assert!(web.get("/assets/htmx.min.js").await.body.contains("htmx"));
    assert_eq!(
        web.get("/assets/other.js").await.status,
        StatusCode::NOT_FOUND
    );
    // The other surfaces are where they were.
    assert_eq!(web.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(
        web.get("/api/v1/devices").await.status,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn the_devices_list_filters_sorts_and_pages() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        app.connect_abm("main").await;
        let devices = app.abm.sim.add_devices(130, None);
        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "succeeded", "{run}");
        create_admin(&app, "alice", PASSWORD).await;
        let web = WebClient::signed_in(&app, "alice").await;

        // Pages of 50 by serial, with a next link until the end; every device once.
        let mut all = Vec::new();
        let mut href = Some("/devices?limit=50".to_string());
        let mut pages = 0;
        while let Some(h) = href {
            let page = web.get(&h).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            all.extend(page.serials());
            href = page.next_href();
            pages += 1;
            assert!(pages < 10);
        }
        assert_eq!(pages, 3);
        let mut expected: Vec<String> = devices.iter().map(|d| d.serial_number.clone()).collect();
        expected.sort();
        assert_eq!(all, expected);

        // Filter by OS: only iOS devices.
        let ios = web.get("/devices?os=iOS&limit=200").await;
        let ios_count = devices.iter().filter(|d| d.os == "iOS").count();
        assert_eq!(ios.rows(), ios_count);
        assert!(ios.body.contains("<option value=\"iOS\" selected>"));
        // Status: nothing has a profile (no defaults), so everything is Unassigned.
        // (The assignment pass that follows the sync records it; wait for it.)
        let mut unassigned = 0;
        for _ in 0..100 {
            unassigned = web.get("/devices?status=unassigned&limit=200").await.rows();
            if unassigned == 130 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(unassigned, 130);
        assert_eq!(web.get("/devices?status=enrolled").await.rows(), 0);
        // Search by serial prefix.
        let one = &expected[17];
        let prefix = &one[..one.len() - 2];
        let found = web
            .get(&format!("/devices?serial={}", prefix.to_lowercase()))
            .await;
        assert!(found.serials().contains(one), "{prefix}");
        assert!(found.serials().iter().all(|s| s.starts_with(prefix)));
        // Sorting: by serial descending, and by model.
        let desc = web.get("/devices?sort=serial&dir=desc&limit=5").await;
        let mut top: Vec<String> = expected.iter().rev().take(5).cloned().collect();
        assert_eq!(desc.serials(), top);
        let by_model = web.get("/devices?sort=model&limit=200").await;
        let models: Vec<String> = by_model
            .serials()
            .iter()
            .map(|s| {
                devices
                    .iter()
                    .find(|d| &d.serial_number == s)
                    .unwrap()
                    .model
                    .clone()
            })
            .collect();
        let mut sorted = models.clone();
        sorted.sort();
        if backend == Backend::Sqlite {
            assert_eq!(models, sorted, "SQLite sorts bytewise");
        } else {
            assert_eq!(models.len(), sorted.len());
        }
        top.clear();
        // Filters are reported, not crashed on.
        let bad = web.get("/devices?status=gone").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.body.contains("use unassigned, pending"), "{}", bad.body);
        let bad = web.get("/devices?after=garbage!").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.body.contains("page cursor is not valid"));
        let bad = web.get("/devices?entry=nope").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.body.contains("no ABM entry named"));

        // The device page explains the profile and gives the matching hints.
        let page = web.get(&format!("/devices/{one}")).await;
        assert_eq!(page.status, StatusCode::OK);
        for needle in [
            &format!("<h1>Device {one}</h1>"),
            "Why this profile",
            "Unassigned: no explicit profile",
            "Devices stuck in &#34;Unassigned&#34;",
            "Timeline",
            "First synced from ABM entry main",
        ] {
            let alt = needle.replace("&#34;", "&quot;");
            assert!(
                page.body.contains(needle) || page.body.contains(&alt),
                "{needle}: {}",
                page.body
            );
        }
        let missing = web.get("/devices/NOSUCHSERIAL1").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(
            missing
                .body
                .contains("no ABM device with serial NOSUCHSERIAL1")
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn stuck_devices_have_a_banner_a_filter_and_release_buttons() {
    use crate::setup_assistant::{not_now_device, silent_device, stuck, stuck_setup, wait_stuck};
    for backend in common::backends() {
        let (mdm, serials) = stuck_setup(backend, 2).await;
        let app = &mdm.app;
        create_admin(app, "alice", PASSWORD).await;
        let web = WebClient::signed_in(app, "alice").await;
        assert!(!web.get("/devices").await.body.contains("stuck-banner"));
        let busy = not_now_device(&mdm, &serials[0]).await;
        let silent = silent_device(&mdm, &serials[1]).await;
        wait_stuck(app, &busy, 2).await;

        // A banner with the count on every page, linking to the filter.
        for path in ["/devices", "/profiles", "/enrollments"] {
            let page = web.get(path).await;
            assert!(page.body.contains("id=\"stuck-banner\""), "{path}");
            assert!(
                page.body
                    .contains("<strong>2 devices: stuck in Setup Assistant.</strong>"),
                "{path}: {}",
                page.body
            );
            assert!(
                page.body.contains("href=\"/enrollments?stuck=1\""),
                "{path}"
            );
        }

        // The filter lists both with why, with a release button each and for the selection.
        let page = web.get("/enrollments?stuck=1").await;
        assert_eq!(page.status, StatusCode::OK);
        for needle in [
            busy.udid(),
            silent.udid(),
            "initial command InstallProfile pending",
            "no check-in since",
            "Release selected",
            "waiting in Setup Assistant longer than 2 seconds",
        ] {
            assert!(page.body.contains(needle), "{needle}: {}", page.body);
        }
        let csrf = page.csrf();
        let forged = web
            .post(
                "/enrollments/release",
                &[("csrf_token", "forged"), ("only", busy.udid())],
                None,
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
        assert_eq!(stuck(app).await.len(), 2, "a forged form releases nothing");

        // One device's button.
        let done = web
            .post(
                "/enrollments/release",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("udid", silent.udid()),
                    ("only", busy.udid()),
                ],
                None,
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        assert_eq!(done.location(), "/enrollments?stuck=1");
        common::mdm::pushed(&mdm, busy.udid()).await;
        assert!(!busy.status().awaiting_configuration);
        let left: Vec<Value> = stuck(app).await;
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0]["udid"], silent.udid(), "only the button's device");

        // The selection; the silent device stays stuck (it does not ask for DeviceConfigured)
        // but its initial commands are cancelled.
        let done = web
            .post(
                "/enrollments/release",
                &[("csrf_token", csrf.as_str()), ("udid", silent.udid())],
                None,
            )
            .await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
        let left = stuck(app).await;
        assert_eq!(left[0]["reason"]["kind"], "no_check_in", "{left:?}");
        let (_, audit) = app.json(Method::GET, "/api/v1/audit", None).await;
        let releases: Vec<&Value> = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "enrollment.release")
            .collect();
        assert_eq!(releases.len(), 2, "{audit}");
        assert!(
            releases.iter().all(|e| e["actor"] == "admin:alice"),
            "{audit}"
        );
        let page = web.get("/enrollments?stuck=1").await;
        assert!(
            page.body
                .contains("<strong>1 device: stuck in Setup Assistant.</strong>"),
            "{}",
            page.body
        );
        mdm.app.stop().await;
    }
}

//! Pushes run in the background, over a real socket on every backend: with APNs unreachable
//! (a listener that accepts and never answers) commands are still answered at once while the
//! pushes hang, and the enrollment shows its push pending, then failed with the reason (REST,
//! CLI, dashboard); with APNs stalled, 50 commands to one device make at most two pushes and
//! the device still gets all 50; a full push queue refuses a device's push and says why.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::time::Duration;

use common::mdm::{buy, setup, setup_with};
use common::web::{PASSWORD, WebClient, create_admin};
use guardmdm_sim::SimDevice;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Safety net for what must not wait for APNs (never a timing assertion: only a hang fails).
const SAFETY: Duration = Duration::from_secs(120);

/// An "APNs" that accepts connections and never answers: every push hangs until its timeout.
async fn silent_apns() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    (url, task)
}

async fn post_command(app: &common::TestApp, udid: &str) -> Value {
    let (status, c) = app
        .json(
            Method::POST,
            &format!("/api/v1/enrollments/{udid}/commands"),
            Some(json!({ "request_type": "DeviceInformation" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    c
}

async fn push_of(app: &common::TestApp, udid: &str) -> Value {
    let (status, e) = app
        .json(Method::GET, &format!("/api/v1/enrollments/{udid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    e["push"].clone()
}

#[tokio::test]
async fn commands_are_answered_while_pushes_to_an_unreachable_apns_hang() {
    for backend in common::backends() {
        let (apns_url, silent) = silent_apns().await;
        // Each push: 3 attempts of 3 s, so it hangs about 9 s before it fails.
        let mdm = setup_with(backend, &["--apns-url", &apns_url, "--apns-timeout", "3s"]).await;
        let app = &mdm.app;
        let serials = buy(&mdm, 1).await;
        // No APNs attached to the device: it runs one session itself after enrolling.
        let device = SimDevice::new(&app.abm.sim, &serials[0], &mdm.ca).unwrap();
        let report = tokio::time::timeout(SAFETY, device.enroll_and_run(&app.abm.sim))
            .await
            .expect("enrolling does not wait for the push")
            .unwrap();
        assert!(report.enrolled, "{report:?}");
        let udid = device.udid().to_string();

        let mut uuids = Vec::new();
        tokio::time::timeout(SAFETY, async {
            for _ in 0..100 {
                uuids.push(post_command(app, &udid).await["uuid"].clone());
            }
        })
        .await
        .expect("100 commands are answered without waiting for their pushes");
        // The last command's push (or the one it was coalesced into) cannot have failed yet.
        let push = push_of(app, &udid).await;
        assert_eq!(push["state"], "pending", "{push}");

        let (_, list) = app
            .json(
                Method::GET,
                &format!("/api/v1/enrollments/{udid}/commands?limit=1000"),
                None,
            )
            .await;
        let queued = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "queued" && uuids.contains(&c["uuid"]))
            .count();
        assert_eq!(queued, 100, "every command is queued");

        // Then the push fails, with the reason.
        let mut push = Value::Null;
        for _ in 0..600 {
            push = push_of(app, &udid).await;
            if push["state"] == "failed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(push["state"], "failed", "{push}");
        let error = push["error"].as_str().unwrap();
        assert!(
            error.contains("cannot reach APNs") && error.contains("gave up after 3 attempts"),
            "{error}"
        );
        assert!(push["last_attempt_at"].is_string(), "{push}");
        assert!(push["last_success_at"].is_null(), "{push}");

        // The CLI and the dashboard show it too.
        let cwd = tempfile::tempdir().unwrap();
        let out = common::run_cli(
            app,
            Some(common::ADMIN_TOKEN),
            cwd.path(),
            &["devices", "show", &serials[0]],
        )
        .await;
        assert!(out.ok, "{}", out.stderr);
        assert!(
            out.stdout.contains("failed: cannot reach APNs")
                && out.stdout.contains("last success never"),
            "{}",
            out.stdout
        );
        create_admin(app, "ada", PASSWORD).await;
        let web = WebClient::signed_in(app, "ada").await;
        let page = web.get(&format!("/enrollments/{udid}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains("Failed: cannot reach APNs"),
            "{}",
            page.body
        );
        let list = web.get("/enrollments").await;
        assert!(
            list.body.contains("Failed: cannot reach APNs"),
            "{}",
            list.body
        );

        // A push still hanging does not hold up the shutdown.
        post_command(app, &udid).await;
        assert_eq!(push_of(app, &udid).await["state"], "pending");
        tokio::time::timeout(SAFETY, mdm.app.stop())
            .await
            .expect("the server stops with a push in flight");
        silent.abort();
    }
}

#[tokio::test]
async fn commands_to_one_device_are_coalesced_into_few_pushes() {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let app = &mdm.app;
        let apns = &mdm.apns.apns;
        let serials = buy(&mdm, 1).await;
        let device = SimDevice::new(&app.abm.sim, &serials[0], &mdm.ca).unwrap();
        device.attach_apns(apns);
        assert!(device.enroll_and_run(&app.abm.sim).await.unwrap().enrolled);
        assert!(apns.settle(Duration::from_secs(30)).await);
        let udid = device.udid().to_string();
        // The enrollment's own push is done before the burst.
        for _ in 0..300 {
            if push_of(app, &udid).await["state"] == "sent" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(push_of(app, &udid).await["state"], "sent");
        let before = apns.pushes().len();

        // APNs stalls: the first push hangs, and the burst comes in meanwhile.
        apns.hold();
        let mut uuids = Vec::new();
        tokio::time::timeout(SAFETY, async {
            for _ in 0..50 {
                uuids.push(post_command(app, &udid).await["uuid"].clone());
            }
        })
        .await
        .expect("50 commands are answered while APNs stalls");
        assert_eq!(push_of(app, &udid).await["state"], "pending");
        assert!(
            apns.wait_held(1, SAFETY).await,
            "one push is waiting at APNs"
        );
        apns.release();

        // Every command reaches the device.
        let mut answered = 0;
        for _ in 0..600 {
            let (_, list) = app
                .json(
                    Method::GET,
                    &format!("/api/v1/enrollments/{udid}/commands?limit=1000"),
                    None,
                )
                .await;
            answered = list
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["status"] == "acknowledged" && uuids.contains(&c["uuid"]))
                .count();
            if answered == 50 && push_of(app, &udid).await["state"] == "sent" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(answered, 50, "the device got every command");
        assert!(apns.settle(SAFETY).await);
        let pushes = apns.pushes().len() - before;
        assert!(
            (1..=2).contains(&pushes),
            "50 commands made {pushes} pushes: one in flight, at most one more"
        );
        let push = push_of(app, &udid).await;
        assert_eq!(push["state"], "sent", "{push}");
        assert!(push["last_success_at"].is_string(), "{push}");
        mdm.app.stop().await;
    }
}

#[tokio::test]
async fn a_full_push_queue_refuses_the_push_and_says_so() {
    for backend in common::backends() {
        let (apns_url, silent) = silent_apns().await;
        // One push in flight (hanging for minutes), one device waiting: the third is refused.
        let mdm = setup_with(
            backend,
            &[
                "--apns-url",
                &apns_url,
                "--apns-timeout",
                "60s",
                "--push-concurrency",
                "1",
                "--push-queue-size",
                "1",
            ],
        )
        .await;
        let app = &mdm.app;
        let serials = buy(&mdm, 3).await;
        let mut udids = Vec::new();
        for serial in &serials {
            let device = SimDevice::new(&app.abm.sim, serial, &mdm.ca).unwrap();
            let report = tokio::time::timeout(SAFETY, device.enroll_and_run(&app.abm.sim))
                .await
                .expect("enrolling does not wait for the push")
                .unwrap();
            assert!(report.enrolled, "{report:?}");
            udids.push(device.udid().to_string());
        }
        assert_eq!(push_of(app, &udids[0]).await["state"], "pending");
        assert_eq!(push_of(app, &udids[1]).await["state"], "pending");
        let third = push_of(app, &udids[2]).await;
        assert_eq!(third["state"], "failed", "{third}");
        assert!(
            third["error"]
                .as_str()
                .unwrap()
                .contains("the push queue is full"),
            "{third}"
        );
        // A command to it is still queued and answered.
        post_command(app, &udids[2]).await;
        assert_eq!(push_of(app, &udids[2]).await["state"], "failed");
        tokio::time::timeout(SAFETY, mdm.app.stop())
            .await
            .expect("the server stops with a push in flight");
        silent.abort();
    }
}

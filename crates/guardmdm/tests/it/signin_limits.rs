//! Dashboard sign-in under attack, over a real socket: concurrent guesses cannot overrun the
//! per-name limit, concurrent password checks are capped (the rest are answered busy, not
//! counted), and a session in use is never ended by its idle timeout. On every backend.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::TestApp;
use common::web::{PASSWORD, WebClient, create_admin};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// One sign-in answer.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// Posts the sign-in form from `from` (a loopback address: the server counts failures per
/// client address), as the sign-in page does.
async fn sign_in(base: &str, from: IpAddr, name: &str, password: &str) -> Answer {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(from)
        .build()
        .unwrap();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("name", name), ("password", password), ("next", "/devices")])
        .finish();
    let resp = http
        .post(format!("{base}/signin"))
        .header("origin", base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    Answer {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

/// Sign-ins started at once, each `(from, name, password)`; the answers in order.
async fn at_once(app: &TestApp, tries: Vec<(IpAddr, String, String)>) -> Vec<Answer> {
    let tasks: Vec<_> = tries
        .into_iter()
        .map(|(from, name, password)| {
            let base = app.base.clone();
            tokio::spawn(async move { sign_in(&base, from, &name, &password).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// The i-th of several client addresses: 127.0.0.2, 127.0.0.3, …
fn loopback(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(i).unwrap()))
}

/// Failures stored for `name` (or from `client`) in the last hour.
async fn stored_failures(app: &TestApp, name: &str, client: &str) -> (usize, usize) {
    let f = app
        .store()
        .await
        .sign_in_failures(
            name,
            client,
            guardmdm_store::now() - time::Duration::hours(1),
            1000,
        )
        .await
        .unwrap();
    (f.by_name.len(), f.by_client.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_concurrent_guesses_for_one_name_get_exactly_five_password_checks() {
    for backend in common::backends() {
        // A wait long enough that no guess is answered busy: the limit alone decides.
        let app =
            TestApp::spawn_reachable(backend, &["--password-check-wait".into(), "60s".into()])
                .await;
        create_admin(&app, "alice", PASSWORD).await;
        let from = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let guesses = (0..30)
            .map(|i| (from, "alice".to_string(), format!("wrong guess {i}")))
            .collect();
        let answers = at_once(&app, guesses).await;
        let checked = answers
            .iter()
            .filter(|a| a.status == StatusCode::UNAUTHORIZED)
            .count();
        let limited = answers
            .iter()
            .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
            .count();
        assert_eq!((checked, limited), (5, 25), "{backend:?}");
        for a in &answers {
            let expected = if a.status == StatusCode::UNAUTHORIZED {
                "Wrong name or password."
            } else {
                "Too many failed sign-in attempts. Try again after"
            };
            assert!(a.body.contains(expected), "{}", a.body);
        }
        assert_eq!(
            stored_failures(&app, "alice", "127.0.0.1").await,
            (5, 5),
            "{backend:?}: five failures stored, refusals record nothing"
        );
        // Even the right password is refused now.
        let locked = sign_in(&app.base, from, "alice", PASSWORD).await;
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_checks_are_capped_and_the_rest_answered_busy() {
    for backend in common::backends() {
        // One check at a time and no waiting for it: concurrent sign-ins must be refused.
        let app = TestApp::spawn_reachable(
            backend,
            &[
                "--password-check-concurrency".into(),
                "1".into(),
                "--password-check-wait".into(),
                "0s".into(),
            ],
        )
        .await;
        for i in 0..10 {
            create_admin(&app, &format!("admin{i}"), PASSWORD).await;
        }
        // Sixty sign-ins at once, for sixty names, from sixty addresses (so no per-client
        // limit applies): ten right passwords, the rest unknown names.
        let tries = (0..60)
            .map(|i| {
                if i < 10 {
                    (loopback(i), format!("admin{i}"), PASSWORD.to_string())
                } else {
                    (loopback(i), format!("nobody{i}"), "a wrong password".into())
                }
            })
            .collect();
        let answers = at_once(&app, tries).await;
        let count = |s: StatusCode| answers.iter().filter(|a| a.status == s).count();
        let (ok, wrong, busy) = (
            count(StatusCode::SEE_OTHER),
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::SERVICE_UNAVAILABLE),
        );
        assert_eq!(
            ok + wrong + busy,
            60,
            "{backend:?}: nothing else (no other 5xx)"
        );
        assert!(busy > 0, "{backend:?}: some were answered busy");
        assert!(ok + wrong > 0, "{backend:?}: some were checked");
        for a in answers
            .iter()
            .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        {
            assert!(
                a.body
                    .contains("The server is busy checking other sign-ins"),
                "{}",
                a.body
            );
            assert_eq!(a.headers["retry-after"], "1");
        }
        // Busy attempts were not checked and are not counted as failures.
        let mut failures = 0;
        for i in 10..60 {
            failures += stored_failures(&app, &format!("nobody{i}"), &loopback(i).to_string())
                .await
                .0;
        }
        assert_eq!(
            failures, wrong,
            "{backend:?}: one failure per checked guess"
        );
        // The server still answers, and a busy admin can sign in now.
        let retry = answers[..10]
            .iter()
            .position(|a| a.status != StatusCode::SEE_OTHER)
            .unwrap_or(0);
        let again = sign_in(
            &app.base,
            loopback(retry),
            &format!("admin{retry}"),
            PASSWORD,
        )
        .await;
        assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
        app.stop().await;
    }
}

#[tokio::test]
async fn a_session_in_use_outlives_its_idle_timeout_from_sign_in() {
    for backend in common::backends() {
        let app =
            TestApp::spawn_reachable(backend, &["--session-idle-timeout".into(), "4s".into()])
                .await;
        create_admin(&app, "alice", PASSWORD).await;
        let mut web = WebClient::new(&app);
        let ok = web.sign_in("alice", PASSWORD, "/devices").await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER);
        // Used 3 s after sign-in, before the idle timeout...
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            web.get("/devices").await.status,
            StatusCode::OK,
            "{backend:?}"
        );
        // ...so still signed in 5 s after sign-in: its last use was 2 s ago.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            web.get("/devices").await.status,
            StatusCode::OK,
            "{backend:?}: ended although used 2 s ago"
        );
        // Really idle for longer than the timeout: signed out.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle = web.get("/devices").await;
        assert_eq!(idle.status, StatusCode::SEE_OTHER, "{backend:?}");
        assert_eq!(idle.location(), "/signin?next=%2Fdevices");
        app.stop().await;
    }
}

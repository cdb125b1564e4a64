//! ABM device sync end to end, against the simulator, on every backend: Sync Now, incremental
//! changes, runs and progress, cursor recovery, every fault the simulator injects, a crash at
//! any moment, two instances on one PostgreSQL, and the 5-minute schedule.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::time::Duration;

use common::{Backend, TestApp};
use guardmdm_sim::Fault;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn sync_now_fetches_everything_then_applies_changes() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let server = app.connect_abm("main").await;
        let _ = app.abm.sim.add_devices(250, None);

        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "succeeded", "{run}");
        assert_eq!(run["counts"]["added"], 250);
        assert!(
            run["pages"].as_u64().unwrap() >= 3,
            "pages of 100 (the default batch size): {run}"
        );
        assert_eq!(
            app.device_set("main", "assigned").await,
            app.abm_set(&server)
        );

        // New purchases, devices leaving, one coming back.
        let _ = app.abm.sim.add_devices(5, None);
        let leaving: Vec<String> = app.abm_set(&server).into_iter().take(3).collect();
        let _ = app.abm.sim.unassign_devices(&leaving);
        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "succeeded", "{run}");
        assert_eq!(
            (
                run["counts"]["added"].as_u64(),
                run["counts"]["removed"].as_u64()
            ),
            (Some(5), Some(3)),
            "{run}"
        );
        assert_eq!(
            app.device_set("main", "assigned").await,
            app.abm_set(&server)
        );
        let removed = app.device_set("main", "removed").await;
        assert_eq!(
            removed,
            leaving.iter().cloned().collect(),
            "removed from ABM, history kept"
        );
        let _ = app.abm.sim.assign_devices(&server, &leaving[..1]).unwrap();
        let run = app.sync("main", false).await;
        assert_eq!(run["counts"]["added"], 1, "{run}");
        assert!(
            app.device_set("main", "assigned")
                .await
                .contains(&leaving[0]),
            "restored"
        );

        // Runs are listed newest first, with their counts; the entry shows the last sync.
        let (_, runs) = app
            .json(Method::GET, "/api/v1/abm/tokens/main/syncs", None)
            .await;
        assert_eq!(runs.as_array().unwrap().len(), 3);
        assert_eq!(runs[0]["trigger"], "manual");
        let (_, entry) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert!(entry["last_sync_at"].is_string(), "{entry}");
        app.stop().await;
    }
}

/// A slow full fetch is listed as it goes: its staged pages are merged every
/// `stage_merge_every` while it runs, not only when it ends.
#[tokio::test]
async fn a_slow_full_fetch_lists_its_devices_while_it_runs() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let server = app.connect_abm("main").await;
        let store = app.store().await;
        let entry_id = store.get_abm_entry("main").await.unwrap().id;
        // A sync the server started on its own may be going: let it end before ABM fills.
        for _ in 0..1000 {
            let runs = store.list_sync_runs(entry_id, 1).await.unwrap();
            if runs.first().is_none_or(|r| r.outcome != "running") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = app.abm.sim.add_devices(2000, None);
        // 20 pages of 100, 40 ms each: about a second of fetching.
        app.abm
            .sim
            .inject_fault(Fault::Delay {
                millis: 40,
                count: None,
                path: None,
            })
            .unwrap();
        assert_eq!(store.count_abm_devices(entry_id, false).await.unwrap(), 0);
        let previous = store
            .list_sync_runs(entry_id, 1)
            .await
            .unwrap()
            .first()
            .map_or(0, |r| r.id.get());
        let instance = app.instance().await;
        let sync = instance
            .sync
            .clone()
            .with_stage_merge_every(Duration::from_millis(150));
        // A full resync stages its pages like a first sync.
        let task = tokio::spawn(async move {
            sync.sync_inline("main", guardmdm_service::Trigger::FullResync)
                .await
        });
        // Some devices listed while the run still fetches.
        let mut listed_mid_run = None;
        for _ in 0..1000 {
            let runs = store.list_sync_runs(entry_id, 1).await.unwrap();
            let Some(run) = runs.first().filter(|r| r.id.get() > previous) else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            if run.outcome != "running" {
                break;
            }
            let listed = store.count_abm_devices(entry_id, false).await.unwrap();
            if listed > 0 && listed < 2000 {
                listed_mid_run = Some(listed);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let run = task
            .await
            .unwrap()
            .unwrap()
            .expect("no other run holds the entry");
        assert_eq!(run.outcome, "succeeded", "{run:?}");
        assert!(
            listed_mid_run.is_some(),
            "no device was listed before the full fetch ended: {run:?}"
        );
        assert_eq!(
            app.device_set("main", "assigned").await,
            app.abm_set(&server)
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_second_sync_now_returns_the_running_one() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.connect_abm("main").await;
    let _ = app.abm.sim.add_devices(300, None);
    app.abm
        .sim
        .inject_fault(Fault::Delay {
            millis: 200,
            count: Some(4),
            path: None,
        })
        .unwrap();
    let (first_status, first) = app
        .json(Method::POST, "/api/v1/abm/tokens/main/syncs", None)
        .await;
    let (second_status, second) = app
        .json(Method::POST, "/api/v1/abm/tokens/main/syncs", None)
        .await;
    assert_eq!(
        (first_status, second_status),
        (StatusCode::ACCEPTED, StatusCode::OK)
    );
    assert_eq!(first["run"]["id"], second["run"]["id"]);
    assert_eq!(
        (first["started"].as_bool(), second["started"].as_bool()),
        (Some(true), Some(false))
    );
    // Live progress while it runs.
    let id = first["run"]["id"].as_i64().unwrap();
    let run = app.wait_run("main", id).await;
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(run["counts"]["added"], 300);
    app.stop().await;
}

#[tokio::test]
async fn expired_cursors_refetch_everything_and_reconcile() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let server = app.connect_abm("main").await;
        let _ = app.abm.sim.add_devices(120, None);
        app.sync("main", false).await;
        let gone: Vec<String> = app.abm_set(&server).into_iter().take(4).collect();
        let _ = app.abm.sim.unassign_devices(&gone);
        // More than 7 days without a sync: the cursor is dead.
        app.abm.sim.advance_clock(Duration::from_secs(8 * 86_400));
        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "succeeded", "{run}");
        assert_eq!(
            app.device_set("main", "assigned").await,
            app.abm_set(&server)
        );
        let removed = app.device_set("main", "removed").await;
        assert!(gone.iter().all(|s| removed.contains(s)), "{removed:?}");
        // A full resync on purpose reconciles too.
        let extra: Vec<String> = app.abm_set(&server).into_iter().take(2).collect();
        let _ = app.abm.sim.unassign_devices(&extra);
        let run = app.sync("main", true).await;
        assert_eq!(
            (run["outcome"].as_str(), run["trigger"].as_str()),
            (Some("succeeded"), Some("full_resync")),
            "{run}"
        );
        assert_eq!(
            app.device_set("main", "assigned").await,
            app.abm_set(&server)
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn terms_rejected_tokens_and_transient_faults() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let server = app.connect_abm("main").await;
        let _ = app.abm.sim.add_devices(50, None);

        // Terms not signed: the run stops, the entry says what to do, and the schedule skips it.
        app.abm.sim.inject_fault(Fault::TermsNotSigned).unwrap();
        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "failed");
        assert!(run["error"].as_str().unwrap().contains("accept"), "{run}");
        let (_, entry) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert_eq!(entry["health"]["state"], "terms_not_signed");
        app.abm.sim.clear_faults();
        let run = app.sync("main", false).await;
        assert_eq!(
            run["outcome"], "succeeded",
            "Sync Now after accepting: {run}"
        );
        let (_, entry) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert_eq!(entry["health"]["state"], "active", "the problem is cleared");

        // Network trouble: the run fails with the troubleshooting hint; nothing is lost.
        let _ = app.abm.sim.add_devices(10, None);
        app.abm
            .sim
            .inject_fault(Fault::Status {
                status: 503,
                count: 20,
                retry_after: None,
                path: None,
            })
            .unwrap();
        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "failed");
        assert!(
            run["error"]
                .as_str()
                .unwrap()
                .contains("check firewall rules and retry"),
            "{run}"
        );
        app.abm.sim.clear_faults();
        app.abm
            .sim
            .inject_fault(Fault::MalformedJson {
                count: 1,
                path: None,
            })
            .unwrap();
        assert_eq!(app.sync("main", false).await["outcome"], "failed");
        app.abm
            .sim
            .inject_fault(Fault::Delay {
                millis: 100,
                count: Some(2),
                path: None,
            })
            .unwrap();
        app.abm.sim.inject_fault(Fault::ExpireSessions).unwrap();
        assert_eq!(app.sync("main", false).await["outcome"], "succeeded");
        assert_eq!(
            app.device_set("main", "assigned").await,
            app.abm_set(&server)
        );

        // Apple's repeated cursor: the run stops and records the anomaly instead of looping.
        let _ = app.abm.sim.add_devices(150, None);
        app.abm
            .sim
            .inject_fault(Fault::RepeatedCursor { count: 1 })
            .unwrap();
        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "anomaly", "{run}");
        assert_eq!(app.sync("main", false).await["outcome"], "succeeded");
        assert_eq!(
            app.device_set("main", "assigned").await,
            app.abm_set(&server)
        );

        // 429 with Retry-After is waited out; expired cursors are recovered from.
        app.abm
            .sim
            .inject_fault(Fault::Status {
                status: 429,
                count: 1,
                retry_after: Some(1),
                path: None,
            })
            .unwrap();
        assert_eq!(app.sync("main", false).await["outcome"], "succeeded");
        let _ = app.abm.sim.add_devices(7, None);
        app.abm.sim.inject_fault(Fault::ExpireCursors).unwrap();
        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "succeeded", "{run}");
        assert_eq!(
            app.device_set("main", "assigned").await,
            app.abm_set(&server)
        );

        // Access denied: stopped, marked rejected; cleared by the next successful sync.
        app.abm.sim.inject_fault(Fault::AccessDenied).unwrap();
        let run = app.sync("main", false).await;
        assert!(
            run["error"].as_str().unwrap().contains("ACCESS_DENIED"),
            "{run}"
        );
        let (_, entry) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert_eq!(entry["health"]["state"], "rejected");
        app.abm.sim.clear_faults();
        assert_eq!(app.sync("main", false).await["outcome"], "succeeded");

        // A newer token downloaded elsewhere revokes ours: rejected, with what to do.
        let _ = app.download_token(&server);
        app.abm.sim.expire_sessions();
        let run = app.sync("main", false).await;
        assert_eq!(run["outcome"], "failed");
        let (_, entry) = app.json(Method::GET, "/api/v1/abm/tokens/main", None).await;
        assert_eq!(entry["health"]["state"], "rejected", "{entry}");
        app.stop().await;
    }
}

#[tokio::test]
async fn an_expired_token_stops_its_sync_and_nothing_else() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let server = app.connect_abm("main").await;
    let _ = app.abm.sim.add_devices(20, None);
    app.create_entry("old").await;
    let store = app.store().await;
    let now = guardmdm_store::now();
    let expired = guardmdm_store::ServerTokenRecord {
        sealed_token: vec![1; 40],
        expires_at: now - time::Duration::days(1),
        uploaded_at: now - time::Duration::days(366),
    };
    let audit = guardmdm_store::NewAuditEvent {
        at: now,
        actor: "test".into(),
        action: "test.arrange".into(),
        target: "old".into(),
        details: serde_json::json!({}),
    };
    store
        .store_server_token("old", &expired, None, &audit)
        .await
        .unwrap();
    let run = app.sync("old", false).await;
    assert_eq!(run["outcome"], "failed");
    assert_eq!(
        run["error"],
        guardmdm_service::sync_rules::TOKEN_EXPIRED_MESSAGE
    );
    let run = app.sync("main", false).await;
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(
        app.device_set("main", "assigned").await,
        app.abm_set(&server)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_crash_at_any_moment_loses_and_duplicates_nothing() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let server = app.connect_abm("main").await;
        let _ = app.abm.sim.add_devices(2000, None);
        // Slow pages, so the crashes land between pages as well as inside them.
        app.abm
            .sim
            .inject_fault(Fault::Delay {
                millis: 15,
                count: None,
                path: None,
            })
            .unwrap();
        let store = app.store().await;
        let entry_id = store.get_abm_entry("main").await.unwrap().id;
        // The first crash lands once the first page is stored (so one run surely dies
        // mid-way, however loaded the machine), the others at fixed moments after the start.
        for crash_after_ms in [0_u64, 10, 40, 75, 120, 180, 260, 350] {
            let crashed = app.instance().await;
            let holder = crashed.sync.holder().to_string();
            let sync = crashed.sync.clone();
            let task = tokio::spawn(async move {
                sync.sync_inline("main", guardmdm_service::Trigger::Manual)
                    .await
            });
            if crash_after_ms == 0 {
                for _ in 0..2000 {
                    let runs = store.list_sync_runs(entry_id, 1).await.unwrap();
                    if runs.first().is_some_and(|r| r.pages > 0) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(crash_after_ms)).await;
            task.abort();
            let _ = task.await;
            // Its claim runs in a task of its own (a caller going away cannot cut it short):
            // the instance is gone once that has settled.
            crashed.sync.wait().await;
            // The dead instance's lease would expire; let it go now.
            store.release_sync_lease(entry_id, &holder).await.unwrap();
        }
        app.abm.sim.clear_faults();
        let survivor = app.instance().await;
        let run = survivor
            .sync
            .sync_inline("main", guardmdm_service::Trigger::Manual)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.outcome, "succeeded", "{run:?}");
        assert_eq!(
            app.device_set("main", "assigned").await,
            app.abm_set(&server),
            "the exact device set"
        );
        let runs = store.list_sync_runs(entry_id, 100).await.unwrap();
        let added: u64 = runs.iter().map(|r| r.counts.added).sum();
        assert_eq!(
            added, 2000,
            "every device added exactly once across the crashed runs: {runs:?}"
        );
        assert!(
            runs.iter().any(|r| r.outcome == "interrupted"),
            "crashed runs are marked interrupted: {runs:?}"
        );
        assert!(runs.iter().all(|r| r.outcome != "running"));
        app.stop().await;
    }
}

#[tokio::test]
async fn two_instances_on_postgresql_never_sync_one_entry_twice() {
    if common::pg_admin_url().is_none() {
        eprintln!(
            "SKIPPED: set GUARDMDM_TEST_DATABASE_URL to run the two-instance test on PostgreSQL"
        );
        return;
    }
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.second_instance().await;
    let server = a.connect_abm("main").await;
    let _ = a.abm.sim.add_devices(400, None);
    let path = "/api/v1/abm/tokens/main/syncs";
    // Sync Now on both at the same moment: one starts the run, the other is answered that
    // same run (never a 409 while a run exists). Several rounds, as it is a race.
    for round in 0..4 {
        let _ = a.abm.sim.add_devices(10, None);
        a.abm
            .sim
            .inject_fault(Fault::Delay {
                millis: 150,
                count: Some(6),
                path: None,
            })
            .unwrap();
        let ((sa, ra), (sb, rb)) = tokio::join!(
            a.json(Method::POST, path, None),
            b.json(Method::POST, path, None)
        );
        let mut statuses = [sa, sb];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::ACCEPTED],
            "round {round}: one starts, the other is answered the run: {sa} {ra} / {sb} {rb}"
        );
        assert_eq!(
            ra["run"]["id"], rb["run"]["id"],
            "round {round}: the same run: {ra} / {rb}"
        );
        let run = a.wait_run("main", ra["run"]["id"].as_i64().unwrap()).await;
        assert_eq!(run["outcome"], "succeeded", "{run}");
    }
    // The same from the dashboard: one instance starts the run, the other says it runs.
    common::web::create_admin(&a, "alice", common::web::PASSWORD).await;
    let web_a = common::web::WebClient::signed_in(&a, "alice").await;
    let web_b = common::web::WebClient::signed_in(&b, "alice").await;
    let csrf_a = web_a.get("/settings/abm").await.csrf();
    let csrf_b = web_b.get("/settings/abm").await.csrf();
    a.abm
        .sim
        .inject_fault(Fault::Delay {
            millis: 150,
            count: Some(6),
            path: None,
        })
        .unwrap();
    let form = "/settings/abm/main/sync";
    let (fields_a, fields_b) = (
        [("csrf_token", csrf_a.as_str())],
        [("csrf_token", csrf_b.as_str())],
    );
    let (pa, pb) = tokio::join!(
        web_a.post(form, &fields_a, None),
        web_b.post(form, &fields_b, None)
    );
    let mut flashes: Vec<String> = [&pa, &pb]
        .iter()
        .map(|p| {
            assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
            p.set_cookies()
                .into_iter()
                .find_map(|c| {
                    c.strip_prefix("guardmdm_flash=")
                        .map(|v| v.split(';').next().unwrap().to_string())
                })
                .unwrap()
        })
        .collect();
    flashes.sort();
    assert_eq!(flashes, ["sync_running", "sync_started"]);
    let (_, runs) = b.json(Method::GET, path, None).await;
    let run = a.wait_run("main", runs[0]["id"].as_i64().unwrap()).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    let (_, runs) = b.json(Method::GET, path, None).await;
    assert_eq!(runs.as_array().unwrap().len(), 5, "one run a round: {runs}");
    assert_eq!(b.device_set("main", "assigned").await, a.abm_set(&server));

    // Instance "dead" took the lease and stopped without giving it back; it expires in 2 s.
    let store = a.store().await;
    let entry_id = store.get_abm_entry("main").await.unwrap().id;
    let now = guardmdm_store::now();
    assert!(
        store
            .try_acquire_sync_lease(entry_id, "dead", now - time::Duration::seconds(118), 120)
            .await
            .unwrap()
    );
    let dead_run = store
        .start_sync_run(entry_id, "scheduled", "dead", now)
        .await
        .unwrap();
    let (status, body) = b.json(Method::POST, path, None).await;
    assert_eq!(
        (status, body["run"]["id"].as_i64()),
        (StatusCode::OK, Some(dead_run.id.get())),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = b.json(Method::POST, path, None).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "taken over after the lease expired: {body}"
    );
    let run = b
        .wait_run("main", body["run"]["id"].as_i64().unwrap())
        .await;
    assert_eq!(run["outcome"], "succeeded");
    assert_eq!(
        store.get_sync_run(dead_run.id).await.unwrap().outcome,
        "interrupted"
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_device_assigned_in_abm_appears_by_the_next_scheduled_sync() {
    assert_eq!(
        guardmdm_service::dep_sync::SYNC_INTERVAL,
        Duration::from_secs(300),
        "5 minutes, fixed"
    );
    let app = TestApp::spawn(Backend::Sqlite).await;
    let server = app.connect_abm("main").await;
    let _ = app.abm.sim.add_devices(10, None);
    // The schedule, with the interval scaled down from 5 minutes to a fraction of a second.
    let scheduler = app.instance().await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let schedule = tokio::spawn(
        scheduler
            .sync
            .clone()
            .run_schedule_until(Duration::from_millis(200), cancel.clone()),
    );
    let bought: Vec<String> = app
        .abm
        .sim
        .add_devices(3, None)
        .into_iter()
        .map(|d| d.serial_number)
        .collect();
    let mut seen = false;
    for _ in 0..50 {
        let set = app.device_set("main", "assigned").await;
        if bought.iter().all(|s| set.contains(s)) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "new devices appeared without Sync Now");
    cancel.cancel();
    schedule.await.unwrap();
    scheduler.sync.wait().await;
    assert_eq!(
        app.device_set("main", "assigned").await,
        app.abm_set(&server)
    );
    app.stop().await;
}

//! A `guardmdm serve` process killed with SIGKILL in the middle of a sync, end to end: the
//! real binary as a child process against the ABM simulator. After the kill, Sync Now starts
//! a new run at once on SQLite (restarted on the same data dir) and once the dead instance's
//! lease lapsed on PostgreSQL (the survivor of two instances); `abm sync --wait` following
//! the dead run says it stopped and exits non-zero; no device is lost or duplicated.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::ADMIN_TOKEN;
use common::serve::Serve;
use guardmdm_sim::{Fault, RunningSimulator, SimConfig, Simulator};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::Command;

/// Devices in the simulated ABM: 40 pages of the default batch size.
const DEVICES: usize = 4000;

impl Serve {
    /// Entry `main`, registered in the simulated ABM as its default MDM server, its token
    /// uploaded. Returns the server's uuid.
    async fn connect_abm(&self, abm: &RunningSimulator) -> String {
        let (status, body) = self
            .json(
                Method::POST,
                "/api/v1/abm/tokens",
                Some(serde_json::json!({ "name": "main" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let pem = self
            .http
            .get(self.url("/api/v1/abm/tokens/main/public-key"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let server = abm
            .sim
            .register_server("GuardMDM main", &pem)
            .unwrap()
            .server_uuid;
        abm.sim.set_default_server(None, Some(&server)).unwrap();
        let token = abm.sim.download_token(&server, None).unwrap().contents;
        let resp = self
            .http
            .put(self.url("/api/v1/abm/tokens/main/server-token"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/pkcs7-mime")
            .body(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        server
    }

    async fn sync_now(&self) -> (StatusCode, Value) {
        self.json(Method::POST, "/api/v1/abm/tokens/main/syncs", None)
            .await
    }

    async fn run(&self, id: i64) -> Value {
        let (status, run) = self
            .json(
                Method::GET,
                &format!("/api/v1/abm/tokens/main/syncs/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        run
    }

    /// Polls run `id` until it has stored `pages` pages (it is mid-way).
    async fn wait_pages(&self, id: i64, pages: u64) {
        for _ in 0..1500 {
            let run = self.run(id).await;
            assert_eq!(run["outcome"], "running", "still running: {run}");
            if run["pages"].as_u64().unwrap() >= pages {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("run {id} never reached {pages} pages");
    }

    /// Polls run `id` until it ends.
    async fn wait_end(&self, id: i64) -> Value {
        for _ in 0..1200 {
            let run = self.run(id).await;
            if run["outcome"] != "running" {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {id} did not end");
    }

    /// Every serial GuardMDM lists as assigned to `main`, each listed once.
    async fn device_set(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut after = String::new();
        loop {
            let path =
                format!("/api/v1/devices?token=main&status=assigned&limit=1000&after={after}");
            let (code, page) = self.json(Method::GET, &path, None).await;
            assert_eq!(code, StatusCode::OK, "{page}");
            let page = page.as_array().unwrap().clone();
            for d in &page {
                let serial = d["serial_number"].as_str().unwrap().to_string();
                assert!(out.insert(serial), "listed twice");
            }
            if page.len() < 1000 {
                return out;
            }
            after = page.last().unwrap()["serial_number"]
                .as_str()
                .unwrap()
                .to_string();
        }
    }

    /// Every run of `main`, newest first.
    async fn runs(&self) -> Vec<Value> {
        let (code, runs) = self
            .json(Method::GET, "/api/v1/abm/tokens/main/syncs?limit=100", None)
            .await;
        assert_eq!(code, StatusCode::OK, "{runs}");
        runs.as_array().unwrap().clone()
    }

    /// The devices are exactly ABM's and each was added by exactly one run.
    async fn assert_complete(&self, abm: &RunningSimulator, server: &str) {
        let in_abm: BTreeSet<String> = abm
            .sim
            .devices(Some(server), 0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|d| d.serial_number)
            .collect();
        assert_eq!(in_abm.len(), DEVICES);
        assert_eq!(self.device_set().await, in_abm, "the exact device set");
        let runs = self.runs().await;
        let added: u64 = runs
            .iter()
            .map(|r| r["counts"]["added"].as_u64().unwrap())
            .sum();
        assert_eq!(
            added, DEVICES as u64,
            "every device added once across the runs: {runs:?}"
        );
        assert!(runs.iter().all(|r| r["outcome"] != "running"), "{runs:?}");
    }
}

async fn simulator() -> RunningSimulator {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let abm = Simulator::new(SimConfig::default())
        .start(listener)
        .unwrap();
    let _ = abm.sim.add_devices(DEVICES, None);
    abm
}

/// Slow ABM pages, so a sync is mid-way for seconds.
fn slow_pages(abm: &RunningSimulator) {
    abm.sim
        .inject_fault(Fault::Delay {
            millis: 60,
            count: None,
            path: None,
        })
        .unwrap();
}

#[tokio::test]
async fn sqlite_after_kill_9_sync_now_starts_a_new_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let abm = simulator().await;
    let first = Serve::start(&data, &abm.base_url(), &[]).await;
    let server = first.connect_abm(&abm).await;
    slow_pages(&abm);
    let (status, start) = first.sync_now().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{start}");
    let dead = start["run"]["id"].as_i64().unwrap();
    first.wait_pages(dead, 5).await;
    first.kill_9().await;

    // Restarted on the same data dir, within the dead process's 2-minute lease.
    let second = Serve::start(&data, &abm.base_url(), &[]).await;
    let stopped = second.run(dead).await;
    assert_eq!(stopped["outcome"], "interrupted", "{stopped}");
    assert!(
        stopped["error"]
            .as_str()
            .unwrap()
            .contains("stopped while syncing"),
        "{stopped}"
    );
    assert!(stopped["pages"].as_u64().unwrap() >= 5, "{stopped}");
    // Sync Now is answered a new run at once (started by it, or by the schedule's first
    // tick at start-up a moment before), never the dead one.
    let (status, start) = second.sync_now().await;
    assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::OK,
        "{status} {start}"
    );
    let fresh = start["run"]["id"].as_i64().unwrap();
    assert!(fresh > dead, "a new run: {start}");
    assert_eq!(start["run"]["outcome"], "running", "{start}");
    abm.sim.clear_faults();
    let run = second.wait_end(fresh).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    second.assert_complete(&abm, &server).await;
    second.kill_9().await;
}

#[tokio::test]
async fn postgres_the_survivor_takes_over_once_the_killed_instance_lease_lapsed() {
    let Some(admin_url) = common::pg_admin_url() else {
        eprintln!("SKIPPED: set GUARDMDM_TEST_DATABASE_URL to run the two-instance kill test");
        return;
    };
    let database = guardmdm_store_postgres::testing::fresh_database(&admin_url)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let abm = simulator().await;
    // A short lease, so the test waits seconds, not minutes.
    let args = [
        "--database-url",
        database.as_str(),
        "--sync-lease-ttl",
        "6s",
    ];
    let a = Serve::start(&dir.path().join("a"), &abm.base_url(), &args).await;
    let key = std::fs::read_to_string(dir.path().join("a/secret.key")).unwrap();
    let mut b_args = args.to_vec();
    b_args.extend(["--secret-key", key.trim()]);
    let b = Serve::start(&dir.path().join("b"), &abm.base_url(), &b_args).await;
    let server = a.connect_abm(&abm).await;
    slow_pages(&abm);
    let (status, start) = a.sync_now().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{start}");
    let dead = start["run"]["id"].as_i64().unwrap();
    a.wait_pages(dead, 5).await;
    a.kill_9().await;

    // While the killed instance's lease lives, Sync Now on the survivor answers its run;
    // `--wait` follows it until the lease lapsed, then says it stopped and fails.
    let follow = Command::new(env!("CARGO_BIN_EXE_guardmdm"))
        .args(["abm", "sync", "main", "--wait"])
        .env("GUARDMDM_URL", &b.base)
        .env("GUARDMDM_API_TOKEN", ADMIN_TOKEN)
        .kill_on_drop(true)
        .output();
    let Ok(out) = tokio::time::timeout(Duration::from_secs(120), follow).await else {
        panic!("`abm sync --wait` kept following the dead run");
    };
    let out = out.unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("Already running: sync #{dead}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "sync #{dead} of \"main\" stopped before it finished"
        )) && stderr.contains("stopped while syncing"),
        "{stderr}"
    );
    let stopped = b.run(dead).await;
    assert_eq!(stopped["outcome"], "interrupted", "{stopped}");

    // The survivor's Sync Now starts a new run from the saved cursor.
    let (status, start) = b.sync_now().await;
    assert_eq!(status, StatusCode::ACCEPTED, "{start}");
    let fresh = start["run"]["id"].as_i64().unwrap();
    assert!(fresh > dead);
    abm.sim.clear_faults();
    let run = b.wait_end(fresh).await;
    assert_eq!(run["outcome"], "succeeded", "{run}");
    b.assert_complete(&abm, &server).await;
    b.kill_9().await;
}

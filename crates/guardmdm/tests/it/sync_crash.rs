//! A `guardmdm serve` process killed with SIGKILL in the middle of a sync, end to end: the
//! real binary as a child process against the ABM simulator. After the kill, Sync Now starts
//! a new run at once on SQLite (restarted on the same data dir) and once the dead instance's
//! lease lapsed on PostgreSQL (the survivor of two instances); `abm sync --wait` following
//! the dead run says it stopped and exits non-zero; no device is lost or duplicated.
//!
//! Then, per backend, SIGKILLs at random moments (a seeded RNG; the seed is printed, and
//! `GUARDMDM_CRASH_SEED` replays it) spread over a whole initial sync, from its very start
//! to after its last page, and over incremental syncs of devices added, unassigned and
//! assigned again in ABM, the server restarted on the same data after each; after a last
//! sync, GuardMDM's devices are exactly ABM's, every run ended, and a further sync changes
//! nothing.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::serve::Serve;
use common::{ADMIN_TOKEN, Backend};
use guardmdm_sim::rng::SplitMix64;
use guardmdm_sim::{Fault, RunningSimulator, SimConfig, Simulator};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::Command;

/// Devices in the simulated ABM: 40 pages of the default batch size.
const DEVICES: usize = 4000;
/// Pages of a full fetch of [`DEVICES`].
const FETCH_PAGES: u64 = 40;
/// SIGKILLs spread over the initial full sync in the random-kill tests.
const INITIAL_KILLS: usize = 20;
/// SIGKILLs during incremental syncs after it, each after a change in ABM. On PostgreSQL each
/// cycle waits for the dead instance's 2-second lease to lapse: keep the total modest.
const INCREMENTAL_KILLS: usize = 3;
/// The delay of every ABM request in the random-kill tests: a page takes a few tens of
/// milliseconds, long against the 10 ms the tests poll at, short against a restart.
const PAGE_DELAY_MS: u64 = 30;

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
        let run = self.wait_pages_or_end(id, pages).await;
        assert_eq!(run["outcome"], "running", "still running: {run}");
    }

    /// Polls run `id` until it has stored `pages` pages or ended, whichever comes first.
    async fn wait_pages_or_end(&self, id: i64, pages: u64) -> Value {
        for _ in 0..3000 {
            let run = self.run(id).await;
            if run["outcome"] != "running" || run["pages"].as_u64().unwrap() >= pages {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("run {id} neither reached {pages} pages nor ended");
    }

    /// Sync Now until it is answered a run newer than `after`: at once on a restarted
    /// SQLite server; on PostgreSQL once the killed instance's lease lapsed (until then Sync
    /// Now answers the dead run). The run may be the one the schedule's first tick started.
    async fn start_after(&self, after: i64) -> Value {
        for _ in 0..600 {
            let (status, start) = self.sync_now().await;
            assert!(
                status == StatusCode::ACCEPTED || status == StatusCode::OK,
                "{status} {start}"
            );
            if start["run"]["id"].as_i64().unwrap() > after {
                return start["run"].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("Sync Now kept answering run {after} or older");
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
        self.devices_with("assigned").await
    }

    /// Every serial GuardMDM lists with `abm_status` (`assigned` or `removed`) under `main`,
    /// each listed once.
    async fn devices_with(&self, abm_status: &str) -> BTreeSet<String> {
        let path = format!("/api/v1/devices?entry=main&abm_status={abm_status}");
        common::serial_set(&common::all_pages(&self.http, &self.base, &path, "serial_number").await)
    }

    /// Waits until no run of `main` is running (a dead one ends once its lease lapsed): the
    /// newest run's id, 0 without any.
    async fn settle(&self) -> i64 {
        let runs = self.runs().await;
        for run in runs.iter().filter(|r| r["outcome"] == "running") {
            self.wait_end(run["id"].as_i64().unwrap()).await;
        }
        runs.first().map_or(0, |r| r["id"].as_i64().unwrap())
    }

    /// Every run of `main`, newest first.
    async fn runs(&self) -> Vec<Value> {
        let (code, runs) = self
            .json(Method::GET, "/api/v1/abm/tokens/main/syncs?limit=500", None)
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

/// Slow ABM requests (`millis` each), so a sync is mid-way for a while.
fn slow_pages(abm: &RunningSimulator, millis: u64) {
    abm.sim
        .inject_fault(Fault::Delay {
            millis,
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
    slow_pages(&abm, 60);
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
    if common::pg_or_skip("run the two-instance kill test").is_none() {
        return;
    }
    let database = common::fresh_database_url(Backend::Postgres).await.unwrap();
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
    slow_pages(&abm, 60);
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

/// Asserts GuardMDM lists exactly the serials `expected` (ABM's), naming what is missing
/// and what is extra.
fn same_set(expected: &BTreeSet<String>, listed: &BTreeSet<String>, what: &str, context: &str) {
    let missing: Vec<&String> = expected.difference(listed).collect();
    let extra: Vec<&String> = listed.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{context}: {what}: {} of ABM's {} missing (first: {:?}), {} extra (first: {:?})",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(10)],
        extra.len(),
        &extra[..extra.len().min(10)],
    );
}

/// The seed of the random-kill tests: `GUARDMDM_CRASH_SEED` to replay a run's plan of kill
/// moments (where each lands still depends on timing), else the clock.
fn crash_seed() -> u64 {
    match std::env::var("GUARDMDM_CRASH_SEED") {
        Ok(seed) => seed
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("GUARDMDM_CRASH_SEED={seed:?} is not a u64")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            .try_into()
            .unwrap_or(u64::MAX),
    }
}

/// When a cycle kills the server, counted from the answer to its Sync Now.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// This many milliseconds after the answer: right at the run's start.
    Start(u64),
    /// This many milliseconds after the run stored this many pages (or ended): in the middle
    /// of the next page, or right after one.
    Pages(u64, u64),
    /// This many milliseconds after the run ended: at and after its last page.
    AfterEnd(u64),
}

/// The cycles of a random-kill test: start a sync, SIGKILL the server at a moment, restart
/// it on the same data. Every line it prints says the backend, seed and cycle.
struct Kills<'a> {
    backend: &'static str,
    seed: u64,
    rng: SplitMix64,
    data: &'a std::path::Path,
    abm_url: String,
    args: &'a [&'a str],
    cycle: usize,
    /// The newest run seen: the next cycle's Sync Now must answer a newer one.
    last_run: i64,
}

impl Kills<'_> {
    fn context(&self) -> String {
        format!("{} seed {} cycle {}", self.backend, self.seed, self.cycle)
    }

    /// A random delay below `millis`.
    fn jitter(&mut self, millis: u64) -> u64 {
        self.rng.below(millis)
    }

    /// One cycle: Sync Now, SIGKILL at `moment`, restart. The new server, and the killed run
    /// as the new server shows it.
    async fn kill_once(&mut self, serve: Serve, moment: Moment) -> (Serve, Value) {
        self.cycle += 1;
        let run = serve.start_after(self.last_run).await;
        let id = run["id"].as_i64().unwrap();
        eprintln!(
            "{}: run {id}, SIGKILL planned at {moment:?}",
            self.context()
        );
        let seen = match moment {
            Moment::Start(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                run
            }
            Moment::Pages(pages, ms) => {
                let seen = serve.wait_pages_or_end(id, pages).await;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                seen
            }
            Moment::AfterEnd(ms) => {
                let seen = serve.wait_end(id).await;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                seen
            }
        };
        serve.kill_9().await;
        let next = Serve::start(self.data, &self.abm_url, self.args).await;
        let killed = next.run(id).await;
        eprintln!(
            "{}: killed; run {id} was {} with {} pages before the delay, is {} with {} pages and counts {}",
            self.context(),
            seen["outcome"],
            seen["pages"],
            killed["outcome"],
            killed["pages"],
            killed["counts"],
        );
        self.last_run = id;
        (next, killed)
    }
}

/// A change in ABM between incremental syncs: purchases (assigned to `server` as its
/// default), devices unassigned from it, and some unassigned devices assigned back.
fn change_abm(abm: &RunningSimulator, server: &str, rng: &mut SplitMix64) {
    let _ = abm.sim.add_devices(150, None);
    let assigned = abm.sim.devices(Some(server), 0, usize::MAX).unwrap();
    let unassign: BTreeSet<String> = (0..100)
        .map(|_| assigned[rng.index(assigned.len())].serial_number.clone())
        .collect();
    let unassigned: Vec<String> = abm
        .sim
        .devices(None, 0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|d| d.serial_number)
        .collect();
    let back: BTreeSet<String> = (0..20.min(unassigned.len()))
        .map(|_| unassigned[rng.index(unassigned.len())].clone())
        .collect();
    let unassign: Vec<String> = unassign.into_iter().collect();
    let _ = abm.sim.unassign_devices(&unassign);
    let back: Vec<String> = back.into_iter().collect();
    abm.sim.assign_devices(server, &back).unwrap();
}

/// The random-kill test on one backend (`args`: `serve`'s storage flags): SIGKILLs at random
/// moments spread over a whole initial sync and over incremental ones, a restart on the same
/// data after each, then a sync to the end. What is stored must be exactly ABM's devices.
async fn kill_at_random_moments(backend: &'static str, args: &[&str]) {
    let seed = crash_seed();
    eprintln!("{backend}: seed {seed} (replay: GUARDMDM_CRASH_SEED={seed})");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let abm = simulator().await;
    let mut serve = Serve::start(&data, &abm.base_url(), args).await;
    let server = serve.connect_abm(&abm).await;
    slow_pages(&abm, PAGE_DELAY_MS);
    let mut kills = Kills {
        backend,
        seed,
        rng: SplitMix64::new(seed),
        data: &data,
        abm_url: abm.base_url(),
        args,
        cycle: 0,
        last_run: 0,
    };

    // The initial full sync. Kill targets are positions in it, in pages: random ones, and
    // always its very start, the page before its last, its last fetch page (and whatever
    // follows it: the switch to sync, the sync page, the end), and after its end.
    let mut targets: Vec<u64> = (0..INITIAL_KILLS - 4)
        .map(|_| kills.rng.below(FETCH_PAGES + 1))
        .collect();
    targets.extend([0, FETCH_PAGES - 1, FETCH_PAGES, FETCH_PAGES + 1]);
    targets.sort_unstable();
    // Pages stored so far over the killed runs: where the next run resumes (a run that
    // repeats pages after a kill makes the later targets come earlier, which is fine).
    let mut done = 0;
    let mut killed = Value::Null;
    for target in targets {
        let moment = if target > FETCH_PAGES {
            Moment::AfterEnd(kills.jitter(PAGE_DELAY_MS))
        } else if target <= done {
            Moment::Start(kills.jitter(2 * PAGE_DELAY_MS))
        } else {
            Moment::Pages(target - done, kills.jitter(4 * PAGE_DELAY_MS))
        };
        let (next, run) = kills.kill_once(serve, moment).await;
        serve = next;
        done += run["pages"].as_u64().unwrap();
        killed = run;
    }
    // The last cycle let a run end before the kill: the full fetch is over.
    assert_eq!(
        killed["outcome"],
        "succeeded",
        "{}: the initial sync ended: {killed}",
        kills.context()
    );
    eprintln!(
        "{}: the initial sync is over after {done} pages stored by its runs (a full fetch has {FETCH_PAGES}; each run after it stores a sync page)",
        kills.context()
    );
    // Now ABM changes before each cycle, and incremental syncs are killed.
    for _ in 0..INCREMENTAL_KILLS {
        // The run the restart's schedule started ends first (or the dead one, once its lease
        // lapsed), so the run killed is one that syncs the change.
        kills.last_run = serve.settle().await;
        change_abm(&abm, &server, &mut kills.rng);
        let moment = match kills.rng.below(3) {
            0 => Moment::Start(kills.jitter(2 * PAGE_DELAY_MS)),
            1 => Moment::Pages(1 + kills.rng.below(3), kills.jitter(4 * PAGE_DELAY_MS)),
            _ => Moment::AfterEnd(kills.jitter(PAGE_DELAY_MS)),
        };
        serve = kills.kill_once(serve, moment).await.0;
    }

    // After the last kill, a sync to its end.
    let context = format!("{} (replay: GUARDMDM_CRASH_SEED={seed})", kills.context());
    let last = serve.start_after(kills.last_run).await;
    let last = serve.wait_end(last["id"].as_i64().unwrap()).await;
    assert_eq!(last["outcome"], "succeeded", "{context}: {last}");
    let serials = |server: Option<&str>| -> BTreeSet<String> {
        abm.sim
            .devices(server, 0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|d| d.serial_number)
            .collect()
    };
    let in_abm = serials(Some(&server));
    let removed_from_abm = serials(None);
    assert!(!removed_from_abm.is_empty(), "{context}");
    let assigned = serve.device_set().await;
    let removed = serve.devices_with("removed").await;
    same_set(&in_abm, &assigned, "listed as assigned", &context);
    same_set(&removed_from_abm, &removed, "listed as removed", &context);
    let runs = serve.runs().await;
    assert!(
        runs.iter()
            .all(|r| r["outcome"] == "succeeded" || r["outcome"] == "interrupted"),
        "{context}: every run ended, none failed: {runs:#?}"
    );

    // The stored cursor covers everything: a further sync, with nothing changed in ABM,
    // changes nothing.
    abm.sim.clear_faults();
    let again = serve.start_after(last["id"].as_i64().unwrap()).await;
    let again = serve.wait_end(again["id"].as_i64().unwrap()).await;
    assert_eq!(again["outcome"], "succeeded", "{context}: {again}");
    assert_eq!(
        again["counts"],
        serde_json::json!({ "added": 0, "modified": 0, "removed": 0 }),
        "{context}: a sync with nothing new in ABM: {again}"
    );
    let after = "listed as assigned after a further sync";
    same_set(&in_abm, &serve.device_set().await, after, &context);
    let after = "listed as removed after a further sync";
    same_set(
        &removed_from_abm,
        &serve.devices_with("removed").await,
        after,
        &context,
    );
    serve.kill_9().await;
}

#[tokio::test]
async fn sqlite_kill_9_at_random_moments_of_syncs_loses_and_duplicates_nothing() {
    kill_at_random_moments("SQLite", &[]).await;
}

#[tokio::test]
async fn postgres_kill_9_at_random_moments_of_syncs_loses_and_duplicates_nothing() {
    if common::pg_or_skip("run the random-kill test").is_none() {
        return;
    }
    let database = common::fresh_database_url(Backend::Postgres).await.unwrap();
    // One instance, restarted after each kill: its new holder id is not the dead one's, so it
    // takes over once the dead lease lapsed; a short lease keeps that to about a second.
    let args = [
        "--database-url",
        database.as_str(),
        "--sync-lease-ttl",
        "2s",
    ];
    kill_at_random_moments("PostgreSQL", &args).await;
}

//! The ABM device sync benchmark (`#[ignore]`d; figures in `docs/benchmarks.md`).
//!
//! `guardmdm abm-sim` runs as a separate process with 1,000,000 devices, so this process's
//! peak RSS is the sync's own. In this process, on a fresh SQLite file or a fresh PostgreSQL
//! database, and through `guardmdm_service::Services` as `serve` wires it:
//!
//! 1. the floor: every page fetched and parsed with `guardmdm_abm::Client::fetch_devices`
//!    (limit 1000), nothing stored;
//! 2. the initial full sync (`sync_inline`, batch size 1000), its wall time, its peak RSS
//!    (`VmHWM`, reset just before it), and the time between stored pages as the table grows;
//! 3. incremental syncs: 10,000 new purchases, 10,000 devices unassigned, and no change;
//! 4. the floor again;
//! 5. a profile: the sync's page loop replayed into another fresh database with the
//!    production functions (`reduce_page`, `after_page`, `stage_device_page`, then
//!    `merge_staged_devices`), timing the fetch, the reduce, the staging and the merge
//!    separately, with sqlx's statement timings;
//! 6. (run before 5) assignment passes: a default profile for every OS, the first pass that
//!    assigns every device at the simulator, an incremental pass with nothing to do, and a
//!    full pass with nothing to send (after waiting out the incremental pass's 30 s clock
//!    margin). Every sync above also ran a pass (no profiles yet).
//!
//! One backend per process, so each peak RSS is its own:
//!
//! ```text
//! cargo test --release -p guardmdm --test bench_sync -- --ignored --nocapture
//! GUARDMDM_BENCH_BACKEND=postgres \
//!   GUARDMDM_TEST_DATABASE_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres \
//!   cargo test --release -p guardmdm --test bench_sync -- --ignored --nocapture
//! ```
//!
//! `GUARDMDM_BENCH_DEVICES` (default 1000000) and `GUARDMDM_BENCH_CHANGES` (default 10000)
//! change the sizes; `GUARDMDM_BENCH_PROFILE=0` skips step 5;
//! `GUARDMDM_BENCH_LATENCY_MS=N` makes the simulator wait N ms before answering every DEP
//! request (its `delay` fault), as a stand-in for the distance to Apple.

// Helpers outside #[test] functions fail by panicking too.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::print_stdout
)]

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use guardmdm::config::Database;
use guardmdm_abm::Client;
use guardmdm_service::sync_rules::{AfterPage, after_page, reduce_page};
use guardmdm_service::{AbmSettings, Actor, DeviceListRequest, NewEntry, Services, Trigger};
use guardmdm_sim::{PortalBody, PortalClient};
use guardmdm_store::{AssignState, DeviceQuery, OsKey, PageWrite, Store, SyncState};
use reqwest::Method;
use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};

const NAME: &str = "bench";
const PAGE: u32 = 1000;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_number(name: &str, default: usize) -> usize {
    env(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

// ---------------------------------------------------------------------------------------
// Memory: VmHWM (peak RSS) and VmRSS from /proc; writing 5 to clear_refs resets VmHWM.

fn proc_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

// ---------------------------------------------------------------------------------------
// Where the machine's time and disk writes went during a phase: CPU seconds of this process,
// of the simulator and of the whole machine (/proc/stat), and bytes written to disk.

const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    this: f64,
    this_sys: f64,
    sim: f64,
    busy: f64,
    iowait: f64,
    idle: f64,
    disk_written: u64,
}

/// (user, system) CPU seconds of a process.
fn process_cpu_secs(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f[i].parse::<f64>().unwrap();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) / TICKS_PER_SEC, ticks(12) / TICKS_PER_SEC)
}

fn usage(sim: &SimProcess) -> Usage {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + cpu.get(7).copied().unwrap_or(0.0);
    // Sectors (512 bytes) written to whole disks (minor number 0).
    let disk_written = std::fs::read_to_string("/proc/diskstats")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1] == "0").then(|| f[9].parse::<u64>().unwrap_or(0) * 512)
        })
        .sum();
    let (user, sys) = process_cpu_secs("self");
    let (sim_user, sim_sys) = process_cpu_secs(&sim.child.id().to_string());
    Usage {
        this: user + sys,
        this_sys: sys,
        sim: sim_user + sim_sys,
        busy: busy / TICKS_PER_SEC,
        iowait: cpu[4] / TICKS_PER_SEC,
        idle: cpu[3] / TICKS_PER_SEC,
        disk_written,
    }
}

fn report_usage(before: Usage, after: Usage) {
    println!(
        "    CPU s: this process {:.1} (system {:.1}), simulator {:.1}, whole machine busy \
         {:.1} (others {:.1}), iowait {:.1}, idle {:.1}; disk writes {:.0} MiB",
        after.this - before.this,
        after.this_sys - before.this_sys,
        after.sim - before.sim,
        after.busy - before.busy,
        (after.busy - before.busy) - (after.this - before.this) - (after.sim - before.sim),
        after.iowait - before.iowait,
        after.idle - before.idle,
        (after.disk_written - before.disk_written) as f64 / 1048576.0
    );
}

// ---------------------------------------------------------------------------------------
// Observation from outside the production code: a tracing layer that timestamps the sync's
// "ABM page stored" events and, during the profile only, sums sqlx's statement timings.

static PAGE_TIMES: Mutex<Vec<Instant>> = Mutex::new(Vec::new());
static SQL_PROFILE: AtomicBool = AtomicBool::new(false);
static SQL_STATS: Mutex<BTreeMap<String, (u64, f64)>> = Mutex::new(BTreeMap::new());

const SYNC_TARGET: &str = "guardmdm_service::dep_sync";
const SQL_TARGET: &str = "sqlx::query";

struct Observer;

#[derive(Default)]
struct Fields {
    message: String,
    summary: String,
    elapsed_secs: Option<f64>,
    rest: String,
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "message" => self.message = value.to_string(),
            "db.statement" => {}
            _ => self.record_debug(field, &value),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else if field.name() != "db.statement" {
            self.rest.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for Observer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.target() == SQL_TARGET {
            Interest::sometimes()
        } else if meta.target() == SYNC_TARGET || *meta.level() <= Level::WARN {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _: Context<'_, S>) -> bool {
        if meta.target() == SQL_TARGET {
            SQL_PROFILE.load(Ordering::Relaxed)
        } else {
            meta.target() == SYNC_TARGET || *meta.level() <= Level::WARN
        }
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        if meta.target() == SQL_TARGET {
            if let Some(secs) = fields.elapsed_secs {
                let mut stats = SQL_STATS.lock().unwrap();
                let entry = stats.entry(fields.summary).or_default();
                entry.0 += 1;
                entry.1 += secs;
            }
        } else if meta.target() == SYNC_TARGET && fields.message == "ABM page stored" {
            PAGE_TIMES.lock().unwrap().push(Instant::now());
        } else if *meta.level() <= Level::WARN {
            eprintln!(
                "  [{} {}] {}{}",
                meta.level(),
                meta.target(),
                fields.message,
                fields.rest
            );
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }
}

// ---------------------------------------------------------------------------------------
// The simulator, as its own process.

struct SimProcess {
    child: Child,
    url: String,
}

impl SimProcess {
    async fn start(devices: usize) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_guardmdm"))
            .args(["abm-sim", "--listen", &listen, "--devices"])
            .arg(devices.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let sim = Self {
            child,
            url: format!("http://{listen}"),
        };
        let portal = sim.portal();
        for _ in 0..600 {
            if portal.get("org").await.is_ok() {
                return sim;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the simulator did not start at {}", sim.url);
    }

    fn portal(&self) -> PortalClient {
        PortalClient::new(&self.url).unwrap()
    }

    fn peak_rss_kib(&self) -> u64 {
        proc_kib(&self.child.id().to_string(), "VmHWM")
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn portal_call(portal: &PortalClient, method: Method, path: &str, body: Value) -> Value {
    portal
        .call(method, path, &[], PortalBody::Json(body))
        .await
        .unwrap_or_else(|e| panic!("portal {path}: {e}"))
}

// ---------------------------------------------------------------------------------------
// Databases.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn from_env() -> Self {
        match env("GUARDMDM_BENCH_BACKEND").as_deref() {
            None | Some("sqlite") => Self::Sqlite,
            Some("postgres") => Self::Postgres,
            Some(other) => panic!("GUARDMDM_BENCH_BACKEND={other:?}: use sqlite or postgres"),
        }
    }

    /// A fresh, empty database.
    async fn fresh(self, dir: &std::path::Path, name: &str) -> Database {
        match self {
            Self::Sqlite => Database::Sqlite(dir.join(format!("{name}.db"))),
            Self::Postgres => {
                let admin = env("GUARDMDM_TEST_DATABASE_URL").unwrap_or_else(|| {
                    panic!(
                        "set GUARDMDM_TEST_DATABASE_URL (e.g. \
                         postgres://postgres:postgres@127.0.0.1:5432/postgres)"
                    )
                });
                let url = guardmdm_store_postgres::testing::fresh_database(&admin)
                    .await
                    .unwrap();
                // Left behind like the tests' databases; named so it can be dropped.
                let db = url.rsplit('/').next().unwrap_or_default();
                println!("  PostgreSQL database for {name}: {db}");
                Database::Postgres(url)
            }
        }
    }
}

fn services(store: Arc<dyn Store>, sim_url: &str) -> Services {
    let key = guardmdm_crypto::SecretKey::generate().unwrap();
    let abm = AbmSettings {
        default_url: sim_url.to_string(),
        client_options: guardmdm_abm::ClientOptions::default(),
    };
    Services::new(
        store,
        Arc::new(key),
        None,
        abm,
        guardmdm_service::mdm::MdmSettings::new("https://mdm.bench.test").unwrap(),
        tokio_util::sync::CancellationToken::new(),
    )
}

/// The admin's steps: an entry (batch size 1000), its key registered as an MDM server in the
/// simulated ABM (the first one: it adopts the start-up devices and is the default for new
/// purchases), the server token downloaded from the portal and uploaded. Returns the server.
async fn connect(services: &Services, portal: &PortalClient) -> String {
    let actor = Actor::System;
    services
        .abm_entries
        .create(
            &actor,
            NewEntry {
                name: NAME.to_string(),
                ..NewEntry::default()
            },
        )
        .await
        .unwrap();
    let settings = guardmdm_service::EntrySettings {
        batch_size: Some(PAGE),
        abm_url: None,
    };
    services
        .abm_entries
        .update_settings(&actor, NAME, settings)
        .await
        .unwrap();
    let pem = services.abm_entries.public_key(NAME).await.unwrap();
    let server = portal
        .call(
            Method::POST,
            "servers",
            &[("name", "GuardMDM Bench".to_string())],
            PortalBody::Bytes(pem.into_bytes()),
        )
        .await
        .unwrap();
    let server_uuid = server["server_uuid"].as_str().unwrap().to_string();
    let token = portal.download_token(&server_uuid).await.unwrap();
    services
        .abm_entries
        .upload_server_token(&actor, NAME, &token.contents, false)
        .await
        .unwrap();
    server_uuid
}

async fn dep_client(services: &Services) -> Client {
    let tokens = services
        .abm_entries
        .credentials(NAME)
        .await
        .unwrap()
        .unwrap();
    services.abm_entries.client_for(None, &tokens).unwrap()
}

/// The floor: every page of the full fetch, fetched and parsed, nothing stored.
async fn floor(services: &Services) -> (Duration, usize, usize) {
    let client = dep_client(services).await;
    let started = Instant::now();
    let (mut cursor, mut pages, mut devices) = (None::<String>, 0, 0);
    loop {
        let page = client
            .fetch_devices(cursor.as_deref(), Some(PAGE))
            .await
            .unwrap();
        pages += 1;
        devices += page.devices.len();
        cursor = page.cursor;
        if !page.more_to_follow {
            return (started.elapsed(), pages, devices);
        }
    }
}

async fn sync(services: &Services) -> (Duration, guardmdm_store::SyncRun) {
    let started = Instant::now();
    let run = services
        .sync
        .sync_inline(NAME, Trigger::Manual)
        .await
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(run.outcome, "succeeded", "{run:?}");
    (took, run)
}

/// Step 6: a default profile for every OS (configured in the store, so no background pass
/// races the timed ones), then timed passes: the first (defines five profiles at Apple,
/// assigns every device in calls of 1000, writes every record), an incremental one with
/// nothing to do, and a full one after a configuration change that changes nothing.
async fn assignment_passes(
    services: &Services,
    store: &Arc<dyn Store>,
    entry_id: guardmdm_store::EntryId,
    sim: &SimProcess,
) {
    let audit = |action: &str| guardmdm_store::NewAuditEvent {
        at: guardmdm_store::now(),
        actor: "bench".to_string(),
        action: action.to_string(),
        target: "bench".to_string(),
        details: json!({}),
    };
    let mut defaults = Vec::new();
    for os in OsKey::ALL {
        let name = format!("{}-default", os.as_str());
        let profile = store
            .create_profile(
                guardmdm_store::ProfileId::new_v4(),
                &name,
                &json!({ "name": name, "department": "Bench" }),
                &audit("profile.create"),
            )
            .await
            .unwrap();
        store
            .set_os_default(os, Some(profile.id), &audit("default"))
            .await
            .unwrap();
        defaults.push((os, profile.id));
    }
    let entry = services.abm_entries.entry(NAME).await.unwrap();
    let timed = |label: &'static str| {
        let entry = entry.clone();
        async move {
            reset_peak_rss();
            let before = usage(sim);
            let started = Instant::now();
            assert!(services.sync.assign_entry(&entry).await.unwrap());
            let took = started.elapsed();
            let after = usage(sim);
            let pass = store.last_assignment_pass(entry_id).await.unwrap().unwrap();
            println!(
                "  assignment pass, {label}: {:.2} s, peak RSS {:.1} MiB, {}",
                took.as_secs_f64(),
                mib(proc_kib("self", "VmHWM")),
                pass.summary
            );
            report_usage(before, after);
            pass
        }
    };
    let first = timed("first, every device assigned at Apple").await;
    assert_eq!(first.summary["full"], true);
    let counts: BTreeMap<AssignState, u64> = store
        .assignment_state_counts(entry_id)
        .await
        .unwrap()
        .into_iter()
        .collect();
    println!("    states: {counts:?}");
    // An incremental pass looks back to 30 s before the last one (clock margin): wait it out,
    // as the 5 minutes between scheduled syncs would.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let second = timed("incremental, nothing changed").await;
    assert_eq!(second.summary["full"], false);
    assert_eq!(second.summary["sent"], 0);
    let (os, id) = defaults[0];
    store
        .set_os_default(os, Some(id), &audit("default"))
        .await
        .unwrap();
    let third = timed("full, nothing to send").await;
    assert_eq!(third.summary["full"], true);
    assert_eq!(third.summary["sent"], 0);
}

/// Mean milliseconds between stored pages in `range` (by page index) of `times`.
fn mean_gap_ms(start: Instant, times: &[Instant], range: std::ops::Range<usize>) -> f64 {
    let range = range.start.min(times.len())..range.end.min(times.len());
    if range.is_empty() {
        return 0.0;
    }
    let before = if range.start == 0 {
        start
    } else {
        times[range.start - 1]
    };
    let span = times[range.end - 1].duration_since(before);
    span.as_secs_f64() * 1000.0 / range.len() as f64
}

/// Starts collecting sqlx's statement timings.
fn sql_profile_start() {
    SQL_STATS.lock().unwrap().clear();
    SQL_PROFILE.store(true, Ordering::Relaxed);
}

/// Stops collecting and prints the statements that took longest in all, as sqlx timed them.
fn sql_profile_top(n: usize) {
    SQL_PROFILE.store(false, Ordering::Relaxed);
    let stats = SQL_STATS.lock().unwrap();
    let mut top: Vec<_> = stats.iter().collect();
    top.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    println!("    statements that took longest (as sqlx times them):");
    for (summary, (count, secs)) in top.into_iter().take(n) {
        println!("      {:>9.1} ms  {count:>7} x  {summary}", secs * 1000.0);
    }
}

/// Step 5: the page loop of `SyncService` replayed with the same functions into a fresh
/// database, each part timed. Returns (fetch, reduce, stage, merge, total, pages).
async fn profile(
    backend: Backend,
    dir: &std::path::Path,
    sim_url: &str,
    client: &Client,
) -> (Duration, Duration, Duration, Duration, Duration, usize) {
    let store = guardmdm::server::open_store(&backend.fresh(dir, "profile").await)
        .await
        .unwrap();
    let svc = services(store.clone(), sim_url);
    let entry = svc
        .abm_entries
        .create(
            &Actor::System,
            NewEntry {
                name: NAME.to_string(),
                batch_size: Some(PAGE),
                abm_url: None,
            },
        )
        .await
        .unwrap();
    let run = store
        .start_sync_run(entry.id, "manual", "bench", guardmdm_store::now())
        .await
        .unwrap();
    let mut state = SyncState::default();
    let (mut fetch, mut reduce, mut apply) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut pages = 0;
    sql_profile_start();
    let started = Instant::now();
    loop {
        let t0 = Instant::now();
        let page = client
            .fetch_devices(state.cursor.as_deref(), Some(PAGE))
            .await
            .unwrap();
        let t1 = Instant::now();
        let devices = reduce_page(&page.devices);
        let (saved, next) = after_page(&state, page.cursor.clone(), page.more_to_follow);
        let t2 = Instant::now();
        let write = PageWrite {
            entry_id: entry.id,
            devices: &devices,
            state: &saved,
            run_id: run.id,
            at: guardmdm_store::now(),
        };
        store.stage_device_page(&write).await.unwrap();
        let t3 = Instant::now();
        fetch += t1 - t0;
        reduce += t2 - t1;
        apply += t3 - t2;
        pages += 1;
        match next {
            AfterPage::Continue(next) => state = next,
            AfterPage::FetchComplete(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let merging = Instant::now();
    assert!(
        store
            .merge_staged_devices(entry.id, guardmdm_store::now())
            .await
            .unwrap()
    );
    let merge = merging.elapsed();
    let total = started.elapsed();
    SQL_PROFILE.store(false, Ordering::Relaxed);
    (fetch, reduce, apply, merge, total, pages)
}

/// The SQLite file's and its WAL's sizes (nothing for PostgreSQL).
fn sqlite_sizes(database: &Database, when: &str) {
    if let Database::Sqlite(path) = database {
        let size = |suffix: &str| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(p).map_or(0, |m| m.len())
        };
        println!(
            "  SQLite file {when}: {:.0} MiB (+ WAL {:.0} MiB)",
            size("") as f64 / 1048576.0,
            size("-wal") as f64 / 1048576.0
        );
    }
}

/// Times the dashboard's device list (`DeviceListService::page`, 50 rows, what `/devices`
/// renders) for common views: the median of 5 runs of each, in ms.
async fn device_list(services: &Services) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let time = |req: DeviceListRequest| {
        let list = services.device_list.clone();
        async move {
            let mut runs = Vec::new();
            let mut page = None;
            for _ in 0..5 {
                let started = Instant::now();
                page = Some(list.page(req.clone()).await.unwrap());
                runs.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            (median(runs), page.unwrap())
        }
    };
    let req = |f: fn(&mut DeviceListRequest)| {
        let mut r = DeviceListRequest {
            limit: Some(50),
            ..DeviceListRequest::default()
        };
        f(&mut r);
        r
    };
    println!("  dashboard device list, 50 rows, median of 5 (ms):");
    let views: [(&str, DeviceListRequest); 8] = [
        ("first page, by serial", req(|_| {})),
        ("by serial, descending", req(|r| r.descending = true)),
        ("by model", req(|r| r.sort = Some("model".into()))),
        (
            "by last change, newest first",
            req(|r| {
                r.sort = Some("updated".into());
                r.descending = true;
            }),
        ),
        (
            "serial prefix \"C0\"",
            req(|r| r.serial = Some("C0".into())),
        ),
        ("OS macOS", req(|r| r.os = Some("macOS".into()))),
        (
            "status assigned",
            req(|r| r.status = Some("assigned".into())),
        ),
        (
            "status unassigned",
            req(|r| r.status = Some("unassigned".into())),
        ),
    ];
    for (what, request) in views {
        let (ms, page) = time(request).await;
        println!("    {what}: {ms:.1} ({} rows)", page.rows.len());
    }
    // Paging on: the 200th page (10,000 rows in), each page from the previous cursor.
    let mut after = None;
    let started = Instant::now();
    for _ in 0..200 {
        let page = services
            .device_list
            .page(DeviceListRequest {
                limit: Some(50),
                after: after.clone(),
                ..DeviceListRequest::default()
            })
            .await
            .unwrap();
        after = page.next;
    }
    println!(
        "    200 pages one after the other: {:.1} per page",
        started.elapsed().as_secs_f64() * 1000.0 / 200.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in release mode with --ignored --nocapture"]
async fn bench_abm_device_sync() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Observer)).unwrap();
    let backend = Backend::from_env();
    let n = env_number("GUARDMDM_BENCH_DEVICES", 1_000_000);
    let changes = env_number("GUARDMDM_BENCH_CHANGES", 10_000);
    let run_profile = env("GUARDMDM_BENCH_PROFILE").is_none_or(|v| v != "0");
    let latency_ms = env_number("GUARDMDM_BENCH_LATENCY_MS", 0);
    println!(
        "ABM device sync benchmark: {backend:?}, {n} devices, pages of {PAGE}, \
         {latency_ms} ms added DEP latency"
    );

    let started = Instant::now();
    let sim = SimProcess::start(n).await;
    println!(
        "  simulator process up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let portal = sim.portal();
    let dir = tempfile::Builder::new()
        .prefix("guardmdm-bench-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let database = backend.fresh(dir.path(), "guardmdm").await;
    let store = guardmdm::server::open_store(&database).await.unwrap();
    let services = services(store.clone(), &sim.url);
    connect(&services, &portal).await;
    let entry_id = services.abm_entries.entry(NAME).await.unwrap().id;
    if latency_ms > 0 {
        let fault = json!({ "kind": "delay", "millis": latency_ms });
        portal_call(&portal, Method::POST, "faults", fault).await;
    }

    // 1. The floor.
    let before = usage(&sim);
    let (floor1, floor_pages, floor_devices) = floor(&services).await;
    let after = usage(&sim);
    assert_eq!(floor_devices, n);
    println!(
        "  floor (fetch + parse, no store): {floor_pages} pages in {:.2} s = {:.0} devices/s",
        floor1.as_secs_f64(),
        n as f64 / floor1.as_secs_f64()
    );
    report_usage(before, after);

    // 2. The initial full sync.
    let rss_before = proc_kib("self", "VmRSS");
    PAGE_TIMES.lock().unwrap().clear();
    reset_peak_rss();
    let usage_before = usage(&sim);
    let sync_started = Instant::now();
    let (full, run) = sync(&services).await;
    let usage_after = usage(&sim);
    let full_peak = proc_kib("self", "VmHWM");
    let rss_after = proc_kib("self", "VmRSS");
    assert_eq!(run.counts.added, n as u64, "{run:?}");
    assert_eq!(
        store.count_abm_devices(entry_id, false).await.unwrap(),
        n as u64
    );
    let times = PAGE_TIMES.lock().unwrap().clone();
    println!(
        "  full sync: {} pages, {} devices in {:.2} s = {:.0} devices/s",
        run.pages,
        run.counts.added,
        full.as_secs_f64(),
        n as f64 / full.as_secs_f64()
    );
    println!(
        "  peak RSS during the full sync: {:.1} MiB (RSS {:.1} MiB before, {:.1} MiB after)",
        mib(full_peak),
        mib(rss_before),
        mib(rss_after)
    );
    report_usage(usage_before, usage_after);
    let pages = times.len();
    let tenth = (pages / 10).max(1);
    let deciles: Vec<String> = (0..10)
        .map(|i| {
            format!(
                "{:.1}",
                mean_gap_ms(sync_started, &times, i * tenth..(i + 1) * tenth)
            )
        })
        .collect();
    println!(
        "    ms per page by tenth of the sync: {}; all {:.1}",
        deciles.join(" "),
        mean_gap_ms(sync_started, &times, 0..pages),
    );

    // 3. Incremental syncs, each with its own peak RSS. Every sync ends with an assignment
    // pass, which looks back to 30 s before the previous pass (a clock margin between
    // instances): wait that out first, as the 5 minutes between scheduled syncs would, or
    // the pass would revisit the last 30 s of the initial sync.
    tokio::time::sleep(Duration::from_secs(31)).await;
    sqlite_sizes(&database, "before the incremental syncs");
    let added = portal_call(
        &portal,
        Method::POST,
        "devices",
        json!({ "count": changes }),
    )
    .await;
    assert!(!added.is_null());
    reset_peak_rss();
    let before = usage(&sim);
    sql_profile_start();
    let (incr_add, run) = sync(&services).await;
    let after = usage(&sim);
    let incr_add_peak = proc_kib("self", "VmHWM");
    assert_eq!(run.counts.added, changes as u64, "{run:?}");
    println!(
        "  incremental, {changes} new purchases: {:.3} s ({} pages), peak RSS {:.1} MiB",
        incr_add.as_secs_f64(),
        run.pages,
        mib(incr_add_peak)
    );
    report_usage(before, after);
    sql_profile_top(6);
    sqlite_sizes(&database, "after the new purchases");

    let mut serials = Vec::with_capacity(changes);
    while serials.len() < changes {
        let query = DeviceQuery {
            entry_id: Some(entry_id),
            removed: Some(false),
            after_serial: serials.last().cloned(),
            limit: PAGE.min(u32::try_from(changes - serials.len()).unwrap()),
            ..DeviceQuery::default()
        };
        let batch = store.list_abm_devices(&query).await.unwrap();
        assert!(!batch.is_empty());
        serials.extend(batch.into_iter().map(|d| d.device.serial_number));
    }
    portal_call(
        &portal,
        Method::POST,
        "unassign",
        json!({ "serials": serials }),
    )
    .await;
    reset_peak_rss();
    let (incr_remove, run) = sync(&services).await;
    let incr_remove_peak = proc_kib("self", "VmHWM");
    assert_eq!(run.counts.removed, changes as u64, "{run:?}");
    println!(
        "  incremental, {changes} devices unassigned: {:.3} s ({} pages), peak RSS {:.1} MiB",
        incr_remove.as_secs_f64(),
        run.pages,
        mib(incr_remove_peak)
    );
    let (incr_none, _) = sync(&services).await;
    println!(
        "  incremental, no change: {:.1} ms",
        incr_none.as_secs_f64() * 1000.0
    );

    // 4. The floor again.
    let (floor2, _, floor_devices) = floor(&services).await;
    assert_eq!(floor_devices, n);
    let floor_mean = (floor1 + floor2) / 2;
    println!(
        "  floor again: {:.2} s; mean floor {:.2} s; full sync / mean floor = {:.2}",
        floor2.as_secs_f64(),
        floor_mean.as_secs_f64(),
        full.as_secs_f64() / floor_mean.as_secs_f64()
    );
    sqlite_sizes(&database, "after the syncs");
    println!(
        "  simulator process peak RSS: {:.0} MiB",
        mib(sim.peak_rss_kib())
    );

    // 6. Assignment passes (each sync above already ran one over every device, with no
    // profile configured: every device resolved to unassigned).
    assignment_passes(&services, &store, entry_id, &sim).await;

    // 7. The dashboard's ABM Devices list over the whole table.
    device_list(&services).await;

    // 5. Where the time goes.
    if run_profile {
        let client = dep_client(&services).await;
        let before = usage(&sim);
        let (fetch, reduce, stage, merge, total, pages) =
            profile(backend, dir.path(), &sim.url, &client).await;
        let after = usage(&sim);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 / pages as f64;
        println!(
            "  profile (the page loop replayed into a fresh database, {pages} pages, {:.2} s):",
            total.as_secs_f64()
        );
        println!(
            "    per page: fetch + parse {:.2} ms, reduce {:.3} ms, stage_device_page {:.2} ms; \
             then merge_staged_devices {:.2} s",
            ms(fetch),
            ms(reduce),
            ms(stage),
            merge.as_secs_f64()
        );
        report_usage(before, after);
        println!("    sqlx statements (as sqlx times them), per page:");
        for (summary, (count, secs)) in SQL_STATS.lock().unwrap().iter() {
            println!(
                "      {:>8.3} ms  {:>6} x  {summary}",
                secs * 1000.0 / pages as f64,
                count
            );
        }
    }
}

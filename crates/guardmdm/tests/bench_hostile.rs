//! The hostile-traffic benchmark (`#[ignore]`d): what anonymous abuse costs a real
//! `guardmdm serve` process. It starts the binary as a child (its own temp data dir, SQLite,
//! a free loopback port, the default edge limits, no metrics listener), creates a dashboard
//! admin with `guardmdm admins create NAME --password-stdin`, then runs one case after
//! another:
//!
//! 1. 60 concurrent wrong sign-ins for that admin (`POST /signin`);
//! 2. 1,000 junk-method requests (`M000001XXXX…` of 32,000 bytes `/healthz`, 8 at a time);
//! 3. 4 concurrent 31 MB `PUT /mdm/connect` bodies with `Mdm-Signature: AAAA`;
//! 4. 200 slow connections, each sending half a request head and then nothing, held for 25 s
//!    (longer than the default 20 s header read timeout), counting those the server closed.
//!
//! For each case it prints the server's VmRSS before and after, the highest VmRSS sampled
//! every 10 ms during the case, the peak so far (VmHWM, which cannot be reset per case), and
//! the latency of `/healthz` requested every 20 ms during the case (max and p99, and how many
//! failed), as a markdown table. It asserts nothing about timings: it is a measurement.
//!
//! ```text
//! cargo test --release -p guardmdm --test bench_hostile -- --ignored --nocapture
//! ```
//!
//! `GUARDMDM_BENCH_BINARY=/path/to/guardmdm` measures another build instead (an older
//! release, for a side-by-side comparison in one run); the benchmark only uses flags and
//! variables every release has had.

// Helpers outside #[test] functions fail by panicking too.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::disallowed_methods,
    clippy::print_stdout
)]

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const ADMIN: &str = "bench";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A field of `/proc/PID/status` in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Samples the server's VmRSS every 10 ms; `max` holds the highest since it was last reset.
struct RssSampler {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let max = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
                    && let Some(kib) = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
                {
                    m.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self { max, stop }
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `/healthz` every 20 ms (one at a time, each on the client's pool) until `stop`; returns
/// the latencies of the answered ones and the number that failed or were not 200.
async fn sample_healthz(base: String, stop: Arc<AtomicBool>) -> (Vec<Duration>, usize) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let started = Instant::now();
        match client.get(format!("{base}/healthz")).send().await {
            Ok(resp) if resp.status().is_success() => {
                let _ = resp.bytes().await;
                latencies.push(started.elapsed());
            }
            _ => failed += 1,
        }
    }
    (latencies, failed)
}

struct Row {
    case: &'static str,
    outcome: String,
    took: Duration,
    rss_before: u64,
    rss_after: u64,
    rss_max: u64,
    hwm: u64,
    healthz: Vec<Duration>,
    healthz_failed: usize,
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn print_table(rows: &[Row]) {
    println!(
        "\n| case | outcome | took (s) | VmRSS before (MiB) | VmRSS after (MiB) | max VmRSS during (MiB) | VmHWM so far (MiB) | /healthz max (ms) | /healthz p99 (ms) | /healthz answered / failed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let mut sorted = row.healthz.clone();
        sorted.sort();
        let max = sorted.last().copied().unwrap_or_default();
        let p99 = sorted
            .get((sorted.len() * 99).div_ceil(100).saturating_sub(1))
            .copied()
            .unwrap_or_default();
        println!(
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} / {} |",
            row.case,
            row.outcome,
            row.took.as_secs_f64(),
            mib(row.rss_before),
            mib(row.rss_after),
            mib(row.rss_max),
            mib(row.hwm),
            ms(max),
            ms(p99),
            sorted.len(),
            row.healthz_failed,
        );
    }
}

/// Reads until the server closes the connection or `limit` passes; whether it closed.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A status line's code, or the error.
fn summarize(outcomes: Vec<String>) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for o in outcomes {
        *counts.entry(o).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{v}× {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn wrong_sign_ins(base: &str) -> String {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let client = client.clone();
        let base = base.to_string();
        tasks.spawn(async move {
            let form = format!("name={ADMIN}&password=wrong-password-{i:04}");
            match client
                .post(format!("{base}/signin"))
                .header("Origin", &base)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
            {
                Ok(resp) => resp.status().as_u16().to_string(),
                Err(e) => format!("error ({})", if e.is_timeout() { "timeout" } else { "io" }),
            }
        });
    }
    summarize(tasks.join_all().await)
}

async fn junk_methods(address: &str) -> String {
    let padding = "X".repeat(32_000);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let address = address.to_string();
        let padding = padding.clone();
        tasks.spawn(async move {
            let mut outcomes = Vec::new();
            for i in (worker..1000).step_by(8) {
                let Ok(mut stream) = TcpStream::connect(&address).await else {
                    outcomes.push("connect failed".to_string());
                    continue;
                };
                let request = format!(
                    "M{i:06}{padding} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(request.as_bytes()).await;
                let mut answer = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
                        .await;
                let status =
                    String::from_utf8_lossy(answer.get(9..12).unwrap_or(b"---")).into_owned();
                outcomes.push(status);
            }
            outcomes
        });
    }
    summarize(tasks.join_all().await.into_iter().flatten().collect())
}

async fn huge_connect_bodies(base: &str) -> String {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let body = vec![b'A'; 31 * 1000 * 1000];
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let client = client.clone();
        let url = format!("{base}/mdm/connect");
        let body = body.clone();
        tasks.spawn(async move {
            match client
                .put(url)
                .header("Mdm-Signature", "AAAA")
                .header("Content-Type", "application/x-apple-aspen-mdm")
                .body(body)
                .send()
                .await
            {
                Ok(resp) => resp.status().as_u16().to_string(),
                Err(e) => format!(
                    "error ({})",
                    if e.is_timeout() {
                        "timeout"
                    } else {
                        "closed early"
                    }
                ),
            }
        });
    }
    summarize(tasks.join_all().await)
}

async fn slow_connections(address: &str) -> String {
    let mut streams = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        match TcpStream::connect(address).await {
            Ok(mut stream) => {
                let _ = stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    .await;
                streams.push(stream);
            }
            Err(_) => refused += 1,
        }
    }
    let hold = Duration::from_secs(25);
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        tasks.spawn(async move { closed_within(&mut stream, hold).await });
    }
    let closed = tasks.join_all().await.into_iter().filter(|c| *c).count();
    format!("{closed} of 200 closed by the server within 25 s, {refused} not connected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run it in release with --ignored --nocapture"]
async fn hostile_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let base = format!("http://{address}");
    let binary = std::env::var("GUARDMDM_BENCH_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_guardmdm").to_string());
    println!("server binary: {binary}");
    let mut child = tokio::process::Command::new(&binary)
        .arg("serve")
        .env("GUARDMDM_LISTEN", &address)
        .env("GUARDMDM_DATA_DIR", dir.path().join("data"))
        .env("GUARDMDM_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("GUARDMDM_METRICS_LISTEN", "off")
        .env("RUST_LOG", "error")
        .env_remove("GUARDMDM_DATABASE_URL")
        .env_remove("GUARDMDM_SECRET_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the server did not come up");

    let mut create = tokio::process::Command::new(&binary)
        .args(["admins", "create", ADMIN, "--password-stdin"])
        .env("GUARDMDM_URL", &base)
        .env("GUARDMDM_API_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = create.stdin.take().unwrap();
    stdin
        .write_all(b"the-right-password-for-bench")
        .await
        .unwrap();
    drop(stdin);
    assert!(create.wait().await.unwrap().success(), "admins create");

    let rss = RssSampler::start(pid);
    let mut rows = Vec::new();
    for case in [
        "60 concurrent wrong sign-ins",
        "1,000 junk-method requests",
        "4 × 31 MB PUT /mdm/connect",
        "200 slow connections (half a head)",
    ] {
        let rss_before = proc_kib(pid, "VmRSS");
        rss.max.store(rss_before, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn(sample_healthz(base.clone(), stop.clone()));
        let started = Instant::now();
        let outcome = match case {
            "60 concurrent wrong sign-ins" => wrong_sign_ins(&base).await,
            "1,000 junk-method requests" => junk_methods(&address).await,
            "4 × 31 MB PUT /mdm/connect" => huge_connect_bodies(&base).await,
            _ => slow_connections(&address).await,
        };
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let (healthz, healthz_failed) = sampler.await.unwrap();
        // Let the allocator settle before "after".
        tokio::time::sleep(Duration::from_millis(500)).await;
        rows.push(Row {
            case,
            outcome,
            took,
            rss_before,
            rss_after: proc_kib(pid, "VmRSS"),
            rss_max: rss.max.load(Ordering::Relaxed),
            hwm: proc_kib(pid, "VmHWM"),
            healthz,
            healthz_failed,
        });
        println!("done: {case}");
    }
    drop(rss);
    print_table(&rows);
    child.kill().await.unwrap();
}

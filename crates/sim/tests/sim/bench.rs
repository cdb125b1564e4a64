//! The scale benchmark (`#[ignore]`d): one simulator with 1,000,000 devices, fetched in
//! 1000-device pages over a real socket, then 100,000 new devices synced. Run with
//!
//! ```text
//! cargo test --release -p guardmdm-sim --test sim -- --ignored --nocapture bench
//! ```
//!
//! `GUARDMDM_SIM_BENCH_DEVICES` changes the device count.

use std::time::Instant;

use guardmdm_sim::{SimConfig, Simulator};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use crate::common::{Dep, decrypt, key_pair};

#[derive(Deserialize)]
struct Page {
    cursor: String,
    devices: Vec<IgnoredAny>,
    more_to_follow: bool,
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb / 1024)
}

/// Pages through `path` from `cursor` until `more_to_follow` is false; returns (devices,
/// pages, bytes, final cursor).
async fn drain(
    dep: &mut Dep,
    path: &str,
    mut cursor: Option<String>,
) -> (usize, usize, usize, String) {
    let (mut devices, mut pages, mut bytes) = (0, 0, 0);
    loop {
        let mut body = json!({ "limit": 1000 });
        if let Some(c) = &cursor {
            body["cursor"] = c.clone().into();
        }
        let reply = dep.post(path, body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        bytes += reply.text.len();
        let page: Page = serde_json::from_str(&reply.text).unwrap();
        devices += page.devices.len();
        pages += 1;
        cursor = Some(page.cursor);
        if !page.more_to_follow {
            return (devices, pages, bytes, cursor.unwrap_or_default());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in release mode with --ignored --nocapture"]
async fn bench_one_million_devices() {
    let n: usize = option_env!("GUARDMDM_SIM_BENCH_DEVICES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let sim = Simulator::new(SimConfig {
        devices: n,
        session_rotate_every: None,
        ..SimConfig::default()
    });
    let built = started.elapsed();
    let started = Instant::now();
    let server = sim
        .register_server("Bench", &key_pair().certificate_pem)
        .unwrap();
    let adopted = started.elapsed();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = sim.start(listener).unwrap();
    let token = sim.download_token(&server.server_uuid, None).unwrap();
    let mut dep = Dep {
        base: running.base_url(),
        server,
        tokens: decrypt(&token.contents),
        session: None,
        version: 10,
        http: crate::common::http(),
    };
    dep.session().await;

    let started = Instant::now();
    let (devices, pages, bytes, cursor) = drain(&mut dep, "/server/devices", None).await;
    let fetch = started.elapsed();
    assert_eq!(devices, n);

    let added = n / 10;
    let _ = sim.add_devices(added, None);
    let started = Instant::now();
    let (synced, sync_pages, _, _) = drain(&mut dep, "/devices/sync", Some(cursor)).await;
    let sync = started.elapsed();
    assert_eq!(synced, added);

    let secs = fetch.as_secs_f64();
    println!("ABM simulator benchmark ({n} devices)");
    println!(
        "  build the organisation:      {:.2} s",
        built.as_secs_f64()
    );
    println!(
        "  first server adopts them:    {:.2} s",
        adopted.as_secs_f64()
    );
    println!(
        "  fetch: {pages} pages of 1000 in {secs:.2} s = {:.0} pages/s, {:.0} devices/s, {:.0} KiB/page",
        pages as f64 / secs,
        devices as f64 / secs,
        bytes as f64 / pages as f64 / 1024.0
    );
    println!(
        "  sync:  {sync_pages} pages ({synced} added events) in {:.2} s = {:.0} pages/s",
        sync.as_secs_f64(),
        sync_pages as f64 / sync.as_secs_f64()
    );
    println!("  resident memory: {} MiB", rss_mib());
    running.stop().await.unwrap();
}

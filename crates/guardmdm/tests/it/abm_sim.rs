//! `guardmdm abm-sim` as a process, driven the way an admin trying GuardMDM would: start the
//! simulator, point one ABM entry at it (`--abm-url` per entry), register the entry's key in
//! the simulated portal, download the token, upload it, and assign devices by CSV.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{ADMIN_TOKEN, Backend, TestApp};

async fn run(app: &TestApp, cwd: &Path, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardmdm"))
        .args(args)
        .current_dir(cwd)
        .env("GUARDMDM_URL", &app.base)
        .env("GUARDMDM_API_TOKEN", ADMIN_TOKEN)
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn the_simulator_process_stands_in_for_abm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim_url = format!("http://127.0.0.1:{port}");
    let mut sim = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardmdm"))
        .args([
            "abm-sim",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--devices",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http
            .get(format!("{sim_url}/portal/org"))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the simulator did not start");

    let app = TestApp::spawn(Backend::Sqlite).await;
    let work = tempfile::tempdir().unwrap();
    let cwd = work.path();
    let (ok, _, err) = run(
        &app,
        cwd,
        &[
            "abm",
            "token",
            "create",
            "main",
            "--abm-url",
            &sim_url,
            "-o",
            "main.pem",
        ],
    )
    .await;
    assert!(ok, "{err}");

    let (ok, out, err) = run(
        &app,
        cwd,
        &[
            "abm-sim",
            "register",
            "--url",
            &sim_url,
            "--name",
            "Process Sim",
            "--pem",
            "main.pem",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let server: serde_json::Value = serde_json::from_str(&out).unwrap();
    let uuid = server["server_uuid"].as_str().unwrap().to_string();
    assert_eq!(
        server["devices"], 20,
        "the first server adopts the start-up devices"
    );

    std::fs::create_dir(cwd.join("tokens")).unwrap();
    let (ok, _, err) = run(
        &app,
        cwd,
        &[
            "abm-sim", "token", "--url", &sim_url, "--server", &uuid, "-o", "tokens",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let file = std::fs::read_dir(cwd.join("tokens"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("Process Sim_Token_") && name.ends_with("_smime.p7m"),
        "{name}"
    );

    let (ok, out, err) = run(
        &app,
        cwd,
        &["abm", "entry", "upload", "main", file.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("ABM MDM server \"Process Sim\""), "{out}");

    // Serial-number CSV assignment in the portal: a second server takes two devices.
    let (ok, out, err) = run(
        &app,
        cwd,
        &["abm-sim", "devices", "--url", &sim_url, "--server", &uuid],
    )
    .await;
    assert!(ok, "{err}");
    let devices: serde_json::Value = serde_json::from_str(&out).unwrap();
    let list = devices
        .as_array()
        .or_else(|| devices["devices"].as_array())
        .unwrap();
    let serials: Vec<String> = list
        .iter()
        .take(2)
        .map(|d| d["serial_number"].as_str().unwrap().to_string())
        .collect();
    let other_pem = guardmdm_crypto::generate_token_key_pair("other")
        .unwrap()
        .certificate_pem;
    std::fs::write(cwd.join("other.pem"), other_pem).unwrap();
    let (_, out, _) = run(
        &app,
        cwd,
        &[
            "abm-sim",
            "register",
            "--url",
            &sim_url,
            "--name",
            "Other",
            "--pem",
            "other.pem",
        ],
    )
    .await;
    let other: serde_json::Value = serde_json::from_str(&out).unwrap();
    let csv = format!(
        "serial_number\n{}\n{}\nNOSUCHSERIAL\n",
        serials[0],
        serials[1].to_lowercase()
    );
    std::fs::write(cwd.join("serials.csv"), csv).unwrap();
    let (ok, out, err) = run(
        &app,
        cwd,
        &[
            "abm-sim",
            "assign-csv",
            "--url",
            &sim_url,
            "--server",
            other["server_uuid"].as_str().unwrap(),
            "serials.csv",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("NOSUCHSERIAL"),
        "unknown serials are reported: {out}"
    );
    assert!(out.contains(&serials[0]), "{out}");

    let pid = sim.id().unwrap().to_string();
    assert!(
        tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), sim.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    app.stop().await;
}

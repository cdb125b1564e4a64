//! A `guardmdm serve` child process: the real binary on a free port, for tests of what only
//! a whole process shows (signals, kills, restarts, command-line tools beside it).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::process::{Child, Command};

use super::{ADMIN_TOKEN, PUBLIC_URL};

/// A `guardmdm serve` child process.
pub struct Serve {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client for it.
    pub http: reqwest::Client,
}

impl Serve {
    /// Starts `guardmdm serve` on a free port with `args` and waits until it answers.
    pub async fn start(data_dir: &Path, abm_url: &str, args: &[&str]) -> Self {
        let port = super::free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_guardmdm"));
        cmd.args(["serve", "--listen", &listen, "--data-dir"])
            .arg(data_dir)
            .args(["--admin-token", ADMIN_TOKEN, "--public-url", PUBLIC_URL])
            .args(["--abm-url", abm_url])
            // Two instances run side by side: each metrics listener takes a port of its own.
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("GUARDMDM_DATABASE_URL")
            .env_remove("GUARDMDM_SECRET_KEY")
            .env_remove("GUARDMDM_SYNC_LEASE_TTL")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd.spawn().unwrap();
        let serve = Self {
            child,
            base: format!("http://{listen}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..1500 {
            if let Ok(resp) = serve.http.get(serve.url("/healthz")).send().await
                && resp.status() == StatusCode::OK
            {
                return serve;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("guardmdm serve did not come up on {listen}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// SIGKILL: no shutdown, no lease given back, the run left `running`.
    pub async fn kill_9(mut self) {
        self.child.start_kill().unwrap();
        let status = self.child.wait().await.unwrap();
        assert!(!status.success(), "killed: {status:?}");
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("guardmdm serve did not stop within 30 s of SIGTERM")
            .unwrap();
        assert!(exit.success(), "guardmdm serve exited with {exit:?}");
    }
}

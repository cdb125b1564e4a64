//! Test harness: a real `guardmdm` server on `127.0.0.1:0` over SQLite (always) and
//! PostgreSQL (when `GUARDMDM_TEST_DATABASE_URL` is set, as `.ci/run` does), talking to its
//! own ABM simulator (`--abm-url`), and helpers that get server tokens from the simulator's
//! portal or build them the way Apple Business Manager does.
// Shared by several test binaries, each using part of it; test helpers fail by panicking.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::panic
)]

pub mod mdm;
pub mod serve;

use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use guardmdm::config::{ServeArgs, Settings};
use guardmdm::server::{RunningServer, open_store};
use guardmdm_sim::{RunningSimulator, SimConfig, Simulator};
use guardmdm_store::Store;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;

pub mod browser;
pub mod tls;
pub mod web;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The `--public-url` every test server runs with: ADE profiles need an https enrollment URL.
pub const PUBLIC_URL: &str = "https://mdm.guardmdm.test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends to run against: SQLite always; PostgreSQL when configured, else a loud skip.
pub fn backends() -> Vec<Backend> {
    if pg_admin_url().is_some() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        eprintln!(
            "SKIPPED (PostgreSQL half): set GUARDMDM_TEST_DATABASE_URL to also run on PostgreSQL"
        );
        vec![Backend::Sqlite]
    }
}

pub fn pg_admin_url() -> Option<String> {
    std::env::var("GUARDMDM_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: ServeArgs,
}

pub struct TestApp {
    pub base: String,
    /// The unauthenticated metrics listener's base URL (`--metrics-listen 127.0.0.1:0`).
    pub metrics_base: String,
    pub http: reqwest::Client,
    pub backend: Backend,
    pub database_url: Option<String>,
    pub dir: tempfile::TempDir,
    /// The ABM simulator the server's `--abm-url` points at.
    pub abm: RunningSimulator,
    /// The root CA clients trust when the server serves HTTPS ([`TestApp::spawn_tls`]).
    pub tls_root: Option<String>,
    server: Option<RunningServer>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, None, &[]).await
    }

    /// A server whose public URL is its own `http://127.0.0.1:PORT` (so simulated devices
    /// reach its enrollment URL), with extra `serve` flags.
    pub async fn spawn_reachable(backend: Backend, extra: &[String]) -> Self {
        Self::spawn_with(backend, None, extra).await
    }

    /// A server serving HTTPS on `https://mdm.guardmdm.test:PORT` (its public URL; clients
    /// from [`TestApp::client_builder`] resolve the name to it) with `--tls-cert`/`--tls-key`
    /// in `extra`, and clients trusting `pki`'s root.
    pub async fn spawn_tls(backend: Backend, pki: &tls::Pki, extra: &[String]) -> Self {
        assert!(extra.iter().any(|a| a == "--tls-cert"), "{extra:?}");
        let mut app = Self::spawn_with(backend, None, extra).await;
        app.tls_root = Some(pki.root_pem.clone());
        app.http = app.client_builder().build().unwrap();
        app
    }

    /// The running server.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// A client builder that reaches the server: trusting the test root and resolving
    /// `mdm.guardmdm.test` to the server when it serves HTTPS.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder();
        match &self.tls_root {
            Some(root) => builder
                .tls_certs_only([reqwest::Certificate::from_pem(root.as_bytes()).unwrap()])
                .resolve(tls::HOST, self.server().addr),
            None => builder,
        }
    }

    /// A second instance sharing this one's database, secret key and ABM simulator, as
    /// several `serve` instances behind a load balancer do.
    pub async fn second_instance(&self) -> Self {
        Self::spawn_with(self.backend, Some(self), &[]).await
    }

    async fn spawn_with(backend: Backend, share: Option<&TestApp>, extra: &[String]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let https = extra.iter().any(|a| a == "--tls-cert");
        let own_url = if https {
            format!("https://{}:{}", tls::HOST, addr.port())
        } else {
            format!("http://{addr}")
        };
        let dir = tempfile::tempdir().unwrap();
        let database_url = match (backend, share) {
            (_, Some(first)) => first.database_url.clone(),
            (Backend::Sqlite, None) => None,
            (Backend::Postgres, None) => Some(
                guardmdm_store_postgres::testing::fresh_database(&pg_admin_url().unwrap())
                    .await
                    .unwrap(),
            ),
        };
        let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let abm = Simulator::new(SimConfig::default())
            .start(sim_listener)
            .unwrap();
        let data_dir = dir.path().join("data");
        let mut argv = vec![
            "serve".to_string(),
            "--data-dir".into(),
            data_dir.to_str().unwrap().into(),
            "--admin-token".into(),
            ADMIN_TOKEN.into(),
            "--abm-url".into(),
            share.map_or_else(|| abm.base_url(), |first| first.abm.base_url()),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
        ];
        // A test may give its own public URL (an HTTPS front of its own).
        if !extra.iter().any(|a| a == "--public-url") {
            let public_url = if extra.is_empty() {
                PUBLIC_URL.to_string()
            } else {
                own_url.clone()
            };
            argv.extend(["--public-url".into(), public_url]);
        }
        if let Some(url) = &database_url {
            argv.extend(["--database-url".into(), url.clone()]);
        }
        argv.extend(extra.iter().cloned());
        if let Some(first) = share {
            argv.extend(["--secret-key".into(), first.secret_key()]);
        }
        let settings = Settings::from_args(Wrapper::parse_from(argv).args).unwrap();
        let server = guardmdm::server::start(settings, listener).await.unwrap();
        Self {
            base: if https {
                own_url
            } else {
                format!("http://{}", server.addr)
            },
            metrics_base: format!("http://{}", server.metrics_addr.unwrap()),
            http: reqwest::Client::builder().build().unwrap(),
            backend,
            database_url,
            dir,
            abm,
            tls_root: None,
            server: Some(server),
        }
    }

    /// Builds the services of another GuardMDM instance on the app's database (what a restarted
    /// or a second `serve` would have), so a test can run and abort syncs in its own task.
    pub async fn instance(&self) -> guardmdm_service::Services {
        let key = guardmdm_crypto::SecretKey::from_base64(&self.secret_key()).unwrap();
        let abm = guardmdm_service::AbmSettings {
            default_url: self.abm.base_url(),
            client_options: guardmdm_abm::ClientOptions::default(),
        };
        guardmdm_service::Services::new(
            self.store().await,
            Arc::new(key),
            None,
            abm,
            guardmdm_service::mdm::MdmSettings::new(PUBLIC_URL).unwrap(),
            tokio_util::sync::CancellationToken::new(),
        )
    }

    /// The server's secret key (base64), as its data dir holds it.
    pub fn secret_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/secret.key"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// A second handle on the server's database, for arranging states the API cannot make.
    pub async fn store(&self) -> Arc<dyn Store> {
        let database = match &self.database_url {
            Some(url) => guardmdm::config::Database::Postgres(url.clone()),
            None => guardmdm::config::Database::Sqlite(self.dir.path().join("data/guardmdm.db")),
        };
        open_store(&database).await.unwrap()
    }

    /// Stops the server gracefully; returns its directory, which lives until dropped.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(server) = self.server.take() {
            server.shutdown();
            server.wait().await.unwrap();
        }
        self.dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `/metrics` as the monitoring system reads it, on the metrics listener.
    pub async fn metrics(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/metrics", self.metrics_base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }

    /// A request with the admin token.
    pub fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.admin(method, path);
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

    pub async fn create_entry(&self, name: &str) -> Value {
        let (status, body) = self
            .json(
                Method::POST,
                "/api/v1/abm/tokens",
                Some(serde_json::json!({ "name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn public_key(&self, name: &str) -> String {
        let resp = self
            .admin(
                Method::GET,
                &format!("/api/v1/abm/tokens/{name}/public-key"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }

    /// Registers entry `name`'s public key as an MDM server in the simulated ABM portal (the
    /// admin's step 2) and returns the server's uuid.
    pub async fn register_in_abm(&self, name: &str, server_name: &str) -> String {
        let pem = self.public_key(name).await;
        self.abm
            .sim
            .register_server(server_name, &pem)
            .unwrap()
            .server_uuid
    }

    /// Downloads a new server token for the simulated MDM server (step 3).
    pub fn download_token(&self, server_uuid: &str) -> Vec<u8> {
        self.abm
            .sim
            .download_token(server_uuid, None)
            .unwrap()
            .contents
    }

    /// The whole connection: entry `name`, registered in ABM as the default MDM server (it
    /// receives new purchases), its token uploaded. Returns the server's uuid.
    pub async fn connect_abm(&self, name: &str) -> String {
        self.create_entry(name).await;
        let server = self
            .register_in_abm(name, &format!("GuardMDM {name}"))
            .await;
        self.abm
            .sim
            .set_default_server(None, Some(&server))
            .unwrap();
        let (status, body) = self.upload(name, self.download_token(&server), false).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        server
    }

    /// Starts a sync (Sync Now) and waits for it to end; returns the run.
    /// An assignment pass started by a configuration change holds the entry for a moment:
    /// Sync Now answers 409 then, and is retried.
    pub async fn sync(&self, name: &str, full: bool) -> Value {
        // Sync Now answers 200 with a run already going (the schedule's first tick can land
        // after the caller's changes at the simulator, its pages fetched before them): wait
        // for that run and ask again, so the run returned here started after the call.
        for _ in 0..400 {
            let (status, start) = self
                .json(
                    Method::POST,
                    &format!("/api/v1/abm/tokens/{name}/syncs?full={full}"),
                    None,
                )
                .await;
            let id = start["run"]["id"].as_i64();
            match status {
                StatusCode::CONFLICT => {
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                StatusCode::OK => {
                    self.wait_run(name, id.unwrap()).await;
                }
                StatusCode::ACCEPTED => return self.wait_run(name, id.unwrap()).await,
                other => panic!("Sync Now answered {other}: {start}"),
            }
        }
        panic!("Sync Now never started a run of its own");
    }

    /// Polls a run until it is no longer running.
    pub async fn wait_run(&self, name: &str, id: i64) -> Value {
        for _ in 0..600 {
            let (_, run) = self
                .json(
                    Method::GET,
                    &format!("/api/v1/abm/tokens/{name}/syncs/{id}"),
                    None,
                )
                .await;
            if run["outcome"] != "running" {
                return run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("sync {id} of {name} did not finish");
    }

    /// The serials GuardMDM has for entry `name` with ABM status `status`.
    pub async fn device_set(&self, name: &str, status: &str) -> std::collections::BTreeSet<String> {
        self.device_set_with(&format!("token={name}&status={status}"))
            .await
    }

    /// The serials `GET /api/v1/devices?<filter>` lists, every page.
    pub async fn device_set_with(&self, filter: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut after = String::new();
        loop {
            let path = format!("/api/v1/devices?{filter}&limit=1000&after={after}");
            let (code, page) = self.json(Method::GET, &path, None).await;
            assert_eq!(code, StatusCode::OK, "{page}");
            let page = page.as_array().unwrap().clone();
            for d in &page {
                assert!(
                    out.insert(d["serial_number"].as_str().unwrap().to_string()),
                    "listed twice"
                );
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

    /// The serials the simulated ABM has assigned to `server`.
    pub fn abm_set(&self, server: &str) -> std::collections::BTreeSet<String> {
        self.abm
            .sim
            .devices(Some(server), 0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|d| d.serial_number)
            .collect()
    }

    pub async fn upload(&self, name: &str, file: Vec<u8>, force: bool) -> (StatusCode, Value) {
        let resp = self
            .admin(
                Method::PUT,
                &format!("/api/v1/abm/tokens/{name}/server-token?force={force}"),
            )
            .header("content-type", "application/pkcs7-mime")
            .body(file)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }
}

/// The decrypted token JSON as Apple writes it.
pub fn token_json(consumer_key: &str, expiry: &str) -> String {
    format!(
        r#"{{"consumer_key":"{consumer_key}","consumer_secret":"CS_3f1d0c9e","access_token":"AT_9a8b7c6d","access_secret":"AS_5e4f3a2b","access_token_expiry":"{expiry}"}}"#
    )
}

/// An RFC 3339 time `days` from now, whole seconds.
pub fn days_from_now(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    t.replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A `*_smime.p7m` file as ABM makes it: the JSON in Apple's MIME + MESSAGE wrapping,
/// CMS-encrypted (AES-256-CBC, RSA key transport) to `cert_pem`, with S/MIME headers.
pub fn abm_token_file(cert_pem: &str, json: &str) -> Vec<u8> {
    guardmdm_crypto::encrypt_server_token(json, cert_pem).unwrap()
}

/// What a run of the `guardmdm` binary printed.
pub struct CliOutput {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `guardmdm` binary against `app` with the API token `token` (none: unset), in
/// `cwd`.
pub async fn run_cli(app: &TestApp, token: Option<&str>, cwd: &Path, args: &[&str]) -> CliOutput {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardmdm"));
    cmd.args(args)
        .current_dir(cwd)
        .env("GUARDMDM_URL", &app.base)
        .env_remove("GUARDMDM_API_TOKEN");
    if let Some(token) = token {
        cmd.env("GUARDMDM_API_TOKEN", token);
    }
    let out = cmd.output().await.unwrap();
    CliOutput {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs the `guardmdm` binary against `app` with the admin token and `stdin` piped in.
pub async fn run_cli_stdin(app: &TestApp, args: &[&str], stdin: &str) -> CliOutput {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardmdm"))
        .args(args)
        .env("GUARDMDM_URL", &app.base)
        .env("GUARDMDM_API_TOKEN", ADMIN_TOKEN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    CliOutput {
        ok: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

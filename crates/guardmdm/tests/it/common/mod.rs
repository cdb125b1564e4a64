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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

/// For a PostgreSQL-only test: the admin URL, or `None` after a loud SKIPPED line saying
/// what setting `GUARDMDM_TEST_DATABASE_URL` would `why` (e.g. "run the upgrade test").
pub fn pg_or_skip(why: &str) -> Option<String> {
    let url = pg_admin_url();
    if url.is_none() {
        eprintln!("SKIPPED: set GUARDMDM_TEST_DATABASE_URL to {why}");
    }
    url
}

/// The `--database-url` of a new server on `backend`: none on SQLite (the data dir's
/// file), a fresh database of its own on PostgreSQL.
pub async fn fresh_database_url(backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let admin = pg_admin_url()
                .unwrap_or_else(|| panic!("PostgreSQL: set GUARDMDM_TEST_DATABASE_URL"));
            Some(
                guardmdm_store_postgres::testing::fresh_database(&admin)
                    .await
                    .unwrap(),
            )
        }
    }
}

/// The safety net for anything awaited: generous, never a measure of speed.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Waits until `check` holds, polling; panics with `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_or(check, || format!("timed out waiting until {what}")).await;
}

/// [`eventually`], panicking with what `explain` says then (the state reached, logs).
pub async fn eventually_or<F, Fut>(mut check: F, explain: impl FnOnce() -> String)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        if tokio::time::Instant::now() >= deadline {
            panic!("{}", explain());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A port free on 127.0.0.1 a moment ago, for a child process to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first of `names` found in `PATH`.
pub fn in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// Whether the external `tools` a test needs are all in `PATH`. Without one the test is
/// skipped with a loud SKIPPED line, or fails when `require_env` is `1` (as `.ci/run` sets
/// it); `install` says how to get them (`apt-get install ...`).
pub fn require_tools(tools: &[&str], require_env: &str, install: &str) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| in_path(&[tool]).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join(", ");
    assert!(
        std::env::var(require_env).as_deref() != Ok("1"),
        "{missing} required ({require_env}=1) but not installed: {install}"
    );
    eprintln!(
        "SKIPPED: {missing} not installed ({install}); set {require_env}=1 to make that a failure"
    );
    false
}

/// Every item `GET <base><path>` lists with the admin token, page after page (1000 a page,
/// the `after` cursor being the last item's `key`). `path` may carry a query.
pub async fn all_pages(http: &reqwest::Client, base: &str, path: &str, key: &str) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let url = format!("{base}{path}{separator}limit=1000&after={after}");
        let resp = http
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        let page: Vec<Value> = resp.json().await.unwrap();
        let done = page.len() < 1000;
        if let Some(last) = page.last() {
            after = last[key].as_str().unwrap().to_string();
        }
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// The serial numbers of `devices` (as the device list gives them), each listed once.
pub fn serial_set(devices: &[Value]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for d in devices {
        let serial = d["serial_number"].as_str().unwrap().to_string();
        assert!(out.insert(serial), "listed twice: {d}");
    }
    out
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
    /// The server's `--public-url`.
    pub public_url: String,
    server: Option<RunningServer>,
}

/// The public URL a test server is given.
enum Public {
    /// [`PUBLIC_URL`]: a name nothing resolves (for tests that need no device to reach it).
    Fixed,
    /// Its own address (`https://mdm.guardmdm.test:PORT` when it serves HTTPS).
    Own,
    /// Another instance's, as instances behind one load balancer share it.
    Shared(String),
}

impl TestApp {
    /// A server whose public URL is [`PUBLIC_URL`], which nothing resolves.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, None, bind().await, &[], Public::Fixed).await
    }

    /// A server whose public URL is its own `http://127.0.0.1:PORT` (so simulated devices
    /// reach its enrollment URL), with extra `serve` flags.
    pub async fn spawn_reachable(backend: Backend, extra: &[String]) -> Self {
        Self::spawn_with(backend, None, bind().await, extra, Public::Own).await
    }

    /// A server serving HTTPS on `https://mdm.guardmdm.test:PORT` (its public URL; clients
    /// from [`TestApp::client_builder`] resolve the name to it) with `--tls-cert`/`--tls-key`
    /// in `extra`, and clients trusting `pki`'s root.
    pub async fn spawn_tls(backend: Backend, pki: &tls::Pki, extra: &[String]) -> Self {
        assert!(extra.iter().any(|a| a == "--tls-cert"), "{extra:?}");
        let mut app = Self::spawn_on(backend, bind().await, extra).await;
        app.tls_root = Some(pki.root_pem.clone());
        app.http = app.client_builder().build().unwrap();
        app
    }

    /// A server on `listener` (bound by the caller, who needed its port first) with extra
    /// `serve` flags; its public URL is its own address, `https://mdm.guardmdm.test:PORT`
    /// when it serves HTTPS (`--tls-cert` or `--acme`).
    pub async fn spawn_on(backend: Backend, listener: TcpListener, extra: &[String]) -> Self {
        Self::spawn_with(backend, None, listener, extra, Public::Own).await
    }

    /// The running server.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// A client builder that reaches the server: trusting the test root and resolving
    /// `mdm.guardmdm.test` to the server when it serves HTTPS.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        match &self.tls_root {
            Some(root) => tls::reqwest_builder(root.as_bytes(), self.server().addr),
            None => reqwest::Client::builder(),
        }
    }

    /// A second instance sharing this one's database, secret key and ABM simulator, as
    /// several `serve` instances behind a load balancer do.
    pub async fn second_instance(&self) -> Self {
        self.instance_on(bind().await, &[]).await
    }

    /// [`TestApp::second_instance`] on `listener`, with extra `serve` flags.
    pub async fn instance_on(&self, listener: TcpListener, extra: &[String]) -> Self {
        let public = Public::Shared(self.public_url.clone());
        Self::spawn_with(self.backend, Some(self), listener, extra, public).await
    }

    async fn spawn_with(
        backend: Backend,
        share: Option<&TestApp>,
        listener: TcpListener,
        extra: &[String],
        public: Public,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let https = extra.iter().any(|a| a == "--tls-cert" || a == "--acme");
        let own_url = if https {
            format!("https://{}:{}", tls::HOST, addr.port())
        } else {
            format!("http://{addr}")
        };
        let dir = tempfile::tempdir().unwrap();
        let database_url = match share {
            Some(first) => first.database_url.clone(),
            None => fresh_database_url(backend).await,
        };
        let abm = Simulator::new(SimConfig::default())
            .start(bind().await)
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
        let given = extra
            .iter()
            .position(|a| a == "--public-url")
            .and_then(|i| extra.get(i + 1));
        let public_url = match (given, public) {
            (Some(url), _) => url.clone(),
            (None, Public::Fixed) => PUBLIC_URL.to_string(),
            (None, Public::Own) => own_url.clone(),
            (None, Public::Shared(url)) => url,
        };
        if given.is_none() {
            argv.extend(["--public-url".into(), public_url.clone()]);
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
            public_url,
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

    /// A second handle on the server's database, for arranging states the API cannot make
    /// (and reading those it does not show).
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
                    tokio::time::sleep(Duration::from_millis(25)).await;
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
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sync {id} of {name} did not finish");
    }

    /// The serials GuardMDM has for entry `name` with ABM status `abm_status` (`assigned`:
    /// still assigned to GuardMDM in ABM; `removed`).
    pub async fn device_set(&self, name: &str, abm_status: &str) -> BTreeSet<String> {
        self.device_set_with(&format!("entry={name}&abm_status={abm_status}"))
            .await
    }

    /// The serials `GET /api/v1/devices?<filter>` lists, every page, each listed once.
    pub async fn device_set_with(&self, filter: &str) -> BTreeSet<String> {
        let path = format!("/api/v1/devices?{filter}");
        serial_set(&all_pages(&self.http, &self.base, &path, "serial_number").await)
    }

    /// The serials the simulated ABM has assigned to `server`.
    pub fn abm_set(&self, server: &str) -> BTreeSet<String> {
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

/// A listener on a free port of 127.0.0.1.
pub async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
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

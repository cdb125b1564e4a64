//! `guardmdm demo`: the whole story on one machine with no Apple account. One process runs
//! the ABM simulator (an organisation with a few hundred devices of every kind), the APNs
//! simulator, and GuardMDM on an embedded SQLite database; it then does what an admin does
//! (connects ABM, uploads a push certificate, sets a default ADE profile per OS, syncs) and
//! switches simulated devices on one after another, so they enroll over time and answer
//! commands. Everything goes through GuardMDM's real interfaces: the REST API for the admin
//! steps, the DEP API, the device endpoints and APNs for the rest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser as _;
use guardmdm_crypto::{DeviceCa, PushPortal};
use guardmdm_sim::{
    ApnsSim, DeviceInfo, RunningApnsSim, RunningSimulator, SimConfig, SimDevice, Simulator,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{ServeArgs, Settings};
use crate::server::RunningServer;

/// Flags of `guardmdm demo` (all optional).
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where GuardMDM listens (a loopback address: the simulated devices use plain HTTP).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The data dir. Default: a new directory under the system's temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Devices in the simulated organisation.
    #[arg(long, default_value_t = 300)]
    pub devices: usize,
    /// Seconds between two devices being switched on.
    #[arg(long, default_value_t = 3.0)]
    pub enroll_every: f64,
}

/// The demo's dashboard admin.
const DEMO_ADMIN: &str = "admin";

/// A running demo.
pub struct RunningDemo {
    /// GuardMDM's base URL.
    pub url: String,
    /// Where `/metrics` is served without a token (a loopback port of its own).
    pub metrics_url: String,
    /// The admin token.
    pub admin_token: String,
    /// The dashboard admin's name (`admin`).
    pub admin_name: String,
    /// The dashboard admin's password, random per demo.
    pub admin_password: String,
    /// The data dir.
    pub data_dir: PathBuf,
    server: RunningServer,
    abm: RunningSimulator,
    apns: RunningApnsSim,
    stop: CancellationToken,
    driver: tokio::task::JoinHandle<()>,
    /// The devices switched on so far (kept alive: pushes wake them).
    pub enrolled: Arc<Mutex<Vec<SimDevice>>>,
}

impl RunningDemo {
    /// Stops everything.
    ///
    /// # Errors
    /// When the server fails while stopping.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        let _ = self.driver.await;
        self.server.shutdown();
        self.server.wait().await?;
        let _ = self.abm.stop().await;
        let _ = self.apns.stop().await;
        Ok(())
    }
}

/// The admin's side, over the REST API.
struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    /// A client for GuardMDM at `base` with the admin token.
    fn new(base: String, token: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// The first dashboard admin, as `guardmdm admins create` would make it; returns its
    /// password (random per demo).
    async fn create_dashboard_admin(&self) -> anyhow::Result<String> {
        let password: String = secrecy::ExposeSecret::expose_secret(
            &guardmdm_crypto::api_token::random_token().context("generating the admin password")?,
        )
        .chars()
        .take(20)
        .collect();
        self.call(
            Method::POST,
            "/admins",
            Some(json!({ "name": DEMO_ADMIN, "password": password })),
        )
        .await?;
        Ok(password)
    }

    /// Connects the organisation: a token `demo` in GuardMDM, whose public key registers an
    /// MDM server in ABM (the default for new devices), whose server token is uploaded back.
    async fn connect_abm(&self, abm: &RunningSimulator) -> anyhow::Result<()> {
        self.call(
            Method::POST,
            "/abm/entries",
            Some(json!({ "name": "demo", "batch_size": 500 })),
        )
        .await?;
        let pem = self
            .http
            .get(format!("{}/api/v1/abm/entries/demo/public-key", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?
            .text()
            .await?;
        let server_info = abm.sim.register_server("GuardMDM Demo", &pem)?;
        abm.sim
            .set_default_server(None, Some(&server_info.server_uuid))?;
        let token = abm.sim.download_token(&server_info.server_uuid, None)?;
        self.bytes(
            Method::PUT,
            "/abm/entries/demo/server-token",
            token.contents,
        )
        .await?;
        Ok(())
    }

    /// The push certificate as for real: GuardMDM makes the key and request, a stand-in for
    /// Apple's push portal issues the certificate, which is uploaded alone.
    async fn upload_push_certificate(&self) -> anyhow::Result<()> {
        let topic = format!("com.apple.mgmt.External.{}", uuid_like(std::process::id()));
        let request = self.call(Method::POST, "/apns/csr", None).await?;
        let csr = request["csr_pem"].as_str().unwrap_or_default();
        let certificate = PushPortal::generate()?.issue(csr.as_bytes(), &topic, 365)?;
        self.call(
            Method::PUT,
            "/apns",
            Some(json!({ "certificate_pem": certificate })),
        )
        .await?;
        Ok(())
    }

    /// A default ADE profile per OS, and a group that gives MacBook Airs the staff profile.
    async fn create_profiles_and_group(&self) -> anyhow::Result<()> {
        for (name, os, extra) in [
            (
                "corporate-iphone",
                "ios",
                json!({ "await_device_configured": true, "skip_setup_items": ["AppleID", "Siri", "Biometric"] }),
            ),
            (
                "shared-ipad",
                "ipados",
                json!({ "skip_setup_items": ["AppleID", "Siri"] }),
            ),
            (
                "mac-staff",
                "macos",
                json!({ "await_device_configured": true, "skip_setup_items": ["AppleID", "Siri", "FileVault"] }),
            ),
            (
                "conference-tv",
                "tvos",
                json!({ "auto_advance_setup": true, "language": "en", "region": "US" }),
            ),
            ("vision-lab", "visionos", json!({})),
        ] {
            let mut spec = json!({
                "name": name, "department": "IT", "support_email_address": "it@example.com"
            });
            if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
                spec.extend(extra.clone());
            }
            self.call(Method::POST, "/profiles", Some(spec)).await?;
            self.call(
                Method::PUT,
                &format!("/os-defaults/{os}"),
                Some(json!({ "profile": name })),
            )
            .await?;
        }
        self.call(
            Method::POST,
            "/groups",
            Some(json!({
                "name": "macbook-air-loaners",
                "rule": { "all": [{ "field": "model", "op": "contains", "values": ["MacBook Air"] }] },
                "profile": "mac-staff",
                "priority": 10,
            })),
        )
        .await?;
        Ok(())
    }

    /// Starts a sync of the `demo` token and waits (up to two minutes) until it is over.
    async fn sync_and_wait(&self) -> anyhow::Result<()> {
        let start = self
            .call(Method::POST, "/abm/entries/demo/syncs", None)
            .await?;
        let run_id = start["run"]["id"].as_i64().unwrap_or_default();
        for _ in 0..1200 {
            let run = self
                .call(
                    Method::GET,
                    &format!("/abm/entries/demo/syncs/{run_id}"),
                    None,
                )
                .await?;
            if run["outcome"] != "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.context("calling GuardMDM")?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{path}: HTTP {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn bytes(&self, method: Method, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        let response = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await
            .context("calling GuardMDM")?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{path}: HTTP {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Starts the demo and returns once the organisation is connected and synced; devices keep
/// enrolling in the background until [`RunningDemo::stop`].
///
/// # Errors
/// When a part cannot start (a busy port, an unwritable data dir).
pub async fn start(args: DemoArgs) -> anyhow::Result<RunningDemo> {
    let data_dir = data_dir_or_temporary(args.data_dir)?;
    let apple = AppleSide::start(&data_dir).await?;
    let (server, admin_token) = start_server(args.listen, &data_dir, &apple).await?;
    let url = format!("http://{}", server.addr);
    let metrics_url = server
        .metrics_addr
        .map_or_else(String::new, |at| format!("http://{at}/metrics"));
    let admin = Admin::new(url.clone(), admin_token.clone())?;

    let admin_password = admin.create_dashboard_admin().await?;
    admin.connect_abm(&apple.abm).await?;
    admin.upload_push_certificate().await?;
    admin.create_profiles_and_group().await?;
    let devices = apple.abm.sim.add_devices(args.devices, None);
    admin.sync_and_wait().await?;

    let stop = CancellationToken::new();
    let enrolled: Arc<Mutex<Vec<SimDevice>>> = Arc::default();
    let every = Duration::from_secs_f64(args.enroll_every.max(0.05));
    let switcher = Switcher {
        sim: apple.abm.sim.clone(),
        push: apple.apns.apns.clone(),
        device_ca: apple.device_ca,
        every,
    };
    let driver = switcher.spawn(devices, stop.clone(), enrolled.clone());
    Ok(RunningDemo {
        url,
        metrics_url,
        admin_token,
        admin_name: DEMO_ADMIN.to_string(),
        admin_password,
        data_dir,
        server,
        abm: apple.abm,
        apns: apple.apns,
        stop,
        driver,
        enrolled,
    })
}

/// The data dir asked for, or a new directory under the system's temporary directory.
fn data_dir_or_temporary(asked: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = asked {
        return Ok(dir);
    }
    let dir = std::env::temp_dir().join(format!("guardmdm-demo-{}", uuid_like(std::process::id())));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Apple's side: the organisation in ABM (empty until the demo adds its devices), APNs, and
/// the CA that signs the simulated devices' identities.
struct AppleSide {
    abm: RunningSimulator,
    apns: RunningApnsSim,
    device_ca: DeviceCa,
    /// The device CA's certificate, written to the data dir for `--device-ca-file`.
    anchors: PathBuf,
}

impl AppleSide {
    /// Starts both simulators on loopback ports of their own and writes the device CA's
    /// anchor into `data_dir`.
    async fn start(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let sim = Simulator::new(SimConfig {
            devices: 0,
            ..SimConfig::default()
        });
        let abm = sim
            .start(TcpListener::bind("127.0.0.1:0").await?)
            .context("starting the ABM simulator")?;
        let apns = ApnsSim::new()
            .start(TcpListener::bind("127.0.0.1:0").await?)
            .context("starting the APNs simulator")?;
        let device_ca = DeviceCa::generate("GuardMDM Demo Devices")?;
        let anchors = data_dir.join("demo-device-ca.pem");
        std::fs::write(&anchors, device_ca.anchor_pem())
            .with_context(|| format!("writing {}", anchors.display()))?;
        Ok(Self {
            abm,
            apns,
            device_ca,
            anchors,
        })
    }
}

/// Switches simulated devices on, one after another, as their users unbox them.
struct Switcher {
    sim: Simulator,
    push: ApnsSim,
    device_ca: DeviceCa,
    /// The time between two devices.
    every: Duration,
}

impl Switcher {
    /// Switches `devices` on in the background, one every `every`, until `stop`; each one
    /// is kept in `enrolled`, so that pushes keep waking it.
    fn spawn(
        self,
        devices: Vec<DeviceInfo>,
        stop: CancellationToken,
        enrolled: Arc<Mutex<Vec<SimDevice>>>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            for info in devices {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(self.every) => {}
                }
                let Some(device) = self.switch_on(&info).await else {
                    continue;
                };
                if let Ok(mut list) = enrolled.lock() {
                    list.push(device);
                }
            }
        })
    }

    /// Switches one device on: it enrolls, or is set up without management when ABM does
    /// not assign it; either way it is logged. `None` when the device cannot be made.
    async fn switch_on(&self, info: &DeviceInfo) -> Option<SimDevice> {
        let device = match SimDevice::new(&self.sim, &info.serial_number, &self.device_ca) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(serial = %info.serial_number, error = %e, "demo device not created");
                return None;
            }
        };
        device.attach_apns(&self.push);
        match device.enroll_and_run(&self.sim).await {
            Ok(report) if report.enrolled => {
                tracing::info!(serial = %info.serial_number, udid = %device.udid(), "demo device enrolled");
            }
            Ok(report) => {
                tracing::info!(serial = %info.serial_number, status = %report.activation.status, "demo device set up without management");
            }
            Err(e) => {
                tracing::warn!(serial = %info.serial_number, error = %e, "demo device did not enroll");
            }
        }
        Some(device)
    }
}

/// GuardMDM, as `serve` would run it against the simulators; returns the server and its
/// admin token.
async fn start_server(
    listen: SocketAddr,
    data_dir: &std::path::Path,
    apple: &AppleSide,
) -> anyhow::Result<(RunningServer, String)> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (try --listen 127.0.0.1:8081)"))?;
    let addr = listener.local_addr()?;
    let argv = [
        "serve".to_string(),
        "--listen".into(),
        addr.to_string(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--abm-url".into(),
        apple.abm.base_url(),
        "--device-ca-file".into(),
        apple.anchors.display().to_string(),
        "--apns-url".into(),
        apple.apns.base_url(),
        "--metrics-listen".into(),
        "127.0.0.1:0".into(),
    ];
    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ServeArgs,
    }
    let settings = Settings::from_args(Wrapper::try_parse_from(argv)?.args)?;
    let admin_token = secrecy::ExposeSecret::expose_secret(&settings.admin_token).to_string();
    let server = crate::server::start(settings, listener).await?;
    Ok((server, admin_token))
}

/// A short unique-enough suffix for directory names and the demo topic.
fn uuid_like(pid: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{pid:08x}-{nanos:08x}")
}

/// `guardmdm demo`: starts, prints where to look, runs until Ctrl-C.
///
/// # Errors
/// As [`start`].
#[allow(clippy::print_stdout)]
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    crate::telemetry::init(
        crate::telemetry::LogFormat::Text,
        "info,tower_http=warn,sqlx=warn,guardmdm_sim=warn",
    );
    let every = args.enroll_every;
    let signals = crate::server::ShutdownSignals::listen();
    let demo = start(args).await?;
    let bin = std::env::args()
        .next()
        .unwrap_or_else(|| "guardmdm".to_string());
    println!(
        "\nGuardMDM demo is running at {url}\n\
         \n  dashboard:   {url}/ (sign in as {name} with password {password})\
         \n  data dir:    {dir} (SQLite)\
         \n  admin token: {token}\
         \n  metrics:     {metrics}\
         \n\nA simulated organisation is connected through Apple Business Manager (simulated),\
         \nits devices are synced and have ADE profiles, and one device is switched on every {every} s\
         \nand enrolls. In another terminal:\
         \n\n  export GUARDMDM_URL={url} GUARDMDM_API_TOKEN={token}\
         \n  {bin} abm entry list\
         \n  {bin} devices list --assignment assigned\
         \n  {bin} profiles default\
         \n  curl -s -H \"Authorization: Bearer $GUARDMDM_API_TOKEN\" $GUARDMDM_URL/api/v1/enrollments | head\
         \n  {bin} commands send <UDID from the enrollments> DeviceInformation\
         \n\nCtrl-C stops the demo.",
        url = demo.url,
        dir = demo.data_dir.display(),
        token = demo.admin_token,
        metrics = demo.metrics_url,
        name = demo.admin_name,
        password = demo.admin_password,
    );
    signals.recv().await;
    demo.stop().await
}

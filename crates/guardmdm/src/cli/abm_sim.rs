//! `guardmdm abm-sim`: the ABM simulator (`guardmdm-sim`) on its own, and subcommands that
//! drive a running simulator through its portal REST API (`/portal/…`).
//!
//! Without a subcommand it serves the DEP API and the portal until SIGTERM or SIGINT. With
//! one (`register`, `token`, `assign`, …) it calls the simulator at `--url`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use guardmdm_sim::{OrgConfig, PortalBody, PortalClient, SimConfig, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

use crate::telemetry::LogFormat;

/// `guardmdm abm-sim`.
#[derive(Debug, clap::Args)]
pub(crate) struct AbmSimArgs {
    #[command(subcommand)]
    command: Option<SimCommand>,
    #[command(flatten)]
    serve: ServeSimArgs,
    /// The running simulator's base URL (for the subcommands).
    #[arg(
        long,
        global = true,
        env = "GUARDMDM_ABM_SIM_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    url: String,
}

/// Flags of the simulator itself.
#[derive(Debug, clap::Args)]
struct ServeSimArgs {
    /// Address and port to listen on.
    #[arg(
        long,
        env = "GUARDMDM_ABM_SIM_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    listen: SocketAddr,
    /// Devices in the organisation at start-up (the first registered MDM server gets them).
    #[arg(long, env = "GUARDMDM_ABM_SIM_DEVICES", default_value_t = 100)]
    devices: usize,
    /// Seed for the generated devices: the same seed gives the same serial numbers.
    #[arg(long, env = "GUARDMDM_ABM_SIM_SEED", default_value_t = 1)]
    seed: u64,
    /// The organisation's name (`org_name` in `/account`).
    #[arg(long, default_value = "Example Corp")]
    org_name: String,
    /// The organisation administrator's Apple Account (`admin_id`).
    #[arg(long, default_value = "admin@example.com")]
    admin_id: String,
    /// Register an MDM server with this name at start-up (needs --server-pem).
    #[arg(long, requires = "server_pem")]
    server_name: Option<String>,
    /// The public-key certificate (PEM) of the --server-name server, e.g. from
    /// `guardmdm abm entry create`.
    #[arg(long, requires = "server_name")]
    server_pem: Option<PathBuf>,
    /// Write the --server-name server's token (`*_smime.p7m`) into this directory.
    #[arg(long, requires = "server_name")]
    token_dir: Option<PathBuf>,
    /// Seconds of inactivity after which a DEP session expires.
    #[arg(long, default_value_t = 180)]
    session_idle_secs: u64,
    /// Rotate the session token every N API calls (0: never).
    #[arg(long, default_value_t = 100)]
    rotate_session_every: u32,
    /// Keep the start-up devices unassigned when the first MDM server is registered.
    #[arg(long)]
    no_adopt: bool,
    /// Log format.
    #[arg(long, env = "GUARDMDM_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Operations on a running simulator, through its portal.
#[derive(Debug, clap::Subcommand)]
enum SimCommand {
    /// Register an MDM server by uploading its public-key certificate (PEM).
    Register {
        /// The MDM server's name (unique in the organisation).
        #[arg(long)]
        name: String,
        /// The certificate PEM file (`guardmdm abm entry create` writes one).
        #[arg(long)]
        pem: PathBuf,
        /// Allow this MDM server to release (disown) devices.
        #[arg(long)]
        allow_release: bool,
    },
    /// Download a new server token (the previous one stops working).
    Token {
        /// The server's `server_uuid`.
        #[arg(long)]
        server: String,
        /// Where to write it: a file, or a directory for Apple's file name. Default: the
        /// current directory.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// List the MDM servers.
    Servers,
    /// Set (or clear) the default MDM server for new devices.
    Default {
        /// The server's `server_uuid`; omit with --clear.
        #[arg(long, required_unless_present = "clear")]
        server: Option<String>,
        /// Only for this family (iPhone, iPad, Mac, AppleTV, Vision); all when absent.
        #[arg(long)]
        family: Option<String>,
        /// Clear the default instead.
        #[arg(long, conflicts_with = "server")]
        clear: bool,
    },
    /// Add new devices, as a purchase: automatic assignment sends them to the default server.
    AddDevices {
        /// How many.
        count: usize,
        /// Only this family (iPhone, iPad, Mac, AppleTV, Vision); a realistic mix when absent.
        #[arg(long)]
        family: Option<String>,
    },
    /// Assign devices to an MDM server (manual assignment).
    Assign {
        /// The target `server_uuid`.
        #[arg(long)]
        server: String,
        /// Serial numbers.
        #[arg(required = true)]
        serials: Vec<String>,
    },
    /// Take devices off their MDM servers.
    Unassign {
        /// Serial numbers.
        #[arg(required = true)]
        serials: Vec<String>,
    },
    /// Assign every serial number in a CSV file (one per row) to an MDM server.
    AssignCsv {
        /// The target `server_uuid`.
        #[arg(long)]
        server: String,
        /// The CSV file.
        file: PathBuf,
    },
    /// List devices of a server, or unassigned devices.
    Devices {
        /// The server's `server_uuid`; unassigned devices when absent.
        #[arg(long)]
        server: Option<String>,
        /// At most this many (up to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// What Apple hands a device at first boot: its ADE profile and `url`, or why none.
    Activate {
        /// Serial number.
        serial: String,
    },
    /// Inject a fault (JSON, e.g. '{"kind":"status","status":503,"count":3,"retry_after":5}'),
    /// or list (no argument) or --clear them.
    Fault {
        /// The fault as JSON.
        fault: Option<String>,
        /// Clear every fault.
        #[arg(long, conflicts_with = "fault")]
        clear: bool,
    },
    /// Move simulated time forward.
    Advance {
        /// Seconds (86400 = a day; sync cursors expire after 7 days).
        seconds: u64,
    },
}

/// Runs `guardmdm abm-sim`.
///
/// # Errors
/// A port that cannot be bound, an unreadable file, or a portal call that failed.
pub(crate) async fn run(args: AbmSimArgs) -> anyhow::Result<()> {
    match args.command {
        None => serve(args.serve).await,
        Some(command) => portal_command(&PortalClient::new(&args.url)?, command).await,
    }
}

async fn serve(args: ServeSimArgs) -> anyhow::Result<()> {
    crate::telemetry::init(args.log_format, "info");
    let config = SimConfig {
        seed: args.seed,
        devices: args.devices,
        org: OrgConfig {
            name: args.org_name.clone(),
            admin_id: args.admin_id.clone(),
            ..OrgConfig::default()
        },
        session_idle_timeout: Duration::from_secs(args.session_idle_secs),
        session_rotate_every: (args.rotate_session_every > 0).then_some(args.rotate_session_every),
        adopt_seed_devices: !args.no_adopt,
        ..SimConfig::default()
    };
    let signals = crate::server::ShutdownSignals::listen();
    let sim = Simulator::new(config);
    if let (Some(name), Some(pem)) = (&args.server_name, &args.server_pem) {
        preregister(&sim, name, pem, args.token_dir.as_deref())?;
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let running = sim.start(listener).context("starting the simulator")?;
    print_usage(&running.base_url(), args.devices);
    tracing::info!(listen = %running.addr, devices = args.devices, "ABM simulator is serving");
    signals.recv().await;
    tracing::info!("shutting down");
    running.stop().await.context("serving HTTP")?;
    Ok(())
}

/// Registers `--server-name` with `--server-pem` and writes its token into `--token-dir`.
fn preregister(
    sim: &Simulator,
    name: &str,
    pem: &Path,
    token_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let pem_text =
        std::fs::read_to_string(pem).with_context(|| format!("reading {}", pem.display()))?;
    let server = sim.register_server(name, &pem_text)?;
    println!(
        "MDM server {:?} registered: server_uuid {}",
        server.server_name, server.server_uuid
    );
    if let Some(dir) = token_dir {
        let token = sim.download_token(&server.server_uuid, None)?;
        let path = dir.join(&token.file_name);
        std::fs::write(&path, &token.contents)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("server token written to {}", path.display());
    }
    Ok(())
}

fn print_usage(base: &str, devices: usize) {
    println!(
        "ABM simulator on {base} ({devices} devices)\n\
         \n\
         DEP API (Apple's paths): {base}/session, {base}/account, {base}/server/devices, …\n\
         Portal (JSON):           {base}/portal  (org: {base}/portal/org)\n\
         \n\
         Connect GuardMDM:\n\
         1. guardmdm abm entry create NAME --abm-url {base}     (writes GuardMDM_NAME.pem)\n\
         2. guardmdm abm-sim register --url {base} --name NAME --pem GuardMDM_NAME.pem\n\
         3. guardmdm abm-sim token --url {base} --server SERVER_UUID\n\
         4. guardmdm abm entry upload NAME NAME_Token_…_smime.p7m\n\
         (or run `guardmdm serve --abm-url {base}` so every entry uses the simulator)\n\
         \n\
         Stop with Ctrl-C."
    );
}

async fn portal_command(portal: &PortalClient, command: SimCommand) -> anyhow::Result<()> {
    let reply = match command {
        SimCommand::Register {
            name,
            pem,
            allow_release,
        } => register(portal, name, &pem, allow_release).await?,
        SimCommand::Token { server, output } => {
            return download_token(portal, &server, output).await;
        }
        SimCommand::Servers => portal.get("servers").await?,
        SimCommand::Default {
            server,
            family,
            clear,
        } => {
            let server = if clear { None } else { server };
            let body = json!({ "server_uuid": server, "device_family": family });
            portal
                .call(Method::PUT, "default-server", &[], PortalBody::Json(body))
                .await?
        }
        SimCommand::AddDevices { count, family } => {
            let body = json!({ "count": count, "device_family": family });
            portal
                .call(Method::POST, "devices", &[], PortalBody::Json(body))
                .await?
        }
        SimCommand::Assign { server, serials } => {
            let body = json!({ "server_uuid": server, "serials": serials });
            portal
                .call(Method::POST, "assign", &[], PortalBody::Json(body))
                .await?
        }
        SimCommand::Unassign { serials } => {
            let body = json!({ "serials": serials });
            portal
                .call(Method::POST, "unassign", &[], PortalBody::Json(body))
                .await?
        }
        SimCommand::AssignCsv { server, file } => {
            let csv =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let query = [("server_uuid", server)];
            portal
                .call(Method::POST, "assign-csv", &query, PortalBody::Bytes(csv))
                .await?
        }
        SimCommand::Devices { server, limit } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(server.map(|s| ("server_uuid", s)));
            portal
                .call(Method::GET, "devices", &query, PortalBody::Empty)
                .await?
        }
        SimCommand::Activate { serial } => portal.get(&format!("activation/{serial}")).await?,
        SimCommand::Fault { fault, clear } => faults(portal, fault.as_deref(), clear).await?,
        SimCommand::Advance { seconds } => {
            let body = json!({ "seconds": seconds });
            portal
                .call(Method::POST, "clock/advance", &[], PortalBody::Json(body))
                .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&reply)?);
    Ok(())
}

/// `abm-sim register`: an MDM server in the organisation, with the public key in `pem`.
async fn register(
    portal: &PortalClient,
    name: String,
    pem: &Path,
    allow_release: bool,
) -> anyhow::Result<Value> {
    let body = std::fs::read(pem).with_context(|| format!("reading {}", pem.display()))?;
    let query = [("name", name), ("allow_release", allow_release.to_string())];
    Ok(portal
        .call(Method::POST, "servers", &query, PortalBody::Bytes(body))
        .await?)
}

/// `abm-sim token`: downloads an MDM server's token into `output` (a file, or a directory
/// to put it in under Apple's file name; default: that name here) and prints where.
async fn download_token(
    portal: &PortalClient,
    server: &str,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let token = portal.download_token(server).await?;
    let path = match output {
        Some(p) if p.is_dir() => p.join(&token.file_name),
        Some(p) => p,
        None => PathBuf::from(&token.file_name),
    };
    std::fs::write(&path, &token.contents)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// `abm-sim fault`: clears the injected faults, injects `fault` (JSON), or lists them.
async fn faults(portal: &PortalClient, fault: Option<&str>, clear: bool) -> anyhow::Result<Value> {
    let reply = match (fault, clear) {
        (_, true) => {
            portal
                .call(Method::DELETE, "faults", &[], PortalBody::Empty)
                .await?
        }
        (Some(text), false) => {
            let fault: Value = serde_json::from_str(text).context("the fault is not JSON")?;
            portal
                .call(Method::POST, "faults", &[], PortalBody::Json(fault))
                .await?
        }
        (None, false) => portal.get("faults").await?,
    };
    Ok(reply)
}

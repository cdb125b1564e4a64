//! `guardmdm serve` configuration: flags with `GUARDMDM_*` environment twins (the flag wins),
//! parsed once into a validated [`Settings`]. Nothing reads the environment after start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use guardmdm_crypto::SecretKey;
use secrecy::{ExposeSecret, SecretString};

use crate::telemetry::LogFormat;

/// Apple's device assignment (DEP) API.
pub const DEFAULT_ABM_URL: &str = "https://mdmenrollment.apple.com";
/// Shortest accepted `--admin-token`.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Flags of `guardmdm serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "GUARDMDM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Database: `postgres://…` for PostgreSQL, `sqlite://PATH` for SQLite. Default: the
    /// SQLite file `guardmdm.db` in the data dir.
    #[arg(long, env = "GUARDMDM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Directory for the SQLite database, the secret key and the generated admin token.
    /// Default: `$XDG_DATA_HOME/guardmdm` (usually `~/.local/share/guardmdm`).
    #[arg(long, env = "GUARDMDM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The base URL devices and admins reach this server at (the ADE enrollment URL is built
    /// from it). Default: `http://` + the listen address.
    #[arg(long, env = "GUARDMDM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Apple's DEP API base URL; an ABM entry may override it (e.g. for the simulator).
    #[arg(long, env = "GUARDMDM_ABM_URL", default_value = DEFAULT_ABM_URL)]
    pub abm_url: String,
    /// Bootstrap API token with full access (at least 16 characters). Default: one is
    /// generated on first start and kept in `admin-token` in the data dir.
    #[arg(long, env = "GUARDMDM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The key that encrypts secrets at rest: 32 bytes in base64 (`openssl rand -base64 32`).
    /// Prefer the environment variable. Default: `secret.key` in the data dir, created on
    /// first start.
    #[arg(long, env = "GUARDMDM_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Log format.
    #[arg(long, env = "GUARDMDM_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// PEM file of the trust anchors for the device identities that sign ADE enrollment
    /// requests (MachineInfo). Default: Apple's root (real devices); a simulator brings its
    /// own CA.
    #[arg(long, env = "GUARDMDM_DEVICE_CA_FILE")]
    pub device_ca_file: Option<PathBuf>,
    /// The APNs endpoint pushes go to. A local `http://` URL speaks cleartext HTTP/2 (a push
    /// simulator).
    #[arg(long, env = "GUARDMDM_APNS_URL", default_value = guardmdm_apns::PRODUCTION_ENDPOINT)]
    pub apns_url: String,
    /// The request header a TLS-terminating proxy puts the device's client certificate in
    /// (PEM, URL-escaped PEM, or RFC 9440 `:base64DER:`). Only set it when every request
    /// comes through that proxy: the header is trusted as is. Without it, devices prove
    /// themselves with the `Mdm-Signature` header.
    #[arg(long, env = "GUARDMDM_CLIENT_CERT_HEADER")]
    pub client_cert_header: Option<String>,
    /// Also accept SCEP requests enveloped with single DES (56-bit). Apple devices use AES;
    /// only legacy SCEP clients such as micromdm's `scepclient` need this. Off by default.
    #[arg(long, env = "GUARDMDM_SCEP_ALLOW_SINGLE_DES")]
    pub scep_allow_single_des: bool,
    /// A dashboard session unused this long ends (`90s`, `30m`, `2h`).
    #[arg(long, env = "GUARDMDM_SESSION_IDLE_TIMEOUT", default_value = "2h", value_parser = parse_duration)]
    pub session_idle_timeout: time::Duration,
    /// A dashboard session ends this long after sign-in, used or not (`12h`, `1d`).
    #[arg(long, env = "GUARDMDM_SESSION_LIFETIME", default_value = "12h", value_parser = parse_duration)]
    pub session_lifetime: time::Duration,
    /// The largest check-in body a device may send (`256KiB`, `1MiB`, or bytes), at most
    /// 1 MiB. Check-ins are a few KB; a larger body is refused (413) before it is read, and
    /// only once the device's identity is checked.
    #[arg(long, env = "GUARDMDM_CHECKIN_MAX_BYTES", default_value = "256KiB", value_parser = parse_byte_size)]
    pub checkin_max_bytes: usize,
    /// The largest command report a device may send (`8MiB`, or bytes), at most 32 MiB. The
    /// largest reports are lists (installed apps, certificates) of a few MB on a Mac.
    #[arg(long, env = "GUARDMDM_REPORT_MAX_BYTES", default_value = "8MiB", value_parser = parse_byte_size)]
    pub report_max_bytes: usize,
    /// The longest `Mdm-Signature` header accepted (`16KiB`, or bytes), at most 64 KiB. A
    /// device's signature is a few KB; a longer header is refused (431) before it is decoded.
    #[arg(long, env = "GUARDMDM_MDM_SIGNATURE_MAX_BYTES", default_value = "16KiB", value_parser = parse_byte_size)]
    pub mdm_signature_max_bytes: usize,
    /// Dashboard password checks (argon2id, about 19 MiB of memory each) running at once.
    /// Default: the number of CPU cores.
    #[arg(long, env = "GUARDMDM_PASSWORD_CHECK_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..))]
    pub password_check_concurrency: Option<u16>,
    /// How long a dashboard sign-in waits for a free password check before it is answered
    /// 503 busy (`0s` answers at once; also `500ms`, `2s`).
    #[arg(long, env = "GUARDMDM_PASSWORD_CHECK_WAIT", default_value = "2s", value_parser = parse_wait)]
    pub password_check_wait: std::time::Duration,
    /// Limit for connecting to APNs and for each push request (`10s`); a push is tried up to
    /// three times. Commands are answered without waiting for pushes.
    #[arg(long, env = "GUARDMDM_APNS_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub apns_timeout: time::Duration,
    /// Devices that may wait for a background push; beyond it a device is not pushed (its
    /// push state says so) and gets its commands when it next checks in.
    #[arg(long, env = "GUARDMDM_PUSH_QUEUE_SIZE", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub push_queue_size: u32,
    /// Pushes in flight at once (HTTP/2 streams to APNs).
    #[arg(long, env = "GUARDMDM_PUSH_CONCURRENCY", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub push_concurrency: u32,
    /// A device waiting in Setup Assistant for `DeviceConfigured` longer than this is
    /// "stuck in Setup Assistant" (`30m`, `2h`): listed with why, counted on `/metrics`, shown
    /// on the dashboard (README, "Devices stuck in Setup Assistant").
    #[arg(long, env = "GUARDMDM_STUCK_AFTER", default_value = "30m", value_parser = parse_duration)]
    pub stuck_after: time::Duration,
    /// How long an ABM sync lease lasts without renewal (`2m`, `45s`; 2 s to 1 h): a sync
    /// whose instance stopped is shown as ended, and Sync Now starts a new one, this long
    /// after its last renewal. Renewed every quarter of it.
    #[arg(long, env = "GUARDMDM_SYNC_LEASE_TTL", default_value = "2m", value_parser = parse_duration)]
    pub sync_lease_ttl: time::Duration,
    /// Where `/metrics` and `/healthz` are served without a token (`off` for nowhere). On the
    /// main listener `/metrics` needs an admin or API token.
    #[arg(long, env = "GUARDMDM_METRICS_LISTEN", default_value = "127.0.0.1:9464", value_parser = parse_optional_addr)]
    pub metrics_listen: OptionalAddr,
    /// A new connection's first request head, and any later head once its first byte has
    /// arrived, must arrive in full within this long, or the connection is closed.
    #[arg(long, env = "GUARDMDM_HEADER_READ_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub header_read_timeout: time::Duration,
    /// A request body must arrive in full within this long of its head (else 408 and the
    /// connection is closed).
    #[arg(long, env = "GUARDMDM_REQUEST_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub request_body_timeout: time::Duration,
    /// A connection with no request in progress is closed after this long without a byte.
    #[arg(long, env = "GUARDMDM_KEEP_ALIVE_TIMEOUT", default_value = "75s", value_parser = parse_duration)]
    pub keep_alive_timeout: time::Duration,
    /// Most connections open at once on the main listener; further ones are closed at once.
    /// Keep it well below the open-files limit (`ulimit -n`).
    #[arg(long, env = "GUARDMDM_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// A connection with a response to send that the client has let nothing through for this
    /// long (it does not read) is closed.
    #[arg(long, env = "GUARDMDM_SEND_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub send_timeout: time::Duration,
    /// Serve HTTPS on `--listen` with this certificate (PEM: the server certificate, then
    /// its intermediates). Needs `--tls-key`.
    #[arg(long, env = "GUARDMDM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM, unencrypted).
    #[arg(long, env = "GUARDMDM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Obtain and renew the HTTPS certificate of `--listen` over ACME (RFC 8555) for these
    /// DNS names (comma-separated), validated with TLS-ALPN-01 on `--listen` itself: the
    /// names must resolve to this server and the CA must reach it on port 443.
    #[arg(long, env = "GUARDMDM_ACME", value_delimiter = ',', conflicts_with_all = ["tls_cert", "tls_key"])]
    pub acme: Vec<String>,
    /// The contact address of the ACME account (the CA's expiry and policy notices).
    #[arg(long, env = "GUARDMDM_ACME_EMAIL", requires = "acme")]
    pub acme_email: Option<String>,
    /// The ACME directory URL (Let's Encrypt's staging one is
    /// `https://acme-staging-v02.api.letsencrypt.org/directory`).
    #[arg(long, env = "GUARDMDM_ACME_DIRECTORY", default_value = guardmdm_service::acme::LETS_ENCRYPT_DIRECTORY)]
    pub acme_directory: String,
    /// Also trust these CA certificates (PEM) for the ACME directory's own HTTPS, besides the
    /// system's: for a private ACME CA (step-ca, pebble).
    #[arg(long, env = "GUARDMDM_ACME_CA_FILE", requires = "acme")]
    pub acme_ca_file: Option<PathBuf>,
    /// How often each instance reads the ACME certificate and pending challenges from the
    /// database (a renewal by another instance is served this long after it); 100ms to 1m.
    #[arg(long, env = "GUARDMDM_ACME_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub acme_poll_interval: time::Duration,
}

/// Whether, and with what certificate, the main listener serves HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSettings {
    /// Plain HTTP (behind a TLS-terminating proxy, or for tests and the demo).
    Off,
    /// `--tls-cert` and `--tls-key`.
    Files {
        /// The certificate chain (PEM).
        cert: PathBuf,
        /// Its private key (PEM).
        key: PathBuf,
    },
    /// `--acme`: obtained and renewed over ACME.
    Acme(AcmeSettings),
}

/// `--acme` and its companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The names to certify (checked, lower-case).
    pub domains: Vec<String>,
    /// The account's contact address.
    pub email: Option<String>,
    /// The directory URL.
    pub directory: String,
    /// Extra trust anchors for the directory's HTTPS (PEM file).
    pub ca_file: Option<PathBuf>,
    /// How often the database is read for the certificate and challenges.
    pub poll_interval: std::time::Duration,
}

impl AcmeSettings {
    fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let domains = guardmdm_service::acme::validate_domains(&args.acme)
            .map_err(|e| anyhow::anyhow!("--acme: {e}"))?;
        let directory = reqwest::Url::parse(&args.acme_directory)
            .with_context(|| format!("--acme-directory {:?} is not a URL", args.acme_directory))?;
        if directory.scheme() != "https" || directory.host().is_none() {
            bail!(
                "--acme-directory {:?} must be an https:// URL (ACME runs over HTTPS only)",
                args.acme_directory
            );
        }
        if let Some(email) = &args.acme_email
            && (email.contains(char::is_whitespace)
                || email.split('@').filter(|part| !part.is_empty()).count() != 2)
        {
            bail!("--acme-email {email:?} is not an email address (like admin@example.com)");
        }
        let poll_interval = std::time::Duration::try_from(args.acme_poll_interval)
            .ok()
            .filter(|d| {
                (std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(60))
                    .contains(d)
            })
            // An order waits one poll interval for the other instances, within its lease.
            .context("--acme-poll-interval must be from 100ms to 1m")?;
        Ok(Self {
            domains,
            email: args.acme_email.clone(),
            directory: args.acme_directory.clone(),
            ca_file: args.acme_ca_file.clone(),
            poll_interval,
        })
    }

    /// `https://` + the first name, with `--listen`'s port unless it is 443.
    fn public_url(&self, listen: SocketAddr) -> String {
        let host = self.domains.first().map_or("localhost", String::as_str);
        match listen.port() {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        }
    }
}

/// A listen address, or none (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddr(pub Option<SocketAddr>);

/// `off`, or an address and port such as `127.0.0.1:9464`.
///
/// # Errors
/// Says what is expected.
pub fn parse_optional_addr(text: &str) -> Result<OptionalAddr, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(OptionalAddr(None));
    }
    text.parse()
        .map(|a| OptionalAddr(Some(a)))
        .map_err(|_| format!("{text:?} is not an address and port (e.g. 127.0.0.1:9464) or `off`"))
}

/// A size like `4096`, `16KiB` or `8MiB` (IEC units are powers of 1024; `kB`, `MB` are
/// powers of 1000), read by the `bytesize` crate.
///
/// # Errors
/// Says what a size looks like.
pub fn parse_byte_size(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text.trim().parse().map_err(|e| {
        format!(
            "{text:?} is not a size ({e}): write bytes, or a number and KiB or MiB (e.g. 256KiB)"
        )
    })?;
    match usize::try_from(size.as_u64()) {
        Ok(0) => Err(format!("{text:?}: must be more than zero")),
        Ok(bytes) => Ok(bytes),
        Err(_) => Err(format!("{text:?} is too large")),
    }
}

/// `value` of `flag` must be at most `ceiling` bytes.
fn at_most(flag: &str, value: usize, ceiling: usize) -> anyhow::Result<usize> {
    if value > ceiling {
        bail!("{flag} is {value} bytes; at most {ceiling} is allowed");
    }
    Ok(value)
}

/// A short wait: `500ms`, `2s`, `0s` (read by `humantime`), at most a minute.
///
/// # Errors
/// Says what a wait looks like.
pub fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    let wait = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?} is not a wait ({e}): write a number and ms or s (e.g. 2s)")
    })?;
    if wait > MAX_WAIT {
        return Err(format!(
            "{text:?}: at most {}s (a sign-in should not hang)",
            MAX_WAIT.as_secs()
        ));
    }
    Ok(wait)
}

/// The longest [`parse_wait`] accepts.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A duration like `45s`, `30m`, `2h`, `1d` or `1h 30m` (read by `humantime`), more than
/// zero.
///
/// # Errors
/// Says what a duration looks like.
pub fn parse_duration(text: &str) -> Result<time::Duration, String> {
    let parsed = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?} is not a duration ({e}): write a number and s, m, h or d (e.g. 30m)")
    })?;
    match time::Duration::try_from(parsed) {
        Ok(d) if d > time::Duration::ZERO => Ok(d),
        Ok(_) => Err(format!("{text:?}: must be more than zero")),
        Err(_) => Err(format!("{text:?} is too long")),
    }
}

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A `sqlite:` URL as given.
    SqliteUrl(String),
    /// A `postgres://` URL.
    Postgres(String),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "sqlite file {}", p.display()),
            Self::SqliteUrl(u) => write!(f, "{u}"),
            Self::Postgres(u) => write!(f, "{}", redact_url_password(u)),
        }
    }
}

/// Validated server settings.
#[derive(Debug)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// The database.
    pub database: Database,
    /// The data dir (exists after [`Settings::from_args`]).
    pub data_dir: PathBuf,
    /// Public base URL, without a trailing slash.
    pub public_url: String,
    /// Default DEP API base URL.
    pub abm_url: String,
    /// The bootstrap admin token.
    pub admin_token: SecretString,
    /// The secret key.
    pub secret_key: SecretKey,
    /// Log format.
    pub log_format: LogFormat,
    /// The device-facing side.
    pub mdm: guardmdm_service::mdm::MdmSettings,
    /// The header a trusted proxy forwards client certificates in.
    pub client_cert_header: Option<String>,
    /// How long dashboard sessions last.
    pub sessions: guardmdm_service::SessionPolicy,
    /// How many dashboard password checks run at once, and how long a sign-in waits.
    pub password_checks: guardmdm_service::PasswordChecks,
    /// How long an ABM sync lease lasts without renewal.
    pub sync_lease_ttl: std::time::Duration,
    /// Where `/metrics` is served without a token, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The limits of every HTTP connection.
    pub edge: crate::edge::EdgeLimits,
    /// HTTPS on the main listener.
    pub tls: TlsSettings,
}

impl Settings {
    /// Validates the flags, creates the data dir, and loads (or creates) the secret key and
    /// the admin token.
    ///
    /// # Errors
    /// Names the flag or file that is wrong.
    pub fn from_args(mut args: ServeArgs) -> anyhow::Result<Self> {
        let acme = match args.acme.is_empty() {
            true => None,
            false => Some(AcmeSettings::from_args(&args)?),
        };
        let data_dir = args.data_dir.take().unwrap_or_else(default_data_dir);
        create_private_dir(&data_dir)?;
        let database = parse_database(args.database_url.as_deref(), &data_dir)?;
        let tls = match (args.tls_cert.take(), args.tls_key.take(), acme) {
            (Some(cert), Some(key), _) => TlsSettings::Files { cert, key },
            (_, _, Some(acme)) => TlsSettings::Acme(acme),
            _ => TlsSettings::Off,
        };
        let public_url = match args.public_url.take() {
            Some(url) => validate_url(&url, "--public-url")?,
            None => match &tls {
                TlsSettings::Off => format!("http://{}", args.listen),
                TlsSettings::Acme(acme) => acme.public_url(args.listen),
                TlsSettings::Files { .. } => format!("https://{}", args.listen),
            },
        };
        let abm_url = validate_url(&args.abm_url, "--abm-url")?;
        let secret_key = match args.secret_key.take() {
            Some(text) => SecretKey::from_base64(&text).context("GUARDMDM_SECRET_KEY")?,
            None => load_or_create_secret_key(&data_dir.join("secret.key"))?,
        };
        let admin_token = admin_token(args.admin_token.take(), &data_dir)?;
        let mdm = mdm_settings(&args, &public_url)?;
        if args.session_idle_timeout > args.session_lifetime {
            bail!("--session-idle-timeout must not be longer than --session-lifetime");
        }
        let mut password_checks = guardmdm_service::PasswordChecks {
            wait: args.password_check_wait,
            ..Default::default()
        };
        if let Some(n) = args.password_check_concurrency {
            password_checks.concurrency = usize::from(n);
        }
        if !(time::Duration::seconds(2)..=time::Duration::hours(1)).contains(&args.sync_lease_ttl) {
            bail!("--sync-lease-ttl must be between 2s and 1h");
        }
        let sync_lease_ttl =
            std::time::Duration::try_from(args.sync_lease_ttl).context("--sync-lease-ttl")?;
        let edge = edge_limits(&args)?;
        Ok(Self {
            tls,
            password_checks,
            metrics_listen: args.metrics_listen.0,
            edge,
            sessions: guardmdm_service::SessionPolicy {
                idle_timeout: args.session_idle_timeout,
                lifetime: args.session_lifetime,
            },
            mdm,
            client_cert_header: args.client_cert_header,
            listen: args.listen,
            database,
            data_dir,
            public_url,
            abm_url,
            admin_token,
            secret_key,
            log_format: args.log_format,
            sync_lease_ttl,
        })
    }
}

/// The admin token from `--admin-token` (long enough to resist guessing), or the one kept
/// in the data dir (made on first start).
fn admin_token(flag: Option<String>, data_dir: &Path) -> anyhow::Result<SecretString> {
    Ok(match flag {
        Some(token) if token.trim().len() < MIN_ADMIN_TOKEN_LEN => bail!(
            "--admin-token must be at least {MIN_ADMIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 24`)"
        ),
        Some(token) => SecretString::from(token.trim().to_string()),
        None => load_or_create_admin_token(&data_dir.join("admin-token"))?,
    })
}

/// The device-facing side: the URLs devices are given (from `public_url`), the CA their
/// identities must chain to, APNs and the push queue, and the size limits of what devices
/// send.
fn mdm_settings(
    args: &ServeArgs,
    public_url: &str,
) -> anyhow::Result<guardmdm_service::mdm::MdmSettings> {
    let mut mdm =
        guardmdm_service::mdm::MdmSettings::new(public_url).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(path) = &args.device_ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("--device-ca-file: reading {}", path.display()))?;
        mdm.device_anchors = guardmdm_crypto::TrustAnchors::from_pem(&pem)
            .with_context(|| format!("--device-ca-file {}", path.display()))?;
    }
    mdm.push.endpoint = validate_url(&args.apns_url, "--apns-url")?;
    mdm.push.timeout = args
        .apns_timeout
        .try_into()
        .context("--apns-timeout is out of range")?;
    mdm.push.queue_size =
        usize::try_from(args.push_queue_size).context("--push-queue-size is out of range")?;
    mdm.push.concurrency =
        usize::try_from(args.push_concurrency).context("--push-concurrency is out of range")?;
    mdm.scep_single_des = args.scep_allow_single_des;
    mdm.stuck_after = args.stuck_after;
    let ceiling = guardmdm_service::mdm::DeviceLimits::CEILING;
    mdm.limits = guardmdm_service::mdm::DeviceLimits {
        checkin_bytes: at_most(
            "--checkin-max-bytes",
            args.checkin_max_bytes,
            ceiling.checkin_bytes,
        )?,
        report_bytes: at_most(
            "--report-max-bytes",
            args.report_max_bytes,
            ceiling.report_bytes,
        )?,
        signature_bytes: at_most(
            "--mdm-signature-max-bytes",
            args.mdm_signature_max_bytes,
            ceiling.signature_bytes,
        )?,
    };
    Ok(mdm)
}

/// The limits of every HTTP connection: its timeouts, and how many may be open at once.
fn edge_limits(args: &ServeArgs) -> anyhow::Result<crate::edge::EdgeLimits> {
    Ok(crate::edge::EdgeLimits {
        header_read_timeout: std_duration(args.header_read_timeout),
        request_body_timeout: std_duration(args.request_body_timeout),
        keep_alive_timeout: std_duration(args.keep_alive_timeout),
        send_timeout: std_duration(args.send_timeout),
        max_connections: usize::try_from(args.max_connections)
            .context("--max-connections is too large")?,
    })
}

/// A positive duration from [`parse_duration`] as a `std` one.
fn std_duration(d: time::Duration) -> std::time::Duration {
    std::time::Duration::try_from(d).unwrap_or(std::time::Duration::ZERO)
}

/// The data dir when `--data-dir` is not given: `$XDG_DATA_HOME/guardmdm`, else
/// `~/.local/share/guardmdm`.
pub fn default_data_dir() -> PathBuf {
    #[allow(clippy::disallowed_methods)] // the one place that reads the environment
    let xdg = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty());
    #[allow(clippy::disallowed_methods)]
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty());
    match (xdg, home) {
        (Some(xdg), _) => PathBuf::from(xdg).join("guardmdm"),
        (None, Some(home)) => PathBuf::from(home).join(".local/share/guardmdm"),
        (None, None) => PathBuf::from("guardmdm-data"),
    }
}

fn parse_database(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Database> {
    match url {
        None => Ok(Database::Sqlite(data_dir.join("guardmdm.db"))),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            Ok(Database::Postgres(u.to_string()))
        }
        Some(u) if u.starts_with("sqlite:") => Ok(Database::SqliteUrl(u.to_string())),
        Some(u) => bail!(
            "--database-url {:?} is not supported: use postgres://… or sqlite://PATH",
            redact_url_password(u)
        ),
    }
}

fn validate_url(text: &str, flag: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(text).with_context(|| format!("{flag} {text:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("{flag} {text:?} must be an http:// or https:// URL with a host");
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// `scheme://user:****@host/…`: a URL safe to log.
pub fn redact_url_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable URL>".to_string(),
    }
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(
                || {
                    format!(
                        "cannot restrict the data dir {} to its owner",
                        dir.display()
                    )
                },
            )?;
        }
    }
    Ok(())
}

/// Reads a secret file, or creates it with `make()` (mode 0600) when it does not exist.
fn load_or_create_secret_file(
    path: &Path,
    make: impl FnOnce() -> anyhow::Result<SecretString>,
) -> anyhow::Result<(SecretString, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            Ok((SecretString::from(text.trim().to_string()), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = make()?;
            write_private_file(path, value.expose_secret())?;
            Ok((value, true))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn load_or_create_secret_key(path: &Path) -> anyhow::Result<SecretKey> {
    let (text, created) = load_or_create_secret_file(path, || {
        Ok(SecretKey::generate()
            .context("generating the secret key")?
            .to_base64())
    })?;
    if created {
        tracing::info!(path = %path.display(), "created the secret key that encrypts secrets at rest: back it up with the database");
    }
    SecretKey::from_base64(text.expose_secret())
        .with_context(|| format!("the secret key file {} is corrupt", path.display()))
}

fn load_or_create_admin_token(path: &Path) -> anyhow::Result<SecretString> {
    let (token, created) = load_or_create_secret_file(path, || {
        guardmdm_crypto::api_token::generate().context("generating the admin token")
    })?;
    if created {
        tracing::info!(path = %path.display(), "generated the bootstrap admin token (no --admin-token given)");
    }
    if token.expose_secret().len() < MIN_ADMIN_TOKEN_LEN {
        bail!(
            "the admin token file {} is too short or empty",
            path.display()
        );
    }
    Ok(token)
}

fn write_private_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{contents}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "secret file is readable by other users: chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["x"];
        argv.extend_from_slice(extra);
        Wrapper::parse_from(argv).args
    }

    #[test]
    fn push_flags_default_to_the_services_defaults_and_refuse_zero() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let s = Settings::from_args(args(&["--data-dir", data])).unwrap();
        let defaults = guardmdm_service::mdm::PushSettings::default();
        assert_eq!(s.mdm.push.timeout, defaults.timeout);
        assert_eq!(s.mdm.push.queue_size, defaults.queue_size);
        assert_eq!(s.mdm.push.concurrency, defaults.concurrency);
        let s = Settings::from_args(args(&[
            "--data-dir",
            data,
            "--apns-timeout",
            "3s",
            "--push-queue-size",
            "500",
            "--push-concurrency",
            "4",
        ]))
        .unwrap();
        assert_eq!(s.mdm.push.timeout, std::time::Duration::from_secs(3));
        assert_eq!(s.mdm.push.queue_size, 500);
        assert_eq!(s.mdm.push.concurrency, 4);
        for flag in ["--push-queue-size", "--push-concurrency"] {
            assert!(Wrapper::try_parse_from(["x", flag, "0"]).is_err(), "{flag}");
        }
        assert!(Wrapper::try_parse_from(["x", "--push-concurrency", "1001"]).is_err());
    }

    #[test]
    fn first_start_creates_private_key_and_token_files_and_reuses_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data_arg = data.to_str().unwrap();
        let s = Settings::from_args(args(&["--data-dir", data_arg])).unwrap();
        assert_eq!(s.database, Database::Sqlite(data.join("guardmdm.db")));
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.abm_url, DEFAULT_ABM_URL);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["secret.key", "admin-token"] {
                let mode = std::fs::metadata(data.join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
            let mode = std::fs::metadata(&data).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let again = Settings::from_args(args(&["--data-dir", data_arg])).unwrap();
        assert_eq!(
            again.admin_token.expose_secret(),
            s.admin_token.expose_secret()
        );
        assert_eq!(
            again.secret_key.to_base64().expose_secret(),
            s.secret_key.to_base64().expose_secret()
        );
        assert!(!format!("{again:?}").contains(s.admin_token.expose_secret()));
    }

    #[test]
    fn device_body_limits_default_to_the_protocol_crates_and_have_ceilings() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let s = Settings::from_args(args(&["--data-dir", d])).unwrap();
        assert_eq!(s.mdm.limits, guardmdm_service::mdm::DeviceLimits::default());
        let s = Settings::from_args(args(&[
            "--data-dir",
            d,
            "--checkin-max-bytes",
            "64KiB",
            "--report-max-bytes",
            "32MiB",
            "--mdm-signature-max-bytes",
            "8192",
        ]))
        .unwrap();
        assert_eq!(s.mdm.limits.checkin_bytes, 64 * 1024);
        assert_eq!(s.mdm.limits.report_bytes, 32 * 1024 * 1024);
        assert_eq!(s.mdm.limits.signature_bytes, 8192);
        for flag in [
            "--checkin-max-bytes",
            "--report-max-bytes",
            "--mdm-signature-max-bytes",
        ] {
            let err = format!(
                "{:#}",
                Settings::from_args(args(&["--data-dir", d, flag, "33MiB"])).unwrap_err()
            );
            assert!(err.contains(flag) && err.contains("at most"), "{err}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert_eq!(parse_byte_size("16KiB"), Ok(16 * 1024));
        assert_eq!(parse_byte_size("8MiB"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_byte_size("256 kB"), Ok(256_000));
        for bad in ["", "KiB", "0", "0MiB", "-1k", "lots"] {
            assert!(parse_byte_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(time::Duration::seconds(90)));
        assert_eq!(parse_duration("2h"), Ok(time::Duration::hours(2)));
        assert_eq!(parse_duration("1d"), Ok(time::Duration::days(1)));
        assert_eq!(parse_duration("1h 30m"), Ok(time::Duration::minutes(90)));
        for bad in ["", "h", "10", "0m", "-1h", "2 fortnights"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn waits() {
        use std::time::Duration;
        assert_eq!(parse_wait("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_wait("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_wait("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("1m"), Ok(Duration::from_secs(60)));
        for bad in ["", "2", "s", "-1s", "61s", "2m"] {
            assert!(parse_wait(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let cases: [(&[&str], &str); 6] = [
            (&["--admin-token", "short"], "--admin-token"),
            (&["--database-url", "mysql://u:pw@h/db"], "not supported"),
            (&["--public-url", "ftp://x"], "--public-url"),
            (&["--abm-url", "not a url"], "--abm-url"),
            (&["--secret-key", "abc"], "GUARDMDM_SECRET_KEY"),
            (&["--secret-key", "AAAA"], "32 bytes"),
        ];
        for (extra, expected) in cases {
            let mut a = vec!["--data-dir", d];
            a.extend_from_slice(extra);
            let err = format!("{:#}", Settings::from_args(args(&a)).unwrap_err());
            assert!(err.contains(expected), "{extra:?}: {err}");
            assert!(!err.contains("pw@"), "password leaked: {err}");
        }
        std::fs::write(dir.path().join("secret.key"), "garbage\n").unwrap();
        let err = format!(
            "{:#}",
            Settings::from_args(args(&["--data-dir", d])).unwrap_err()
        );
        assert!(
            err.contains("secret key file") && err.contains("corrupt"),
            "{err}"
        );
    }

    #[test]
    fn edge_limits_and_the_metrics_listener() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let s = Settings::from_args(args(&["--data-dir", d])).unwrap();
        assert_eq!(s.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            s.edge,
            crate::edge::EdgeLimits {
                header_read_timeout: std::time::Duration::from_secs(20),
                request_body_timeout: std::time::Duration::from_secs(60),
                keep_alive_timeout: std::time::Duration::from_secs(75),
                send_timeout: std::time::Duration::from_secs(60),
                max_connections: 512,
            }
        );
        let s = Settings::from_args(args(&[
            "--data-dir",
            d,
            "--metrics-listen",
            "off",
            "--keep-alive-timeout",
            "5s",
            "--max-connections",
            "3",
        ]))
        .unwrap();
        assert_eq!(s.metrics_listen, None);
        assert_eq!(s.edge.keep_alive_timeout, std::time::Duration::from_secs(5));
        assert_eq!(s.edge.max_connections, 3);
        assert!(parse_optional_addr("localhost").is_err());
        assert!(
            Wrapper::try_parse_from(["x", "--max-connections", "0"]).is_err(),
            "a cap of 0 would refuse everything"
        );
    }

    #[test]
    fn postgres_urls_are_redacted_in_debug() {
        let db = parse_database(
            Some("postgres://guard:hunter2@db:5432/guardmdm"),
            Path::new("."),
        )
        .unwrap();
        let shown = format!("{db:?}");
        assert!(
            shown.contains("****") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn the_sync_lease_ttl_defaults_to_two_minutes_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data_arg = data.to_str().unwrap();
        let s = Settings::from_args(args(&["--data-dir", data_arg])).unwrap();
        assert_eq!(s.sync_lease_ttl, std::time::Duration::from_secs(120));
        let s =
            Settings::from_args(args(&["--data-dir", data_arg, "--sync-lease-ttl", "3s"])).unwrap();
        assert_eq!(s.sync_lease_ttl, std::time::Duration::from_secs(3));
        for bad in ["1s", "2h"] {
            let e = Settings::from_args(args(&["--data-dir", data_arg, "--sync-lease-ttl", bad]))
                .err()
                .unwrap();
            assert!(e.to_string().contains("--sync-lease-ttl"), "{e}");
        }
    }

    #[test]
    fn acme_settings_are_checked_and_set_the_public_url() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let s = Settings::from_args(args(&[
            "--data-dir",
            d,
            "--listen",
            "0.0.0.0:443",
            "--acme",
            "MDM.example.com,mdm2.example.com",
            "--acme-email",
            "it@example.com",
        ]))
        .unwrap();
        let TlsSettings::Acme(acme) = &s.tls else {
            panic!("ACME settings: {:?}", s.tls);
        };
        assert_eq!(acme.domains, vec!["mdm.example.com", "mdm2.example.com"]);
        assert_eq!(
            acme.directory,
            guardmdm_service::acme::LETS_ENCRYPT_DIRECTORY
        );
        assert_eq!(acme.poll_interval, std::time::Duration::from_secs(5));
        assert_eq!(s.public_url, "https://mdm.example.com");
        let s = Settings::from_args(args(&[
            "--data-dir",
            d,
            "--listen",
            "127.0.0.1:8443",
            "--acme",
            "mdm.example.com",
        ]))
        .unwrap();
        assert_eq!(s.public_url, "https://mdm.example.com:8443");

        for (extra, expected) in [
            (
                &["--acme", "*.example.com"][..],
                "--acme: *.example.com: a wildcard",
            ),
            (
                &["--acme", "localhost"][..],
                "--acme: localhost: not a fully qualified",
            ),
            (
                &[
                    "--acme",
                    "a.example.com",
                    "--acme-directory",
                    "http://ca.example.com/dir",
                ][..],
                "must be an https:// URL",
            ),
            (
                &["--acme", "a.example.com", "--acme-email", "nobody"][..],
                "--acme-email \"nobody\" is not an email address",
            ),
            (
                &["--acme", "a.example.com", "--acme-poll-interval", "10ms"][..],
                "--acme-poll-interval must be from 100ms to 1m",
            ),
            (
                &["--acme", "a.example.com", "--acme-poll-interval", "2m"][..],
                "--acme-poll-interval must be from 100ms to 1m",
            ),
        ] {
            let mut argv = vec!["--data-dir", d];
            argv.extend_from_slice(extra);
            let e = Settings::from_args(args(&argv)).unwrap_err().to_string();
            assert!(e.contains(expected), "{extra:?}: {e}");
        }
        // --acme and --tls-cert exclude each other; the other --acme flags need --acme.
        assert!(
            Wrapper::try_parse_from([
                "x",
                "--acme",
                "a.example.com",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem"
            ])
            .is_err()
        );
        assert!(Wrapper::try_parse_from(["x", "--acme-email", "it@example.com"]).is_err());
    }
}

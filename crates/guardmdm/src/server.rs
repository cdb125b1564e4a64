//! Wiring of `guardmdm serve`: open the store, check the secret key, build the services and
//! the router, start background jobs, serve until shutdown, then stop the jobs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use guardmdm_abm::ClientOptions;
use guardmdm_crypto::SecretKey;
use guardmdm_service::acme::{AcmeJob, AcmeService};
use guardmdm_service::dep_sync::SYNC_INTERVAL;
use guardmdm_service::tls_status::TlsStatus;
use guardmdm_service::{AbmSettings, Services, SyncService};
use guardmdm_store::Store;
use guardmdm_store_postgres::PostgresStore;
use guardmdm_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AcmeSettings, Database, ServeArgs, Settings, TlsSettings};

/// How long background jobs, and requests in progress, get to finish after shutdown starts.
const JOB_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Opens the configured database and applies its migrations.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub async fn open_store(database: &Database) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match database {
        Database::Sqlite(path) => Arc::new(
            SqliteStore::open(path)
                .await
                .with_context(|| format!("opening the SQLite database {}", path.display()))?,
        ),
        Database::SqliteUrl(url) => Arc::new(
            SqliteStore::open_url(url)
                .await
                .with_context(|| format!("opening the SQLite database {url}"))?,
        ),
        Database::Postgres(url) => {
            Arc::new(PostgresStore::connect(url).await.with_context(|| {
                format!(
                    "connecting to PostgreSQL at {}",
                    crate::config::redact_url_password(url)
                )
            })?)
        }
    };
    Ok(store)
}

/// A server started by [`start`].
pub struct RunningServer {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The address `/metrics` is served on without a token (`--metrics-listen`), if any.
    pub metrics_addr: Option<SocketAddr>,
    tls_status: Arc<TlsStatus>,
    tls_files: Option<Arc<crate::tls_files::TlsFiles>>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// This instance's HTTPS certificate status (what health checks and the doctor read).
    pub fn tls_status(&self) -> Arc<TlsStatus> {
        self.tls_status.clone()
    }

    /// Begins a graceful shutdown.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Re-reads the `--tls-cert`/`--tls-key` files now, as SIGHUP does; `None` when the
    /// server has none.
    pub async fn reload_tls(&self) -> Option<crate::tls_files::Reload> {
        let files = self.tls_files.clone()?;
        match tokio::task::spawn_blocking(move || files.reload()).await {
            Ok(outcome) => Some(outcome),
            Err(e) => {
                tracing::error!(error = %e, "reloading the TLS files failed");
                None
            }
        }
    }

    /// Waits until the server and its jobs have stopped.
    ///
    /// # Errors
    /// The server's own error, if it failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("the server task panicked")?
    }
}

/// Starts the server on `listener` and returns at once; it runs until
/// [`RunningServer::shutdown`]. Tests use this with a `127.0.0.1:0` listener.
///
/// # Errors
/// When the store cannot be opened or the secret key does not match the database.
pub async fn start(settings: Settings, listener: TcpListener) -> anyhow::Result<RunningServer> {
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    let (metrics_listener, metrics_addr) = bind_metrics(settings.metrics_listen).await?;
    let tls_status = Arc::new(TlsStatus::new(settings.tls != TlsSettings::Off));
    let tls = Tls::new(&settings.tls, &tls_status)?;
    let store = open_store(&settings.database).await?;
    guardmdm_service::secrets::verify_secret_key(store.as_ref(), &settings.secret_key).await?;
    let secret_key = Arc::new(settings.secret_key);
    let acme_key = secret_key.clone();
    let abm = AbmSettings {
        default_url: settings.abm_url.clone(),
        client_options: ClientOptions::default(),
    };
    let shutdown = CancellationToken::new();
    let services = Services::new(
        store,
        secret_key,
        Some(settings.admin_token),
        abm,
        settings.mdm.clone(),
        shutdown.child_token(),
    )
    .with_session_policy(settings.sessions)
    .with_password_checks(settings.password_checks)
    .with_sync_lease_ttl(settings.sync_lease_ttl)
    .with_tls_status(tls_status.clone())
    .with_doctor_settings(guardmdm_service::doctor::DoctorSettings {
        data_dir: Some(settings.data_dir.clone()),
        ..guardmdm_service::doctor::DoctorSettings::default()
    });
    let acme = acme_job(tls.acme, &services, acme_key, &tls_status)?;
    if !matches!(settings.database, Database::Postgres(_)) {
        services.sync.recover_sole_instance().await?; // SQLite: one process, so any run left is dead
    }
    let jobs = spawn_jobs(&services, tls.files.as_ref(), acme, &shutdown);
    let serving = Serving {
        sync: services.sync.clone(),
        mdm: services.mdm.clone(),
        jobs,
        limits: settings.edge,
        tls: tls.config,
        shutdown: shutdown.clone(),
    };
    let state = guardmdm_http::AppState::new(services)
        .with_client_cert_header(settings.client_cert_header)
        .with_public_url(&settings.public_url);
    let task = serving.spawn(listener, metrics_listener, state);
    tracing::info!(
        listen = %addr,
        metrics_listen = ?metrics_addr,
        database = ?settings.database,
        data_dir = %settings.data_dir.display(),
        public_url = %settings.public_url,
        abm_url = %settings.abm_url,
        "GuardMDM {} is serving",
        env!("CARGO_PKG_VERSION")
    );
    Ok(RunningServer {
        addr,
        metrics_addr,
        tls_status,
        tls_files: tls.files,
        shutdown,
        task,
    })
}

/// The listener for `--metrics-listen`, if asked for, and the address it got.
async fn bind_metrics(
    at: Option<SocketAddr>,
) -> anyhow::Result<(Option<TcpListener>, Option<SocketAddr>)> {
    let Some(at) = at else {
        return Ok((None, None));
    };
    let listener = TcpListener::bind(at)
        .await
        .with_context(|| format!("cannot listen on {at} (--metrics-listen)"))?;
    let addr = listener
        .local_addr()
        .context("reading the metrics listen address")?;
    Ok((Some(listener), Some(addr)))
}

/// The listener's HTTPS, from the TLS settings.
struct Tls<'a> {
    /// The listener's TLS configuration; `None` for plain HTTP.
    config: Option<Arc<rustls::ServerConfig>>,
    /// With `--tls-cert`/`--tls-key`: the files, watched and re-read on SIGHUP.
    files: Option<Arc<crate::tls_files::TlsFiles>>,
    /// With ACME: its settings and the listener's certificates, which its orders fill.
    acme: Option<(&'a AcmeSettings, Arc<crate::tls::Certificates>)>,
}

impl<'a> Tls<'a> {
    /// Loads the certificate files, or readies an empty certificate store for ACME.
    fn new(settings: &'a TlsSettings, status: &Arc<TlsStatus>) -> anyhow::Result<Self> {
        Ok(match settings {
            TlsSettings::Off => Self {
                config: None,
                files: None,
                acme: None,
            },
            TlsSettings::Acme(acme) => {
                // No certificate until the first order (or the database) provides one: until
                // then handshakes other than TLS-ALPN-01 validation fail, and TlsStatus says so.
                let certificates = Arc::new(crate::tls::Certificates::default());
                Self {
                    config: Some(crate::tls::server_config(certificates.clone())?),
                    files: None,
                    acme: Some((acme, certificates)),
                }
            }
            TlsSettings::Files { cert, key } => {
                let certificates = Arc::new(crate::tls::Certificates::default());
                let files = crate::tls_files::TlsFiles::load(
                    cert,
                    key,
                    certificates.clone(),
                    status.clone(),
                )?;
                Self {
                    config: Some(crate::tls::server_config(certificates)?),
                    files: Some(Arc::new(files)),
                    acme: None,
                }
            }
        })
    }
}

/// With ACME: the job that orders and renews the listener's certificates, over the same
/// store and key as the services. One lease-holder name per instance, for the ACME lease as
/// for the sync leases.
fn acme_job(
    acme: Option<(&AcmeSettings, Arc<crate::tls::Certificates>)>,
    services: &Services,
    secret_key: Arc<SecretKey>,
    tls_status: &Arc<TlsStatus>,
) -> anyhow::Result<Option<AcmeJob>> {
    acme.map(|(acme, certificates)| {
        let service = AcmeService::new(services.store.clone(), secret_key);
        crate::acme::job(
            acme,
            service,
            services.sync.holder().to_string(),
            certificates,
            tls_status.clone(),
        )
    })
    .transpose()
}

/// Starts the background jobs: the token health monitor, the scheduled syncs, and the TLS
/// files' watcher or the ACME job when there is one. They stop with `shutdown`.
fn spawn_jobs(
    services: &Services,
    tls_files: Option<&Arc<crate::tls_files::TlsFiles>>,
    acme: Option<AcmeJob>,
    shutdown: &CancellationToken,
) -> TaskTracker {
    let jobs = TaskTracker::new();
    jobs.spawn(guardmdm_service::jobs::run_token_health_monitor(
        services.abm_entries.clone(),
        services.mdm.clone(),
        shutdown.child_token(),
        services.tls.clone(),
    ));
    jobs.spawn(services.sync.clone().run_schedule(SYNC_INTERVAL));
    jobs.spawn(guardmdm_service::jobs::run_auto_release(
        services.mdm.clone(),
        shutdown.child_token(),
    ));
    if let Some(files) = tls_files {
        jobs.spawn(files.clone().watch(shutdown.child_token()));
    }
    if let Some(acme) = acme {
        jobs.spawn(acme.run(shutdown.child_token()));
    }
    jobs
}

/// What the serving task needs, and waits for once the listener has stopped.
struct Serving {
    sync: SyncService,
    mdm: guardmdm_service::mdm::MdmService,
    jobs: TaskTracker,
    limits: crate::edge::EdgeLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
}

impl Serving {
    /// Serves the API on `listener` (and `/metrics` on `metrics_listener`) until shutdown,
    /// then gives the background jobs, syncs and pushes in progress [`JOB_SHUTDOWN_GRACE`]
    /// to stop.
    fn spawn(
        self,
        listener: TcpListener,
        metrics_listener: Option<TcpListener>,
        state: guardmdm_http::AppState,
    ) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        let app = guardmdm_http::router(state.clone());
        let metrics = metrics_listener.map(|listener| {
            tokio::spawn(crate::edge::serve(
                listener,
                guardmdm_http::metrics_router(state),
                self.limits,
                None,
                self.shutdown.clone(),
                JOB_SHUTDOWN_GRACE,
            ))
        });
        let stop = self.shutdown;
        tokio::spawn(async move {
            crate::edge::serve(
                listener,
                app,
                self.limits,
                self.tls,
                stop.clone(),
                JOB_SHUTDOWN_GRACE,
            )
            .await;
            stop.cancel();
            if let Some(metrics) = metrics
                && let Err(e) = metrics.await
            {
                tracing::error!(error = %e, "the metrics listener's task failed");
            }
            self.jobs.close();
            let all_stopped = async {
                self.jobs.wait().await;
                self.sync.wait().await;
                self.mdm.wait_pushes().await;
            };
            if tokio::time::timeout(JOB_SHUTDOWN_GRACE, all_stopped)
                .await
                .is_err()
            {
                tracing::warn!("background jobs did not stop within {JOB_SHUTDOWN_GRACE:?}");
            }
            Ok(())
        })
    }
}

/// `guardmdm serve`: runs until SIGTERM or SIGINT, then shuts down gracefully.
///
/// # Errors
/// Bad settings, an unusable database, or a port that cannot be bound.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    crate::telemetry::init(args.log_format, "info,tower_http=warn,sqlx=warn");
    let settings = Settings::from_args(args)?;
    // Listened for before anything is served: a SIGTERM (or SIGHUP) that arrives as soon as
    // the server answers must stop it gracefully (or reload it), not kill it.
    let shutdown = ShutdownSignals::listen();
    let hangups = hangup_signals();
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let server = start(settings, listener).await?;
    tokio::select! {
        () = shutdown.recv() => {},
        () = reload_on_hangup(&server, hangups) => {},
    }
    tracing::info!("shutting down");
    server.shutdown();
    server.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP, listened for from now on (`None` off Unix, or when it cannot be).
#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

fn hangup_signals() -> Hangups {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; TLS files are still re-read when they change");
            None
        }
    }
}

/// Re-reads the TLS files on every SIGHUP (`systemctl reload`); never resolves. With no TLS
/// files SIGHUP is logged and otherwise ignored (it no longer ends the process).
#[cfg_attr(not(unix), allow(unused_variables))]
async fn reload_on_hangup(server: &RunningServer, hangups: Hangups) {
    #[cfg(unix)]
    if let Some(mut hangups) = hangups {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: re-reading the TLS files");
            if server.reload_tls().await.is_none() {
                tracing::info!("SIGHUP: there are no --tls-cert/--tls-key files to re-read");
            }
        }
    }
    std::future::pending::<()>().await;
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from the moment [`ShutdownSignals::listen`]
/// returns, so one that arrives before anything waits for it is not lost.
pub struct ShutdownSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    /// Starts listening.
    #[must_use]
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for {name}");
                    None
                }
            };
            Self {
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves on the first SIGTERM or SIGINT since [`Self::listen`].
    pub async fn recv(self) {
        #[cfg(unix)]
        {
            async fn one(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = one(self.terminate) => {},
                () = one(self.interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}

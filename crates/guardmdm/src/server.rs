//! Wiring of `guardmdm serve`: open the store, check the secret key, build the services and
//! the router, start background jobs, serve until shutdown, then stop the jobs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use guardmdm_abm::ClientOptions;
use guardmdm_service::dep_sync::SYNC_INTERVAL;
use guardmdm_service::tls_status::TlsStatus;
use guardmdm_service::{AbmSettings, Services};
use guardmdm_store::Store;
use guardmdm_store_postgres::PostgresStore;
use guardmdm_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Database, ServeArgs, Settings, TlsSettings};

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
    let metrics_listener = match settings.metrics_listen {
        Some(at) => Some(
            TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} (--metrics-listen)"))?,
        ),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .context("reading the metrics listen address")?;
    let tls_status = Arc::new(TlsStatus::new(settings.tls != TlsSettings::Off));
    // With ACME: its settings and the listener's certificates, which it fills.
    let (tls, tls_files, acme) = match &settings.tls {
        TlsSettings::Off => (None, None, None),
        TlsSettings::Acme(acme) => {
            // No certificate until the first order (or the database) provides one: until
            // then handshakes other than TLS-ALPN-01 validation fail, and TlsStatus says so.
            let certificates = Arc::new(crate::tls::Certificates::default());
            (
                Some(crate::tls::server_config(certificates.clone())?),
                None,
                Some((acme, certificates)),
            )
        }
        TlsSettings::Files { cert, key } => {
            let certificates = Arc::new(crate::tls::Certificates::default());
            let files = crate::tls_files::TlsFiles::load(
                cert,
                key,
                certificates.clone(),
                tls_status.clone(),
            )?;
            (
                Some(crate::tls::server_config(certificates)?),
                Some(Arc::new(files)),
                None,
            )
        }
    };
    let store = open_store(&settings.database).await?;
    guardmdm_service::secrets::verify_secret_key(store.as_ref(), &settings.secret_key).await?;
    let secret_key = Arc::new(settings.secret_key);
    let acme = acme.map(|(acme, certificates)| {
        let service = guardmdm_service::acme::AcmeService::new(store.clone(), secret_key.clone());
        (acme, service, certificates)
    });
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
    // One lease-holder name per instance, for the ACME lease as for the sync leases.
    let acme = acme
        .map(|(acme, service, certificates)| {
            crate::acme::job(
                acme,
                service,
                services.sync.holder().to_string(),
                certificates,
                tls_status.clone(),
            )
        })
        .transpose()?;
    if !matches!(settings.database, Database::Postgres(_)) {
        services.sync.recover_sole_instance().await?; // SQLite: one process, so any run left is dead
    }
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
    if let Some(files) = &tls_files {
        jobs.spawn(files.clone().watch(shutdown.child_token()));
    }
    if let Some(acme) = acme {
        jobs.spawn(acme.run(shutdown.child_token()));
    }
    let sync = services.sync.clone();
    let mdm = services.mdm.clone();
    let state = guardmdm_http::AppState::new(services)
        .with_client_cert_header(settings.client_cert_header)
        .with_public_url(&settings.public_url);
    let app = guardmdm_http::router(state.clone());
    let limits = settings.edge;
    let metrics = metrics_listener.map(|listener| {
        tokio::spawn(crate::edge::serve(
            listener,
            guardmdm_http::metrics_router(state),
            limits,
            None,
            shutdown.clone(),
            JOB_SHUTDOWN_GRACE,
        ))
    });
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        crate::edge::serve(listener, app, limits, tls, stop.clone(), JOB_SHUTDOWN_GRACE).await;
        stop.cancel();
        if let Some(metrics) = metrics
            && let Err(e) = metrics.await
        {
            tracing::error!(error = %e, "the metrics listener's task failed");
        }
        jobs.close();
        let all_stopped = async {
            jobs.wait().await;
            sync.wait().await;
            mdm.wait_pushes().await;
        };
        if tokio::time::timeout(JOB_SHUTDOWN_GRACE, all_stopped)
            .await
            .is_err()
        {
            tracing::warn!("background jobs did not stop within {JOB_SHUTDOWN_GRACE:?}");
        }
        Ok(())
    });
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
        tls_files,
        shutdown,
        task,
    })
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

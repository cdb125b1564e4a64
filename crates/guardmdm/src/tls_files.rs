//! `--tls-cert`/`--tls-key` kept current: the files are loaded at start-up, looked at again
//! every [`POLL_INTERVAL`] and re-read on demand (SIGHUP, [`TlsFiles::reload`]).
//!
//! A good new pair (both files readable PEM, the key the certificate's, the certificate not
//! expired) is swapped into the server's [`Certificates`]: new handshakes get it, connections
//! already open keep theirs. A bad pair leaves the certificate in use alone; the problem goes
//! to the log, naming the file and what is wrong, and to [`TlsStatus::problem`] (health,
//! dashboard banner); the next good pair clears it.
//!
//! Tools that renew certificates write the files one after the other (certbot and acme.sh
//! write a new file and rename it over the old one, often the certificate before its key).
//! Polling therefore takes a bad pair for a write in progress the first time it sees it and
//! reports it only when the files are still the same, and still bad, one interval later. An
//! explicit reload means the admin has finished: it reports at once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::bail;
use guardmdm_service::tls_status::{CertificateSource, ServedCertificate, TlsStatus};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::tls::Certificates;

/// How often the files are looked at for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What one look at the files did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files are as they were last looked at: nothing to do.
    Unchanged,
    /// A new pair is served to new connections from now on.
    Replaced(ServedCertificate),
    /// The files changed into a pair that is not usable (yet): the certificate in use stays,
    /// and the pair is looked at again at the next poll (a write may be in progress).
    Waiting,
    /// The pair is not usable: the certificate in use stays; the problem (this message) is
    /// logged and recorded in the TLS status.
    Rejected(String),
}

/// The contents of one file, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    Read(Vec<u8>),
    Unreadable(String),
}

impl Content {
    fn of(path: &Path) -> Self {
        match std::fs::read(path) {
            Ok(bytes) => Self::Read(bytes),
            Err(e) => Self::Unreadable(e.to_string()),
        }
    }
}

/// Both files as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    cert: Content,
    key: Content,
}

/// The files as last looked at.
#[derive(Debug)]
struct Seen {
    contents: Contents,
    /// What is wrong with them, if they are not a usable pair.
    problem: Option<String>,
    /// Whether that problem has been reported (logged and recorded).
    reported: bool,
}

/// The `--tls-cert`/`--tls-key` pair of a running server.
#[derive(Debug)]
pub struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    certificates: Arc<Certificates>,
    status: Arc<TlsStatus>,
    seen: Mutex<Seen>,
}

impl TlsFiles {
    /// Loads the pair at start-up into `certificates` and records it in `status`.
    ///
    /// # Errors
    /// When the pair is not usable: what is wrong, and in which file.
    pub fn load(
        cert: &Path,
        key: &Path,
        certificates: Arc<Certificates>,
        status: Arc<TlsStatus>,
    ) -> anyhow::Result<Self> {
        let contents = read(cert, key);
        let (certified, served) = usable(cert, key, &contents, OffsetDateTime::now_utc())?;
        tracing::info!(
            cert = %cert.display(),
            key = %key.display(),
            names = ?served.names,
            not_after = %served.not_after,
            fingerprint = %served.fingerprint,
            "HTTPS certificate loaded from the TLS files; they are re-read when they change or on SIGHUP"
        );
        certificates.set(certified);
        status.served(served);
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            certificates,
            status,
            seen: Mutex::new(Seen {
                contents,
                problem: None,
                reported: false,
            }),
        })
    }

    /// Re-reads the files now (SIGHUP): a usable pair is served from now on, even when
    /// unchanged; any problem is reported at once.
    pub fn reload(&self) -> Reload {
        let contents = read(&self.cert, &self.key);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match usable(&self.cert, &self.key, &contents, OffsetDateTime::now_utc()) {
            Ok((certified, served)) => {
                *seen = Seen {
                    contents,
                    problem: None,
                    reported: false,
                };
                self.swap(certified, served)
            }
            Err(e) => {
                let problem = format!("{e:#}");
                *seen = Seen {
                    contents,
                    problem: Some(problem.clone()),
                    reported: true,
                };
                self.reject(&problem)
            }
        }
    }

    /// Looks at the files (the poll): a changed, usable pair is served from now on; a changed
    /// pair that is not usable is reported once it has stayed the same for one poll.
    pub fn poll(&self) -> Reload {
        let contents = read(&self.cert, &self.key);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if contents == seen.contents {
            return match (&seen.problem, seen.reported) {
                (Some(problem), false) => {
                    // The same bad pair a whole interval later: no write in progress.
                    let problem = problem.clone();
                    seen.reported = true;
                    self.reject(&problem)
                }
                _ => Reload::Unchanged,
            };
        }
        match usable(&self.cert, &self.key, &contents, OffsetDateTime::now_utc()) {
            Ok((certified, served)) => {
                *seen = Seen {
                    contents,
                    problem: None,
                    reported: false,
                };
                self.swap(certified, served)
            }
            Err(e) => {
                tracing::debug!(
                    cert = %self.cert.display(),
                    key = %self.key.display(),
                    "the TLS files changed but are not a usable pair yet ({e:#}); looking again in {POLL_INTERVAL:?}"
                );
                *seen = Seen {
                    contents,
                    problem: Some(format!("{e:#}")),
                    reported: false,
                };
                Reload::Waiting
            }
        }
    }

    /// Polls every [`POLL_INTERVAL`] until `cancel`.
    pub async fn watch(self: Arc<Self>, cancel: CancellationToken) {
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await; // the first tick is immediate; the files were just loaded
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = interval.tick() => {}
            }
            let files = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || files.poll()).await {
                tracing::error!(error = %e, "looking at the TLS files failed");
            }
        }
    }

    fn swap(&self, certified: Arc<CertifiedKey>, served: ServedCertificate) -> Reload {
        self.certificates.set(certified);
        self.status.served(served.clone());
        tracing::info!(
            cert = %self.cert.display(),
            key = %self.key.display(),
            names = ?served.names,
            not_after = %served.not_after,
            fingerprint = %served.fingerprint,
            "HTTPS certificate loaded from the TLS files: new connections get it"
        );
        Reload::Replaced(served)
    }

    fn reject(&self, problem: &str) -> Reload {
        let in_use = self.status.snapshot().certificate.map_or_else(
            || "no certificate".to_string(),
            |c| format!("the certificate valid until {}", c.not_after.date()),
        );
        let message =
            format!("the TLS files were not reloaded: {problem}. Still serving {in_use}.");
        tracing::error!(
            cert = %self.cert.display(),
            key = %self.key.display(),
            "{message}"
        );
        self.status.problem(message.clone());
        Reload::Rejected(message)
    }
}

fn read(cert: &Path, key: &Path) -> Contents {
    Contents {
        cert: Content::of(cert),
        key: Content::of(key),
    }
}

/// The pair in `contents` if it can be served at `now`: both files read, the key the
/// certificate's, the certificate not expired.
fn usable(
    cert: &Path,
    key: &Path,
    contents: &Contents,
    now: OffsetDateTime,
) -> anyhow::Result<(Arc<CertifiedKey>, ServedCertificate)> {
    let chain_pem = match &contents.cert {
        Content::Read(bytes) => bytes,
        Content::Unreadable(e) => bail!("--tls-cert {}: cannot read it: {e}", cert.display()),
    };
    let key_pem = match &contents.key {
        Content::Read(bytes) => bytes,
        Content::Unreadable(e) => bail!("--tls-key {}: cannot read it: {e}", key.display()),
    };
    let certified = crate::tls::certified_key_from_file_contents(cert, chain_pem, key, key_pem)?;
    let served = crate::tls::served_certificate(&certified, CertificateSource::Files)
        .map_err(|e| anyhow::anyhow!("--tls-cert {}: {e:#}", cert.display()))?;
    if served.not_after <= now {
        bail!(
            "--tls-cert {}: the certificate expired on {}: put a current one there \
             (devices refuse an expired certificate)",
            cert.display(),
            served.not_after
        );
    }
    Ok((certified, served))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    struct Pair {
        cert: String,
        key: String,
    }

    fn pair(name: &str, days: i64) -> Pair {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(days.abs() + 1);
        params.not_after = now + time::Duration::days(days);
        let cert = params.self_signed(&key).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    struct Setup {
        dir: tempfile::TempDir,
        files: TlsFiles,
        certificates: Arc<Certificates>,
        status: Arc<TlsStatus>,
    }

    impl Setup {
        fn new(first: &Pair) -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("cert.pem"), &first.cert).unwrap();
            std::fs::write(dir.path().join("key.pem"), &first.key).unwrap();
            let certificates = Arc::new(Certificates::default());
            let status = Arc::new(TlsStatus::new(true));
            let files = TlsFiles::load(
                &dir.path().join("cert.pem"),
                &dir.path().join("key.pem"),
                certificates.clone(),
                status.clone(),
            )
            .unwrap();
            Self {
                dir,
                files,
                certificates,
                status,
            }
        }

        fn write(&self, name: &str, text: &str) {
            // Like certbot: a new file renamed over the old one.
            let tmp = self.dir.path().join(format!("{name}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(tmp, self.dir.path().join(name)).unwrap();
        }

        fn names(&self) -> Vec<String> {
            self.status.snapshot().certificate.unwrap().names
        }
    }

    #[test]
    fn a_certificate_written_before_its_key_is_taken_once_the_key_follows() {
        let setup = Setup::new(&pair("old.test", 90));
        let served = setup.certificates.current().unwrap();
        assert_eq!(setup.files.poll(), Reload::Unchanged);
        let new = pair("new.test", 90);
        setup.write("cert.pem", &new.cert);
        assert_eq!(setup.files.poll(), Reload::Waiting);
        assert!(Arc::ptr_eq(&setup.certificates.current().unwrap(), &served));
        setup.write("key.pem", &new.key);
        assert!(matches!(setup.files.poll(), Reload::Replaced(_)));
        assert_eq!(setup.names(), vec!["new.test"]);
        assert_eq!(setup.status.snapshot().problem, None, "never reported");
        assert_eq!(setup.files.poll(), Reload::Unchanged);
    }

    #[test]
    fn a_bad_pair_is_reported_after_one_quiet_poll_and_cleared_by_a_good_one() {
        let setup = Setup::new(&pair("old.test", 90));
        setup.write("key.pem", "not a key");
        assert_eq!(setup.files.poll(), Reload::Waiting);
        assert_eq!(setup.status.snapshot().problem, None);
        let Reload::Rejected(message) = setup.files.poll() else {
            panic!("a bad pair that stays is reported");
        };
        assert!(message.contains("--tls-key"), "{message}");
        assert!(message.contains("key.pem"), "{message}");
        assert!(message.contains("no usable private key"), "{message}");
        assert!(message.contains("Still serving the certificate valid until"));
        assert_eq!(setup.status.snapshot().problem, Some(message));
        assert_eq!(setup.files.poll(), Reload::Unchanged, "reported once");
        assert_eq!(setup.names(), vec!["old.test"]);
        let new = pair("new.test", 90);
        setup.write("key.pem", &new.key);
        setup.write("cert.pem", &new.cert);
        assert!(matches!(setup.files.poll(), Reload::Replaced(_)));
        assert_eq!(setup.status.snapshot().problem, None);
        assert_eq!(setup.names(), vec!["new.test"]);
    }

    #[test]
    fn an_explicit_reload_reports_at_once_and_names_what_is_wrong() {
        let setup = Setup::new(&pair("old.test", 90));
        let other = pair("other.test", 90);
        setup.write("key.pem", &other.key);
        let Reload::Rejected(message) = setup.files.reload() else {
            panic!("a key of another certificate is refused");
        };
        assert!(message.contains("does not fit"), "{message}");
        setup.write("key.pem", "");
        setup.write("cert.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
        let Reload::Rejected(message) = setup.files.reload() else {
            panic!("a broken certificate is refused");
        };
        assert!(message.contains("--tls-cert"), "{message}");
        std::fs::remove_file(setup.dir.path().join("cert.pem")).unwrap();
        let Reload::Rejected(message) = setup.files.reload() else {
            panic!("a missing file is refused");
        };
        assert!(message.contains("cannot read it"), "{message}");
        let expired = pair("expired.test", -1);
        setup.write("cert.pem", &expired.cert);
        setup.write("key.pem", &expired.key);
        let Reload::Rejected(message) = setup.files.reload() else {
            panic!("an expired certificate is refused");
        };
        assert!(message.contains("expired on"), "{message}");
        assert_eq!(setup.names(), vec!["old.test"], "the old one stays");
        let good = pair("good.test", 90);
        setup.write("cert.pem", &good.cert);
        setup.write("key.pem", &good.key);
        assert!(matches!(setup.files.reload(), Reload::Replaced(_)));
        assert_eq!(setup.names(), vec!["good.test"]);
        assert_eq!(setup.status.snapshot().problem, None);
    }

    #[test]
    fn start_up_refuses_an_unusable_pair() {
        let dir = tempfile::tempdir().unwrap();
        let expired = pair("expired.test", -1);
        std::fs::write(dir.path().join("cert.pem"), &expired.cert).unwrap();
        std::fs::write(dir.path().join("key.pem"), &expired.key).unwrap();
        let err = TlsFiles::load(
            &dir.path().join("cert.pem"),
            &dir.path().join("key.pem"),
            Arc::new(Certificates::default()),
            Arc::new(TlsStatus::new(true)),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("expired on"), "{err:#}");
    }
}

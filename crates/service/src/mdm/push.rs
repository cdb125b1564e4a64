//! The MDM push certificate (upload, topic, expiry) and pushing devices through APNs
//! (`docs/protocol.md` §7.5).
//!
//! Pushes run in the background: whoever queues a command asks for a push
//! ([`MdmService::request_push`]) and returns at once. One dispatcher per instance takes the
//! devices from a bounded queue (coalesced per device, see [`super::push_queue`]) and pushes
//! at most `concurrency` of them at a time, until the service's cancellation token fires.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use guardmdm_apns::{ApnsClient, ApnsConfig, PushOutcome, PushProvider, PushTarget};
use guardmdm_crypto::PushCertificate;
use guardmdm_store::{MdmStore, NewAuditEvent};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::push_health::{PushCertificateState, PushHealth, push_certificate_health};
use super::push_queue::{Attempt, PushBook, PushStatus, Requested};
use super::{MdmError, MdmService};
use crate::{Actor, ServiceError};

const APNS_SECRET: &str = "apns";

/// Default [`PushSettings::queue_size`].
pub const DEFAULT_PUSH_QUEUE_SIZE: usize = 100_000;
/// Default [`PushSettings::concurrency`].
pub const DEFAULT_PUSH_CONCURRENCY: usize = 32;
/// Default [`PushSettings::timeout`].
pub const DEFAULT_APNS_TIMEOUT: Duration = Duration::from_secs(10);

/// Where pushes go, and how many at once.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The APNs endpoint (`--apns-url`; `https://api.push.apple.com`, or a local simulator).
    pub endpoint: String,
    /// Limit for connecting to APNs and for each push request (`--apns-timeout`). A push is
    /// tried up to three times.
    pub timeout: Duration,
    /// Devices that may wait for a push (`--push-queue-size`); a device asking for one when
    /// the queue is full is not pushed, and its push state says so.
    pub queue_size: usize,
    /// Pushes in flight at once (`--push-concurrency`).
    pub concurrency: usize,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            endpoint: guardmdm_apns::PRODUCTION_ENDPOINT.to_string(),
            timeout: DEFAULT_APNS_TIMEOUT,
            queue_size: DEFAULT_PUSH_QUEUE_SIZE,
            concurrency: DEFAULT_PUSH_CONCURRENCY,
        }
    }
}

/// A read-only handle on this instance's push states, for the services that show devices.
#[derive(Clone)]
pub struct PushStates {
    book: Arc<Mutex<PushBook>>,
}

impl PushStates {
    fn lock(&self) -> MutexGuard<'_, PushBook> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The push state of `udid` as this instance knows it.
    pub fn status(&self, udid: &str) -> PushStatus {
        self.lock().status(udid)
    }
}

/// The background pushes: the book, the dispatcher's wake-up, its tasks and its stop signal.
#[derive(Clone)]
struct PushQueue {
    states: PushStates,
    wake: Arc<Notify>,
    started: Arc<AtomicBool>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

/// The push certificate as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushCertificateView {
    /// The APNs topic (`com.apple.mgmt.External.<uuid>`).
    pub topic: String,
    /// The certificate's subject.
    pub subject: String,
    /// SHA-256 fingerprint.
    pub fingerprint: String,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// Whole days until expiry (negative once expired).
    pub days_left: i64,
    /// `active`, `expiring` (30 days or less: renew it at identity.apple.com with the same
    /// Apple Account) or `expired` ([`push_certificate_health`]).
    pub state: PushCertificateState,
    /// The state and what to do, in one sentence.
    #[serde(default)]
    pub message: String,
}

impl PushCertificateView {
    fn new(cert: &PushCertificate, now: OffsetDateTime) -> Self {
        let not_after = cert.certificate.not_after();
        let health = push_certificate_health(Some(not_after), now);
        Self {
            topic: cert.topic.clone(),
            subject: cert.certificate.subject().to_string(),
            fingerprint: cert.certificate.sha256_fingerprint().to_string(),
            not_after,
            days_left: health.days_left.unwrap_or_default(),
            state: health.state,
            message: health.message,
        }
    }
}

/// `2026-12-07 15:20 UTC`, for messages.
pub(super) fn date_time(t: OffsetDateTime) -> String {
    t.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_else(|_| t.to_string())
}

/// The client built for one sealed push certificate.
type CachedClient = Option<(Vec<u8>, Arc<ApnsClient>)>;
/// The certificate opened from one sealed value.
type CachedCertificate = Option<(Vec<u8>, PushCertificate)>;

/// Builds and caches the APNs client of the current push certificate, and the certificate
/// itself: every check-in compares topics, which must not decrypt and parse it each time.
#[derive(Clone)]
pub(super) struct Pusher {
    settings: PushSettings,
    cache: Arc<Mutex<CachedClient>>,
    opened: Arc<Mutex<CachedCertificate>>,
    queue: PushQueue,
}

impl Pusher {
    pub(super) fn new(settings: PushSettings, cancel: CancellationToken) -> Self {
        let queue = PushQueue {
            states: PushStates {
                book: Arc::new(Mutex::new(PushBook::new(settings.queue_size))),
            },
            wake: Arc::new(Notify::new()),
            started: Arc::new(AtomicBool::new(false)),
            tasks: TaskTracker::new(),
            cancel,
        };
        Self {
            settings,
            cache: Arc::default(),
            opened: Arc::default(),
            queue,
        }
    }

    fn client(&self, sealed: &[u8], cert: &PushCertificate) -> Result<Arc<ApnsClient>, String> {
        if let Ok(cache) = self.cache.lock()
            && let Some((key, client)) = cache.as_ref()
            && key.as_slice() == sealed
        {
            return Ok(client.clone());
        }
        let endpoint =
            self.settings.endpoint.parse().map_err(|e| {
                format!("the APNs URL {:?} is invalid: {e}", self.settings.endpoint)
            })?;
        let config = ApnsConfig {
            endpoint,
            identity_pem: Some(SecretString::from(cert.identity_pem().to_string())),
            timeout: self.settings.timeout,
            ..ApnsConfig::default()
        };
        let client = Arc::new(ApnsClient::new(config).map_err(|e| e.to_string())?);
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((sealed.to_vec(), client.clone()));
        }
        Ok(client)
    }
}

/// What an admin uploads.
#[derive(Debug, Clone)]
pub enum PushUpload {
    /// The PEM certificate Apple issued for GuardMDM's pending request
    /// ([`MdmService::create_push_request`]), whose key GuardMDM holds.
    Certificate {
        /// The certificate.
        certificate: Vec<u8>,
    },
    /// PEM certificate and PEM private key.
    Pem {
        /// The certificate.
        certificate: Vec<u8>,
        /// The unencrypted private key.
        key: Vec<u8>,
    },
    /// A PKCS#12 file and its password.
    Pkcs12 {
        /// The file.
        der: Vec<u8>,
        /// Its password.
        password: SecretString,
    },
}

impl<S: ?Sized + MdmStore + 'static> MdmService<S> {
    pub(super) async fn push_certificate_sealed(
        &self,
    ) -> Result<Option<(Vec<u8>, PushCertificate)>, MdmError> {
        let Some(sealed) = self.store.get_secret(APNS_SECRET).await? else {
            return Ok(None);
        };
        if let Ok(opened) = self.pusher.opened.lock()
            && let Some((key, cert)) = opened.as_ref()
            && *key == sealed
        {
            return Ok(Some((sealed, cert.clone())));
        }
        let pem = self
            .secrets
            .open_str(&sealed, APNS_SECRET)
            .map_err(MdmError::internal)?;
        let cert = PushCertificate::from_pem(
            pem.expose_secret().as_bytes(),
            pem.expose_secret().as_bytes(),
        )
        .map_err(MdmError::internal)?;
        if let Ok(mut opened) = self.pusher.opened.lock() {
            *opened = Some((sealed.clone(), cert.clone()));
        }
        Ok(Some((sealed, cert)))
    }

    /// The current push certificate, if one was uploaded.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn push_certificate(&self) -> Result<Option<PushCertificateView>, ServiceError> {
        Ok(self
            .push_certificate_sealed()
            .await
            .map_err(|e| ServiceError::Internal(e.message))?
            .map(|(_, c)| PushCertificateView::new(&c, OffsetDateTime::now_utc())))
    }

    /// The push certificate's health now: `missing` when none was uploaded.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn push_health(&self) -> Result<PushHealth, ServiceError> {
        let not_after = self
            .push_certificate_sealed()
            .await
            .map_err(|e| ServiceError::Internal(e.message))?
            .map(|(_, c)| c.certificate.not_after());
        Ok(push_certificate_health(
            not_after,
            OffsetDateTime::now_utc(),
        ))
    }

    /// The APNs topic devices enroll with, from the push certificate.
    pub(super) async fn topic(&self) -> Result<String, MdmError> {
        match self.push_certificate_sealed().await? {
            Some((_, cert)) => Ok(cert.topic),
            None => Err(MdmError::unavailable(
                "GuardMDM has no APNs push certificate yet: an administrator must upload one (guardmdm apns upload) before devices can enroll",
            )),
        }
    }

    /// Installs or renews the push certificate. A certificate with another topic than the
    /// current one is refused unless `force`: every enrolled device listens on the old
    /// topic and would be orphaned (renew the certificate with the same Apple Account
    /// instead of creating a new one). A certificate alone ([`PushUpload::Certificate`])
    /// must have been issued for GuardMDM's pending request (or for the installed certificate's
    /// key, a renewal of its request). Nothing is stored unless the whole upload is usable.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for an unusable upload (the reason), among them a
    /// certificate not issued for the pending request;
    /// [`ServiceError::Conflict`] for a topic change without `force`.
    pub async fn upload_push_certificate(
        &self,
        actor: &Actor,
        upload: PushUpload,
        force: bool,
    ) -> Result<PushCertificateView, ServiceError> {
        let cert = match &upload {
            PushUpload::Certificate { certificate } => {
                self.certificate_for_pending_key(certificate).await?
            }
            PushUpload::Pem { certificate, key } => PushCertificate::from_pem(certificate, key)
                .map_err(|e| ServiceError::Invalid(e.to_string()))?,
            PushUpload::Pkcs12 { der, password } => {
                PushCertificate::from_pkcs12(der, password.expose_secret())
                    .map_err(|e| ServiceError::Invalid(e.to_string()))?
            }
        };
        let now = OffsetDateTime::now_utc();
        if cert.certificate.not_after() <= now {
            return Err(ServiceError::Invalid(format!(
                "the push certificate expired on {}: renew it at identity.apple.com",
                cert.certificate.not_after()
            )));
        }
        if let Some((_, current)) = self
            .push_certificate_sealed()
            .await
            .map_err(|e| ServiceError::Internal(e.message))?
            && current.topic != cert.topic
            && !force
        {
            return Err(ServiceError::Conflict(format!(
                "this certificate's topic {} differs from the current {}: every enrolled device would stop receiving pushes. Renew the existing certificate with the same Apple Account instead, or pass --force",
                cert.topic, current.topic
            )));
        }
        let sealed = self
            .secrets
            .seal(cert.identity_pem().as_bytes(), APNS_SECRET)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let view = PushCertificateView::new(&cert, now);
        self.store
            .put_secret(
                APNS_SECRET,
                &sealed,
                &NewAuditEvent {
                    at: guardmdm_store::now(),
                    actor: actor.audit_name(),
                    action: "apns.upload".to_string(),
                    target: format!("apns:{}", view.topic),
                    details: serde_json::json!({
                        "fingerprint": view.fingerprint,
                        "not_after": view.not_after.to_string(),
                        "key": match upload {
                            PushUpload::Certificate { .. } => "pending_request",
                            PushUpload::Pem { .. } => "uploaded",
                            PushUpload::Pkcs12 { .. } => "pkcs12",
                        },
                    }),
                },
            )
            .await?;
        Ok(view)
    }

    /// Asks for a push to `udid` and returns at once: the push runs in the background,
    /// coalesced with any push to the device already waiting or in flight (see
    /// [`Self::push_status`] for what became of it).
    pub fn request_push(&self, udid: &str) {
        let queue = &self.pusher.queue;
        let requested = queue.states.lock().request(udid);
        match requested {
            Requested::Queued => {
                self.start_dispatcher();
                queue.wake.notify_one();
            }
            Requested::Coalesced => {}
            Requested::Full => tracing::warn!(
                udid = %udid,
                queue_size = self.settings.push.queue_size,
                "the push queue is full: device not pushed"
            ),
        }
    }

    /// This instance's push state of `udid`.
    pub fn push_status(&self, udid: &str) -> PushStatus {
        self.pusher.queue.states.status(udid)
    }

    /// A handle on this instance's push states.
    pub fn push_states(&self) -> PushStates {
        self.pusher.queue.states.clone()
    }

    /// Waits until the push dispatcher and its pushes have stopped (after the service's
    /// cancellation token fired).
    pub async fn wait_pushes(&self) {
        self.pusher.queue.tasks.close();
        self.pusher.queue.tasks.wait().await;
    }

    /// Starts the dispatcher on the first push asked for.
    fn start_dispatcher(&self) {
        let queue = &self.pusher.queue;
        if queue.started.swap(true, Ordering::SeqCst) || queue.cancel.is_cancelled() {
            return;
        }
        let service = self.clone();
        queue.tasks.spawn(service.dispatch());
    }

    /// Takes devices from the queue and pushes them, at most `concurrency` at a time, until
    /// cancelled. A push cut short by cancellation is dropped (the device gets its commands
    /// when it next contacts a GuardMDM instance).
    async fn dispatch(self) {
        let queue = self.pusher.queue.clone();
        let permits = Arc::new(Semaphore::new(self.settings.push.concurrency.max(1)));
        loop {
            let permit = tokio::select! {
                () = queue.cancel.cancelled() => return,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let udid = loop {
                let next = queue.states.lock().next(OffsetDateTime::now_utc());
                if let Some(udid) = next {
                    break udid;
                }
                tokio::select! {
                    () = queue.cancel.cancelled() => return,
                    () = queue.wake.notified() => {}
                }
            };
            let service = self.clone();
            let queue = queue.clone();
            queue.tasks.clone().spawn(async move {
                let attempt = tokio::select! {
                    () = queue.cancel.cancelled() => return,
                    attempt = service.push_device(&udid) => attempt,
                };
                drop(permit);
                let again = queue
                    .states
                    .lock()
                    .finish(&udid, attempt, OffsetDateTime::now_utc());
                if again {
                    queue.wake.notify_one();
                }
            });
        }
    }

    /// One push to one device, now. A device APNs calls unregistered is marked so.
    async fn push_device(&self, udid: &str) -> Attempt {
        match self.try_push_device(udid).await {
            Ok(attempt) => attempt,
            Err(e) => Attempt::Failed(e.message),
        }
    }

    async fn try_push_device(&self, udid: &str) -> Result<Attempt, MdmError> {
        let Some((sealed, cert)) = self.push_certificate_sealed().await? else {
            return Ok(Attempt::Failed(
                "GuardMDM has no APNs push certificate: upload one (guardmdm apns upload); the device gets its commands when it next contacts GuardMDM".to_string(),
            ));
        };
        let client = match self.pusher.client(&sealed, &cert) {
            Ok(client) => client,
            Err(message) => return Ok(Attempt::Failed(message)),
        };
        let Some(enrollment) = self.store.enrollment(udid).await? else {
            return Ok(Attempt::Failed(format!(
                "no enrolled device with UDID {udid}"
            )));
        };
        if enrollment.status != guardmdm_store::EnrollmentStatus::Enrolled {
            return Ok(Attempt::Failed(format!(
                "the device is {}, not enrolled: it is not pushed",
                enrollment.status
            )));
        }
        let (Some(token), Some(magic)) = (enrollment.push_token, enrollment.push_magic) else {
            return Ok(Attempt::Failed(
                "the device sent no push token (TokenUpdate) yet".to_string(),
            ));
        };
        let target = PushTarget::new(token, magic, cert.topic.clone());
        let outcome = client
            .push(std::slice::from_ref(&target))
            .await
            .into_iter()
            .next();
        Ok(match outcome {
            Some(PushOutcome::Delivered { .. }) => Attempt::Sent,
            Some(PushOutcome::Unregistered { .. }) => {
                tracing::info!(udid = %udid, "APNs says the device is unregistered");
                self.store
                    .set_enrollment_status(
                        udid,
                        guardmdm_store::EnrollmentStatus::Unregistered,
                        guardmdm_store::now(),
                    )
                    .await?;
                Attempt::Failed(
                    "APNs answered 410 Unregistered: the device token is no longer valid (the device was erased or left management)".to_string(),
                )
            }
            Some(PushOutcome::Rejected { status, reason }) => {
                tracing::warn!(udid = %udid, status, reason = %reason, "APNs refused the push");
                Attempt::Failed(format!("APNs refused the push: HTTP {status} {reason}"))
            }
            // The APNs client has logged it.
            Some(PushOutcome::Failed { message }) => Attempt::Failed(message),
            None => Attempt::Failed("APNs returned no outcome".to_string()),
        })
    }
}

/// What connecting to APNs with the push certificate showed (the doctor's check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApnsProbe {
    /// No push certificate to connect with.
    NoCertificate,
    /// APNs answered with this HTTP status: the connection and handshake work.
    Answered(u16),
    /// No answer, and why.
    Failed(String),
}

impl<S: ?Sized + MdmStore + 'static> MdmService<S> {
    /// Connects to the APNs endpoint with the current push certificate, as a push would,
    /// without pushing anything.
    pub async fn probe_apns(&self) -> ApnsProbe {
        let (sealed, cert) = match self.push_certificate_sealed().await {
            Ok(Some(found)) => found,
            Ok(None) => return ApnsProbe::NoCertificate,
            Err(e) => return ApnsProbe::Failed(e.message),
        };
        match self.pusher.client(&sealed, &cert) {
            Ok(client) => match client.probe().await {
                Ok(status) => ApnsProbe::Answered(status),
                Err(e) => ApnsProbe::Failed(e),
            },
            Err(e) => ApnsProbe::Failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_shows_its_state_as_a_snake_case_string() {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let view = PushCertificateView {
            topic: "com.apple.mgmt.External.1".to_string(),
            subject: "CN=x".to_string(),
            fingerprint: "ab".to_string(),
            not_after: now,
            days_left: 20,
            state: PushCertificateState::Expiring,
            message: "renew it".to_string(),
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["state"], "expiring");
        let back: PushCertificateView = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
        for (state, name) in [
            (PushCertificateState::Active, "active"),
            (PushCertificateState::Expiring, "expiring"),
            (PushCertificateState::Expired, "expired"),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), name);
            assert_eq!(state.as_str(), name);
        }
    }
}

//! The MDM push certificate (upload, topic, expiry) and pushing devices through APNs
//! (`dep-api.md` §7.5).

use std::sync::{Arc, Mutex};

use guardmdm_apns::{ApnsClient, ApnsConfig, PushOutcome, PushProvider, PushTarget};
use guardmdm_crypto::PushCertificate;
use guardmdm_store::NewAuditEvent;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{MdmError, MdmService};
use crate::{Actor, ServiceError};

const APNS_SECRET: &str = "apns";

/// Where pushes go.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// The APNs endpoint (`--apns-url`; `https://api.push.apple.com`, or a local simulator).
    pub endpoint: String,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            endpoint: guardmdm_apns::PRODUCTION_ENDPOINT.to_string(),
        }
    }
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
    /// Apple Account) or `expired`.
    pub state: String,
}

impl PushCertificateView {
    fn new(cert: &PushCertificate, now: OffsetDateTime) -> Self {
        let not_after = cert.certificate.not_after();
        let days_left = (not_after - now).whole_days();
        Self {
            topic: cert.topic.clone(),
            subject: cert.certificate.subject().to_string(),
            fingerprint: cert.certificate.sha256_fingerprint().to_string(),
            not_after,
            days_left,
            state: if not_after <= now {
                "expired"
            } else if days_left <= 30 {
                "expiring"
            } else {
                "active"
            }
            .to_string(),
        }
    }
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
}

impl Pusher {
    pub(super) fn new(settings: PushSettings) -> Self {
        Self {
            settings,
            cache: Arc::default(),
            opened: Arc::default(),
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

impl MdmService {
    async fn push_certificate_sealed(
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
    /// instead of creating a new one).
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for an unusable upload (the reason);
    /// [`ServiceError::Conflict`] for a topic change without `force`.
    pub async fn upload_push_certificate(
        &self,
        actor: &Actor,
        upload: PushUpload,
        force: bool,
    ) -> Result<PushCertificateView, ServiceError> {
        let cert = match &upload {
            PushUpload::Pem { certificate, key } => PushCertificate::from_pem(certificate, key),
            PushUpload::Pkcs12 { der, password } => {
                PushCertificate::from_pkcs12(der, password.expose_secret())
            }
        }
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
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
                    }),
                },
            )
            .await?;
        Ok(view)
    }

    /// Pushes the enrolled devices among `udids` (those with a push token). A device APNs
    /// calls unregistered is marked so. Returns how many pushes APNs accepted.
    ///
    /// # Errors
    /// Storage failures; APNs problems are logged per device, not returned.
    pub async fn push(&self, udids: &[String]) -> Result<usize, MdmError> {
        let Some((sealed, cert)) = self.push_certificate_sealed().await? else {
            tracing::warn!(
                "no APNs push certificate: devices are not pushed, they only get commands when they check in"
            );
            return Ok(0);
        };
        let client = self
            .pusher
            .client(&sealed, &cert)
            .map_err(MdmError::unavailable)?;
        let mut targets = Vec::new();
        let mut who = Vec::new();
        for udid in udids {
            if let Some(e) = self.store.enrollment(udid).await?
                && e.status == "enrolled"
                && let (Some(token), Some(magic)) = (e.push_token, e.push_magic)
            {
                targets.push(PushTarget::new(token, magic, cert.topic.clone()));
                who.push(e.udid);
            }
        }
        let outcomes = client.push(&targets).await;
        let mut delivered = 0;
        for (udid, outcome) in who.iter().zip(&outcomes) {
            match outcome {
                PushOutcome::Delivered { .. } => delivered += 1,
                PushOutcome::Unregistered { .. } => {
                    tracing::info!(udid = %udid, "APNs says the device is unregistered");
                    self.store
                        .set_enrollment_status(udid, "unregistered", guardmdm_store::now())
                        .await?;
                }
                other => tracing::warn!(udid = %udid, outcome = ?other, "push not delivered"),
            }
        }
        Ok(delivered)
    }
}

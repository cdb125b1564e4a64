//! The push certificate request: GuardMDM makes the key (sealed in the store, never shown or
//! downloadable) and a PKCS#10 request for Apple's push certificate portal. The certificate
//! Apple issues for it is then uploaded alone and matched against the key.
//!
//! One request is pending at a time: asking again makes a new key and replaces the pending
//! one. The installed certificate and its key are untouched until an upload matches.

use guardmdm_crypto::{PushCertificate, generate_push_request};
use guardmdm_store::{MdmStore, NewAuditEvent};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::MdmService;
use crate::{Actor, ServiceError};

/// The store's name (and sealing context) of the pending request and its key.
pub(super) const APNS_REQUEST_SECRET: &str = "apns_request";

/// The pending request as sealed in the store.
#[derive(Serialize, Deserialize)]
struct StoredRequest {
    key_pem: String,
    csr_pem: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    public_key_sha256: String,
}

/// The pending push certificate request as admins see it (never its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequestView {
    /// The PKCS#10 request, PEM, to be signed by an MDM vendor for identity.apple.com.
    pub csr_pem: String,
    /// When GuardMDM made it.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// SHA-256 of its public key (hex); a certificate issued for it carries the same key.
    pub public_key_sha256: String,
    /// Whether the installed push certificate was issued for this request.
    pub installed: bool,
    /// On a new request: when the pending request it replaced was made, if no certificate
    /// issued for that one was installed (it can no longer be uploaded without its key).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub replaced: Option<OffsetDateTime>,
    /// What to do next.
    pub message: String,
}

impl<S: ?Sized + MdmStore + 'static> MdmService<S> {
    async fn stored_push_request(&self) -> Result<Option<StoredRequest>, ServiceError> {
        crate::secrets::read_json(self.store.as_ref(), &self.secrets, APNS_REQUEST_SECRET).await
    }

    /// SHA-256 of the installed push certificate's public key, if there is one.
    async fn installed_key_sha256(&self) -> Result<Option<String>, ServiceError> {
        Ok(self
            .push_certificate_sealed()
            .await
            .map_err(|e| ServiceError::Internal(e.message))?
            .map(|(_, cert)| cert.public_key_sha256()))
    }

    /// Makes a new key (RSA 2048, sealed in the store) and the certificate request for it.
    /// A pending request made earlier is replaced (the view says so); the installed
    /// certificate and its key stay in use until a certificate for the new request is
    /// uploaded.
    ///
    /// # Errors
    /// Storage or crypto failures.
    pub async fn create_push_request(
        &self,
        actor: &Actor,
    ) -> Result<PushRequestView, ServiceError> {
        let previous = self.stored_push_request().await?;
        let installed = self.installed_key_sha256().await?;
        let request = tokio::task::spawn_blocking(generate_push_request)
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let stored = StoredRequest {
            key_pem: request.private_key_pem.expose_secret().to_string(),
            csr_pem: request.csr_pem,
            created_at: guardmdm_store::now(),
            public_key_sha256: request.public_key_sha256,
        };
        let replaced = previous
            .filter(|p| installed.as_deref() != Some(p.public_key_sha256.as_str()))
            .map(|p| p.created_at);
        crate::secrets::write_json(
            self.store.as_ref(),
            &self.secrets,
            APNS_REQUEST_SECRET,
            &stored,
            &NewAuditEvent {
                at: stored.created_at,
                actor: actor.audit_name(),
                action: "apns.csr".to_string(),
                target: "apns".to_string(),
                details: serde_json::json!({
                    "public_key_sha256": stored.public_key_sha256,
                    "replaced_pending_request": replaced.is_some(),
                }),
            },
        )
        .await?;
        Ok(view(stored, false, replaced, installed.is_some()))
    }

    /// The pending certificate request, if one was made.
    ///
    /// # Errors
    /// Storage or crypto failures.
    pub async fn push_request(&self) -> Result<Option<PushRequestView>, ServiceError> {
        let Some(stored) = self.stored_push_request().await? else {
            return Ok(None);
        };
        let installed = self.installed_key_sha256().await?;
        let used = installed.as_deref() == Some(stored.public_key_sha256.as_str());
        Ok(Some(view(stored, used, None, installed.is_some())))
    }

    /// The certificate Apple issued for the pending request, with the request's key (or for
    /// the installed certificate's key, with that key).
    pub(super) async fn certificate_for_pending_key(
        &self,
        certificate_pem: &[u8],
    ) -> Result<PushCertificate, ServiceError> {
        let Some(stored) = self.stored_push_request().await? else {
            return Err(ServiceError::Invalid(
                "GuardMDM holds no key for this certificate (it made no certificate request): \
                 upload the certificate's key too (--key), or make a request with guardmdm apns \
                 csr and upload the certificate Apple issues for it"
                    .to_string(),
            ));
        };
        match PushCertificate::from_pem(certificate_pem, stored.key_pem.as_bytes()) {
            Err(guardmdm_crypto::PushCertificateError::KeyMismatch) => {
                // A renewal issued for the installed certificate's key (its request signed
                // again) is as good.
                let installed = self
                    .push_certificate_sealed()
                    .await
                    .map_err(|e| ServiceError::Internal(e.message))?;
                if let Some((_, current)) = installed
                    && let Ok(renewed) = PushCertificate::from_pem(
                        certificate_pem,
                        current.identity_pem().as_bytes(),
                    )
                {
                    return Ok(renewed);
                }
                Err(ServiceError::Invalid(format!(
                    "this certificate was not issued for GuardMDM's last request; upload its \
                     key too or make a new request (the last request was made {})",
                    crate::mdm::push::date_time(stored.created_at)
                )))
            }
            other => other.map_err(|e| ServiceError::Invalid(e.to_string())),
        }
    }
}

fn view(
    stored: StoredRequest,
    installed: bool,
    replaced: Option<OffsetDateTime>,
    has_certificate: bool,
) -> PushRequestView {
    let mut message = if installed {
        "The installed push certificate was issued for this request. To renew it, make a new \
         request."
            .to_string()
    } else {
        "Have this request signed by an MDM vendor (guardmdm apns csr --vendor-cert F \
         --vendor-key F signs it with your own vendor certificate), upload the signed request \
         at identity.apple.com signed in with your organisation's Apple Account (the same one \
         for every renewal), then upload the certificate Apple issues: guardmdm apns upload \
         --cert FILE."
            .to_string()
    };
    if let Some(at) = replaced {
        message.push_str(&format!(
            " This is a new key: it replaces the request made {}, and a certificate issued for \
             that one can no longer be uploaded without its key.",
            crate::mdm::push::date_time(at)
        ));
    }
    if has_certificate && !installed {
        message.push_str(
            " The installed push certificate keeps working until the certificate for this \
             request is uploaded.",
        );
    }
    PushRequestView {
        csr_pem: stored.csr_pem,
        created_at: stored.created_at,
        public_key_sha256: stored.public_key_sha256,
        installed,
        replaced,
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use guardmdm_crypto::{PushPortal, SecretKey};
    use guardmdm_store::Store;
    use guardmdm_store_sqlite::SqliteStore;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::mdm::{MdmSettings, PushUpload};

    const TOPIC: &str = "com.apple.mgmt.External.1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
    const OTHER_TOPIC: &str = "com.apple.mgmt.External.99999999-5a6b-4c7d-8e9f-0a1b2c3d4e5f";

    async fn service() -> (MdmService, Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("g.db")).await.unwrap());
        let secrets = Arc::new(SecretKey::generate().unwrap());
        let settings = MdmSettings::new("https://mdm.example.com").unwrap();
        let mdm = MdmService::new(store.clone(), secrets, settings, CancellationToken::new());
        (mdm, store, dir)
    }

    fn only(certificate: &str) -> PushUpload {
        PushUpload::Certificate {
            certificate: certificate.as_bytes().to_vec(),
        }
    }

    async fn actions(store: &Arc<dyn Store>) -> Vec<String> {
        let mut events = store.list_audit(100, None).await.unwrap();
        events.reverse();
        events.into_iter().map(|e| e.action).collect()
    }

    #[tokio::test]
    async fn a_certificate_alone_is_matched_with_the_pending_key_and_renewal_keeps_the_topic() {
        let (mdm, store, _dir) = service().await;
        let admin = Actor::Admin { name: "ada".into() };
        let portal = PushPortal::generate().unwrap();
        assert_eq!(mdm.push_request().await.unwrap(), None);
        assert_eq!(
            mdm.push_health().await.unwrap().state,
            crate::mdm::PushCertificateState::Missing
        );

        // No request yet: a certificate alone cannot be used.
        let stray = generate_push_request().unwrap();
        let stray_cert = portal.issue(stray.csr_pem.as_bytes(), TOPIC, 365).unwrap();
        let err = mdm
            .upload_push_certificate(&admin, only(&stray_cert), false)
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("guardmdm apns csr"), "{err}");

        let first = mdm.create_push_request(&admin).await.unwrap();
        assert!(
            first
                .csr_pem
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
        );
        assert!(!first.installed);
        assert_eq!(first.replaced, None);
        assert!(
            first.message.contains("identity.apple.com"),
            "{}",
            first.message
        );
        assert!(
            !serde_json::to_string(&first)
                .unwrap()
                .contains("PRIVATE KEY")
        );
        assert_eq!(
            mdm.push_request().await.unwrap().unwrap().csr_pem,
            first.csr_pem
        );

        // A certificate for another key is refused and changes nothing.
        let err = mdm
            .upload_push_certificate(&admin, only(&stray_cert), false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("this certificate was not issued for GuardMDM's last request")
                && err.contains("upload its key too or make a new request"),
            "{err}"
        );
        assert_eq!(mdm.push_certificate().await.unwrap(), None);

        let issued = portal.issue(first.csr_pem.as_bytes(), TOPIC, 365).unwrap();
        let view = mdm
            .upload_push_certificate(&admin, only(&issued), false)
            .await
            .unwrap();
        assert_eq!(
            (view.topic.as_str(), view.state.as_str()),
            (TOPIC, "active")
        );
        assert!(mdm.push_request().await.unwrap().unwrap().installed);
        assert_eq!(mdm.topic().await.unwrap(), TOPIC);

        // Renewal: a new request; the installed certificate stays until the new one is
        // uploaded. The earlier request was used, so nothing pending is replaced.
        let renewal = mdm.create_push_request(&admin).await.unwrap();
        assert_eq!(renewal.replaced, None);
        assert!(
            renewal.message.contains("keeps working"),
            "{}",
            renewal.message
        );
        assert_ne!(renewal.public_key_sha256, first.public_key_sha256);
        assert_eq!(
            mdm.push_certificate().await.unwrap().unwrap().fingerprint,
            view.fingerprint
        );

        // Asking again before uploading replaces the pending request, and says so.
        let again = mdm.create_push_request(&admin).await.unwrap();
        assert_eq!(again.replaced, Some(renewal.created_at));
        assert!(again.message.contains("new key"), "{}", again.message);
        let for_replaced = portal
            .issue(renewal.csr_pem.as_bytes(), TOPIC, 365)
            .unwrap();
        let err = mdm
            .upload_push_certificate(&admin, only(&for_replaced), false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not issued for GuardMDM's last request"),
            "{err}"
        );

        // A different topic is refused without force, with the reason.
        let other = portal
            .issue(again.csr_pem.as_bytes(), OTHER_TOPIC, 365)
            .unwrap();
        let err = mdm
            .upload_push_certificate(&admin, only(&other), false)
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::Conflict(_)), "{err}");
        assert!(err.to_string().contains("every enrolled device"), "{err}");
        assert_eq!(mdm.topic().await.unwrap(), TOPIC);

        let renewed = portal.issue(again.csr_pem.as_bytes(), TOPIC, 365).unwrap();
        let view2 = mdm
            .upload_push_certificate(&admin, only(&renewed), false)
            .await
            .unwrap();
        assert_eq!(view2.topic, TOPIC);
        assert_ne!(view2.fingerprint, view.fingerprint);
        assert_eq!(mdm.topic().await.unwrap(), TOPIC);

        let forced = mdm
            .upload_push_certificate(&admin, only(&other), true)
            .await
            .unwrap();
        assert_eq!(forced.topic, OTHER_TOPIC);

        assert_eq!(
            actions(&store).await,
            [
                "apns.csr",
                "apns.upload",
                "apns.csr",
                "apns.csr",
                "apns.upload",
                "apns.upload"
            ]
        );
    }

    #[tokio::test]
    async fn a_renewal_for_the_installed_key_is_taken_after_a_newer_request() {
        let (mdm, _store, _dir) = service().await;
        let admin = Actor::AdminToken;
        let portal = PushPortal::generate().unwrap();
        let first = mdm.create_push_request(&admin).await.unwrap();
        let cert = portal.issue(first.csr_pem.as_bytes(), TOPIC, 365).unwrap();
        mdm.upload_push_certificate(&admin, only(&cert), false)
            .await
            .unwrap();
        mdm.create_push_request(&admin).await.unwrap();
        // The first request signed again and renewed at Apple: the installed key fits.
        let renewed = portal.issue(first.csr_pem.as_bytes(), TOPIC, 365).unwrap();
        let view = mdm
            .upload_push_certificate(&admin, only(&renewed), false)
            .await
            .unwrap();
        assert_eq!(view.topic, TOPIC);
        assert_ne!(
            view.fingerprint,
            guardmdm_crypto::Certificate::from_pem(cert.as_bytes())
                .unwrap()
                .sha256_fingerprint()
        );
    }

    #[tokio::test]
    async fn an_expiring_certificate_says_so() {
        let (mdm, _store, _dir) = service().await;
        let admin = Actor::AdminToken;
        let request = mdm.create_push_request(&admin).await.unwrap();
        let portal = PushPortal::generate().unwrap();
        let cert = portal.issue(request.csr_pem.as_bytes(), TOPIC, 10).unwrap();
        let view = mdm
            .upload_push_certificate(&admin, only(&cert), false)
            .await
            .unwrap();
        assert_eq!(view.state.as_str(), "expiring");
        assert!(
            view.message.contains("same Apple Account"),
            "{}",
            view.message
        );
        let health = mdm.push_health().await.unwrap();
        assert_eq!(health.state, crate::mdm::PushCertificateState::Expiring);
        assert!((9..=10).contains(&health.days_left.unwrap()));
    }
}

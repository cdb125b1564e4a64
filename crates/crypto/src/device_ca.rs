//! A stand-in for Apple's device certificate authority, for simulated devices.
//!
//! A real device signs its ADE MachineInfo (`docs/protocol.md` §6.1) with an identity Apple built
//! into it, issued by an "Apple iPhone Device CA" intermediate under the Apple Root CA.
//! Simulated devices cannot have such an identity, so they bring their own two-level PKI in
//! the same shape: a self-signed root (`<name> Root CA`), an issuing intermediate
//! (`<name> Device CA`) and one identity per device (CN = its UDID). GuardMDM is then given
//! [`DeviceCa::anchor_pem`] as its `--device-ca-file` instead of Apple's roots, and checks the
//! simulated devices exactly as it checks real ones.

use openssl::pkey::{PKey, Private};

use crate::certificate::Certificate;
use crate::cms_verify::TrustAnchors;
use crate::device_key::DeviceKey;
use crate::pki::{self, Signer, Template, Usage};
use crate::profile_sign::{Identity, IdentityError};

/// Validity of the root and the intermediate made by [`DeviceCa::generate`].
pub const DEVICE_CA_DAYS: u32 = 10 * 365;
/// Validity of a device identity (capped at the intermediate's own expiry).
pub const DEVICE_IDENTITY_DAYS: u32 = 5 * 365;

/// Longest `name` [`DeviceCa::generate`] takes, so that `<name> Root CA` fits a common name.
const MAX_NAME: usize = 56;

/// A root and an issuing intermediate that certify simulated devices' identities. `Debug`
/// never shows the keys.
pub struct DeviceCa {
    root: Certificate,
    issuing: Certificate,
    issuing_key: PKey<Private>,
}

impl DeviceCa {
    /// A new CA pair: `CN=<name> Root CA` (self-signed, RSA-2048, `CA:TRUE`) and
    /// `CN=<name> Device CA` (issued by the root, `CA:TRUE, pathlen:0`), both `O=<name>`,
    /// valid [`DEVICE_CA_DAYS`]. The root's key is dropped once it has signed the
    /// intermediate.
    ///
    /// # Errors
    /// [`IdentityError::BadCommonName`] for an empty name or one over 56 characters,
    /// [`IdentityError::Internal`] if OpenSSL fails.
    pub fn generate(name: &str) -> Result<Self, IdentityError> {
        let _queue = crate::error_queue::isolate();
        if name.trim().is_empty() || name.chars().count() > MAX_NAME {
            return Err(IdentityError::BadCommonName);
        }
        let days = i64::from(DEVICE_CA_DAYS) * 86_400;
        let root_key = pki::rsa_key(2048)?;
        let root_name = pki::name(&format!("{name} Root CA"), Some(name))?;
        let root = pki::issue(
            &Template {
                subject: &root_name,
                public_key: &root_key,
                not_before: pki::time_from_now(-pki::BACKDATE_SECONDS)?,
                not_after: pki::time_from_now(days)?,
                usage: Usage::RootCa,
            },
            &Signer::SelfSigned(&root_key),
        )?;
        let issuing_key = pki::rsa_key(2048)?;
        let issuing_name = pki::name(&format!("{name} Device CA"), Some(name))?;
        let issuing = pki::issue(
            &Template {
                subject: &issuing_name,
                public_key: &issuing_key,
                not_before: pki::time_from_now(-pki::BACKDATE_SECONDS)?,
                not_after: pki::time_from_now(days)?,
                usage: Usage::IssuingCa,
            },
            &Signer::Ca(&root, &root_key),
        )?;
        let internal = |e: crate::CertificateError| IdentityError::Internal(e.to_string());
        Ok(Self {
            root: Certificate::from_x509(root).map_err(internal)?,
            issuing: Certificate::from_x509(issuing).map_err(internal)?,
            issuing_key,
        })
    }

    /// The root certificate as PEM: the trust anchor to give GuardMDM (`--device-ca-file`)
    /// so it accepts these devices' MachineInfo signatures.
    #[must_use]
    pub fn anchor_pem(&self) -> String {
        self.root.to_pem()
    }

    /// The root as [`TrustAnchors`], to verify a device's signature in-process.
    #[must_use]
    pub fn trust_anchors(&self) -> TrustAnchors {
        TrustAnchors::single(self.root.clone())
    }

    /// The self-signed root.
    #[must_use]
    pub fn root_certificate(&self) -> &Certificate {
        &self.root
    }

    /// The intermediate that issues device identities (devices send it with their
    /// signatures, as real ones send Apple's device CA).
    #[must_use]
    pub fn issuing_certificate(&self) -> &Certificate {
        &self.issuing
    }

    /// Certifies `key` as the device `common_name` (its UDID): `CN=<common_name>`, `CA:FALSE`,
    /// digitalSignature and keyEncipherment, clientAuth, valid [`DEVICE_IDENTITY_DAYS`] (never
    /// past the intermediate).
    ///
    /// # Errors
    /// [`IdentityError::BadCommonName`] for an empty name or one over 64 characters,
    /// [`IdentityError::Internal`] if OpenSSL fails.
    pub fn issue(&self, key: &DeviceKey, common_name: &str) -> Result<Certificate, IdentityError> {
        let _queue = crate::error_queue::isolate();
        if common_name.is_empty() || common_name.chars().count() > 64 {
            return Err(IdentityError::BadCommonName);
        }
        let subject = pki::name(common_name, None)?;
        let wanted = i64::from(DEVICE_IDENTITY_DAYS) * 86_400;
        let left = self.issuing.not_after().unix_timestamp()
            - time::OffsetDateTime::now_utc().unix_timestamp();
        let cert = pki::issue(
            &Template {
                subject: &subject,
                public_key: key.pkey(),
                not_before: pki::time_from_now(-pki::BACKDATE_SECONDS)?,
                not_after: pki::time_from_now(wanted.min(left))?,
                usage: Usage::ClientIdentity,
            },
            &Signer::Ca(self.issuing.x509(), &self.issuing_key),
        )?;
        Certificate::from_x509(cert).map_err(|e| IdentityError::Internal(e.to_string()))
    }

    /// A new device identity: a fresh RSA-2048 key, its certificate ([`DeviceCa::issue`]) and
    /// the intermediate as its chain, ready for [`crate::sign_attached`].
    ///
    /// # Errors
    /// As [`DeviceCa::issue`].
    pub fn issue_identity(&self, common_name: &str) -> Result<Identity, IdentityError> {
        let _queue = crate::error_queue::isolate();
        let key = DeviceKey::generate()?;
        let cert = self.issue(&key, common_name)?;
        Identity::from_device_key(cert, &key, vec![self.issuing.clone()])
    }
}

impl std::fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCa")
            .field("root", &self.root)
            .field("issuing", &self.issuing)
            .field("issuing_key", &"[REDACTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CmsError, sign_attached, verify_attached};

    #[test]
    fn device_signatures_chain_to_the_anchor() {
        let ca = DeviceCa::generate("GuardMDM Simulator").unwrap();
        assert_eq!(
            ca.root_certificate().subject(),
            "O=GuardMDM Simulator, CN=GuardMDM Simulator Root CA"
        );
        assert_eq!(
            ca.issuing_certificate().issuer(),
            ca.root_certificate().subject()
        );
        let identity = ca.issue_identity("00008140-001A2B3C4D5E801C").unwrap();
        assert_eq!(
            identity.certificate().subject_common_name(),
            Some("00008140-001A2B3C4D5E801C")
        );
        assert_eq!(identity.chain(), [ca.issuing_certificate().clone()]);
        let der = sign_attached(b"machine info", &identity).unwrap();
        // What GuardMDM does with `--device-ca-file`.
        let anchors = TrustAnchors::from_pem(ca.anchor_pem().as_bytes()).unwrap();
        let verified = verify_attached(&der, &anchors).unwrap();
        assert_eq!(verified.content, b"machine info");
        assert_eq!(&verified.signer, identity.certificate());
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }

    #[test]
    fn another_ca_is_not_trusted() {
        let ca = DeviceCa::generate("One").unwrap();
        let other = DeviceCa::generate("Two").unwrap();
        let identity = ca.issue_identity("device").unwrap();
        let der = sign_attached(b"x", &identity).unwrap();
        let err = verify_attached(&der, &other.trust_anchors()).unwrap_err();
        assert!(matches!(err, CmsError::UntrustedChain { .. }), "{err}");
    }

    #[test]
    fn names_are_checked() {
        for name in [String::new(), " ".to_string(), "x".repeat(57)] {
            assert!(
                matches!(DeviceCa::generate(&name), Err(IdentityError::BadCommonName)),
                "{name:?}"
            );
        }
        let ca = DeviceCa::generate("Names").unwrap();
        let key = DeviceKey::generate_rsa(1024).unwrap();
        for name in [String::new(), "x".repeat(65)] {
            assert!(
                matches!(ca.issue(&key, &name), Err(IdentityError::BadCommonName)),
                "{name:?}"
            );
        }
        assert!(ca.issue(&key, &"x".repeat(64)).is_ok());
    }
}

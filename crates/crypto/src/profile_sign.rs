//! Signing configuration profiles.
//!
//! The enrollment profile GuardMDM answers to an ADE device (`docs/protocol.md` §6.2, content type
//! `application/x-apple-aspen-config`) may be CMS-signed, and Apple recommends it: the device
//! shows the signer and whether it is verified. The signature is an attached CMS `SignedData`
//! in DER whose content is the profile plist
//! (<https://developer.apple.com/documentation/devicemanagement/configuring-multiple-devices-using-profiles>).
//!
//! An [`Identity`] is the certificate, private key and optional chain that sign. It is either
//! loaded from PEM (a certificate from a public CA, so devices show "Verified") or generated
//! self-signed for a fresh install. Device simulators build one from a [`DeviceKey`] and the
//! certificate a CA issued for it ([`Identity::from_device_key`]).
//!
//! Besides profiles, an identity signs what a device signs: its MachineInfo (attached,
//! [`sign_attached`]) and the `Mdm-Signature` header (detached, [`sign_detached`]).

use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::stack::Stack;
use secrecy::{ExposeSecret, SecretString};

use crate::certificate::Certificate;
use crate::describe;
use crate::device_key::DeviceKey;
use crate::pki::{self, Signer, Template, Usage};

/// How long a generated self-signed signing identity is valid.
pub const SELF_SIGNED_DAYS: u32 = 5 * 365;

/// A signing identity: certificate, private key, and the intermediates to send with
/// signatures. `Debug` never shows the key.
#[derive(Clone)]
pub struct Identity {
    certificate: Certificate,
    key: PKey<Private>,
    chain: Vec<Certificate>,
}

/// Why an identity could not be loaded or made, or a profile not signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The certificate PEM is unusable.
    #[error("the signing certificate is unusable: {0}")]
    Certificate(String),
    /// The private key PEM is unusable.
    #[error("the signing private key is unusable: {0}")]
    Key(String),
    /// The private key does not belong to the certificate.
    #[error("the private key does not match the signing certificate {subject:?}")]
    KeyMismatch {
        /// Subject of the certificate.
        subject: String,
    },
    /// The common name is empty or longer than 64 characters.
    #[error("the common name must be 1 to 64 characters")]
    BadCommonName,
    /// OpenSSL failed to generate, sign or encode.
    #[error("OpenSSL failed: {0}")]
    Internal(String),
}

impl From<openssl::error::ErrorStack> for IdentityError {
    fn from(err: openssl::error::ErrorStack) -> Self {
        Self::Internal(describe(&err))
    }
}

impl Identity {
    /// Loads an identity: `certificates_pem` holds the signing certificate first, then any
    /// intermediates; `private_key_pem` is the certificate's key (PKCS#8 or traditional PEM,
    /// unencrypted).
    ///
    /// # Errors
    /// [`IdentityError::Certificate`], [`IdentityError::Key`] or
    /// [`IdentityError::KeyMismatch`].
    pub fn from_pem(
        certificates_pem: &[u8],
        private_key_pem: &SecretString,
    ) -> Result<Self, IdentityError> {
        let _queue = crate::error_queue::isolate();
        let mut certs = Certificate::chain_from_pem(certificates_pem)
            .map_err(|e| IdentityError::Certificate(e.to_string()))?
            .into_iter();
        let certificate = certs
            .next()
            .ok_or_else(|| IdentityError::Certificate("no certificate".to_string()))?;
        let key = PKey::private_key_from_pem(private_key_pem.expose_secret().as_bytes())
            .map_err(|e| IdentityError::Key(describe(&e)))?;
        Self::new(certificate, key, certs.collect())
    }

    /// An identity from a device's key and the certificate issued for it (by SCEP, or by a
    /// simulator's device CA), with the intermediates to send along (`chain`, may be empty).
    ///
    /// # Errors
    /// [`IdentityError::KeyMismatch`] when the certificate certifies another key.
    pub fn from_device_key(
        certificate: Certificate,
        key: &DeviceKey,
        chain: Vec<Certificate>,
    ) -> Result<Self, IdentityError> {
        let _queue = crate::error_queue::isolate();
        Self::new(certificate, key.pkey().clone(), chain)
    }

    pub(crate) fn new(
        certificate: Certificate,
        key: PKey<Private>,
        chain: Vec<Certificate>,
    ) -> Result<Self, IdentityError> {
        let matches = certificate
            .x509()
            .public_key()
            .map(|public| public.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(IdentityError::KeyMismatch {
                subject: certificate.subject().to_string(),
            });
        }
        Ok(Self {
            certificate,
            key,
            chain,
        })
    }

    /// Generates a self-signed RSA-2048 signing identity, `CN=<common_name>, O=GuardMDM`,
    /// valid for [`SELF_SIGNED_DAYS`], key usage digitalSignature only. Devices show its
    /// profiles as signed but "Not Verified".
    ///
    /// # Errors
    /// [`IdentityError::BadCommonName`], or [`IdentityError::Internal`] if OpenSSL fails.
    pub fn generate_self_signed(common_name: &str) -> Result<Self, IdentityError> {
        let _queue = crate::error_queue::isolate();
        if common_name.is_empty() || common_name.chars().count() > 64 {
            return Err(IdentityError::BadCommonName);
        }
        let key = pki::rsa_key(2048)?;
        let subject = pki::name(common_name, Some("GuardMDM"))?;
        let template = Template {
            subject: &subject,
            public_key: &key,
            not_before: pki::time_from_now(-pki::BACKDATE_SECONDS)?,
            not_after: pki::time_from_now(i64::from(SELF_SIGNED_DAYS) * 86_400)?,
            usage: Usage::Signing,
        };
        let cert = pki::issue(&template, &Signer::SelfSigned(&key))?;
        let certificate =
            Certificate::from_x509(cert).map_err(|e| IdentityError::Internal(e.to_string()))?;
        Self::new(certificate, key, Vec::new())
    }

    /// The signing certificate.
    #[must_use]
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The intermediates sent with each signature; empty for a self-signed identity.
    #[must_use]
    pub fn chain(&self) -> &[Certificate] {
        &self.chain
    }

    /// The signing certificate then the chain, as PEM (the form [`Identity::from_pem`] reads).
    #[must_use]
    pub fn certificates_pem(&self) -> String {
        std::iter::once(&self.certificate)
            .chain(&self.chain)
            .map(Certificate::to_pem)
            .collect()
    }

    /// The private key as unencrypted PKCS#8 PEM. Seal it before storing it.
    ///
    /// # Errors
    /// [`IdentityError::Internal`] if OpenSSL fails to encode.
    pub fn private_key_pem(&self) -> Result<SecretString, IdentityError> {
        let _queue = crate::error_queue::isolate();
        let pem = self.key.private_key_to_pem_pkcs8()?;
        String::from_utf8(pem)
            .map(SecretString::from)
            .map_err(|_| IdentityError::Internal("OpenSSL wrote a non-UTF-8 PEM".to_string()))
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("certificate", &self.certificate)
            .field("chain", &self.chain)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// Signs a configuration profile: an attached CMS `SignedData` (DER) over `content`, SHA-256,
/// with the signer's certificate and chain included, ready to serve as
/// `application/x-apple-aspen-config`. The same as [`sign_attached`].
///
/// # Errors
/// [`IdentityError::Internal`] if OpenSSL fails.
pub fn sign_profile(content: &[u8], signer: &Identity) -> Result<Vec<u8>, IdentityError> {
    let _queue = crate::error_queue::isolate();
    sign_attached(content, signer)
}

/// An attached CMS `SignedData` (DER) over `content`: SHA-256, signed attributes, the signer's
/// certificate and chain included. What a device sends as its ADE MachineInfo body
/// (`application/pkcs7-signature`), and what a server sends as a signed profile.
///
/// # Errors
/// [`IdentityError::Internal`] if OpenSSL fails.
pub fn sign_attached(content: &[u8], signer: &Identity) -> Result<Vec<u8>, IdentityError> {
    let _queue = crate::error_queue::isolate();
    sign(content, signer, Pkcs7Flags::empty())
}

/// A detached CMS `SignedData` (DER) over `body`: SHA-256, signed attributes, the signer's
/// certificate and chain included, no content. Base64 of it is the `Mdm-Signature` header a
/// device with `SignMessage` adds to every check-in and command request (`docs/protocol.md` §6.4);
/// [`crate::verify_detached`] reads it back.
///
/// # Errors
/// [`IdentityError::Internal`] if OpenSSL fails.
pub fn sign_detached(body: &[u8], signer: &Identity) -> Result<Vec<u8>, IdentityError> {
    let _queue = crate::error_queue::isolate();
    sign(body, signer, Pkcs7Flags::DETACHED)
}

fn sign(content: &[u8], signer: &Identity, flags: Pkcs7Flags) -> Result<Vec<u8>, IdentityError> {
    let mut chain = Stack::new()?;
    for cert in &signer.chain {
        chain.push(cert.x509().clone())?;
    }
    let signed = Pkcs7::sign(
        signer.certificate.x509(),
        &signer.key,
        &chain,
        content,
        flags | Pkcs7Flags::BINARY | Pkcs7Flags::NOSMIMECAP,
    )?;
    Ok(signed.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cms_verify::{TrustAnchors, verify_attached};
    use crate::test_pki;

    const PROFILE: &[u8] = b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>PayloadType</key><string>Configuration</string></dict></plist>";

    #[test]
    fn a_signed_profile_verifies_with_the_signer_as_anchor() {
        let identity = Identity::generate_self_signed("GuardMDM Profile Signing").unwrap();
        let der = sign_profile(PROFILE, &identity).unwrap();
        let anchors = TrustAnchors::from_certificates([identity.certificate().clone()]).unwrap();
        let verified = verify_attached(&der, &anchors).unwrap();
        assert_eq!(verified.content, PROFILE);
        assert_eq!(&verified.signer, identity.certificate());
    }

    #[test]
    fn a_profile_signed_by_an_issued_identity_carries_its_chain() {
        let root = test_pki::root("Public Root");
        let intermediate = test_pki::intermediate(&root, "Public Issuing CA");
        let leaf = test_pki::leaf(&intermediate, "mdm.example.com");
        let mut pem = leaf.cert.to_pem().unwrap();
        pem.extend(intermediate.cert.to_pem().unwrap());
        let key = SecretString::from(
            String::from_utf8(leaf.key.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        );
        let identity = Identity::from_pem(&pem, &key).unwrap();
        assert_eq!(identity.chain().len(), 1);
        let der = sign_profile(PROFILE, &identity).unwrap();
        let anchors = TrustAnchors::from_pem(&root.cert.to_pem().unwrap()).unwrap();
        assert_eq!(verify_attached(&der, &anchors).unwrap().content, PROFILE);
    }

    #[test]
    fn pem_round_trip_and_key_checks() {
        let identity = Identity::generate_self_signed("Round Trip").unwrap();
        let key = identity.private_key_pem().unwrap();
        let again = Identity::from_pem(identity.certificates_pem().as_bytes(), &key).unwrap();
        assert_eq!(again.certificate(), identity.certificate());
        assert!(!format!("{identity:?}").contains("PRIVATE KEY"));

        let other = Identity::generate_self_signed("Other").unwrap();
        let err = Identity::from_pem(
            identity.certificates_pem().as_bytes(),
            &other.private_key_pem().unwrap(),
        )
        .unwrap_err();
        assert!(matches!(err, IdentityError::KeyMismatch { .. }), "{err}");
        let err = Identity::from_pem(
            identity.certificates_pem().as_bytes(),
            &SecretString::from("not a key"),
        )
        .unwrap_err();
        assert!(matches!(err, IdentityError::Key(_)), "{err}");
        assert_eq!(
            Identity::generate_self_signed("").unwrap_err(),
            IdentityError::BadCommonName
        );
    }

    #[test]
    fn a_detached_signature_verifies_over_the_body_only() {
        let identity = Identity::generate_self_signed("Detached").unwrap();
        let body = b"<plist><dict><key>Status</key><string>Idle</string></dict></plist>";
        let der = sign_detached(body, &identity).unwrap();
        let signer = crate::verify_detached(&der, body).unwrap();
        assert_eq!(&signer, identity.certificate());
        assert!(matches!(
            crate::verify_detached(&der, b"another body"),
            Err(crate::CmsError::BadSignature { .. })
        ));
        // Base64, as the header carries it, reads the same.
        use base64::Engine as _;
        let header = base64::engine::general_purpose::STANDARD.encode(&der);
        assert!(crate::verify_detached(header.as_bytes(), body).is_ok());
        assert!(matches!(
            verify_attached(
                &der,
                &TrustAnchors::from_certificates([identity.certificate().clone()]).unwrap()
            ),
            Err(crate::CmsError::NoContent)
        ));
    }

    #[test]
    fn an_identity_from_a_device_key_signs() {
        let ca = crate::DeviceCa::generate("Unit Test").unwrap();
        let key = DeviceKey::generate().unwrap();
        let cert = ca.issue(&key, "00008140-001A2B3C4D5E801C").unwrap();
        let identity =
            Identity::from_device_key(cert.clone(), &key, vec![ca.issuing_certificate().clone()])
                .unwrap();
        let der = sign_attached(PROFILE, &identity).unwrap();
        let verified = verify_attached(&der, &ca.trust_anchors()).unwrap();
        assert_eq!(verified.signer, cert);
        let other = DeviceKey::generate_rsa(1024).unwrap();
        assert!(matches!(
            Identity::from_device_key(cert, &other, Vec::new()),
            Err(IdentityError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn the_signature_is_sha256_over_the_exact_bytes() {
        let identity = Identity::generate_self_signed("Digest").unwrap();
        let der = sign_profile(PROFILE, &identity).unwrap();
        let text = std::process::Command::new("openssl")
            .args(["cms", "-cmsout", "-print", "-inform", "DER"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write as _;
                child.stdin.take().unwrap().write_all(&der)?;
                child.wait_with_output()
            })
            .expect("the openssl command-line tool is installed");
        let printed = String::from_utf8_lossy(&text.stdout);
        assert!(printed.contains("sha256"), "{printed}");
        assert!(printed.contains("pkcs7-signedData"), "{printed}");
    }
}

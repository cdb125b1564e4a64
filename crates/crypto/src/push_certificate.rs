//! The MDM push certificate: the APNs client identity GuardMDM pushes with, uploaded by an
//! admin as PEM (certificate and private key) or PKCS#12, as Apple's push certificate portal
//! and the vendor CSR signing flow produce it (`docs/protocol.md` §7.5).
//!
//! Its subject's user ID (`UID`, OID 0.9.2342.19200300.100.1.1) is the APNs topic,
//! `com.apple.mgmt.External.<uuid>`: devices enroll with it as the MDM payload's `Topic`, and
//! every push names it.

use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use secrecy::{ExposeSecret, SecretString};

use crate::certificate::Certificate;
use crate::describe;
use crate::pki::{self, Signer, Template, Usage};

/// The prefix of every MDM push topic.
pub const MDM_TOPIC_PREFIX: &str = "com.apple.mgmt.";

/// Why an uploaded push certificate cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushCertificateError {
    /// The certificate part is unreadable.
    #[error("the push certificate cannot be read: {0}")]
    Certificate(String),
    /// The private key part is unreadable or encrypted.
    #[error("the push certificate's private key cannot be read: {0}")]
    Key(String),
    /// The key is not the certificate's.
    #[error(
        "the private key does not belong to the push certificate: upload the key the certificate request was made with"
    )]
    KeyMismatch,
    /// The PKCS#12 file is unreadable or the password is wrong.
    #[error("the PKCS#12 file cannot be opened: {0}")]
    Pkcs12(String),
    /// No `UID` with an MDM topic in the subject.
    #[error(
        "this is not an MDM push certificate: its subject has no user ID (UID) starting with com.apple.mgmt. (found {found:?})"
    )]
    NotMdm {
        /// The subject's UID, if any.
        found: Option<String>,
    },
}

/// A usable push certificate.
#[derive(Clone)]
pub struct PushCertificate {
    /// The certificate.
    pub certificate: Certificate,
    /// Its topic (subject UID).
    pub topic: String,
    /// Certificate and key as one PEM, the APNs client identity.
    pub identity_pem: SecretString,
}

impl std::fmt::Debug for PushCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushCertificate")
            .field("topic", &self.topic)
            .field("not_after", &self.certificate.not_after())
            .field("identity_pem", &"[REDACTED]")
            .finish()
    }
}

impl PushCertificate {
    /// From a PEM certificate and a PEM private key (unencrypted; both may be in one file
    /// passed twice).
    ///
    /// # Errors
    /// [`PushCertificateError`] saying which part is wrong.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, PushCertificateError> {
        let _queue = crate::error_queue::isolate();
        let x509 = X509::from_pem(cert_pem)
            .map_err(|e| PushCertificateError::Certificate(describe(&e)))?;
        let key = PKey::private_key_from_pem(key_pem).map_err(|e| {
            PushCertificateError::Key(format!(
                "{} (an encrypted key must be decrypted first: openssl pkey -in key.pem -out plain.pem)",
                describe(&e)
            ))
        })?;
        Self::from_parts(x509, &key)
    }

    /// From a PKCS#12 (`.p12`) file and its password.
    ///
    /// # Errors
    /// [`PushCertificateError`] saying what is wrong.
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Self, PushCertificateError> {
        let _queue = crate::error_queue::isolate();
        let parsed = Pkcs12::from_der(der)
            .and_then(|p| p.parse2(password))
            .map_err(|e| {
                PushCertificateError::Pkcs12(format!(
                    "{} (check the password; legacy RC2-encrypted files must be converted with openssl pkcs12 -legacy)",
                    describe(&e)
                ))
            })?;
        let x509 = parsed.cert.ok_or_else(|| {
            PushCertificateError::Pkcs12("the file holds no certificate".to_string())
        })?;
        let key = parsed.pkey.ok_or_else(|| {
            PushCertificateError::Pkcs12("the file holds no private key".to_string())
        })?;
        Self::from_parts(x509, &key)
    }

    fn from_parts(x509: X509, key: &PKey<Private>) -> Result<Self, PushCertificateError> {
        let matches = x509
            .public_key()
            .map(|public| public.public_eq(key))
            .unwrap_or(false);
        if !matches {
            return Err(PushCertificateError::KeyMismatch);
        }
        let uid = x509
            .subject_name()
            .entries_by_nid(Nid::USERID)
            .next()
            .and_then(|e| String::from_utf8(e.data().as_slice().to_vec()).ok());
        let topic = match uid {
            Some(uid) if uid.starts_with(MDM_TOPIC_PREFIX) => uid,
            found => return Err(PushCertificateError::NotMdm { found }),
        };
        let cert_pem = x509
            .to_pem()
            .map_err(|e| PushCertificateError::Certificate(describe(&e)))?;
        let key_pem = key
            .private_key_to_pem_pkcs8()
            .map_err(|e| PushCertificateError::Key(describe(&e)))?;
        let identity =
            String::from_utf8_lossy(&cert_pem).into_owned() + &String::from_utf8_lossy(&key_pem);
        let certificate = Certificate::from_x509(x509)
            .map_err(|e| PushCertificateError::Certificate(e.to_string()))?;
        Ok(Self {
            certificate,
            topic,
            identity_pem: SecretString::from(identity),
        })
    }

    /// SHA-256 (hex) of the certificate's public key (DER `SubjectPublicKeyInfo`), to match it
    /// with the key of a certificate request.
    pub fn public_key_sha256(&self) -> String {
        let _queue = crate::error_queue::isolate();
        self.certificate
            .x509()
            .public_key()
            .and_then(|k| k.public_key_to_der())
            .map(|der| crate::digest::sha256_hex(&der))
            .unwrap_or_default()
    }

    /// The certificate and key as PEM (`identity_pem` split back), for storage.
    pub fn identity_pem(&self) -> &str {
        self.identity_pem.expose_secret()
    }

    /// A self-signed stand-in with `topic` as its UID, for simulators and the demo (Apple's
    /// servers would refuse it; a simulated APNs accepts it).
    ///
    /// # Errors
    /// [`PushCertificateError::Certificate`] when OpenSSL fails.
    pub fn generate_self_signed(topic: &str) -> Result<Self, PushCertificateError> {
        let _queue = crate::error_queue::isolate();
        let make = || -> Result<(X509, PKey<Private>), openssl::error::ErrorStack> {
            let key = pki::rsa_key(2048)?;
            let name = crate::push_request::push_subject(topic)?;
            let template = Template {
                subject: &name,
                public_key: &key,
                not_before: pki::time_from_now(-pki::BACKDATE_SECONDS)?,
                not_after: pki::time_from_now(365 * 86_400)?,
                usage: Usage::ClientIdentity,
            };
            let cert = pki::issue(&template, &Signer::SelfSigned(&key))?;
            Ok((cert, key))
        };
        let (cert, key) = make().map_err(|e| PushCertificateError::Certificate(describe(&e)))?;
        Self::from_parts(cert, &key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "com.apple.mgmt.External.5a1c3b2e-9d4f-4e6a-8b7c-0d1e2f3a4b5c";

    fn parts(cert: &PushCertificate) -> (String, String) {
        let pem = cert.identity_pem();
        let split = pem.find("-----BEGIN PRIVATE KEY-----").unwrap();
        (pem[..split].to_string(), pem[split..].to_string())
    }

    #[test]
    fn reads_the_topic_from_pem_and_pkcs12() {
        let made = PushCertificate::generate_self_signed(TOPIC).unwrap();
        assert_eq!(made.topic, TOPIC);
        let (cert, key) = parts(&made);
        let again = PushCertificate::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        assert_eq!(again.topic, TOPIC);
        assert_eq!(
            again.certificate.sha256_fingerprint(),
            made.certificate.sha256_fingerprint()
        );
        let x509 = X509::from_pem(cert.as_bytes()).unwrap();
        let pkey = PKey::private_key_from_pem(key.as_bytes()).unwrap();
        let p12 = Pkcs12::builder()
            .name("push")
            .pkey(&pkey)
            .cert(&x509)
            .build2("secret")
            .unwrap()
            .to_der()
            .unwrap();
        let from_p12 = PushCertificate::from_pkcs12(&p12, "secret").unwrap();
        assert_eq!(from_p12.topic, TOPIC);
        let wrong = PushCertificate::from_pkcs12(&p12, "nope").unwrap_err();
        assert!(matches!(wrong, PushCertificateError::Pkcs12(_)), "{wrong}");
    }

    #[test]
    fn refuses_a_foreign_key_a_non_mdm_certificate_and_garbage() {
        let a = PushCertificate::generate_self_signed(TOPIC).unwrap();
        let b = PushCertificate::generate_self_signed(TOPIC).unwrap();
        let (cert_a, _) = parts(&a);
        let (_, key_b) = parts(&b);
        assert_eq!(
            PushCertificate::from_pem(cert_a.as_bytes(), key_b.as_bytes()).unwrap_err(),
            PushCertificateError::KeyMismatch
        );
        let other = PushCertificate::generate_self_signed("com.example.app").unwrap_err();
        assert!(
            matches!(&other, PushCertificateError::NotMdm { found: Some(t) } if t == "com.example.app"),
            "{other}"
        );
        assert!(matches!(
            PushCertificate::from_pem(b"not pem", b"not pem").unwrap_err(),
            PushCertificateError::Certificate(_)
        ));
        let (cert, _) = parts(&a);
        assert!(matches!(
            PushCertificate::from_pem(cert.as_bytes(), b"garbage").unwrap_err(),
            PushCertificateError::Key(_)
        ));
        assert!(format!("{a:?}").contains("REDACTED"));
    }
}

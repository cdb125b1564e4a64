//! The MDM push certificate as a TLS client identity: one PEM holding the certificate (leaf
//! first, optionally followed by its chain) and its unencrypted private key.
//!
//! The PEM is checked here, before the HTTP client sees it, so that a wrong file gives a precise
//! error (no certificate, no key, an encrypted key, a key of another certificate) instead of a
//! generic TLS failure at the first push.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{Error as TlsError, InconsistentKeys};

use crate::ApnsError;

/// Checks the push certificate PEM and turns it into the HTTP client's identity.
pub(crate) fn load(pem_text: &str) -> Result<reqwest::Identity, ApnsError> {
    if pem_text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(ApnsError::EncryptedPrivateKey);
    }
    let (certs, key) = parse(pem_text)?;
    check_key_matches(certs, key)?;
    reqwest::Identity::from_pem(pem_text.as_bytes())
        .map_err(|e| ApnsError::HttpClient(e.to_string()))
}

/// Splits the PEM into certificates and the one private key.
fn parse(
    pem_text: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ApnsError> {
    let mut reader = pem_text.as_bytes();
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    while let Some((kind, der)) =
        pem::from_buf(&mut reader).map_err(|e| ApnsError::MalformedPem(e.to_string()))?
    {
        match kind {
            SectionKind::Certificate => certs.push(CertificateDer::from(der)),
            SectionKind::PrivateKey => keys.push(PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => keys.push(PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => keys.push(PrivateKeyDer::Sec1(der.into())),
            other => return Err(ApnsError::UnexpectedPemSection(label(other))),
        }
    }
    if certs.is_empty() {
        return Err(ApnsError::NoCertificate);
    }
    if keys.len() > 1 {
        return Err(ApnsError::SeveralPrivateKeys(keys.len()));
    }
    match keys.pop() {
        Some(key) => Ok((certs, key)),
        // The PEM reader skips sections it does not know, encrypted PKCS#8 among them.
        None if pem_text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") => {
            Err(ApnsError::EncryptedPrivateKey)
        }
        None => Err(ApnsError::NoPrivateKey),
    }
}

/// The PEM label of a section we do not accept.
fn label(kind: SectionKind) -> String {
    match kind {
        SectionKind::PublicKey => "PUBLIC KEY".to_owned(),
        SectionKind::Crl => "X509 CRL".to_owned(),
        SectionKind::Csr => "CERTIFICATE REQUEST".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Loads the key with the same crypto provider the HTTP client uses (the process default, else
/// aws-lc-rs) and compares its public key with the first certificate's.
fn check_key_matches(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(), ApnsError> {
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| ApnsError::InvalidPrivateKey(e.to_string()))?;
    match CertifiedKey::new(certs, signing_key).keys_match() {
        // Some keys cannot report their public half; the TLS handshake will tell.
        Ok(()) | Err(TlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(()),
        Err(TlsError::InconsistentKeys(_)) => Err(ApnsError::KeyMismatch),
        Err(e) => Err(ApnsError::InvalidCertificate(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, PKCS_RSA_SHA256};

    use super::*;

    /// A self-signed certificate and its key, both PEM.
    fn cert_and_key() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["push.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn accepts_certificate_and_key_in_either_order() {
        let (cert, key) = cert_and_key();
        assert!(load(&format!("{cert}{key}")).is_ok());
        assert!(load(&format!("{key}\n{cert}")).is_ok());
    }

    #[test]
    fn accepts_an_rsa_push_certificate_with_bag_attributes() {
        // Apple's push certificates are RSA; `openssl pkcs12 -nodes` writes text lines
        // ("Bag Attributes") between the sections.
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap();
        let cert = CertificateParams::new(vec!["push.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = format!(
            "Bag Attributes\n    localKeyID: 01\nsubject=/UID=com.apple.mgmt.External.x\n{}Bag Attributes\n{}",
            cert.pem(),
            key.serialize_pem()
        );
        assert!(load(&pem).is_ok());
    }

    #[test]
    fn rejects_a_pem_without_certificate() {
        let (_, key) = cert_and_key();
        assert_eq!(load(&key).unwrap_err(), ApnsError::NoCertificate);
        assert_eq!(load("").unwrap_err(), ApnsError::NoCertificate);
        assert_eq!(
            load("not a pem at all").unwrap_err(),
            ApnsError::NoCertificate
        );
    }

    #[test]
    fn rejects_a_pem_without_key() {
        let (cert, _) = cert_and_key();
        assert_eq!(load(&cert).unwrap_err(), ApnsError::NoPrivateKey);
    }

    #[test]
    fn rejects_a_key_of_another_certificate() {
        let (cert, _) = cert_and_key();
        let (_, other_key) = cert_and_key();
        assert_eq!(
            load(&format!("{cert}{other_key}")).unwrap_err(),
            ApnsError::KeyMismatch
        );
    }

    #[test]
    fn rejects_encrypted_and_duplicate_keys() {
        let (cert, key) = cert_and_key();
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert_eq!(
            load(&format!("{cert}{encrypted}")).unwrap_err(),
            ApnsError::EncryptedPrivateKey
        );
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\nMIIB\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(
            load(&format!("{cert}{legacy}")).unwrap_err(),
            ApnsError::EncryptedPrivateKey
        );
        assert_eq!(
            load(&format!("{cert}{key}{key}")).unwrap_err(),
            ApnsError::SeveralPrivateKeys(2)
        );
    }

    #[test]
    fn rejects_malformed_and_unexpected_sections() {
        let (cert, key) = cert_and_key();
        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            load(&format!("{broken}{key}")).unwrap_err(),
            ApnsError::MalformedPem(_)
        ));
        let unterminated = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert!(matches!(
            load(unterminated).unwrap_err(),
            ApnsError::MalformedPem(_)
        ));
        let csr = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(
            load(&format!("{cert}{key}{csr}")).unwrap_err(),
            ApnsError::UnexpectedPemSection("CERTIFICATE REQUEST".to_owned())
        );
    }

    #[test]
    fn rejects_garbage_inside_well_formed_sections() {
        let (cert, _) = cert_and_key();
        let (_, key) = cert_and_key();
        let bad_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            load(&format!("{cert}{bad_key}")).unwrap_err(),
            ApnsError::InvalidPrivateKey(_)
        ));
        let bad_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            load(&format!("{bad_cert}{key}")).unwrap_err(),
            ApnsError::InvalidCertificate(_)
        ));
    }
}

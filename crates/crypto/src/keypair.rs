//! The key pair behind one ABM "MDM server" entry.
//!
//! The admin uploads the certificate (PEM) to Apple Business Manager; ABM encrypts the server
//! token to it. The private key stays with GuardMDM, sealed at rest, and decrypts every
//! renewed token for the same entry.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder};
use secrecy::SecretString;

use crate::describe;

/// RSA modulus size of the token key pair, as Apple's tools and nanodep use.
pub const RSA_BITS: u32 = 2048;

/// How long the self-signed certificate is valid. ABM only needs it while it encrypts a token
/// (nanodep uses one day); a long validity lets an admin re-upload the same PEM at renewal.
pub const CERTIFICATE_DAYS: u32 = 5 * 365;

/// A freshly generated key pair and its self-signed certificate.
pub struct TokenKeyPair {
    /// The certificate, as the PEM `CERTIFICATE` block the admin uploads to ABM.
    pub certificate_pem: String,
    /// The RSA private key, PKCS#8 PEM. Never logged; sealed before it is stored.
    pub private_key_pem: SecretString,
}

impl std::fmt::Debug for TokenKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeyPair")
            .field("certificate_pem", &self.certificate_pem)
            .field("private_key_pem", &"[REDACTED]")
            .finish()
    }
}

/// Key generation failed inside OpenSSL.
#[derive(Debug, thiserror::Error)]
#[error("could not generate the ABM token key pair: {0}")]
pub struct KeyPairError(String);

impl From<openssl::error::ErrorStack> for KeyPairError {
    fn from(err: openssl::error::ErrorStack) -> Self {
        Self(describe(&err))
    }
}

/// Generates an RSA-2048 key pair and a self-signed certificate whose subject common name is
/// `common_name` (GuardMDM uses `GuardMDM <entry name>`), with a random serial number so that
/// two entries never share an issuer-and-serial pair (CMS finds its recipient by that pair).
///
/// # Errors
/// Only when OpenSSL fails, or `common_name` is empty or longer than 64 characters.
pub fn generate_token_key_pair(common_name: &str) -> Result<TokenKeyPair, KeyPairError> {
    let _queue = crate::error_queue::isolate();
    if common_name.is_empty() || common_name.chars().count() > 64 {
        return Err(KeyPairError(
            "the certificate common name must be 1 to 64 characters".to_string(),
        ));
    }
    let rsa = Rsa::generate(RSA_BITS)?;
    let key = PKey::from_rsa(rsa)?;

    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", common_name)?;
    name.append_entry_by_text("O", "GuardMDM")?;
    let name = name.build();

    let mut serial = BigNum::new()?;
    serial.rand(63, MsbOption::MAYBE_ZERO, false)?;
    serial.add_word(1)?;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let not_before = Asn1Time::from_unix(i64::try_from(now).unwrap_or(i64::MAX) - 600)?;
    let not_after = Asn1Time::days_from_now(CERTIFICATE_DAYS)?;

    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    builder.set_serial_number(Asn1Integer::from_bn(&serial)?.as_ref())?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.set_pubkey(&key)?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    builder.append_extension(
        KeyUsage::new()
            .critical()
            .key_encipherment()
            .digital_signature()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
    builder.append_extension(ski)?;
    builder.sign(&key, MessageDigest::sha256())?;
    let cert = builder.build();

    let certificate_pem = String::from_utf8(cert.to_pem()?)
        .map_err(|_| KeyPairError("OpenSSL wrote a non-UTF-8 PEM".to_string()))?;
    let private_key_pem = String::from_utf8(key.private_key_to_pem_pkcs8()?)
        .map_err(|_| KeyPairError("OpenSSL wrote a non-UTF-8 PEM".to_string()))?;
    Ok(TokenKeyPair {
        certificate_pem,
        private_key_pem: SecretString::from(private_key_pem),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generates_a_self_signed_rsa_2048_certificate() {
        let pair = generate_token_key_pair("GuardMDM Test").unwrap();
        assert!(
            pair.certificate_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        let cert = X509::from_pem(pair.certificate_pem.as_bytes()).unwrap();
        let key =
            PKey::private_key_from_pem(pair.private_key_pem.expose_secret().as_bytes()).unwrap();
        assert_eq!(key.bits(), RSA_BITS);
        assert!(cert.public_key().unwrap().public_eq(&key));
        assert!(cert.verify(&key).unwrap(), "self-signed");
        let cn = cert.subject_name().entries().next().unwrap();
        assert_eq!(cn.data().to_string().unwrap(), "GuardMDM Test");
        assert!(!format!("{pair:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn serials_differ_between_entries() {
        let a = X509::from_pem(
            generate_token_key_pair("a")
                .unwrap()
                .certificate_pem
                .as_bytes(),
        )
        .unwrap();
        let b = X509::from_pem(
            generate_token_key_pair("a")
                .unwrap()
                .certificate_pem
                .as_bytes(),
        )
        .unwrap();
        assert_ne!(
            a.serial_number().to_bn().unwrap(),
            b.serial_number().to_bn().unwrap()
        );
    }

    #[test]
    fn refuses_an_empty_common_name() {
        for name in [String::new(), "x".repeat(65)] {
            let Err(err) = generate_token_key_pair(&name) else {
                panic!("a {}-character common name was accepted", name.len());
            };
            assert!(err.to_string().contains("1 to 64 characters"), "{err}");
        }
        assert!(generate_token_key_pair(&"x".repeat(64)).is_ok());
    }
}

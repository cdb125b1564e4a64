//! An X.509 certificate as the rest of GuardMDM sees it: the facts a service logs, stores or
//! shows (subject, serial, fingerprint, validity) and its DER/PEM forms, without exposing
//! OpenSSL types outside this crate.

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::{X509, X509NameRef};
use time::OffsetDateTime;

use crate::describe;

/// A parsed X.509 certificate. Cheap to clone; equality is equality of the DER encoding.
///
/// `Debug` shows the subject, serial number and fingerprint, never the whole certificate.
#[derive(Clone)]
pub struct Certificate {
    x509: X509,
    der: Vec<u8>,
    subject: String,
    common_name: Option<String>,
    issuer: String,
    serial_hex: String,
    fingerprint: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

/// A certificate that cannot be read. The message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertificateError(pub(crate) String);

impl Certificate {
    /// Parses one DER-encoded certificate.
    ///
    /// # Errors
    /// [`CertificateError`] when the bytes are not one X.509 certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        let _queue = crate::error_queue::isolate();
        let x509 = X509::from_der(der).map_err(|e| {
            CertificateError(format!(
                "not a DER X.509 certificate (corrupt or truncated?): {}",
                describe(&e)
            ))
        })?;
        Self::from_x509(x509)
    }

    /// Parses the first `CERTIFICATE` block of PEM text; any further blocks are ignored (see
    /// [`Certificate::chain_from_pem`] to read them all).
    ///
    /// # Errors
    /// [`CertificateError`] when the text holds no readable certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertificateError> {
        let _queue = crate::error_queue::isolate();
        Self::chain_from_pem(pem)?
            .into_iter()
            .next()
            .ok_or_else(|| CertificateError("the PEM text holds no certificate".to_string()))
    }

    /// Parses every `CERTIFICATE` block of PEM text, in file order. Never empty on success.
    ///
    /// # Errors
    /// [`CertificateError`] when the text is not PEM, holds no certificate, or one block is
    /// corrupt.
    pub fn chain_from_pem(pem: &[u8]) -> Result<Vec<Self>, CertificateError> {
        let _queue = crate::error_queue::isolate();
        if !pem
            .windows(b"-----BEGIN CERTIFICATE-----".len())
            .any(|w| w == b"-----BEGIN CERTIFICATE-----")
        {
            return Err(CertificateError(
                "no PEM certificate found: expected `-----BEGIN CERTIFICATE-----` blocks (a DER \
                 file must be converted with `openssl x509 -inform DER`)"
                    .to_string(),
            ));
        }
        let stack = X509::stack_from_pem(pem).map_err(|e| {
            CertificateError(format!(
                "a PEM certificate block is corrupt: {}",
                describe(&e)
            ))
        })?;
        if stack.is_empty() {
            return Err(CertificateError(
                "the PEM text holds no readable certificate".to_string(),
            ));
        }
        stack.into_iter().map(Self::from_x509).collect()
    }

    pub(crate) fn from_x509(x509: X509) -> Result<Self, CertificateError> {
        let fail = |what: &str, e: &openssl::error::ErrorStack| {
            CertificateError(format!(
                "cannot read the certificate's {what}: {}",
                describe(e)
            ))
        };
        let der = x509.to_der().map_err(|e| fail("encoding", &e))?;
        let serial = x509
            .serial_number()
            .to_bn()
            .and_then(|bn| bn.to_hex_str().map(|s| s.to_ascii_lowercase()))
            .map_err(|e| fail("serial number", &e))?;
        let fingerprint = x509
            .digest(MessageDigest::sha256())
            .map_err(|e| fail("fingerprint", &e))?;
        let not_before = to_offset(x509.not_before()).map_err(|e| fail("notBefore", &e))?;
        let not_after = to_offset(x509.not_after()).map_err(|e| fail("notAfter", &e))?;
        Ok(Self {
            subject: one_line(x509.subject_name()),
            common_name: common_name(x509.subject_name()),
            issuer: one_line(x509.issuer_name()),
            serial_hex: serial,
            fingerprint: hex(&fingerprint),
            not_before,
            not_after,
            der,
            x509,
        })
    }

    pub(crate) fn x509(&self) -> &X509 {
        &self.x509
    }

    /// The DNS names of its subject alternative name extension, in certificate order.
    #[must_use]
    pub fn dns_names(&self) -> Vec<String> {
        self.x509
            .subject_alt_names()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.dnsname().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The subject's first common name (CN), if it has one.
    #[must_use]
    pub fn subject_common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The subject as one line, most significant attribute first (`O=GuardMDM, CN=device`).
    /// Empty for an empty subject.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuer as one line, in the same form as [`Certificate::subject`].
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The serial number in lowercase hexadecimal, without separators or leading zeros
    /// (a negative serial, which RFC 5280 forbids but old CAs wrote, starts with `-`).
    #[must_use]
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// SHA-256 of the DER encoding, 64 lowercase hexadecimal digits.
    #[must_use]
    pub fn sha256_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Start of the validity period.
    #[must_use]
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of the validity period.
    #[must_use]
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Whether `at` lies inside the validity period (both ends inclusive).
    #[must_use]
    pub fn is_valid_at(&self, at: OffsetDateTime) -> bool {
        self.not_before <= at && at <= self.not_after
    }

    /// The DER encoding.
    #[must_use]
    pub fn to_der(&self) -> &[u8] {
        &self.der
    }

    /// One PEM `CERTIFICATE` block, with a trailing newline.
    #[must_use]
    pub fn to_pem(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }
}

impl PartialEq for Certificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Certificate {}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("serial", &self.serial_hex)
            .field("sha256", &self.fingerprint)
            .finish()
    }
}

/// Lowercase hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `O=GuardMDM, CN=device`: short names where OpenSSL knows one, the OID otherwise.
pub(crate) fn one_line(name: &X509NameRef) -> String {
    name.entries()
        .map(|entry| {
            let key = entry
                .object()
                .nid()
                .short_name()
                .map_or_else(|_| entry.object().to_string(), str::to_string);
            let value = entry
                .data()
                .to_string()
                .unwrap_or_else(|_| "<unreadable>".to_string());
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn common_name(name: &X509NameRef) -> Option<String> {
    name.entries_by_nid(Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

/// An ASN.1 time as an `OffsetDateTime` (UTC).
fn to_offset(t: &Asn1TimeRef) -> Result<OffsetDateTime, openssl::error::ErrorStack> {
    let epoch = Asn1Time::from_unix(0)?;
    let diff = epoch.diff(t)?;
    let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    Ok(OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH))
}

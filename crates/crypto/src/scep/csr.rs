//! The PKCS#10 certificate request inside a `PKCSReq` (RFC 2986), and its challengePassword
//! (RFC 2985 §5.4.1).

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Tag, Tagged};
use openssl::pkey::Id;
use openssl::x509::X509Req;
use secrecy::SecretString;
use x509_cert::attr::Attribute;

use super::FailInfo;
use super::request::{Problem, problem};
use crate::certificate::{common_name, hex, one_line};
use crate::cms_shape::elements;
use crate::describe;

/// PKCS#9 `challengePassword` (RFC 2985 §5.4.1).
const CHALLENGE_PASSWORD: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");

/// Smallest RSA modulus GuardMDM certifies.
const MIN_RSA_BITS: u32 = 2048;

/// What a CSR asks for, for the [`super::ChallengePolicy`] and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrInfo {
    pub(super) subject: String,
    pub(super) common_name: Option<String>,
    pub(super) public_key_der: Vec<u8>,
    pub(super) public_key_bits: u32,
}

impl CsrInfo {
    /// The requested subject's first common name (Apple devices put what the profile's SCEP
    /// payload `Subject` says).
    #[must_use]
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The requested subject as one line (`O=GuardMDM, CN=…`).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The public key to certify, DER `SubjectPublicKeyInfo`.
    #[must_use]
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    /// The RSA modulus size in bits.
    #[must_use]
    pub fn public_key_bits(&self) -> u32 {
        self.public_key_bits
    }

    /// SHA-256 of [`CsrInfo::public_key_der`], lowercase hexadecimal.
    #[must_use]
    pub fn public_key_sha256(&self) -> String {
        hex(&crate::digest::sha256(&self.public_key_der))
    }
}

/// A decoded CSR and its challenge.
pub(super) struct Csr {
    pub(super) request: X509Req,
    pub(super) info: CsrInfo,
    pub(super) challenge: Option<SecretString>,
}

pub(super) fn parse_csr(der: &[u8]) -> Result<Csr, Problem> {
    let request = X509Req::from_der(der).map_err(|e| {
        problem(
            FailInfo::BadRequest,
            format!("the envelope does not hold a PKCS#10 CSR: {}", describe(&e)),
        )
    })?;
    let key = request.public_key().map_err(|e| {
        problem(
            FailInfo::BadRequest,
            format!("the CSR's key: {}", describe(&e)),
        )
    })?;
    if !crate::error_queue::verdict(request.verify(&key)) {
        return Err(problem(
            FailInfo::BadMessageCheck,
            "the CSR's signature does not verify with its own key",
        ));
    }
    if key.id() != Id::RSA || key.bits() < MIN_RSA_BITS {
        return Err(problem(
            FailInfo::BadAlg,
            format!(
                "only RSA keys of at least {MIN_RSA_BITS} bits are certified (the CSR has a \
                 {}-bit {:?} key)",
                key.bits(),
                key.id()
            ),
        ));
    }
    if request.subject_name().entries().next().is_none() {
        return Err(problem(FailInfo::BadRequest, "the CSR's subject is empty"));
    }
    let challenge = challenge_password(der)?;
    let public_key_der = key.public_key_to_der().map_err(|e| {
        problem(
            FailInfo::BadRequest,
            format!("the CSR's key: {}", describe(&e)),
        )
    })?;
    let info = CsrInfo {
        subject: one_line(request.subject_name()),
        common_name: common_name(request.subject_name()),
        public_key_bits: key.bits(),
        public_key_der,
    };
    Ok(Csr {
        request,
        info,
        challenge,
    })
}

/// The challengePassword attribute of a DER CSR, read without parsing the subject (RFC 2986
/// §4.1: `CertificationRequestInfo ::= SEQUENCE { version, subject, subjectPKInfo,
/// attributes [0] }`).
fn challenge_password(csr: &[u8]) -> Result<Option<SecretString>, Problem> {
    let bad = |what: &str| problem(FailInfo::BadRequest, format!("the CSR {what}"));
    let request = elements(csr).map_err(|_| bad("is not DER"))?;
    let request = request
        .first()
        .filter(|r| r.tag() == Tag::Sequence)
        .ok_or_else(|| bad("is not a SEQUENCE"))?;
    let parts = elements(request.value()).map_err(|_| bad("is not DER"))?;
    let info = parts
        .first()
        .filter(|i| i.tag() == Tag::Sequence)
        .ok_or_else(|| bad("has no CertificationRequestInfo"))?;
    let fields =
        elements(info.value()).map_err(|_| bad("has a malformed CertificationRequestInfo"))?;
    let Some(attributes) = fields.get(3) else {
        return Ok(None);
    };
    for attribute in elements(attributes.value()).map_err(|_| bad("has malformed attributes"))? {
        let attribute: Attribute = attribute
            .decode_as()
            .map_err(|_| bad("has a malformed attribute"))?;
        if attribute.oid != CHALLENGE_PASSWORD {
            continue;
        }
        let value = attribute
            .values
            .iter()
            .next()
            .ok_or_else(|| bad("has an empty challengePassword"))?;
        let password =
            text(value.into()).ok_or_else(|| bad("challengePassword is not a string"))?;
        return Ok(Some(SecretString::from(password)));
    }
    Ok(None)
}

/// A string-typed ASN.1 value as text (PrintableString as RFC 8894 says; UTF8String, IA5String
/// and TeletexString as some clients send).
pub(super) fn text(value: AnyRef<'_>) -> Option<String> {
    match value.tag() {
        Tag::PrintableString | Tag::Utf8String | Tag::Ia5String | Tag::TeletexString => {
            std::str::from_utf8(value.value()).ok().map(str::to_string)
        }
        _ => None,
    }
}

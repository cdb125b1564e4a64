//! The device side of SCEP (RFC 8894): what an Apple device does with the enrollment
//! profile's `com.apple.security.scep` payload, for the device simulators and the tests.
//!
//! 1. `GetCACaps` ([`ScepCapabilities::parse`]) and `GetCACert` (a DER certificate) over HTTP;
//! 2. a key pair ([`DeviceKey`], the payload's `Keysize`);
//! 3. [`ScepClient::pkcs_req`]: a PKCS#10 CSR with the challenge password, enveloped to the CA
//!    certificate (AES-128-CBC when the CA advertises AES, otherwise triple DES), signed by a
//!    throw-away self-signed certificate for the same key with SHA-256, with `messageType` 19,
//!    a `transactionID` (SHA-256 of the public key, hex) and a random 16-byte `senderNonce`.
//!    [`ScepClient::with_separate_signer`] signs instead with a certificate for a second,
//!    freshly generated key, as the mdmb simulator does;
//! 4. the HTTP `PKIOperation`, then [`PendingRequest::read_cert_rep`]: the `CertRep` must be
//!    signed by the CA, answer this `transactionID` with this nonce as its `recipientNonce`,
//!    and, for `SUCCESS`, hold a certificate for this key issued by the CA.
//!
//! HTTP is the caller's business: this module builds and reads the DER messages only.

use der::{Tag, Tagged};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509Name, X509NameBuilder, X509NameRef, X509Ref};
use x509_cert::attr::Attributes;

use super::request::{
    FAIL_INFO, MESSAGE_TYPE, PKI_STATUS, RECIPIENT_NONCE, SENDER_NONCE, TRANSACTION_ID,
};
use super::{FailInfo, ScepError};
use crate::certificate::{Certificate, hex};
use crate::cms_shape::signed_data_shape;
use crate::describe;
use crate::device_key::DeviceKey;
use crate::pki::{self, Signer, Template, Usage};
use crate::signed_data::{self, BuildError, attribute, octets, printable};

/// `messageType` PKCSReq.
const PKCS_REQ: &str = "19";
/// `messageType` CertRep.
const CERT_REP: &str = "3";
/// PKCS#9 `challengePassword` (RFC 2985 §5.4.1).
const CHALLENGE_PASSWORD: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");
/// `sha256WithRSAEncryption` (RFC 4055).
const SHA256_WITH_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// Length of the `senderNonce`.
const NONCE_LEN: usize = 16;

/// A `GetCACaps` answer (RFC 8894 §3.5.2): one keyword per line, compared without regard to
/// case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScepCapabilities {
    keywords: Vec<String>,
}

impl ScepCapabilities {
    /// Reads the answer's keywords; blank lines are skipped.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        Self {
            keywords: text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// Whether `keyword` was advertised.
    #[must_use]
    pub fn has(&self, keyword: &str) -> bool {
        self.keywords
            .iter()
            .any(|k| k.eq_ignore_ascii_case(keyword))
    }

    /// `PKIOperation` may be POSTed (`POSTPKIOperation`, implied by `SCEPStandard`).
    #[must_use]
    pub fn post_pki_operation(&self) -> bool {
        self.has("POSTPKIOperation") || self.has("SCEPStandard")
    }

    /// AES envelopes are decrypted (`AES`, implied by `SCEPStandard`).
    #[must_use]
    pub fn aes(&self) -> bool {
        self.has("AES") || self.has("SCEPStandard")
    }

    /// SHA-256 signatures are verified (`SHA-256`, implied by `SCEPStandard`).
    #[must_use]
    pub fn sha256(&self) -> bool {
        self.has("SHA-256") || self.has("SCEPStandard")
    }

    /// Triple-DES envelopes are decrypted (`DES3`).
    #[must_use]
    pub fn des3(&self) -> bool {
        self.has("DES3")
    }
}

/// The content-encryption algorithm of the request envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeCipher {
    /// AES-128-CBC, RFC 8894's mandatory algorithm.
    Aes128Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
    /// Triple DES (EDE3-CBC), for CAs that do not advertise AES.
    Des3Cbc,
}

impl EnvelopeCipher {
    fn openssl(self) -> Cipher {
        match self {
            Self::Aes128Cbc => Cipher::aes_128_cbc(),
            Self::Aes256Cbc => Cipher::aes_256_cbc(),
            Self::Des3Cbc => Cipher::des_ede3_cbc(),
        }
    }
}

/// Builds `PKCSReq` messages. `Default` envelopes with AES-128-CBC and signs with the
/// requested key; see [`ScepClient::for_capabilities`] to choose as a device does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScepClient {
    cipher: EnvelopeCipher,
    separate_signer: bool,
}

impl Default for ScepClient {
    fn default() -> Self {
        Self::new(EnvelopeCipher::Aes128Cbc)
    }
}

impl ScepClient {
    /// A client that envelopes with `cipher`.
    #[must_use]
    pub fn new(cipher: EnvelopeCipher) -> Self {
        Self {
            cipher,
            separate_signer: false,
        }
    }

    /// This client, signing each request with a self-signed `CN=SCEP SIGNER` certificate for
    /// a second RSA-2048 key made for that request alone, rather than with the requested key
    /// (what the mdmb device simulator does). The CSR is still signed by the requested key,
    /// and the CA encrypts its answer to the signer certificate.
    #[must_use]
    pub fn with_separate_signer(self) -> Self {
        Self {
            separate_signer: true,
            ..self
        }
    }

    /// Whether requests are signed with a separate key ([`ScepClient::with_separate_signer`]).
    #[must_use]
    pub fn separate_signer(&self) -> bool {
        self.separate_signer
    }

    /// Chooses as a device does from the CA's capabilities: AES-128 when AES is advertised,
    /// otherwise triple DES.
    ///
    /// # Errors
    /// [`ScepError::InvalidRequest`] when the CA advertises neither SHA-256 (this client signs
    /// with SHA-256 only) nor an envelope cipher it uses (AES or DES3).
    pub fn for_capabilities(caps: &ScepCapabilities) -> Result<Self, ScepError> {
        if !caps.sha256() {
            return Err(ScepError::InvalidRequest(
                "the CA advertises neither SHA-256 nor SCEPStandard; this client signs with \
                 SHA-256 only"
                    .to_string(),
            ));
        }
        let cipher = if caps.aes() {
            EnvelopeCipher::Aes128Cbc
        } else if caps.des3() {
            EnvelopeCipher::Des3Cbc
        } else {
            return Err(ScepError::InvalidRequest(
                "the CA advertises neither AES nor DES3 (single DES is not used)".to_string(),
            ));
        };
        Ok(Self::new(cipher))
    }

    /// The envelope cipher.
    #[must_use]
    pub fn cipher(&self) -> EnvelopeCipher {
        self.cipher
    }

    /// A `PKCSReq` for `key`, subject `CN=<subject_cn>`, with `challenge` as the
    /// challengePassword. Returns the DER message to send (`PKIOperation`) and what is needed
    /// to read the answer.
    ///
    /// # Errors
    /// [`ScepError::InvalidRequest`] for an unusable subject, [`ScepError::Internal`] if
    /// OpenSSL or the encoder fails.
    pub fn pkcs_req(
        &self,
        ca_cert: &Certificate,
        key: &DeviceKey,
        subject_cn: &str,
        challenge: &str,
    ) -> Result<(Vec<u8>, PendingRequest), ScepError> {
        self.pkcs_req_with_subject(ca_cert, key, &[("CN", subject_cn)], Some(challenge))
    }

    /// A `PKCSReq` with a whole subject, as the SCEP payload's `Subject` gives it: one RDN per
    /// `(name, value)` pair, in order, where the name is a short name (`CN`, `O`, `OU`, …) or a
    /// dotted OID. An empty subject is sent as it is (CAs refuse it). No challengePassword
    /// attribute is sent when `challenge` is `None`.
    ///
    /// # Errors
    /// As [`ScepClient::pkcs_req`].
    pub fn pkcs_req_with_subject(
        &self,
        ca_cert: &Certificate,
        key: &DeviceKey,
        subject: &[(&str, &str)],
        challenge: Option<&str>,
    ) -> Result<(Vec<u8>, PendingRequest), ScepError> {
        let _queue = crate::error_queue::isolate();
        let subject = subject_name(subject)?;
        let (signer_key, self_signed) = if self.separate_signer {
            let signer_key = pki::rsa_key(2048)?;
            let signer_name = pki::name("SCEP SIGNER", None)?;
            let cert = self_signed(&signer_key, &signer_name)?;
            (signer_key, cert)
        } else {
            (key.pkey().clone(), self_signed(key.pkey(), &subject)?)
        };
        let csr = csr(key.pkey(), &subject.to_der()?, challenge)?;
        let public_key = key
            .public_key_der()
            .map_err(|e| ScepError::Internal(e.to_string()))?;
        let transaction_id = hex(&crate::digest::sha256(&public_key)).to_ascii_uppercase();
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce)?;
        let envelope = envelope(&csr, ca_cert.x509(), self.cipher.openssl())?;
        let der = signed_message(
            &self_signed,
            &signer_key,
            &envelope,
            PKCS_REQ,
            &transaction_id,
            &nonce,
        )?;
        Ok((
            der,
            PendingRequest {
                ca: ca_cert.clone(),
                key: key.clone(),
                signer_key,
                signer: Certificate::from_x509(self_signed)
                    .map_err(|e| ScepError::Internal(e.to_string()))?,
                transaction_id,
                sender_nonce: nonce.to_vec(),
            },
        ))
    }
}

/// A sent `PKCSReq`, waiting for its `CertRep`. `Debug` never shows the key.
#[derive(Clone)]
pub struct PendingRequest {
    ca: Certificate,
    key: DeviceKey,
    /// The key that signed the request: `key`'s, or a separate one.
    signer_key: PKey<Private>,
    /// The signer's self-signed certificate; the CA encrypts its answer to it.
    signer: Certificate,
    transaction_id: String,
    sender_nonce: Vec<u8>,
}

/// Why a `CertRep` gave no certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScepClientError {
    /// Not a CMS `SignedData` with one signer and signed attributes.
    #[error("the CertRep is not a SCEP message: {0}")]
    Malformed(String),
    /// The signature does not verify, or the signer does not chain to the CA certificate.
    #[error("the CertRep is not signed by the CA: {0}")]
    BadSignature(String),
    /// A SCEP attribute the reply must carry is absent or of the wrong type.
    #[error("the CertRep has no readable {0}")]
    MissingAttribute(&'static str),
    /// The reply is another kind of SCEP message.
    #[error("the reply has messageType {0}, not CertRep (3)")]
    NotCertRep(String),
    /// The reply answers another transaction.
    #[error("the CertRep answers transaction {found:?}, not {expected:?}")]
    TransactionMismatch {
        /// This request's `transactionID`.
        expected: String,
        /// The reply's.
        found: String,
    },
    /// The reply's `recipientNonce` is not this request's `senderNonce` (replayed or
    /// misdirected).
    #[error("the CertRep's recipientNonce is not this request's senderNonce")]
    NonceMismatch,
    /// `pkiStatus` FAILURE.
    #[error("the CA refused the request: pkiStatus FAILURE, failInfo {}", describe_fail_info(.fail_info.as_ref()))]
    Failure {
        /// The `failInfo` given, if any and known.
        fail_info: Option<FailInfo>,
    },
    /// `pkiStatus` PENDING: the CA wants manual approval; this client does not poll.
    #[error("the CA left the request PENDING (manual approval); this client does not poll")]
    Pending,
    /// A `pkiStatus` RFC 8894 does not define.
    #[error("the CertRep has an unknown pkiStatus {0:?}")]
    UnknownStatus(String),
    /// The `SUCCESS` envelope does not decrypt to a certificates-only `SignedData`.
    #[error("the issued certificate cannot be extracted: {0}")]
    Envelope(String),
    /// No certificate in the reply certifies this request's key, or the CA did not issue it.
    #[error("the CertRep holds no certificate for this request's key issued by the CA")]
    NoCertificate,
}

fn describe_fail_info(fail_info: Option<&FailInfo>) -> String {
    fail_info.map_or_else(
        || "(none given)".to_string(),
        |f| format!("{f} ({})", f.code()),
    )
}

impl PendingRequest {
    /// The request's `transactionID`.
    #[must_use]
    pub fn transaction_id(&self) -> &str {
        &self.transaction_id
    }

    /// The key the request certifies.
    #[must_use]
    pub fn key(&self) -> &DeviceKey {
        &self.key
    }

    /// The self-signed certificate that signed the request (for the requested key, or for a
    /// separate one with [`ScepClient::with_separate_signer`]); the CA encrypts its answer to
    /// it.
    #[must_use]
    pub fn signer_certificate(&self) -> &Certificate {
        &self.signer
    }

    /// Reads the `CertRep` (the `PKIOperation` answer, DER) and returns the issued
    /// certificate.
    ///
    /// # Errors
    /// A [`ScepClientError`]: not signed by the CA, not an answer to this request (transaction,
    /// nonce), a FAILURE (with its `failInfo`) or PENDING status, or no usable certificate.
    pub fn read_cert_rep(&self, der: &[u8]) -> Result<Certificate, ScepClientError> {
        let _queue = crate::error_queue::isolate();
        let malformed = |what: String| ScepClientError::Malformed(what);
        let p7 = Pkcs7::from_der(der).map_err(|e| malformed(describe(&e)))?;
        let normalized = p7.to_der().map_err(|e| malformed(describe(&e)))?;
        let shape = signed_data_shape(&normalized).map_err(|e| malformed(format!("{e:?}")))?;
        let [signer_info] = shape.signer_infos.as_slice() else {
            return Err(malformed(format!(
                "{} signers; a CertRep has exactly one",
                shape.signer_infos.len()
            )));
        };
        let attrs = signer_info
            .signed_attrs
            .as_ref()
            .ok_or_else(|| malformed("no signed attributes".to_string()))?;
        let envelope = self.verify(&p7, shape.econtent.is_some())?;

        let message_type =
            string(attrs, MESSAGE_TYPE).ok_or(ScepClientError::MissingAttribute("messageType"))?;
        if message_type != CERT_REP {
            return Err(ScepClientError::NotCertRep(message_type));
        }
        let transaction = string(attrs, TRANSACTION_ID)
            .ok_or(ScepClientError::MissingAttribute("transactionID"))?;
        if transaction != self.transaction_id {
            return Err(ScepClientError::TransactionMismatch {
                expected: self.transaction_id.clone(),
                found: transaction,
            });
        }
        let recipient_nonce = octet_string(attrs, RECIPIENT_NONCE)
            .ok_or(ScepClientError::MissingAttribute("recipientNonce"))?;
        if recipient_nonce != self.sender_nonce {
            return Err(ScepClientError::NonceMismatch);
        }
        octet_string(attrs, SENDER_NONCE)
            .filter(|n| !n.is_empty())
            .ok_or(ScepClientError::MissingAttribute("senderNonce"))?;
        let status =
            string(attrs, PKI_STATUS).ok_or(ScepClientError::MissingAttribute("pkiStatus"))?;
        match status.as_str() {
            "0" => self.issued(envelope.as_deref()),
            "2" => Err(ScepClientError::Failure {
                fail_info: string(attrs, FAIL_INFO).and_then(|c| FailInfo::from_code(&c)),
            }),
            "3" => Err(ScepClientError::Pending),
            _ => Err(ScepClientError::UnknownStatus(status)),
        }
    }

    /// Checks the signature and that the signer chains to the CA; returns the content.
    fn verify(&self, p7: &Pkcs7, has_content: bool) -> Result<Option<Vec<u8>>, ScepClientError> {
        let bad = |e: ErrorStack| ScepClientError::BadSignature(describe(&e));
        let mut store = X509StoreBuilder::new().map_err(bad)?;
        store.add_cert(self.ca.x509().clone()).map_err(bad)?;
        let store = store.build();
        let none = Stack::new().map_err(bad)?;
        let mut content = Vec::new();
        if has_content {
            p7.verify(&none, &store, None, Some(&mut content), Pkcs7Flags::BINARY)
                .map_err(bad)?;
            Ok(Some(content))
        } else {
            // A FAILURE or PENDING reply has no eContent: the signature covers empty content.
            p7.verify(&none, &store, Some(b""), None, Pkcs7Flags::BINARY)
                .map_err(bad)?;
            Ok(None)
        }
    }

    /// Decrypts a SUCCESS envelope and finds the certificate for this key.
    fn issued(&self, envelope: Option<&[u8]>) -> Result<Certificate, ScepClientError> {
        let fail = |e: ErrorStack| ScepClientError::Envelope(describe(&e));
        let envelope = envelope.ok_or_else(|| {
            ScepClientError::Envelope("a SUCCESS reply without a pkcsPKIEnvelope".to_string())
        })?;
        let degenerate = CmsContentInfo::from_der(envelope)
            .and_then(|cms| cms.decrypt(&self.signer_key, self.signer.x509()))
            .map_err(fail)?;
        let p7 = Pkcs7::from_der(&degenerate).map_err(fail)?;
        let ca_key = self.ca.x509().public_key().map_err(fail)?;
        let certificates = p7
            .signed()
            .and_then(|s| s.certificates())
            .ok_or(ScepClientError::NoCertificate)?;
        certificates
            .iter()
            .find(|cert| {
                cert.public_key()
                    .is_ok_and(|k| k.public_eq(self.key.pkey()))
                    && crate::error_queue::verdict(cert.verify(&ca_key))
            })
            .ok_or(ScepClientError::NoCertificate)
            .and_then(|cert| {
                Certificate::from_x509(cert.to_owned())
                    .map_err(|e| ScepClientError::Envelope(e.to_string()))
            })
    }
}

impl std::fmt::Debug for PendingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRequest")
            .field("ca", &self.ca)
            .field("transaction_id", &self.transaction_id)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl From<ErrorStack> for ScepClientError {
    fn from(err: ErrorStack) -> Self {
        Self::Malformed(describe(&err))
    }
}

fn subject_name(subject: &[(&str, &str)]) -> Result<X509Name, ScepError> {
    let mut name = X509NameBuilder::new()?;
    for (field, value) in subject {
        name.append_entry_by_text(field, value).map_err(|e| {
            ScepError::InvalidRequest(format!(
                "the subject attribute {field:?} is not usable: {}",
                describe(&e)
            ))
        })?;
    }
    Ok(name.build())
}

/// The throw-away self-signed certificate that signs a request (RFC 8894 §2.3): the CSR's
/// subject and key, valid from five minutes ago for a day, not a CA.
pub(super) fn self_signed(
    key: &PKeyRef<Private>,
    subject: &X509NameRef,
) -> Result<X509, ErrorStack> {
    pki::issue(
        &Template {
            subject,
            public_key: key,
            not_before: pki::time_from_now(-pki::BACKDATE_SECONDS)?,
            not_after: pki::time_from_now(86_400)?,
            usage: Usage::ClientIdentity,
        },
        &Signer::SelfSigned(key),
    )
}

/// A PKCS#10 CSR (RFC 2986) for `key` and the DER `subject`, with a PrintableString
/// challengePassword when given, signed with SHA-256.
pub(super) fn csr(
    key: &PKeyRef<Private>,
    subject_der: &[u8],
    challenge: Option<&str>,
) -> Result<Vec<u8>, BuildError> {
    use der::{Decode as _, Encode as _};
    use x509_cert::request::{CertReq, CertReqInfo, Version};
    use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

    let mut attributes = der::asn1::SetOfVec::new();
    if let Some(challenge) = challenge {
        attributes.insert(attribute(CHALLENGE_PASSWORD, printable(challenge)?)?)?;
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject: x509_cert::name::Name::from_der(subject_der)?,
        public_key: SubjectPublicKeyInfoOwned::from_der(&key.public_key_to_der()?)?,
        attributes,
    };
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key)?;
    signer.update(&info.to_der()?)?;
    let signature = signer.sign_to_vec()?;
    Ok(CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned {
            oid: SHA256_WITH_RSA,
            parameters: Some(der::Any::null()),
        },
        signature: der::asn1::BitString::from_bytes(&signature)?,
    }
    .to_der()?)
}

/// A CMS `EnvelopedData` (DER) of `content` for `recipient`.
pub(super) fn envelope(
    content: &[u8],
    recipient: &X509Ref,
    cipher: Cipher,
) -> Result<Vec<u8>, ErrorStack> {
    let mut recipients = Stack::new()?;
    recipients.push(recipient.to_owned())?;
    CmsContentInfo::encrypt(&recipients, content, cipher, CMSOptions::BINARY)?.to_der()
}

/// A SCEP message: `content` signed by `signer` with the `messageType`, `transactionID`
/// (PrintableString) and `senderNonce` signed attributes.
pub(super) fn signed_message(
    signer: &X509Ref,
    key: &PKeyRef<Private>,
    content: &[u8],
    message_type: &str,
    transaction_id: &str,
    nonce: &[u8],
) -> Result<Vec<u8>, BuildError> {
    signed_data::sign(signed_data::Message {
        content: Some(content),
        attributes: vec![
            attribute(MESSAGE_TYPE, printable(message_type)?)?,
            attribute(TRANSACTION_ID, printable(transaction_id)?)?,
            attribute(SENDER_NONCE, octets(nonce)?)?,
        ],
        signer,
        key,
    })
}

fn value(attrs: &Attributes, oid: der::asn1::ObjectIdentifier) -> Option<&der::Any> {
    attrs
        .iter()
        .find(|a| a.oid == oid)
        .and_then(|a| a.values.iter().next())
}

fn string(attrs: &Attributes, oid: der::asn1::ObjectIdentifier) -> Option<String> {
    value(attrs, oid).and_then(|v| super::csr::text(v.into()))
}

fn octet_string(attrs: &Attributes, oid: der::asn1::ObjectIdentifier) -> Option<Vec<u8>> {
    value(attrs, oid)
        .filter(|v| v.tag() == Tag::OctetString)
        .map(|v| v.value().to_vec())
}

//! GuardMDM's SCEP certificate authority, server side (RFC 8894).
//!
//! The enrollment profile's `com.apple.security.scep` payload points the device at GuardMDM's
//! `/scep` endpoint (`docs/protocol.md` §6.2,
//! <https://developer.apple.com/documentation/devicemanagement/scep>). The device
//!
//! 1. asks `GetCACaps` ([`ScepCa::get_ca_caps`]) and `GetCACert` ([`ScepCa::get_ca_cert`]);
//! 2. generates its key pair (the private key never leaves the device), a PKCS#10 CSR carrying
//!    the profile's challenge password, and a throw-away self-signed certificate;
//! 3. sends a `PKCSReq`: a CMS `SignedData`, signed with the self-signed certificate, whose
//!    content is a CMS `EnvelopedData`, encrypted to the CA certificate, holding the CSR; the
//!    SCEP fields (`messageType`, `transactionID`, `senderNonce`) are signed attributes. The
//!    self-signed certificate is usually for the CSR's key; some clients (mdmb) make it for a
//!    separate key of their own, which is accepted: the CSR's own signature proves possession
//!    of the key to certify, and the challenge authorizes the request;
//! 4. receives a `CertRep` ([`ScepCa::pki_operation`]): a `SignedData` signed by the CA, with
//!    `pkiStatus`, `failInfo`, `recipientNonce` (its own nonce back), a fresh `senderNonce`
//!    and its `transactionID` as signed attributes, and, on success, an `EnvelopedData`
//!    encrypted to the request's signer certificate holding a certificates-only `SignedData` with
//!    the issued certificate. The device then uses that identity for MDM check-ins.
//!
//! The device's side (building the `PKCSReq`, reading the `CertRep`) is [`client`], for the
//! device simulators and tests.
//!
//! A refused request is still answered with a `CertRep` (`pkiStatus` FAILURE and a `failInfo`),
//! as RFC 8894 §3.3.2 asks; only a message too broken to answer is a [`ScepError`].
//!
//! # What is supported
//! `PKCSReq` only; no `RenewalReq`, `CertPoll`, `GetCert`, `GetCRL` or `GetNextCACert` (they get
//! a FAILURE `badRequest` reply and are not advertised). The CA certificate itself decrypts
//! requests and signs replies (no separate RA certificate). Requests may be encrypted with
//! AES-128/192/256-CBC or triple DES, and signed with any digest OpenSSL verifies (SHA-1
//! included, as micromdm's `scepclient` uses it although it is not advertised). Single DES,
//! which RFC 8894 deprecates but micromdm's `scepclient` still sends, is refused unless
//! [`ScepCa::with_single_des`] enables it.
//!
//! # How the CMS structures are built
//! OpenSSL does every cryptographic operation: signature checks (`PKCS7_verify`), decryption
//! and encryption (`CMS_decrypt`, `CMS_encrypt`), certificate issuance and RSA signing. Reading
//! the signed attributes of a request and *writing* the `CertRep`'s signed attributes is what
//! rust-openssl cannot do: it exposes neither `PKCS7_add_signed_attribute` nor the signer
//! infos. The three ways out were (1) `openssl-sys` FFI, which would need an `unsafe` module in
//! a workspace that forbids `unsafe_code`; (2) a hand-written DER encoder; (3) the RustCrypto
//! `cms`/`der`/`x509-cert` *types*, without their `builder` feature, so no second crypto
//! implementation enters the build (9 small pure-Rust crates). GuardMDM takes (3): the ASN.1 is
//! encoded and decoded by a maintained, well-tested codec and stays typed, and the signature
//! over the DER `SET OF` attributes is made by OpenSSL (see `signed_data.rs`). Incoming
//! messages are first parsed and re-encoded by OpenSSL, so BER from older clients is accepted.

pub mod client;
mod csr;
mod legacy;
mod policy;
mod request;
mod response;

use openssl::pkey::{Id, PKey, Private};
use secrecy::{ExposeSecret, SecretString};

use crate::certificate::Certificate;
use crate::cms_verify::TrustAnchors;
use crate::describe;
use crate::pki::{self, Signer, Template, Usage};

pub use client::{EnvelopeCipher, PendingRequest, ScepCapabilities, ScepClient, ScepClientError};
pub use csr::CsrInfo;
pub use policy::{ChallengePolicy, Rejection, StaticChallenge};
pub use request::PkiRequest;

/// The `GetCACaps` answer (RFC 8894 §3.5.2), one keyword per line: AES and triple-DES
/// envelopes are decrypted, `PKIOperation` may be POSTed, SHA-256 and SHA-512 signatures are
/// verified, and `SCEPStandard` (RFC 8894 itself). Not advertised because not supported:
/// `GetNextCACert`, `Renewal`; not advertised because weak though still accepted: `SHA-1`.
pub const CA_CAPABILITIES: &str = "AES\nDES3\nPOSTPKIOperation\nSCEPStandard\nSHA-256\nSHA-512\n";

/// HTTP `Content-Type` of the `GetCACaps` answer.
pub const CA_CAPS_CONTENT_TYPE: &str = "text/plain";
/// HTTP `Content-Type` of the `GetCACert` answer (a single DER certificate, RFC 8894 §4.2.1).
pub const CA_CERT_CONTENT_TYPE: &str = "application/x-x509-ca-cert";
/// HTTP `Content-Type` of a `PKIOperation` answer (RFC 8894 §4.3).
pub const PKI_MESSAGE_CONTENT_TYPE: &str = "application/x-pki-message";

/// Validity of a CA made by [`ScepCa::generate`].
pub const CA_DAYS: u32 = 10 * 365;
/// Validity of an issued device identity (capped at the CA's own expiry).
pub const ISSUED_DAYS: u32 = 365;

/// The CA: its certificate and private key. `Debug` never shows the key.
pub struct ScepCa {
    certificate: Certificate,
    key: PKey<Private>,
    single_des: bool,
}

/// Why a SCEP operation could not be answered with a `CertRep`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScepError {
    /// The message is not a SCEP message GuardMDM can answer at all (not a CMS `SignedData`,
    /// or no `transactionID`, `messageType` or `senderNonce`): answer HTTP 400.
    #[error("not a SCEP message: {0}")]
    Malformed(String),
    /// The CA certificate or key is unusable.
    #[error("the SCEP CA is unusable: {0}")]
    Ca(String),
    /// OpenSSL or the ASN.1 encoder failed while building the answer (or, client side, the
    /// request): answer HTTP 500.
    #[error("building the SCEP message failed: {0}")]
    Internal(String),
    /// Client side ([`ScepClient`]): the request cannot be built as asked (an unusable subject,
    /// capabilities the client cannot work with).
    #[error("the SCEP request cannot be built: {0}")]
    InvalidRequest(String),
}

impl ScepError {
    /// Whether the client sent something unanswerable (HTTP 400) rather than the server
    /// failing (HTTP 500).
    #[must_use]
    pub fn is_client_error(&self) -> bool {
        matches!(self, Self::Malformed(_))
    }
}

/// The `failInfo` of a FAILURE reply (RFC 8894 §3.2.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// Unrecognized or unsupported algorithm (`0`).
    BadAlg,
    /// Integrity check failed: a signature or the envelope (`1`).
    BadMessageCheck,
    /// Transaction not permitted or supported (`2`): a rejected challenge, a bad CSR.
    BadRequest,
    /// The message time was not close enough to the system time (`3`).
    BadTime,
    /// No certificate matches the criteria (`4`).
    BadCertId,
}

impl FailInfo {
    /// The `failInfo` with this attribute value (`"0"` to `"4"`).
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim() {
            "0" => Some(Self::BadAlg),
            "1" => Some(Self::BadMessageCheck),
            "2" => Some(Self::BadRequest),
            "3" => Some(Self::BadTime),
            "4" => Some(Self::BadCertId),
            _ => None,
        }
    }

    /// The attribute value: `"0"` to `"4"`.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::BadAlg => "0",
            Self::BadMessageCheck => "1",
            Self::BadRequest => "2",
            Self::BadTime => "3",
            Self::BadCertId => "4",
        }
    }
}

impl std::fmt::Display for FailInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::BadAlg => "badAlg",
            Self::BadMessageCheck => "badMessageCheck",
            Self::BadRequest => "badRequest",
            Self::BadTime => "badTime",
            Self::BadCertId => "badCertId",
        })
    }
}

/// A `PKIOperation` answer: the DER `CertRep` to send with [`PKI_MESSAGE_CONTENT_TYPE`] and
/// HTTP 200, and what it says, for logs and for binding the identity to the device.
#[derive(Debug, Clone)]
pub struct PkiResponse {
    /// The `CertRep` message, DER.
    pub der: Vec<u8>,
    /// The request's `transactionID`, as text.
    pub transaction_id: String,
    /// What the reply tells the device.
    pub outcome: PkiOutcome,
}

/// The decision a `CertRep` carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiOutcome {
    /// SUCCESS: this certificate was issued.
    Issued(Certificate),
    /// FAILURE with this `failInfo`; `reason` is for GuardMDM's logs only, the device sees
    /// just the code.
    Failed {
        /// The code sent.
        fail_info: FailInfo,
        /// Why.
        reason: String,
    },
}

impl ScepCa {
    /// A new CA: RSA-2048, self-signed, `CN=<common_name>, O=GuardMDM`, valid [`CA_DAYS`],
    /// `CA:TRUE, pathlen:0`, key usage keyCertSign, cRLSign, digitalSignature (it signs
    /// `CertRep`s) and keyEncipherment (requests are encrypted to it).
    ///
    /// # Errors
    /// [`ScepError::Ca`] for an empty or over-long (64) common name or an OpenSSL failure.
    pub fn generate(common_name: &str) -> Result<Self, ScepError> {
        let _queue = crate::error_queue::isolate();
        if common_name.is_empty() || common_name.chars().count() > 64 {
            return Err(ScepError::Ca(
                "the CA common name must be 1 to 64 characters".to_string(),
            ));
        }
        let ca = || -> Result<(openssl::x509::X509, PKey<Private>), openssl::error::ErrorStack> {
            let key = pki::rsa_key(2048)?;
            let subject = pki::name(common_name, Some("GuardMDM"))?;
            let template = Template {
                subject: &subject,
                public_key: &key,
                not_before: pki::time_from_now(-pki::BACKDATE_SECONDS)?,
                not_after: pki::time_from_now(i64::from(CA_DAYS) * 86_400)?,
                usage: Usage::IssuingCa,
            };
            Ok((pki::issue(&template, &Signer::SelfSigned(&key))?, key))
        };
        let (cert, key) = ca().map_err(|e| ScepError::Ca(describe(&e)))?;
        let certificate = Certificate::from_x509(cert).map_err(|e| ScepError::Ca(e.to_string()))?;
        Ok(Self {
            certificate,
            key,
            single_des: false,
        })
    }

    /// Loads a CA saved with [`ScepCa::to_pem`]: the certificate PEM and its RSA private key
    /// PEM (decrypted; encryption at rest is the service's job).
    ///
    /// # Errors
    /// [`ScepError::Ca`] when either is unreadable, the key is not RSA, or they do not match.
    pub fn from_pem(
        certificate_pem: &[u8],
        private_key_pem: &SecretString,
    ) -> Result<Self, ScepError> {
        let _queue = crate::error_queue::isolate();
        let certificate =
            Certificate::from_pem(certificate_pem).map_err(|e| ScepError::Ca(e.to_string()))?;
        let key = PKey::private_key_from_pem(private_key_pem.expose_secret().as_bytes()).map_err(
            |e| ScepError::Ca(format!("the private key is unreadable: {}", describe(&e))),
        )?;
        if key.id() != Id::RSA {
            return Err(ScepError::Ca(
                "the CA key must be RSA: SCEP clients encrypt requests to it".to_string(),
            ));
        }
        let matches = certificate
            .x509()
            .public_key()
            .map(|public| public.public_eq(&key))
            .unwrap_or(false);
        if !matches {
            return Err(ScepError::Ca(format!(
                "the private key does not belong to the certificate {:?}",
                certificate.subject()
            )));
        }
        Ok(Self {
            certificate,
            key,
            single_des: false,
        })
    }

    /// The certificate PEM and the private key as unencrypted PKCS#8 PEM, for the service to
    /// seal and store.
    ///
    /// # Errors
    /// [`ScepError::Internal`] if OpenSSL fails to encode the key.
    pub fn to_pem(&self) -> Result<(String, SecretString), ScepError> {
        let _queue = crate::error_queue::isolate();
        let key = self
            .key
            .private_key_to_pem_pkcs8()
            .map_err(|e| ScepError::Internal(describe(&e)))?;
        let key = String::from_utf8(key)
            .map_err(|_| ScepError::Internal("OpenSSL wrote a non-UTF-8 PEM".to_string()))?;
        Ok((self.certificate.to_pem(), SecretString::from(key)))
    }

    /// Also accept requests encrypted with single DES (56-bit), by loading OpenSSL's `legacy`
    /// provider into the process's default library context (OpenSSL 3 moved DES there). Needed
    /// for micromdm's `scepclient`, which always uses DES; Apple devices use AES or 3DES. The
    /// reply to such a request is encrypted with triple DES.
    ///
    /// # Errors
    /// [`ScepError::Ca`] when the legacy provider cannot be loaded (not installed).
    pub fn with_single_des(mut self) -> Result<Self, ScepError> {
        let _queue = crate::error_queue::isolate();
        legacy::load().map_err(ScepError::Ca)?;
        self.single_des = true;
        Ok(self)
    }

    /// The CA certificate.
    #[must_use]
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The `GetCACaps` answer, [`CA_CAPABILITIES`].
    #[must_use]
    pub fn get_ca_caps() -> &'static str {
        CA_CAPABILITIES
    }

    /// The `GetCACert` answer: the CA certificate, DER ([`CA_CERT_CONTENT_TYPE`]).
    #[must_use]
    pub fn get_ca_cert(&self) -> Vec<u8> {
        self.certificate.to_der().to_vec()
    }

    /// The CA as the only trust anchor, to check `Mdm-Signature` signers with
    /// [`TrustAnchors::verify`] (chain *and* validity period).
    #[must_use]
    pub fn trust_anchors(&self) -> TrustAnchors {
        TrustAnchors::single(self.certificate.clone())
    }

    /// Whether this CA issued `cert`: its issuer is the CA's subject and the CA key signed it.
    /// Says nothing of the validity period (see [`ScepCa::trust_anchors`]).
    #[must_use]
    pub fn issued_by_me(&self, cert: &Certificate) -> bool {
        let _queue = crate::error_queue::isolate();
        let ca = self.certificate.x509();
        let same_issuer = match (
            cert.x509().issuer_name().to_der(),
            ca.subject_name().to_der(),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        same_issuer && crate::error_queue::verdict(cert.x509().verify(&self.key))
    }

    /// Answers a `PKIOperation` message (the POST body, or the decoded GET `message`
    /// parameter, see [`decode_message_param`]): decodes it, asks `policy` about the challenge
    /// when the request is otherwise sound, and builds the `CertRep`.
    ///
    /// # Errors
    /// [`ScepError::Malformed`] for a message too broken to answer (HTTP 400),
    /// [`ScepError::Internal`] when building the reply fails (HTTP 500). Refusals are not
    /// errors: they are FAILURE replies in [`PkiResponse`].
    pub fn pki_operation(
        &self,
        message: &[u8],
        policy: &dyn ChallengePolicy,
    ) -> Result<PkiResponse, ScepError> {
        let _queue = crate::error_queue::isolate();
        let request = self.decode_request(message)?;
        let decision = match (request.problem(), request.csr()) {
            (None, Some(csr)) => policy.check(request.challenge(), csr),
            _ => Ok(()),
        };
        self.respond(&request, decision)
    }

    /// The first half of [`ScepCa::pki_operation`], for callers whose challenge check is
    /// asynchronous (a database lookup): decode and check the message, decrypt the CSR.
    ///
    /// # Errors
    /// [`ScepError::Malformed`] for a message too broken to answer.
    pub fn decode_request(&self, message: &[u8]) -> Result<PkiRequest, ScepError> {
        let _queue = crate::error_queue::isolate();
        request::decode(self, message)
    }

    /// The second half: the `CertRep` for `request` given the challenge `decision`. A request
    /// with a [`PkiRequest::problem`] always gets a FAILURE, whatever the decision.
    ///
    /// # Errors
    /// [`ScepError::Internal`] when building the reply fails.
    pub fn respond(
        &self,
        request: &PkiRequest,
        decision: Result<(), Rejection>,
    ) -> Result<PkiResponse, ScepError> {
        let _queue = crate::error_queue::isolate();
        response::respond(self, request, decision)
    }
}

impl std::fmt::Debug for ScepCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScepCa")
            .field("certificate", &self.certificate)
            .field("key", &"[REDACTED]")
            .field("single_des", &self.single_des)
            .finish()
    }
}

/// Decodes the `message` query parameter of `GET ?operation=PKIOperation` (already
/// URL-decoded): base64, standard (Apple) or URL-safe (micromdm's client), padded or not. A
/// `+` that form decoding turned into a space is restored.
///
/// # Errors
/// [`ScepError::Malformed`] when it is not base64.
pub fn decode_message_param(param: &str) -> Result<Vec<u8>, ScepError> {
    let _queue = crate::error_queue::isolate();
    let restored: String = param
        .trim()
        .chars()
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    crate::cms_verify::decode_base64_or_der(restored.as_bytes())
        .map_err(|e| ScepError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests;

//! Verifying the CMS signatures Apple devices send.
//!
//! - **ADE enrollment** (`docs/protocol.md` §6.1): the device POSTs a DER CMS `SignedData` whose
//!   attached content is the MachineInfo plist, signed by the device identity whose chain leads
//!   to Apple's device CA. In the web-view flow (§6.3) the same blob arrives base64 in the
//!   `x-apple-aspen-deviceinfo` header. [`verify_attached`] checks the signature *and* the
//!   chain against [`TrustAnchors`]; see
//!   <https://developer.apple.com/documentation/devicemanagement/device-assignment>.
//! - **`Mdm-Signature`** (§6.4): base64 of a detached CMS signature over the exact HTTP body,
//!   made with the SCEP-issued identity
//!   (<https://developer.apple.com/documentation/devicemanagement/mdm>, `SignMessage`).
//!   [`verify_detached`] checks the signature and the signer's validity period and returns the
//!   signer; whether GuardMDM's CA issued it is a separate question
//!   (`ScepCa::issued_by_me`, or [`TrustAnchors::verify`] with the CA certificate).
//!
//! Signatures with and without signed attributes are accepted (devices send both). Chain
//! checks do not demand an extended key usage: Apple's device identities carry none that
//! OpenSSL's S/MIME purpose would accept.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::X509StoreContext;
use openssl::x509::store::X509StoreBuilder;
use time::OffsetDateTime;

use crate::certificate::Certificate;
use crate::cms_shape::{ShapeError, signed_data_shape};
use crate::describe;

/// `X509_V_ERR_CERT_NOT_YET_VALID` (OpenSSL `x509_vfy.h`).
const CERT_NOT_YET_VALID: i32 = 9;
/// `X509_V_ERR_CERT_HAS_EXPIRED` (OpenSSL `x509_vfy.h`).
const CERT_HAS_EXPIRED: i32 = 10;

/// Why a CMS signature was refused. Every message says what is wrong, and names the signer
/// once it is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmsError {
    /// Text input that is not valid base64.
    #[error("the signature is neither DER nor valid base64: {0}")]
    Base64(String),
    /// The bytes are not a CMS / PKCS#7 structure at all.
    #[error("not a CMS message (corrupt or truncated?): {0}")]
    NotCms(String),
    /// A CMS message of another type (enveloped, digested, …).
    #[error("a CMS message of type {content_type}, not SignedData")]
    NotSignedData {
        /// The content type found (name or OID).
        content_type: String,
    },
    /// A `SignedData` whose fields do not decode.
    #[error("the CMS SignedData is malformed: {0}")]
    Malformed(String),
    /// A `SignedData` without any signer (a certificates-only message).
    #[error("the CMS SignedData has no signer (it is a certificates-only message)")]
    NoSigner,
    /// More than one signer: GuardMDM expects exactly one device identity.
    #[error("the CMS SignedData has {0} signers; exactly one is expected")]
    MultipleSigners(usize),
    /// The signer's certificate is not inside the message.
    #[error("the signer's certificate is not included in the CMS message")]
    SignerCertificateMissing,
    /// [`verify_attached`] was given a detached signature.
    #[error(
        "the CMS SignedData carries no content (a detached signature where the content was expected inside)"
    )]
    NoContent,
    /// [`verify_detached`] was given a signature with attached content.
    #[error(
        "the CMS SignedData carries its own content; a detached signature over the body was expected"
    )]
    UnexpectedContent,
    /// The signature does not verify over the content.
    #[error(
        "the signature by {signer:?} does not verify: the content was altered or signed with another key ({reason})"
    )]
    BadSignature {
        /// Subject of the signer certificate.
        signer: String,
        /// OpenSSL's reason.
        reason: String,
    },
    /// The signer's chain does not lead to a trust anchor.
    #[error("the signer {signer:?} is not trusted: {reason}")]
    UntrustedChain {
        /// Subject of the signer certificate.
        signer: String,
        /// What the chain check found.
        reason: String,
    },
    /// A certificate of the chain (the signer or a CA) has expired.
    #[error("the certificate {subject:?} expired at {not_after}")]
    Expired {
        /// Subject of the expired certificate.
        subject: String,
        /// When it expired.
        not_after: OffsetDateTime,
    },
    /// A certificate of the chain is not valid yet.
    #[error("the certificate {subject:?} is not valid before {not_before}")]
    NotYetValid {
        /// Subject of the certificate.
        subject: String,
        /// When it becomes valid.
        not_before: OffsetDateTime,
    },
    /// The trust anchor file or list is unusable.
    #[error("unusable trust anchors: {0}")]
    Anchors(String),
    /// OpenSSL failed for a reason unrelated to the input.
    #[error("OpenSSL failed while verifying: {0}")]
    Internal(String),
}

impl CmsError {
    /// Whether the message was well-formed but its signer is not (or no longer) trusted:
    /// [`CmsError::UntrustedChain`], [`CmsError::Expired`] or [`CmsError::NotYetValid`].
    #[must_use]
    pub fn is_trust_failure(&self) -> bool {
        matches!(
            self,
            Self::UntrustedChain { .. } | Self::Expired { .. } | Self::NotYetValid { .. }
        )
    }
}

/// Content whose signature and signer chain were verified.
#[derive(Debug, Clone)]
pub struct VerifiedContent {
    /// The signed bytes (for ADE, the MachineInfo plist).
    pub content: Vec<u8>,
    /// The certificate that signed them.
    pub signer: Certificate,
}

/// The certificates a signer's chain must lead to: for ADE, Apple's roots (and, if the device
/// does not send them, Apple's device CA intermediates); for `Mdm-Signature`, GuardMDM's SCEP
/// CA. Never empty.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    certificates: Vec<Certificate>,
}

/// Apple Root CA (PEM), which the device identities signing ADE MachineInfo chain to: the
/// default trust anchor for enrollment requests (`certs/README.md` has its fingerprint).
pub const APPLE_ROOT_CA_PEM: &[u8] = include_bytes!("../certs/apple-root-ca.pem");

impl TrustAnchors {
    /// Apple Root CA alone.
    ///
    /// # Errors
    /// Never in practice: the embedded certificate is checked by a test.
    pub fn apple() -> Result<Self, CmsError> {
        let _queue = crate::error_queue::isolate();
        Self::from_pem(APPLE_ROOT_CA_PEM)
    }

    /// Reads a PEM bundle of one or more certificates (`--device-ca-file`).
    ///
    /// # Errors
    /// [`CmsError::Anchors`] naming the problem: not PEM, no certificate, a corrupt block.
    pub fn from_pem(bundle: &[u8]) -> Result<Self, CmsError> {
        let _queue = crate::error_queue::isolate();
        let certificates = Certificate::chain_from_pem(bundle)
            .map_err(|e| CmsError::Anchors(format!("the trust anchor file is unusable: {e}")))?;
        Self::from_certificates(certificates)
    }

    /// Trust exactly these certificates.
    ///
    /// # Errors
    /// [`CmsError::Anchors`] when the list is empty.
    pub fn from_certificates(
        certificates: impl IntoIterator<Item = Certificate>,
    ) -> Result<Self, CmsError> {
        let _queue = crate::error_queue::isolate();
        let certificates: Vec<Certificate> = certificates.into_iter().collect();
        if certificates.is_empty() {
            return Err(CmsError::Anchors("no trust anchor given".to_string()));
        }
        Ok(Self { certificates })
    }

    pub(crate) fn single(certificate: Certificate) -> Self {
        Self {
            certificates: vec![certificate],
        }
    }

    /// The anchors, in the order given.
    #[must_use]
    pub fn certificates(&self) -> &[Certificate] {
        &self.certificates
    }

    /// Checks that `leaf` chains to one of the anchors, using `intermediates` (untrusted) to
    /// build the path, and that every certificate on it is valid now. Anchors may themselves
    /// be intermediates, but the path must end at a self-signed anchor.
    ///
    /// # Errors
    /// [`CmsError::Expired`] or [`CmsError::NotYetValid`] for a certificate outside its
    /// validity period, [`CmsError::UntrustedChain`] for any other chain failure.
    pub fn verify(
        &self,
        leaf: &Certificate,
        intermediates: &[Certificate],
    ) -> Result<(), CmsError> {
        let _queue = crate::error_queue::isolate();
        let internal = |e: openssl::error::ErrorStack| CmsError::Internal(describe(&e));
        let mut store = X509StoreBuilder::new().map_err(internal)?;
        for anchor in &self.certificates {
            store.add_cert(anchor.x509().clone()).map_err(internal)?;
        }
        let store = store.build();
        let mut chain = Stack::new().map_err(internal)?;
        for cert in intermediates {
            chain.push(cert.x509().clone()).map_err(internal)?;
        }
        let mut ctx = X509StoreContext::new().map_err(internal)?;
        let outcome = ctx
            .init(&store, leaf.x509(), &chain, |c| {
                let ok = c.verify_cert()?;
                let failing = c.current_cert().map(ToOwned::to_owned);
                Ok((ok, c.error(), failing))
            })
            .map_err(internal)?;
        match outcome {
            (true, _, _) => Ok(()),
            (false, error, failing) => {
                let failing = failing
                    .and_then(|x| Certificate::from_x509(x).ok())
                    .unwrap_or_else(|| leaf.clone());
                Err(match error.as_raw() {
                    CERT_HAS_EXPIRED => CmsError::Expired {
                        subject: failing.subject().to_string(),
                        not_after: failing.not_after(),
                    },
                    CERT_NOT_YET_VALID => CmsError::NotYetValid {
                        subject: failing.subject().to_string(),
                        not_before: failing.not_before(),
                    },
                    _ => CmsError::UntrustedChain {
                        signer: leaf.subject().to_string(),
                        reason: error.error_string().to_string(),
                    },
                })
            }
        }
    }
}

/// Verifies an attached CMS signature (the ADE MachineInfo request body, DER; or the base64
/// `x-apple-aspen-deviceinfo` header value, standard or URL-safe) and that its signer chains
/// to `anchors` through the certificates inside the message.
///
/// # Errors
/// A [`CmsError`]: the input is not a single-signer `SignedData` with attached content, the
/// signature does not verify, or the signer is not trusted ([`CmsError::is_trust_failure`]).
pub fn verify_attached(der: &[u8], anchors: &TrustAnchors) -> Result<VerifiedContent, CmsError> {
    let _queue = crate::error_queue::isolate();
    let message = Message::parse(der)?;
    if !message.has_content {
        return Err(CmsError::NoContent);
    }
    let mut content = Vec::new();
    message.verify_signature(None, Some(&mut content))?;
    anchors.verify(&message.signer, &message.certificates)?;
    Ok(VerifiedContent {
        content,
        signer: message.signer,
    })
}

/// Content whose signature verified, before any decision about trusting the signer.
#[derive(Debug, Clone)]
pub struct SignedContent {
    /// The signed bytes.
    pub content: Vec<u8>,
    /// The certificate that signed them.
    pub signer: Certificate,
    /// Every certificate inside the message (the signer's included), to build its chain with
    /// [`TrustAnchors::verify`].
    pub certificates: Vec<Certificate>,
}

/// Verifies the signature of an attached CMS `SignedData` (DER, or base64) and returns its
/// content, signer and certificates, without judging the signer: for a device, which accepts
/// a signed profile from an unknown signer (shown as "Not Verified") unless it was told which
/// anchors to trust. [`verify_attached`] is the trusting form.
///
/// # Errors
/// A [`CmsError`]: the input is not a single-signer `SignedData` with attached content, or the
/// signature does not verify.
pub fn verify_attached_signature(der: &[u8]) -> Result<SignedContent, CmsError> {
    let _queue = crate::error_queue::isolate();
    let message = Message::parse(der)?;
    if !message.has_content {
        return Err(CmsError::NoContent);
    }
    let mut content = Vec::new();
    message.verify_signature(None, Some(&mut content))?;
    Ok(SignedContent {
        content,
        signer: message.signer,
        certificates: message.certificates,
    })
}

/// Verifies a detached CMS signature over `body` (the `Mdm-Signature` header: base64 as sent,
/// or already-decoded DER) and returns the signer certificate, which must be inside its
/// validity period. Whether the signer is trusted is for the caller to decide.
/// [`DetachedSignature`] does the same in two steps, so that the signer can be judged before
/// the body is read.
///
/// # Errors
/// A [`CmsError`]: not a single-signer detached `SignedData`, the signature does not verify
/// over `body`, or the signer certificate is expired or not yet valid.
pub fn verify_detached(signature: &[u8], body: &[u8]) -> Result<Certificate, CmsError> {
    let signature = DetachedSignature::parse(signature)?;
    signature.verify(body)?;
    Ok(signature.message.signer)
}

/// A detached CMS signature (the `Mdm-Signature` header) whose signer is known but whose
/// signature is not checked yet: [`DetachedSignature::parse`] needs only the signature, so a
/// server can refuse a stranger before reading the body it signed;
/// [`DetachedSignature::verify`] then checks the signature over the exact body bytes.
pub struct DetachedSignature {
    message: Message,
}

impl std::fmt::Debug for DetachedSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedSignature")
            .field("signer", &self.message.signer.subject())
            .finish_non_exhaustive()
    }
}

impl DetachedSignature {
    /// Decodes a detached signature (base64 as sent, or DER) and takes its signer
    /// certificate, which must be inside its validity period. The signature itself is not
    /// checked: that needs the content ([`Self::verify`]).
    ///
    /// # Errors
    /// A [`CmsError`]: not a single-signer `SignedData`, one that carries its own content,
    /// no signer certificate inside, or a signer that is expired or not yet valid.
    pub fn parse(signature: &[u8]) -> Result<Self, CmsError> {
        let _queue = crate::error_queue::isolate();
        let message = Message::parse(signature)?;
        if message.has_content {
            return Err(CmsError::UnexpectedContent);
        }
        let now = OffsetDateTime::now_utc();
        let signer = &message.signer;
        if now > signer.not_after() {
            return Err(CmsError::Expired {
                subject: signer.subject().to_string(),
                not_after: signer.not_after(),
            });
        }
        if now < signer.not_before() {
            return Err(CmsError::NotYetValid {
                subject: signer.subject().to_string(),
                not_before: signer.not_before(),
            });
        }
        Ok(Self { message })
    }

    /// The certificate that claims to have signed (not proven until [`Self::verify`]).
    #[must_use]
    pub fn signer(&self) -> &Certificate {
        &self.message.signer
    }

    /// Checks the signature over `content`, byte for byte.
    ///
    /// # Errors
    /// [`CmsError::BadSignature`] when `content` is not what the signer signed.
    pub fn verify(&self, content: &[u8]) -> Result<(), CmsError> {
        let _queue = crate::error_queue::isolate();
        self.message.verify_signature(Some(content), None)
    }
}

/// Decodes a CMS blob that may have arrived as text: standard or URL-safe base64, with or
/// without padding, whitespace ignored. Input that starts like DER (a SEQUENCE tag, `0x30`,
/// which no base64 of a CMS structure starts with) or holds non-base64 bytes is returned as it
/// is.
///
/// # Errors
/// [`CmsError::Base64`] for text that looks like base64 but does not decode.
pub fn decode_base64_or_der(input: &[u8]) -> Result<Vec<u8>, CmsError> {
    let _queue = crate::error_queue::isolate();
    let is_text = input.first().is_some_and(|b| *b != 0x30)
        && input
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/-_=".contains(b) || b.is_ascii_whitespace());
    if !is_text {
        return Ok(input.to_vec());
    }
    let compact: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(&compact).ok())
        .ok_or_else(|| {
            CmsError::Base64(
                STANDARD
                    .decode(&compact)
                    .err()
                    .map_or_else(|| "invalid base64".to_string(), |e| e.to_string()),
            )
        })
}

/// A parsed single-signer `SignedData`.
struct Message {
    p7: Pkcs7,
    has_content: bool,
    signer: Certificate,
    certificates: Vec<Certificate>,
}

impl Message {
    fn parse(input: &[u8]) -> Result<Self, CmsError> {
        let der = decode_base64_or_der(input)?;
        let p7 = Pkcs7::from_der(&der).map_err(|e| CmsError::NotCms(describe(&e)))?;
        let normalized = p7.to_der().map_err(|e| CmsError::NotCms(describe(&e)))?;
        let shape = signed_data_shape(&normalized).map_err(|e| match e {
            ShapeError::NotContentInfo(reason) => CmsError::NotCms(reason),
            ShapeError::NotSignedData(oid) => CmsError::NotSignedData {
                content_type: content_type_name(&p7, &oid.to_string()),
            },
            ShapeError::Malformed(reason) => CmsError::Malformed(reason),
        })?;
        match shape.signer_infos.len() {
            0 => return Err(CmsError::NoSigner),
            1 => {}
            n => return Err(CmsError::MultipleSigners(n)),
        }
        let none = Stack::new().map_err(|e| CmsError::Internal(describe(&e)))?;
        let signer = p7
            .signers(&none, Pkcs7Flags::empty())
            .ok()
            .and_then(|stack| stack.into_iter().next())
            .ok_or(CmsError::SignerCertificateMissing)?;
        let signer =
            Certificate::from_x509(signer).map_err(|e| CmsError::Malformed(e.to_string()))?;
        let certificates = p7
            .signed()
            .and_then(|s| s.certificates())
            .map(|stack| {
                stack
                    .iter()
                    .filter_map(|c| Certificate::from_x509(c.to_owned()).ok())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            p7,
            has_content: shape.econtent.is_some(),
            signer,
            certificates,
        })
    }

    /// Checks the signature only (OpenSSL `PKCS7_verify` with `NOVERIFY`: the chain is checked
    /// separately, without OpenSSL's S/MIME purpose rules).
    fn verify_signature(
        &self,
        detached: Option<&[u8]>,
        out: Option<&mut Vec<u8>>,
    ) -> Result<(), CmsError> {
        let internal = |e: openssl::error::ErrorStack| CmsError::Internal(describe(&e));
        let none = Stack::new().map_err(internal)?;
        let store = X509StoreBuilder::new().map_err(internal)?.build();
        self.p7
            .verify(
                &none,
                &store,
                detached,
                out,
                Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
            )
            .map_err(|e| CmsError::BadSignature {
                signer: self.signer.subject().to_string(),
                reason: describe(&e),
            })
    }
}

fn content_type_name(p7: &Pkcs7, fallback: &str) -> String {
    p7.type_()
        .and_then(|t| t.nid().long_name().ok())
        .map_or_else(|| fallback.to_string(), str::to_string)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod apple_root_tests {
    #[test]
    fn the_embedded_apple_root_is_apples() {
        let anchors = super::TrustAnchors::apple().unwrap();
        let root = &anchors.certificates()[0];
        assert_eq!(root.subject_common_name(), Some("Apple Root CA"));
        assert_eq!(
            root.sha256_fingerprint()
                .replace(':', "")
                .to_ascii_lowercase(),
            "b0b1730ecbc7ff4505142c49f1295e6eda6bcaed7e2c68c5be91b5a11001f024"
        );
    }
}

//! Decoding a `PKIOperation` request (RFC 8894 §3.3.1): the signed attributes, the signature,
//! the envelope and the CSR inside it.

use der::asn1::ObjectIdentifier;
use der::{Tag, Tagged};
use openssl::cms::CmsContentInfo;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::Id;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::store::X509StoreBuilder;
use secrecy::ExposeSecret;
use x509_cert::attr::Attributes;

use super::csr::{Csr, CsrInfo, parse_csr, text};
use super::{FailInfo, ScepCa, ScepError, legacy};
use crate::certificate::Certificate;
use crate::cms_shape::{ID_ENVELOPED_DATA, ShapeError, elements, signed_data_shape};
use crate::describe;

/// SCEP attribute OIDs, under `id-VeriSign pki(1) attributes(9)` (RFC 8894 §3.2.1).
pub(super) const MESSAGE_TYPE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.2");
pub(super) const PKI_STATUS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.3");
pub(super) const FAIL_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.4");
pub(super) const SENDER_NONCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.5");
pub(super) const RECIPIENT_NONCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.6");
pub(super) const TRANSACTION_ID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113733.1.9.7");
/// `messageType` of a certificate request (RFC 8894 §3.2.1.2).
const PKCS_REQ: &str = "19";

/// Content-encryption algorithms: NIST AES-CBC (RFC 3565) and the two DES variants.
const AES_128_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
const AES_192_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.22");
const AES_256_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");
const DES_EDE3_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.3.7");
const DES_CBC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.7");

/// Why a decodable request gets a FAILURE reply.
#[derive(Debug, Clone)]
pub(super) struct Problem {
    pub(super) fail_info: FailInfo,
    pub(super) reason: String,
}

pub(super) fn problem(fail_info: FailInfo, reason: impl Into<String>) -> Problem {
    Problem {
        fail_info,
        reason: reason.into(),
    }
}

/// A decoded `PKIOperation` message, between [`ScepCa::decode_request`] and
/// [`ScepCa::respond`]. `Debug` does not show the challenge.
pub struct PkiRequest {
    pub(super) transaction_id: der::Any,
    transaction_text: String,
    message_type: String,
    pub(super) sender_nonce: Vec<u8>,
    pub(super) signer: Option<Certificate>,
    pub(super) csr: Option<Csr>,
    pub(super) problem: Option<Problem>,
    pub(super) reply_cipher: Cipher,
}

impl PkiRequest {
    /// The client's `transactionID`.
    #[must_use]
    pub fn transaction_id(&self) -> &str {
        &self.transaction_text
    }

    /// The `messageType` as sent (`"19"` for `PKCSReq`).
    #[must_use]
    pub fn message_type(&self) -> &str {
        &self.message_type
    }

    /// The CSR, when the request got that far.
    #[must_use]
    pub fn csr(&self) -> Option<&CsrInfo> {
        self.csr.as_ref().map(|c| &c.info)
    }

    /// The CSR's challengePassword, if any.
    #[must_use]
    pub fn challenge(&self) -> Option<&str> {
        self.csr
            .as_ref()
            .and_then(|c| c.challenge.as_ref())
            .map(ExposeSecret::expose_secret)
    }

    /// The certificate that signed the request: the client's self-signed one, for the CSR's
    /// key or for a separate key of its own. A SUCCESS reply is encrypted to it.
    #[must_use]
    pub fn signer(&self) -> Option<&Certificate> {
        self.signer.as_ref()
    }

    /// Why the request will be refused whatever the challenge: the `failInfo` and a reason for
    /// the logs. `None` for a sound request.
    #[must_use]
    pub fn problem(&self) -> Option<(FailInfo, &str)> {
        self.problem
            .as_ref()
            .map(|p| (p.fail_info, p.reason.as_str()))
    }
}

impl std::fmt::Debug for PkiRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkiRequest")
            .field("transaction_id", &self.transaction_text)
            .field("message_type", &self.message_type)
            .field("signer", &self.signer)
            .field("csr", &self.csr())
            .field("challenge", &self.challenge().map(|_| "[REDACTED]"))
            .field("problem", &self.problem)
            .finish()
    }
}

/// Reads the message far enough to answer it, then records any reason to refuse it.
pub(super) fn decode(ca: &ScepCa, message: &[u8]) -> Result<PkiRequest, ScepError> {
    let malformed = |what: String| ScepError::Malformed(what);
    let p7 = Pkcs7::from_der(message)
        .map_err(|e| malformed(format!("not a CMS message: {}", describe(&e))))?;
    let normalized = p7
        .to_der()
        .map_err(|e| malformed(format!("not a CMS message: {}", describe(&e))))?;
    let shape = signed_data_shape(&normalized).map_err(|e| match e {
        ShapeError::NotContentInfo(r) | ShapeError::Malformed(r) => malformed(r),
        ShapeError::NotSignedData(oid) => malformed(format!("a CMS {oid}, not SignedData")),
    })?;
    let [signer_info] = shape.signer_infos.as_slice() else {
        return Err(malformed(format!(
            "{} signers; a SCEP request has exactly one",
            shape.signer_infos.len()
        )));
    };
    let attrs = signer_info
        .signed_attrs
        .as_ref()
        .ok_or_else(|| malformed("the request has no signed attributes".to_string()))?;
    let transaction_id = first_value(attrs, TRANSACTION_ID)
        .ok_or_else(|| malformed("no transactionID".to_string()))?;
    let transaction_text = text(transaction_id.into())
        .ok_or_else(|| malformed("the transactionID is not a string".to_string()))?;
    let message_type = first_value(attrs, MESSAGE_TYPE)
        .and_then(|v| text(v.into()))
        .ok_or_else(|| malformed("no messageType".to_string()))?;
    let sender_nonce = first_value(attrs, SENDER_NONCE)
        .filter(|v| v.tag() == Tag::OctetString && !v.value().is_empty())
        .map(|v| v.value().to_vec())
        .ok_or_else(|| malformed("no senderNonce".to_string()))?;
    let mut request = PkiRequest {
        transaction_id: transaction_id.clone(),
        transaction_text,
        message_type,
        sender_nonce,
        signer: None,
        csr: None,
        problem: None,
        reply_cipher: Cipher::aes_256_cbc(),
    };
    // From here on, whatever is wrong is answered with a FAILURE CertRep.
    if let Err(p) = examine(ca, &p7, &mut request) {
        request.problem = Some(p);
    }
    Ok(request)
}

fn examine(ca: &ScepCa, p7: &Pkcs7, request: &mut PkiRequest) -> Result<(), Problem> {
    let internal = |e: openssl::error::ErrorStack| problem(FailInfo::BadRequest, describe(&e));
    let none = Stack::new().map_err(internal)?;
    let signer = p7
        .signers(&none, Pkcs7Flags::empty())
        .ok()
        .and_then(|s| s.into_iter().next())
        .and_then(|x| Certificate::from_x509(x).ok())
        .ok_or_else(|| {
            problem(
                FailInfo::BadMessageCheck,
                "the signer's certificate is not included",
            )
        })?;
    request.signer = Some(signer.clone());
    let store = X509StoreBuilder::new().map_err(internal)?.build();
    let mut envelope = Vec::new();
    p7.verify(
        &none,
        &store,
        None,
        Some(&mut envelope),
        Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
    )
    .map_err(|e| {
        problem(
            FailInfo::BadMessageCheck,
            format!("the request signature does not verify: {}", describe(&e)),
        )
    })?;
    // The answer is encrypted to the signer certificate by key transport, so its key must be
    // RSA (it is the CSR's RSA key unless the client signs with a separate one).
    let signer_is_rsa = signer
        .x509()
        .public_key()
        .is_ok_and(|key| key.id() == Id::RSA);
    if !signer_is_rsa {
        return Err(problem(
            FailInfo::BadAlg,
            "the signer certificate's key is not RSA; the answer is encrypted to it",
        ));
    }
    if request.message_type != PKCS_REQ {
        return Err(problem(
            FailInfo::BadRequest,
            format!(
                "messageType {} is not supported; GuardMDM answers PKCSReq (19) only",
                request.message_type
            ),
        ));
    }
    let (der, reply_cipher) = decrypt(ca, &envelope)?;
    request.reply_cipher = reply_cipher;
    // The CSR's own signature is the proof of possession of the key to certify (checked by
    // `parse_csr`), and the challenge authorizes it. The signer may hold another key: some
    // clients (mdmb) sign with a separate throw-away "SCEP SIGNER" certificate; the reply is
    // then encrypted to that certificate, the one that signed the request (RFC 8894 §3.3.2).
    request.csr = Some(parse_csr(&der)?);
    Ok(())
}

/// Decrypts the `pkcsPKIEnvelope` with the CA key; also returns the cipher for the reply.
fn decrypt(ca: &ScepCa, envelope: &[u8]) -> Result<(Vec<u8>, Cipher), Problem> {
    let cms = CmsContentInfo::from_der(envelope).map_err(|e| {
        problem(
            FailInfo::BadRequest,
            format!("the content is not a CMS EnvelopedData: {}", describe(&e)),
        )
    })?;
    let normalized = cms.to_der().map_err(|e| {
        problem(
            FailInfo::BadRequest,
            format!("the envelope: {}", describe(&e)),
        )
    })?;
    let algorithm = content_encryption_algorithm(&normalized)
        .ok_or_else(|| problem(FailInfo::BadRequest, "the content is not an EnvelopedData"))?;
    let reply_cipher = match algorithm {
        a if a == AES_128_CBC => Cipher::aes_128_cbc(),
        a if a == AES_192_CBC => Cipher::aes_192_cbc(),
        a if a == AES_256_CBC => Cipher::aes_256_cbc(),
        a if a == DES_EDE3_CBC => Cipher::des_ede3_cbc(),
        a if a == DES_CBC && ca.single_des => {
            legacy::load().map_err(|e| problem(FailInfo::BadAlg, e))?;
            Cipher::des_ede3_cbc()
        }
        a if a == DES_CBC => {
            return Err(problem(
                FailInfo::BadAlg,
                "the envelope uses single DES, which this CA does not accept",
            ));
        }
        other => {
            return Err(problem(
                FailInfo::BadAlg,
                format!("unsupported content-encryption algorithm {other}"),
            ));
        }
    };
    let plain = cms.decrypt(&ca.key, ca.certificate.x509()).map_err(|e| {
        problem(
            FailInfo::BadMessageCheck,
            format!(
                "the envelope does not decrypt with the CA key (encrypted to another \
                 certificate, or corrupt): {}",
                describe(&e)
            ),
        )
    })?;
    Ok((plain, reply_cipher))
}

/// `encryptedContentInfo.contentEncryptionAlgorithm` of a DER `ContentInfo` holding an
/// `EnvelopedData` (RFC 5652 §6.1).
pub(super) fn content_encryption_algorithm(der: &[u8]) -> Option<ObjectIdentifier> {
    use der::Decode as _;
    let info = cms::content_info::ContentInfo::from_der(der).ok()?;
    if info.content_type != ID_ENVELOPED_DATA {
        return None;
    }
    // version, [0] originatorInfo OPTIONAL, recipientInfos SET, encryptedContentInfo SEQUENCE
    let fields = elements(info.content.value()).ok()?;
    let encrypted = fields.iter().skip(1).find(|f| f.tag() == Tag::Sequence)?;
    let encrypted: cms::enveloped_data::EncryptedContentInfo = encrypted.decode_as().ok()?;
    Some(encrypted.content_enc_alg.oid)
}

/// The first value of a signed attribute.
fn first_value(attrs: &Attributes, oid: ObjectIdentifier) -> Option<&der::Any> {
    attrs
        .iter()
        .find(|a| a.oid == oid)
        .and_then(|a| a.values.iter().next())
}

//! Building a CMS `SignedData` with signed attributes of GuardMDM's choosing (RFC 5652 §5),
//! for SCEP `CertRep` messages, whose status travels in signed attributes (RFC 8894 §3.2.1).
//!
//! rust-openssl's `Pkcs7::sign` and `CmsContentInfo::sign` cannot add signed attributes, so
//! the structure is assembled from the RustCrypto `cms`/`der` types and OpenSSL does the
//! cryptography: the SHA-256 message digest and the RSA PKCS#1 v1.5 signature over the DER
//! `SET OF` signed attributes (RFC 5652 §5.4). The result is read back and verified by
//! OpenSSL's `PKCS7_verify` in the tests.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Any, ObjectIdentifier, OctetString, PrintableStringRef, SetOfVec, UtcTime};
use der::{Decode, Encode, Tag};
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{PKeyRef, Private};
use openssl::sign::Signer;
use openssl::x509::X509Ref;
use x509_cert::attr::Attribute;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::cms_shape::{ID_DATA, ID_SIGNED_DATA};
use crate::describe;

/// `id-sha256` (RFC 5754 §2.2).
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `rsaEncryption` (RFC 3370 §3.2): the signature algorithm OpenSSL itself writes.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-contentType` (RFC 5652 §11.1).
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// `id-messageDigest` (RFC 5652 §11.2).
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// `id-signingTime` (RFC 5652 §11.3).
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");

/// Building or signing failed; the message says which step.
#[derive(Debug)]
pub(crate) struct BuildError(pub(crate) String);

impl From<der::Error> for BuildError {
    fn from(err: der::Error) -> Self {
        Self(format!("ASN.1 encoding: {err}"))
    }
}

impl From<openssl::error::ErrorStack> for BuildError {
    fn from(err: openssl::error::ErrorStack) -> Self {
        Self(format!("OpenSSL: {}", describe(&err)))
    }
}

/// What to sign.
pub(crate) struct Message<'a> {
    /// The `eContent` octets (type `id-data`); `None` omits `eContent` (the signature then
    /// covers empty content, as a SCEP `FAILURE` reply requires).
    pub(crate) content: Option<&'a [u8]>,
    /// Signed attributes besides contentType, messageDigest and signingTime.
    pub(crate) attributes: Vec<Attribute>,
    /// The signer's certificate (included in `certificates`) and RSA key.
    pub(crate) signer: &'a X509Ref,
    pub(crate) key: &'a PKeyRef<Private>,
}

/// A DER `ContentInfo` holding the signed message, SHA-256 with RSA.
pub(crate) fn sign(message: Message<'_>) -> Result<Vec<u8>, BuildError> {
    let content = message.content.unwrap_or_default();
    let digest = hash(MessageDigest::sha256(), content)?;
    let mut attributes = vec![
        attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA)?)?,
        attribute(ID_MESSAGE_DIGEST, octets(&digest)?)?,
        attribute(ID_SIGNING_TIME, signing_time()?)?,
    ];
    attributes.extend(message.attributes);
    let signed_attrs = SetOfVec::try_from(attributes)?;

    let mut signer = Signer::new(MessageDigest::sha256(), message.key)?;
    signer.update(&signed_attrs.to_der()?)?;
    let signature = signer.sign_to_vec()?;

    let certificate = x509_cert::Certificate::from_der(&message.signer.to_der()?)?;
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: certificate.tbs_certificate.issuer.clone(),
            serial_number: certificate.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: algorithm(ID_SHA256, None),
        signed_attrs: Some(signed_attrs),
        signature_algorithm: algorithm(RSA_ENCRYPTION, Some(Any::null())),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![algorithm(ID_SHA256, None)])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: message
                .content
                .map(|c| Any::new(Tag::OctetString, c))
                .transpose()?,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(vec![
            CertificateChoices::Certificate(certificate),
        ])?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    content_info(&signed_data)
}

/// A certificates-only ("degenerate") `SignedData` (RFC 8894 §3.4): no content, no signer.
pub(crate) fn certificates_only(certificates: &[&X509Ref]) -> Result<Vec<u8>, BuildError> {
    let mut set = SetOfVec::new();
    for cert in certificates {
        set.insert(CertificateChoices::Certificate(
            x509_cert::Certificate::from_der(&cert.to_der()?)?,
        ))?;
    }
    let signed_data = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(set)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    content_info(&signed_data)
}

/// An attribute with a single value.
pub(crate) fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, BuildError> {
    let mut values = SetOfVec::new();
    values.insert(value)?;
    Ok(Attribute { oid, values })
}

/// A `PrintableString` value.
pub(crate) fn printable(text: &str) -> Result<Any, BuildError> {
    Ok(Any::encode_from(&PrintableStringRef::new(text)?)?)
}

/// An `OCTET STRING` value.
pub(crate) fn octets(bytes: &[u8]) -> Result<Any, BuildError> {
    Ok(Any::new(Tag::OctetString, bytes)?)
}

fn signing_time() -> Result<Any, BuildError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| BuildError("the system clock is before 1970".to_string()))?;
    Ok(Any::encode_from(&UtcTime::from_unix_duration(now)?)?)
}

fn algorithm(oid: ObjectIdentifier, parameters: Option<Any>) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid, parameters }
}

fn content_info(signed_data: &SignedData) -> Result<Vec<u8>, BuildError> {
    let info = ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(signed_data)?,
    };
    Ok(info.to_der()?)
}

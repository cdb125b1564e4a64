//! Reading the outline of a CMS `SignedData` (RFC 5652 §5.1): its content type, whether the
//! content is attached, and its `SignerInfo`s.
//!
//! OpenSSL verifies signatures, but the rust-openssl API neither says whether a signature is
//! detached nor exposes signed attributes, so GuardMDM reads those from the DER itself with
//! the RustCrypto `der`/`cms` types. The input is always OpenSSL's re-encoding of a structure
//! OpenSSL has already parsed, which turns BER (indefinite lengths, constructed strings, as some
//! clients send) into DER first. Certificates are skipped, not parsed, so an unusual certificate
//! in the set cannot make the outline unreadable.

use cms::content_info::ContentInfo;
use cms::signed_data::{EncapsulatedContentInfo, SignerInfo};
use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Reader, SliceReader, Tag, Tagged};

/// `id-signedData` (RFC 5652 §5.1).
pub(crate) const ID_SIGNED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// `id-data` (RFC 5652 §4).
pub(crate) const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// `id-envelopedData` (RFC 5652 §6.1).
pub(crate) const ID_ENVELOPED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");

/// The parts of a `SignedData` GuardMDM inspects.
pub(crate) struct SignedDataShape {
    /// `eContent`'s octets, `None` for a detached signature or a certificates-only message.
    pub(crate) econtent: Option<Vec<u8>>,
    /// Every `SignerInfo`, decoded.
    pub(crate) signer_infos: Vec<SignerInfo>,
}

/// Why the outline could not be read.
#[derive(Debug)]
pub(crate) enum ShapeError {
    /// Not a `ContentInfo`.
    NotContentInfo(String),
    /// A `ContentInfo` of another type.
    NotSignedData(ObjectIdentifier),
    /// A `SignedData` whose fields do not decode.
    Malformed(String),
}

/// Reads the outline of a DER `ContentInfo` that should hold a `SignedData`.
pub(crate) fn signed_data_shape(der: &[u8]) -> Result<SignedDataShape, ShapeError> {
    let info = ContentInfo::from_der(der).map_err(|e| ShapeError::NotContentInfo(e.to_string()))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(ShapeError::NotSignedData(info.content_type));
    }
    let malformed = |what: &str, e: der::Error| ShapeError::Malformed(format!("{what}: {e}"));
    if info.content.tag() != Tag::Sequence {
        return Err(ShapeError::Malformed(
            "SignedData is not a SEQUENCE".to_string(),
        ));
    }
    let fields = elements(info.content.value()).map_err(|e| malformed("SignedData", e))?;
    // version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos
    let (Some(encap), Some(signer_infos)) = (fields.get(2), fields.last()) else {
        return Err(ShapeError::Malformed(
            "SignedData has too few fields".to_string(),
        ));
    };
    if fields.len() < 4 || signer_infos.tag() != Tag::Set {
        return Err(ShapeError::Malformed(
            "SignedData has no signerInfos SET".to_string(),
        ));
    }
    let encap: EncapsulatedContentInfo = encap
        .decode_as()
        .map_err(|e| malformed("encapContentInfo", e))?;
    let econtent = match encap.econtent {
        None => None,
        Some(any) if any.tag() == Tag::OctetString => Some(any.value().to_vec()),
        Some(any) => {
            return Err(ShapeError::Malformed(format!(
                "eContent is a {}, not an OCTET STRING",
                any.tag()
            )));
        }
    };
    let signer_infos = elements(signer_infos.value())
        .map_err(|e| malformed("signerInfos", e))?
        .into_iter()
        .map(|any| any.decode_as::<SignerInfo>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed("SignerInfo", e))?;
    Ok(SignedDataShape {
        econtent,
        signer_infos,
    })
}

/// The TLV elements inside a constructed value, in order.
pub(crate) fn elements(contents: &[u8]) -> der::Result<Vec<AnyRef<'_>>> {
    let mut reader = SliceReader::new(contents)?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(AnyRef::decode(&mut reader)?);
    }
    Ok(out)
}

//! Building the `CertRep` (RFC 8894 §3.3.2).

use openssl::asn1::Asn1Time;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::stack::Stack;
use openssl::x509::{X509, X509Req};

use super::request::{
    FAIL_INFO, MESSAGE_TYPE, PKI_STATUS, PkiRequest, Problem, RECIPIENT_NONCE, SENDER_NONCE,
    TRANSACTION_ID,
};
use super::{FailInfo, ISSUED_DAYS, PkiOutcome, PkiResponse, Rejection, ScepCa, ScepError};
use crate::certificate::Certificate;
use crate::describe;
use crate::pki::{self, Signer, Template, Usage};
use crate::signed_data::{self, BuildError, attribute, octets, printable};

/// `messageType` CertRep.
const CERT_REP: &str = "3";
/// `pkiStatus` values.
const SUCCESS: &str = "0";
const FAILURE: &str = "2";
/// Length of the reply's `senderNonce`.
const NONCE_LEN: usize = 16;

impl From<BuildError> for ScepError {
    fn from(err: BuildError) -> Self {
        Self::Internal(err.0)
    }
}

impl From<openssl::error::ErrorStack> for ScepError {
    fn from(err: openssl::error::ErrorStack) -> Self {
        Self::Internal(describe(&err))
    }
}

pub(super) fn respond(
    ca: &ScepCa,
    request: &PkiRequest,
    decision: Result<(), Rejection>,
) -> Result<PkiResponse, ScepError> {
    let refusal = request.problem.clone().or_else(|| {
        decision.err().map(|r| Problem {
            fail_info: FailInfo::BadRequest,
            reason: format!("challenge rejected: {}", r.reason()),
        })
    });
    let (der, outcome) = match refusal {
        Some(p) => (
            failure(ca, request, p.fail_info)?,
            PkiOutcome::Failed {
                fail_info: p.fail_info,
                reason: p.reason,
            },
        ),
        None => {
            let (der, issued) = success(ca, request)?;
            (der, PkiOutcome::Issued(issued))
        }
    };
    Ok(PkiResponse {
        der,
        transaction_id: request.transaction_id().to_string(),
        outcome,
    })
}

/// SUCCESS: issue, wrap the certificate in a certificates-only SignedData, encrypt that to the
/// requester's certificate, sign.
fn success(ca: &ScepCa, request: &PkiRequest) -> Result<(Vec<u8>, Certificate), ScepError> {
    let (Some(csr), Some(requester)) = (request.csr.as_ref(), request.signer.as_ref()) else {
        return Err(ScepError::Internal(
            "a request without a problem has no CSR or signer".to_string(),
        ));
    };
    let issued = issue(ca, &csr.request)?;
    let degenerate = signed_data::certificates_only(&[&issued])?;
    let mut recipients = Stack::new()?;
    recipients.push(requester.x509().clone())?;
    let envelope = CmsContentInfo::encrypt(
        &recipients,
        &degenerate,
        request.reply_cipher,
        CMSOptions::BINARY,
    )
    .and_then(|cms| cms.to_der())?;
    let der = signed_data::sign(signed_data::Message {
        content: Some(&envelope),
        attributes: reply_attributes(request, SUCCESS, None)?,
        signer: ca.certificate.x509(),
        key: &ca.key,
    })?;
    let issued = Certificate::from_x509(issued).map_err(|e| ScepError::Internal(e.to_string()))?;
    Ok((der, issued))
}

/// FAILURE: signed attributes only; the pkcsPKIEnvelope is omitted (RFC 8894 §3.3.2).
fn failure(ca: &ScepCa, request: &PkiRequest, fail_info: FailInfo) -> Result<Vec<u8>, ScepError> {
    Ok(signed_data::sign(signed_data::Message {
        content: None,
        attributes: reply_attributes(request, FAILURE, Some(fail_info))?,
        signer: ca.certificate.x509(),
        key: &ca.key,
    })?)
}

fn reply_attributes(
    request: &PkiRequest,
    status: &str,
    fail_info: Option<FailInfo>,
) -> Result<Vec<x509_cert::attr::Attribute>, ScepError> {
    let mut nonce = [0u8; NONCE_LEN];
    openssl::rand::rand_bytes(&mut nonce)?;
    let mut attributes = vec![
        attribute(MESSAGE_TYPE, printable(CERT_REP)?)?,
        attribute(PKI_STATUS, printable(status)?)?,
        attribute(SENDER_NONCE, octets(&nonce)?)?,
        attribute(RECIPIENT_NONCE, octets(&request.sender_nonce)?)?,
        // Echoed exactly as received, in whatever string type the client chose.
        attribute(TRANSACTION_ID, request.transaction_id.clone())?,
    ];
    if let Some(fail_info) = fail_info {
        attributes.push(attribute(FAIL_INFO, printable(fail_info.code())?)?);
    }
    Ok(attributes)
}

/// Issues a device identity for `csr`: its subject and public key, a random 128-bit
/// serial, valid [`ISSUED_DAYS`] (never past the CA), `CA:FALSE`, key usage
/// digitalSignature and keyEncipherment, extended key usage clientAuth, signed with
/// SHA-256. Requested extensions are ignored.
fn issue(ca: &ScepCa, csr: &X509Req) -> Result<X509, openssl::error::ErrorStack> {
    let public_key = csr.public_key()?;
    let year = pki::time_from_now(i64::from(ISSUED_DAYS) * 86_400)?;
    let ca_end = Asn1Time::from_unix(ca.certificate.not_after().unix_timestamp())?;
    let not_after = if year > ca_end { ca_end } else { year };
    let template = Template {
        subject: csr.subject_name(),
        public_key: &public_key,
        not_before: pki::time_from_now(-pki::BACKDATE_SECONDS)?,
        not_after,
        usage: Usage::ClientIdentity,
    };
    pki::issue(&template, &Signer::Ca(ca.certificate.x509(), &ca.key))
}

//! Getting an MDM push certificate from Apple: the certificate request GuardMDM makes, the
//! signature an MDM vendor adds to it, and a stand-in for Apple's push certificate portal.
//!
//! Apple's portal (identity.apple.com) issues an MDM push certificate for a PKCS#10
//! certificate request only when an MDM vendor vouches for it: the vendor signs the request's
//! DER with the private key of its "MDM CSR" certificate (issued by Apple through the Apple
//! Developer Enterprise Program) and sends the portal an XML property list, base64-encoded,
//! holding three strings:
//!
//! - `PushCertRequestCSR`: the request, base64 of its DER;
//! - `PushCertCertificateChain`: PEM, the vendor certificate, then the certificates up to
//!   Apple's root (Apple's intermediate, then Apple Root CA);
//! - `PushCertSignature`: base64 of the SHA-256 with RSA (PKCS#1 v1.5) signature over the
//!   request's DER, made with the vendor key.
//!
//! [`generate_push_request`] makes the key and request (the key stays with GuardMDM, sealed);
//! [`VendorSigner`] checks a vendor's key and chain and writes the signed request;
//! [`PushPortal`] issues push certificates for requests the way Apple's portal does, for
//! simulators, the tests and the demo (Apple's services would not trust it).

use base64::Engine as _;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509Name, X509NameBuilder, X509Req, X509ReqBuilder, X509VerifyResult};
use secrecy::SecretString;
use time::OffsetDateTime;

use crate::certificate::{Certificate, one_line};
use crate::describe;
use crate::error_queue::verdict;
use crate::pki::{self, Signer, Template, Usage};

/// RSA modulus size of the push certificate's key.
pub const PUSH_KEY_BITS: u32 = 2048;

/// The subject common name of GuardMDM's requests (Apple's portal replaces the subject with
/// the topic it assigns).
pub const REQUEST_COMMON_NAME: &str = "GuardMDM MDM push certificate";

/// Where Apple publishes its intermediate and root certificates.
pub const APPLE_CERTIFICATE_AUTHORITY_URL: &str = "https://www.apple.com/certificateauthority/";

/// Why a request could not be made, read or signed. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushRequestError {
    /// OpenSSL failed while making or signing something.
    #[error("could not make the push certificate request: {0}")]
    Generate(String),
    /// The certificate request is not a readable, self-consistent PKCS#10 request.
    #[error("the certificate request cannot be used: {0}")]
    Request(String),
    /// The vendor certificate file holds no readable certificate.
    #[error("the vendor certificate file cannot be read: {0}")]
    VendorCertificate(String),
    /// The vendor key cannot be read.
    #[error(
        "the vendor private key cannot be read: {0} (an encrypted key must be decrypted first: openssl pkey -in vendor.key -out vendor-plain.key)"
    )]
    VendorKey(String),
    /// No certificate given is the vendor key's.
    #[error(
        "none of the {given} certificates given belongs to the vendor private key: --vendor-cert must hold the MDM vendor certificate issued for this key (developer.apple.com, Certificates, Identifiers & Profiles: an \"MDM CSR\" certificate)"
    )]
    VendorKeyMismatch {
        /// How many certificates were given.
        given: usize,
    },
    /// The vendor chain is incomplete, broken or out of date.
    #[error("{0}")]
    Chain(String),
}

fn generate_error(e: &openssl::error::ErrorStack) -> PushRequestError {
    PushRequestError::Generate(describe(e))
}

/// A new key and the certificate request for it.
pub struct PushRequest {
    /// The PKCS#10 request, PEM (`CERTIFICATE REQUEST`).
    pub csr_pem: String,
    /// The RSA private key, PKCS#8 PEM. Never shown; sealed before it is stored.
    pub private_key_pem: SecretString,
    /// SHA-256 (hex) of the public key's DER `SubjectPublicKeyInfo`: what a certificate
    /// issued for this request carries too.
    pub public_key_sha256: String,
}

impl std::fmt::Debug for PushRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRequest")
            .field("public_key_sha256", &self.public_key_sha256)
            .field("private_key_pem", &"[REDACTED]")
            .finish()
    }
}

/// Makes an RSA-2048 key and a PKCS#10 request for it (SHA-256 with RSA), subject
/// `CN=`[`REQUEST_COMMON_NAME`]`, O=GuardMDM`.
///
/// # Errors
/// [`PushRequestError::Generate`] when OpenSSL fails.
pub fn generate_push_request() -> Result<PushRequest, PushRequestError> {
    let _queue = crate::error_queue::isolate();
    let key = pki::rsa_key(PUSH_KEY_BITS).map_err(|e| generate_error(&e))?;
    /// The request, the private key and the public key, encoded.
    type Encoded = (Vec<u8>, Vec<u8>, Vec<u8>);
    let make = || -> Result<Encoded, openssl::error::ErrorStack> {
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", REQUEST_COMMON_NAME)?;
        name.append_entry_by_text("O", "GuardMDM")?;
        let name = name.build();
        let mut req = X509ReqBuilder::new()?;
        req.set_version(0)?;
        req.set_subject_name(&name)?;
        req.set_pubkey(&key)?;
        req.sign(&key, MessageDigest::sha256())?;
        let req = req.build();
        Ok((
            req.to_pem()?,
            key.private_key_to_pem_pkcs8()?,
            key.public_key_to_der()?,
        ))
    };
    let (csr, private, public) = make().map_err(|e| generate_error(&e))?;
    Ok(PushRequest {
        csr_pem: String::from_utf8_lossy(&csr).into_owned(),
        private_key_pem: SecretString::from(String::from_utf8_lossy(&private).into_owned()),
        public_key_sha256: crate::digest::sha256_hex(&public),
    })
}

/// SHA-256 (hex) of the public key of a PEM private key, to match it with certificates.
///
/// # Errors
/// [`PushRequestError::Request`] when the key cannot be read.
pub fn public_key_sha256_of_private_key(key_pem: &[u8]) -> Result<String, PushRequestError> {
    let _queue = crate::error_queue::isolate();
    let key =
        PKey::private_key_from_pem(key_pem).map_err(|e| PushRequestError::Request(describe(&e)))?;
    let der = key
        .public_key_to_der()
        .map_err(|e| PushRequestError::Request(describe(&e)))?;
    Ok(crate::digest::sha256_hex(&der))
}

/// Reads a PEM request and checks its own signature.
fn read_request(csr_pem: &[u8]) -> Result<X509Req, PushRequestError> {
    let req = X509Req::from_pem(csr_pem).map_err(|e| {
        PushRequestError::Request(format!(
            "not a PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----): {}",
            describe(&e)
        ))
    })?;
    let key = req
        .public_key()
        .map_err(|e| PushRequestError::Request(describe(&e)))?;
    if !verdict(req.verify(&key)) {
        return Err(PushRequestError::Request(
            "its signature does not verify with its own public key (corrupt or altered)"
                .to_string(),
        ));
    }
    Ok(req)
}

/// An MDM vendor's signing certificate, its chain up to a root, and its private key, checked
/// to fit together: the key is the certificate's, each certificate was issued and signed by
/// the next, the last is a self-signed root, and all are valid now.
pub struct VendorSigner {
    key: PKey<Private>,
    /// Vendor certificate first, root last.
    chain: Vec<X509>,
    notes: Vec<String>,
}

impl std::fmt::Debug for VendorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorSigner")
            .field("chain", &self.chain_subjects())
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl VendorSigner {
    /// From PEM texts holding the vendor certificate and its chain, in any order and spread
    /// over any number of files (`--vendor-cert`, `--vendor-chain`), and the vendor's PEM
    /// private key (unencrypted). When the chain stops at a certificate Apple Root CA issued,
    /// GuardMDM's copy of Apple Root CA completes it.
    ///
    /// # Errors
    /// [`PushRequestError`] saying what is missing or wrong, and where to get it.
    pub fn new(certificates: &[&[u8]], key_pem: &[u8]) -> Result<Self, PushRequestError> {
        Self::at(certificates, key_pem, OffsetDateTime::now_utc())
    }

    fn at(
        certificates: &[&[u8]],
        key_pem: &[u8],
        now: OffsetDateTime,
    ) -> Result<Self, PushRequestError> {
        let _queue = crate::error_queue::isolate();
        let key = PKey::private_key_from_pem(key_pem)
            .map_err(|e| PushRequestError::VendorKey(describe(&e)))?;
        let mut pool = certificate_pool(certificates)?;
        let vendor_at = pool
            .iter()
            .position(|c| c.public_key().is_ok_and(|p| p.public_eq(&key)))
            .ok_or(PushRequestError::VendorKeyMismatch { given: pool.len() })?;
        let vendor = pool.remove(vendor_at);
        let apple_root =
            X509::from_pem(crate::cms_verify::APPLE_ROOT_CA_PEM).map_err(|e| generate_error(&e))?;
        let chain = chain_up_to_root(vendor, pool, &apple_root)?;
        check_valid_at(&chain, now)?;
        let mut notes = Vec::new();
        if chain.last().and_then(|c| c.to_der().ok()) != apple_root.to_der().ok() {
            notes.push(format!(
                "the vendor chain ends in \"{}\", not Apple Root CA: Apple's push certificate \
                 portal accepts only MDM vendor certificates Apple issued",
                chain
                    .last()
                    .map(|c| one_line(c.subject_name()))
                    .unwrap_or_default()
            ));
        }
        Ok(Self { key, chain, notes })
    }

    /// The chain's subjects, vendor certificate first.
    pub fn chain_subjects(&self) -> Vec<String> {
        self.chain
            .iter()
            .map(|c| one_line(c.subject_name()))
            .collect()
    }

    /// Things worth telling the admin that do not stop signing.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The signed push certificate request for `csr_pem`, as Apple's portal takes it: the
    /// XML property list described in the [module documentation](self), base64-encoded.
    ///
    /// # Errors
    /// [`PushRequestError::Request`] for an unreadable request; `Generate` when OpenSSL fails.
    pub fn sign_request(&self, csr_pem: &[u8]) -> Result<String, PushRequestError> {
        let _queue = crate::error_queue::isolate();
        let req = read_request(csr_pem)?;
        let der = req.to_der().map_err(|e| generate_error(&e))?;
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &self.key)
            .map_err(|e| generate_error(&e))?;
        signer.update(&der).map_err(|e| generate_error(&e))?;
        let signature = signer.sign_to_vec().map_err(|e| generate_error(&e))?;
        let mut chain_pem = String::new();
        for cert in &self.chain {
            let pem = cert.to_pem().map_err(|e| generate_error(&e))?;
            chain_pem.push_str(&String::from_utf8_lossy(&pem));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut dict = plist::Dictionary::new();
        dict.insert(
            "PushCertRequestCSR".to_string(),
            plist::Value::String(b64.encode(&der)),
        );
        dict.insert(
            "PushCertCertificateChain".to_string(),
            plist::Value::String(chain_pem),
        );
        dict.insert(
            "PushCertSignature".to_string(),
            plist::Value::String(b64.encode(&signature)),
        );
        let mut xml = Vec::new();
        plist::Value::Dictionary(dict)
            .to_writer_xml(&mut xml)
            .map_err(|e| PushRequestError::Generate(e.to_string()))?;
        Ok(b64.encode(&xml))
    }
}

/// Every certificate of the PEM texts, each once.
fn certificate_pool(certificates: &[&[u8]]) -> Result<Vec<X509>, PushRequestError> {
    let mut pool: Vec<X509> = Vec::new();
    for pem in certificates {
        for cert in Certificate::chain_from_pem(pem)
            .map_err(|e| PushRequestError::VendorCertificate(e.to_string()))?
        {
            let x509 = cert.x509().clone();
            if !pool.iter().any(|c| c.to_der().ok() == x509.to_der().ok()) {
                pool.push(x509);
            }
        }
    }
    Ok(pool)
}

/// The chain from `vendor` up to a self-signed root: each certificate's issuer taken from
/// `pool`, or Apple Root CA when it issued the last one. An issuer that is missing, or whose
/// key did not sign the certificate, is an error saying where to get the right one.
fn chain_up_to_root(
    vendor: X509,
    mut pool: Vec<X509>,
    apple_root: &X509,
) -> Result<Vec<X509>, PushRequestError> {
    let mut chain = vec![vendor];
    while let Some(current) = chain.last() {
        if current.issued(current) == X509VerifyResult::OK
            && verdict(current.public_key().and_then(|k| current.verify(&k)))
        {
            break;
        }
        let issuer = pool
            .iter()
            .position(|c| c.issued(current) == X509VerifyResult::OK);
        let next = match issuer {
            Some(at) => pool.remove(at),
            None if apple_root.issued(current) == X509VerifyResult::OK => apple_root.clone(),
            None => {
                return Err(PushRequestError::Chain(format!(
                    "the vendor certificate chain is incomplete: no certificate given issued \
                     \"{}\" (its issuer is \"{}\"). Add the issuer's certificate (PEM) to the \
                     --vendor-cert file or pass it with --vendor-chain: Apple's intermediate \
                     (Apple Worldwide Developer Relations Certification Authority) and Apple \
                     Root CA are published at {APPLE_CERTIFICATE_AUTHORITY_URL}",
                    one_line(current.subject_name()),
                    one_line(current.issuer_name()),
                )));
            }
        };
        if !verdict(next.public_key().and_then(|k| current.verify(&k))) {
            return Err(PushRequestError::Chain(format!(
                "the vendor certificate chain is broken: \"{}\" names \"{}\" as its issuer, \
                 but that certificate's key did not sign it (a different certificate with the \
                 same name?). Use the issuer certificates Apple publishes at \
                 {APPLE_CERTIFICATE_AUTHORITY_URL}",
                one_line(current.subject_name()),
                one_line(next.subject_name()),
            )));
        }
        chain.push(next);
    }
    Ok(chain)
}

/// Every certificate of the chain must be valid `now`; the error names the first one that is
/// not, and how to replace it.
fn check_valid_at(chain: &[X509], now: OffsetDateTime) -> Result<(), PushRequestError> {
    for (at, cert) in chain.iter().enumerate() {
        let facts = Certificate::from_x509(cert.clone())
            .map_err(|e| PushRequestError::VendorCertificate(e.to_string()))?;
        if !facts.is_valid_at(now) {
            let first = at == 0;
            let what = if first {
                "The MDM vendor certificate".to_string()
            } else {
                format!("The chain certificate \"{}\"", facts.subject())
            };
            let fix = if first {
                "make a new MDM CSR certificate at developer.apple.com".to_string()
            } else {
                format!("get the current one from {APPLE_CERTIFICATE_AUTHORITY_URL}")
            };
            return Err(PushRequestError::Chain(format!(
                "{what} is valid only from {} to {}: {fix}",
                facts.not_before(),
                facts.not_after()
            )));
        }
    }
    Ok(())
}

/// `UID=<topic>, CN=APSP:<uuid>`: the subject Apple gives MDM push certificates.
pub(crate) fn push_subject(topic: &str) -> Result<X509Name, openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::USERID, topic)?;
    let short: String = topic
        .rsplit('.')
        .next()
        .unwrap_or(topic)
        .chars()
        .take(59)
        .collect();
    name.append_entry_by_text("CN", &format!("APSP:{short}"))?;
    Ok(name.build())
}

/// A stand-in for Apple's push certificate portal: a CA that issues MDM push certificates
/// for certificate requests, for simulators, the tests and the demo. Apple's services would
/// not trust what it issues; a simulated APNs does.
pub struct PushPortal {
    cert: X509,
    key: PKey<Private>,
}

impl std::fmt::Debug for PushPortal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushPortal")
            .field("subject", &one_line(self.cert.subject_name()))
            .finish()
    }
}

impl PushPortal {
    /// A portal with a new CA.
    ///
    /// # Errors
    /// [`PushRequestError::Generate`] when OpenSSL fails.
    pub fn generate() -> Result<Self, PushRequestError> {
        let _queue = crate::error_queue::isolate();
        let make = || -> Result<Self, openssl::error::ErrorStack> {
            let key = pki::rsa_key(PUSH_KEY_BITS)?;
            let subject = pki::name("Simulated Apple Push Portal CA", Some("GuardMDM"))?;
            let template = Template {
                subject: &subject,
                public_key: &key,
                not_before: pki::time_from_now(-pki::BACKDATE_SECONDS)?,
                not_after: pki::time_from_now(10 * 365 * 86_400)?,
                usage: Usage::IssuingCa,
            };
            let cert = pki::issue(&template, &Signer::SelfSigned(&key))?;
            Ok(Self { cert, key })
        };
        make().map_err(|e| generate_error(&e))
    }

    /// Issues a push certificate for `topic` (`com.apple.mgmt.External.<uuid>`) to the key
    /// of `csr_pem`, valid for `days` from now (Apple: a year), as PEM.
    ///
    /// # Errors
    /// [`PushRequestError::Request`] for an unreadable request.
    pub fn issue(
        &self,
        csr_pem: &[u8],
        topic: &str,
        days: i64,
    ) -> Result<String, PushRequestError> {
        let _queue = crate::error_queue::isolate();
        let req = read_request(csr_pem)?;
        let public = req
            .public_key()
            .map_err(|e| PushRequestError::Request(describe(&e)))?;
        let make = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
            let subject = push_subject(topic)?;
            let template = Template {
                subject: &subject,
                public_key: &public,
                not_before: pki::time_from_now(-pki::BACKDATE_SECONDS)?,
                not_after: pki::time_from_now(days.saturating_mul(86_400))?,
                usage: Usage::ClientIdentity,
            };
            pki::issue(&template, &Signer::Ca(&self.cert, &self.key))?.to_pem()
        };
        let pem = make().map_err(|e| generate_error(&e))?;
        Ok(String::from_utf8_lossy(&pem).into_owned())
    }
}

#[cfg(test)]
mod tests;

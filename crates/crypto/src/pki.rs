//! Certificate issuance shared by the SCEP CA, the profile-signing identity and the tests:
//! one place decides serial numbers, validity and the extensions of each kind of certificate.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509Name, X509NameBuilder, X509NameRef, X509Ref};

/// How far back `notBefore` is set, so a device whose clock runs a little behind accepts a
/// certificate issued a moment ago.
pub(crate) const BACKDATE_SECONDS: i64 = 5 * 60;

/// What a certificate is for; decides its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Usage {
    /// A CA that issues end-entity certificates only and, for SCEP, also signs and decrypts
    /// protocol messages: `CA:TRUE, pathlen:0`; keyCertSign, cRLSign, digitalSignature,
    /// keyEncipherment.
    IssuingCa,
    /// A CA that may issue other CAs (the device CA of simulators, and tests, build Apple-like
    /// chains with it): `CA:TRUE`; keyCertSign, cRLSign.
    RootCa,
    /// A device identity: `CA:FALSE`; digitalSignature, keyEncipherment; extendedKeyUsage
    /// clientAuth.
    ClientIdentity,
    /// A signing-only end entity (profile signing): `CA:FALSE`; digitalSignature.
    Signing,
}

/// Who signs the new certificate.
pub(crate) enum Signer<'a> {
    /// The subject's own key: a self-signed certificate.
    SelfSigned(&'a PKeyRef<Private>),
    /// An issuing CA.
    Ca(&'a X509Ref, &'a PKeyRef<Private>),
}

/// Everything that varies between the certificates GuardMDM issues.
pub(crate) struct Template<'a, T: HasPublic> {
    pub(crate) subject: &'a X509NameRef,
    pub(crate) public_key: &'a PKeyRef<T>,
    pub(crate) not_before: Asn1Time,
    pub(crate) not_after: Asn1Time,
    pub(crate) usage: Usage,
}

/// A fresh RSA key of `bits` bits.
pub(crate) fn rsa_key(bits: u32) -> Result<PKey<Private>, ErrorStack> {
    PKey::from_rsa(Rsa::generate(bits)?)
}

/// `CN=<common_name>` preceded by `O=<organisation>` when one is given.
pub(crate) fn name(common_name: &str, organisation: Option<&str>) -> Result<X509Name, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    if let Some(org) = organisation {
        name.append_entry_by_text("O", org)?;
    }
    name.append_entry_by_text("CN", common_name)?;
    Ok(name.build())
}

/// A positive random serial of up to 128 bits, never zero (RFC 5280 §4.1.2.2).
pub(crate) fn random_serial() -> Result<Asn1Integer, ErrorStack> {
    let mut serial = BigNum::new()?;
    serial.rand(128, MsbOption::MAYBE_ZERO, false)?;
    if serial.num_bits() == 0 {
        serial.add_word(1)?;
    }
    serial.to_asn1_integer()
}

/// `now + seconds` (negative for the past), as an ASN.1 time.
pub(crate) fn time_from_now(seconds: i64) -> Result<Asn1Time, ErrorStack> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Asn1Time::from_unix(now.saturating_add(seconds))
}

/// Builds and signs (SHA-256) a certificate from `template`.
pub(crate) fn issue<T: HasPublic>(
    template: &Template<'_, T>,
    signer: &Signer<'_>,
) -> Result<X509, ErrorStack> {
    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    builder.set_serial_number(random_serial()?.as_ref())?;
    builder.set_subject_name(template.subject)?;
    let issuer_name = match signer {
        Signer::SelfSigned(_) => template.subject,
        Signer::Ca(ca, _) => ca.subject_name(),
    };
    builder.set_issuer_name(issuer_name)?;
    builder.set_not_before(&template.not_before)?;
    builder.set_not_after(&template.not_after)?;
    builder.set_pubkey(template.public_key)?;
    add_extensions(&mut builder, template.usage, signer)?;
    let key = match signer {
        Signer::SelfSigned(key) | Signer::Ca(_, key) => key,
    };
    builder.sign(key, MessageDigest::sha256())?;
    Ok(builder.build())
}

fn add_extensions(
    builder: &mut X509Builder,
    usage: Usage,
    signer: &Signer<'_>,
) -> Result<(), ErrorStack> {
    let (constraints, key_usage) = match usage {
        Usage::RootCa => (
            BasicConstraints::new().critical().ca().build()?,
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        ),
        Usage::IssuingCa => (
            BasicConstraints::new().critical().ca().pathlen(0).build()?,
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .digital_signature()
                .key_encipherment()
                .build()?,
        ),
        Usage::ClientIdentity => (
            BasicConstraints::new().critical().build()?,
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()?,
        ),
        Usage::Signing => (
            BasicConstraints::new().critical().build()?,
            KeyUsage::new().critical().digital_signature().build()?,
        ),
    };
    builder.append_extension(constraints)?;
    builder.append_extension(key_usage)?;
    if usage == Usage::ClientIdentity {
        builder.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
    }
    let issuer_cert = match signer {
        Signer::SelfSigned(_) => None,
        Signer::Ca(ca, _) => Some(*ca),
    };
    let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(issuer_cert, None))?;
    builder.append_extension(ski)?;
    if issuer_cert.is_some() {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&builder.x509v3_context(issuer_cert, None))?;
        builder.append_extension(aki)?;
    }
    Ok(())
}

//! Test certificates: CAs, intermediates and leaves with chosen validity, built with OpenSSL.

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::pki::{self, Signer, Template, Usage};

/// A certificate and its key.
pub(crate) struct Pair {
    pub(crate) cert: X509,
    pub(crate) key: PKey<Private>,
}

const DAY: i64 = 86_400;

/// Test chains use RSA-1024: key generation dominates the suite's run time and these tests are
/// about CMS structure and chain logic, not key strength (the SCEP tests use 2048 bits, the
/// minimum the CA certifies).
const TEST_KEY_BITS: u32 = 1024;

/// A self-signed root CA valid from yesterday for a year.
pub(crate) fn root(cn: &str) -> Pair {
    make(cn, None, Usage::RootCa, -DAY, 365 * DAY)
}

/// A CA issued by `parent` that issues end entities only.
pub(crate) fn intermediate(parent: &Pair, cn: &str) -> Pair {
    make(cn, Some(parent), Usage::IssuingCa, -DAY, 365 * DAY)
}

/// A client identity issued by `parent`, valid from yesterday for a year.
pub(crate) fn leaf(parent: &Pair, cn: &str) -> Pair {
    make(cn, Some(parent), Usage::ClientIdentity, -DAY, 365 * DAY)
}

/// A certificate valid between `from` and `until` seconds relative to now.
pub(crate) fn make(cn: &str, parent: Option<&Pair>, usage: Usage, from: i64, until: i64) -> Pair {
    let key = pki::rsa_key(TEST_KEY_BITS).unwrap();
    let subject = pki::name(cn, Some("GuardMDM Test")).unwrap();
    let template = Template {
        subject: &subject,
        public_key: &key,
        not_before: pki::time_from_now(from).unwrap(),
        not_after: pki::time_from_now(until).unwrap(),
        usage,
    };
    let signer = match parent {
        None => Signer::SelfSigned(&key),
        Some(p) => Signer::Ca(&p.cert, &p.key),
    };
    let cert = pki::issue(&template, &signer).unwrap();
    Pair { cert, key }
}

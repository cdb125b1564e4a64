//! Message authentication and hashing for Apple's DEP protocol: HMAC-SHA1 for OAuth 1.0a
//! signatures (`docs/protocol.md` §2.1, RFC 5849 §3.4.2) and SHA-256 for identifiers such as
//! `org_id_hash` (§3.1); SHA-1 and MD5 only for the fingerprints older formats carry.

use openssl::hash::{MessageDigest, hash};
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// HMAC-SHA1 of `data` under `key` (20 bytes). An empty key is valid, as RFC 2104 allows.
///
/// OpenSSL does not fail on these inputs in practice; should it, the result is empty, which
/// never equals a real signature.
#[must_use]
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let _queue = crate::error_queue::isolate();
    // OpenSSL refuses an empty HMAC key. RFC 2104 pads the key with zeros to the block size,
    // so an empty key and a single zero byte are the same key.
    let key = if key.is_empty() { &[0u8][..] } else { key };
    let mac = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let key = PKey::hmac(key)?;
        let mut signer = Signer::new(MessageDigest::sha1(), &key)?;
        signer.update(data)?;
        signer.sign_to_vec()
    };
    mac().unwrap_or_default()
}

/// SHA-1 of `data` (20 bytes), for fingerprints that older formats still use (a SCEP
/// payload's `CAFingerprint`); empty only if OpenSSL fails.
#[must_use]
pub fn sha1(data: &[u8]) -> Vec<u8> {
    let _queue = crate::error_queue::isolate();
    hash(MessageDigest::sha1(), data)
        .map(|d| d.to_vec())
        .unwrap_or_default()
}

/// MD5 of `data` (16 bytes), for legacy fingerprints only (a SCEP payload's
/// `CAFingerprint`); empty only if OpenSSL fails.
#[must_use]
pub fn md5(data: &[u8]) -> Vec<u8> {
    let _queue = crate::error_queue::isolate();
    hash(MessageDigest::md5(), data)
        .map(|d| d.to_vec())
        .unwrap_or_default()
}

/// SHA-256 of `data` (32 bytes); empty only if OpenSSL fails, which it does not in practice.
#[must_use]
pub fn sha256(data: &[u8]) -> Vec<u8> {
    let _queue = crate::error_queue::isolate();
    hash(MessageDigest::sha256(), data)
        .map(|d| d.to_vec())
        .unwrap_or_default()
}

/// SHA-256 of `data` as lower-case hex (64 characters).
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    sha256(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills `buf` from OpenSSL's cryptographically secure generator.
///
/// # Errors
/// When OpenSSL's generator fails.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), openssl::error::ErrorStack> {
    let _queue = crate::error_queue::isolate();
    openssl::rand::rand_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_and_random_bytes() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (mut a, mut b) = ([0_u8; 32], [0_u8; 32]);
        random_bytes(&mut a).unwrap();
        random_bytes(&mut b).unwrap();
        assert_ne!(a, b);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202 test case 2.
        let mac = hmac_sha1(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn hmac_sha1_accepts_an_empty_key() {
        assert_eq!(
            hex(&hmac_sha1(b"", b"")),
            "fbdb1d1b18aa6c08324b7d64b71fb76370690e1d"
        );
    }

    #[test]
    fn sha1_and_md5_of_abc() {
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(&md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

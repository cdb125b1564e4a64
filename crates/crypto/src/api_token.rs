//! Bearer tokens for the admin API: generated here, stored only as a SHA-256 hash.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::sha::sha256;
use secrecy::{ExposeSecret, SecretString};

/// Prefix of every API token GuardMDM issues, so a leaked one is recognisable in a scan.
pub const TOKEN_PREFIX: &str = "gmdm_";

/// A new random API token: [`TOKEN_PREFIX`] followed by 256 random bits in URL-safe base64.
///
/// # Errors
/// When OpenSSL's random generator fails (it does not on a working system).
pub fn generate() -> Result<SecretString, openssl::error::ErrorStack> {
    let _queue = crate::error_queue::isolate();
    Ok(SecretString::from(format!(
        "{TOKEN_PREFIX}{}",
        random_token()?.expose_secret()
    )))
}

/// 256 random bits in URL-safe base64 (43 characters), without the API prefix: dashboard
/// session cookies, CSRF tokens, generated passwords.
///
/// # Errors
/// When OpenSSL's random generator fails.
pub fn random_token() -> Result<SecretString, openssl::error::ErrorStack> {
    let _queue = crate::error_queue::isolate();
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
}

/// The hash under which a token is stored and looked up: lowercase hex SHA-256.
///
/// A fast hash is right here: the tokens carry 256 random bits, so there is nothing to
/// brute-force, and lookups happen on every API request.
pub fn hash(token: &SecretString) -> String {
    let _queue = crate::error_queue::isolate();
    hex(&sha256(token.expose_secret().as_bytes()))
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &SecretString, b: &SecretString) -> bool {
    let _queue = crate::error_queue::isolate();
    let ha = sha256(a.expose_secret().as_bytes());
    let hb = sha256(b.expose_secret().as_bytes());
    openssl::memcmp::eq(&ha, &hb)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_43_characters_and_differ() {
        let a = random_token().unwrap();
        assert_eq!(a.expose_secret().len(), 43);
        assert_ne!(a.expose_secret(), random_token().unwrap().expose_secret());
    }

    #[test]
    fn tokens_are_prefixed_random_and_hash_stably() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert!(a.expose_secret().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose_secret().len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            hash(&SecretString::from("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constant_time_eq_compares_values() {
        let a = SecretString::from("same");
        assert!(constant_time_eq(&a, &SecretString::from("same")));
        assert!(!constant_time_eq(&a, &SecretString::from("other")));
        assert!(!constant_time_eq(&a, &SecretString::from("")));
    }
}

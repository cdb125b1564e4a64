//! Dashboard passwords: argon2id hashes in PHC string form (the salt and parameters travel
//! with the hash), and random session and CSRF tokens.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The random generator failed.
    #[error("random generator: {0}")]
    Random(#[from] openssl::error::ErrorStack),
    /// argon2 refused (a parameter or length out of range).
    #[error("argon2: {0}")]
    Hash(String),
}

/// argon2id with the OWASP baseline: 19 MiB of memory, 2 passes, 1 lane.
fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params =
        Params::new(19 * 1024, 2, 1, None).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) of `password`, with a
/// fresh 128-bit salt.
///
/// # Errors
/// When the random generator or argon2 fails.
pub fn hash_password(password: &SecretString) -> Result<String, PasswordError> {
    let _queue = crate::error_queue::isolate();
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let hash = hasher()?
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored` (with the parameters it records). A
/// malformed `stored` matches nothing.
pub fn verify_password(password: &SecretString, stored: &str) -> bool {
    let _queue = crate::error_queue::isolate();
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let Ok(argon) = hasher() else {
        return false;
    };
    argon
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok()
}

/// A hash to verify against when the name is unknown, so that a sign-in for an unknown name
/// takes as long as one with a wrong password (no account enumeration by timing).
///
/// # Errors
/// When hashing fails.
pub fn decoy_hash() -> Result<String, PasswordError> {
    hash_password(&SecretString::from("decoy password for unknown names"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let pw = SecretString::from("correct horse battery staple");
        let a = hash_password(&pw).unwrap();
        let b = hash_password(&pw).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(verify_password(&pw, &a));
        assert!(verify_password(&pw, &b));
        assert!(!verify_password(&SecretString::from("wrong"), &a));
        assert!(!verify_password(&pw, "not a phc string"));
    }
}

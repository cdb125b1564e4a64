//! Secrets at rest: AES-256-GCM with a 256-bit key that lives outside the database (a file in
//! the data dir, or `GUARDMDM_SECRET_KEY`).
//!
//! A sealed value is `0x01 ‖ nonce (12) ‖ ciphertext ‖ tag (16)`. Every seal binds a
//! *context* string as additional authenticated data (for example `abm/<id>/private_key`), so
//! a ciphertext copied into another row or column fails to open.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};

use crate::describe;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of the key in bytes.
pub const KEY_LEN: usize = 32;

/// The key that seals GuardMDM's secrets. `Debug` never shows it.
pub struct SecretKey(SecretBox<[u8; KEY_LEN]>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

/// A problem with a key, or with a sealed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretKeyError {
    /// The key text is not base64 of exactly 32 bytes.
    #[error(
        "the secret key must be 32 bytes in base64 (44 characters, e.g. from `openssl rand -base64 32`): {0}"
    )]
    BadKey(String),
    /// The sealed value is malformed, was sealed with another key, or belongs elsewhere.
    #[error(
        "a stored secret could not be decrypted: it was encrypted with a different secret key, or it is corrupt"
    )]
    Open,
    /// OpenSSL failed.
    #[error("encryption failed: {0}")]
    Crypto(String),
}

impl From<openssl::error::ErrorStack> for SecretKeyError {
    fn from(err: openssl::error::ErrorStack) -> Self {
        Self::Crypto(describe(&err))
    }
}

impl SecretKey {
    /// A new random key.
    ///
    /// # Errors
    /// When OpenSSL's random generator fails.
    pub fn generate() -> Result<Self, SecretKeyError> {
        let _queue = crate::error_queue::isolate();
        let mut key = Box::new([0u8; KEY_LEN]);
        openssl::rand::rand_bytes(key.as_mut())?;
        Ok(Self(SecretBox::new(key)))
    }

    /// Reads a key from its base64 text form (surrounding white space is ignored).
    ///
    /// # Errors
    /// [`SecretKeyError::BadKey`] unless the text is base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, SecretKeyError> {
        let _queue = crate::error_queue::isolate();
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| SecretKeyError::BadKey(e.to_string()))?;
        let key: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SecretKeyError::BadKey(format!("it decodes to {} bytes", bytes.len())))?;
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    /// The key's base64 text form, for writing the key file.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.0.expose_secret()))
    }

    /// Encrypts and authenticates `plaintext`, bound to `context`.
    ///
    /// # Errors
    /// Only when OpenSSL fails.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, SecretKeyError> {
        let _queue = crate::error_queue::isolate();
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            self.0.expose_secret(),
            Some(&nonce),
            context.as_bytes(),
            plaintext,
            &mut tag,
        )?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts a value sealed by [`SecretKey::seal`] under the same `context`.
    ///
    /// # Errors
    /// [`SecretKeyError::Open`] when the value is malformed, was sealed with another key or
    /// under another context, or was altered.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<SecretSlice<u8>, SecretKeyError> {
        let _queue = crate::error_queue::isolate();
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(SecretKeyError::Open);
        }
        let (nonce, rest) = sealed[1..].split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            self.0.expose_secret(),
            Some(nonce),
            context.as_bytes(),
            ciphertext,
            tag,
        )
        .map(SecretSlice::from)
        .map_err(|_| SecretKeyError::Open)
    }

    /// [`SecretKey::seal`] for text.
    ///
    /// # Errors
    /// As [`SecretKey::seal`].
    pub fn seal_str(
        &self,
        secret: &SecretString,
        context: &str,
    ) -> Result<Vec<u8>, SecretKeyError> {
        let _queue = crate::error_queue::isolate();
        self.seal(secret.expose_secret().as_bytes(), context)
    }

    /// [`SecretKey::open`] for text sealed with [`SecretKey::seal_str`].
    ///
    /// # Errors
    /// As [`SecretKey::open`], and [`SecretKeyError::Open`] when the plaintext is not UTF-8.
    pub fn open_str(&self, sealed: &[u8], context: &str) -> Result<SecretString, SecretKeyError> {
        let _queue = crate::error_queue::isolate();
        let bytes = self.open(sealed, context)?;
        std::str::from_utf8(bytes.expose_secret())
            .map(SecretString::from)
            .map_err(|_| SecretKeyError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_with_context() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal(b"private key", "abm/1/private_key").unwrap();
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 11 + TAG_LEN);
        assert!(!sealed.windows(7).any(|w| w == b"private"));
        let opened = key.open(&sealed, "abm/1/private_key").unwrap();
        assert_eq!(opened.expose_secret(), b"private key");
        // Same plaintext, fresh nonce.
        assert_ne!(
            sealed,
            key.seal(b"private key", "abm/1/private_key").unwrap()
        );
    }

    #[test]
    fn refuses_other_contexts_keys_and_tampering() {
        let key = SecretKey::generate().unwrap();
        let sealed = key.seal(b"secret", "a").unwrap();
        assert_eq!(key.open(&sealed, "b").unwrap_err(), SecretKeyError::Open);
        let other = SecretKey::generate().unwrap();
        assert_eq!(other.open(&sealed, "a").unwrap_err(), SecretKeyError::Open);
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(key.open(&tampered, "a").unwrap_err(), SecretKeyError::Open);
        assert_eq!(
            key.open(&sealed[..10], "a").unwrap_err(),
            SecretKeyError::Open
        );
        assert_eq!(key.open(&[], "a").unwrap_err(), SecretKeyError::Open);
    }

    #[test]
    fn key_text_round_trips_and_bad_keys_are_named() {
        let key = SecretKey::generate().unwrap();
        let text = key.to_base64();
        let again = SecretKey::from_base64(&format!("{}\n", text.expose_secret())).unwrap();
        let sealed = key.seal_str(&SecretString::from("x"), "c").unwrap();
        assert_eq!(again.open_str(&sealed, "c").unwrap().expose_secret(), "x");
        assert!(matches!(
            SecretKey::from_base64("not base64!"),
            Err(SecretKeyError::BadKey(_))
        ));
        let short = SecretKey::from_base64(&STANDARD.encode([0u8; 16])).unwrap_err();
        assert!(short.to_string().contains("16 bytes"), "{short}");
        assert_eq!(format!("{key:?}"), "SecretKey([REDACTED])");
    }
}

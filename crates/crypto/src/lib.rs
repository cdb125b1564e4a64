//! GuardMDM's cryptography, and the only crate of the workspace that links OpenSSL.
//!
//! - [`dep_token`]: the Apple Business Manager server token (the `*_smime.p7m` file): S/MIME
//!   wrapped CMS EnvelopedData, decrypted with the MDM server entry's private key
//!   (<https://developer.apple.com/documentation/devicemanagement/device-assignment>).
//! - [`keypair`]: the RSA-2048 key pair and self-signed certificate an admin uploads to ABM.
//! - [`digest`]: HMAC-SHA1 (OAuth 1.0a signatures) and SHA-256.
//! - [`secret_box`]: authenticated encryption of secrets at rest (AES-256-GCM).
//! - [`api_token`]: random bearer tokens and their stored hashes.

pub mod api_token;
pub mod dep_token;
pub mod digest;
pub mod keypair;
pub mod secret_box;

pub use dep_token::{DepTokenError, DepTokens, decrypt_server_token, encrypt_server_token};
pub use keypair::{KeyPairError, TokenKeyPair, generate_token_key_pair};
pub use secret_box::{SecretKey, SecretKeyError};

/// An OpenSSL failure flattened to text, for error variants that must stay `Clone`/`Send`.
fn describe(err: &openssl::error::ErrorStack) -> String {
    let reasons: Vec<String> = err
        .errors()
        .iter()
        .map(|e| e.reason().unwrap_or("unknown error").to_string())
        .collect();
    if reasons.is_empty() {
        "unknown OpenSSL error".to_string()
    } else {
        reasons.join("; ")
    }
}

//! GuardMDM's cryptography, and the only crate of the workspace that links OpenSSL.
//!
//! - [`dep_token`]: the Apple Business Manager server token (the `*_smime.p7m` file): S/MIME
//!   wrapped CMS EnvelopedData, decrypted with the MDM server entry's private key
//!   (<https://developer.apple.com/documentation/devicemanagement/device-assignment>).
//! - [`keypair`]: the RSA-2048 key pair and self-signed certificate an admin uploads to ABM.
//! - [`digest`]: HMAC-SHA1 (OAuth 1.0a signatures) and SHA-256.
//! - [`secret_box`]: authenticated encryption of secrets at rest (AES-256-GCM).
//! - [`api_token`]: random bearer tokens and their stored hashes.
//! - [`cms_verify`]: CMS signatures from devices: the ADE MachineInfo body (attached, chained
//!   to Apple's device CA) and the `Mdm-Signature` header (detached); [`TrustAnchors`].
//! - [`certificate`]: [`Certificate`], an X.509 certificate without OpenSSL types.
//! - [`profile_sign`]: signing configuration profiles with an [`Identity`].
//! - [`push_certificate`]: the APNs push certificate and its topic.
//! - [`push_request`]: the push certificate request GuardMDM makes, MDM vendor signing of it
//!   for Apple's portal, and a stand-in for that portal.
//! - [`scep`]: the SCEP CA (RFC 8894) that issues device identities; the device keeps its
//!   private key, GuardMDM certifies only the public key in its CSR. [`scep::client`] is the
//!   device's side, for simulators and tests.
//! - [`device_key`] and [`device_ca`]: a device's own key ([`DeviceKey`]) and a stand-in for
//!   Apple's device CA ([`DeviceCa`]), so simulated devices can sign like real ones
//!   ([`sign_attached`], [`sign_detached`]).
//!
//! OpenSSL does all cryptography. The RustCrypto `cms`/`der`/`x509-cert` crates are used for
//! ASN.1 structure only (SCEP's signed attributes, which rust-openssl cannot read or write);
//! see the [`scep`] module documentation for why. OpenSSL's per-thread error queue is emptied
//! at the start and end of every public operation that calls it (`error_queue`), so that an
//! error message describes only its own request, never one served earlier on the same thread.

pub mod api_token;
pub mod certificate;
mod cms_shape;
pub mod cms_verify;
pub mod dep_token;
pub mod device_ca;
pub mod device_key;
pub mod digest;
mod error_queue;
pub mod keypair;
pub mod password;
mod pki;
pub mod profile_sign;
pub mod push_certificate;
pub mod push_request;
pub mod scep;
pub mod secret_box;
mod signed_data;
#[cfg(test)]
mod test_pki;

pub use certificate::{Certificate, CertificateError};
pub use cms_verify::{
    CmsError, DetachedSignature, SignedContent, TrustAnchors, VerifiedContent, verify_attached,
    verify_attached_signature, verify_detached,
};
pub use dep_token::{DepTokenError, DepTokens, decrypt_server_token, encrypt_server_token};
pub use device_ca::DeviceCa;
pub use device_key::DeviceKey;
pub use keypair::{KeyPairError, TokenKeyPair, generate_token_key_pair};
pub use profile_sign::{Identity, IdentityError, sign_attached, sign_detached, sign_profile};
pub use push_certificate::{PushCertificate, PushCertificateError};
pub use push_request::{
    PushPortal, PushRequest, PushRequestError, VendorSigner, generate_push_request,
    public_key_sha256_of_private_key,
};
pub use scep::{
    ChallengePolicy, CsrInfo, FailInfo, PendingRequest, PkiOutcome, PkiRequest, PkiResponse,
    Rejection, ScepCa, ScepCapabilities, ScepClient, ScepClientError, ScepError, StaticChallenge,
};
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

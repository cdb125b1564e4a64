//! A device's own RSA key: what an Apple device generates for its SCEP request (the
//! `com.apple.security.scep` payload's `Keysize`, RSA only) and keeps for its MDM identity.
//! GuardMDM's server never holds one; the device simulators and the tests do.

use openssl::pkey::{Id, PKey, Private};
use secrecy::{ExposeSecret, SecretString};

use crate::describe;
use crate::pki;
use crate::profile_sign::IdentityError;

/// RSA key sizes a SCEP payload may ask for (`Keysize`: 1024, 2048 or 4096).
pub const DEVICE_KEY_SIZES: [u32; 3] = [1024, 2048, 4096];

/// A device's RSA private key. Cheap to clone (reference counted); `Debug` never shows it.
#[derive(Clone)]
pub struct DeviceKey {
    key: PKey<Private>,
}

impl DeviceKey {
    /// A fresh RSA-2048 key, what a device makes for the usual `Keysize` of 2048.
    ///
    /// # Errors
    /// [`IdentityError::Internal`] if OpenSSL fails.
    pub fn generate() -> Result<Self, IdentityError> {
        let _queue = crate::error_queue::isolate();
        Self::generate_rsa(2048)
    }

    /// A fresh RSA key of `bits` bits, one of [`DEVICE_KEY_SIZES`].
    ///
    /// # Errors
    /// [`IdentityError::Key`] for another size, [`IdentityError::Internal`] if OpenSSL fails.
    pub fn generate_rsa(bits: u32) -> Result<Self, IdentityError> {
        let _queue = crate::error_queue::isolate();
        if !DEVICE_KEY_SIZES.contains(&bits) {
            return Err(IdentityError::Key(format!(
                "an RSA key of {bits} bits; devices make 1024, 2048 or 4096"
            )));
        }
        Ok(Self {
            key: pki::rsa_key(bits)?,
        })
    }

    /// Loads a key saved with [`DeviceKey::to_pem`] (PKCS#8 or traditional PEM, unencrypted).
    ///
    /// # Errors
    /// [`IdentityError::Key`] when the PEM is unreadable or not an RSA key.
    pub fn from_pem(pem: &SecretString) -> Result<Self, IdentityError> {
        let _queue = crate::error_queue::isolate();
        let key = PKey::private_key_from_pem(pem.expose_secret().as_bytes())
            .map_err(|e| IdentityError::Key(describe(&e)))?;
        if key.id() != Id::RSA {
            return Err(IdentityError::Key(
                "a device key must be RSA (SCEP payloads only ask for RSA)".to_string(),
            ));
        }
        Ok(Self { key })
    }

    /// The key as unencrypted PKCS#8 PEM.
    ///
    /// # Errors
    /// [`IdentityError::Internal`] if OpenSSL fails to encode.
    pub fn to_pem(&self) -> Result<SecretString, IdentityError> {
        let _queue = crate::error_queue::isolate();
        let pem = self.key.private_key_to_pem_pkcs8()?;
        String::from_utf8(pem)
            .map(SecretString::from)
            .map_err(|_| IdentityError::Internal("OpenSSL wrote a non-UTF-8 PEM".to_string()))
    }

    /// The modulus size in bits.
    #[must_use]
    pub fn bits(&self) -> u32 {
        let _queue = crate::error_queue::isolate();
        self.key.bits()
    }

    /// The public key, DER `SubjectPublicKeyInfo`.
    ///
    /// # Errors
    /// [`IdentityError::Internal`] if OpenSSL fails to encode.
    pub fn public_key_der(&self) -> Result<Vec<u8>, IdentityError> {
        let _queue = crate::error_queue::isolate();
        Ok(self.key.public_key_to_der()?)
    }

    pub(crate) fn pkey(&self) -> &PKey<Private> {
        &self.key
    }
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey")
            .field("bits", &self.key.bits())
            .field("key", &"[REDACTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let key = DeviceKey::generate_rsa(1024).unwrap();
        assert_eq!(key.bits(), 1024);
        let pem = key.to_pem().unwrap();
        assert!(pem.expose_secret().contains("BEGIN PRIVATE KEY"));
        let again = DeviceKey::from_pem(&pem).unwrap();
        assert_eq!(
            again.public_key_der().unwrap(),
            key.public_key_der().unwrap()
        );
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn refuses_odd_sizes_and_non_rsa_keys() {
        assert!(matches!(
            DeviceKey::generate_rsa(512),
            Err(IdentityError::Key(_))
        ));
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let pem = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        let err =
            DeviceKey::from_pem(&SecretString::from(String::from_utf8(pem).unwrap())).unwrap_err();
        assert!(err.to_string().contains("RSA"), "{err}");
        assert!(DeviceKey::from_pem(&SecretString::from("junk")).is_err());
    }
}

//! Guarding against the wrong secret key: the database remembers a check value sealed with the
//! key it was first used with, and start-up refuses any other key before it can fail later, one
//! secret at a time.

use guardmdm_crypto::SecretKey;
use guardmdm_store::MetaStore;

use crate::ServiceError;

const META_KEY: &str = "secret_key_check";
const CONTEXT: &str = "meta/secret_key_check";
const PLAINTEXT: &[u8] = b"GuardMDM secret key check";

/// Records the key's check value on first use; afterwards, verifies that `key` is the key the
/// stored secrets were sealed with.
///
/// # Errors
/// [`ServiceError::Invalid`] when the key differs from the database's, with what to do.
pub async fn verify_secret_key(store: &dyn MetaStore, key: &SecretKey) -> Result<(), ServiceError> {
    let candidate = hex_encode(&key.seal(PLAINTEXT, CONTEXT)?);
    let stored = store.init_meta(META_KEY, &candidate).await?;
    if stored == candidate {
        return Ok(());
    }
    let sealed = hex_decode(&stored).ok_or_else(|| {
        ServiceError::Internal("the stored secret key check value is corrupt".to_string())
    })?;
    match key.open(&sealed, CONTEXT) {
        Ok(_) => Ok(()),
        Err(_) => Err(ServiceError::Invalid(
            "the secret key does not match the one this database's secrets were encrypted with: \
             restore the original secret.key in the data dir (or GUARDMDM_SECRET_KEY)"
                .to_string(),
        )),
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardmdm_store_sqlite::SqliteStore;

    #[tokio::test]
    async fn first_key_is_remembered_and_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let key = SecretKey::generate().unwrap();
        verify_secret_key(&store, &key).await.unwrap();
        verify_secret_key(&store, &key).await.unwrap();
        let again =
            SecretKey::from_base64(secrecy::ExposeSecret::expose_secret(&key.to_base64())).unwrap();
        verify_secret_key(&store, &again).await.unwrap();
        let other = SecretKey::generate().unwrap();
        let err = verify_secret_key(&store, &other).await.unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            hex_decode(&hex_encode(&[0, 1, 254, 255])).unwrap(),
            vec![0, 1, 254, 255]
        );
        assert_eq!(hex_decode("abc"), None);
        assert_eq!(hex_decode("zz"), None);
    }
}

//! Guarding against the wrong secret key: the database remembers a check value sealed with the
//! key it was first used with, and start-up refuses any other key before it can fail later, one
//! secret at a time.
//!
//! Also the one way server secrets are kept in the store: a value as JSON, sealed with the
//! secret key under its store name (which is also the sealing context).

use guardmdm_crypto::SecretKey;
use guardmdm_store::{MdmStore, MetaStore, NewAuditEvent};
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ServiceError;

/// `value` as JSON, sealed with `key` for the store name `name`.
pub(crate) fn seal_json<T: Serialize>(
    key: &SecretKey,
    name: &str,
    value: &T,
) -> Result<Vec<u8>, ServiceError> {
    let json = SecretSlice::from(
        serde_json::to_vec(value)
            .map_err(|e| ServiceError::Internal(format!("encoding the {name}: {e}")))?,
    );
    Ok(key.seal(json.expose_secret(), name)?)
}

/// The value [`seal_json`] sealed for `name`.
pub(crate) fn open_json<T: DeserializeOwned>(
    key: &SecretKey,
    name: &str,
    sealed: &[u8],
) -> Result<T, ServiceError> {
    let json = key.open(sealed, name)?;
    serde_json::from_slice(json.expose_secret())
        .map_err(|e| ServiceError::Internal(format!("the stored {name} is unreadable: {e}")))
}

/// The value stored (sealed as JSON) under `name`, if any.
pub(crate) async fn read_json<T: DeserializeOwned>(
    store: &(impl ?Sized + MdmStore),
    key: &SecretKey,
    name: &str,
) -> Result<Option<T>, ServiceError> {
    match store.get_secret(name).await? {
        Some(sealed) => open_json(key, name, &sealed).map(Some),
        None => Ok(None),
    }
}

/// Stores `value` (sealed as JSON) under `name`, replacing what was there, with `audit` in
/// the same transaction.
pub(crate) async fn write_json<T: Serialize>(
    store: &(impl ?Sized + MdmStore),
    key: &SecretKey,
    name: &str,
    value: &T,
    audit: &NewAuditEvent,
) -> Result<(), ServiceError> {
    let sealed = seal_json(key, name, value)?;
    Ok(store.put_secret(name, &sealed, audit).await?)
}

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
        let again = SecretKey::from_base64(ExposeSecret::expose_secret(&key.to_base64())).unwrap();
        verify_secret_key(&store, &again).await.unwrap();
        let other = SecretKey::generate().unwrap();
        let err = verify_secret_key(&store, &other).await.unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[tokio::test]
    async fn json_values_are_sealed_under_their_name() {
        #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
        struct Pair {
            certificate_pem: String,
            key_pem: String,
        }
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("g.db")).await.unwrap();
        let key = SecretKey::generate().unwrap();
        let none: Option<Pair> = read_json(&store, &key, "pair").await.unwrap();
        assert_eq!(none, None);
        let pair = Pair {
            certificate_pem: "CERT".to_string(),
            key_pem: "PRIVATE KEY".to_string(),
        };
        let audit = NewAuditEvent {
            at: guardmdm_store::now(),
            actor: "system".to_string(),
            action: "test.pair".to_string(),
            target: "pair".to_string(),
            details: serde_json::json!({}),
        };
        write_json(&store, &key, "pair", &pair, &audit)
            .await
            .unwrap();
        let sealed = store.get_secret("pair").await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
        assert_eq!(read_json(&store, &key, "pair").await.unwrap(), Some(pair));
        // Sealed for its name: not readable under another, nor with another key.
        assert!(open_json::<Pair>(&key, "other", &sealed).is_err());
        let other = SecretKey::generate().unwrap();
        assert!(read_json::<Pair>(&store, &other, "pair").await.is_err());
        // A value of another shape is unreadable, naming the secret.
        let err = open_json::<u32>(&key, "pair", &sealed).unwrap_err();
        assert!(
            err.to_string().contains("the stored pair is unreadable"),
            "{err}"
        );
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

//! The server's own keys: the SCEP CA that issues device identities and the identity that
//! signs enrollment profiles. Created once, sealed with the secret key, shared by every
//! instance (the first writer wins).

use guardmdm_crypto::{Identity, ScepCa, SecretKey};
use guardmdm_store::MdmStore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::MdmError;

const CA_SECRET: &str = "scep_ca";
const SIGNER_SECRET: &str = "signing_identity";

/// The SCEP CA and the profile-signing identity.
#[derive(Debug)]
pub struct ServerKeys {
    /// Issues device identities; its certificate is a trust anchor in enrollment profiles.
    pub ca: ScepCa,
    /// Signs enrollment profiles.
    pub signer: Identity,
}

#[derive(Serialize, Deserialize)]
struct StoredPair {
    certificate_pem: String,
    key_pem: String,
}

pub(super) async fn load_or_create<S: ?Sized + MdmStore>(
    store: &S,
    secrets: &SecretKey,
    single_des: bool,
) -> Result<ServerKeys, MdmError> {
    let ca = pair(store, secrets, CA_SECRET, || {
        let ca = ScepCa::generate("GuardMDM Device CA").map_err(MdmError::internal)?;
        let (cert, key) = ca.to_pem().map_err(MdmError::internal)?;
        Ok((cert, key))
    })
    .await?;
    let ca = ScepCa::from_pem(
        ca.certificate_pem.as_bytes(),
        &SecretString::from(ca.key_pem),
    )
    .map_err(MdmError::internal)?;
    let ca = if single_des {
        ca.with_single_des().map_err(MdmError::internal)?
    } else {
        ca
    };
    let signer = pair(store, secrets, SIGNER_SECRET, || {
        let id = Identity::generate_self_signed("GuardMDM Profile Signing")
            .map_err(MdmError::internal)?;
        let key = id.private_key_pem().map_err(MdmError::internal)?;
        Ok((id.certificates_pem(), key))
    })
    .await?;
    let signer = Identity::from_pem(
        signer.certificate_pem.as_bytes(),
        &SecretString::from(signer.key_pem),
    )
    .map_err(MdmError::internal)?;
    Ok(ServerKeys { ca, signer })
}

/// The stored pair under `name`, or a new one from `make`, stored if no other instance stored
/// one first.
async fn pair<S: ?Sized + MdmStore>(
    store: &S,
    secrets: &SecretKey,
    name: &str,
    make: impl FnOnce() -> Result<(String, SecretString), MdmError>,
) -> Result<StoredPair, MdmError> {
    if let Some(stored) = crate::secrets::read_json(store, secrets, name)
        .await
        .map_err(MdmError::internal)?
    {
        return Ok(stored);
    }
    let (certificate_pem, key) = make()?;
    let new = StoredPair {
        certificate_pem,
        key_pem: key.expose_secret().to_string(),
    };
    let sealed = crate::secrets::seal_json(secrets, name, &new).map_err(MdmError::internal)?;
    // The first writer wins: open what was stored, ours or another instance's.
    let stored = store.init_secret(name, &sealed).await?;
    crate::secrets::open_json(secrets, name, &stored).map_err(MdmError::internal)
}

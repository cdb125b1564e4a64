//! Authentication of admin API calls, and named API keys.
//!
//! A request carries `Authorization: Bearer <token>`. The token is either the bootstrap
//! `--admin-token` (compared in constant time) or an API key, looked up by its SHA-256 hash.

use std::sync::Arc;

use guardmdm_crypto::api_token;
use guardmdm_store::{ApiKey, ApiKeyStore, NewApiKey, Store, StoreError};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::abm_entries::audit;
use crate::names::validate_name;
use crate::{Actor, ServiceError};

/// How often at most an API key's `last_used_at` is written.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// An API key as the API shows it: never the token, never its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyView {
    /// Identifier.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last use, to about a minute; `None` if never used.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it was revoked; `None` while valid.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name,
            created_by: key.created_by,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A key just created, with the token, which is shown this once.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// The key.
    pub key: ApiKeyView,
    /// The bearer token. Not stored anywhere by GuardMDM.
    pub token: SecretString,
}

/// Authentication and API keys.
pub struct AuthService<S: ?Sized = dyn Store> {
    store: Arc<S>,
    admin_token: Option<Arc<SecretString>>,
}

impl<S: ?Sized> Clone for AuthService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            admin_token: self.admin_token.clone(),
        }
    }
}

impl<S: ?Sized + ApiKeyStore> AuthService<S> {
    /// A service over `store`; `admin_token` is the bootstrap token, if configured.
    pub fn new(store: Arc<S>, admin_token: Option<SecretString>) -> Self {
        Self {
            store,
            admin_token: admin_token.map(Arc::new),
        }
    }

    /// Who `bearer` (the text after `Bearer `) belongs to.
    ///
    /// # Errors
    /// [`ServiceError::Unauthorized`] for an unknown or revoked token.
    pub async fn authenticate(&self, bearer: &str) -> Result<Actor, ServiceError> {
        let presented = SecretString::from(bearer.trim().to_string());
        if let Some(admin) = &self.admin_token
            && api_token::constant_time_eq(admin, &presented)
        {
            return Ok(Actor::AdminToken);
        }
        let hash = api_token::hash(&presented);
        match self.store.find_active_api_key(&hash).await? {
            Some(key) => {
                self.store
                    .touch_api_key(key.id, guardmdm_store::now(), TOUCH_INTERVAL_SECS)
                    .await?;
                Ok(Actor::ApiKey { name: key.name })
            }
            None => Err(ServiceError::Unauthorized(
                "the bearer token is not valid (unknown or revoked)".to_string(),
            )),
        }
    }

    /// Creates a named API key and returns its token, once.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad name, [`ServiceError::Conflict`] when a valid key
    /// already has it.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<CreatedApiKey, ServiceError> {
        validate_name(name, "API key name")?;
        let token = api_token::generate().map_err(|e| ServiceError::Internal(e.to_string()))?;
        let now = guardmdm_store::now();
        let new = NewApiKey {
            id: Uuid::new_v4(),
            name: name.to_string(),
            token_hash: api_token::hash(&token),
            created_by: actor.audit_name(),
            created_at: now,
        };
        let audit = audit(actor, "api_key.create", name, now, serde_json::json!({}));
        let key = self
            .store
            .create_api_key(&new, &audit)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    ServiceError::Conflict(format!("an API key named {name:?} already exists"))
                }
                other => other.into(),
            })?;
        Ok(CreatedApiKey {
            key: key.into(),
            token,
        })
    }

    /// Every API key, revoked ones included.
    ///
    /// # Errors
    /// Only storage failures.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyView>, ServiceError> {
        Ok(self
            .store
            .list_api_keys()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Revokes the valid key with this name; it stops working at once.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when no valid key has the name.
    pub async fn revoke_api_key(
        &self,
        actor: &Actor,
        name: &str,
    ) -> Result<ApiKeyView, ServiceError> {
        let now = guardmdm_store::now();
        let audit = audit(actor, "api_key.revoke", name, now, serde_json::json!({}));
        match self.store.revoke_api_key(name, now, &audit).await {
            Ok(key) => Ok(key.into()),
            Err(StoreError::NotFound) => Err(ServiceError::NotFound(format!(
                "no valid API key named {name:?}"
            ))),
            Err(other) => Err(other.into()),
        }
    }
}

//! ABM entries and their server tokens: the steps of README, "Connecting GuardMDM to Apple
//! Business Manager" (`docs/protocol.md` §1.1).
//!
//! 1. [`AbmEntryService::create`] makes an entry with an RSA key pair; its certificate
//!    ([`AbmEntryService::public_key`]) is what the admin uploads to ABM.
//! 2. ABM returns a `*_smime.p7m` server token encrypted to that certificate;
//!    [`AbmEntryService::upload_server_token`] decrypts, validates and stores it, and later
//!    replaces it on renewal while keeping everything else about the entry.

use std::sync::Arc;

use guardmdm_abm::{ClientOptions, Credentials, DepError};
use guardmdm_crypto::{DepTokens, SecretKey, decrypt_server_token, generate_token_key_pair};
use guardmdm_store::{
    AbmAccount, AbmEntry, AbmEntryStore, DeviceSyncStore, EntryId, NewAbmEntry, NewAuditEvent,
    ServerTokenRecord, Store, StoreError, TokenProblem,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::health::{TokenHealth, token_health};
use crate::names::validate_name;
use crate::{Actor, ServiceError};

/// Devices per fetch/sync page unless an entry says otherwise (Apple's default).
pub const DEFAULT_BATCH_SIZE: u32 = 100;
/// Apple's maximum page size.
pub const MAX_BATCH_SIZE: u32 = 1000;
/// Largest server token file accepted. Real ones are about 3 KiB.
pub const MAX_TOKEN_FILE_BYTES: usize = 64 * 1024;

/// What an admin supplies to create an entry.
#[derive(Debug, Clone, Default)]
pub struct NewEntry {
    /// Unique name.
    pub name: String,
    /// Devices per page; default [`DEFAULT_BATCH_SIZE`].
    pub batch_size: Option<u32>,
    /// A DEP API base URL for this entry only.
    pub abm_url: Option<String>,
}

/// A change to an entry's settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EntrySettings {
    /// Devices per page.
    pub batch_size: Option<u32>,
    /// `Some(None)` clears the per-entry URL; `Some(Some(url))` sets it.
    pub abm_url: Option<Option<String>>,
}

/// An entry as the API and CLI show it. Carries no secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbmEntryView {
    /// Identifier.
    pub id: EntryId,
    /// Unique name.
    pub name: String,
    /// Token health, expiry and days left.
    pub health: TokenHealth,
    /// When the current server token was uploaded; `None` while pending.
    #[serde(with = "time::serde::rfc3339::option")]
    pub token_uploaded_at: Option<OffsetDateTime>,
    /// Devices per fetch/sync page.
    pub batch_size: u32,
    /// The per-entry DEP API base URL; `None` means the server's `--abm-url`.
    pub abm_url: Option<String>,
    /// The MDM server in ABM, as Apple's `/account` described it at the last token upload;
    /// `None` until Apple answered.
    pub account: Option<AccountView>,
    /// When the last sync finished; `None` until the first one.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sync_at: Option<OffsetDateTime>,
    /// When the entry was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When anything about it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The ABM MDM server behind an entry's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The MDM server's name in ABM.
    pub server_name: String,
    /// Its stable identifier.
    pub server_uuid: String,
    /// The organization.
    pub org_name: Option<String>,
    /// The Apple Account that downloaded the token.
    pub admin_id: Option<String>,
    /// When Apple said so.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
}

impl From<&AbmAccount> for AccountView {
    fn from(a: &AbmAccount) -> Self {
        Self {
            server_name: a.server_name.clone(),
            server_uuid: a.server_uuid.clone(),
            org_name: a.org_name.clone(),
            admin_id: a.admin_id.clone(),
            checked_at: a.checked_at,
        }
    }
}

impl AbmEntryView {
    /// The view of a stored entry at `now`.
    pub fn from_entry(entry: &AbmEntry, now: OffsetDateTime) -> Self {
        let token = entry.server_token.as_ref();
        Self {
            id: entry.id,
            name: entry.name.clone(),
            health: token_health(token.map(|t| t.expires_at), entry.problem.as_ref(), now),
            token_uploaded_at: token.map(|t| t.uploaded_at),
            batch_size: entry.batch_size,
            abm_url: entry.abm_url.clone(),
            account: entry.account.as_ref().map(AccountView::from),
            last_sync_at: None,
            created_at: entry.created_at,
            updated_at: entry.updated_at,
        }
    }
}

/// Checks a page size: 1 to [`MAX_BATCH_SIZE`].
///
/// # Errors
/// [`ServiceError::Invalid`] naming the allowed range.
pub fn validate_batch_size(size: u32) -> Result<u32, ServiceError> {
    if (1..=MAX_BATCH_SIZE).contains(&size) {
        Ok(size)
    } else {
        Err(ServiceError::Invalid(format!(
            "batch size {size} is out of range: Apple pages hold 1 to {MAX_BATCH_SIZE} devices (default {DEFAULT_BATCH_SIZE})"
        )))
    }
}

/// Checks a DEP API base URL: absolute `http` or `https`, no query or fragment.
///
/// # Errors
/// [`ServiceError::Invalid`] saying what is wrong.
pub fn validate_abm_url(text: &str) -> Result<String, ServiceError> {
    let url = url::Url::parse(text)
        .map_err(|e| ServiceError::Invalid(format!("ABM URL {text:?} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ServiceError::Invalid(format!(
            "ABM URL {text:?} must be an http:// or https:// URL with a host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ServiceError::Invalid(format!(
            "ABM URL {text:?} must not have a query or fragment"
        )));
    }
    Ok(url.to_string())
}

fn private_key_context(id: EntryId) -> String {
    format!("abm/{id}/private_key")
}

fn server_token_context(id: EntryId) -> String {
    format!("abm/{id}/server_token")
}

/// How GuardMDM reaches Apple's DEP API.
#[derive(Debug, Clone)]
pub struct AbmSettings {
    /// The DEP API base URL for entries without their own (`--abm-url`).
    pub default_url: String,
    /// Timeouts and retries.
    pub client_options: ClientOptions,
}

impl Default for AbmSettings {
    fn default() -> Self {
        Self {
            default_url: guardmdm_abm::DEFAULT_BASE_URL.to_string(),
            client_options: ClientOptions::default(),
        }
    }
}

/// ABM entries and server tokens.
pub struct AbmEntryService<S: ?Sized = dyn Store> {
    store: Arc<S>,
    secrets: Arc<SecretKey>,
    abm: Arc<AbmSettings>,
}

impl<S: ?Sized> Clone for AbmEntryService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            secrets: self.secrets.clone(),
            abm: self.abm.clone(),
        }
    }
}

impl<S: ?Sized + AbmEntryStore + DeviceSyncStore> AbmEntryService<S> {
    /// A service over `store`, sealing secrets with `secrets`, reaching Apple as `abm` says.
    pub fn new(store: Arc<S>, secrets: Arc<SecretKey>, abm: AbmSettings) -> Self {
        Self {
            store,
            secrets,
            abm: Arc::new(abm),
        }
    }

    /// A DEP API client for an entry's MDM server with `tokens`.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] when the entry's URL is unusable.
    pub fn client_for(
        &self,
        abm_url: Option<&str>,
        tokens: &DepTokens,
    ) -> Result<guardmdm_abm::Client, ServiceError> {
        let credentials = Credentials {
            consumer_key: tokens.consumer_key.clone(),
            consumer_secret: tokens.consumer_secret.clone(),
            access_token: tokens.access_token.clone(),
            access_secret: tokens.access_secret.clone(),
        };
        let url = abm_url.unwrap_or(&self.abm.default_url);
        guardmdm_abm::Client::new(url, credentials, self.abm.client_options.clone())
            .map_err(|e| ServiceError::Invalid(e.to_string()))
    }

    /// Creates an entry with a new RSA-2048 key pair and self-signed certificate.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad name or setting, [`ServiceError::Conflict`] when the
    /// name is taken.
    #[tracing::instrument(skip_all, fields(abm_entry = %new.name))]
    pub async fn create(&self, actor: &Actor, new: NewEntry) -> Result<AbmEntryView, ServiceError> {
        validate_name(&new.name, "ABM entry name")?;
        let batch_size = validate_batch_size(new.batch_size.unwrap_or(DEFAULT_BATCH_SIZE))?;
        let abm_url = new.abm_url.as_deref().map(validate_abm_url).transpose()?;
        let common_name = format!("GuardMDM {}", new.name);
        let pair = tokio::task::spawn_blocking(move || generate_token_key_pair(&common_name))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let id = EntryId::new_v4();
        let sealed_private_key = self
            .secrets
            .seal_str(&pair.private_key_pem, &private_key_context(id))?;
        let now = guardmdm_store::now();
        let entry = NewAbmEntry {
            id,
            name: new.name.clone(),
            certificate_pem: pair.certificate_pem,
            sealed_private_key,
            batch_size,
            abm_url: abm_url.clone(),
            created_at: now,
        };
        let audit = audit(
            actor,
            "abm_token.create",
            &new.name,
            now,
            serde_json::json!({
                "batch_size": batch_size, "abm_url": abm_url,
            }),
        );
        let stored = self
            .store
            .create_abm_entry(&entry, &audit)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ServiceError::Conflict(format!(
                    "an ABM entry named {:?} already exists",
                    new.name
                )),
                other => other.into(),
            })?;
        tracing::info!(abm_entry = %stored.name, "ABM entry created");
        Ok(AbmEntryView::from_entry(&stored, now))
    }

    /// Every entry with its health, by name.
    ///
    /// # Errors
    /// Only storage failures.
    pub async fn list(&self) -> Result<Vec<AbmEntryView>, ServiceError> {
        let entries = self.store.list_abm_entries().await?;
        let mut views = Vec::with_capacity(entries.len());
        for entry in &entries {
            views.push(self.view(entry).await?);
        }
        Ok(views)
    }

    /// The DEP API base URL of entries without their own (`--abm-url`).
    pub fn default_url(&self) -> &str {
        &self.abm.default_url
    }

    /// The view of an entry, with the time of its last successful sync.
    async fn view(&self, entry: &AbmEntry) -> Result<AbmEntryView, ServiceError> {
        let mut view = AbmEntryView::from_entry(entry, OffsetDateTime::now_utc());
        let runs = self.store.list_sync_runs(entry.id, 20).await?;
        view.last_sync_at = runs
            .iter()
            .find(|r| r.outcome == "succeeded")
            .and_then(|r| r.finished_at);
        Ok(view)
    }

    /// One entry.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is no such entry.
    pub async fn get(&self, name: &str) -> Result<AbmEntryView, ServiceError> {
        let entry = self.load(name).await?;
        self.view(&entry).await
    }

    /// The entry's certificate as PEM: the file to upload to ABM.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is no such entry.
    pub async fn public_key(&self, name: &str) -> Result<String, ServiceError> {
        Ok(self.load(name).await?.certificate_pem)
    }

    /// Changes an entry's settings.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad value, [`ServiceError::NotFound`] for no entry.
    pub async fn update_settings(
        &self,
        actor: &Actor,
        name: &str,
        settings: EntrySettings,
    ) -> Result<AbmEntryView, ServiceError> {
        let current = self.load(name).await?;
        let batch_size = match settings.batch_size {
            Some(size) => validate_batch_size(size)?,
            None => current.batch_size,
        };
        let abm_url = match settings.abm_url {
            Some(Some(url)) => Some(validate_abm_url(&url)?),
            Some(None) => None,
            None => current.abm_url.clone(),
        };
        let now = guardmdm_store::now();
        let audit = audit(
            actor,
            "abm_token.set",
            name,
            now,
            serde_json::json!({
                "batch_size": batch_size, "abm_url": abm_url,
            }),
        );
        let stored = self
            .store
            .update_abm_settings(name, batch_size, abm_url.as_deref(), now, &audit)
            .await
            .map_err(|e| not_found(e, name))?;
        Ok(AbmEntryView::from_entry(&stored, now))
    }

    /// Installs or renews the entry's server token from the `*_smime.p7m` file ABM returned.
    ///
    /// Nothing is stored unless the file decrypts with this entry's key, holds all four OAuth
    /// values and an expiry in the future, and — when a token is already installed — has the
    /// same `consumer_key` (the same ABM MDM server), unless `force` is set.
    ///
    /// # Errors
    /// [`ServiceError::BadToken`] naming what is wrong with the file,
    /// [`ServiceError::TokenExpired`], [`ServiceError::Conflict`] for another server's token,
    /// [`ServiceError::Invalid`] for an oversized file, [`ServiceError::NotFound`].
    #[tracing::instrument(skip_all, fields(abm_entry = %name, force))]
    pub async fn upload_server_token(
        &self,
        actor: &Actor,
        name: &str,
        file: &[u8],
        force: bool,
    ) -> Result<AbmEntryView, ServiceError> {
        if file.len() > MAX_TOKEN_FILE_BYTES {
            return Err(ServiceError::Invalid(format!(
                "the server token file is {} bytes; a real one is about 3 KiB (limit {} KiB)",
                file.len(),
                MAX_TOKEN_FILE_BYTES / 1024
            )));
        }
        let entry = self.load(name).await?;
        let tokens = self.open_upload(&entry, file)?;
        let now = guardmdm_store::now();
        if tokens.access_token_expiry <= now {
            return Err(ServiceError::TokenExpired {
                expired_at: rfc3339(tokens.access_token_expiry),
            });
        }
        let renewal = entry.server_token.is_some();
        let (account, problem) = self.check_account(&entry, &tokens, force, now).await?;
        if !force {
            self.check_same_server(name, &entry, &tokens)?;
        }
        let sealed_token = self
            .secrets
            .seal_str(&tokens.to_json()?, &server_token_context(entry.id))?;
        let record = ServerTokenRecord {
            sealed_token,
            expires_at: tokens.access_token_expiry,
            uploaded_at: now,
        };
        let audit = upload_audit(actor, name, renewal, force, &tokens, account.as_ref(), now);
        let stored = self
            .store
            .store_server_token(name, &record, account.as_ref(), &audit)
            .await
            .map_err(|e| not_found(e, name))?;
        let stored = match problem {
            Some(problem) => {
                self.store
                    .set_abm_problem(name, Some(&problem), now)
                    .await
                    .map_err(|e| not_found(e, name))?;
                AbmEntry {
                    problem: Some(problem),
                    ..stored
                }
            }
            None => stored,
        };
        tracing::info!(
            abm_entry = %name,
            renewal,
            expires_at = %rfc3339(tokens.access_token_expiry),
            "ABM server token installed"
        );
        Ok(AbmEntryView::from_entry(&stored, now))
    }

    /// The tokens in an uploaded `*_smime.p7m` file, decrypted with the entry's key.
    fn open_upload(&self, entry: &AbmEntry, file: &[u8]) -> Result<DepTokens, ServiceError> {
        let private_key = self
            .secrets
            .open_str(&entry.sealed_private_key, &private_key_context(entry.id))?;
        Ok(decrypt_server_token(
            file,
            &entry.certificate_pem,
            &private_key,
        )?)
    }

    /// Refuses a token of another ABM MDM server than the one installed (their
    /// `consumer_key`s differ); any token is accepted while none is installed.
    fn check_same_server(
        &self,
        name: &str,
        entry: &AbmEntry,
        tokens: &DepTokens,
    ) -> Result<(), ServiceError> {
        let Some(existing) = &entry.server_token else {
            return Ok(());
        };
        let installed = self.open_tokens(entry.id, &existing.sealed_token)?;
        if installed.consumer_key.expose_secret() != tokens.consumer_key.expose_secret() {
            return Err(ServiceError::Conflict(format!(
                "this server token belongs to a different MDM server in Apple Business Manager \
                 (its consumer_key differs from the token installed in {name:?}); upload it \
                 to the entry of that server, or pass --force to replace the token anyway"
            )));
        }
        Ok(())
    }

    /// Asks Apple's `/account` which MDM server a freshly decrypted token belongs to.
    ///
    /// - It answers: the account is stored with the token; a renewal whose `server_uuid`
    ///   differs from the stored one is refused unless `force`.
    /// - Terms not signed: the token is stored with that problem (the token is fine; the
    ///   organization must accept the terms).
    /// - Rejected or access denied: the upload is refused: Apple will not take this token.
    /// - Apple unreachable or failing: the token is stored without an account; a warning is
    ///   logged, and the account is asked again later.
    async fn check_account(
        &self,
        entry: &AbmEntry,
        tokens: &DepTokens,
        force: bool,
        now: OffsetDateTime,
    ) -> Result<(Option<AbmAccount>, Option<TokenProblem>), ServiceError> {
        let client = self.client_for(entry.abm_url.as_deref(), tokens)?;
        match client.account().await {
            Ok(detail) => {
                if let (Some(stored), false) = (&entry.account, force)
                    && stored.server_uuid != detail.server_uuid
                {
                    return Err(ServiceError::Conflict(format!(
                        "this server token is for the ABM MDM server {:?} ({}), but {:?} is \
                         connected to {:?} ({}); upload it to that server's entry, or pass \
                         --force to switch this entry to the other MDM server",
                        detail.server_name,
                        detail.server_uuid,
                        entry.name,
                        stored.server_name,
                        stored.server_uuid
                    )));
                }
                let account = AbmAccount {
                    server_name: detail.server_name,
                    server_uuid: detail.server_uuid,
                    org_name: detail.org_name,
                    admin_id: detail.admin_id,
                    checked_at: now,
                };
                Ok((Some(account), None))
            }
            Err(err @ DepError::TermsNotSigned) => {
                let (kind, message) = err.token_problem().unwrap_or(("terms_not_signed", ""));
                let problem = TokenProblem {
                    kind: kind.to_string(),
                    message: message.to_string(),
                    since: now,
                };
                Ok((None, Some(problem)))
            }
            Err(err @ (DepError::TokenRejected { .. } | DepError::AccessDenied)) => {
                let (_, message) = err.token_problem().unwrap_or(("rejected", ""));
                tracing::warn!(abm_entry = %entry.name, error = %err, "Apple rejected an uploaded server token");
                Err(ServiceError::TokenRejected(message.to_string()))
            }
            Err(err) => {
                tracing::warn!(
                    abm_entry = %entry.name,
                    error = %err,
                    "could not ask Apple which MDM server the token belongs to; stored it unchecked"
                );
                Ok((None, None))
            }
        }
    }

    /// The decrypted OAuth credentials of an entry, for the ABM client. `None` while pending.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], or [`ServiceError::Internal`] when the sealed token cannot
    /// be opened (wrong secret key).
    pub async fn credentials(&self, name: &str) -> Result<Option<DepTokens>, ServiceError> {
        let entry = self.load(name).await?;
        entry
            .server_token
            .map(|t| self.open_tokens(entry.id, &t.sealed_token))
            .transpose()
    }

    /// Deletes an entry, its key pair and token.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is no such entry.
    pub async fn delete(&self, actor: &Actor, name: &str) -> Result<(), ServiceError> {
        let now = guardmdm_store::now();
        let audit = audit(actor, "abm_token.delete", name, now, serde_json::json!({}));
        self.store
            .delete_abm_entry(name, &audit)
            .await
            .map_err(|e| not_found(e, name))
    }

    fn open_tokens(&self, id: EntryId, sealed: &[u8]) -> Result<DepTokens, ServiceError> {
        let json: SecretString = self.secrets.open_str(sealed, &server_token_context(id))?;
        DepTokens::from_json(json.expose_secret())
            .map_err(|e| ServiceError::Internal(format!("stored server token: {e}")))
    }

    /// The stored entry.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] when there is no such entry.
    pub async fn entry(&self, name: &str) -> Result<AbmEntry, ServiceError> {
        self.load(name).await
    }

    /// Records (`Some`) or clears (`None`) the problem Apple reported for the entry's token:
    /// `(kind, message)` as [`guardmdm_abm::DepError::token_problem`] gives it.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], storage failures.
    pub async fn report_problem(
        &self,
        name: &str,
        problem: Option<(&str, &str)>,
    ) -> Result<(), ServiceError> {
        let now = guardmdm_store::now();
        let problem = problem.map(|(kind, message)| TokenProblem {
            kind: kind.to_string(),
            message: message.to_string(),
            since: now,
        });
        self.store
            .set_abm_problem(name, problem.as_ref(), now)
            .await
            .map_err(|e| not_found(e, name))
    }

    async fn load(&self, name: &str) -> Result<AbmEntry, ServiceError> {
        self.store
            .get_abm_entry(name)
            .await
            .map_err(|e| not_found(e, name))
    }
}

/// The audit event of a server token upload (a renewal when one was installed).
fn upload_audit(
    actor: &Actor,
    name: &str,
    renewal: bool,
    force: bool,
    tokens: &DepTokens,
    account: Option<&AbmAccount>,
    now: OffsetDateTime,
) -> NewAuditEvent {
    let action = if renewal {
        "abm_token.renew"
    } else {
        "abm_token.upload"
    };
    audit(
        actor,
        action,
        name,
        now,
        serde_json::json!({
            "expires_at": rfc3339(tokens.access_token_expiry),
            "forced": force,
            "server_uuid": account.map(|a| a.server_uuid.clone()),
            "server_name": account.map(|a| a.server_name.clone()),
        }),
    )
}

fn not_found(err: StoreError, name: &str) -> ServiceError {
    match err {
        StoreError::NotFound => ServiceError::NotFound(format!("no ABM entry named {name:?}")),
        other => other.into(),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

pub(crate) fn audit(
    actor: &Actor,
    action: &str,
    target: &str,
    at: OffsetDateTime,
    details: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent {
        at,
        actor: actor.audit_name(),
        action: action.to_string(),
        target: target.to_string(),
        details,
    }
}

#[cfg(test)]
mod tests;

//! The global minimum OS per OS (README, "A minimum OS at enrollment"): what an admin sets,
//! audited. Enrollment applies it (`mdm/os_check.rs`); the rules are [`crate::os_minimum`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use guardmdm_store::{OsMinimum, OsUpdateStore, Store};

use crate::abm_entries::audit;
use crate::os::OsKey;
use crate::os_minimum::{MINIMUM_OSES, check_os, parse_minimum};
use crate::{Actor, ServiceError};

/// The minimum of one OS, as the API and dashboard show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinimumOsView {
    /// `ios`, `ipados`, `macos` or `visionos`.
    pub os: OsKey,
    /// `iOS`, `iPadOS`, `macOS`, `visionOS`.
    pub label: String,
    /// A version (`17.5`), or `null` for none.
    pub minimum: Option<String>,
    /// When it was set.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub updated_at: Option<OffsetDateTime>,
}

/// Global minimum OS settings.
pub struct MinimumOsService<S: ?Sized = dyn Store> {
    store: Arc<S>,
}

impl<S: ?Sized> Clone for MinimumOsService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
        }
    }
}

impl<S: ?Sized + OsUpdateStore> MinimumOsService<S> {
    /// A service over `store`.
    pub fn new(store: Arc<S>) -> Self {
        Self { store }
    }

    /// Every OS a minimum can be set for, with its minimum or none.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(&self) -> Result<Vec<MinimumOsView>, ServiceError> {
        let set = self.store.minimum_os().await?;
        Ok(MINIMUM_OSES
            .into_iter()
            .map(|os| {
                let found = set.iter().find(|m| m.os == os);
                MinimumOsView {
                    os,
                    label: os.label().to_string(),
                    minimum: found.map(|m| m.minimum.as_text().to_string()),
                    updated_at: found.map(|m| m.updated_at),
                }
            })
            .collect())
    }

    /// Sets the minimum of `os` to `minimum` (a version), or clears it (`None`
    /// or empty). Audited as `minimum_os.set` / `minimum_os.clear`.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for tvOS or a malformed version.
    pub async fn set(
        &self,
        actor: &Actor,
        os: OsKey,
        minimum: Option<&str>,
    ) -> Result<Vec<MinimumOsView>, ServiceError> {
        check_os(os)?;
        let minimum: Option<OsMinimum> = match minimum.map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(parse_minimum(text)?),
        };
        let action = if minimum.is_some() {
            "minimum_os.set"
        } else {
            "minimum_os.clear"
        };
        self.store
            .set_minimum_os(
                os,
                minimum.as_ref(),
                &audit(
                    actor,
                    action,
                    &format!("os:{}", os.as_str()),
                    guardmdm_store::now(),
                    serde_json::json!({ "minimum": minimum.as_ref().map(OsMinimum::as_text) }),
                ),
            )
            .await?;
        self.list().await
    }
}

//! Lookups more than one service needs: the names of profiles and ABM entries by id, a
//! profile by name, and GuardMDM's assignment record shown with those names. Profiles,
//! groups, the device list and the device details all use them;
//! keeping them here keeps those services from calling into one another.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use guardmdm_store::{
    AbmEntryStore, AdeProfile, AssignState, AssignmentConfigStore, AssignmentRecord, EntryId,
    ProfileId, StoreError,
};

use crate::ServiceError;

fn not_found_profile(name: &str) -> impl FnOnce(StoreError) -> ServiceError + '_ {
    move |e| match e {
        StoreError::NotFound => ServiceError::NotFound(format!("no ADE profile named {name:?}")),
        other => other.into(),
    }
}

/// A profile by name; [`ServiceError::NotFound`] naming it.
pub(crate) async fn load_profile<S: ?Sized + AssignmentConfigStore>(
    store: &S,
    name: &str,
) -> Result<AdeProfile, ServiceError> {
    store
        .get_profile(name)
        .await
        .map_err(not_found_profile(name))
}

/// The id of an optional profile name (`None` stays `None`).
pub(crate) async fn profile_id_of<S: ?Sized + AssignmentConfigStore>(
    store: &S,
    name: Option<&str>,
) -> Result<Option<ProfileId>, ServiceError> {
    match name {
        Some(name) => Ok(Some(load_profile(store, name).await?.id)),
        None => Ok(None),
    }
}

/// Every profile's name by id.
pub(crate) async fn profile_names<S: ?Sized + AssignmentConfigStore>(
    store: &S,
) -> Result<HashMap<ProfileId, String>, ServiceError> {
    Ok(store
        .list_profiles()
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect())
}

/// Every ABM entry's name by id.
pub(crate) async fn entry_names<S: ?Sized + AbmEntryStore>(
    store: &S,
) -> Result<HashMap<EntryId, String>, ServiceError> {
    Ok(store
        .list_abm_entries()
        .await?
        .into_iter()
        .map(|e| (e.id, e.name))
        .collect())
}

/// GuardMDM's assignment record, with names instead of ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentView {
    /// Where assigning stands.
    pub state: AssignState,
    /// The profile the last pass resolved.
    pub profile: Option<String>,
    /// Its version then.
    pub profile_version: Option<i64>,
    /// The rule that gave it (`device`, `group:NAME`, `default:ios`, `none`).
    pub rule: String,
    /// The Apple `profile_uuid` last sent.
    pub sent_profile_uuid: Option<String>,
    /// When it was last sent.
    #[serde(with = "time::serde::rfc3339::option")]
    pub attempted_at: Option<OffsetDateTime>,
    /// Not sent again before this time (cooldown or throttle).
    #[serde(with = "time::serde::rfc3339::option")]
    pub retry_at: Option<OffsetDateTime>,
    /// Sends so far.
    pub attempts: i64,
    /// The last problem; for an unassigned device, why no rule gave it a profile.
    pub last_error: Option<String>,
    /// When the record last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl AssignmentView {
    /// A record, naming its profile from `names`.
    pub fn new(record: AssignmentRecord, names: &HashMap<ProfileId, String>) -> Self {
        Self {
            profile: record.profile_id.and_then(|id| names.get(&id).cloned()),
            state: record.state,
            profile_version: record.profile_version,
            rule: record.rule.as_text(),
            sent_profile_uuid: record.apple_uuid,
            attempted_at: record.attempted_at,
            retry_at: record.retry_at,
            attempts: record.attempts,
            last_error: record.last_error,
            updated_at: record.updated_at,
        }
    }
}

//! ADE profiles, OS defaults and device-level assignment, as admins manage them.
//!
//! Apple's profiles are immutable: an edit writes a new version here, and the next assignment
//! pass defines that version at Apple (a new `profile_uuid` per ABM entry) and re-assigns
//! every device that resolves to the profile. Each version is kept, with the UUIDs Apple gave
//! it.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use guardmdm_store::{
    AbmEntryStore, AdeProfile, AssignmentConfigStore, NewAuditEvent, ProfileId, ProfileReferences,
    Store, StoreError,
};

use crate::lookup::{entry_names, load_profile, profile_id_of, profile_names};
use crate::os::OsKey;
use crate::pass_requests::PassRequests;
use crate::profile_spec::{self, EnrollmentType, ProfileSpec};
use crate::serial_list::{self, CsvReport};
use crate::{Actor, ServiceError};

/// A profile with everything an admin needs to see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileView {
    /// GuardMDM's name for it.
    pub name: String,
    /// The current version.
    pub version: i64,
    /// The specification as written.
    pub spec: ProfileSpec,
    /// Automated (mandatory) or user-initiated enrollment.
    pub enrollment_type: EnrollmentType,
    /// Exactly what Apple receives (defaults applied, every boolean explicit).
    pub apple: guardmdm_abm::Profile,
    /// Non-blocking remarks (for example an unknown Setup Assistant pane).
    pub warnings: Vec<String>,
    /// Where it is used.
    pub used_by: ProfileReferences,
    /// Apple's UUIDs for it, per ABM entry and version, newest first.
    pub definitions: Vec<DefinitionView>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the current version was written.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A profile version as defined at Apple for one ABM entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionView {
    /// The ABM entry.
    pub abm_entry: String,
    /// The profile version.
    pub version: i64,
    /// Apple's `profile_uuid`.
    pub profile_uuid: String,
    /// When Apple accepted it.
    #[serde(with = "time::serde::rfc3339")]
    pub defined_at: OffsetDateTime,
    /// Whether it is the current version's.
    pub current: bool,
}

/// One version of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    /// 1, 2, …
    pub version: i64,
    /// That version's specification.
    pub spec: serde_json::Value,
    /// Who wrote it.
    pub created_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Apple's UUIDs for this version, per ABM entry.
    pub definitions: Vec<DefinitionView>,
}

/// An OS and its default profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsDefaultView {
    /// The OS.
    pub os: OsKey,
    /// Its default profile; `None` when unset.
    pub profile: Option<String>,
    /// For iPadOS without its own default: the iOS default it falls back to.
    pub falls_back_to: Option<String>,
}

/// The answer to a create or update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileWrite {
    /// The profile now.
    pub profile: ProfileView,
    /// Whether a new version was written (an update identical to the current version writes
    /// none).
    pub changed: bool,
}

/// ADE profiles, OS defaults and device-level assignments.
pub struct ProfileService<S: ?Sized = dyn Store> {
    store: Arc<S>,
    passes: Arc<dyn PassRequests>,
    /// The default enrollment URL of profiles that give none.
    enroll_url: Arc<str>,
}

impl<S: ?Sized> Clone for ProfileService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            passes: self.passes.clone(),
            enroll_url: self.enroll_url.clone(),
        }
    }
}

fn audit(actor: &Actor, action: &str, target: String, details: serde_json::Value) -> NewAuditEvent {
    NewAuditEvent {
        at: guardmdm_store::now(),
        actor: actor.audit_name(),
        action: action.to_string(),
        target,
        details,
    }
}

impl<S: ?Sized + AbmEntryStore + AssignmentConfigStore> ProfileService<S> {
    /// A service over `store`; changes ask `passes` for assignment passes. `enroll_url` is
    /// the default enrollment URL of profiles that give none.
    pub fn new(store: Arc<S>, passes: Arc<dyn PassRequests>, enroll_url: &str) -> Self {
        Self {
            store,
            passes,
            enroll_url: enroll_url.into(),
        }
    }

    fn check(&self, spec: &ProfileSpec) -> Result<Vec<String>, ServiceError> {
        profile_spec::validate(spec, &self.enroll_url)
            .map(|valid| valid.warnings)
            .map_err(ServiceError::validation)
    }

    /// Checks a specification as [`Self::create`] and [`Self::update`] would, writing
    /// nothing: the warnings, or every invalid field (the dashboard shows them next to the
    /// fields when part of its form could not even be read).
    ///
    /// # Errors
    /// [`ServiceError::Validation`] listing every invalid field.
    pub fn check_spec(&self, spec: &ProfileSpec) -> Result<Vec<String>, ServiceError> {
        self.check(spec)
    }

    /// Creates a profile from its specification.
    ///
    /// # Errors
    /// [`ServiceError::Validation`] listing every invalid field; [`ServiceError::Conflict`]
    /// when the name is taken.
    pub async fn create(
        &self,
        actor: &Actor,
        spec: ProfileSpec,
    ) -> Result<ProfileView, ServiceError> {
        self.check(&spec)?;
        let json = spec_json(&spec)?;
        let created = self
            .store
            .create_profile(
                ProfileId::new_v4(),
                &spec.name,
                &json,
                &audit(
                    actor,
                    "profile.create",
                    format!("profile:{}", spec.name),
                    serde_json::json!({ "version": 1 }),
                ),
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ServiceError::Conflict(format!(
                    "an ADE profile named {:?} exists already",
                    spec.name
                )),
                other => other.into(),
            })?;
        self.view(&created).await
    }

    /// Writes a new version of a profile (unless the specification is unchanged) and starts
    /// re-assigning its devices. `expected_version` guards against a concurrent edit.
    ///
    /// # Errors
    /// [`ServiceError::Validation`]; [`ServiceError::NotFound`]; [`ServiceError::Invalid`]
    /// for a rename; [`ServiceError::Conflict`] when `expected_version` is stale.
    pub async fn update(
        &self,
        actor: &Actor,
        name: &str,
        spec: ProfileSpec,
        expected_version: Option<i64>,
    ) -> Result<ProfileWrite, ServiceError> {
        if spec.name != name {
            return Err(ServiceError::Invalid(format!(
                "the file names profile {:?}, not {name:?}: profiles cannot be renamed; create a new one instead",
                spec.name
            )));
        }
        self.check(&spec)?;
        let current = load_profile(self.store.as_ref(), name).await?;
        if let Some(expected) = expected_version
            && expected != current.version
        {
            return Err(ServiceError::Conflict(format!(
                "profile {name:?} is at version {}, not {expected}: someone else changed it; reload and retry",
                current.version
            )));
        }
        let json = spec_json(&spec)?;
        if json == current.spec {
            return Ok(ProfileWrite {
                profile: self.view(&current).await?,
                changed: false,
            });
        }
        let updated = self
            .store
            .update_profile(
                current.id,
                &json,
                Some(current.version),
                &audit(
                    actor,
                    "profile.update",
                    format!("profile:{name}"),
                    serde_json::json!({ "version": current.version + 1 }),
                ),
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ServiceError::Conflict(format!(
                    "profile {name:?} changed while it was being saved; reload and retry"
                )),
                other => other.into(),
            })?;
        self.passes.request_pass();
        Ok(ProfileWrite {
            profile: self.view(&updated).await?,
            changed: true,
        })
    }

    /// One profile.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn get(&self, name: &str) -> Result<ProfileView, ServiceError> {
        let profile = load_profile(self.store.as_ref(), name).await?;
        self.view(&profile).await
    }

    /// Every profile, by name.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn list(&self) -> Result<Vec<ProfileView>, ServiceError> {
        let mut views = Vec::new();
        for p in self.store.list_profiles().await? {
            views.push(self.view(&p).await?);
        }
        Ok(views)
    }

    /// A profile's versions, newest first.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`].
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionView>, ServiceError> {
        let profile = load_profile(self.store.as_ref(), name).await?;
        let definitions = self.definitions(&profile).await?;
        let mut versions: Vec<VersionView> = self
            .store
            .profile_versions(profile.id)
            .await?
            .into_iter()
            .map(|v| VersionView {
                version: v.version,
                definitions: definitions
                    .iter()
                    .filter(|d| d.version == v.version)
                    .cloned()
                    .collect(),
                spec: v.spec,
                created_by: v.created_by,
                created_at: v.created_at,
            })
            .collect();
        versions.reverse();
        Ok(versions)
    }

    /// Deletes a profile that nothing uses.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; [`ServiceError::Conflict`] naming what still uses it.
    pub async fn delete(&self, actor: &Actor, name: &str) -> Result<(), ServiceError> {
        let profile = load_profile(self.store.as_ref(), name).await?;
        self.store
            .delete_profile(
                profile.id,
                &audit(
                    actor,
                    "profile.delete",
                    format!("profile:{name}"),
                    serde_json::json!({ "version": profile.version }),
                ),
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => {
                    ServiceError::Conflict(format!("{m}: assign another profile there first"))
                }
                StoreError::NotFound => {
                    ServiceError::NotFound(format!("no ADE profile named {name:?}"))
                }
                other => other.into(),
            })
    }

    /// Sets (`Some`) or clears (`None`) the default profile of an OS, and starts assigning.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown profile.
    pub async fn set_default(
        &self,
        actor: &Actor,
        os: OsKey,
        profile: Option<&str>,
    ) -> Result<Vec<OsDefaultView>, ServiceError> {
        let id = profile_id_of(self.store.as_ref(), profile).await?;
        self.store
            .set_os_default(
                os,
                id,
                &audit(
                    actor,
                    if id.is_some() {
                        "profile.default.set"
                    } else {
                        "profile.default.clear"
                    },
                    format!("os:{}", os.as_str()),
                    serde_json::json!({ "profile": profile }),
                ),
            )
            .await?;
        self.passes.request_pass();
        self.defaults().await
    }

    /// The default profile of every OS.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn defaults(&self) -> Result<Vec<OsDefaultView>, ServiceError> {
        let names = profile_names(self.store.as_ref()).await?;
        let set: HashMap<OsKey, ProfileId> = self
            .store
            .os_defaults()
            .await?
            .into_iter()
            .map(|d| (d.os, d.profile_id))
            .collect();
        let name_of = |os: OsKey| set.get(&os).and_then(|id| names.get(id)).cloned();
        Ok(OsKey::ALL
            .into_iter()
            .map(|os| {
                let profile = name_of(os);
                let falls_back_to = if profile.is_none() {
                    os.fallback().and_then(name_of)
                } else {
                    None
                };
                OsDefaultView {
                    os,
                    profile,
                    falls_back_to,
                }
            })
            .collect())
    }

    /// Assigns a profile (`Some`) to serials explicitly, or clears their explicit profile
    /// (`None`), from a list or a CSV. Serials GuardMDM has never seen in ABM, or that left
    /// ABM, are reported and not applied. With `dry_run` nothing changes.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] for an unknown profile; [`ServiceError::Invalid`] for a
    /// CSV that cannot be read at all.
    pub async fn assign(
        &self,
        actor: &Actor,
        profile: Option<&str>,
        input: serial_list::SerialInput,
        dry_run: bool,
    ) -> Result<CsvReport, ServiceError> {
        let id = profile_id_of(self.store.as_ref(), profile).await?;
        let (report, serials) = serial_list::check(self.store.as_ref(), input, dry_run).await?;
        if !dry_run && !serials.is_empty() {
            self.store
                .set_device_profiles(
                    &serials,
                    id,
                    &audit(
                        actor,
                        if id.is_some() {
                            "profile.assign"
                        } else {
                            "profile.unassign"
                        },
                        match profile {
                            Some(name) => format!("profile:{name}"),
                            None => "devices".to_string(),
                        },
                        serde_json::json!({ "serials": serials.len() }),
                    ),
                )
                .await?;
            self.passes.request_pass();
        }
        Ok(report)
    }

    async fn definitions(&self, profile: &AdeProfile) -> Result<Vec<DefinitionView>, ServiceError> {
        let entries = entry_names(self.store.as_ref()).await?;
        let mut views: Vec<DefinitionView> = self
            .store
            .profile_definitions(profile.id)
            .await?
            .into_iter()
            .map(|d| DefinitionView {
                abm_entry: entries.get(&d.entry_id).cloned().unwrap_or_default(),
                version: d.version,
                profile_uuid: d.apple_uuid,
                defined_at: d.defined_at,
                current: d.version == profile.version,
            })
            .collect();
        views.sort_by(|a, b| (b.version, &a.abm_entry).cmp(&(a.version, &b.abm_entry)));
        Ok(views)
    }

    async fn view(&self, profile: &AdeProfile) -> Result<ProfileView, ServiceError> {
        let spec: ProfileSpec = serde_json::from_value(profile.spec.clone()).map_err(|e| {
            ServiceError::Internal(format!(
                "stored profile {:?} is unreadable: {e}",
                profile.name
            ))
        })?;
        let (apple, warnings) = match profile_spec::validate(&spec, &self.enroll_url) {
            Ok(valid) => (valid.apple, valid.warnings),
            // Stored specs were valid when written; a later rule change shows here.
            Err(errors) => (
                guardmdm_abm::Profile::default(),
                errors
                    .into_iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect(),
            ),
        };
        let used_by = self.store.profile_references(profile.id).await?;
        let mut warnings = warnings;
        warnings.extend(skip_items_not_for(
            apple.skip_setup_items.as_deref().unwrap_or_default(),
            &used_by.os_defaults,
        ));
        Ok(ProfileView {
            name: profile.name.clone(),
            version: profile.version,
            enrollment_type: spec.enrollment_type(),
            spec,
            apple,
            warnings,
            used_by,
            definitions: self.definitions(profile).await?,
            created_at: profile.created_at,
            updated_at: profile.updated_at,
        })
    }
}

/// Warnings for Setup Assistant panes that do not exist on an OS the profile is the default
/// for (Apple ignores them there; the admin may have meant another profile).
fn skip_items_not_for(items: &[String], os_defaults: &[OsKey]) -> Vec<String> {
    let mut warnings = Vec::new();
    for &key in os_defaults {
        let known = crate::skip_keys::skip_keys_for(key.as_str());
        let foreign: Vec<&str> = items
            .iter()
            .map(String::as_str)
            .filter(|item| crate::skip_keys::lookup(item).is_some() && !known.contains(item))
            .collect();
        if !foreign.is_empty() {
            warnings.push(format!(
                "the {} default skips {}, which {} has no such Setup Assistant pane for",
                key.label(),
                foreign.join(", "),
                key.label()
            ));
        }
    }
    warnings
}

fn spec_json(spec: &ProfileSpec) -> Result<serde_json::Value, ServiceError> {
    serde_json::to_value(spec).map_err(|e| ServiceError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use guardmdm_store::Store;
    use guardmdm_store_sqlite::SqliteStore;

    use super::{OsKey, ProfileService, ProfileSpec, skip_items_not_for};
    use crate::Actor;
    use crate::pass_requests::PassRequests;

    /// Counts the assignment passes asked for, and runs none.
    #[derive(Default)]
    struct CountedPasses(AtomicUsize);

    impl PassRequests for CountedPasses {
        fn request_pass(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_profile_change_asks_for_an_assignment_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("g.db")).await.unwrap());
        let passes = Arc::new(CountedPasses::default());
        let profiles = ProfileService::new(
            store,
            passes.clone(),
            "https://mdm.example.com/mdm/ade/enroll",
        );
        let requested = || passes.0.load(Ordering::SeqCst);
        let spec = ProfileSpec {
            name: "staff".into(),
            ..ProfileSpec::default()
        };
        profiles.create(&Actor::System, spec.clone()).await.unwrap();
        assert_eq!(requested(), 0, "no device uses a new profile");

        let unchanged = profiles
            .update(&Actor::System, "staff", spec.clone(), None)
            .await
            .unwrap();
        assert!(!unchanged.changed);
        assert_eq!(requested(), 0, "an identical update changes nothing");

        let edited = ProfileSpec {
            department: Some("IT".into()),
            ..spec
        };
        let write = profiles
            .update(&Actor::System, "staff", edited, Some(1))
            .await
            .unwrap();
        assert!(write.changed);
        assert_eq!(requested(), 1, "a new version is assigned again");

        profiles
            .set_default(&Actor::System, OsKey::Ios, Some("staff"))
            .await
            .unwrap();
        assert_eq!(requested(), 2, "a new default is assigned");
    }

    #[test]
    fn skip_items_an_os_does_not_have_are_named_for_its_default() {
        let items = [
            "Siri".to_string(),
            "FileVault".to_string(),
            "TVRoom".to_string(),
        ];
        let w = skip_items_not_for(&items, &[OsKey::Ios]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("FileVault") && w[0].contains("TVRoom"),
            "{w:?}"
        );
        assert!(!w[0].contains("Siri"), "{w:?}");
        let none = skip_items_not_for(&["Siri".to_string()], &[OsKey::Macos]);
        assert!(none.is_empty(), "{none:?}");
        assert!(skip_items_not_for(&items, &[]).is_empty());
    }
}

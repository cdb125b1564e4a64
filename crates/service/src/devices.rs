//! One ABM device in full: Apple's record, the profile it resolves to and why, and where
//! assigning it stands (`guardmdm devices show SERIAL`).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use guardmdm_store::{
    AbmDevice, AbmEntryStore, AssignmentConfigStore, AssignmentStateStore, DeviceSyncStore,
    EntryId, GroupId, MdmStore, OsUpdateStore, ProfileId, Store, StoredAbmDevice,
};

use crate::ServiceError;
use crate::group_rule::DeviceFacts;
use crate::lookup::entry_names;
use crate::resolve::{Membership, Resolution, Resolver};
use crate::serial_list::normalize;

/// Re-exported at its former path (it moved to [`crate::lookup`]).
pub use crate::lookup::AssignmentView;

/// What Apple reports about the device's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppleView {
    /// `empty`, `assigned`, `pushed` or `removed`.
    pub profile_status: Option<String>,
    /// The profile Apple has for it.
    pub profile_uuid: Option<String>,
    /// When it was assigned.
    #[serde(with = "time::serde::rfc3339::option")]
    pub profile_assign_time: Option<OffsetDateTime>,
    /// When the device downloaded it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub profile_push_time: Option<OffsetDateTime>,
    /// Apple's UUID for the resolved profile's current version in this ABM entry, once
    /// defined.
    pub expected_profile_uuid: Option<String>,
    /// Whether Apple has the expected profile.
    pub up_to_date: bool,
}

/// One ABM record of a serial, explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceDetail {
    /// The ABM entry.
    pub abm_entry: String,
    /// `assigned` (in ABM for this server) or `removed`.
    pub abm_status: String,
    /// Apple's record and GuardMDM's bookkeeping.
    pub device: StoredAbmDevice,
    /// The profile it resolves to now, with every rule considered.
    pub resolution: Resolution,
    /// Its explicit profile, if any.
    pub explicit_profile: Option<String>,
    /// The groups it belongs to (static membership or a matching rule).
    pub groups: Vec<String>,
    /// What Apple reports.
    pub apple: AppleView,
    /// Where assigning stands; `None` before the first assignment pass.
    pub assignment: Option<AssignmentView>,
    /// The device's MDM enrollment, once it enrolled (`enrolled` is the device status
    /// Enrolled, `docs/architecture.md` §9).
    pub enrollment: Option<crate::mdm::EnrollmentView>,
    /// What enrollment did with the device below its minimum OS (`docs/protocol.md` §6.5):
    /// held for an update, or let through because it cannot be asked; newest first.
    #[serde(default)]
    pub os_updates: Vec<guardmdm_store::OsUpdateEvent>,
}

/// Device explanations.
pub struct DeviceService<S: ?Sized = dyn Store> {
    store: Arc<S>,
    pushes: crate::mdm::PushStates,
}

impl<S: ?Sized> Clone for DeviceService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            pushes: self.pushes.clone(),
        }
    }
}

impl<S> DeviceService<S>
where
    S: ?Sized
        + AbmEntryStore
        + AssignmentConfigStore
        + AssignmentStateStore
        + DeviceSyncStore
        + MdmStore
        + OsUpdateStore,
{
    /// A service over `store`, showing enrolled devices' push state from `pushes`.
    pub fn new(store: Arc<S>, pushes: crate::mdm::PushStates) -> Self {
        Self { store, pushes }
    }

    /// Every ABM record of a serial (one per entry that has it), explained.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a malformed serial; [`ServiceError::NotFound`] when no
    /// ABM entry has it.
    pub async fn show(&self, serial: &str) -> Result<Vec<DeviceDetail>, ServiceError> {
        let serial = normalize(serial).map_err(ServiceError::Invalid)?;
        let devices = self
            .store
            .list_abm_devices(&guardmdm_store::DeviceQuery {
                serial: Some(serial.clone()),
                limit: 1000,
                ..guardmdm_store::DeviceQuery::default()
            })
            .await?;
        if devices.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "no ABM device with serial {serial}: it is not assigned to this MDM server in Apple Business Manager, or no sync has seen it yet"
            )));
        }
        let config = self.store.assignment_config().await?;
        let resolver = Resolver::new(&config);
        let names: HashMap<ProfileId, String> = config
            .profiles
            .iter()
            .map(|p| (p.id, p.name.clone()))
            .collect();
        let entries = entry_names(self.store.as_ref()).await?;
        let explicit = self.store.device_profile(&serial).await?;
        let enrollment = self.enrollment(&serial).await?;
        let statics = self.store.groups_of_serial(&serial).await?;
        let os_updates = self.store.os_update_events(&serial).await?;
        let mut details = Vec::with_capacity(devices.len());
        for stored in devices {
            let entry = entries.get(&stored.entry_id).cloned().unwrap_or_default();
            let d = &stored.device;
            let facts = DeviceFacts::new(d, &entry);
            let resolution = resolver.resolve(&facts, explicit, &statics);
            let groups = groups_of(&resolver, &facts, &statics);
            let expected = self.expected_uuid(stored.entry_id, &resolution).await?;
            let record = self
                .store
                .assignments(stored.entry_id, std::slice::from_ref(&serial))
                .await?
                .into_iter()
                .next();
            details.push(DeviceDetail {
                abm_entry: entry.clone(),
                abm_status: if stored.removed_at.is_some() {
                    "removed"
                } else {
                    "assigned"
                }
                .to_string(),
                apple: AppleView::new(d, expected),
                explicit_profile: explicit.and_then(|id| names.get(&id).cloned()),
                groups,
                resolution,
                assignment: record.map(|r| AssignmentView::new(r, &names)),
                enrollment: enrollment.clone(),
                os_updates: os_updates.clone(),
                device: stored,
            });
        }
        Ok(details)
    }

    /// The serial's MDM enrollment, with its push state, once it enrolled.
    async fn enrollment(
        &self,
        serial: &str,
    ) -> Result<Option<crate::mdm::EnrollmentView>, ServiceError> {
        Ok(self
            .store
            .list_enrollments(&guardmdm_store::EnrollmentQuery {
                serial_number: Some(serial.to_string()),
                limit: 1,
                ..guardmdm_store::EnrollmentQuery::default()
            })
            .await?
            .into_iter()
            .next()
            .map(|e| {
                let push = self.pushes.status(&e.udid);
                crate::mdm::EnrollmentView::from(e).with_push(push)
            }))
    }

    /// Apple's UUID for the resolved profile's version in the entry, once defined there.
    async fn expected_uuid(
        &self,
        entry_id: EntryId,
        resolution: &Resolution,
    ) -> Result<Option<String>, ServiceError> {
        Ok(
            match resolution.profile_id.zip(resolution.profile_version) {
                Some((pid, version)) => self
                    .store
                    .entry_profile_definitions(entry_id)
                    .await?
                    .into_iter()
                    .find(|def| def.profile_id == pid && def.version == version)
                    .map(|def| def.apple_uuid),
                None => None,
            },
        )
    }
}

impl AppleView {
    /// What Apple reports about `d`, compared with the profile it should have (`expected`,
    /// Apple's UUID for it).
    fn new(d: &AbmDevice, expected: Option<String>) -> Self {
        let up_to_date = match (&expected, &d.profile_uuid) {
            (Some(e), Some(a)) => {
                e.eq_ignore_ascii_case(a)
                    && matches!(d.profile_status.as_deref(), Some("assigned" | "pushed"))
            }
            _ => false,
        };
        Self {
            profile_status: d.profile_status.clone(),
            profile_uuid: d.profile_uuid.clone(),
            profile_assign_time: d.profile_assign_time,
            profile_push_time: d.profile_push_time,
            expected_profile_uuid: expected,
            up_to_date,
        }
    }
}

/// The groups a device belongs to: static membership, or a smart group's rule it matches.
fn groups_of(resolver: &Resolver, facts: &DeviceFacts<'_>, statics: &[GroupId]) -> Vec<String> {
    resolver
        .groups()
        .iter()
        .filter(|g| match &g.membership {
            Membership::Static => statics.contains(&g.id),
            Membership::Smart(rule) => rule.matches(facts),
            Membership::Broken(_) => false,
        })
        .map(|g| g.name.clone())
        .collect()
}

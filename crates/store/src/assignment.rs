//! ADE profile assignment: what an admin configures (profiles and their versions, device
//! groups, OS defaults, explicit device assignments) and what GuardMDM tracks per ABM device
//! (the resolved profile and where pushing it to Apple stands).
//!
//! The store keeps a profile's specification as opaque JSON: its shape and rules belong to the
//! service. Every configuration change bumps one counter, the *assignment generation*, in the
//! same transaction; an entry's assignment pass records the generation it applied, so a pass
//! that started before a change is followed by another one.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::stored_text::stored_text;
use crate::{EntryId, GroupId, NewAuditEvent, ProfileId, StoreError, StoredAbmDevice, StoredText};

/// An OS with its own default profile, stored as [`OsKey::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OsKey {
    /// iPhone and iPod touch.
    Ios,
    /// iPad.
    Ipados,
    /// Mac.
    Macos,
    /// Apple TV.
    Tvos,
    /// Apple Vision Pro.
    Visionos,
}

/// An OS name [`OsKey::parse`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown OS {0:?}: use ios, ipados, macos, tvos or visionos")]
pub struct UnknownOs(pub String);

impl OsKey {
    /// Every key, in display order.
    pub const ALL: [Self; 5] = [
        Self::Ios,
        Self::Ipados,
        Self::Macos,
        Self::Tvos,
        Self::Visionos,
    ];

    /// `ios`, `ipados`, `macos`, `tvos` or `visionos`: the stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ios => "ios",
            Self::Ipados => "ipados",
            Self::Macos => "macos",
            Self::Tvos => "tvos",
            Self::Visionos => "visionos",
        }
    }

    /// The name an admin reads: `iOS`, `iPadOS`, `macOS`, `tvOS`, `visionOS`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ios => "iOS",
            Self::Ipados => "iPadOS",
            Self::Macos => "macOS",
            Self::Tvos => "tvOS",
            Self::Visionos => "visionOS",
        }
    }

    /// Parses a key as an admin types it: case-insensitive, accepting Apple's spellings too
    /// (`OSX`, `macOS`, `iPadOS`).
    ///
    /// # Errors
    /// [`UnknownOs`] (naming the accepted values) for anything else.
    pub fn parse(text: &str) -> Result<Self, UnknownOs> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ios" => Ok(Self::Ios),
            "ipados" => Ok(Self::Ipados),
            "macos" | "osx" | "mac" => Ok(Self::Macos),
            "tvos" => Ok(Self::Tvos),
            "visionos" => Ok(Self::Visionos),
            _ => Err(UnknownOs(text.to_string())),
        }
    }

    /// The OS of an ABM device record, from Apple's `os` and `device_family`. The family
    /// decides where it is known, so an iPad whose record still says `iOS` (before protocol
    /// version 7) counts as iPadOS. `None` when neither says.
    pub fn of_device(os: Option<&str>, family: Option<&str>) -> Option<Self> {
        let family = family.map(str::to_ascii_lowercase);
        match family.as_deref() {
            Some("iphone" | "ipod") => return Some(Self::Ios),
            Some("ipad") => return Some(Self::Ipados),
            Some("mac") => return Some(Self::Macos),
            Some("appletv") => return Some(Self::Tvos),
            Some("vision") => return Some(Self::Visionos),
            _ => {}
        }
        match os.map(str::to_ascii_lowercase).as_deref() {
            Some("ios") => Some(Self::Ios),
            Some("ipados") => Some(Self::Ipados),
            Some("osx" | "macos") => Some(Self::Macos),
            Some("tvos") => Some(Self::Tvos),
            Some("visionos") => Some(Self::Visionos),
            _ => None,
        }
    }

    /// The OS whose default an OS falls back to when it has none: iPadOS falls back to iOS
    /// (README, "ADE profiles and who gets which").
    pub fn fallback(self) -> Option<Self> {
        match self {
            Self::Ipados => Some(Self::Ios),
            _ => None,
        }
    }
}

stored_text!(OsKey, "OS", no_display);

impl fmt::Display for OsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A device's assignment state, stored as [`AssignState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignState {
    /// No profile resolves.
    Unassigned,
    /// To be sent to Apple.
    Pending,
    /// Apple accepted it.
    Assigned,
    /// The device downloaded it.
    Pushed,
    /// Apple says the device is not on this MDM server.
    NotAccessible,
    /// Apple answered `FAILED`: cooldown.
    Failed,
    /// Apple answered `THROTTLED`: wait.
    Throttled,
    /// The device left ABM.
    Removed,
}

impl AssignState {
    /// Every state.
    pub const ALL: [Self; 8] = [
        Self::Unassigned,
        Self::Pending,
        Self::Assigned,
        Self::Pushed,
        Self::NotAccessible,
        Self::Failed,
        Self::Throttled,
        Self::Removed,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unassigned => "unassigned",
            Self::Pending => "pending",
            Self::Assigned => "assigned",
            Self::Pushed => "pushed",
            Self::NotAccessible => "not_accessible",
            Self::Failed => "failed",
            Self::Throttled => "throttled",
            Self::Removed => "removed",
        }
    }
}

stored_text!(AssignState, "assignment state");

/// Which rule gave a device its profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleRef {
    /// The explicit device assignment.
    Device,
    /// A group.
    Group {
        /// Its name.
        name: String,
    },
    /// An OS default.
    Default {
        /// The OS whose default was used (iOS for an iPad falling back).
        os: OsKey,
    },
    /// Nothing matched.
    None,
}

impl RuleRef {
    /// The stored form: `device`, `group:NAME`, `default:ios`, `none`.
    pub fn as_text(&self) -> String {
        match self {
            Self::Device => "device".to_string(),
            Self::Group { name } => format!("group:{name}"),
            Self::Default { os } => format!("default:{}", os.as_str()),
            Self::None => "none".to_string(),
        }
    }

    /// Parses [`Self::as_text`]; `None` for anything else.
    pub fn parse_text(text: &str) -> Option<Self> {
        match text {
            "device" => Some(Self::Device),
            "none" => Some(Self::None),
            _ => {
                if let Some(name) = text.strip_prefix("group:") {
                    Some(Self::Group {
                        name: name.to_string(),
                    })
                } else {
                    let os = text.strip_prefix("default:")?;
                    OsKey::from_stored(os).map(|os| Self::Default { os })
                }
            }
        }
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device => f.write_str("explicit device assignment"),
            Self::Group { name } => write!(f, "group {name:?}"),
            Self::Default { os } => write!(f, "{} default", os.label()),
            Self::None => f.write_str("no rule"),
        }
    }
}

/// [`RuleRef`] as its stored text in serialised records (`group:sales`).
mod rule_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::RuleRef;

    pub(super) fn serialize<S: Serializer>(rule: &RuleRef, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rule.as_text())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RuleRef, D::Error> {
        let text = String::deserialize(d)?;
        RuleRef::parse_text(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown rule {text:?}")))
    }
}

/// An ADE profile: a name GuardMDM knows it by, and its current version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdeProfile {
    /// Stable id.
    pub id: ProfileId,
    /// Unique name (the CLI's handle).
    pub name: String,
    /// The current version (1 at creation, +1 per update).
    pub version: i64,
    /// The current version's specification (service-defined JSON).
    pub spec: serde_json::Value,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the current version was written.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One version of a profile, kept for its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdeProfileVersion {
    /// The profile.
    pub profile_id: ProfileId,
    /// 1, 2, …
    pub version: i64,
    /// That version's specification.
    pub spec: serde_json::Value,
    /// Who wrote it (the audit actor).
    pub created_by: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A profile version as defined at Apple for one ABM entry (Apple's profiles are per MDM
/// server and immutable: each version gets its own `profile_uuid` per entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileDefinition {
    /// The ABM entry.
    pub entry_id: EntryId,
    /// The profile.
    pub profile_id: ProfileId,
    /// Its version.
    pub version: i64,
    /// Apple's `profile_uuid`.
    pub apple_uuid: String,
    /// When Apple accepted it.
    #[serde(with = "time::serde::rfc3339")]
    pub defined_at: OffsetDateTime,
}

/// Where a profile is used: what blocks deleting it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileReferences {
    /// OSes it is the default for.
    pub os_defaults: Vec<OsKey>,
    /// Names of groups that assign it.
    pub groups: Vec<String>,
    /// How many serials it is explicitly assigned to.
    pub devices: u64,
}

impl ProfileReferences {
    /// Whether nothing uses the profile.
    pub fn is_empty(&self) -> bool {
        self.os_defaults.is_empty() && self.groups.is_empty() && self.devices == 0
    }

    /// What blocks deleting profile `name`, for the admin: `profile "x" is used by: the ios
    /// default; groups "a", "b"; 3 devices`. Backends put it in the [`StoreError::Conflict`]
    /// of a refused delete.
    pub fn describe(&self, name: &str) -> String {
        let mut uses = Vec::new();
        match self.os_defaults.as_slice() {
            [] => {}
            [os] => uses.push(format!("the {} default", os.as_str())),
            many => {
                let keys: Vec<&str> = many.iter().map(|os| os.as_str()).collect();
                uses.push(format!("the {} defaults", keys.join(", ")));
            }
        }
        let quoted: Vec<String> = self.groups.iter().map(|g| format!("{g:?}")).collect();
        match quoted.as_slice() {
            [] => {}
            [group] => uses.push(format!("group {group}")),
            many => uses.push(format!("groups {}", many.join(", "))),
        }
        match self.devices {
            0 => {}
            1 => uses.push("1 device".to_string()),
            n => uses.push(format!("{n} devices")),
        }
        format!("profile {name:?} is used by: {}", uses.join("; "))
    }
}

/// An OS default: devices of this OS with no explicit or group profile get it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsDefault {
    /// The OS.
    pub os: OsKey,
    /// The profile.
    pub profile_id: ProfileId,
    /// When it was set.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A device group: static (a list of serials, `rule` is `None`) or smart (a rule over ABM
/// attributes, service-defined JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceGroup {
    /// Stable id.
    pub id: GroupId,
    /// Unique name.
    pub name: String,
    /// The smart group's rule; `None` for a static group.
    pub rule: Option<serde_json::Value>,
    /// The profile the group assigns, if any.
    pub profile_id: Option<ProfileId>,
    /// Precedence among groups: the lowest number wins (ties: by name).
    pub priority: i32,
    /// Number of static members (0 for a smart group).
    pub member_count: u64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed (not counting members).
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A new group.
#[derive(Debug, Clone)]
pub struct NewDeviceGroup {
    /// Id to use.
    pub id: GroupId,
    /// Unique name.
    pub name: String,
    /// `None` for a static group.
    pub rule: Option<serde_json::Value>,
    /// The profile it assigns.
    pub profile_id: Option<ProfileId>,
    /// Precedence (lowest wins).
    pub priority: i32,
}

/// A change to a group; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct GroupUpdate {
    /// The smart rule (only for a smart group; the service checks).
    pub rule: Option<serde_json::Value>,
    /// `Some(None)` clears the profile.
    pub profile_id: Option<Option<ProfileId>>,
    /// Precedence.
    pub priority: Option<i32>,
}

/// Everything the resolver needs, for one ABM entry, in memory: the configuration is small
/// (profiles, groups, defaults), unlike the devices and memberships.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssignmentConfig {
    /// The assignment generation this snapshot reflects.
    pub generation: i64,
    /// Every profile (current versions).
    pub profiles: Vec<AdeProfile>,
    /// Every group.
    pub groups: Vec<DeviceGroup>,
    /// Every OS default.
    pub os_defaults: Vec<OsDefault>,
}

/// GuardMDM's record of one ABM device's assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentRecord {
    /// The device's serial (within the entry the record is stored for).
    pub serial_number: String,
    /// The resolved profile; `None` when unassigned.
    pub profile_id: Option<ProfileId>,
    /// The resolved profile's version.
    pub profile_version: Option<i64>,
    /// Which rule gave it (serialised as its stored text: `device`, `group:sales`,
    /// `default:ios`, `none`).
    #[serde(with = "rule_text")]
    pub rule: RuleRef,
    /// Where assigning it stands.
    pub state: AssignState,
    /// The Apple `profile_uuid` last sent for this device.
    pub apple_uuid: Option<String>,
    /// When it was last sent to Apple.
    #[serde(with = "time::serde::rfc3339::option")]
    pub attempted_at: Option<OffsetDateTime>,
    /// Not before this time may it be sent again (failed: 24 h cooldown; throttled: Apple's
    /// `retry_after_seconds`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub retry_at: Option<OffsetDateTime>,
    /// How many times it was sent.
    pub attempts: i64,
    /// The last problem, for the admin.
    pub last_error: Option<String>,
    /// When the record last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One device as the assignment pass sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentInput {
    /// The ABM record.
    pub device: StoredAbmDevice,
    /// Its explicit (device-level) profile.
    pub explicit_profile: Option<ProfileId>,
    /// Static groups it is a member of.
    pub static_groups: Vec<GroupId>,
    /// GuardMDM's record, if a pass has seen it.
    pub record: Option<AssignmentRecord>,
}

/// The devices an incremental assignment pass looks at: those whose ABM record changed after
/// `changed_after` (new devices included), and those whose record is `pending` or has a
/// `retry_at` at or before `due_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputFilter {
    /// Devices updated after this time.
    pub changed_after: OffsetDateTime,
    /// Records due by this time.
    pub due_by: OffsetDateTime,
}

/// Whether a serial is known, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SerialPresence {
    /// Never seen in any ABM entry.
    Unknown,
    /// Seen, but removed from ABM in every entry that had it.
    Removed,
    /// Currently assigned to this MDM server in some entry.
    InAbm,
}

/// The last assignment pass of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentPass {
    /// The entry.
    pub entry_id: EntryId,
    /// The assignment generation the pass applied.
    pub generation: i64,
    /// When it finished.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// Service-defined summary (counts per state, pushes, errors).
    pub summary: serde_json::Value,
    /// What stopped it, if it did not complete.
    pub error: Option<String>,
}

/// Storage of profiles, groups, OS defaults and explicit assignments. Every mutating method
/// writes its audit event and bumps the assignment generation in the same transaction.
#[async_trait]
pub trait AssignmentConfigStore: Send + Sync {
    /// Creates a profile at version 1 (and its first version row). [`StoreError::Conflict`]
    /// when the name is taken.
    async fn create_profile(
        &self,
        id: ProfileId,
        name: &str,
        spec: &serde_json::Value,
        audit: &NewAuditEvent,
    ) -> Result<AdeProfile, StoreError>;

    /// Writes a new version of a profile. With `expected_version`, fails with
    /// [`StoreError::Conflict`] when the current version differs (a concurrent edit).
    /// [`StoreError::NotFound`] for an unknown id.
    async fn update_profile(
        &self,
        id: ProfileId,
        spec: &serde_json::Value,
        expected_version: Option<i64>,
        audit: &NewAuditEvent,
    ) -> Result<AdeProfile, StoreError>;

    /// A profile by name. [`StoreError::NotFound`] when there is none.
    async fn get_profile(&self, name: &str) -> Result<AdeProfile, StoreError>;

    /// Every profile, by name.
    async fn list_profiles(&self) -> Result<Vec<AdeProfile>, StoreError>;

    /// A profile's versions, oldest first.
    async fn profile_versions(&self, id: ProfileId) -> Result<Vec<AdeProfileVersion>, StoreError>;

    /// Where a profile is used.
    async fn profile_references(&self, id: ProfileId) -> Result<ProfileReferences, StoreError>;

    /// Deletes a profile with its versions and definitions. [`StoreError::Conflict`] (naming
    /// the users) when a default, group or device still uses it, checked in the same
    /// transaction; [`StoreError::NotFound`] for an unknown id.
    async fn delete_profile(&self, id: ProfileId, audit: &NewAuditEvent) -> Result<(), StoreError>;

    /// Records that Apple defined `version` of a profile for an entry (idempotent: a second
    /// record for the same entry, profile and version replaces the first).
    async fn record_profile_definition(
        &self,
        definition: &ProfileDefinition,
    ) -> Result<(), StoreError>;

    /// Definitions of one entry, every profile and version.
    async fn entry_profile_definitions(
        &self,
        entry_id: EntryId,
    ) -> Result<Vec<ProfileDefinition>, StoreError>;

    /// Definitions of one profile, every entry and version.
    async fn profile_definitions(
        &self,
        profile_id: ProfileId,
    ) -> Result<Vec<ProfileDefinition>, StoreError>;

    /// Sets (`Some`) or clears (`None`) the default profile of an OS.
    async fn set_os_default(
        &self,
        os: OsKey,
        profile_id: Option<ProfileId>,
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError>;

    /// Every OS default.
    async fn os_defaults(&self) -> Result<Vec<OsDefault>, StoreError>;

    /// Creates a group. [`StoreError::Conflict`] when the name is taken.
    async fn create_group(
        &self,
        group: &NewDeviceGroup,
        audit: &NewAuditEvent,
    ) -> Result<DeviceGroup, StoreError>;

    /// Changes a group. [`StoreError::NotFound`] for an unknown id.
    async fn update_group(
        &self,
        id: GroupId,
        update: &GroupUpdate,
        audit: &NewAuditEvent,
    ) -> Result<DeviceGroup, StoreError>;

    /// A group by name. [`StoreError::NotFound`] when there is none.
    async fn get_group(&self, name: &str) -> Result<DeviceGroup, StoreError>;

    /// Every group, by name.
    async fn list_groups(&self) -> Result<Vec<DeviceGroup>, StoreError>;

    /// Deletes a group and its memberships. [`StoreError::NotFound`] for an unknown id.
    async fn delete_group(&self, id: GroupId, audit: &NewAuditEvent) -> Result<(), StoreError>;

    /// Adds serials (already normalized) to a static group, in one transaction however many;
    /// returns how many were new members.
    async fn add_group_members(
        &self,
        group_id: GroupId,
        serials: &[String],
        audit: &NewAuditEvent,
    ) -> Result<u64, StoreError>;

    /// Removes serials from a static group; returns how many were members.
    async fn remove_group_members(
        &self,
        group_id: GroupId,
        serials: &[String],
        audit: &NewAuditEvent,
    ) -> Result<u64, StoreError>;

    /// A static group's members, by serial, after `after` (keyset pagination).
    async fn group_members(
        &self,
        group_id: GroupId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;

    /// Static groups a serial is a member of (ids).
    async fn groups_of_serial(&self, serial: &str) -> Result<Vec<GroupId>, StoreError>;

    /// Assigns a profile to serials explicitly (`Some`), or clears their explicit profile
    /// (`None`), in one transaction however many; returns how many rows changed.
    async fn set_device_profiles(
        &self,
        serials: &[String],
        profile_id: Option<ProfileId>,
        audit: &NewAuditEvent,
    ) -> Result<u64, StoreError>;

    /// A serial's explicit profile.
    async fn device_profile(&self, serial: &str) -> Result<Option<ProfileId>, StoreError>;

    /// Where each serial stands in ABM, in input order (one answer per input serial).
    async fn serial_presence(&self, serials: &[String]) -> Result<Vec<SerialPresence>, StoreError>;

    /// The current assignment generation (0 before any change).
    async fn assignment_generation(&self) -> Result<i64, StoreError>;

    /// Profiles, groups, defaults and the generation, read in one snapshot.
    async fn assignment_config(&self) -> Result<AssignmentConfig, StoreError>;
}

/// Storage of the per-device assignment records and passes.
#[async_trait]
pub trait AssignmentStateStore: Send + Sync {
    /// Up to `limit` present (not removed) devices of an entry with serial after `after`, by
    /// serial, each with its explicit profile, static groups and record. With `only`, just
    /// those of these serials (`after` still applies).
    async fn assignment_inputs(
        &self,
        entry_id: EntryId,
        after: Option<&str>,
        limit: u32,
        only: Option<&[String]>,
    ) -> Result<Vec<AssignmentInput>, StoreError>;

    /// The serials, sorted and distinct, of the present devices an incremental pass must
    /// look at (see [`InputFilter`]), found through indexes: its cost follows the number of
    /// changes, not the number of devices.
    async fn assignment_candidates(
        &self,
        entry_id: EntryId,
        filter: &InputFilter,
    ) -> Result<Vec<String>, StoreError>;

    /// Inserts or replaces records of an entry's devices, in one transaction.
    async fn write_assignments(
        &self,
        entry_id: EntryId,
        records: &[AssignmentRecord],
    ) -> Result<(), StoreError>;

    /// The records of these serials in an entry (those that exist), by serial.
    async fn assignments(
        &self,
        entry_id: EntryId,
        serials: &[String],
    ) -> Result<Vec<AssignmentRecord>, StoreError>;

    /// Marks the records of an entry's removed devices `removed` (the devices left ABM);
    /// returns how many changed.
    async fn mark_removed_assignments(
        &self,
        entry_id: EntryId,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// How many of an entry's records are in each state.
    async fn assignment_state_counts(
        &self,
        entry_id: EntryId,
    ) -> Result<Vec<(AssignState, u64)>, StoreError>;

    /// Records the end of an entry's pass.
    async fn finish_assignment_pass(&self, pass: &AssignmentPass) -> Result<(), StoreError>;

    /// The entry's last pass, if any.
    async fn last_assignment_pass(
        &self,
        entry_id: EntryId,
    ) -> Result<Option<AssignmentPass>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_describe_every_user() {
        let refs = ProfileReferences {
            os_defaults: vec![OsKey::Ios],
            groups: vec!["a".to_string(), "b".to_string()],
            devices: 3,
        };
        assert!(!refs.is_empty());
        assert_eq!(
            refs.describe("x"),
            r#"profile "x" is used by: the ios default; groups "a", "b"; 3 devices"#
        );
        let refs = ProfileReferences {
            os_defaults: vec![OsKey::Ios, OsKey::Macos],
            groups: vec!["only".to_string()],
            devices: 1,
        };
        assert_eq!(
            refs.describe("y"),
            r#"profile "y" is used by: the ios, macos defaults; group "only"; 1 device"#
        );
        assert!(ProfileReferences::default().is_empty());
    }

    #[test]
    fn stored_texts_round_trip_and_nothing_else_parses() {
        for s in AssignState::ALL {
            assert_eq!(AssignState::from_stored(s.as_str()), Some(s));
        }
        assert_eq!(AssignState::from_stored("Pending"), None);
        for os in OsKey::ALL {
            assert_eq!(OsKey::from_stored(os.as_str()), Some(os));
            assert_eq!(OsKey::parse(os.as_str()), Ok(os));
        }
        assert_eq!(OsKey::from_stored("macOS"), None);
        for rule in [
            RuleRef::Device,
            RuleRef::None,
            RuleRef::Group {
                name: "a:b".to_string(),
            },
            RuleRef::Default { os: OsKey::Ipados },
        ] {
            assert_eq!(RuleRef::parse_text(&rule.as_text()), Some(rule));
        }
        for bad in ["", "Device", "default:", "default:android", "groups:x"] {
            assert_eq!(RuleRef::parse_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn os_keys_parse_admin_and_apple_spellings() {
        assert_eq!(OsKey::parse("iOS"), Ok(OsKey::Ios));
        assert_eq!(OsKey::parse(" OSX "), Ok(OsKey::Macos));
        assert_eq!(OsKey::parse("macOS"), Ok(OsKey::Macos));
        assert_eq!(OsKey::parse("VisionOS"), Ok(OsKey::Visionos));
        let err = OsKey::parse("android").unwrap_err().to_string();
        assert!(err.contains("android") && err.contains("visionos"), "{err}");
    }

    #[test]
    fn device_family_decides_before_os() {
        assert_eq!(
            OsKey::of_device(Some("iOS"), Some("iPad")),
            Some(OsKey::Ipados)
        );
        assert_eq!(
            OsKey::of_device(Some("iOS"), Some("iPhone")),
            Some(OsKey::Ios)
        );
        assert_eq!(OsKey::of_device(Some("OSX"), None), Some(OsKey::Macos));
        assert_eq!(
            OsKey::of_device(Some("tvOS"), Some("AppleTV")),
            Some(OsKey::Tvos)
        );
        assert_eq!(
            OsKey::of_device(None, Some("Vision")),
            Some(OsKey::Visionos)
        );
    }

    #[test]
    fn a_record_serialises_its_rule_and_state_as_stored_text() {
        let record = AssignmentRecord {
            serial_number: "C02".to_string(),
            profile_id: None,
            profile_version: None,
            rule: RuleRef::Group {
                name: "sales".to_string(),
            },
            state: AssignState::NotAccessible,
            apple_uuid: None,
            attempted_at: None,
            retry_at: None,
            attempts: 0,
            last_error: None,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["rule"], "group:sales");
        assert_eq!(json["state"], "not_accessible");
        assert_eq!(
            serde_json::from_value::<AssignmentRecord>(json).unwrap(),
            record
        );
    }
}

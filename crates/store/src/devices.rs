//! ABM device records and the sync bookkeeping that goes with them: the cursor, sync runs,
//! and the lease that keeps one sync per entry across instances.
//!
//! [`DeviceSyncStore::apply_device_page`] is the heart of "a crash at any moment loses nothing
//! and duplicates nothing": one page's devices, the cursor after that page, and the run's
//! progress are written in one transaction.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::stored_text::stored_text;
use crate::{AssignState, EnrollmentStatus, EntryId, GroupId, StoreError, SyncRunId};

/// A device record as Apple reports it (`docs/protocol.md` §4), for one ABM entry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AbmDevice {
    /// Serial number (the key within an entry).
    pub serial_number: String,
    /// Marketing model name.
    pub model: String,
    /// Product description.
    pub description: Option<String>,
    /// Color.
    pub color: Option<String>,
    /// Asset tag.
    pub asset_tag: Option<String>,
    /// `iPhone`, `iPad`, `Mac`, `AppleTV`, `Vision`, … as Apple spells it.
    pub device_family: Option<String>,
    /// `iOS`, `iPadOS`, `OSX`, `tvOS`, `visionOS`, … as Apple spells it.
    pub os: Option<String>,
    /// Who assigned it to the MDM server.
    pub device_assigned_by: Option<String>,
    /// When it was assigned.
    #[serde(with = "time::serde::rfc3339::option")]
    pub device_assigned_date: Option<OffsetDateTime>,
    /// `empty`, `assigned`, `pushed`, `removed`.
    pub profile_status: Option<String>,
    /// The profile Apple has for it.
    pub profile_uuid: Option<String>,
    /// When that profile was assigned.
    #[serde(with = "time::serde::rfc3339::option")]
    pub profile_assign_time: Option<OffsetDateTime>,
    /// When the device fetched it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub profile_push_time: Option<OffsetDateTime>,
    /// The last `op_type` applied (`added`, `modified`, `deleted`; `None` from a fetch).
    pub op_type: Option<String>,
    /// The last `op_date` applied: a record with an older one is ignored.
    #[serde(with = "time::serde::rfc3339::option")]
    pub op_date: Option<OffsetDateTime>,
}

impl AbmDevice {
    /// Whether this record says the device left the MDM server (`op_type` `deleted`).
    pub fn is_deleted(&self) -> bool {
        self.op_type
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("deleted"))
    }
}

/// A stored device with GuardMDM's own bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAbmDevice {
    /// The ABM entry it belongs to.
    pub entry_id: EntryId,
    /// Apple's record.
    #[serde(flatten)]
    pub device: AbmDevice,
    /// When it was removed from ABM (unassigned from this MDM server); `None` while assigned.
    #[serde(with = "time::serde::rfc3339::option")]
    pub removed_at: Option<OffsetDateTime>,
    /// When GuardMDM first saw it.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen_at: OffsetDateTime,
    /// When GuardMDM last changed the record.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Which API the next page comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPhase {
    /// `POST /server/devices`: the full list.
    Fetch,
    /// `POST /devices/sync`: changes since the cursor.
    Sync,
}

impl SyncPhase {
    /// Both phases.
    pub const ALL: [Self; 2] = [Self::Fetch, Self::Sync];

    /// `fetch` or `sync`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fetch => "fetch",
            Self::Sync => "sync",
        }
    }
}

stored_text!(SyncPhase, "sync phase", no_display);

/// Where an entry's sync stands. The default (no cursor, fetch, generation 0) is a fresh
/// start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// The last cursor stored with its page; `None` before the first page.
    pub cursor: Option<String>,
    /// Fetch or sync.
    pub phase: SyncPhase,
    /// The number of the current full fetch; devices seen by it carry it.
    pub generation: i64,
    /// Whether the current full fetch must end by marking unseen devices removed (after a
    /// cursor reset or a full resync).
    pub reconcile: bool,
}

impl Default for SyncState {
    fn default() -> Self {
        Self {
            cursor: None,
            phase: SyncPhase::Fetch,
            generation: 0,
            reconcile: false,
        }
    }
}

/// One page to store.
#[derive(Debug, Clone)]
pub struct PageWrite<'a> {
    /// The ABM entry.
    pub entry_id: EntryId,
    /// The page's devices, one record per serial (reduced to the latest `op_date`).
    pub devices: &'a [AbmDevice],
    /// The sync state after this page (its cursor), saved with the devices.
    pub state: &'a SyncState,
    /// The run whose progress counts the page.
    pub run_id: SyncRunId,
    /// Now.
    pub at: OffsetDateTime,
}

/// What a page changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCounts {
    /// New to GuardMDM, or back after removal.
    pub added: u64,
    /// Already known and updated (including records ignored as older).
    pub modified: u64,
    /// Removed from ABM.
    pub removed: u64,
}

/// A sync run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRun {
    /// Increasing id.
    pub id: SyncRunId,
    /// The ABM entry.
    pub entry_id: EntryId,
    /// `manual`, `scheduled`, or `full_resync`.
    pub trigger: String,
    /// The instance that ran it.
    pub holder: String,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended; `None` while running.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Pages stored so far.
    pub pages: u64,
    /// Devices added, modified, removed so far.
    pub counts: PageCounts,
    /// `running`, `succeeded`, `failed`, `anomaly` (Apple repeated a cursor) or
    /// `interrupted` (the instance stopped mid-run).
    pub outcome: String,
    /// What went wrong, for the admin.
    pub error: Option<String>,
}

/// Which devices to list.
#[derive(Debug, Clone, Default)]
pub struct DeviceQuery {
    /// Only this entry's.
    pub entry_id: Option<EntryId>,
    /// Only this OS (Apple's spelling, case-insensitive).
    pub os: Option<String>,
    /// `Some(true)`: only removed; `Some(false)`: only present; `None`: both.
    pub removed: Option<bool>,
    /// Only devices whose assignment record is in this state (`unassigned`, `pending`,
    /// `assigned`, `pushed`, `not_accessible`, `failed`, `throttled`, `removed`).
    pub assignment_state: Option<AssignState>,
    /// Only this serial (its records in every entry).
    pub serial: Option<String>,
    /// Only serials after this one (keyset pagination, by serial then entry). Ignored when
    /// [`DeviceQuery::after`] is given.
    pub after_serial: Option<String>,
    /// Only serials starting with this (upper-case letters and digits, as serials are
    /// stored).
    pub serial_prefix: Option<String>,
    /// `Some(true)`: only devices with an MDM enrollment in state `enrolled`; `Some(false)`:
    /// only those without one.
    pub enrolled: Option<bool>,
    /// Only members of this static group.
    pub group_id: Option<GroupId>,
    /// The order of the listing.
    pub order: DeviceOrder,
    /// Largest first.
    pub descending: bool,
    /// Only devices after this one in the listing's order (keyset pagination).
    pub after: Option<DeviceCursor>,
    /// At most this many.
    pub limit: u32,
}

/// What a device listing is sorted by. Every order continues with the serial number and the
/// entry, so it is total and a page can start after any device; each has an index, so a page
/// costs the same however deep it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceOrder {
    /// Serial number.
    #[default]
    Serial,
    /// Marketing model name.
    Model,
    /// When GuardMDM last changed the record (a sync or removal).
    Updated,
}

/// The position after which a page of a device listing starts: the sort keys of the last
/// device of the previous page (the fields the order does not use are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCursor {
    /// Its model.
    pub model: String,
    /// Its `updated_at`.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Its serial number.
    pub serial: String,
    /// Its ABM entry.
    pub entry_id: EntryId,
}

impl DeviceCursor {
    /// The cursor just after `device`.
    pub fn after(device: &StoredAbmDevice) -> Self {
        Self {
            model: device.device.model.clone(),
            updated_at: device.updated_at,
            serial: device.device.serial_number.clone(),
            entry_id: device.entry_id,
        }
    }
}

/// The smallest string greater than every string starting with `prefix`, for a range scan
/// `prefix <= serial < upper` on an index; `None` when there is none (all `Z`s). Serials are
/// upper-case letters and digits, which every collation orders digits first, then letters.
pub fn serial_prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '0'..='8' | 'A'..='Y' => char::from_u32(u32::from(last) + 1),
            '9' => Some('A'),
            _ => None,
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Where a serial's MDM enrollment stands, for device lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentState {
    /// The serial.
    pub serial: String,
    /// Its latest enrollment's status.
    pub status: EnrollmentStatus,
    /// The device's last request.
    pub last_seen_at: OffsetDateTime,
}

/// Storage of ABM devices and sync bookkeeping.
#[async_trait]
pub trait DeviceSyncStore: Send + Sync {
    /// Stores a page's devices (latest `op_date` wins per serial; `deleted` marks removed,
    /// keeping the record; a device that comes back is restored), the sync state after the
    /// page, and the run's progress, in one transaction: all of it or none of it.
    async fn apply_device_page(&self, page: &PageWrite<'_>) -> Result<PageCounts, StoreError>;

    /// Stages a page of a full fetch: its devices are appended to the entry's staging area
    /// (not yet listed), and the sync state after the page and the run's progress are saved,
    /// in one transaction: all of it or none of it. The counts compare the page with the
    /// devices stored before it, as [`DeviceSyncStore::apply_device_page`] does.
    ///
    /// Appending costs a write of each record once; storing a page of random serials
    /// directly rewrites a leaf of every serial-keyed B-tree per device. The staged devices
    /// join the stored ones with [`DeviceSyncStore::merge_staged_devices`].
    async fn stage_device_page(&self, page: &PageWrite<'_>) -> Result<PageCounts, StoreError>;

    /// Moves every staged device of the entry into its stored devices, in serial order, in
    /// one transaction, as a page is stored: a record without `op_date` (all of a full fetch's)
    /// replaces the stored one and keeps its `op_date`, so of a serial staged twice the last
    /// record staged wins. Merged records count as changed at `at` (new ones as first seen
    /// then). Returns whether anything was staged.
    async fn merge_staged_devices(
        &self,
        entry_id: EntryId,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Ends a reconciling full fetch: every present device of the entry not seen by fetch
    /// `generation` is marked removed; the run counts them. Saves `state` in the same
    /// transaction. Returns how many were marked.
    async fn reconcile_unseen(
        &self,
        entry_id: EntryId,
        generation: i64,
        state: &SyncState,
        run_id: SyncRunId,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// The entry's sync state; the default when it never synced.
    async fn sync_state(&self, entry_id: EntryId) -> Result<SyncState, StoreError>;

    /// Saves the entry's sync state on its own (phase switches, resets).
    async fn save_sync_state(
        &self,
        entry_id: EntryId,
        state: &SyncState,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Devices matching `query`, by serial.
    async fn list_abm_devices(
        &self,
        query: &DeviceQuery,
    ) -> Result<Vec<StoredAbmDevice>, StoreError>;

    /// The MDM enrollment state of each of these serials that has one (one per serial: the
    /// most recently seen enrollment), for device lists.
    async fn enrollment_states(
        &self,
        serials: &[String],
    ) -> Result<Vec<EnrollmentState>, StoreError>;

    /// How many devices an entry has (present only, or all).
    async fn count_abm_devices(
        &self,
        entry_id: EntryId,
        include_removed: bool,
    ) -> Result<u64, StoreError>;

    /// Records the start of a run.
    async fn start_sync_run(
        &self,
        entry_id: EntryId,
        trigger: &str,
        holder: &str,
        at: OffsetDateTime,
    ) -> Result<SyncRun, StoreError>;

    /// Records the end of a run. [`StoreError::NotFound`] for an unknown run.
    async fn finish_sync_run(
        &self,
        run_id: SyncRunId,
        outcome: &str,
        error: Option<&str>,
        at: OffsetDateTime,
    ) -> Result<SyncRun, StoreError>;

    /// One run. [`StoreError::NotFound`] for an unknown run.
    async fn get_sync_run(&self, run_id: SyncRunId) -> Result<SyncRun, StoreError>;

    /// The entry's most recent runs, newest first.
    async fn list_sync_runs(
        &self,
        entry_id: EntryId,
        limit: u32,
    ) -> Result<Vec<SyncRun>, StoreError>;

    /// Takes or renews the entry's sync lease for `holder` until `at + ttl_secs`. `false`
    /// when another holder has an unexpired lease.
    async fn try_acquire_sync_lease(
        &self,
        entry_id: EntryId,
        holder: &str,
        at: OffsetDateTime,
        ttl_secs: i64,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up if `holder` has it.
    async fn release_sync_lease(&self, entry_id: EntryId, holder: &str) -> Result<(), StoreError>;

    /// Sync Now's claim, in one transaction, so that every caller either starts the run or
    /// sees it: ends the entry's dead runs ([`DeviceSyncStore::end_dead_runs`] with
    /// `dead_error`), then takes or renews the entry's lease for `holder` until
    /// `at + ttl_secs` and records a new `running` run of `trigger`. When another holder has
    /// an unexpired lease: its newest running run, or [`SyncClaim::Held`] when it has none
    /// (it is assigning profiles, or has just finished a run).
    async fn claim_sync_run(
        &self,
        entry_id: EntryId,
        trigger: &str,
        holder: &str,
        at: OffsetDateTime,
        ttl_secs: i64,
        dead_error: &str,
    ) -> Result<SyncClaim, StoreError>;

    /// Marks as `interrupted`, with `error`, every `running` run (of `entry_id`, or of every
    /// entry) whose holder no longer has an unexpired lease on its entry: that instance
    /// stopped renewing it, so it stopped syncing. Returns how many.
    async fn end_dead_runs(
        &self,
        entry_id: Option<EntryId>,
        at: OffsetDateTime,
        error: &str,
    ) -> Result<u64, StoreError>;

    /// Drops every sync lease, whoever holds it. Only for a store one process serves, at its
    /// start-up: any lease left there is a previous, stopped process's. Returns how many.
    async fn clear_sync_leases(&self) -> Result<u64, StoreError>;
}

/// What [`DeviceSyncStore::claim_sync_run`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncClaim {
    /// The caller holds the lease and this run is recorded: it is the caller's to execute.
    Started(SyncRun),
    /// Another instance holds the lease and is executing this run.
    Running(SyncRun),
    /// Another instance holds the lease without a running run.
    Held {
        /// The lease's holder.
        holder: String,
    },
}

/// What a page will change, given which of its serials are stored already (`true`: stored and
/// removed). Backends call it inside the page's transaction; a record ignored because it is
/// older than the stored one counts as modified.
pub fn count_page(
    devices: &[AbmDevice],
    stored: &std::collections::HashMap<String, bool>,
) -> PageCounts {
    let mut counts = PageCounts::default();
    for device in devices {
        let before = stored.get(&device.serial_number);
        match (device.is_deleted(), before) {
            (true, Some(true)) => counts.modified += 1,
            (true, _) => counts.removed += 1,
            (false, None | Some(true)) => counts.added += 1,
            (false, Some(false)) => counts.modified += 1,
        }
    }
    counts
}

/// When a record marks its device removed: the `op_date` of a `deleted` record (or `at`).
pub fn removed_at(device: &AbmDevice, at: OffsetDateTime) -> Option<OffsetDateTime> {
    device.is_deleted().then(|| device.op_date.unwrap_or(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn device(serial: &str, op: Option<&str>) -> AbmDevice {
        AbmDevice {
            serial_number: serial.to_string(),
            op_type: op.map(str::to_string),
            ..AbmDevice::default()
        }
    }

    #[test]
    fn prefix_upper_bounds() {
        assert_eq!(serial_prefix_upper_bound("C02").as_deref(), Some("C03"));
        assert_eq!(serial_prefix_upper_bound("C09").as_deref(), Some("C0A"));
        assert_eq!(serial_prefix_upper_bound("CZ").as_deref(), Some("D"));
        assert_eq!(serial_prefix_upper_bound("F1ZZ").as_deref(), Some("F2"));
        assert_eq!(serial_prefix_upper_bound("ZZ"), None);
        assert_eq!(serial_prefix_upper_bound(""), None);
    }

    #[test]
    fn counts_new_restored_changed_and_removed_devices() {
        let stored: HashMap<String, bool> =
            [("KNOWN".to_string(), false), ("GONE".to_string(), true)].into();
        let page = [
            device("NEW", None),
            device("KNOWN", Some("modified")),
            device("GONE", Some("added")),
            device("OTHER", Some("deleted")),
        ];
        assert_eq!(
            count_page(&page, &stored),
            PageCounts {
                added: 2,
                modified: 1,
                removed: 1
            }
        );
        let again = [
            device("GONE", Some("DELETED")),
            device("KNOWN", Some("deleted")),
        ];
        assert_eq!(
            count_page(&again, &stored),
            PageCounts {
                added: 0,
                modified: 1,
                removed: 1
            }
        );
    }
}

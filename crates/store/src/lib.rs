//! GuardMDM's storage seam: narrow role traits, composed into [`Store`].
//!
//! Backends (`guardmdm-store-sqlite`, `guardmdm-store-postgres`) implement every trait and run
//! the one conformance suite in `testsuite` (feature `testsuite`). This crate knows no
//! database driver: backends map their errors into [`StoreError`].
//!
//! Every method that changes what an admin controls takes the [`NewAuditEvent`] describing
//! the change and writes it in the same transaction, so the audit log never misses a change
//! and never records one that did not happen.

pub mod abm;
pub mod admins;
pub mod api_keys;
pub mod assignment;
pub mod audit;
pub mod devices;
pub mod error;
pub mod ids;
pub mod mdm;
pub mod meta;
pub mod os_updates;
mod stored_text;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use abm::{AbmAccount, AbmEntry, AbmEntryStore, NewAbmEntry, ServerTokenRecord, TokenProblem};
pub use admins::{
    Admin, AdminStore, NewAdmin, NewSession, Session, SignInFailures, SignInLimits,
    SignInReservation,
};
pub use api_keys::{ApiKey, ApiKeyStore, NewApiKey};
pub use assignment::{
    AdeProfile, AdeProfileVersion, AssignState, AssignmentConfig, AssignmentConfigStore,
    AssignmentInput, AssignmentPass, AssignmentRecord, AssignmentStateStore, DeviceGroup,
    GroupUpdate, InputFilter, NewDeviceGroup, OsDefault, OsKey, ProfileDefinition,
    ProfileReferences, RuleRef, SerialPresence, UnknownOs,
};
pub use audit::{AuditEvent, AuditStore, NewAuditEvent};
pub use devices::{
    AbmDevice, DeviceCursor, DeviceOrder, DeviceQuery, DeviceSyncStore, EnrollmentState,
    PageCounts, PageWrite, StoredAbmDevice, SyncClaim, SyncPhase, SyncRun, SyncState,
};
pub use error::StoreError;
pub use ids::{EntryId, GroupId, Id, ProfileId, SyncRunId};
pub use mdm::{
    Authenticated, CommandStatus, EnrollChallenge, Enrollment, EnrollmentQuery, EnrollmentStatus,
    IssuedIdentity, MdmCommand, MdmStore, NewCommand, Release, TokenUpdated,
};
pub use meta::{Backend, MetaStore, MigrationStatus};
pub use os_updates::{MinimumOs, OsMinimum, OsUpdateEvent, OsUpdateOutcome, OsUpdateStore};
pub use stored_text::StoredText;

use time::OffsetDateTime;

/// Everything GuardMDM stores. Services are built over an `Arc<dyn Store>` and bound their
/// methods by the role traits they use; small components take the narrowest trait they need.
pub trait Store:
    Backend
    + MetaStore
    + AbmEntryStore
    + ApiKeyStore
    + AdminStore
    + AuditStore
    + DeviceSyncStore
    + AssignmentConfigStore
    + AssignmentStateStore
    + MdmStore
    + OsUpdateStore
{
}

impl<T> Store for T where
    T: Backend
        + MetaStore
        + AbmEntryStore
        + ApiKeyStore
        + AdminStore
        + AuditStore
        + DeviceSyncStore
        + AssignmentConfigStore
        + AssignmentStateStore
        + MdmStore
        + OsUpdateStore
{
}

/// `t` cut to whole microseconds: the precision every backend keeps, so a value read back
/// equals the value written.
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.microsecond();
    t.replace_microsecond(micros).unwrap_or(t)
}

/// The current UTC time at storage precision (see [`truncate_to_micros`]).
pub fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

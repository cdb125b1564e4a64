//! How a configuration change asks for an assignment pass.
//!
//! [`crate::profiles`] and [`crate::groups`] change what devices resolve to; they do not run
//! passes themselves. They hold a [`PassRequests`] ([`crate::SyncService`] in production,
//! which runs the passes under each entry's lease) and ask it after every change that can
//! change a device's profile.

use guardmdm_store::{AbmEntryStore, AssignmentConfigStore, AssignmentStateStore, DeviceSyncStore};

use crate::SyncService;

/// Where configuration changes ask for assignment passes.
pub trait PassRequests: Send + Sync {
    /// After a change to profiles, groups, defaults or explicit assignments: an assignment
    /// pass over every ABM entry, in the background (an entry whose lease another run holds
    /// is left to that run).
    fn request_pass(&self);
}

impl<S> PassRequests for SyncService<S>
where
    S: ?Sized
        + AbmEntryStore
        + AssignmentConfigStore
        + AssignmentStateStore
        + DeviceSyncStore
        + 'static,
{
    fn request_pass(&self) {
        self.assign_now();
    }
}

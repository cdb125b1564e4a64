//! GuardMDM's domain rules and services.
//!
//! Services are concrete structs built once at start-up and shared by the HTTP adapters and
//! background jobs. Rules that need no I/O ([`health::token_health`], name and setting
//! validation, [`profile_spec`] checking, [`serial_csv`] reading, [`resolve`]-ing a device's
//! profile, [`assign_rules`]) are plain functions with unit tests.

pub mod abm_entries;
pub mod acme;
pub mod actor;
pub mod admins;
pub mod api_keys;
pub mod assign_rules;
pub mod assignment;
pub mod audit;
pub mod command_spec;
pub mod dep_sync;
pub mod device_list;
pub mod devices;
pub mod doctor;
pub mod error;
pub mod group_rule;
pub mod groups;
pub mod health;
pub mod jobs;
pub mod lease;
pub mod lookup;
pub mod mdm;
pub mod minimum_os;
pub mod names;
pub mod os;
pub mod os_minimum;
pub mod pass_requests;
pub mod profile_spec;
pub mod profiles;
pub mod resolve;
pub mod secrets;
pub mod serial_csv;
pub mod serial_list;
pub mod setup_assistant;
pub mod skip_keys;
pub mod sync_rules;
pub mod tls_status;
pub mod troubleshoot;

use std::sync::Arc;

pub use abm_entries::{
    AbmEntryService, AbmEntryView, AbmSettings, AccountView, EntrySettings, NewEntry,
};
pub use actor::Actor;
pub use admins::{
    AdminService, AdminView, DashboardSession, PasswordChecks, SessionPolicy, SignInError, SignedIn,
};
pub use api_keys::{ApiKeyView, AuthService, CreatedApiKey};
pub use audit::AuditService;
pub use dep_sync::{SyncService, SyncStart, Trigger};
pub use device_list::{DeviceListRequest, DeviceListService, DevicePage, DeviceView};
pub use devices::DeviceService;
pub use error::ServiceError;
pub use groups::GroupService;
/// The typed ids of stored records, as the API and dashboard parse and show them.
pub use guardmdm_store::{EntryId, GroupId, ProfileId, SyncRunId};
pub use health::{TokenHealth, TokenState};
pub use profiles::ProfileService;

use guardmdm_crypto::SecretKey;
use guardmdm_store::Store;
use secrecy::SecretString;

/// Every service, built once and shared (cheap to clone).
#[derive(Clone)]
pub struct Services {
    /// ABM entries and their server tokens.
    pub abm_entries: AbmEntryService,
    /// Authentication and API keys.
    pub auth: AuthService,
    /// Dashboard admins and their sessions.
    pub admins: AdminService,
    /// The audit log.
    pub audit: AuditService,
    /// ABM device sync (and the assignment passes that follow it).
    pub sync: SyncService,
    /// ADE profiles, OS defaults, device-level assignment.
    pub profiles: ProfileService,
    /// Device groups.
    pub groups: GroupService,
    /// Device details and "why this profile".
    pub devices: DeviceService,
    /// The dashboard's device list.
    pub device_list: DeviceListService,
    /// Enrollment, SCEP, check-in, commands, pushes.
    pub mdm: mdm::MdmService,
    /// The global minimum OS at enrollment.
    pub minimum_os: minimum_os::MinimumOsService,
    /// The store itself, for liveness checks.
    pub store: Arc<dyn Store>,
    /// The HTTPS certificate this instance serves.
    pub tls: Arc<tls_status::TlsStatus>,
    /// What the doctor checks beyond the services (the data dir, its timeout).
    pub doctor: doctor::DoctorSettings,
}

impl Services {
    /// Wires the services over one store and secret key.
    pub fn new(
        store: Arc<dyn Store>,
        secrets: Arc<SecretKey>,
        admin_token: Option<SecretString>,
        abm: AbmSettings,
        mdm: mdm::MdmSettings,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Self {
        // The default enrollment URL of ADE profiles: this server's enrollment endpoint.
        let enroll_url = mdm.url(mdm::ENROLL_PATH);
        let mdm = mdm::MdmService::new(store.clone(), secrets.clone(), mdm, cancel.clone());
        let abm = AbmEntryService::new(store.clone(), secrets, abm);
        let sync = SyncService::new(store.clone(), abm.clone(), enroll_url, cancel);
        let passes: Arc<dyn pass_requests::PassRequests> = Arc::new(sync.clone());
        Self {
            profiles: ProfileService::new(store.clone(), passes.clone(), sync.enroll_url()),
            groups: GroupService::new(store.clone(), passes),
            devices: DeviceService::new(store.clone(), mdm.push_states()),
            device_list: DeviceListService::new(store.clone()),
            minimum_os: minimum_os::MinimumOsService::new(store.clone()),
            mdm,
            sync,
            abm_entries: abm,
            auth: AuthService::new(store.clone(), admin_token),
            admins: AdminService::new(store.clone(), SessionPolicy::default()),
            audit: AuditService::new(store.clone()),
            store,
            tls: Arc::new(tls_status::TlsStatus::default()),
            doctor: doctor::DoctorSettings::default(),
        }
    }

    /// Uses `ttl` as the ABM sync lease's time to live instead of
    /// [`lease::DEFAULT_LEASE_TTL`] (every service that starts syncs or assignment passes
    /// gets it).
    #[must_use]
    pub fn with_sync_lease_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.sync = self.sync.with_lease_ttl(ttl);
        let passes: Arc<dyn pass_requests::PassRequests> = Arc::new(self.sync.clone());
        self.profiles =
            ProfileService::new(self.store.clone(), passes.clone(), self.sync.enroll_url());
        self.groups = GroupService::new(self.store.clone(), passes);
        self
    }

    /// Uses `policy` for dashboard sessions instead of the default.
    #[must_use]
    pub fn with_session_policy(mut self, policy: SessionPolicy) -> Self {
        self.admins = self.admins.with_policy(policy);
        self
    }

    /// Uses `status` as this instance's HTTPS certificate status (the serving side keeps it
    /// up to date).
    #[must_use]
    pub fn with_tls_status(mut self, status: Arc<tls_status::TlsStatus>) -> Self {
        self.tls = status;
        self
    }

    /// Uses `settings` for the doctor (the data dir whose free space it checks).
    #[must_use]
    pub fn with_doctor_settings(mut self, settings: doctor::DoctorSettings) -> Self {
        self.doctor = settings;
        self
    }

    /// Uses `checks` to cap concurrent password checks instead of the default.
    #[must_use]
    pub fn with_password_checks(mut self, checks: PasswordChecks) -> Self {
        self.admins = self.admins.with_password_checks(checks);
        self
    }
}

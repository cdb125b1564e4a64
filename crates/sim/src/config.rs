//! Simulator settings.

use std::time::Duration;

use time::OffsetDateTime;

/// The simulated organisation, as `GET /account` reports it (`docs/protocol.md` §3.1).
#[derive(Debug, Clone)]
pub struct OrgConfig {
    /// `org_name`.
    pub name: String,
    /// `org_email`.
    pub email: String,
    /// `org_phone`.
    pub phone: String,
    /// `org_address`.
    pub address: String,
    /// `org_type`: `org` (Apple Business Manager) or `edu` (Apple School Manager).
    pub org_type: String,
    /// `org_version`: `v1` or `v2`.
    pub org_version: String,
    /// The Apple Account of the portal administrator: `admin_id` of downloaded tokens and
    /// `device_assigned_by` of manual assignments.
    pub admin_id: String,
}

impl Default for OrgConfig {
    fn default() -> Self {
        Self {
            name: "Example Corp".to_string(),
            email: "it@example.com".to_string(),
            phone: "+1 408 555 0100".to_string(),
            address: "1 Infinite Loop, Cupertino, CA 95014, US".to_string(),
            org_type: "org".to_string(),
            org_version: "v2".to_string(),
            admin_id: "admin@example.com".to_string(),
        }
    }
}

/// How the simulator behaves. [`Default`] is Apple-like.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed for the generated devices (serials, models, colours, dates).
    pub seed: u64,
    /// Devices in the organisation at start-up (unassigned until the first MDM server is
    /// registered; see [`Self::adopt_seed_devices`]).
    pub devices: usize,
    /// The organisation.
    pub org: OrgConfig,
    /// Where simulated time starts; the real time when `None`. Device dates are relative to
    /// it, so a fixed start and seed give identical devices on every run.
    pub start_time: Option<OffsetDateTime>,
    /// A session token expires after this much inactivity (`docs/protocol.md` §2.4; the old
    /// micromdm client assumed about three minutes).
    pub session_idle_timeout: Duration,
    /// Rotate the session token (a new `X-ADM-Auth-Session` response header) every this many
    /// API calls on one session; never when `None` (§2.4).
    pub session_rotate_every: Option<u32>,
    /// How long a rotated-out session token keeps working.
    pub session_rotation_grace: Duration,
    /// Accepted distance between `oauth_timestamp` and the real clock (RFC 5849 §3.3).
    pub oauth_timestamp_window: Duration,
    /// Sync cursors older than this are `EXPIRED_CURSOR` (§3.3: seven days).
    pub cursor_max_age: Duration,
    /// Assign attempts for one serial within an hour beyond which Apple answers `FAILED`
    /// (§3.8, §9.5: repeated assigns trigger failures); never when `None`.
    pub assign_failure_threshold: Option<u32>,
    /// When the first MDM server is registered, it becomes the default server and the
    /// start-up devices are assigned to it, dated at their purchase (automatic assignment).
    pub adopt_seed_devices: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            devices: 0,
            org: OrgConfig::default(),
            start_time: None,
            session_idle_timeout: Duration::from_secs(180),
            session_rotate_every: Some(100),
            session_rotation_grace: Duration::from_secs(60),
            oauth_timestamp_window: Duration::from_secs(300),
            cursor_max_age: Duration::from_secs(7 * 86_400),
            assign_failure_threshold: Some(10),
            adopt_seed_devices: true,
        }
    }
}

/// Seconds in `d`, saturating.
pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

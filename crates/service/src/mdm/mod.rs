//! The MDM side of GuardMDM: Automated Device Enrollment (the profile `url`), the SCEP CA that
//! issues device identities, check-in, the command queue, and APNs pushes (`docs/protocol.md` §6,
//! §7).
//!
//! Device-facing calls return [`MdmError`], whose status is never 401: a 401 makes a device
//! unenroll (§7.1).

mod commands;
mod device;
mod enroll;
mod keys;
mod os_check;
mod push;
mod push_health;
mod push_queue;
mod push_request;
mod setup_assistant;

use std::sync::Arc;

use guardmdm_crypto::{SecretKey, TrustAnchors};
use guardmdm_store::{MdmStore, Store};
use tokio::sync::OnceCell;

pub use commands::{CommandView, NewCommandRequest};
pub use device::{
    DeviceIdentityProof, EnrollmentView, INITIAL_COMMANDS_SENDER, LAST_SEEN_RESOLUTION,
    ProvenDevice,
};
pub use guardmdm_store::{CommandStatus, EnrollmentStatus};
pub use keys::ServerKeys;
pub use os_check::EnrollAnswer;
pub use push::{
    ApnsProbe, DEFAULT_APNS_TIMEOUT, DEFAULT_PUSH_CONCURRENCY, DEFAULT_PUSH_QUEUE_SIZE,
    PushCertificateView, PushSettings, PushStates, PushUpload,
};
pub use push_health::{PushCertificateState, PushHealth, push_certificate_health};
pub use push_queue::PushStatus;
pub use push_request::PushRequestView;
pub use setup_assistant::{MAX_STUCK_LIST, ReleaseOutcome, Released, SkippedCommand, StuckDevice};

/// How long a SCEP challenge handed out in an enrollment profile stays valid.
pub const CHALLENGE_TTL: time::Duration = time::Duration::hours(1);
/// The paths GuardMDM serves devices under `--public-url`. The enrollment endpoint is also
/// the default `url` of ADE profiles.
pub const ENROLL_PATH: &str = "/mdm/enroll";
/// Check-in (`CheckInURL`).
pub const CHECKIN_PATH: &str = "/mdm/checkin";
/// Commands and results (`ServerURL`).
pub const CONNECT_PATH: &str = "/mdm/connect";
/// The SCEP endpoint.
pub const SCEP_PATH: &str = "/scep";

/// How the MDM side is set up.
#[derive(Debug, Clone)]
pub struct MdmSettings {
    /// The base URL devices reach (`--public-url`).
    pub public_url: String,
    /// Trust anchors for the device identities that sign ADE MachineInfo (`--device-ca-file`,
    /// default Apple's root).
    pub device_anchors: TrustAnchors,
    /// Where pushes go.
    pub push: PushSettings,
    /// Accept SCEP requests enveloped with single DES (`--scep-allow-single-des`): legacy
    /// clients such as micromdm's `scepclient` need it; Apple devices use AES.
    pub scep_single_des: bool,
    /// How much a device may send.
    pub limits: DeviceLimits,
    /// A device waiting in Setup Assistant longer than this is stuck (`--stuck-after`).
    pub stuck_after: time::Duration,
}

/// How much a device may send on the check-in and command URLs. The HTTP layer refuses a
/// longer body (413) before reading it; a device's identity is checked before that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Largest check-in body (`--checkin-max-bytes`), at most
    /// [`guardmdm_mdm_protocol::MAX_CHECKIN_BYTES`].
    pub checkin_bytes: usize,
    /// Largest command report body (`--report-max-bytes`), at most
    /// [`guardmdm_mdm_protocol::MAX_REPORT_BYTES`].
    pub report_bytes: usize,
    /// Longest `Mdm-Signature` header (`--mdm-signature-max-bytes`), at most
    /// [`guardmdm_mdm_protocol::MAX_MDM_SIGNATURE_BYTES`].
    pub signature_bytes: usize,
}

impl DeviceLimits {
    /// The most a server may be configured to accept: what the protocol parsers take at all.
    pub const CEILING: Self = Self {
        checkin_bytes: guardmdm_mdm_protocol::MAX_CHECKIN_BYTES,
        report_bytes: guardmdm_mdm_protocol::MAX_REPORT_BYTES,
        signature_bytes: guardmdm_mdm_protocol::MAX_MDM_SIGNATURE_BYTES,
    };
}

impl Default for DeviceLimits {
    /// The protocol crate's defaults (see their reasons there).
    fn default() -> Self {
        Self {
            checkin_bytes: guardmdm_mdm_protocol::DEFAULT_CHECKIN_BYTES,
            report_bytes: guardmdm_mdm_protocol::DEFAULT_REPORT_BYTES,
            signature_bytes: guardmdm_mdm_protocol::DEFAULT_MDM_SIGNATURE_BYTES,
        }
    }
}

impl MdmSettings {
    /// Settings for `public_url`, trusting Apple's root for device identities and pushing
    /// to Apple's APNs.
    ///
    /// # Errors
    /// Never in practice (the embedded Apple root is checked by a test).
    pub fn new(public_url: &str) -> Result<Self, crate::ServiceError> {
        Ok(Self {
            public_url: public_url.to_string(),
            device_anchors: TrustAnchors::apple()
                .map_err(|e| crate::ServiceError::Internal(e.to_string()))?,
            push: PushSettings::default(),
            scep_single_des: false,
            limits: DeviceLimits::default(),
            stuck_after: crate::setup_assistant::DEFAULT_STUCK_AFTER,
        })
    }

    /// `public_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }
}

/// Why a device's request failed: an HTTP status (never 401) and a message for the device's
/// log and GuardMDM's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MdmError {
    /// 400, 403, 404, 409, 410, 413, 431, 500 or 503.
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

impl MdmError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: 403,
            message: message.into(),
        }
    }

    /// 413: a body over `limit` bytes, on the URL `what` names.
    #[must_use]
    pub fn too_large(what: &str, size: Option<u64>, limit: usize) -> Self {
        let size = size.map_or_else(String::new, |n| format!(" ({n} bytes)"));
        Self {
            status: 413,
            message: format!(
                "the {what} is too large{size}: this server accepts at most {limit} bytes"
            ),
        }
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: 503,
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "MDM request failed");
        Self {
            status: 500,
            message: "internal error: see the server log".to_string(),
        }
    }
}

impl From<guardmdm_store::StoreError> for MdmError {
    fn from(e: guardmdm_store::StoreError) -> Self {
        Self::internal(e)
    }
}

/// The MDM services. Cheap to clone.
pub struct MdmService<S: ?Sized = dyn Store> {
    store: Arc<S>,
    secrets: Arc<SecretKey>,
    settings: Arc<MdmSettings>,
    keys: Arc<OnceCell<Arc<ServerKeys>>>,
    identities: Arc<device::IdentityCache>,
    pusher: push::Pusher,
}

impl<S: ?Sized> Clone for MdmService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            secrets: self.secrets.clone(),
            settings: self.settings.clone(),
            keys: self.keys.clone(),
            identities: self.identities.clone(),
            pusher: self.pusher.clone(),
        }
    }
}

impl<S: ?Sized + MdmStore + 'static> MdmService<S> {
    /// The MDM services over `store`, sealing server secrets with `secrets`; `cancel` stops
    /// the background pushes (graceful shutdown).
    pub fn new(
        store: Arc<S>,
        secrets: Arc<SecretKey>,
        settings: MdmSettings,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Self {
        let pusher = push::Pusher::new(settings.push.clone(), cancel);
        Self {
            store,
            secrets,
            settings: Arc::new(settings),
            keys: Arc::new(OnceCell::new()),
            identities: Arc::default(),
            pusher,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &MdmSettings {
        &self.settings
    }

    /// The SCEP CA and the profile-signing identity, created on first use and shared by every
    /// instance through the store.
    ///
    /// # Errors
    /// Storage or crypto failures (HTTP 500).
    pub async fn keys(&self) -> Result<Arc<ServerKeys>, MdmError> {
        self.keys
            .get_or_try_init(|| async {
                keys::load_or_create(
                    self.store.as_ref(),
                    &self.secrets,
                    self.settings.scep_single_des,
                )
                .await
                .map(Arc::new)
            })
            .await
            .cloned()
    }
}

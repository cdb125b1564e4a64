//! Why a simulated device stopped: what it would show, or log, in Setup Assistant or mdmd.

/// Why a device step failed. A device is strict: anything a real one would refuse is an
/// error here, with the step and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The serial number is not in the simulated organisation.
    #[error("there is no device {0} in the organisation")]
    UnknownSerial(String),
    /// A step ran before the one it depends on (e.g. `scep` before `post_machine_info`).
    #[error("{step}: {missing} first")]
    OutOfOrder {
        /// The step called.
        step: &'static str,
        /// What must happen before it.
        missing: &'static str,
    },
    /// Apple gave the device no enrollment profile: it sets up without remote management.
    #[error("no remote management: {0}")]
    NoProfile(String),
    /// The ADE profile Apple handed over is unusable.
    #[error("the ADE profile is unusable: {0}")]
    AdeProfile(String),
    /// The request did not get through (connection refused, timeout, …).
    #[error("{step}: {method} {url} failed: {reason}")]
    Transport {
        /// The step.
        step: &'static str,
        /// HTTP method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// The server answered with an unexpected status.
    #[error("{step}: {url} answered HTTP {status}: {body}")]
    Status {
        /// The step.
        step: &'static str,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The server answered with an unexpected `Content-Type`.
    #[error("{step}: {url} answered Content-Type {found:?}, expected {expected}")]
    ContentType {
        /// The step.
        step: &'static str,
        /// The URL.
        url: String,
        /// What the device expects.
        expected: &'static str,
        /// What came.
        found: String,
    },
    /// The enrollment server demands an OS update first (403
    /// `com.apple.softwareupdate.required`, `docs/protocol.md` §6.2).
    #[error("the server requires OS {os_version} before enrollment")]
    SoftwareUpdateRequired {
        /// `details.OSVersion`.
        os_version: String,
        /// `details.BuildVersion`, if given.
        build_version: Option<String>,
    },
    /// The enrollment profile's signature is broken, or its signer is not trusted by the ADE
    /// profile's `anchor_certs`.
    #[error("the enrollment profile is not trusted: {0}")]
    UntrustedProfile(String),
    /// The enrollment profile is not one a device installs.
    #[error("the enrollment profile is invalid: {0}")]
    InvalidProfile(String),
    /// SCEP failed: capabilities, CA certificate, or the `CertRep`.
    #[error("SCEP: {0}")]
    Scep(String),
    /// The server told the device it is no longer managed (401, or 403
    /// `com.apple.unrecognized.device`, `docs/protocol.md` §7.1), or the MDM profile was removed.
    #[error("the device is no longer enrolled: {0}")]
    Unenrolled(String),
    /// The device was erased by `EraseDevice`; it runs Setup Assistant again from `activate`.
    #[error("the device was erased")]
    Erased,
    /// The server's answer on the command channel is not a command a device can read.
    #[error("poll: {0}")]
    BadCommand(String),
    /// A cryptographic operation failed (signing, key generation).
    #[error("{step}: {reason}")]
    Crypto {
        /// The step.
        step: &'static str,
        /// What failed.
        reason: String,
    },
}

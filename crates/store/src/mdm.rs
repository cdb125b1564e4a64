//! The MDM side: enrollment challenges and the identities the SCEP CA issued, enrolled
//! devices (check-in state), the per-device command queue, and sealed server secrets (the
//! SCEP CA, the profile-signing identity, the APNs push certificate).
//!
//! Every table here is keyed so that a device can never act for another: enrollments by the
//! device channel id (UDID, or EnrollmentID for user enrollment), identities by their
//! certificate fingerprint, commands by UUID and device.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::stored_text::stored_text;
use crate::{NewAuditEvent, StoreError};

/// Where an [`Enrollment`] stands, stored as its [`as_str`](Self::as_str) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    /// `authenticated`: Authenticate seen, no TokenUpdate yet.
    Authenticated,
    /// `enrolled`: a TokenUpdate seen.
    Enrolled,
    /// `checked_out`: the MDM profile was removed.
    CheckedOut,
    /// `unregistered`: APNs answered 410 for its push token.
    Unregistered,
}

impl EnrollmentStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 4] = [
        Self::Authenticated,
        Self::Enrolled,
        Self::CheckedOut,
        Self::Unregistered,
    ];

    /// `authenticated`, `enrolled`, `checked_out` or `unregistered`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authenticated => "authenticated",
            Self::Enrolled => "enrolled",
            Self::CheckedOut => "checked_out",
            Self::Unregistered => "unregistered",
        }
    }
}

stored_text!(EnrollmentStatus, "enrollment status");

/// Where an [`MdmCommand`] stands, stored as its [`as_str`](Self::as_str) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// `queued`: waiting for the device to ask.
    Queued,
    /// `sent`: handed to the device, no answer yet.
    Sent,
    /// `not_now`: the device answered NotNow; sent again in its next session.
    NotNow,
    /// `acknowledged`: the device ran it.
    Acknowledged,
    /// `error`: the device failed to run it.
    Error,
    /// `command_format_error`: the device could not understand it.
    CommandFormatError,
    /// `cancelled`: never to be sent (an admin released the device from Setup Assistant
    /// before the device answered it).
    Cancelled,
}

impl CommandStatus {
    /// Every status.
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Sent,
        Self::NotNow,
        Self::Acknowledged,
        Self::Error,
        Self::CommandFormatError,
        Self::Cancelled,
    ];

    /// `queued`, `sent`, `not_now`, `acknowledged`, `error`, `command_format_error` or
    /// `cancelled`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::NotNow => "not_now",
            Self::Acknowledged => "acknowledged",
            Self::Error => "error",
            Self::CommandFormatError => "command_format_error",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether a device's answer sets it: `not_now`, `acknowledged`, `error`,
    /// `command_format_error` (what [`MdmStore::record_command_result`] records).
    #[must_use]
    pub fn is_answer(self) -> bool {
        matches!(
            self,
            Self::NotNow | Self::Acknowledged | Self::Error | Self::CommandFormatError
        )
    }

    /// Whether it still waits for the device: `queued`, `sent` or `not_now`.
    #[must_use]
    pub fn is_open(self) -> bool {
        matches!(self, Self::Queued | Self::Sent | Self::NotNow)
    }

    /// Whether the device gave its final answer (any answer but `not_now`).
    #[must_use]
    pub fn is_final(self) -> bool {
        self.is_answer() && self != Self::NotNow
    }
}

stored_text!(CommandStatus, "command status");

/// A one-time SCEP challenge handed to one device in its enrollment profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollChallenge {
    /// SHA-256 (hex) of the challenge: the challenge itself is never stored.
    pub challenge_hash: String,
    /// The device's serial number (from its verified MachineInfo).
    pub serial_number: String,
    /// The device's UDID (from its verified MachineInfo).
    pub udid: String,
    /// The ADE profile (GuardMDM's name) the enrollment profile reflected, if any.
    pub profile: Option<String>,
    /// When it was handed out.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Not valid after this time.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// When it was used; `None` while unused.
    #[serde(with = "time::serde::rfc3339::option")]
    pub used_at: Option<OffsetDateTime>,
}

/// A device identity the SCEP CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedIdentity {
    /// SHA-256 fingerprint (hex, lower case) of the certificate's DER.
    pub fingerprint: String,
    /// The certificate's serial number (hex).
    pub cert_serial: String,
    /// The UDID it was issued for (the challenge's).
    pub udid: String,
    /// The serial number it was issued for.
    pub serial_number: String,
    /// Issued at.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// Expires at.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

/// An enrolled (or enrolling) device, as check-ins left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The device channel id: UDID (or EnrollmentID).
    pub udid: String,
    /// Its serial number, when known.
    pub serial_number: Option<String>,
    /// Where it stands.
    pub status: EnrollmentStatus,
    /// The APNs topic it checked in with.
    pub topic: Option<String>,
    /// The identity certificate it proved itself with (fingerprint).
    pub identity_fingerprint: Option<String>,
    /// The APNs device token.
    pub push_token: Option<Vec<u8>>,
    /// The `PushMagic` to send in pushes.
    pub push_magic: Option<String>,
    /// The `UnlockToken` (sealed by the service; opaque here).
    pub unlock_token: Option<Vec<u8>>,
    /// Whether it waits in Setup Assistant for `DeviceConfigured`.
    pub awaiting_configuration: bool,
    /// Since when it waits (the TokenUpdate that first said `AwaitingConfiguration`);
    /// `None` while it does not wait.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub awaiting_since: Option<OffsetDateTime>,
    /// What `Authenticate` said (OSVersion, ProductName, Model, DeviceName, BuildVersion, …).
    pub device_info: serde_json::Value,
    /// The first TokenUpdate: when it became Enrolled.
    #[serde(with = "time::serde::rfc3339::option")]
    pub enrolled_at: Option<OffsetDateTime>,
    /// The last request from it.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// The first Authenticate.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// An `Authenticate` check-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Device channel id.
    pub udid: String,
    /// Serial number.
    pub serial_number: Option<String>,
    /// APNs topic.
    pub topic: String,
    /// The identity it used.
    pub identity_fingerprint: Option<String>,
    /// What it said about itself.
    pub device_info: serde_json::Value,
    /// Now.
    pub at: OffsetDateTime,
}

/// A `TokenUpdate` check-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUpdated {
    /// Device channel id.
    pub udid: String,
    /// APNs topic.
    pub topic: String,
    /// APNs device token.
    pub push_token: Vec<u8>,
    /// PushMagic.
    pub push_magic: String,
    /// UnlockToken (sealed), if sent; `None` keeps the stored one.
    pub unlock_token: Option<Vec<u8>>,
    /// AwaitingConfiguration.
    pub awaiting_configuration: bool,
    /// Now.
    pub at: OffsetDateTime,
}

/// Which enrollments to list.
#[derive(Debug, Clone, Default)]
pub struct EnrollmentQuery {
    /// Only this status.
    pub status: Option<EnrollmentStatus>,
    /// Only this serial number.
    pub serial_number: Option<String>,
    /// UDIDs after this one.
    pub after: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// A queued MDM command and, once answered, its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdmCommand {
    /// `CommandUUID`.
    pub uuid: String,
    /// The device channel it is for.
    pub udid: String,
    /// `RequestType`.
    pub request_type: String,
    /// The whole command plist (`{CommandUUID, Command}`) as sent.
    pub payload: Vec<u8>,
    /// Where it stands.
    pub status: CommandStatus,
    /// The device's result plist (Acknowledged, Error, CommandFormatError).
    pub result: Option<Vec<u8>>,
    /// Who queued it (audit actor, or `system`).
    pub created_by: String,
    /// How many times the device answered `NotNow` to it.
    #[serde(default)]
    pub not_now_count: u32,
    /// Queued at.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the device reported a result.
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
}

/// A command to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    /// `CommandUUID` (unique).
    pub uuid: String,
    /// Device channel.
    pub udid: String,
    /// `RequestType`.
    pub request_type: String,
    /// The command plist.
    pub payload: Vec<u8>,
    /// Who queues it.
    pub created_by: String,
    /// Now.
    pub at: OffsetDateTime,
}

/// A release from Setup Assistant ([`MdmStore::release_enrollment`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The device.
    pub udid: String,
    /// Its open commands to mark `cancelled` (those already answered are left alone).
    pub cancel: Vec<String>,
    /// `DeviceConfigured`, queued ahead of every open command of the device.
    pub command: NewCommand,
    /// Who released it, and what was skipped.
    pub audit: NewAuditEvent,
}

/// Storage of the MDM side.
#[async_trait]
pub trait MdmStore: Send + Sync {
    /// Stores a new challenge. [`StoreError::Conflict`] when its hash is already stored.
    async fn create_enroll_challenge(&self, challenge: &EnrollChallenge) -> Result<(), StoreError>;

    /// Uses a challenge: atomically marks it used if it exists, is unused and has not
    /// expired at `at`, and returns it; `None` otherwise (unknown, used, or expired — a
    /// second use of the same challenge always gets `None`).
    async fn consume_enroll_challenge(
        &self,
        challenge_hash: &str,
        at: OffsetDateTime,
    ) -> Result<Option<EnrollChallenge>, StoreError>;

    /// Deletes challenges that expired before `before`; returns how many.
    async fn purge_enroll_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// Records an issued identity. [`StoreError::Conflict`] when its fingerprint is already
    /// recorded.
    async fn record_identity(&self, identity: &IssuedIdentity) -> Result<(), StoreError>;

    /// An issued identity by fingerprint.
    async fn identity(&self, fingerprint: &str) -> Result<Option<IssuedIdentity>, StoreError>;

    /// Records an `Authenticate`: creates the enrollment (status `authenticated`), or, for a
    /// device enrolling again, resets it to `authenticated` keeping `created_at` and its
    /// commands. Push token, PushMagic and UnlockToken are cleared (a new enrollment sends
    /// new ones).
    async fn record_authenticate(&self, auth: &Authenticated) -> Result<Enrollment, StoreError>;

    /// Records a `TokenUpdate`: status `enrolled`, `enrolled_at` set on the first one since
    /// the last Authenticate. Returns the enrollment and whether this was that first one.
    /// [`StoreError::NotFound`] for a device that never authenticated.
    async fn record_token_update(
        &self,
        update: &TokenUpdated,
    ) -> Result<(Enrollment, bool), StoreError>;

    /// Sets an enrollment's status (`checked_out`, `unregistered`).
    /// [`StoreError::NotFound`] for an unknown device.
    async fn set_enrollment_status(
        &self,
        udid: &str,
        status: EnrollmentStatus,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Sets `awaiting_configuration` (false once `DeviceConfigured` was acknowledged).
    /// [`StoreError::NotFound`] for an unknown device.
    async fn set_awaiting_configuration(
        &self,
        udid: &str,
        awaiting: bool,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Notes a request from the device (`last_seen_at`), cheaply: one keyed update, which
    /// never moves `last_seen_at` back and leaves `updated_at` alone. An unknown device is
    /// ignored.
    async fn touch_enrollment(&self, udid: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// One enrollment.
    async fn enrollment(&self, udid: &str) -> Result<Option<Enrollment>, StoreError>;

    /// Enrollments by UDID (keyset pagination: those after `query.after`), optionally only
    /// those with a status or a serial number.
    async fn list_enrollments(
        &self,
        query: &EnrollmentQuery,
    ) -> Result<Vec<Enrollment>, StoreError>;

    /// Enrolled devices waiting in Setup Assistant since `waiting_since` or earlier (status
    /// `enrolled`, `awaiting_since <= waiting_since`), the longest waiting first, at most
    /// `limit`. Reads only waiting devices (an index on `awaiting_since`).
    async fn list_awaiting(
        &self,
        waiting_since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Enrollment>, StoreError>;

    /// How many devices [`Self::list_awaiting`] would list without a limit.
    async fn count_awaiting(&self, waiting_since: OffsetDateTime) -> Result<u64, StoreError>;

    /// A device's open commands (`queued`, `sent`, `not_now`), in the order it gets them.
    async fn open_commands(&self, udid: &str) -> Result<Vec<MdmCommand>, StoreError>;

    /// Releases a device from Setup Assistant, in one transaction: marks the open commands
    /// among `release.cancel` `cancelled`, queues `release.command` ahead of the device's
    /// other open commands (its `created_at` just before the oldest of theirs), writes the
    /// audit event, and returns the queued command. [`StoreError::NotFound`] for an unknown
    /// device; [`StoreError::Conflict`] (nothing written) when it is not enrolled and
    /// awaiting configuration.
    async fn release_enrollment(&self, release: &Release) -> Result<MdmCommand, StoreError>;

    /// Queues a command (status `queued`), with its audit event in the same transaction.
    /// [`StoreError::Conflict`] for a duplicate UUID. The store does not check that the
    /// device is enrolled.
    async fn enqueue_command(
        &self,
        command: &NewCommand,
        audit: Option<&NewAuditEvent>,
    ) -> Result<MdmCommand, StoreError>;

    /// The next command for a device, marked `sent`, or `None`. With `new_session` (the
    /// device said `Idle`), commands left `sent` (never answered) or `not_now` are queued
    /// again first; without it (after a result in the same session) only `queued` ones are
    /// considered, so a `NotNow` command is not sent again until the next session. Oldest
    /// first (by `created_at`, then by the order they were queued in). Requeueing and taking
    /// are one transaction; concurrent callers never get the same command.
    async fn next_command(
        &self,
        udid: &str,
        new_session: bool,
        at: OffsetDateTime,
    ) -> Result<Option<MdmCommand>, StoreError>;

    /// Records the device's answer to one of its commands: `acknowledged`, `error` or
    /// `command_format_error` with the result plist, or `not_now` (kept queued, result
    /// unchanged). [`StoreError::NotFound`] when the device has no command with that UUID
    /// (another device's command included); [`StoreError::Conflict`] (nothing written) for a
    /// status that is not an answer ([`CommandStatus::is_answer`]: `queued`, `sent`) — a bug
    /// in the caller.
    async fn record_command_result(
        &self,
        udid: &str,
        uuid: &str,
        status: CommandStatus,
        result: Option<&[u8]>,
        at: OffsetDateTime,
    ) -> Result<MdmCommand, StoreError>;

    /// One command.
    async fn command(&self, uuid: &str) -> Result<Option<MdmCommand>, StoreError>;

    /// How many of a device's commands queued by `created_by` have no final answer yet
    /// (`queued`, `sent` or `not_now`).
    async fn count_open_commands(&self, udid: &str, created_by: &str) -> Result<u64, StoreError>;

    /// A device's commands, newest first (by `created_at`, then the reverse of the order they
    /// were queued in), at most `limit`.
    async fn list_commands(&self, udid: &str, limit: u32) -> Result<Vec<MdmCommand>, StoreError>;

    /// A sealed server secret by name (`scep_ca`, `signing_identity`, `apns`).
    async fn get_secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores a sealed server secret only if none is stored under that name; returns the
    /// stored one (the first writer wins, so several instances agree on one CA).
    async fn init_secret(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Replaces a sealed server secret (an admin uploading a push certificate), with its
    /// audit event in the same transaction.
    async fn put_secret(
        &self,
        name: &str,
        sealed: &[u8],
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoredText;

    #[test]
    fn statuses_read_back_what_they_store() {
        for s in EnrollmentStatus::ALL {
            assert_eq!(EnrollmentStatus::parse_stored(s.as_str()).ok(), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::from(s.as_str()))
            );
        }
        for s in CommandStatus::ALL {
            assert_eq!(CommandStatus::parse_stored(s.as_str()).ok(), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::from(s.as_str()))
            );
        }
    }

    #[test]
    fn an_unknown_stored_status_is_corrupt() {
        let Err(StoreError::Corrupt(message)) = EnrollmentStatus::parse_stored("Enrolled") else {
            panic!("a misspelled enrollment status parsed");
        };
        assert_eq!(
            message,
            "enrollment status \"Enrolled\" is not one of authenticated, enrolled, checked_out, \
             unregistered"
        );
        let Err(StoreError::Corrupt(message)) = CommandStatus::parse_stored("done") else {
            panic!("an unknown command status parsed");
        };
        assert!(message.starts_with("command status \"done\" is not one of queued, "));
    }

    #[test]
    fn only_answers_are_results() {
        let answers: Vec<_> = CommandStatus::ALL
            .into_iter()
            .filter(|s| s.is_answer())
            .map(CommandStatus::as_str)
            .collect();
        assert_eq!(
            answers,
            ["not_now", "acknowledged", "error", "command_format_error"]
        );
    }
}

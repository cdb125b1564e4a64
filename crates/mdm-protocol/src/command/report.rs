//! Device → server: `{UDID, Status, CommandUUID?, ErrorChain?, …result keys}`.

use std::fmt;

use plist::{Dictionary, Value};

use crate::error::ProtocolError;
use crate::identity::DeviceIdentity;
use crate::plist_read::{Fields, KeysOnly, read_dictionary};

/// The `Content-Type` devices send on the command channel.
pub const REPORT_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm";

/// The largest command report [`parse_report`] accepts at all: 32 MiB, the ceiling for a
/// server's configured limit ([`DEFAULT_REPORT_BYTES`] unless told otherwise), which it
/// enforces before reading a body.
pub const MAX_REPORT_BYTES: usize = 32 * 1024 * 1024;

/// The command report limit a server applies unless told otherwise: 8 MiB. Most results are
/// a few KB (`DeviceInformation`, `SecurityInfo`: under 20 KB); the large ones are lists:
/// `InstalledApplicationList` takes about 0.5 KB an app (2,000 apps on a Mac: about 1 MB),
/// `CertificateList` 2 to 3 KB a certificate with its DER (500 certificates: about 1.5 MB),
/// `ProfileList` with its signer certificates about as much. 8 MiB is several times the
/// largest of these; a server may allow up to [`MAX_REPORT_BYTES`].
pub const DEFAULT_REPORT_BYTES: usize = 8 * 1024 * 1024;

const WHAT: &str = "command report";

/// `Status` of a report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CommandStatus {
    /// `Idle`: no result; the device asks for the next command.
    Idle,
    /// `Acknowledged`: the command ran; the result keys are in the report.
    Acknowledged,
    /// `Error`: the command failed; see the `ErrorChain`.
    Error,
    /// `CommandFormatError`: the device could not understand the command.
    CommandFormatError,
    /// `NotNow`: the device cannot run it now (locked, busy); keep it queued, the device will
    /// check in again later.
    NotNow,
    /// A status this version of GuardMDM does not know, kept as the device sent it.
    Other(String),
}

impl CommandStatus {
    /// Apple's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Idle => "Idle",
            Self::Acknowledged => "Acknowledged",
            Self::Error => "Error",
            Self::CommandFormatError => "CommandFormatError",
            Self::NotNow => "NotNow",
            Self::Other(s) => s,
        }
    }
}

impl From<String> for CommandStatus {
    fn from(s: String) -> Self {
        match s.as_str() {
            "Idle" => Self::Idle,
            "Acknowledged" => Self::Acknowledged,
            "Error" => Self::Error,
            "CommandFormatError" => Self::CommandFormatError,
            "NotNow" => Self::NotNow,
            _ => Self::Other(s),
        }
    }
}

impl fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an `ErrorChain`, outermost error first. Every field is optional: the chain is
/// read leniently (a field of an unexpected type is `None`), since the whole report is kept in
/// [`DeviceReport::raw`] anyway.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorChainItem {
    /// `ErrorCode`.
    pub error_code: Option<i64>,
    /// `ErrorDomain`, e.g. `MCProfileErrorDomain`.
    pub error_domain: Option<String>,
    /// `LocalizedDescription`, in the device's language.
    pub localized_description: Option<String>,
    /// `USEnglishDescription`, when the localized one is not English.
    pub us_english_description: Option<String>,
}

/// A report on the command channel: an `Idle` poll, or the result of a command.
#[derive(Clone)]
pub struct DeviceReport {
    /// The enrollment it speaks for (`UDID`, or `EnrollmentID` for user enrollment).
    pub identity: DeviceIdentity,
    /// `EnrollmentID` as sent.
    pub enrollment_id: Option<String>,
    /// `UserID`: set when the report comes over a user channel (macOS user, Shared iPad).
    pub user_id: Option<String>,
    /// `EnrollmentUserID`: user channel of a user enrollment.
    pub enrollment_user_id: Option<String>,
    /// `Status`.
    pub status: CommandStatus,
    /// `CommandUUID` of the command this is a result of; `None` only for `Idle`.
    pub command_uuid: Option<String>,
    /// `ErrorChain`, when the device sent one (usually with `Error`).
    pub error_chain: Option<Vec<ErrorChainItem>>,
    /// Everything the device sent, for storing the result. May be megabytes and hold secrets
    /// (e.g. an activation lock bypass code); `Debug` prints its keys only.
    pub raw: Dictionary,
}

impl DeviceReport {
    /// `true` for an `Idle` poll.
    pub fn is_idle(&self) -> bool {
        self.status == CommandStatus::Idle
    }

    /// `true` when the report comes over a user channel.
    pub fn is_user_channel(&self) -> bool {
        self.user_id.is_some() || self.enrollment_user_id.is_some()
    }
}

impl fmt::Debug for DeviceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceReport")
            .field("identity", &self.identity)
            .field("enrollment_id", &self.enrollment_id)
            .field("user_id", &self.user_id)
            .field("enrollment_user_id", &self.enrollment_user_id)
            .field("status", &self.status)
            .field("command_uuid", &self.command_uuid)
            .field("error_chain", &self.error_chain)
            .field("raw", &KeysOnly(&self.raw))
            .finish()
    }
}

/// Parses a command-channel body (XML or binary property list).
///
/// Errors: over [`MAX_REPORT_BYTES`], empty, not a property list (or truncated), not a
/// dictionary, neither `UDID` nor `EnrollmentID`, no `Status`, or no `CommandUUID` with a status
/// other than `Idle` (a result that cannot be matched to its command); and wrong types for
/// those keys. `ErrorChain` is read leniently (see [`ErrorChainItem`]).
pub fn parse_report(bytes: &[u8]) -> Result<DeviceReport, ProtocolError> {
    let raw = read_dictionary(bytes, WHAT, MAX_REPORT_BYTES)?;
    let f = Fields::new(&raw, WHAT);
    let (identity, enrollment_id) = DeviceIdentity::read(&f, WHAT)?;
    let status = CommandStatus::from(f.required_string("Status")?);
    let command_uuid = f.string("CommandUUID")?;
    if command_uuid.is_none() && status != CommandStatus::Idle {
        return Err(f.missing("CommandUUID"));
    }
    Ok(DeviceReport {
        identity,
        enrollment_id,
        user_id: f.string("UserID")?,
        enrollment_user_id: f.string("EnrollmentUserID")?,
        status,
        command_uuid,
        error_chain: raw.get("ErrorChain").map(error_chain),
        raw,
    })
}

/// Reads an `ErrorChain` leniently: entries that are not dictionaries are skipped, and a value
/// that is not an array gives an empty chain.
fn error_chain(value: &Value) -> Vec<ErrorChainItem> {
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    items
        .iter()
        .filter_map(Value::as_dictionary)
        .map(|d| {
            let string = |key: &str| d.get(key).and_then(Value::as_string).map(str::to_owned);
            ErrorChainItem {
                error_code: d.get("ErrorCode").and_then(Value::as_signed_integer),
                error_domain: string("ErrorDomain"),
                localized_description: string("LocalizedDescription"),
                us_english_description: string("USEnglishDescription"),
            }
        })
        .collect()
}

//! What the portal and the Rust API report back.

use serde::{Deserialize, Serialize};

use crate::catalog::DeviceFamily;
use crate::csv::InvalidRow;

/// An MDM server entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// `server_uuid` (§3.1).
    pub server_uuid: String,
    /// `server_name`.
    pub server_name: String,
    /// The `consumer_key` every token of this server carries (stable, §1.5).
    pub consumer_key: String,
    /// When it was registered.
    pub created: String,
    /// "Allow this MDM server to release devices" (§3.10); off by default, as in ABM.
    pub allow_release: bool,
    /// When the current token was downloaded, if one was.
    pub token_issued: Option<String>,
    /// When the current token expires.
    pub token_expiry: Option<String>,
    /// Devices assigned to it.
    pub devices: usize,
    /// The families it is the default server for (`any` for the org-wide default).
    pub default_for: Vec<String>,
}

/// A downloaded server token.
#[derive(Debug, Clone)]
pub struct ServerToken {
    /// `<ServerName>_Token_<YYYY-MM-DDTHH-MM-SSZ>_smime.p7m` (§0).
    pub file_name: String,
    /// The S/MIME file, encrypted to the server's public key (§1.3).
    pub contents: Vec<u8>,
    /// Its `consumer_key`.
    pub consumer_key: String,
    /// Its `access_token_expiry`: one year after the download (§1.5).
    pub access_token_expiry: String,
}

/// A device as the portal shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Serial number.
    pub serial_number: String,
    /// Marketing model name.
    pub model: String,
    /// Order-line description.
    pub description: String,
    /// Colour.
    pub color: String,
    /// Family.
    pub device_family: DeviceFamily,
    /// Apple's `os` value (current protocol version).
    pub os: String,
    /// When it was added to the organisation (purchased).
    pub purchased: String,
    /// The MDM server it is assigned to.
    pub server_uuid: Option<String>,
    /// That server's name.
    pub server_name: Option<String>,
    /// Its assigned ADE profile.
    pub profile_uuid: Option<String>,
    /// `empty`, `assigned`, `pushed` or `removed`.
    pub profile_status: String,
}

/// The outcome of a manual or CSV assignment, or of an unassignment. Each serial appears in
/// exactly one list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignmentReport {
    /// The target server (absent for unassignment).
    pub server_uuid: Option<String>,
    /// Newly assigned: the server's sync shows `added` (§3.3).
    pub assigned: Vec<String>,
    /// Moved from another server: `deleted` there, `modified` with `profile_status: removed`
    /// here (§9.2).
    pub moved: Vec<String>,
    /// Already on the target server and assigned again: `modified` with
    /// `profile_status: removed`, the old `profile_uuid` kept (§9.3).
    pub reassigned: Vec<String>,
    /// Taken off their server: `deleted` there (§9.4).
    pub unassigned: Vec<String>,
    /// Nothing to do (unassigning a device that is not assigned).
    pub unchanged: Vec<String>,
    /// Not in the organisation.
    pub unknown: Vec<String>,
}

/// The outcome of a serial-number CSV upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvReport {
    /// What happened to the serials found.
    #[serde(flatten)]
    pub assignment: AssignmentReport,
    /// Rows that are not serial numbers.
    pub invalid_rows: Vec<InvalidRow>,
    /// Serials listed more than once (assigned once).
    pub duplicates: Vec<String>,
    /// The header row that was skipped, if any.
    pub header: Option<String>,
}

/// What Apple hands a device at first boot (Setup Assistant's cloud configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    /// The device.
    pub serial_number: String,
    /// `profile`, `no_profile` (assigned to an MDM server that assigned no profile, or whose
    /// profile was removed) or `not_assigned` (in the organisation, on no MDM server).
    pub status: String,
    /// The MDM server it is assigned to.
    pub server_uuid: Option<String>,
    /// That server's name.
    pub server_name: Option<String>,
    /// The ADE profile JSON as defined (with `url` and `profile_uuid`), for `profile`.
    pub profile: Option<serde_json::Value>,
    /// A sentence for people.
    pub message: String,
}

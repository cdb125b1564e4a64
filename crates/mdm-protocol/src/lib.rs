//! The device side of Apple's MDM wire as pure types: no I/O, no async, no cryptography.
//!
//! Protocol reference: `docs/protocol.md` §6–§7, and Apple's "Device Management"
//! documentation (<https://developer.apple.com/documentation/devicemanagement>).
//!
//! - [`checkin`]: the check-in messages a device `PUT`s to the `CheckInURL` (`Authenticate`,
//!   `TokenUpdate`, `CheckOut`, everything else kept whole), [`parse_checkin`].
//! - [`command`]: the command channel: the [`DeviceReport`] a device `PUT`s to the `ServerURL`
//!   ([`parse_report`]) and the [`Command`] plist the server answers with, typed for the
//!   commands GuardMDM sends itself and raw for an admin's ([`command_from_upload`]).
//! - [`machine_info`]: the MachineInfo plist a device sends during Automated Device
//!   Enrollment ([`parse_machine_info`]), and the `x-apple-aspen-deviceinfo` header's base64.
//! - [`software_update`]: the 403 "software update required" answer to an enrollment
//!   request, and [`OsVersion`] to compare versions.
//! - [`enrollment`]: the enrollment profile (trust anchors, SCEP, MDM payloads) as unsigned XML.
//! - [`ProtocolError`]: what was wrong, in words an admin understands, with Apple's key names.
//!
//! Parsing accepts XML and binary property lists, ignores unknown keys, keeps unknown message
//! types and statuses, and refuses oversize, deeply nested or self-amplifying input before
//! building anything (see [`MAX_NESTING_DEPTH`]). The body limits ([`MAX_CHECKIN_BYTES`],
//! [`MAX_REPORT_BYTES`], [`MAX_MACHINE_INFO_BYTES`], [`MAX_COMMAND_BYTES`]) are exported for the
//! HTTP layer to enforce before reading a body; the parsers enforce them again.
//!
//! ```
//! use guardmdm_mdm_protocol::{CheckinMessage, Command, CommandRequest, parse_checkin};
//!
//! let body = br#"<?xml version="1.0" encoding="UTF-8"?>
//! <plist version="1.0"><dict>
//!   <key>MessageType</key><string>Authenticate</string>
//!   <key>Topic</key><string>com.apple.mgmt.External.5a1c3b2e-9d4f-4e6a-8b7c-0d1e2f3a4b5c</string>
//!   <key>UDID</key><string>00008140-001A2B3C4D5E801C</string>
//!   <key>SerialNumber</key><string>F2LXK3ABHG7F</string>
//! </dict></plist>"#;
//! let message = parse_checkin(body)?;
//! assert_eq!(message.identity().as_str(), "00008140-001A2B3C4D5E801C");
//! if let CheckinMessage::Authenticate(auth) = &message {
//!     assert_eq!(auth.serial_number.as_deref(), Some("F2LXK3ABHG7F"));
//! }
//!
//! // The first command after enrollment, as the body of the answer to an `Idle` report.
//! let xml = Command::new(CommandRequest::device_information()).to_xml()?;
//! assert!(xml.starts_with(b"<?xml"));
//! # Ok::<(), guardmdm_mdm_protocol::ProtocolError>(())
//! ```

pub mod checkin;
pub mod command;
pub mod enrollment;
pub mod error;
mod identity;
pub mod machine_info;
mod plist_read;
pub mod software_update;
#[cfg(test)]
mod test_support;

pub use checkin::{
    Authenticate, CHECKIN_CONTENT_TYPE, CheckOut, CheckinMessage, DEFAULT_CHECKIN_BYTES,
    MAX_CHECKIN_BYTES, TokenUpdate, parse_checkin,
};
pub use command::{
    Command, CommandRequest, CommandStatus, DEFAULT_DEVICE_INFORMATION_QUERIES,
    DEFAULT_REPORT_BYTES, DeviceLock, DeviceReport, EraseDevice, ErrorChainItem, MAX_COMMAND_BYTES,
    MAX_REPORT_BYTES, REPORT_CONTENT_TYPE, command_from_upload, parse_command, parse_report,
};
pub use enrollment::{
    ACCESS_RIGHTS_ALL, CAPABILITY_BOOTSTRAP_TOKEN, CAPABILITY_PER_USER_CONNECTIONS,
    CAPABILITY_TOKEN, ENROLLMENT_PROFILE_CONTENT_TYPE, EnrollmentProfile, MdmSettings,
    ProfileUuids, ScepSettings, TrustAnchor,
};
pub use error::ProtocolError;
pub use identity::DeviceIdentity;
pub use machine_info::{
    DEVICE_INFO_HEADER, MACHINE_INFO_CONTENT_TYPE, MAX_MACHINE_INFO_BYTES, MachineInfo,
    decode_device_info_header, parse_machine_info,
};
pub use plist_read::MAX_NESTING_DEPTH;
pub use software_update::{
    InvalidOsVersion, OsVersion, SOFTWARE_UPDATE_REQUIRED_CODE, SoftwareUpdateRequired,
};

/// The header a device signs its check-ins and command reports in: base64 of a detached CMS
/// signature over the exact body, made with its SCEP identity (when the MDM payload's
/// `SignMessage` is true).
pub const MDM_SIGNATURE_HEADER: &str = "Mdm-Signature";

/// The `Mdm-Signature` header length a server accepts unless told otherwise: 16 KiB. The
/// signature holds the signer's certificate (1 to 2 KB of DER), perhaps its issuer's, and one
/// signer info (a few hundred bytes); in base64 that is under 8 KB. A longer header is not a
/// device's signature, and is refused before it is decoded.
pub const DEFAULT_MDM_SIGNATURE_BYTES: usize = 16 * 1024;

/// The longest `Mdm-Signature` header a server may be configured to accept: 64 KiB.
pub const MAX_MDM_SIGNATURE_BYTES: usize = 64 * 1024;

/// A fresh random (version 4) UUID in Apple's usual upper-case form, for `CommandUUID`s and
/// payload UUIDs.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4()
        .hyphenated()
        .to_string()
        .to_ascii_uppercase()
}

//! The command channel: what travels over `PUT` to the MDM payload's `ServerURL`
//! (`docs/protocol.md` §7.3; <https://developer.apple.com/documentation/devicemanagement/commands-and-queries>).
//!
//! The loop: after a push the device sends a [`DeviceReport`] with `Status: Idle`; the server
//! answers with the next queued [`Command`] as an XML plist (or an empty 200 to end the
//! session); the device executes it and reports its result (`Acknowledged`, `Error`,
//! `CommandFormatError`, or `NotNow`, which means "keep it queued, I will be back"), matched by
//! `CommandUUID`, and the server answers with the next command, and so on.

mod report;
mod request;

pub use report::{
    CommandStatus, DEFAULT_REPORT_BYTES, DeviceReport, ErrorChainItem, MAX_REPORT_BYTES,
    REPORT_CONTENT_TYPE, parse_report,
};
pub use request::{
    Command, CommandRequest, DEFAULT_DEVICE_INFORMATION_QUERIES, DeviceLock, EraseDevice,
    MAX_COMMAND_BYTES, command_from_upload, parse_command,
};

#[cfg(test)]
mod tests;

//! "Software update required": the enrollment server's way of telling a device in Setup
//! Assistant to update its OS before it may enroll (`docs/protocol.md` §6.5;
//! <https://developer.apple.com/documentation/devicemanagement/errorcodesoftwareupdaterequired>).
//!
//! A device that sends `MDM_CAN_REQUEST_SOFTWARE_UPDATE` in its MachineInfo (iOS and iPadOS 17,
//! macOS 14, visionOS 26 and later) accepts, as the answer to its enrollment request, HTTP 403
//! with the [`SoftwareUpdateRequired`] document, as JSON (`application/json`) or as an XML
//! property list (`application/xml`). It installs that version (or the build named) and asks
//! again. [`OsVersion`] compares the dotted versions involved.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::plist_read::{Fields, read_dictionary};

/// The `code` of the document.
pub const SOFTWARE_UPDATE_REQUIRED_CODE: &str = "com.apple.softwareupdate.required";

/// The largest document worth reading (a real one is under 200 bytes).
pub const MAX_SOFTWARE_UPDATE_BYTES: usize = 4 * 1024;

const WHAT: &str = "software update document";

/// Apple's `ErrorCodeSoftwareUpdateRequired`: the OS version (and optionally the build) the
/// device must install before it may enroll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftwareUpdateRequired {
    /// `details.OSVersion`, e.g. `17.5`.
    pub os_version: String,
    /// `details.BuildVersion`, e.g. `21F79`; optional.
    pub build_version: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    code: String,
    details: WireDetails,
}

#[derive(Serialize, Deserialize)]
struct WireDetails {
    #[serde(rename = "OSVersion")]
    os_version: String,
    #[serde(
        rename = "BuildVersion",
        skip_serializing_if = "Option::is_none",
        default
    )]
    build_version: Option<String>,
}

impl SoftwareUpdateRequired {
    /// The document asking for `os_version`, with `build_version` when known.
    pub fn new(os_version: impl Into<String>, build_version: Option<String>) -> Self {
        Self {
            os_version: os_version.into(),
            build_version,
        }
    }

    fn wire(&self) -> Wire {
        Wire {
            code: SOFTWARE_UPDATE_REQUIRED_CODE.to_string(),
            details: WireDetails {
                os_version: self.os_version.clone(),
                build_version: self.build_version.clone(),
            },
        }
    }

    /// The JSON form (`Content-Type: application/json`).
    ///
    /// # Errors
    /// [`ProtocolError::Write`] (not in practice: two strings always serialize).
    pub fn to_json(&self) -> Result<Vec<u8>, ProtocolError> {
        serde_json::to_vec(&self.wire()).map_err(|e| ProtocolError::Write(e.to_string()))
    }

    /// The XML property list form (`Content-Type: application/xml`).
    ///
    /// # Errors
    /// [`ProtocolError::Write`] (not in practice).
    pub fn to_plist_xml(&self) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        plist::to_writer_xml(&mut out, &self.wire())
            .map_err(|e| ProtocolError::Write(e.to_string()))?;
        Ok(out)
    }

    /// Reads the document as a device does: JSON when `content_type` says so, a property list
    /// (XML or binary) otherwise. `Ok(None)` when it is well formed but carries another `code`.
    ///
    /// # Errors
    /// Oversize, malformed, or without `details.OSVersion`.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Option<Self>, ProtocolError> {
        if body.len() > MAX_SOFTWARE_UPDATE_BYTES {
            return Err(ProtocolError::TooLarge {
                what: WHAT,
                size: body.len(),
                limit: MAX_SOFTWARE_UPDATE_BYTES,
            });
        }
        if content_type.to_ascii_lowercase().contains("json") {
            let wire: Wire =
                serde_json::from_slice(body).map_err(|e| ProtocolError::InvalidValue {
                    what: WHAT,
                    key: "details".to_string(),
                    reason: e.to_string(),
                })?;
            return Ok(
                (wire.code == SOFTWARE_UPDATE_REQUIRED_CODE).then_some(Self {
                    os_version: wire.details.os_version,
                    build_version: wire.details.build_version,
                }),
            );
        }
        let dict = read_dictionary(body, WHAT, MAX_SOFTWARE_UPDATE_BYTES)?;
        let f = Fields::new(&dict, WHAT);
        if f.required_string("code")? != SOFTWARE_UPDATE_REQUIRED_CODE {
            return Ok(None);
        }
        let details = f
            .dictionary("details")?
            .ok_or_else(|| f.missing("details"))?;
        let d = Fields::nested(details, WHAT, "details.");
        Ok(Some(Self {
            os_version: d.required_string("OSVersion")?,
            build_version: d.string("BuildVersion")?,
        }))
    }
}

/// A dotted numeric OS version (`17`, `17.5`, `17.5.1`), ordered numerically with missing
/// parts counting as zero: `17.5` < `17.5.1` < `17.10` < `18`, and `17.5` == `17.5.0`.
#[derive(Debug, Clone)]
pub struct OsVersion {
    parts: Vec<u32>,
    text: String,
}

/// Text [`OsVersion::parse`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an OS version: use numbers separated by dots, such as 17.5 or 14.4.1")]
pub struct InvalidOsVersion(pub String);

impl OsVersion {
    /// Parses `major[.minor[.patch]]` (at most four parts, each a number).
    ///
    /// # Errors
    /// [`InvalidOsVersion`] for anything else (empty, letters, empty parts, over four parts).
    pub fn parse(text: &str) -> Result<Self, InvalidOsVersion> {
        let trimmed = text.trim();
        let invalid = || InvalidOsVersion(text.to_string());
        if trimmed.is_empty() {
            return Err(invalid());
        }
        let parts = trimmed
            .split('.')
            .map(|p| {
                if p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                p.parse::<u32>().map_err(|_| invalid())
            })
            .collect::<Result<Vec<_>, _>>()?;
        if parts.len() > 4 {
            return Err(invalid());
        }
        Ok(Self {
            parts,
            text: trimmed.to_string(),
        })
    }

    /// The first part (`17` of `17.5`).
    pub fn major(&self) -> u32 {
        self.parts.first().copied().unwrap_or(0)
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn part(&self, i: usize) -> u32 {
        self.parts.get(i).copied().unwrap_or(0)
    }
}

impl Ord for OsVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.parts.len().max(other.parts.len());
        (0..len)
            .map(|i| self.part(i).cmp(&other.part(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for OsVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for OsVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for OsVersion {}

impl fmt::Display for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests;

//! MachineInfo: who is asking for an enrollment profile during Automated Device Enrollment
//! (`docs/protocol.md` §6.1, §6.3; <https://developer.apple.com/documentation/devicemanagement/machineinfo>).
//!
//! In Setup Assistant the device `POST`s to the ADE profile's `url` a CMS SignedData
//! (`Content-Type: application/pkcs7-signature`) whose content is an XML property list,
//! signed with the device's identity. With `configuration_web_url` the same CMS blob arrives
//! base64-encoded in the `x-apple-aspen-deviceinfo` header of the first `GET`.
//!
//! This crate does no cryptography: `crypto` verifies the signature and hands the content to
//! [`parse_machine_info`]; [`decode_device_info_header`] only undoes the header's base64.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use plist::Dictionary;

use crate::error::ProtocolError;
use crate::plist_read::{Fields, KeysOnly, read_dictionary};

/// The header carrying base64 of the signed MachineInfo on the `configuration_web_url` flow.
pub const DEVICE_INFO_HEADER: &str = "x-apple-aspen-deviceinfo";

/// The `Content-Type` of the device's enrollment `POST` (the signed MachineInfo).
pub const MACHINE_INFO_CONTENT_TYPE: &str = "application/pkcs7-signature";

/// The largest MachineInfo property list (and the largest signed body worth reading): 64 KiB.
/// A real one is under 1 KB; the signed form adds the device's certificate chain.
pub const MAX_MACHINE_INFO_BYTES: usize = 64 * 1024;

const WHAT: &str = "MachineInfo";

/// The device's MachineInfo (keys are Apple's, upper case).
#[derive(Clone)]
pub struct MachineInfo {
    /// `UDID`.
    pub udid: String,
    /// `SERIAL`: the serial number ABM knows the device by.
    pub serial: String,
    /// `PRODUCT`, e.g. `iPhone17,2` or `Mac14,2`.
    pub product: String,
    /// `VERSION`: the OS build, e.g. `22A3354`.
    pub version: String,
    /// `OS_VERSION`, e.g. `18.0` (iOS 17 / macOS 14 and later).
    pub os_version: Option<String>,
    /// `SUPPLEMENTAL_BUILD_VERSION`: the Rapid Security Response build, if any.
    pub supplemental_build_version: Option<String>,
    /// `SUPPLEMENTAL_OS_VERSION_EXTRA`, e.g. `(a)`.
    pub supplemental_os_version_extra: Option<String>,
    /// `IMEI` (iOS with cellular).
    pub imei: Option<String>,
    /// `MEID` (iOS with cellular).
    pub meid: Option<String>,
    /// `LANGUAGE`: the language the user picked in Setup Assistant.
    pub language: Option<String>,
    /// `MDM_CAN_REQUEST_SOFTWARE_UPDATE`: the server may answer 403
    /// `com.apple.softwareupdate.required` to demand an OS update first. Absent means `false`.
    pub mdm_can_request_software_update: bool,
    /// `SOFTWARE_UPDATE_DEVICE_ID`: the model id for Apple's software-update catalog.
    pub software_update_device_id: Option<String>,
    /// Everything the device sent (newer keys, `PAIRING_TOKEN`); `Debug` prints its keys only.
    pub raw: Dictionary,
}

impl fmt::Debug for MachineInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineInfo")
            .field("udid", &self.udid)
            .field("serial", &self.serial)
            .field("product", &self.product)
            .field("version", &self.version)
            .field("os_version", &self.os_version)
            .field("language", &self.language)
            .field(
                "mdm_can_request_software_update",
                &self.mdm_can_request_software_update,
            )
            .field("raw", &KeysOnly(&self.raw))
            .finish_non_exhaustive()
    }
}

/// Parses the MachineInfo property list (the content of the verified CMS signature; XML, or
/// binary for good measure).
///
/// Errors: over [`MAX_MACHINE_INFO_BYTES`], empty, not a property list, not a dictionary, one
/// of `UDID`, `SERIAL`, `PRODUCT`, `VERSION` missing, or a known key of the wrong type.
pub fn parse_machine_info(bytes: &[u8]) -> Result<MachineInfo, ProtocolError> {
    let raw = read_dictionary(bytes, WHAT, MAX_MACHINE_INFO_BYTES)?;
    let f = Fields::new(&raw, WHAT);
    Ok(MachineInfo {
        udid: f.required_string("UDID")?,
        serial: f.required_string("SERIAL")?,
        product: f.required_string("PRODUCT")?,
        version: f.required_string("VERSION")?,
        os_version: f.string("OS_VERSION")?,
        supplemental_build_version: f.string("SUPPLEMENTAL_BUILD_VERSION")?,
        supplemental_os_version_extra: f.string("SUPPLEMENTAL_OS_VERSION_EXTRA")?,
        imei: f.string("IMEI")?,
        meid: f.string("MEID")?,
        language: f.string("LANGUAGE")?,
        mdm_can_request_software_update: f
            .boolean("MDM_CAN_REQUEST_SOFTWARE_UPDATE")?
            .unwrap_or(false),
        software_update_device_id: f.string("SOFTWARE_UPDATE_DEVICE_ID")?,
        raw,
    })
}

/// Decodes the `x-apple-aspen-deviceinfo` header value to the CMS bytes it carries.
///
/// Accepts the standard and the URL-safe alphabet (redirect hops often carry the blob as a
/// URL-safe `deviceinfo` query parameter), with or without padding, ignoring whitespace.
/// Errors when the value is empty, not base64, or decodes to more than
/// [`MAX_MACHINE_INFO_BYTES`].
pub fn decode_device_info_header(value: &str) -> Result<Vec<u8>, ProtocolError> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let invalid = |reason: String| ProtocolError::InvalidBase64 {
        header: DEVICE_INFO_HEADER,
        reason,
    };
    if value.len() > MAX_MACHINE_INFO_BYTES.div_ceil(3) * 4 + 1024 {
        return Err(invalid(format!(
            "the value is {} characters, more than a {MAX_MACHINE_INFO_BYTES}-byte blob needs",
            value.len()
        )));
    }
    let normalized: String = value
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    if normalized.is_empty() {
        return Err(invalid("the value is empty".into()));
    }
    ENGINE
        .decode(normalized)
        .map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests;

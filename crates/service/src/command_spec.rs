//! The common commands as an admin writes them in JSON or YAML (the REST API's command body,
//! and the initial commands of an ADE profile), turned into protocol commands.
//!
//! A module of its own: [`crate::profile_spec`] (initial commands) and [`crate::mdm`]
//! (sending them) both use it, and neither imports the other for it.

use base64::Engine as _;
use guardmdm_mdm_protocol::{CommandRequest, DeviceLock, EraseDevice};
use serde::{Deserialize, Serialize};

/// The request types a [`CommandSpec`] can name.
pub const COMMAND_SPEC_TYPES: &[&str] = &[
    "DeviceInformation",
    "ProfileList",
    "InstallProfile",
    "RemoveProfile",
    "DeviceLock",
    "EraseDevice",
    "DeviceConfigured",
];

/// One of the common commands, by name and options. Unknown keys are an error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// One of [`COMMAND_SPEC_TYPES`].
    pub request_type: String,
    /// DeviceInformation: the queries (default: a standard set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<Vec<String>>,
    /// InstallProfile: the profile (`.mobileconfig`, signed or not), base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// RemoveProfile: the profile's `PayloadIdentifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// DeviceLock / EraseDevice: the Find My PIN (Macs without Apple silicon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// DeviceLock: the message on the Lock Screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl CommandSpec {
    /// The protocol command, or what is wrong with the spec (for an IT admin).
    ///
    /// # Errors
    /// An unknown `request_type`, a missing option the type needs, an option it does not
    /// take, or a payload that is not base64.
    pub fn to_request(&self) -> Result<CommandRequest, String> {
        Ok(match self.request_type.as_str() {
            "DeviceInformation" => {
                self.only_takes(&["queries"])?;
                self.device_information()?
            }
            "ProfileList" => {
                self.only_takes(&[])?;
                CommandRequest::ProfileList
            }
            "InstallProfile" => {
                self.only_takes(&["payload_base64"])?;
                self.install_profile()?
            }
            "RemoveProfile" => {
                self.only_takes(&["identifier"])?;
                self.remove_profile()?
            }
            "DeviceLock" => {
                self.only_takes(&["pin", "message"])?;
                CommandRequest::DeviceLock(DeviceLock {
                    pin: self.pin.clone(),
                    message: self.message.clone(),
                    ..Default::default()
                })
            }
            "EraseDevice" => {
                self.only_takes(&["pin"])?;
                CommandRequest::EraseDevice(EraseDevice {
                    pin: self.pin.clone(),
                    ..Default::default()
                })
            }
            "DeviceConfigured" => {
                self.only_takes(&[])?;
                CommandRequest::DeviceConfigured
            }
            other => {
                return Err(format!(
                    "unknown request_type {other:?}: use one of {}",
                    COMMAND_SPEC_TYPES.join(", ")
                ));
            }
        })
    }

    /// Refuses an option the request type does not take (the first given outside `allowed`).
    fn only_takes(&self, allowed: &[&str]) -> Result<(), String> {
        let given = [
            ("queries", self.queries.is_some()),
            ("payload_base64", self.payload_base64.is_some()),
            ("identifier", self.identifier.is_some()),
            ("pin", self.pin.is_some()),
            ("message", self.message.is_some()),
        ];
        match given
            .iter()
            .find(|(key, set)| *set && !allowed.contains(key))
        {
            Some((key, _)) => Err(format!("{} does not take {key}", self.request_type)),
            None => Ok(()),
        }
    }

    /// DeviceInformation with the queries given (non-empty names), or the standard set.
    fn device_information(&self) -> Result<CommandRequest, String> {
        match &self.queries {
            Some(q) if q.is_empty() || q.iter().any(|k| k.trim().is_empty()) => {
                Err("DeviceInformation queries must be non-empty query names".to_string())
            }
            Some(q) => Ok(CommandRequest::device_information_with(q.clone())),
            None => Ok(CommandRequest::device_information()),
        }
    }

    /// InstallProfile with the decoded, non-empty `payload_base64`.
    fn install_profile(&self) -> Result<CommandRequest, String> {
        let payload = self
            .payload_base64
            .as_deref()
            .ok_or("InstallProfile needs payload_base64 (the .mobileconfig, base64)")?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .map_err(|e| format!("payload_base64 is not base64: {e}"))?;
        if bytes.is_empty() {
            return Err("payload_base64 is empty".to_string());
        }
        Ok(CommandRequest::install_profile(bytes))
    }

    /// RemoveProfile of the non-blank `identifier`.
    fn remove_profile(&self) -> Result<CommandRequest, String> {
        match self.identifier.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => Ok(CommandRequest::remove_profile(id.to_string())),
            _ => {
                Err("RemoveProfile needs identifier (the profile's PayloadIdentifier)".to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec(request_type: &str) -> CommandSpec {
        CommandSpec {
            request_type: request_type.to_string(),
            ..CommandSpec::default()
        }
    }

    #[test]
    fn every_named_type_builds_its_command() {
        let mut install = spec("InstallProfile");
        install.payload_base64 = Some("PHBsaXN0Lz4=".to_string());
        let mut remove = spec("RemoveProfile");
        remove.identifier = Some("com.example.wifi".to_string());
        for (s, expected) in [
            (spec("DeviceInformation"), "DeviceInformation"),
            (spec("ProfileList"), "ProfileList"),
            (install, "InstallProfile"),
            (remove, "RemoveProfile"),
            (spec("DeviceLock"), "DeviceLock"),
            (spec("EraseDevice"), "EraseDevice"),
            (spec("DeviceConfigured"), "DeviceConfigured"),
        ] {
            let request = s.to_request().unwrap();
            assert_eq!(request.request_type(), expected);
        }
    }

    #[test]
    fn missing_wrong_and_stray_options_are_named() {
        let err = |s: CommandSpec| s.to_request().unwrap_err();
        assert!(err(spec("InstallProfile")).contains("needs payload_base64"));
        let mut bad = spec("InstallProfile");
        bad.payload_base64 = Some("not base64!".to_string());
        assert!(err(bad).contains("not base64"));
        assert!(err(spec("RemoveProfile")).contains("needs identifier"));
        let mut stray = spec("ProfileList");
        stray.identifier = Some("x".to_string());
        assert_eq!(err(stray), "ProfileList does not take identifier");
        let mut empty = spec("DeviceInformation");
        empty.queries = Some(vec![]);
        assert!(err(empty).contains("non-empty"));
        assert!(err(spec("Restart")).contains("unknown request_type \"Restart\""));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = serde_json::from_str::<CommandSpec>(r#"{"request_type":"ProfileList","x":1}"#)
            .unwrap_err();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
    }
}

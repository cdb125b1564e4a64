//! Server → device: a command, serialized as `{CommandUUID, Command: {RequestType, …}}`.

use plist::{Dictionary, Value};

use crate::error::ProtocolError;
use crate::plist_read::{Fields, read_dictionary};

/// The largest command accepted from an admin upload (or, device side, from a server): 16 MiB,
/// room for an `InstallProfile` carrying a large signed profile.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024 * 1024;

/// The queries [`CommandRequest::device_information`] asks for: identity, OS, hardware,
/// capacity, radio identifiers and management state. Keys a platform does not know are
/// simply left out of its answer.
pub const DEFAULT_DEVICE_INFORMATION_QUERIES: &[&str] = &[
    "UDID",
    "SerialNumber",
    "DeviceName",
    "Model",
    "ModelName",
    "ProductName",
    "OSVersion",
    "BuildVersion",
    "DeviceCapacity",
    "AvailableDeviceCapacity",
    "BatteryLevel",
    "IMEI",
    "MEID",
    "WiFiMAC",
    "BluetoothMAC",
    "IsSupervised",
    "IsMultiUser",
    "IsActivationLockEnabled",
    "AwaitingConfiguration",
];

/// A command for one enrollment: its `CommandUUID` (the key its results come back under) and
/// the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// `CommandUUID`: unique per command; the device echoes it in its report.
    pub command_uuid: String,
    /// `Command`: what to do.
    pub request: CommandRequest,
}

/// The `Command` dictionary: a typed request for the commands GuardMDM sends itself, or an
/// admin's raw dictionary for everything else.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandRequest {
    /// `DeviceInformation` with `Queries`.
    DeviceInformation {
        /// The query keys (see [`DEFAULT_DEVICE_INFORMATION_QUERIES`]); must not be empty.
        queries: Vec<String>,
    },
    /// `ProfileList`: the installed configuration profiles.
    ProfileList,
    /// `InstallProfile` with `Payload`: a configuration profile (signed or not), sent as data.
    InstallProfile {
        /// The profile's bytes; must not be empty.
        payload: Vec<u8>,
    },
    /// `RemoveProfile` with the profile's `Identifier` (its top-level `PayloadIdentifier`).
    RemoveProfile {
        /// The profile identifier; must not be empty.
        identifier: String,
    },
    /// `DeviceLock`.
    DeviceLock(DeviceLock),
    /// `EraseDevice`.
    EraseDevice(EraseDevice),
    /// `DeviceConfigured`: let a device waiting in Setup Assistant (`AwaitingConfiguration`)
    /// continue.
    DeviceConfigured,
    /// Any command, as an admin wrote it: must hold a non-empty string `RequestType`
    /// (checked by [`CommandRequest::raw`] and again when serializing).
    Raw(Dictionary),
}

/// `DeviceLock` options; all optional (`Default` is a plain lock).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceLock {
    /// `PIN`: macOS Find My PIN, six characters (required by Macs without Apple silicon).
    pub pin: Option<String>,
    /// `Message` for the Lock Screen.
    pub message: Option<String>,
    /// `PhoneNumber` for the Lock Screen.
    pub phone_number: Option<String>,
}

/// `EraseDevice` options; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EraseDevice {
    /// `PIN`: macOS Find My PIN, six characters.
    pub pin: Option<String>,
    /// `PreserveDataPlan`: keep the eSIM data plan (iOS 11+).
    pub preserve_data_plan: Option<bool>,
}

impl Command {
    /// A command with a fresh random `CommandUUID`.
    pub fn new(request: CommandRequest) -> Self {
        Self {
            command_uuid: crate::new_uuid(),
            request,
        }
    }

    /// A command with the given `CommandUUID` (tests, retries, replays).
    pub fn with_uuid(command_uuid: impl Into<String>, request: CommandRequest) -> Self {
        Self {
            command_uuid: command_uuid.into(),
            request,
        }
    }

    /// The command's `RequestType`.
    pub fn request_type(&self) -> &str {
        self.request.request_type()
    }

    /// The whole command as a dictionary `{CommandUUID, Command}`, validated.
    pub fn to_dictionary(&self) -> Result<Dictionary, ProtocolError> {
        if self.command_uuid.is_empty() {
            return Err(self.request.invalid("CommandUUID is empty"));
        }
        let mut dict = Dictionary::new();
        dict.insert(
            "CommandUUID".into(),
            Value::String(self.command_uuid.clone()),
        );
        dict.insert(
            "Command".into(),
            Value::Dictionary(self.request.to_dictionary()?),
        );
        Ok(dict)
    }

    /// The XML property list the device receives in the body of the server's 200 answer.
    pub fn to_xml(&self) -> Result<Vec<u8>, ProtocolError> {
        let mut out = Vec::new();
        Value::Dictionary(self.to_dictionary()?)
            .to_writer_xml(&mut out)
            .map_err(|e| ProtocolError::Write(e.to_string()))?;
        Ok(out)
    }
}

impl CommandRequest {
    /// `DeviceInformation` with [`DEFAULT_DEVICE_INFORMATION_QUERIES`].
    pub fn device_information() -> Self {
        Self::device_information_with(DEFAULT_DEVICE_INFORMATION_QUERIES.iter().copied())
    }

    /// `DeviceInformation` with the given queries.
    pub fn device_information_with<I, S>(queries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::DeviceInformation {
            queries: queries.into_iter().map(Into::into).collect(),
        }
    }

    /// `InstallProfile` with the profile's bytes.
    pub fn install_profile(payload: impl Into<Vec<u8>>) -> Self {
        Self::InstallProfile {
            payload: payload.into(),
        }
    }

    /// `RemoveProfile` for the profile with this identifier.
    pub fn remove_profile(identifier: impl Into<String>) -> Self {
        Self::RemoveProfile {
            identifier: identifier.into(),
        }
    }

    /// A raw command dictionary, checked to hold a non-empty string `RequestType`.
    pub fn raw(command: Dictionary) -> Result<Self, ProtocolError> {
        raw_request_type(&command)?;
        Ok(Self::Raw(command))
    }

    /// The `RequestType` (for a raw dictionary without a valid one: an empty string).
    pub fn request_type(&self) -> &str {
        match self {
            Self::DeviceInformation { .. } => "DeviceInformation",
            Self::ProfileList => "ProfileList",
            Self::InstallProfile { .. } => "InstallProfile",
            Self::RemoveProfile { .. } => "RemoveProfile",
            Self::DeviceLock(_) => "DeviceLock",
            Self::EraseDevice(_) => "EraseDevice",
            Self::DeviceConfigured => "DeviceConfigured",
            Self::Raw(dict) => dict
                .get("RequestType")
                .and_then(Value::as_string)
                .unwrap_or(""),
        }
    }

    /// The `Command` dictionary, validated: `{RequestType, …}`.
    pub fn to_dictionary(&self) -> Result<Dictionary, ProtocolError> {
        if let Self::Raw(dict) = self {
            raw_request_type(dict)?;
            return Ok(dict.clone());
        }
        let mut dict = Dictionary::new();
        dict.insert(
            "RequestType".into(),
            Value::String(self.request_type().into()),
        );
        match self {
            Self::DeviceInformation { queries } => {
                if queries.is_empty() || queries.iter().any(String::is_empty) {
                    return Err(self.invalid("Queries must list at least one non-empty key"));
                }
                let queries = queries.iter().cloned().map(Value::String).collect();
                dict.insert("Queries".into(), Value::Array(queries));
            }
            Self::InstallProfile { payload } => {
                if payload.is_empty() {
                    return Err(self.invalid("the profile Payload is empty"));
                }
                dict.insert("Payload".into(), Value::Data(payload.clone()));
            }
            Self::RemoveProfile { identifier } => {
                if identifier.is_empty() {
                    return Err(self.invalid("the profile Identifier is empty"));
                }
                dict.insert("Identifier".into(), Value::String(identifier.clone()));
            }
            Self::DeviceLock(lock) => {
                self.insert_pin(&mut dict, lock.pin.as_deref())?;
                insert_opt_string(&mut dict, "Message", lock.message.as_deref());
                insert_opt_string(&mut dict, "PhoneNumber", lock.phone_number.as_deref());
            }
            Self::EraseDevice(erase) => {
                self.insert_pin(&mut dict, erase.pin.as_deref())?;
                if let Some(preserve) = erase.preserve_data_plan {
                    dict.insert("PreserveDataPlan".into(), Value::Boolean(preserve));
                }
            }
            Self::ProfileList | Self::DeviceConfigured | Self::Raw(_) => {}
        }
        Ok(dict)
    }

    fn insert_pin(&self, dict: &mut Dictionary, pin: Option<&str>) -> Result<(), ProtocolError> {
        if let Some(pin) = pin {
            if pin.chars().count() != 6 {
                return Err(self.invalid("the Find My PIN must be exactly six characters"));
            }
            dict.insert("PIN".into(), Value::String(pin.into()));
        }
        Ok(())
    }

    fn invalid(&self, reason: &str) -> ProtocolError {
        let request_type = match self.request_type() {
            "" => "(raw)".to_string(),
            t => t.to_string(),
        };
        ProtocolError::InvalidCommand {
            request_type,
            reason: reason.into(),
        }
    }
}

fn insert_opt_string(dict: &mut Dictionary, key: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        dict.insert(key.into(), Value::String(v.into()));
    }
}

/// A raw command's `RequestType`, which must be a non-empty string.
fn raw_request_type(command: &Dictionary) -> Result<&str, ProtocolError> {
    let invalid = |reason: String| ProtocolError::InvalidCommand {
        request_type: "(raw)".into(),
        reason,
    };
    match command.get("RequestType") {
        Some(Value::String(t)) if !t.is_empty() => Ok(t),
        Some(Value::String(_)) | None => Err(invalid("it has no RequestType".into())),
        Some(other) => Err(invalid(format!(
            "its RequestType is {}; it must be a string",
            crate::plist_read::kind(other)
        ))),
    }
}

/// Builds a command from an admin's raw property list upload (XML or binary), in either form:
///
/// - a whole command, `{CommandUUID, Command: {RequestType, …}}`, whose `CommandUUID` is kept
///   (a fresh one is made if it is absent); no other top-level keys are allowed, so nothing the
///   admin wrote is silently dropped;
/// - just the command dictionary, `{RequestType, …}`, which gets a fresh `CommandUUID`.
///
/// The request is always [`CommandRequest::Raw`], sent as uploaded.
pub fn command_from_upload(bytes: &[u8]) -> Result<Command, ProtocolError> {
    const WHAT: &str = "command upload";
    let dict = read_dictionary(bytes, WHAT, MAX_COMMAND_BYTES)?;
    if !dict.contains_key("Command") {
        Fields::new(&dict, WHAT).required_string("RequestType")?;
        return Ok(Command::new(CommandRequest::Raw(dict)));
    }
    let (command_uuid, request) = whole_command(dict, WHAT)?;
    let command_uuid = command_uuid.unwrap_or_else(crate::new_uuid);
    Ok(Command {
        command_uuid,
        request,
    })
}

/// Parses a command as a device receives it (the simulator's side of the wire): a whole
/// command with a `CommandUUID` and a `Command` dictionary holding a `RequestType`. The request
/// comes back as [`CommandRequest::Raw`].
pub fn parse_command(bytes: &[u8]) -> Result<Command, ProtocolError> {
    const WHAT: &str = "command";
    let dict = read_dictionary(bytes, WHAT, MAX_COMMAND_BYTES)?;
    let (command_uuid, request) = whole_command(dict, WHAT)?;
    let command_uuid = command_uuid.ok_or_else(|| ProtocolError::MissingKey {
        what: WHAT,
        key: "CommandUUID".into(),
    })?;
    Ok(Command {
        command_uuid,
        request,
    })
}

/// Splits `{CommandUUID?, Command}`, refusing any other top-level key.
fn whole_command(
    mut dict: Dictionary,
    what: &'static str,
) -> Result<(Option<String>, CommandRequest), ProtocolError> {
    let f = Fields::new(&dict, what);
    let command_uuid = f.string("CommandUUID")?;
    if f.dictionary("Command")?.is_none() {
        return Err(f.missing("Command"));
    }
    if let Some(extra) = dict.keys().find(|k| *k != "CommandUUID" && *k != "Command") {
        return Err(ProtocolError::InvalidValue {
            what,
            key: extra.clone(),
            reason: "a command holds only CommandUUID and Command; put request keys inside \
                     Command"
                .into(),
        });
    }
    let Some(Value::Dictionary(command)) = dict.remove("Command") else {
        return Err(ProtocolError::MissingKey {
            what,
            key: "Command".into(),
        });
    };
    Fields::nested(&command, what, "Command.").required_string("RequestType")?;
    let request = CommandRequest::Raw(command);
    Ok((command_uuid, request))
}

//! Running one MDM command the way a device does, and the result it reports (`docs/protocol.md`
//! §7.3; Apple's "Commands and Queries"). Error chains use the domains and codes of Apple's
//! MDM protocol reference ("Error Codes"): `MCMDMErrorDomain` 12021 for an unknown
//! `RequestType`, `MDMErrorDomain` 12075 for removing a profile that is not installed (what
//! current iOS sends), `MCInstallationErrorDomain` 4001 with the `MCProfileErrorDomain` cause
//! for a profile that cannot be installed.

use guardmdm_crypto::verify_attached_signature;
use guardmdm_mdm_protocol::{CommandRequest, parse_command};
use plist::{Dictionary, Value};

use super::profile::{self, BAD_SIGNATURE, MALFORMED_PROFILE};
use super::{CommandRun, Facts, State};
use crate::catalog::DeviceFamily;

/// What the device does after the result is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    /// Nothing: the session goes on.
    None,
    /// `EraseDevice`: wipe and stop.
    Erase,
    /// `RemoveProfile` of the MDM profile: check out and stop.
    RemoveMdm,
}

/// A command's result.
pub(super) struct Outcome {
    pub(super) report: Dictionary,
    pub(super) run: CommandRun,
    pub(super) effect: Effect,
}

/// `AccessRights` bits (`docs/protocol.md` §6.2).
const INSPECT_PROFILES: u32 = 1;
const INSTALL_PROFILES: u32 = 2;
const LOCK: u32 = 4;
const ERASE: u32 = 8;
const DEVICE_INFO: u32 = 16;
const NETWORK_INFO: u32 = 32;

/// One entry of an `ErrorChain`.
struct ChainItem {
    code: i64,
    domain: &'static str,
    text: String,
}

fn item(code: i64, domain: &'static str, text: impl Into<String>) -> ChainItem {
    ChainItem {
        code,
        domain,
        text: text.into(),
    }
}

/// What a command handler decided.
enum Answer {
    Acknowledged(Dictionary),
    Error(Vec<ChainItem>),
    FormatError,
}

/// Reads the server's answer and runs the command in it. `Err` only when the answer is not a
/// command at all (not a property list, or no `CommandUUID`): the session ends there.
pub(super) fn execute(facts: &Facts, state: &mut State, body: &[u8]) -> Result<Outcome, String> {
    let (command_uuid, request_type, dict) = match parse_command(body) {
        Ok(command) => {
            let request_type = command.request_type().to_string();
            let CommandRequest::Raw(dict) = command.request else {
                return Err("the command did not parse to a raw dictionary".to_string());
            };
            (command.command_uuid, request_type, Some(dict))
        }
        Err(e) => {
            // A plist with a CommandUUID but a broken Command is a CommandFormatError; anything
            // else cannot be answered.
            let uuid = Value::from_reader(std::io::Cursor::new(body))
                .ok()
                .and_then(|v| {
                    v.as_dictionary()?
                        .get("CommandUUID")?
                        .as_string()
                        .map(str::to_string)
                })
                .ok_or_else(|| format!("the server's answer is not a command: {e}"))?;
            (uuid, String::new(), None)
        }
    };
    let mut effect = Effect::None;
    let answer = match dict {
        None => Answer::FormatError,
        Some(_) if state.not_now_forever.as_deref() == Some(request_type.as_str()) => {
            return Ok(outcome(
                facts,
                command_uuid,
                request_type,
                "NotNow",
                Dictionary::new(),
                Effect::None,
            ));
        }
        Some(_) if state.not_now > 0 => {
            state.not_now -= 1;
            return Ok(outcome(
                facts,
                command_uuid,
                request_type,
                "NotNow",
                Dictionary::new(),
                Effect::None,
            ));
        }
        Some(dict) => run(facts, state, &request_type, &dict, &mut effect),
    };
    let (status, extra) = match answer {
        Answer::Acknowledged(extra) => ("Acknowledged", extra),
        Answer::FormatError => {
            effect = Effect::None;
            ("CommandFormatError", Dictionary::new())
        }
        Answer::Error(chain) => {
            effect = Effect::None;
            let items = chain
                .into_iter()
                .map(|i| {
                    let mut d = Dictionary::new();
                    d.insert("ErrorCode".into(), Value::Integer(i.code.into()));
                    d.insert("ErrorDomain".into(), Value::String(i.domain.into()));
                    d.insert("LocalizedDescription".into(), Value::String(i.text.clone()));
                    d.insert("USEnglishDescription".into(), Value::String(i.text));
                    Value::Dictionary(d)
                })
                .collect();
            let mut extra = Dictionary::new();
            extra.insert("ErrorChain".into(), Value::Array(items));
            ("Error", extra)
        }
    };
    Ok(outcome(
        facts,
        command_uuid,
        request_type,
        status,
        extra,
        effect,
    ))
}

fn outcome(
    facts: &Facts,
    command_uuid: String,
    request_type: String,
    status: &str,
    extra: Dictionary,
    effect: Effect,
) -> Outcome {
    let mut report = extra;
    report.insert("CommandUUID".into(), Value::String(command_uuid.clone()));
    report.insert("Status".into(), Value::String(status.into()));
    report.insert("UDID".into(), Value::String(facts.hw.udid.clone()));
    Outcome {
        report,
        run: CommandRun {
            command_uuid,
            request_type,
            status: status.to_string(),
        },
        effect,
    }
}

fn not_authorized(request_type: &str) -> Answer {
    Answer::Error(vec![item(
        12007,
        "MCMDMErrorDomain",
        format!("The MDM server is not authorized to send “{request_type}” to this device."),
    )])
}

fn run(
    facts: &Facts,
    state: &mut State,
    request_type: &str,
    command: &Dictionary,
    effect: &mut Effect,
) -> Answer {
    let rights = state.enrollment.as_ref().map_or(0, |e| e.mdm.access_rights);
    let allowed = |bit: u32| rights & bit == bit;
    match request_type {
        "DeviceInformation" => device_information(facts, state, command, rights),
        "ProfileList" if !allowed(INSPECT_PROFILES) => not_authorized(request_type),
        "ProfileList" => {
            let mut extra = Dictionary::new();
            let list = state.installed.iter().map(|p| p.to_list_item()).collect();
            extra.insert("ProfileList".into(), Value::Array(list));
            Answer::Acknowledged(extra)
        }
        "InstallProfile" if !allowed(INSTALL_PROFILES) => not_authorized(request_type),
        "InstallProfile" => install_profile(state, command),
        "RemoveProfile" if !allowed(INSTALL_PROFILES) => not_authorized(request_type),
        "RemoveProfile" => remove_profile(state, command, effect),
        "DeviceConfigured" => {
            state.awaiting_configuration = false;
            Answer::Acknowledged(Dictionary::new())
        }
        "DeviceLock" if !allowed(LOCK) => not_authorized(request_type),
        "DeviceLock" | "EraseDevice" => match command.get("PIN") {
            Some(Value::String(pin)) if pin.chars().count() != 6 => Answer::FormatError,
            Some(Value::String(_)) | None => {
                if request_type == "EraseDevice" {
                    if !allowed(ERASE) {
                        return not_authorized(request_type);
                    }
                    *effect = Effect::Erase;
                } else {
                    state.locked = true;
                }
                Answer::Acknowledged(Dictionary::new())
            }
            Some(_) => Answer::FormatError,
        },
        other => Answer::Error(vec![item(
            12021,
            "MCMDMErrorDomain",
            format!("“{other}” is not a valid request type."),
        )]),
    }
}

fn device_information(facts: &Facts, state: &State, command: &Dictionary, rights: u32) -> Answer {
    let Some(Value::Array(queries)) = command.get("Queries") else {
        return Answer::FormatError;
    };
    let supervised = state.ade.as_ref().is_none_or(|a| a.is_supervised);
    let mobile = matches!(facts.family, DeviceFamily::IPhone | DeviceFamily::IPad);
    let mut responses = Dictionary::new();
    let os = facts.os();
    for query in queries {
        let Some(key) = query.as_string() else {
            return Answer::FormatError;
        };
        let needs = match key {
            "UDID" | "AwaitingConfiguration" => 0,
            "IMEI" | "MEID" | "WiFiMAC" | "BluetoothMAC" | "EthernetMAC" => NETWORK_INFO,
            _ => DEVICE_INFO,
        };
        if rights & needs != needs {
            continue;
        }
        let string = |s: &str| Some(Value::String(s.to_string()));
        let value = match key {
            "UDID" => string(&facts.hw.udid),
            "SerialNumber" => string(&facts.serial),
            "DeviceName" => string(facts.hw.model_name),
            "Model" => string(&facts.hw.model_number),
            "ModelName" => string(facts.hw.model_name),
            "ProductName" => string(facts.hw.product),
            "OSVersion" => string(&os.version),
            "BuildVersion" => string(&os.build),
            "DeviceCapacity" => Some(Value::Real(facts.capacity_gb)),
            "AvailableDeviceCapacity" => Some(Value::Real(
                (facts.capacity_gb * 0.8 * 100.0).round() / 100.0,
            )),
            "BatteryLevel" if mobile => Some(Value::Real(0.87)),
            "IMEI" => facts.imei.as_deref().and_then(string),
            "WiFiMAC" => string(&facts.wifi_mac),
            "BluetoothMAC" => string(&facts.bluetooth_mac),
            "EthernetMAC" => facts.ethernet_mac.as_deref().and_then(string),
            "IsSupervised" => Some(Value::Boolean(supervised)),
            "IsMultiUser" if facts.family == DeviceFamily::IPad => Some(Value::Boolean(false)),
            "IsActivationLockEnabled" => Some(Value::Boolean(false)),
            "IsDeviceLocatorServiceEnabled" => Some(Value::Boolean(false)),
            "IsMDMLostModeEnabled" if mobile => Some(Value::Boolean(false)),
            "AwaitingConfiguration" => Some(Value::Boolean(state.awaiting_configuration)),
            _ => None,
        };
        if let Some(value) = value {
            responses.insert(key.to_string(), value);
        }
    }
    let mut extra = Dictionary::new();
    extra.insert("QueryResponses".into(), Value::Dictionary(responses));
    Answer::Acknowledged(extra)
}

fn installation_failed(cause: ChainItem) -> Answer {
    Answer::Error(vec![
        item(
            4001,
            "MCInstallationErrorDomain",
            "Profile Installation Failed",
        ),
        cause,
    ])
}

fn install_profile(state: &mut State, command: &Dictionary) -> Answer {
    let Some(Value::Data(payload)) = command.get("Payload") else {
        return Answer::FormatError;
    };
    let (content, certificates) = if payload.first() == Some(&0x30) {
        match verify_attached_signature(payload) {
            Ok(signed) => {
                let mut certs = vec![signed.signer.clone()];
                certs.extend(
                    signed
                        .certificates
                        .into_iter()
                        .filter(|c| *c != signed.signer),
                );
                (signed.content, certs)
            }
            Err(e) => {
                return installation_failed(item(
                    BAD_SIGNATURE,
                    "MCProfileErrorDomain",
                    format!("The profile’s signature is not valid: {e}"),
                ));
            }
        }
    } else {
        (payload.clone(), Vec::new())
    };
    let parsed = match profile::parse(&content, certificates) {
        Ok(parsed) => parsed,
        Err(p) => {
            let text = if p.code == MALFORMED_PROFILE {
                format!("The profile is malformed: {}", p.message)
            } else {
                format!("The profile is invalid: {}", p.message)
            };
            return installation_failed(item(p.code, "MCProfileErrorDomain", text));
        }
    };
    if profile::has_mdm_payload(&parsed) {
        return installation_failed(item(
            12001,
            "MCMDMErrorDomain",
            "The device is already managed: a profile with an MDM payload cannot be installed.",
        ));
    }
    let mut installed = parsed.profile;
    if state
        .installed
        .iter()
        .any(|p| p.is_mdm_enrollment && p.identifier == installed.identifier)
    {
        return installation_failed(item(
            12009,
            "MCMDMErrorDomain",
            "The profile would replace the MDM enrollment profile.",
        ));
    }
    installed.is_managed = true;
    match state
        .installed
        .iter_mut()
        .find(|p| p.identifier == installed.identifier)
    {
        Some(existing) => *existing = installed,
        None => state.installed.push(installed),
    }
    Answer::Acknowledged(Dictionary::new())
}

fn remove_profile(state: &mut State, command: &Dictionary, effect: &mut Effect) -> Answer {
    let Some(Value::String(identifier)) = command.get("Identifier") else {
        return Answer::FormatError;
    };
    let Some(index) = state
        .installed
        .iter()
        .position(|p| &p.identifier == identifier)
    else {
        return Answer::Error(vec![item(
            12075,
            "MDMErrorDomain",
            format!("The profile “{identifier}” is not installed."),
        )]);
    };
    let profile = &state.installed[index];
    if profile.is_mdm_enrollment {
        if profile.removal_disallowed {
            return Answer::Error(vec![item(
                12007,
                "MCMDMErrorDomain",
                format!("The profile “{identifier}” cannot be removed."),
            )]);
        }
        *effect = Effect::RemoveMdm;
        return Answer::Acknowledged(Dictionary::new());
    }
    if !profile.is_managed {
        return Answer::Error(vec![item(
            12013,
            "MCMDMErrorDomain",
            format!("The profile “{identifier}” is not managed by MDM."),
        )]);
    }
    state.installed.remove(index);
    Answer::Acknowledged(Dictionary::new())
}

use plist::{Dictionary, Value};

use super::*;
use crate::error::ProtocolError;
use crate::identity::DeviceIdentity;
use crate::test_support::{fixture, read_back, to_binary, xml_dict};

const IPHONE: &str = "00008140-001A2B3C4D5E801C";

fn parse_both(xml: &[u8]) -> DeviceReport {
    let from_xml = parse_report(xml).unwrap();
    let from_binary = parse_report(&to_binary(xml)).unwrap();
    assert_eq!(format!("{from_xml:?}"), format!("{from_binary:?}"));
    assert_eq!(from_xml.raw, from_binary.raw);
    from_xml
}

#[test]
fn idle() {
    let r = parse_both(fixture!("report/idle.plist"));
    assert_eq!(r.identity, DeviceIdentity::Udid(IPHONE.into()));
    assert_eq!(r.status, CommandStatus::Idle);
    assert!(r.is_idle());
    assert_eq!(r.command_uuid, None);
    assert_eq!(r.error_chain, None);
    assert!(!r.is_user_channel());
}

#[test]
fn idle_from_a_user_enrollment() {
    let r = parse_both(fixture!("report/idle_user_enrollment.plist"));
    let id = "A7C2E9F0-1B3D-4C5E-8F6A-7B8C9D0E1F2A";
    assert_eq!(r.identity, DeviceIdentity::EnrollmentId(id.into()));
    assert_eq!(r.enrollment_id.as_deref(), Some(id));
}

#[test]
fn acknowledged_keeps_the_result_in_raw() {
    let r = parse_both(fixture!("report/device_information.plist"));
    assert_eq!(r.status, CommandStatus::Acknowledged);
    assert_eq!(
        r.command_uuid.as_deref(),
        Some("6A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D")
    );
    let answers = r
        .raw
        .get("QueryResponses")
        .and_then(Value::as_dictionary)
        .unwrap();
    assert_eq!(
        answers.get("SerialNumber").and_then(Value::as_string),
        Some("F2LXK3ABHG7F")
    );
    assert_eq!(
        answers.get("IsSupervised").and_then(Value::as_boolean),
        Some(true)
    );
    assert_eq!(
        answers.get("BatteryLevel").and_then(Value::as_real),
        Some(0.87)
    );
}

#[test]
fn error_with_its_chain() {
    let r = parse_both(fixture!("report/install_profile_error.plist"));
    assert_eq!(r.status, CommandStatus::Error);
    assert_eq!(
        r.error_chain.unwrap(),
        vec![
            ErrorChainItem {
                error_code: Some(4001),
                error_domain: Some("MCInstallationErrorDomain".into()),
                localized_description: Some("Le profil « Wi-Fi » n’a pas pu être installé.".into()),
                us_english_description: Some("Profile Installation Failed".into()),
            },
            ErrorChainItem {
                error_code: Some(2003),
                error_domain: Some("MCProfileErrorDomain".into()),
                localized_description: Some("Le profil n’est pas valide.".into()),
                us_english_description: Some("The profile is invalid.".into()),
            },
        ]
    );
}

#[test]
fn not_now_and_command_format_error() {
    let r = parse_both(fixture!("report/not_now.plist"));
    assert_eq!(r.status, CommandStatus::NotNow);
    assert_eq!(
        r.command_uuid.as_deref(),
        Some("9F8E7D6C-5B4A-4938-8271-605F4E3D2C1B")
    );
    let r = parse_both(fixture!("report/command_format_error.plist"));
    assert_eq!(r.status, CommandStatus::CommandFormatError);
    assert!(r.is_user_channel(), "UserID marks the user channel");
    let chain = r.error_chain.unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].error_code, Some(12021));
    assert_eq!(chain[0].us_english_description, None);
}

#[test]
fn nested_results_parse() {
    let r = parse_both(fixture!("report/profile_list.plist"));
    let list = r.raw.get("ProfileList").and_then(Value::as_array).unwrap();
    let profile = list[0].as_dictionary().unwrap();
    let certs = profile
        .get("SignerCertificates")
        .and_then(Value::as_array)
        .unwrap();
    assert!(certs[0].as_data().is_some());
}

#[test]
fn unknown_status_is_kept() {
    let r = parse_report(&xml_dict(
        "<key>UDID</key><string>U1</string><key>Status</key><string>Pending</string>\
         <key>CommandUUID</key><string>C1</string>",
    ))
    .unwrap();
    assert_eq!(r.status, CommandStatus::Other("Pending".into()));
    assert_eq!(r.status.to_string(), "Pending");
}

#[test]
fn status_spellings_round_trip() {
    for s in [
        "Idle",
        "Acknowledged",
        "Error",
        "CommandFormatError",
        "NotNow",
        "Later",
    ] {
        assert_eq!(CommandStatus::from(s.to_string()).as_str(), s);
    }
    assert_eq!(
        CommandStatus::from("idle".to_string()),
        CommandStatus::Other("idle".into())
    );
}

#[test]
fn debug_lists_raw_keys_only() {
    let r = parse_report(fixture!("report/device_information.plist")).unwrap();
    let shown = format!("{r:?}");
    assert!(shown.contains("\"QueryResponses\""), "{shown}");
    assert!(!shown.contains("F2LXK3ABHG7F"), "{shown}");
}

#[test]
fn error_chain_is_read_leniently() {
    let r = parse_report(&xml_dict(
        "<key>UDID</key><string>U1</string><key>Status</key><string>Error</string>\
         <key>CommandUUID</key><string>C1</string><key>ErrorChain</key><array>\
         <string>not a dictionary</string>\
         <dict><key>ErrorCode</key><string>12</string><key>ErrorDomain</key><string>D</string></dict>\
         </array>",
    ))
    .unwrap();
    assert_eq!(
        r.error_chain.unwrap(),
        vec![ErrorChainItem {
            error_domain: Some("D".into()),
            ..Default::default()
        }]
    );
    let r = parse_report(&xml_dict(
        "<key>UDID</key><string>U1</string><key>Status</key><string>Error</string>\
         <key>CommandUUID</key><string>C1</string><key>ErrorChain</key><string>odd</string>",
    ))
    .unwrap();
    assert_eq!(r.error_chain, Some(vec![]));
}

#[test]
fn malformed_reports() {
    let what = "command report";
    assert!(matches!(
        parse_report(b"{\"Status\":\"Idle\"}"),
        Err(ProtocolError::NotAPlist { .. })
    ));
    let truncated = fixture!("report/device_information.plist");
    assert!(matches!(
        parse_report(&truncated[..truncated.len() / 2]),
        Err(ProtocolError::NotAPlist { .. })
    ));
    assert_eq!(
        parse_report(&xml_dict("<key>Status</key><string>Idle</string>")).unwrap_err(),
        ProtocolError::MissingIdentity { what }
    );
    assert_eq!(
        parse_report(&xml_dict("<key>UDID</key><string>U1</string>")).unwrap_err(),
        ProtocolError::MissingKey {
            what,
            key: "Status".into()
        }
    );
    let e = parse_report(&xml_dict(
        "<key>UDID</key><string>U1</string><key>Status</key><string>Acknowledged</string>",
    ))
    .unwrap_err();
    assert_eq!(
        e,
        ProtocolError::MissingKey {
            what,
            key: "CommandUUID".into()
        }
    );
    assert_eq!(e.to_string(), "the command report has no CommandUUID");
    assert_eq!(
        parse_report(&xml_dict(
            "<key>UDID</key><string>U1</string><key>Status</key><true/>"
        ))
        .unwrap_err(),
        ProtocolError::WrongType {
            what,
            key: "Status".into(),
            expected: "a string",
            found: "a boolean"
        }
    );
    assert!(matches!(
        parse_report(&xml_dict(
            "<key>UDID</key><string>U1</string><key>Status</key><string>Error</string>\
             <key>CommandUUID</key><integer>5</integer>"
        )),
        Err(ProtocolError::WrongType { key, .. }) if key == "CommandUUID"
    ));
}

#[test]
fn oversize_reports_are_refused() {
    let body = vec![b' '; MAX_REPORT_BYTES + 1];
    assert_eq!(
        parse_report(&body).unwrap_err(),
        ProtocolError::TooLarge {
            what: "command report",
            size: MAX_REPORT_BYTES + 1,
            limit: MAX_REPORT_BYTES
        }
    );
}

/// Serializes, checks the body is an XML plist, and returns `Command` parsed back.
fn serialized(command: &Command) -> Dictionary {
    let xml = command.to_xml().unwrap();
    assert!(
        xml.starts_with(b"<?xml"),
        "{}",
        String::from_utf8_lossy(&xml)
    );
    let top = read_back(&xml);
    assert_eq!(top.len(), 2, "{top:?}");
    assert_eq!(
        top.get("CommandUUID").and_then(Value::as_string),
        Some(command.command_uuid.as_str())
    );
    top.get("Command")
        .and_then(Value::as_dictionary)
        .unwrap()
        .clone()
}

fn string<'a>(dict: &'a Dictionary, key: &str) -> Option<&'a str> {
    dict.get(key).and_then(Value::as_string)
}

#[test]
fn device_information_with_default_queries() {
    let command = Command::with_uuid("C-1", CommandRequest::device_information());
    assert_eq!(command.request_type(), "DeviceInformation");
    let inner = serialized(&command);
    assert_eq!(string(&inner, "RequestType"), Some("DeviceInformation"));
    let queries: Vec<&str> = inner
        .get("Queries")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|q| q.as_string().unwrap())
        .collect();
    assert_eq!(queries, DEFAULT_DEVICE_INFORMATION_QUERIES);
    assert!(queries.contains(&"SerialNumber") && queries.contains(&"OSVersion"));

    let custom = Command::with_uuid("C-2", CommandRequest::device_information_with(["UDID"]));
    let inner = serialized(&custom);
    assert_eq!(
        inner.get("Queries"),
        Some(&Value::Array(vec![Value::String("UDID".into())]))
    );
}

#[test]
fn profile_commands() {
    let inner = serialized(&Command::with_uuid("C", CommandRequest::ProfileList));
    assert_eq!(inner.len(), 1);
    assert_eq!(string(&inner, "RequestType"), Some("ProfileList"));

    let profile = b"<?xml version=\"1.0\"?><plist><dict/></plist>".to_vec();
    let inner = serialized(&Command::with_uuid(
        "C",
        CommandRequest::install_profile(profile.clone()),
    ));
    assert_eq!(string(&inner, "RequestType"), Some("InstallProfile"));
    assert_eq!(
        inner.get("Payload").and_then(Value::as_data),
        Some(profile.as_slice())
    );
    let xml = Command::with_uuid("C", CommandRequest::install_profile(profile))
        .to_xml()
        .unwrap();
    assert!(
        String::from_utf8(xml).unwrap().contains("<data>"),
        "Payload must be plist data"
    );

    let inner = serialized(&Command::with_uuid(
        "C",
        CommandRequest::remove_profile("com.example.wifi"),
    ));
    assert_eq!(string(&inner, "RequestType"), Some("RemoveProfile"));
    assert_eq!(string(&inner, "Identifier"), Some("com.example.wifi"));
}

#[test]
fn lock_erase_and_configured() {
    let plain = serialized(&Command::with_uuid(
        "C",
        CommandRequest::DeviceLock(DeviceLock::default()),
    ));
    assert_eq!(plain.len(), 1);
    assert_eq!(string(&plain, "RequestType"), Some("DeviceLock"));
    let lock = DeviceLock {
        pin: Some("123456".into()),
        message: Some("Return to IT, 3rd floor".into()),
        phone_number: Some("+1 555 0100".into()),
    };
    let inner = serialized(&Command::with_uuid("C", CommandRequest::DeviceLock(lock)));
    assert_eq!(string(&inner, "PIN"), Some("123456"));
    assert_eq!(string(&inner, "Message"), Some("Return to IT, 3rd floor"));
    assert_eq!(string(&inner, "PhoneNumber"), Some("+1 555 0100"));

    let erase = EraseDevice {
        pin: None,
        preserve_data_plan: Some(true),
    };
    let inner = serialized(&Command::with_uuid("C", CommandRequest::EraseDevice(erase)));
    assert_eq!(string(&inner, "RequestType"), Some("EraseDevice"));
    assert_eq!(inner.get("PreserveDataPlan"), Some(&Value::Boolean(true)));
    assert!(!inner.contains_key("PIN"));
    let erase = EraseDevice {
        pin: Some("654321".into()),
        preserve_data_plan: None,
    };
    let inner = serialized(&Command::with_uuid("C", CommandRequest::EraseDevice(erase)));
    assert_eq!(string(&inner, "PIN"), Some("654321"));
    assert!(!inner.contains_key("PreserveDataPlan"));

    let inner = serialized(&Command::with_uuid("C", CommandRequest::DeviceConfigured));
    assert_eq!(inner.len(), 1);
    assert_eq!(string(&inner, "RequestType"), Some("DeviceConfigured"));
}

#[test]
fn new_commands_get_fresh_uuids() {
    let a = Command::new(CommandRequest::ProfileList);
    let b = Command::new(CommandRequest::ProfileList);
    assert_ne!(a.command_uuid, b.command_uuid);
    assert!(uuid::Uuid::parse_str(&a.command_uuid).is_ok());
}

#[test]
fn invalid_commands_are_refused_with_a_reason() {
    let check = |request: CommandRequest, expected_type: &str, reason_part: &str| {
        let e = Command::with_uuid("C", request).to_xml().unwrap_err();
        match &e {
            ProtocolError::InvalidCommand {
                request_type,
                reason,
            } => {
                assert_eq!(request_type, expected_type);
                assert!(reason.contains(reason_part), "{e}");
            }
            other => panic!("expected InvalidCommand, got {other:?}"),
        }
    };
    check(
        CommandRequest::device_information_with(Vec::<String>::new()),
        "DeviceInformation",
        "Queries",
    );
    check(
        CommandRequest::device_information_with([""]),
        "DeviceInformation",
        "Queries",
    );
    check(
        CommandRequest::install_profile(Vec::new()),
        "InstallProfile",
        "Payload is empty",
    );
    check(
        CommandRequest::remove_profile(""),
        "RemoveProfile",
        "Identifier is empty",
    );
    let lock = DeviceLock {
        pin: Some("1234".into()),
        ..Default::default()
    };
    check(
        CommandRequest::DeviceLock(lock),
        "DeviceLock",
        "six characters",
    );
    let erase = EraseDevice {
        pin: Some("1234567".into()),
        ..Default::default()
    };
    check(
        CommandRequest::EraseDevice(erase),
        "EraseDevice",
        "six characters",
    );
    check(
        CommandRequest::Raw(Dictionary::new()),
        "(raw)",
        "no RequestType",
    );
    let mut numeric = Dictionary::new();
    numeric.insert("RequestType".into(), Value::Integer(3.into()));
    check(
        CommandRequest::Raw(numeric.clone()),
        "(raw)",
        "is an integer",
    );
    assert!(CommandRequest::raw(numeric).is_err());

    let e = Command::with_uuid("", CommandRequest::ProfileList)
        .to_xml()
        .unwrap_err();
    assert!(e.to_string().contains("CommandUUID is empty"), "{e}");
}

#[test]
fn raw_commands_are_sent_as_written() {
    let mut dict = Dictionary::new();
    dict.insert("RequestType".into(), Value::String("RestartDevice".into()));
    dict.insert("NotifyUser".into(), Value::Boolean(true));
    let request = CommandRequest::raw(dict.clone()).unwrap();
    assert_eq!(request.request_type(), "RestartDevice");
    assert_eq!(serialized(&Command::with_uuid("C", request)), dict);
}

#[test]
fn upload_of_a_whole_command_keeps_its_uuid() {
    for bytes in [
        fixture!("command/upload_whole.plist").to_vec(),
        to_binary(fixture!("command/upload_whole.plist")),
    ] {
        let command = command_from_upload(&bytes).unwrap();
        assert_eq!(command.command_uuid, "7C6B5A49-3827-4160-9F8E-7D6C5B4A3928");
        assert_eq!(command.request_type(), "Settings");
        let CommandRequest::Raw(dict) = &command.request else {
            panic!("not raw")
        };
        assert!(dict.contains_key("Settings"));
        // What the device receives is what the admin uploaded.
        assert_eq!(read_back(&command.to_xml().unwrap()), read_back(&bytes));
    }
}

#[test]
fn upload_of_a_bare_command_gets_a_fresh_uuid() {
    let command = command_from_upload(fixture!("command/upload_bare.plist")).unwrap();
    assert!(uuid::Uuid::parse_str(&command.command_uuid).is_ok());
    assert_eq!(command.request_type(), "RestartDevice");
    let inner = serialized(&command);
    assert_eq!(inner.get("NotifyUser"), Some(&Value::Boolean(true)));

    let whole_without_uuid = xml_dict(
        "<key>Command</key><dict><key>RequestType</key><string>ProfileList</string></dict>",
    );
    let command = command_from_upload(&whole_without_uuid).unwrap();
    assert!(!command.command_uuid.is_empty());
}

#[test]
fn bad_uploads_say_what_is_wrong() {
    let what = "command upload";
    let e = command_from_upload(b"RequestType: RestartDevice").unwrap_err();
    assert!(
        matches!(
            e,
            ProtocolError::NotAPlist {
                what: "command upload",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        command_from_upload(&xml_dict("<key>NotifyUser</key><true/>")).unwrap_err(),
        ProtocolError::MissingKey {
            what,
            key: "RequestType".into()
        }
    );
    assert_eq!(
        command_from_upload(&xml_dict("<key>RequestType</key><integer>1</integer>")).unwrap_err(),
        ProtocolError::WrongType {
            what,
            key: "RequestType".into(),
            expected: "a string",
            found: "an integer"
        }
    );
    assert_eq!(
        command_from_upload(&xml_dict(
            "<key>Command</key><dict><key>Queries</key><array/></dict>"
        ))
        .unwrap_err(),
        ProtocolError::MissingKey {
            what,
            key: "Command.RequestType".into()
        }
    );
    assert_eq!(
        command_from_upload(&xml_dict("<key>Command</key><string>ProfileList</string>"))
            .unwrap_err(),
        ProtocolError::WrongType {
            what,
            key: "Command".into(),
            expected: "a dictionary",
            found: "a string"
        }
    );
    let e = command_from_upload(&xml_dict(
        "<key>Command</key><dict><key>RequestType</key><string>ProfileList</string></dict>\
         <key>Queries</key><array/>",
    ))
    .unwrap_err();
    assert!(
        matches!(&e, ProtocolError::InvalidValue { key, .. } if key == "Queries"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("put request keys inside Command"),
        "{e}"
    );
    assert!(matches!(
        command_from_upload(b"<?xml version=\"1.0\"?><plist><array/></plist>"),
        Err(ProtocolError::NotADictionary {
            what: "command upload",
            found: "an array"
        })
    ));
}

#[test]
fn the_device_side_parses_what_the_server_sends() {
    let sent = Command::with_uuid("C-9", CommandRequest::remove_profile("com.example.vpn"));
    let received = parse_command(&sent.to_xml().unwrap()).unwrap();
    assert_eq!(received.command_uuid, "C-9");
    assert_eq!(received.request_type(), "RemoveProfile");
    assert_eq!(
        received.request.to_dictionary().unwrap(),
        sent.request.to_dictionary().unwrap()
    );
    assert_eq!(
        parse_command(&xml_dict(
            "<key>Command</key><dict><key>RequestType</key><string>ProfileList</string></dict>"
        ))
        .unwrap_err(),
        ProtocolError::MissingKey {
            what: "command",
            key: "CommandUUID".into()
        }
    );
}

/// Found by fuzzing (`command_upload_full`): a binary upload holding a UID was accepted, then
/// failed to serialize when queued (a 500). It is refused as bad input now.
#[test]
fn an_upload_holding_a_uid_is_refused() {
    let hex = "62706c6973743030d2010203045b52657175657374547970655a4e6f74696679557365725d\
               5265737461727444657669636581080d1924320000000000000101000000000000000500000000\
               000000000000000000000033";
    let body: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let err = command_from_upload(&body).unwrap_err();
    assert!(
        matches!(&err, ProtocolError::NotAPlist { reason, .. } if reason.contains("UID")),
        "{err:?}"
    );
    assert!(err.is_bad_input());
}

use secrecy::ExposeSecret;

use super::*;
use crate::test_support::{fixture, to_binary, xml_dict};

const TOPIC: &str = "com.apple.mgmt.External.5a1c3b2e-9d4f-4e6a-8b7c-0d1e2f3a4b5c";
const IPHONE: &str = "00008140-001A2B3C4D5E801C";
const MAC: &str = "8B7E1C3A-5D2F-4A6B-9C0D-1E2F3A4B5C6D";

fn parse_both(xml: &[u8]) -> CheckinMessage {
    let from_xml = parse_checkin(xml).unwrap();
    let from_binary = parse_checkin(&to_binary(xml)).unwrap();
    assert_eq!(format!("{from_xml:?}"), format!("{from_binary:?}"));
    from_xml
}

#[test]
fn authenticate_ios() {
    let CheckinMessage::Authenticate(m) = parse_both(fixture!("checkin/authenticate_ios.plist"))
    else {
        panic!("not Authenticate")
    };
    assert_eq!(
        m,
        Authenticate {
            identity: DeviceIdentity::Udid(IPHONE.into()),
            enrollment_id: None,
            topic: TOPIC.into(),
            build_version: Some("22A3354".into()),
            os_version: Some("18.0".into()),
            product_name: Some("iPhone17,2".into()),
            serial_number: Some("F2LXK3ABHG7F".into()),
            imei: Some("35 209900 176148 1".into()),
            meid: Some("35209900176148".into()),
            device_name: None,
            model: None,
            model_name: None,
            enrollment_user_id: None,
        }
    );
}

#[test]
fn authenticate_macos() {
    let msg = parse_both(fixture!("checkin/authenticate_macos.plist"));
    assert_eq!(msg.message_type(), "Authenticate");
    assert_eq!(msg.identity(), &DeviceIdentity::Udid(MAC.into()));
    let CheckinMessage::Authenticate(m) = msg else {
        panic!("not Authenticate")
    };
    assert_eq!(m.device_name.as_deref(), Some("Robin's MacBook Air"));
    assert_eq!(m.model.as_deref(), Some("Mac14,2"));
    assert_eq!(m.model_name.as_deref(), Some("MacBook Air"));
    assert_eq!(m.imei, None);
}

#[test]
fn authenticate_user_enrollment_speaks_for_its_enrollment_id() {
    let msg = parse_both(fixture!("checkin/authenticate_user_enrollment.plist"));
    let id = "A7C2E9F0-1B3D-4C5E-8F6A-7B8C9D0E1F2A";
    assert_eq!(msg.identity(), &DeviceIdentity::EnrollmentId(id.into()));
    assert!(msg.identity().is_user_enrollment());
    let CheckinMessage::Authenticate(m) = msg else {
        panic!("not Authenticate")
    };
    assert_eq!(m.enrollment_id.as_deref(), Some(id));
    assert_eq!(m.serial_number, None);
}

#[test]
fn token_update_ios_device_channel() {
    let CheckinMessage::TokenUpdate(m) = parse_both(fixture!("checkin/token_update_ios.plist"))
    else {
        panic!("not TokenUpdate")
    };
    assert_eq!(m.identity, DeviceIdentity::Udid(IPHONE.into()));
    assert_eq!(m.topic, TOPIC);
    assert_eq!(
        m.token.expose_secret(),
        (1..=32).collect::<Vec<u8>>().as_slice()
    );
    assert_eq!(
        m.token_hex(),
        "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
    );
    assert_eq!(
        m.push_magic.expose_secret(),
        "0E9B4F3C-6A1D-4B2E-8C7F-5D3A2B1C0E9F"
    );
    let unlock = m.unlock_token.as_ref().unwrap().expose_secret();
    assert!(unlock.starts_with(b"unlock-token-"));
    assert_eq!(unlock.len(), 13 + 40);
    assert!(m.awaiting_configuration);
    assert!(!m.is_user_channel());
    assert_eq!(m.not_on_console, None);
}

#[test]
fn token_update_macos_user_channel() {
    let msg = parse_both(fixture!("checkin/token_update_macos_user.plist"));
    let CheckinMessage::TokenUpdate(m) = msg else {
        panic!("not TokenUpdate")
    };
    assert!(m.is_user_channel());
    assert_eq!(
        m.user_id.as_deref(),
        Some("5F4E3D2C-1B0A-4987-8654-3210FEDCBA98")
    );
    assert_eq!(m.user_short_name.as_deref(), Some("robin"));
    assert_eq!(m.user_long_name.as_deref(), Some("Robin Example"));
    assert_eq!(m.not_on_console, Some(false));
    assert!(
        !m.awaiting_configuration,
        "absent AwaitingConfiguration means false"
    );
    assert!(m.unlock_token.is_none());
}

#[test]
fn token_update_debug_redacts_secrets() {
    let msg = parse_checkin(fixture!("checkin/token_update_ios.plist")).unwrap();
    let shown = format!("{msg:?}");
    assert!(!shown.contains("0E9B4F3C"), "PushMagic leaked: {shown}");
    assert!(
        !shown.contains("117, 110, 108"),
        "UnlockToken leaked: {shown}"
    );
    assert!(shown.contains("REDACTED"), "{shown}");
    assert!(
        shown.contains(IPHONE),
        "the identity is not secret: {shown}"
    );
}

#[test]
fn check_out() {
    let msg = parse_both(fixture!("checkin/check_out.plist"));
    let CheckinMessage::CheckOut(m) = msg else {
        panic!("not CheckOut")
    };
    assert_eq!(
        m,
        CheckOut {
            identity: DeviceIdentity::Udid(IPHONE.into()),
            enrollment_id: None,
            topic: TOPIC.into()
        }
    );
}

#[test]
fn other_message_types_are_kept_whole() {
    let cases = [
        (
            fixture!("checkin/set_bootstrap_token.plist"),
            "SetBootstrapToken",
            MAC,
        ),
        (
            fixture!("checkin/get_bootstrap_token.plist"),
            "GetBootstrapToken",
            MAC,
        ),
        (
            fixture!("checkin/declarative_management.plist"),
            "DeclarativeManagement",
            IPHONE,
        ),
        (
            fixture!("checkin/user_authenticate.plist"),
            "UserAuthenticate",
            MAC,
        ),
    ];
    for (bytes, expected_type, udid) in cases {
        let msg = parse_both(bytes);
        assert_eq!(msg.message_type(), expected_type);
        assert_eq!(msg.identity(), &DeviceIdentity::Udid(udid.into()));
        let CheckinMessage::Other {
            message_type, raw, ..
        } = msg
        else {
            panic!("{expected_type} should be Other")
        };
        assert_eq!(message_type, expected_type);
        assert_eq!(
            raw.get("MessageType").and_then(plist::Value::as_string),
            Some(expected_type)
        );
    }
}

#[test]
fn other_keeps_data_and_hides_it_from_debug() {
    let msg = parse_checkin(fixture!("checkin/set_bootstrap_token.plist")).unwrap();
    let shown = format!("{msg:?}");
    assert!(shown.contains("\"BootstrapToken\""), "{shown}");
    assert!(
        !shown.contains("98, 111, 111"),
        "token bytes leaked: {shown}"
    );
    let CheckinMessage::Other { raw, .. } = msg else {
        panic!("not Other")
    };
    assert_eq!(
        raw.get("BootstrapToken").and_then(plist::Value::as_data),
        Some(b"bootstrap-token-secret-bytes".as_slice())
    );
    let msg = parse_checkin(fixture!("checkin/declarative_management.plist")).unwrap();
    let CheckinMessage::Other { raw, .. } = msg else {
        panic!("not Other")
    };
    assert_eq!(
        raw.get("Endpoint").and_then(plist::Value::as_string),
        Some("tokens")
    );
}

#[test]
fn an_unknown_message_type_is_kept() {
    let body = xml_dict(
        "<key>MessageType</key><string>FutureThing</string>\
         <key>EnrollmentID</key><string>E1</string><key>Extra</key><integer>7</integer>",
    );
    let msg = parse_checkin(&body).unwrap();
    assert_eq!(msg.message_type(), "FutureThing");
    assert_eq!(msg.identity(), &DeviceIdentity::EnrollmentId("E1".into()));
}

#[test]
fn udid_wins_over_enrollment_id_and_both_are_kept() {
    let body = xml_dict(&format!(
        "<key>MessageType</key><string>CheckOut</string><key>Topic</key><string>{TOPIC}</string>\
         <key>UDID</key><string>U1</string><key>EnrollmentID</key><string>E1</string>"
    ));
    let CheckinMessage::CheckOut(m) = parse_checkin(&body).unwrap() else {
        panic!()
    };
    assert_eq!(m.identity, DeviceIdentity::Udid("U1".into()));
    assert_eq!(m.enrollment_id.as_deref(), Some("E1"));
}

fn err(body: &[u8]) -> ProtocolError {
    parse_checkin(body).unwrap_err()
}

#[test]
fn not_a_plist() {
    let e = err(b"MessageType=Authenticate&UDID=1");
    assert!(
        matches!(
            e,
            ProtocolError::NotAPlist {
                what: "check-in message",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("the check-in message is not a valid property list")
    );
    assert_eq!(
        err(b""),
        ProtocolError::Empty {
            what: "check-in message"
        }
    );
}

#[test]
fn truncated_xml_and_binary() {
    let xml = fixture!("checkin/token_update_ios.plist");
    for cut in [xml.len() / 2, xml.len() - 20] {
        let e = err(&xml[..cut]);
        assert!(
            matches!(e, ProtocolError::NotAPlist { .. }),
            "cut {cut}: {e:?}"
        );
    }
    let binary = to_binary(xml);
    for cut in [8, binary.len() / 2, binary.len() - 1] {
        let e = err(&binary[..cut]);
        assert!(
            matches!(e, ProtocolError::NotAPlist { .. }),
            "cut {cut}: {e:?}"
        );
    }
}

#[test]
fn not_a_dictionary() {
    let body =
        b"<?xml version=\"1.0\"?><plist version=\"1.0\"><array><string>x</string></array></plist>";
    assert_eq!(
        err(body),
        ProtocolError::NotADictionary {
            what: "check-in message",
            found: "an array"
        }
    );
}

#[test]
fn missing_keys() {
    let missing = |what, key: &str| ProtocolError::MissingKey {
        what,
        key: key.into(),
    };
    assert_eq!(
        err(&xml_dict("<key>UDID</key><string>U1</string>")),
        missing("check-in message", "MessageType")
    );
    assert_eq!(
        err(&xml_dict(
            "<key>MessageType</key><string></string><key>UDID</key><string>U1</string>"
        )),
        missing("check-in message", "MessageType"),
        "an empty MessageType is no MessageType"
    );
    let e = err(&xml_dict(&format!(
        "<key>MessageType</key><string>Authenticate</string><key>Topic</key><string>{TOPIC}</string>"
    )));
    assert_eq!(
        e,
        ProtocolError::MissingIdentity {
            what: "Authenticate check-in"
        }
    );
    assert_eq!(
        e.to_string(),
        "the Authenticate check-in has neither UDID nor EnrollmentID, so it names no enrollment"
    );
    assert_eq!(
        err(&xml_dict(
            "<key>MessageType</key><string>GetBootstrapToken</string>"
        )),
        ProtocolError::MissingIdentity {
            what: "check-in message"
        }
    );
    assert_eq!(
        err(&xml_dict(
            "<key>MessageType</key><string>Authenticate</string><key>UDID</key><string>U1</string>"
        )),
        missing("Authenticate check-in", "Topic")
    );
    let token_update = |extra: &str| {
        xml_dict(&format!(
            "<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>U1</string>\
             <key>Topic</key><string>{TOPIC}</string>{extra}"
        ))
    };
    assert_eq!(
        err(&token_update("<key>PushMagic</key><string>P</string>")),
        missing("TokenUpdate check-in", "Token")
    );
    assert_eq!(
        err(&token_update(
            "<key>PushMagic</key><string>P</string><key>Token</key><data></data>"
        )),
        missing("TokenUpdate check-in", "Token"),
        "an empty token cannot be pushed to"
    );
    assert_eq!(
        err(&token_update("<key>Token</key><data>AQI=</data>")),
        missing("TokenUpdate check-in", "PushMagic")
    );
    assert!(
        parse_checkin(&token_update(
            "<key>Token</key><data>AQI=</data><key>PushMagic</key><string>P</string>"
        ))
        .is_ok()
    );
}

#[test]
fn wrong_types() {
    let e = err(&xml_dict("<key>MessageType</key><integer>1</integer>"));
    assert_eq!(
        e,
        ProtocolError::WrongType {
            what: "check-in message",
            key: "MessageType".into(),
            expected: "a string",
            found: "an integer"
        }
    );
    assert_eq!(
        e.to_string(),
        "MessageType in the check-in message is an integer; it must be a string"
    );
    let e = err(&xml_dict(&format!(
        "<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>U1</string>\
         <key>Topic</key><string>{TOPIC}</string><key>PushMagic</key><string>P</string>\
         <key>Token</key><string>0102</string>"
    )));
    assert!(
        matches!(&e, ProtocolError::WrongType { key, expected: "data", found: "a string", .. } if key == "Token"),
        "{e:?}"
    );
    let e = err(&xml_dict(&format!(
        "<key>MessageType</key><string>TokenUpdate</string><key>UDID</key><string>U1</string>\
         <key>Topic</key><string>{TOPIC}</string><key>PushMagic</key><string>P</string>\
         <key>Token</key><data>AQI=</data><key>AwaitingConfiguration</key><string>yes</string>"
    )));
    assert!(
        matches!(&e, ProtocolError::WrongType { key, expected: "a boolean", .. } if key == "AwaitingConfiguration"),
        "{e:?}"
    );
    let e = err(&xml_dict(
        "<key>MessageType</key><string>CheckOut</string><key>UDID</key><array/>",
    ));
    assert!(
        matches!(&e, ProtocolError::WrongType { key, found: "an array", .. } if key == "UDID"),
        "{e:?}"
    );
}

#[test]
fn oversize_bodies_are_refused() {
    let padding = "x".repeat(MAX_CHECKIN_BYTES);
    let body = xml_dict(&format!(
        "<key>MessageType</key><string>CheckOut</string><key>Pad</key><string>{padding}</string>"
    ));
    assert!(matches!(
        err(&body),
        ProtocolError::TooLarge {
            what: "check-in message",
            limit: MAX_CHECKIN_BYTES,
            ..
        }
    ));
}

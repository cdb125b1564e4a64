use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::*;
use crate::test_support::{fixture, to_binary, xml_dict};

#[test]
fn ios_17_machine_info() {
    for bytes in [
        fixture!("machine_info/ios17.plist").to_vec(),
        to_binary(fixture!("machine_info/ios17.plist")),
    ] {
        let m = parse_machine_info(&bytes).unwrap();
        assert_eq!(m.udid, "00008120-001A2B3C4D5E801C");
        assert_eq!(m.serial, "F2LXK3ABHG7F");
        assert_eq!(m.product, "iPhone15,2");
        assert_eq!(m.version, "21F90");
        assert_eq!(m.os_version.as_deref(), Some("17.5.1"));
        assert_eq!(m.imei.as_deref(), Some("35 209900 176148 1"));
        assert_eq!(m.meid.as_deref(), Some("35209900176148"));
        assert_eq!(m.language.as_deref(), Some("fr-FR"));
        assert!(m.mdm_can_request_software_update);
        assert_eq!(m.software_update_device_id.as_deref(), Some("iPhone15,2"));
        assert_eq!(m.supplemental_build_version, None);
        assert_eq!(m.raw.len(), 10);
    }
}

#[test]
fn minimal_macos_machine_info() {
    let m = parse_machine_info(fixture!("machine_info/macos_minimal.plist")).unwrap();
    assert_eq!(m.udid, "8B7E1C3A-5D2F-4A6B-9C0D-1E2F3A4B5C6D");
    assert_eq!(m.serial, "C02XK1ZZJGH5");
    assert_eq!(m.product, "Mac14,2");
    assert_eq!(m.version, "22G120");
    assert_eq!(
        (m.imei, m.meid, m.language, m.os_version),
        (None, None, None, None)
    );
    assert!(!m.mdm_can_request_software_update, "absent means false");
}

#[test]
fn debug_hides_raw_values() {
    let body = xml_dict(
        "<key>UDID</key><string>U</string><key>SERIAL</key><string>S</string>\
         <key>PRODUCT</key><string>P</string><key>VERSION</key><string>V</string>\
         <key>PAIRING_TOKEN</key><data>c2VjcmV0LXBhaXJpbmc=</data>",
    );
    let m = parse_machine_info(&body).unwrap();
    let shown = format!("{m:?}");
    assert!(shown.contains("PAIRING_TOKEN"), "{shown}");
    assert!(!shown.contains("115, 101, 99"), "{shown}");
}

#[test]
fn malformed_machine_info() {
    let what = "MachineInfo";
    for key in ["UDID", "SERIAL", "PRODUCT", "VERSION"] {
        let all = [
            ("UDID", "U"),
            ("SERIAL", "S"),
            ("PRODUCT", "P"),
            ("VERSION", "V"),
        ];
        let body: String = all
            .iter()
            .filter(|(k, _)| *k != key)
            .map(|(k, v)| format!("<key>{k}</key><string>{v}</string>"))
            .collect();
        assert_eq!(
            parse_machine_info(&xml_dict(&body)).unwrap_err(),
            ProtocolError::MissingKey {
                what,
                key: key.into()
            }
        );
    }
    let e = parse_machine_info(&xml_dict(
        "<key>UDID</key><string>U</string><key>SERIAL</key><string>S</string>\
         <key>PRODUCT</key><string>P</string><key>VERSION</key><string>V</string>\
         <key>MDM_CAN_REQUEST_SOFTWARE_UPDATE</key><string>true</string>",
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "MDM_CAN_REQUEST_SOFTWARE_UPDATE in the MachineInfo is a string; it must be a boolean"
    );
    // The CMS envelope itself is not a property list: it must be verified and unwrapped first.
    let cms = [
        0x30, 0x82, 0x05, 0x10, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
    ];
    assert!(matches!(
        parse_machine_info(&cms),
        Err(ProtocolError::NotAPlist {
            what: "MachineInfo",
            ..
        })
    ));
    let body = fixture!("machine_info/ios17.plist");
    assert!(matches!(
        parse_machine_info(&body[..body.len() - 60]),
        Err(ProtocolError::NotAPlist { .. })
    ));
    assert!(matches!(
        parse_machine_info(&vec![b' '; MAX_MACHINE_INFO_BYTES + 1]),
        Err(ProtocolError::TooLarge { .. })
    ));
}

#[test]
fn device_info_header_decodes_in_every_base64_form() {
    let blob: Vec<u8> = (0..=255).cycle().take(1000).collect();
    let standard = STANDARD.encode(&blob);
    assert!(standard.contains('+') && standard.contains('/'));
    let url_safe = URL_SAFE_NO_PAD.encode(&blob);
    let folded: String = standard
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n ");
    for value in [&standard, &url_safe, &folded, &format!("  {standard}  ")] {
        assert_eq!(decode_device_info_header(value).unwrap(), blob, "{value}");
    }
}

#[test]
fn device_info_header_errors_are_clear() {
    let e = decode_device_info_header("").unwrap_err();
    assert_eq!(
        e,
        ProtocolError::InvalidBase64 {
            header: DEVICE_INFO_HEADER,
            reason: "the value is empty".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "the x-apple-aspen-deviceinfo header is not valid base64: the value is empty"
    );
    assert!(matches!(
        decode_device_info_header("not base64!"),
        Err(ProtocolError::InvalidBase64 { .. })
    ));
    assert!(matches!(
        decode_device_info_header("QUJD="),
        Err(ProtocolError::InvalidBase64 { .. })
    ));
    let huge = "A".repeat(MAX_MACHINE_INFO_BYTES * 2);
    let e = decode_device_info_header(&huge).unwrap_err();
    assert!(e.to_string().contains("more than"), "{e}");
}

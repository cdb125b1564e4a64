use super::*;

fn v(text: &str) -> OsVersion {
    OsVersion::parse(text).unwrap()
}

#[test]
fn versions_compare_numerically_part_by_part() {
    assert!(v("17.5") < v("17.5.1"));
    assert!(v("17.5.1") < v("18"));
    assert!(v("17.9") < v("17.10"));
    assert!(v("9") < v("10.0"));
    assert_eq!(v("17.5"), v("17.5.0"));
    assert_eq!(v(" 17.5 ").as_str(), "17.5");
    assert_eq!(v("26.0.1").major(), 26);
}

#[test]
fn versions_that_are_not_dotted_numbers_are_refused() {
    for bad in [
        "",
        "17.",
        ".5",
        "17..5",
        "17.5a",
        "latest",
        "1.2.3.4.5",
        "-1",
        "1234567",
    ] {
        assert!(OsVersion::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_json_form_is_apples_document() {
    let doc = SoftwareUpdateRequired::new("17.5", Some("21F79".to_string()));
    let json: serde_json::Value = serde_json::from_slice(&doc.to_json().unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "code": "com.apple.softwareupdate.required",
            "details": {"OSVersion": "17.5", "BuildVersion": "21F79"}
        })
    );
    let without = SoftwareUpdateRequired::new("18", None).to_json().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&without).unwrap();
    assert!(json["details"].get("BuildVersion").is_none(), "{json}");
}

#[test]
fn both_forms_read_back() {
    let doc = SoftwareUpdateRequired::new("14.4.1", Some("23E224".to_string()));
    let json = doc.to_json().unwrap();
    assert_eq!(
        SoftwareUpdateRequired::parse("application/json", &json).unwrap(),
        Some(doc.clone())
    );
    let xml = doc.to_plist_xml().unwrap();
    assert!(String::from_utf8_lossy(&xml).contains("<key>OSVersion</key>"));
    assert_eq!(
        SoftwareUpdateRequired::parse("application/xml", &xml).unwrap(),
        Some(doc)
    );
    let bare = SoftwareUpdateRequired::new("17.5", None);
    assert_eq!(
        SoftwareUpdateRequired::parse("application/xml", &bare.to_plist_xml().unwrap()).unwrap(),
        Some(bare)
    );
}

#[test]
fn other_codes_and_broken_documents_are_told_apart() {
    let other = br#"{"code":"com.apple.other","details":{"OSVersion":"1"}}"#;
    assert_eq!(
        SoftwareUpdateRequired::parse("application/json", other).unwrap(),
        None
    );
    assert!(SoftwareUpdateRequired::parse("application/json", b"{").is_err());
    assert!(
        SoftwareUpdateRequired::parse(
            "application/json",
            br#"{"code":"com.apple.softwareupdate.required","details":{}}"#
        )
        .is_err()
    );
    assert!(SoftwareUpdateRequired::parse("application/xml", b"not a plist").is_err());
    let huge = vec![b' '; MAX_SOFTWARE_UPDATE_BYTES + 1];
    assert!(matches!(
        SoftwareUpdateRequired::parse("application/json", &huge),
        Err(ProtocolError::TooLarge { .. })
    ));
}

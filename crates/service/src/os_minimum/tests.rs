use super::*;

fn info(os_version: Option<&str>, can_ask: bool) -> MachineInfo {
    MachineInfo {
        udid: "U".to_string(),
        serial: "S".to_string(),
        product: "iPhone16,1".to_string(),
        version: "21C62".to_string(),
        os_version: os_version.map(str::to_string),
        supplemental_build_version: None,
        supplemental_os_version_extra: None,
        imei: None,
        meid: None,
        language: None,
        mdm_can_request_software_update: can_ask,
        software_update_device_id: Some("iPhone16,1".to_string()),
        raw: plist::Dictionary::new(),
    }
}

fn required(version: &str, build: Option<&str>) -> RequiredOs {
    RequiredOs {
        version: OsVersion::parse(version).unwrap(),
        build: build.map(str::to_string),
    }
}

#[test]
fn without_a_minimum_every_device_enrolls() {
    assert_eq!(
        decide(&info(Some("15.0"), false), Some(OsKey::Ios), None),
        OsDecision::Enroll
    );
}

#[test]
fn a_device_at_or_above_the_minimum_enrolls() {
    let min = required("17.5", None);
    for v in ["17.5", "17.5.0", "17.5.1", "18.0"] {
        assert_eq!(
            decide(&info(Some(v), true), Some(OsKey::Ios), Some(&min)),
            OsDecision::Enroll,
            "{v}"
        );
    }
}

#[test]
fn a_device_below_that_can_be_asked_must_update_with_the_build_when_known() {
    let decision = decide(
        &info(Some("17.2"), true),
        Some(OsKey::Ios),
        Some(&required("17.5", Some("21F79"))),
    );
    assert_eq!(
        decision,
        OsDecision::RequireUpdate(SoftwareUpdateRequired::new(
            "17.5",
            Some("21F79".to_string())
        ))
    );
    let decision = decide(
        &info(Some("17.5"), true),
        Some(OsKey::Ios),
        Some(&required("17.5.1", None)),
    );
    assert_eq!(
        decision,
        OsDecision::RequireUpdate(SoftwareUpdateRequired::new("17.5.1", None))
    );
}

#[test]
fn devices_that_cannot_be_asked_enroll_and_are_reported() {
    let min = required("17.5", None);
    let reason = |d: OsDecision| match d {
        OsDecision::CannotAsk { minimum, reason } => {
            assert_eq!(minimum, "17.5");
            reason
        }
        other => panic!("expected CannotAsk, got {other:?}"),
    };
    let r = reason(decide(
        &info(Some("17.2"), false),
        Some(OsKey::Ios),
        Some(&min),
    ));
    assert!(r.contains("MDM_CAN_REQUEST_SOFTWARE_UPDATE"), "{r}");
    let r = reason(decide(&info(None, false), Some(OsKey::Ios), Some(&min)));
    assert!(r.contains("older than iOS 17"), "{r}");
    let r = reason(decide(
        &info(Some("17.2"), true),
        Some(OsKey::Tvos),
        Some(&min),
    ));
    assert!(r.contains("tvOS"), "{r}");
}

#[test]
fn products_name_their_os() {
    assert_eq!(os_of_product("iPhone16,1"), Some(OsKey::Ios));
    assert_eq!(os_of_product("iPad14,3"), Some(OsKey::Ipados));
    assert_eq!(os_of_product("Mac15,6"), Some(OsKey::Macos));
    assert_eq!(os_of_product("MacBookPro18,3"), Some(OsKey::Macos));
    assert_eq!(os_of_product("RealityDevice14,1"), Some(OsKey::Visionos));
    assert_eq!(os_of_product("AppleTV14,1"), Some(OsKey::Tvos));
    assert_eq!(os_of_product("Watch7,1"), None);
}

#[test]
fn minimums_parse_as_versions_and_latest_is_refused_with_the_reason() {
    let err = parse_minimum(" Latest ").unwrap_err().to_string();
    assert!(err.contains("not available yet"), "{err}");
    assert_eq!(
        parse_minimum("17.5").unwrap(),
        OsMinimum::Version("17.5".to_string())
    );
    assert!(parse_minimum("seventeen").is_err());
    assert!(check_os(OsKey::Tvos).is_err());
    assert!(check_os(OsKey::Visionos).is_ok());
}

#[test]
fn a_profile_minimum_overrides_the_global_one_for_its_os_only() {
    let global = vec![
        (OsKey::Ios, OsMinimum::Version("17.0".to_string())),
        (OsKey::Macos, OsMinimum::Latest),
    ];
    let profile = ProfileMinimums {
        ios: Some("17.5".to_string()),
        ..ProfileMinimums::default()
    };
    assert_eq!(
        effective_minimum(OsKey::Ios, Some(&profile), &global),
        Some(OsMinimum::Version("17.5".to_string()))
    );
    assert_eq!(
        effective_minimum(OsKey::Macos, Some(&profile), &global),
        Some(OsMinimum::Latest)
    );
    assert_eq!(
        effective_minimum(OsKey::Ipados, Some(&profile), &global),
        None
    );
    assert_eq!(
        effective_minimum(OsKey::Ios, None, &global),
        Some(OsMinimum::Version("17.0".to_string()))
    );
    let bad = ProfileMinimums {
        macos: Some("fourteen".to_string()),
        ..ProfileMinimums::default()
    };
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("minimum_os.macos"), "{err}");
}

use plist::{Dictionary, Value};

use super::*;
use crate::test_support::read_back;

const TOPIC: &str = "com.apple.mgmt.External.5a1c3b2e-9d4f-4e6a-8b7c-0d1e2f3a4b5c";
const CA_UUID: &str = "4A5B6C7D-8E9F-4A0B-9C1D-2E3F4A5B6C7D";
const SERVER_UUID: &str = "5B6C7D8E-9F0A-4B1C-8D2E-3F4A5B6C7D8E";

fn uuids() -> ProfileUuids {
    ProfileUuids {
        profile: "11111111-2222-4333-8444-555555555555".into(),
        scep: "22222222-3333-4444-8555-666666666666".into(),
        mdm: "33333333-4444-4555-8666-777777777777".into(),
    }
}

fn minimal() -> EnrollmentProfile {
    EnrollmentProfile::new(
        "com.example.guardmdm.enroll",
        "GuardMDM enrollment",
        uuids(),
        ScepSettings::new("https://mdm.example.com/scep"),
        MdmSettings::new("https://mdm.example.com/mdm/connect", TOPIC),
    )
}

fn full() -> EnrollmentProfile {
    let mut scep = ScepSettings::new("https://mdm.example.com/scep");
    scep.name = Some("GuardMDM".into());
    scep.challenge = Some(SecretString::from("s3cret-challenge"));
    scep.subject = vec![
        ("O".into(), "Example Corp".into()),
        ("CN".into(), "GuardMDM identity".into()),
    ];
    scep.ca_fingerprint = Some(vec![0xAB; 32]);
    let mut mdm = MdmSettings::new("https://mdm.example.com/mdm/connect", TOPIC);
    mdm.check_in_url = Some("https://mdm.example.com/mdm/checkin".into());
    mdm.server_url_pinning_certificate_uuids = vec![SERVER_UUID.into()];
    mdm.check_in_url_pinning_certificate_uuids = vec![SERVER_UUID.into()];
    EnrollmentProfile::new(
        "com.example.guardmdm.enroll",
        "GuardMDM enrollment",
        uuids(),
        scep,
        mdm,
    )
    .with_organization("Example Corp")
    .with_description("Enrolls this device in Example Corp's device management.")
    .with_removable(false)
    .with_trust_anchor(TrustAnchor::with_uuid(
        CA_UUID,
        "GuardMDM CA",
        vec![0x30, 0x82, 1, 2],
    ))
    .with_trust_anchor(TrustAnchor::with_uuid(
        SERVER_UUID,
        "MDM server",
        vec![0x30, 0x82, 3, 4],
    ))
}

fn get<'a>(dict: &'a Dictionary, key: &str) -> &'a Value {
    dict.get(key)
        .unwrap_or_else(|| panic!("{key} missing from {dict:?}"))
}

fn s<'a>(dict: &'a Dictionary, key: &str) -> &'a str {
    get(dict, key)
        .as_string()
        .unwrap_or_else(|| panic!("{key} is not a string"))
}

fn int(dict: &Dictionary, key: &str) -> u64 {
    get(dict, key)
        .as_unsigned_integer()
        .unwrap_or_else(|| panic!("{key} is not an integer"))
}

fn payloads(profile: &Dictionary) -> Vec<Dictionary> {
    get(profile, "PayloadContent")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_dictionary().unwrap().clone())
        .collect()
}

#[test]
fn full_profile_has_every_required_key() {
    let xml = full().to_xml().unwrap();
    let text = String::from_utf8(xml.clone()).unwrap();
    assert!(text.starts_with("<?xml"), "{text}");
    assert!(
        !text.contains("<key>Some</key>"),
        "an Option leaked into the output: {text}"
    );
    let top = read_back(&xml);

    assert_eq!(s(&top, "PayloadType"), "Configuration");
    assert_eq!(int(&top, "PayloadVersion"), 1);
    assert_eq!(s(&top, "PayloadIdentifier"), "com.example.guardmdm.enroll");
    assert_eq!(s(&top, "PayloadUUID"), uuids().profile);
    assert_eq!(s(&top, "PayloadDisplayName"), "GuardMDM enrollment");
    assert_eq!(s(&top, "PayloadOrganization"), "Example Corp");
    assert!(s(&top, "PayloadDescription").starts_with("Enrolls"));
    assert_eq!(s(&top, "PayloadScope"), "System");
    assert_eq!(get(&top, "PayloadRemovalDisallowed"), &Value::Boolean(true));

    let content = payloads(&top);
    let types: Vec<&str> = content.iter().map(|p| s(p, "PayloadType")).collect();
    assert_eq!(
        types,
        [
            "com.apple.security.root",
            "com.apple.security.root",
            "com.apple.security.scep",
            "com.apple.mdm"
        ]
    );
    for payload in &content {
        assert_eq!(int(payload, "PayloadVersion"), 1);
        assert!(s(payload, "PayloadIdentifier").starts_with("com.example.guardmdm.enroll."));
        assert!(!s(payload, "PayloadDisplayName").is_empty());
    }
    let identifiers: std::collections::HashSet<&str> =
        content.iter().map(|p| s(p, "PayloadIdentifier")).collect();
    assert_eq!(
        identifiers.len(),
        content.len(),
        "payload identifiers must be unique"
    );

    let ca = &content[0];
    assert_eq!(s(ca, "PayloadUUID"), CA_UUID);
    assert_eq!(s(ca, "PayloadDisplayName"), "GuardMDM CA");
    assert_eq!(
        get(ca, "PayloadContent").as_data(),
        Some([0x30, 0x82, 1, 2].as_slice())
    );
    assert_eq!(s(&content[1], "PayloadUUID"), SERVER_UUID);

    let scep = &content[2];
    assert_eq!(s(scep, "PayloadUUID"), uuids().scep);
    let sc = get(scep, "PayloadContent").as_dictionary().unwrap();
    assert_eq!(s(sc, "URL"), "https://mdm.example.com/scep");
    assert_eq!(s(sc, "Name"), "GuardMDM");
    assert_eq!(s(sc, "Challenge"), "s3cret-challenge");
    assert_eq!(int(sc, "Keysize"), 2048);
    assert_eq!(s(sc, "Key Type"), "RSA");
    assert_eq!(int(sc, "Key Usage"), 5);
    assert_eq!(
        get(sc, "CAFingerprint").as_data(),
        Some([0xAB; 32].as_slice())
    );
    let pair = |k: &str, v: &str| {
        Value::Array(vec![Value::Array(vec![
            Value::String(k.into()),
            Value::String(v.into()),
        ])])
    };
    assert_eq!(
        get(sc, "Subject"),
        &Value::Array(vec![
            pair("O", "Example Corp"),
            pair("CN", "GuardMDM identity")
        ])
    );

    let mdm = &content[3];
    assert_eq!(s(mdm, "PayloadUUID"), uuids().mdm);
    assert_eq!(s(mdm, "ServerURL"), "https://mdm.example.com/mdm/connect");
    assert_eq!(s(mdm, "CheckInURL"), "https://mdm.example.com/mdm/checkin");
    assert_eq!(s(mdm, "Topic"), TOPIC);
    assert_eq!(
        s(mdm, "IdentityCertificateUUID"),
        uuids().scep,
        "must point at the SCEP payload"
    );
    assert_eq!(int(mdm, "AccessRights"), 8191);
    assert_eq!(get(mdm, "SignMessage"), &Value::Boolean(true));
    assert_eq!(get(mdm, "CheckOutWhenRemoved"), &Value::Boolean(true));
    let strings = |key: &str| -> Vec<String> {
        get(mdm, key)
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_string().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        strings("ServerCapabilities"),
        [
            "com.apple.mdm.per-user-connections",
            "com.apple.mdm.bootstraptoken"
        ]
    );
    assert_eq!(strings("ServerURLPinningCertificateUUIDs"), [SERVER_UUID]);
    assert_eq!(strings("CheckInURLPinningCertificateUUIDs"), [SERVER_UUID]);
}

#[test]
fn minimal_profile_omits_what_is_not_set() {
    let top = read_back(&minimal().to_xml().unwrap());
    for key in [
        "PayloadOrganization",
        "PayloadDescription",
        "PayloadRemovalDisallowed",
    ] {
        assert!(!top.contains_key(key), "{key} should be absent");
    }
    let content = payloads(&top);
    assert_eq!(content.len(), 2, "no trust anchors");
    let sc = get(&content[0], "PayloadContent").as_dictionary().unwrap();
    for key in ["Name", "Challenge", "Subject", "CAFingerprint"] {
        assert!(!sc.contains_key(key), "SCEP {key} should be absent");
    }
    assert_eq!(int(sc, "Keysize"), 2048);
    let mdm = &content[1];
    for key in [
        "CheckInURL",
        "ServerURLPinningCertificateUUIDs",
        "CheckInURLPinningCertificateUUIDs",
    ] {
        assert!(!mdm.contains_key(key), "MDM {key} should be absent");
    }
}

#[test]
fn output_is_deterministic() {
    assert_eq!(full().to_xml().unwrap(), full().to_xml().unwrap());
    let mut other = full();
    other.uuids.profile = "99999999-2222-4333-8444-555555555555".into();
    assert_ne!(full().to_xml().unwrap(), other.to_xml().unwrap());
}

#[test]
fn fresh_uuids_are_distinct_uuids() {
    let u = ProfileUuids::generate();
    for id in [&u.profile, &u.scep, &u.mdm] {
        assert!(uuid::Uuid::parse_str(id).is_ok());
        assert_eq!(id.to_ascii_uppercase(), *id);
    }
    assert!(u.profile != u.scep && u.scep != u.mdm && u.profile != u.mdm);
    let anchor = TrustAnchor::new("CA", vec![1]);
    assert!(uuid::Uuid::parse_str(&anchor.uuid).is_ok());
    let mut profile = minimal();
    profile.uuids = u;
    assert!(profile.with_trust_anchor(anchor).to_xml().is_ok());
}

#[test]
fn debug_redacts_the_challenge() {
    let shown = format!("{:?}", full());
    assert!(!shown.contains("s3cret-challenge"), "{shown}");
}

fn refused(profile: &EnrollmentProfile, part: &str) {
    match profile.to_xml() {
        Err(e @ ProtocolError::InvalidProfile(_)) => {
            assert!(e.to_string().contains(part), "expected `{part}` in: {e}");
            assert!(!e.is_bad_input());
        }
        other => panic!("expected InvalidProfile containing `{part}`, got {other:?}"),
    }
}

#[test]
fn invalid_settings_are_refused() {
    let with = |f: &dyn Fn(&mut EnrollmentProfile)| {
        let mut p = full();
        f(&mut p);
        p
    };
    refused(
        &with(&|p| p.identifier.clear()),
        "PayloadIdentifier is empty",
    );
    refused(
        &with(&|p| p.display_name = " ".into()),
        "PayloadDisplayName is empty",
    );
    refused(
        &with(&|p| p.uuids.scep = "not-a-uuid".into()),
        "is not a UUID",
    );
    refused(&with(&|p| p.uuids.mdm = p.uuids.scep.clone()), "used twice");
    refused(
        &with(&|p| p.trust_anchors[0].uuid = p.uuids.profile.to_lowercase()),
        "used twice",
    );
    refused(
        &with(&|p| p.trust_anchors[0].certificate_der.clear()),
        "has no certificate",
    );
    refused(
        &with(&|p| p.mdm.topic = "com.example.push".into()),
        "must start with com.apple.mgmt.",
    );
    refused(
        &with(&|p| p.mdm.topic = "com.apple.mgmt.".into()),
        "must start with com.apple.mgmt.",
    );
    refused(&with(&|p| p.mdm.access_rights = 0), "between 1 and 8191");
    refused(&with(&|p| p.mdm.access_rights = 8192), "between 1 and 8191");
    refused(
        &with(&|p| p.mdm.access_rights = 2),
        "(2) without inspecting them (1)",
    );
    refused(
        &with(&|p| p.mdm.access_rights = 1 | 128),
        "(128) without inspecting them (64)",
    );
    refused(&with(&|p| p.scep.key_size = 3072), "Keysize 3072");
    refused(
        &with(&|p| p.scep.subject.push(("CN".into(), String::new()))),
        "Subject",
    );
    refused(
        &with(&|p| p.scep.url = "scep.example.com".into()),
        "the SCEP URL",
    );
    refused(
        &with(&|p| p.mdm.server_url = "https://".into()),
        "ServerURL",
    );
    refused(
        &with(&|p| p.mdm.check_in_url = Some("ftp://x".into())),
        "CheckInURL",
    );
    refused(
        &with(&|p| {
            p.mdm
                .server_capabilities
                .push(CAPABILITY_BOOTSTRAP_TOKEN.into())
        }),
        "distinct",
    );
    let unknown_pin = "6C7D8E9F-0A1B-4C2D-9E3F-4A5B6C7D8E9F";
    refused(
        &with(&|p| p.mdm.check_in_url_pinning_certificate_uuids = vec![unknown_pin.into()]),
        "CheckInURLPinningCertificateUUIDs names",
    );
}

#[test]
fn lenient_where_apple_allows_it() {
    let mut p = minimal();
    // Local simulators speak plain HTTP.
    p.mdm.server_url = "http://127.0.0.1:8080/mdm/connect".into();
    p.mdm.access_rights = 1 | 2 | 64 | 128;
    p.mdm.server_capabilities.clear();
    p.scep.key_size = 4096;
    let top = read_back(&p.to_xml().unwrap());
    let mdm = &payloads(&top)[1];
    assert_eq!(int(mdm, "AccessRights"), 195);
    assert!(!mdm.contains_key("ServerCapabilities"));
}

#[test]
fn removable_maps_to_payload_removal_disallowed() {
    let removable = read_back(&minimal().with_removable(true).to_xml().unwrap());
    assert!(!removable.contains_key("PayloadRemovalDisallowed"));
    let locked = read_back(&minimal().with_removable(false).to_xml().unwrap());
    assert_eq!(
        get(&locked, "PayloadRemovalDisallowed"),
        &Value::Boolean(true)
    );
}

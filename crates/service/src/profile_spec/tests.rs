use std::collections::BTreeSet;

use super::*;

const SERVER_URL: &str = "https://mdm.example.com/mdm/ade/enroll";
/// A tiny DER SEQUENCE (`30 03 02 01 05`), base64.
const SHORT_DER: &str = "MAMCAQU=";

fn spec(name: &str) -> ProfileSpec {
    ProfileSpec {
        name: name.into(),
        ..ProfileSpec::default()
    }
}

fn errors(spec: &ProfileSpec) -> Vec<FieldError> {
    validate(spec, SERVER_URL).expect_err("the spec should be refused")
}

/// The single error of `spec`, checked for field and code.
fn one_error(spec: &ProfileSpec, field: &str, code: &str) -> FieldError {
    let errs = errors(spec);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(
        (errs[0].field.as_str(), errs[0].code.as_str()),
        (field, code),
        "{errs:#?}"
    );
    errs[0].clone()
}

fn valid(spec: &ProfileSpec) -> ValidProfile {
    validate(spec, SERVER_URL).unwrap()
}

/// A base64 DER SEQUENCE of `len` content bytes.
fn der_b64(len: usize) -> String {
    let mut der = vec![0x30];
    if len < 0x80 {
        der.push(u8::try_from(len).unwrap());
    } else {
        der.extend([
            0x82,
            u8::try_from(len >> 8).unwrap(),
            u8::try_from(len & 0xff).unwrap(),
        ]);
    }
    der.extend(std::iter::repeat_n(0x05, len));
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
}

const FULL_YAML: &str = include_str!("../../testdata/profile-full.yaml");

const FULL_JSON: &str = r#"{
  "name": "staff-macs",
  "profile_name": "Staff Macs",
  "enrollment_type": "automated",
  "url": "https://mdm.example.com/mdm/ade/enroll?org=7",
  "configuration_web_url": "https://mdm.example.com/ade/login",
  "is_supervised": true,
  "is_mandatory": true,
  "is_mdm_removable": false,
  "await_device_configured": true,
  "auto_advance_setup": false,
  "allow_pairing": false,
  "is_multi_user": false,
  "department": "IT Department",
  "support_phone_number": "+1 555 0100",
  "support_email_address": "help@example.com",
  "org_magic": "913FABBB-0032-4E13-9966-D6BBAC900331",
  "language": "en",
  "region": "US",
  "anchor_certs": ["MAMCAQU="],
  "supervising_host_certs": ["MAMCAQU="],
  "skip_setup_items": ["AppleID", "Siri", "Diagnostics"],
  "initial_commands": [
    { "request_type": "InstallProfile", "payload_base64": "PHBsaXN0Lz4=" },
    { "request_type": "DeviceInformation", "queries": ["SerialNumber", "OSVersion"] }
  ],
  "minimum_os": { "ios": "17.5", "macos": "14.4" },
  "release_after": "45m"
}"#;

// ---- parsing ----

#[test]
fn full_yaml_and_json_examples_parse_to_the_same_spec() {
    let yaml = ProfileSpec::from_yaml(FULL_YAML).unwrap();
    let json = ProfileSpec::from_json(FULL_JSON).unwrap();
    assert_eq!(yaml, json);
    assert_eq!(yaml.name, "staff-macs");
    assert_eq!(yaml.enrollment_type, Some(EnrollmentType::Automated));
    assert_eq!(yaml.allow_pairing, Some(false));
    assert_eq!(yaml.support_phone_number.as_deref(), Some("+1 555 0100"));
    assert_eq!(yaml.skip_setup_items.as_ref().unwrap().len(), 3);

    let ok = valid(&yaml);
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
    let apple = ok.apple;
    assert_eq!(apple.profile_name, "Staff Macs");
    assert_eq!(apple.url, "https://mdm.example.com/mdm/ade/enroll?org=7");
    assert_eq!(apple.await_device_configured, Some(true));
    assert_eq!(
        apple.org_magic.as_deref(),
        Some("913FABBB-0032-4E13-9966-D6BBAC900331")
    );
    assert_eq!(apple.anchor_certs, Some(vec![SHORT_DER.to_owned()]));
    assert_eq!(apple.language.as_deref(), Some("en"));
    assert_eq!(apple.region.as_deref(), Some("US"));
}

#[test]
fn a_spec_round_trips_and_leaves_out_what_was_not_given() {
    let full = ProfileSpec::from_json(FULL_JSON).unwrap();
    let text = serde_json::to_string(&full).unwrap();
    assert_eq!(ProfileSpec::from_json(&text).unwrap(), full);
    let yaml = serde_norway::to_string(&full).unwrap();
    assert_eq!(ProfileSpec::from_yaml(&yaml).unwrap(), full);

    assert_eq!(
        serde_json::to_string(&spec("lab")).unwrap(),
        r#"{"name":"lab"}"#
    );
}

#[test]
fn spec_fields_lists_every_key() {
    let full = ProfileSpec::from_json(FULL_JSON).unwrap();
    let value = serde_json::to_value(&full).unwrap();
    let keys: BTreeSet<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let listed: BTreeSet<&str> = SPEC_FIELDS.iter().copied().collect();
    assert_eq!(keys, listed);
}

#[test]
fn an_unknown_key_is_an_error_naming_it_with_a_suggestion() {
    let e = ProfileSpec::from_yaml("name: lab\nis_superviced: true\n").unwrap_err();
    assert_eq!(e.format, SpecFormat::Yaml);
    assert_eq!((e.line, e.column), (Some(2), Some(1)));
    assert_eq!(e.field.as_deref(), Some("is_superviced"));
    assert!(e.message.contains("did you mean `is_supervised`?"), "{e}");
    assert!(
        e.to_string()
            .starts_with("YAML line 2, column 1: unknown key"),
        "{e}"
    );

    let e = ProfileSpec::from_json("{\"name\": \"lab\",\n  \"Department\": \"IT\"}").unwrap_err();
    assert_eq!(e.format, SpecFormat::Json);
    assert_eq!(e.line, Some(2));
    assert_eq!(e.field.as_deref(), Some("Department"));
    assert!(e.message.contains("did you mean `department`?"), "{e}");

    let e = ProfileSpec::from_yaml("name: lab\ncolour: red\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("colour"));
    assert!(
        e.message
            .contains("the keys a profile may have are: name, profile_name"),
        "{e}"
    );
}

#[test]
fn wrong_types_missing_and_repeated_keys_name_the_key() {
    let e = ProfileSpec::from_yaml("name: lab\nis_supervised: yes please\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("is_supervised"));
    assert_eq!(e.line, Some(2));
    assert_eq!(
        e.message,
        "`is_supervised`: invalid type: string \"yes please\", expected a boolean"
    );

    let e = ProfileSpec::from_json("{\"name\": \"lab\",\n \"allow_pairing\": \"no\"}").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("allow_pairing"));
    assert_eq!((e.line, e.column), (Some(2), Some(22)));

    let e = ProfileSpec::from_yaml("name: lab\nanchor_certs: [MAMCAQU=, {a: b}]\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("anchor_certs[1]"));

    let e = ProfileSpec::from_yaml("profile_name: Lab\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("name"));
    assert!(e.message.contains("the key `name` is missing"), "{e}");

    let e = ProfileSpec::from_yaml("name: a\nname: b\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("name"));
    assert!(e.message.contains("appears twice"), "{e}");

    let e = ProfileSpec::from_yaml("name: lab\nenrollment_type: auto\n").unwrap_err();
    assert_eq!(e.field.as_deref(), Some("enrollment_type"));
    assert!(
        e.message
            .contains("expected `automated` or `user_initiated`"),
        "{e}"
    );

    let e = ProfileSpec::from_yaml("- a\n- b\n").unwrap_err();
    assert_eq!(e.field, None);
    assert!(e.message.contains("expected a profile"), "{e}");

    let e = ProfileSpec::from_json("{\"name\": \"lab\"} {}").unwrap_err();
    assert!(e.message.contains("one profile"), "{e}");
}

#[test]
fn parse_picks_the_format_from_the_hint_or_the_content() {
    for hint in [
        "profile.yaml",
        "P.YML",
        "yaml",
        "application/yaml",
        "text/x-yaml",
    ] {
        assert_eq!(
            SpecFormat::from_hint(hint),
            Some(SpecFormat::Yaml),
            "{hint}"
        );
    }
    for hint in ["profile.json", ".JSON", "json", "application/json"] {
        assert_eq!(
            SpecFormat::from_hint(hint),
            Some(SpecFormat::Json),
            "{hint}"
        );
    }
    assert_eq!(SpecFormat::from_hint("profile.txt"), None);
    assert_eq!(
        SpecFormat::sniff(b"\xEF\xBB\xBF \n\t{\"name\": 1}"),
        SpecFormat::Json
    );
    assert_eq!(SpecFormat::sniff(b"name: x"), SpecFormat::Yaml);

    let lab = spec("lab");
    assert_eq!(
        ProfileSpec::parse(br#"{"name": "lab"}"#, None).unwrap(),
        lab
    );
    assert_eq!(
        ProfileSpec::parse(b"\xEF\xBB\xBF  {\"name\": \"lab\"}", None).unwrap(),
        lab
    );
    assert_eq!(ProfileSpec::parse(b"name: lab\n", None).unwrap(), lab);
    assert_eq!(
        ProfileSpec::parse(b"\xEF\xBB\xBFname: lab\n", Some("p.yml")).unwrap(),
        lab
    );
    assert_eq!(
        ProfileSpec::parse(b"name: lab\n", Some("upload.txt")).unwrap(),
        lab
    );
    // JSON is YAML too, so a .yaml hint still reads a JSON body
    assert_eq!(
        ProfileSpec::parse(br#"{"name": "lab"}"#, Some("p.yaml")).unwrap(),
        lab
    );
    // the hint wins over the content
    let e = ProfileSpec::parse(b"name: lab\n", Some("p.json")).unwrap_err();
    assert_eq!(e.format, SpecFormat::Json);
}

#[test]
fn parse_refuses_empty_and_non_utf8_files() {
    let e = ProfileSpec::parse(b"  \n", None).unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (None, None));
    assert!(e.message.contains("empty"), "{e}");
    assert!(
        ProfileSpec::from_json("")
            .unwrap_err()
            .message
            .contains("empty")
    );

    let e = ProfileSpec::parse(b"name: lab\ndepartment: Caf\xE9\n", None).unwrap_err();
    assert_eq!((e.line, e.column), (Some(2), Some(16)));
    assert!(e.message.contains("UTF-8"), "{e}");
}

#[test]
fn deep_nesting_and_huge_files_are_refused_before_parsing() {
    // 100,000 levels of `[`: refused by the scan, with the depth and the bound.
    let deep = format!(
        "name: lab\nskip_setup_items: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let e = ProfileSpec::from_yaml(&deep).unwrap_err();
    assert_eq!((e.format, e.line), (SpecFormat::Yaml, Some(2)));
    assert!(
        e.message.contains("nested 100001 levels deep; at most 32"),
        "{e}"
    );
    let e = ProfileSpec::parse(deep.as_bytes(), Some("p.yaml")).unwrap_err();
    assert!(e.message.contains("at most 32"), "{e}");
    let json = format!(
        "{{\"name\": \"lab\", \"x\": {}{}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    let e = ProfileSpec::from_json(&json).unwrap_err();
    assert!(
        e.message.contains("nested 41 levels deep; at most 32"),
        "{e}"
    );
    // Block nesting by indentation counts too.
    let stairs: String = (0..40)
        .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
        .collect();
    let e = ProfileSpec::from_yaml(&format!("name: lab\nx:\n{stairs}")).unwrap_err();
    assert!(e.message.contains("at most 32"), "{e}");
    // 32 levels are read (and refused for what they hold, not for their depth).
    let ok_depth = format!("name: lab\nx: {}{}\n", "[".repeat(31), "]".repeat(31));
    let e = ProfileSpec::from_yaml(&ok_depth).unwrap_err();
    assert!(!e.message.contains("nested"), "{e}");
    assert_eq!(e.field.as_deref(), Some("x"));

    let big = format!("name: lab\ndepartment: {}\n", "a".repeat(MAX_SPEC_BYTES));
    let e = ProfileSpec::from_yaml(&big).unwrap_err();
    assert!(e.message.contains("at most 1024 KiB"), "{e}");
    let e = ProfileSpec::parse(big.as_bytes(), None).unwrap_err();
    assert!(e.message.contains("at most 1024 KiB"), "{e}");
    let e = ProfileSpec::from_json(&format!("{{\"name\": \"{}\"}}", "a".repeat(MAX_SPEC_BYTES)))
        .unwrap_err();
    assert!(e.message.contains("at most 1024 KiB"), "{e}");

    // The full examples are well within both bounds.
    assert!(ProfileSpec::from_yaml(FULL_YAML).is_ok());
    assert!(ProfileSpec::from_json(FULL_JSON).is_ok());
}

// ---- defaults and what Apple receives ----

#[test]
fn a_minimal_spec_gets_the_defaults_with_every_boolean_explicit() {
    let ok = valid(&spec("lab"));
    assert!(ok.warnings.is_empty());
    let apple = &ok.apple;
    assert_eq!(apple.profile_name, "lab", "profile_name defaults to name");
    assert_eq!(
        apple.url, SERVER_URL,
        "url defaults to the server's endpoint"
    );
    assert_eq!(apple.is_supervised, Some(true));
    assert_eq!(apple.is_mandatory, Some(true));
    assert_eq!(apple.is_mdm_removable, Some(false));
    assert_eq!(apple.allow_pairing, Some(true));
    assert_eq!(apple.await_device_configured, Some(false));
    assert_eq!(apple.auto_advance_setup, Some(false));
    assert_eq!(apple.is_multi_user, Some(false));
    assert_eq!((&apple.devices, &apple.profile_uuid), (&None, &None));

    let json = serde_json::to_string(apple).unwrap();
    for flag in [
        r#""allow_pairing":true"#,
        r#""is_supervised":true"#,
        r#""is_mandatory":true"#,
        r#""is_mdm_removable":false"#,
        r#""await_device_configured":false"#,
        r#""auto_advance_setup":false"#,
        r#""is_multi_user":false"#,
    ] {
        assert!(json.contains(flag), "{flag} missing from {json}");
    }
    for absent in [
        "department",
        "support_phone_number",
        "support_email_address",
        "org_magic",
        "language",
        "region",
        "anchor_certs",
        "supervising_host_certs",
        "skip_setup_items",
        "configuration_web_url",
        "devices",
        "profile_uuid",
    ] {
        assert!(
            !json.contains(absent),
            "{absent} should be left out: {json}"
        );
    }
}

#[test]
fn flags_set_false_are_sent_as_false() {
    let mut s = spec("lab");
    s.allow_pairing = Some(false);
    s.is_mandatory = Some(false);
    s.is_mdm_removable = Some(true);
    s.is_supervised = Some(false);
    let json = serde_json::to_string(&valid(&s).apple).unwrap();
    assert!(json.contains(r#""allow_pairing":false"#), "{json}");
    assert!(json.contains(r#""is_mandatory":false"#), "{json}");
    assert!(json.contains(r#""is_supervised":false"#), "{json}");
    assert!(json.contains(r#""is_mdm_removable":true"#), "{json}");
}

#[test]
fn given_strings_are_sent_and_empty_lists_left_out() {
    let mut s = spec("lab");
    s.department = Some("IT".into());
    s.anchor_certs = Some(vec![]);
    s.skip_setup_items = Some(vec![]);
    let apple = valid(&s).apple;
    assert_eq!(apple.department.as_deref(), Some("IT"));
    assert_eq!(apple.anchor_certs, None);
    assert_eq!(apple.skip_setup_items, None);
}

// ---- enrollment type ----

#[test]
fn enrollment_type_maps_onto_is_mandatory() {
    let cases = [
        (None, None, EnrollmentType::Automated, true),
        (
            Some(EnrollmentType::Automated),
            None,
            EnrollmentType::Automated,
            true,
        ),
        (
            Some(EnrollmentType::UserInitiated),
            None,
            EnrollmentType::UserInitiated,
            false,
        ),
        (None, Some(true), EnrollmentType::Automated, true),
        (None, Some(false), EnrollmentType::UserInitiated, false),
        (
            Some(EnrollmentType::UserInitiated),
            Some(false),
            EnrollmentType::UserInitiated,
            false,
        ),
    ];
    for (kind, mandatory, expected, apple_mandatory) in cases {
        let mut s = spec("lab");
        s.enrollment_type = kind;
        s.is_mandatory = mandatory;
        assert_eq!(s.enrollment_type(), expected, "{kind:?} {mandatory:?}");
        let ok = valid(&s);
        assert_eq!(
            ok.apple.is_mandatory,
            Some(apple_mandatory),
            "{kind:?} {mandatory:?}"
        );
        assert_eq!(
            ok.warnings.iter().any(|w| w.contains("user_initiated")),
            !apple_mandatory,
            "{:?}",
            ok.warnings
        );
    }
    assert_eq!(
        EnrollmentType::from_mandatory(false).as_str(),
        "user_initiated"
    );
    assert!(
        serde_json::to_string(&EnrollmentType::UserInitiated).unwrap() == r#""user_initiated""#
    );
}

#[test]
fn enrollment_type_and_is_mandatory_must_agree() {
    let mut s = spec("lab");
    s.enrollment_type = Some(EnrollmentType::UserInitiated);
    s.is_mandatory = Some(true);
    let e = one_error(&s, "enrollment_type", codes::ENROLLMENT_TYPE_CONFLICT);
    assert!(
        e.message.contains("remove one of the two keys"),
        "{}",
        e.message
    );
    assert_eq!(
        s.enrollment_type(),
        EnrollmentType::Automated,
        "the flag wins"
    );

    s.enrollment_type = Some(EnrollmentType::Automated);
    s.is_mandatory = Some(false);
    one_error(&s, "enrollment_type", codes::ENROLLMENT_TYPE_CONFLICT);
}

// ---- one rule at a time ----

#[test]
fn the_handle_follows_the_naming_rules() {
    for bad in ["", "has space", "-lead", "ümlaut", &"x".repeat(65)] {
        let e = one_error(&spec(bad), "name", codes::NAME_INVALID);
        assert!(e.message.contains("profile name"), "{}", e.message);
        assert!(e.message.contains("profile_name"), "{}", e.message);
    }
    valid(&spec("Staff_Macs-2.eu"));
}

#[test]
fn profile_name_is_1_to_125_characters() {
    let mut s = spec("lab");
    s.profile_name = Some("é".repeat(125));
    assert_eq!(valid(&s).apple.profile_name, "é".repeat(125));
    for bad in ["", "   ", &"x".repeat(126)] {
        s.profile_name = Some(bad.into());
        let e = one_error(&s, "profile_name", codes::CONFIG_NAME_INVALID);
        assert!(!e.message.is_empty());
    }
    s.profile_name = Some("x".repeat(126));
    let e = one_error(&s, "profile_name", codes::CONFIG_NAME_INVALID);
    assert!(
        e.message.contains("126 characters") && e.message.contains("125"),
        "{}",
        e.message
    );
}

#[test]
fn urls_must_be_absolute_https_with_a_host_and_short_enough() {
    let mut s = spec("lab");
    for (bad, words) in [
        ("", "empty"),
        (" https://mdm.example.com/x", "spaces"),
        ("http://mdm.example.com/enroll", "https"),
        ("/mdm/enroll", "not a valid URL"),
        ("mdm.example.com/enroll", "not a valid URL"),
        ("https://", "not a valid URL"),
        ("ftp://mdm.example.com/enroll", "https"),
    ] {
        s.url = Some(bad.into());
        let e = one_error(&s, "url", codes::CONFIG_URL_INVALID);
        assert!(e.message.contains(words), "{bad:?}: {}", e.message);
        s.url = None;
        s.configuration_web_url = Some(bad.into());
        one_error(&s, "configuration_web_url", codes::CONFIG_URL_INVALID);
        s.configuration_web_url = None;
    }
    // 700 characters, but each é is 6 once URL-encoded
    s.url = Some(format!("https://mdm.example.com/{}", "é".repeat(700)));
    let e = one_error(&s, "url", codes::CONFIG_URL_INVALID);
    assert!(e.message.contains("once URL-encoded"), "{}", e.message);

    s.url = Some(format!("https://mdm.example.com/{}", "a".repeat(1970)));
    assert_eq!(valid(&s).apple.url.len(), 1994);
    s.url = Some("https://mdm.example.com".into());
    s.configuration_web_url = Some("https://login.example.com/ade?x=a b".into());
    let apple = valid(&s).apple;
    assert_eq!(
        apple.url, "https://mdm.example.com/",
        "sent as the url crate writes it"
    );
    assert_eq!(
        apple.configuration_web_url.as_deref(),
        Some("https://login.example.com/ade?x=a%20b")
    );
}

#[test]
fn a_bad_server_url_is_reported_as_the_servers() {
    let errs = validate(&spec("lab"), "http://mdm.example.com:8080/enroll").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (errs[0].field.as_str(), errs[0].code.as_str()),
        ("url", codes::CONFIG_URL_INVALID)
    );
    assert!(
        errs[0].message.contains("server's enrollment URL"),
        "{}",
        errs[0].message
    );
    assert!(
        errs[0].message.contains("set `url` in the profile"),
        "{}",
        errs[0].message
    );
}

#[test]
fn department_phone_and_magic_have_apples_limits() {
    type Setter = fn(&mut ProfileSpec, String);
    let cases: [(&str, &str, usize, Setter); 3] = [
        ("department", codes::DEPARTMENT_INVALID, 125, |s, v| {
            s.department = Some(v)
        }),
        (
            "support_phone_number",
            codes::SUPPORT_PHONE_INVALID,
            50,
            |s, v| {
                s.support_phone_number = Some(v);
            },
        ),
        ("org_magic", codes::MAGIC_INVALID, 256, |s, v| {
            s.org_magic = Some(v)
        }),
    ];
    for (field, code, max, set) in cases {
        let mut s = spec("lab");
        set(&mut s, "1".repeat(max));
        valid(&s);
        for bad in [String::new(), " ".into(), "1".repeat(max + 1)] {
            let mut s = spec("lab");
            set(&mut s, bad);
            one_error(&s, field, code);
        }
    }
}

#[test]
fn support_email_is_short_and_looks_like_an_address() {
    let mut s = spec("lab");
    for good in ["help@example.com", "it.desk+ade@sub.example.co.uk"] {
        s.support_email_address = Some(good.into());
        valid(&s);
    }
    let long = format!("{}@example.com", "a".repeat(240));
    for bad in [
        "",
        "help",
        "@example.com",
        "help@",
        "help@localhost",
        "a@b@example.com",
        "help@.com",
        "help@example.",
        "help desk@example.com",
        &long,
    ] {
        s.support_email_address = Some(bad.into());
        let e = one_error(&s, "support_email_address", codes::SUPPORT_EMAIL_INVALID);
        assert!(!e.message.is_empty(), "{bad}");
    }
}

#[test]
fn lock_mdm_needs_supervision() {
    let mut s = spec("lab");
    s.is_supervised = Some(false);
    let e = one_error(&s, "is_supervised", codes::FLAGS_INVALID);
    assert!(e.message.contains("defaults to false"), "{}", e.message);

    s.is_mdm_removable = Some(false);
    let e = one_error(&s, "is_mdm_removable", codes::FLAGS_INVALID);
    assert!(e.message.contains("is_supervised: true"), "{}", e.message);

    s.is_mdm_removable = Some(true);
    let ok = valid(&s);
    assert!(
        ok.warnings
            .iter()
            .any(|w| w.contains("is_supervised: false")),
        "{:?}",
        ok.warnings
    );

    let mut s = spec("lab");
    s.is_mdm_removable = Some(false);
    valid(&s);
}

#[test]
fn language_and_region_are_iso_codes() {
    let mut s = spec("lab");
    for (language, region) in [("en", Some("US")), ("haw", None), ("fr", Some("CA"))] {
        s.language = Some(language.into());
        s.region = region.map(Into::into);
        valid(&s);
    }
    for (language, hint) in [
        ("EN", "lower case: \"en\""),
        ("en-US", "`language: en` and `region: US`"),
        ("en_us", "`language: en` and `region: US`"),
        ("english", "2 or 3 lower-case letters"),
        ("e", "2 or 3 lower-case letters"),
        ("", "2 or 3 lower-case letters"),
    ] {
        s.language = Some(language.into());
        s.region = None;
        let e = one_error(&s, "language", codes::LOCALE_INVALID);
        assert!(e.message.contains(hint), "{language}: {}", e.message);
    }
    s.language = Some("en".into());
    for (region, hint) in [
        ("us", "upper case: \"US\""),
        ("USA", "2 upper-case"),
        ("", "2 upper-case"),
    ] {
        s.region = Some(region.into());
        let e = one_error(&s, "region", codes::LOCALE_INVALID);
        assert!(e.message.contains(hint), "{region}: {}", e.message);
    }
    s.language = None;
    s.region = Some("US".into());
    let e = one_error(&s, "region", codes::LOCALE_INVALID);
    assert!(e.message.contains("needs a `language`"), "{}", e.message);
}

#[test]
fn certificates_are_base64_der() {
    let mut s = spec("lab");
    let long = der_b64(300);
    let wrapped = format!("{}\n{}", &long[..64], &long[64..]);
    s.anchor_certs = Some(vec![SHORT_DER.into(), wrapped]);
    s.supervising_host_certs = Some(vec![der_b64(100)]);
    let apple = valid(&s).apple;
    assert_eq!(
        apple.anchor_certs,
        Some(vec![SHORT_DER.to_owned(), long]),
        "line breaks dropped"
    );
    assert_eq!(apple.supervising_host_certs, Some(vec![der_b64(100)]));

    let truncated = &der_b64(300)[..200];
    for (bad, words) in [
        ("", "empty"),
        ("  ", "empty"),
        (
            "-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END CERTIFICATE-----",
            "PEM",
        ),
        ("not base64!", "not valid base64"),
        ("aGVsbG8=", "does not start with a SEQUENCE"),
        ("MA==", "too short"),
        (truncated, "bytes long but holds"),
        ("MIU=", "length is unreadable"),
    ] {
        let mut s = spec("lab");
        s.supervising_host_certs = Some(vec![SHORT_DER.into(), bad.into()]);
        let e = one_error(&s, "supervising_host_certs[1]", codes::CERT_INVALID);
        assert!(e.message.contains(words), "{bad:?}: {}", e.message);
    }
}

#[test]
fn skip_items_warn_about_unknown_repeated_and_empty_keys() {
    let mut s = spec("lab");
    s.skip_setup_items = Some(
        [
            "AppleID",
            "siri",
            "FileVualt",
            "Bananas",
            "AppleID",
            "",
            "AgeBasedSafetySettings",
        ]
        .map(String::from)
        .to_vec(),
    );
    let ok = valid(&s);
    assert_eq!(
        ok.apple.skip_setup_items.unwrap(),
        [
            "AppleID",
            "siri",
            "FileVualt",
            "Bananas",
            "AgeBasedSafetySettings"
        ],
        "unknown keys are sent as written; repeats and empty entries are dropped"
    );
    let w = ok.warnings.join("\n");
    assert!(
        w.contains("\"siri\" is not a known skip key (did you mean \"Siri\"?)"),
        "{w}"
    );
    assert!(w.contains("did you mean \"FileVault\"?"), "{w}");
    assert!(
        w.contains("\"Bananas\" is not a known skip key; it is sent as written"),
        "{w}"
    );
    assert!(w.contains("lists \"AppleID\" more than once"), "{w}");
    assert!(w.contains("`skip_setup_items[5]` is empty"), "{w}");
    assert!(
        w.contains("\"AgeBasedSafetySettings\" is not yet in Apple's published list"),
        "{w}"
    );
    assert_eq!(ok.warnings.len(), 6, "{w}");
}

// ---- several at once ----

#[test]
fn every_error_is_collected_not_just_the_first() {
    let s = ProfileSpec {
        name: "bad name".into(),
        profile_name: Some(String::new()),
        url: Some("http://x.example.com".into()),
        configuration_web_url: Some(String::new()),
        is_supervised: Some(false),
        is_mdm_removable: Some(false),
        enrollment_type: Some(EnrollmentType::Automated),
        is_mandatory: Some(false),
        department: Some("d".repeat(126)),
        support_phone_number: Some("5".repeat(51)),
        support_email_address: Some("nobody".into()),
        org_magic: Some(String::new()),
        language: Some("EN".into()),
        region: Some("usa".into()),
        anchor_certs: Some(vec!["!".into()]),
        supervising_host_certs: Some(vec![String::new()]),
        skip_setup_items: Some(vec!["Nope".into()]),
        ..ProfileSpec::default()
    };
    let errs = errors(&s);
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "name",
            "profile_name",
            "url",
            "configuration_web_url",
            "department",
            "support_phone_number",
            "org_magic",
            "support_email_address",
            "is_mdm_removable",
            "enrollment_type",
            "language",
            "region",
            "anchor_certs[0]",
            "supervising_host_certs[0]",
        ]
    );
    let codes_seen: BTreeSet<&str> = errs.iter().map(|e| e.code.as_str()).collect();
    let all_codes: BTreeSet<&str> = [
        codes::CONFIG_NAME_INVALID,
        codes::CONFIG_URL_INVALID,
        codes::DEPARTMENT_INVALID,
        codes::FLAGS_INVALID,
        codes::LOCALE_INVALID,
        codes::MAGIC_INVALID,
        codes::SUPPORT_EMAIL_INVALID,
        codes::SUPPORT_PHONE_INVALID,
        codes::NAME_INVALID,
        codes::CERT_INVALID,
        codes::ENROLLMENT_TYPE_CONFLICT,
    ]
    .into();
    assert_eq!(codes_seen, all_codes, "one spec exercises every code");
    for e in &errs {
        assert!(e.message.len() > 20, "a message says what to do: {e}");
    }
}

#[test]
fn field_errors_serialize_for_the_api() {
    let e = one_error(&spec(""), "name", codes::NAME_INVALID);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["field"], "name");
    assert_eq!(json["code"], "NAME_INVALID");
    assert!(json["message"].as_str().unwrap().contains("empty"));
    assert!(e.to_string().starts_with("name: "), "{e}");
    assert!(e.to_string().ends_with("(NAME_INVALID)"), "{e}");
}

#[test]
fn plain_http_is_accepted_for_loopback_hosts_only_with_a_warning() {
    for url in [
        "http://127.0.0.1:8080/mdm/enroll",
        "http://localhost/mdm/enroll",
        "http://[::1]:9/mdm/enroll",
    ] {
        let valid = validate(&spec("lab"), url).unwrap();
        assert!(
            valid.warnings.iter().any(|w| w.contains("loopback")),
            "{url}: {:?}",
            valid.warnings
        );
    }
    for url in [
        "http://10.0.0.1/mdm/enroll",
        "http://mdm.example.com/mdm/enroll",
    ] {
        assert!(validate(&spec("lab"), url).is_err(), "{url}");
    }
}

// ---- initial commands ----

fn command(request_type: &str) -> CommandSpec {
    CommandSpec {
        request_type: request_type.to_owned(),
        ..CommandSpec::default()
    }
}

#[test]
fn initial_commands_are_checked_one_by_one_and_never_sent_to_apple() {
    let full = ProfileSpec::from_json(FULL_JSON).unwrap();
    assert_eq!(full.initial_commands.as_ref().unwrap().len(), 2);
    let apple = serde_json::to_value(valid(&full).apple).unwrap();
    assert!(apple.get("initial_commands").is_none(), "{apple}");

    let mut s = spec("lab");
    s.await_device_configured = Some(true);
    s.initial_commands = Some(vec![
        command("ProfileList"),
        command("DeviceConfigured"),
        command("EraseDevice"),
        command("InstallProfile"),
        command("Restart"),
    ]);
    let found = errors(&s);
    let fields: Vec<&str> = found.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "initial_commands[1]",
            "initial_commands[2]",
            "initial_commands[3]",
            "initial_commands[4]"
        ],
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .all(|e| e.code == codes::INITIAL_COMMAND_INVALID)
    );
    assert!(
        found[0].message.contains("sent by GuardMDM itself"),
        "{found:?}"
    );
    assert!(
        found[1].message.contains("middle of its setup"),
        "{found:?}"
    );
    assert!(
        found[2].message.contains("needs payload_base64"),
        "{found:?}"
    );
    assert!(
        found[3].message.contains("unknown request_type"),
        "{found:?}"
    );

    s.initial_commands = Some(vec![command("ProfileList"); 21]);
    let e = one_error(&s, "initial_commands", codes::INITIAL_COMMAND_INVALID);
    assert!(e.message.contains("at most 20"), "{e:?}");
}

#[test]
fn initial_commands_without_awaiting_configuration_warn() {
    let mut s = spec("lab");
    s.initial_commands = Some(vec![command("ProfileList")]);
    let warnings = valid(&s).warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("set `await_device_configured: true`")),
        "{warnings:?}"
    );
    s.await_device_configured = Some(true);
    assert!(valid(&s).warnings.is_empty());
}

#[test]
fn minimum_os_is_checked_and_never_sent_to_apple() {
    let full = ProfileSpec::from_json(FULL_JSON).unwrap();
    let apple = serde_json::to_value(valid(&full).apple).unwrap();
    assert!(apple.get("minimum_os").is_none(), "{apple}");
    let mut s = spec("p");
    s.minimum_os = Some(crate::os_minimum::ProfileMinimums {
        ipados: Some("seventeen".into()),
        ..Default::default()
    });
    let e = one_error(&s, "minimum_os", codes::MINIMUM_OS_INVALID);
    assert!(e.message.contains("minimum_os.ipados"), "{e:?}");
}

#[test]
fn release_after_is_a_duration_that_needs_awaiting_configuration() {
    let mut s = spec("lab");
    s.release_after = Some("45m".into());
    let e = one_error(&s, "release_after", codes::RELEASE_AFTER_INVALID);
    assert!(e.message.contains("await_device_configured: true"), "{e:?}");
    s.await_device_configured = Some(true);
    let v = valid(&s);
    assert_eq!(
        serde_json::to_value(&v.apple).unwrap().get("release_after"),
        None,
        "not sent to Apple"
    );
    s.release_after = Some("soon".into());
    let e = one_error(&s, "release_after", codes::RELEASE_AFTER_INVALID);
    assert!(e.message.contains("is not a duration"), "{e:?}");
    let parsed: ProfileSpec =
        serde_json::from_value(serde_json::json!({ "name": "lab", "release_after": "2h" }))
            .unwrap();
    assert_eq!(parsed.release_after.as_deref(), Some("2h"));
}

//! Fuzz harness for the JSON answers of Apple's device assignment (DEP) API as this crate
//! decodes them: device pages (fetch and sync), device details, the account, profiles, and
//! the define/assign/remove answers. Seeds follow the shapes of Apple's documentation and the
//! simulator's answers; `guardmdm-fuzz` mutates them (truncation, nesting, repeated keys, odd
//! numbers and escapes, splices between answers).
//!
//! Checked per case: no panic, and the decoders stay lenient where they promise to be (an
//! unknown enum value or a bad date inside a device never fails the page).
//!
//! The `*_smoke` test runs a few hundred cases in the normal test run; the ignored one runs
//! `GUARDMDM_FUZZ_CASES` (default 100,000) cases:
//! `cargo test --release -p guardmdm-abm --test fuzz -- --ignored --nocapture`.

// Test code: failures are panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use guardmdm_abm::{
    AccountDetail, AssignProfileResponse, DefineProfileResponse, DeviceDetails, DevicePage,
    DeviceStatusResponse, Profile,
};
use guardmdm_fuzz::{Campaign, Mutator, Verdict};

const FULL_CASES: u64 = 100_000;

const SYNC_PAGE: &str = r#"{
  "cursor": "MTY1NzI2ODE5Ny0x", "more_to_follow": true,
  "fetched_until": "2026-11-27T10:00:00Z",
  "devices": [
    {"serial_number": "C02XK1ABJGH5", "model": "MacBook Pro", "description": "MBP 14",
     "color": "SPACE GRAY", "asset_tag": "A-17", "device_family": "Mac", "os": "OSX",
     "profile_status": "pushed", "profile_uuid": "5B7E9C2A3D4F4A1B9C8D7E6F5A4B3C2D",
     "profile_assign_time": "2026-11-26T09:00:00Z", "profile_push_time": "2026-11-26T09:05:00Z",
     "op_type": "Added", "op_date": "2026-11-26T09:00:00Z",
     "device_assigned_date": "2026-11-26T09:00:00Z", "device_assigned_by": "ada@example.com",
     "brand_new_field": {"x": [1, 2.5, null, true]}},
    {"serial_number": "DMQX2LL0AB", "model": "iPad", "device_family": "iPadNext",
     "os": "iPadOS", "op_type": "deleted", "op_date": "not a date"}
  ]
}"#;

const DETAILS: &str = r#"{"devices": {
  "F2LXK3ABHG7F": {"serial_number": "F2LXK3ABHG7F", "model": "iPhone 16", "os": "iOS",
    "device_family": "iPhone", "profile_status": "assigned", "response_status": "SUCCESS",
    "imei": ["35 209900 176148 1"], "meid": ["35209900176148"]},
  "NOTMINE00001": {"serial_number": "NOTMINE00001", "response_status": "NOT_ACCESSIBLE"}
}}"#;

const ACCOUNT: &str = r#"{"server_name": "GuardMDM", "server_uuid": "6F0E0DB8-5E3A-4C16-9E1F-3D2B1A0C9F8E",
  "admin_id": "ada@example.com", "facilitator_id": "ada@example.com", "org_name": "Example Inc.",
  "org_email": "it@example.com", "org_phone": "+1 555 0100", "org_address": "1 Infinite Loop",
  "urls": [{"uri": "/devices", "http_method": ["POST"], "limit": {"default": 100, "maximum": 1000}}],
  "org_id": "1234567", "org_id_hash": "abcdef0123456789", "org_type": "org", "org_version": "v2"}"#;

const PROFILE: &str = r#"{"profile_name": "Staff", "url": "https://mdm.example.com/mdm/enroll",
  "allow_pairing": false, "is_supervised": true, "is_multi_user": false, "is_mandatory": true,
  "await_device_configured": true, "is_mdm_removable": false, "support_phone_number": "+1 555 0100",
  "auto_advance_setup": false, "support_email_address": "it@example.com", "org_magic": "913FABBB",
  "anchor_certs": ["MAMCAQU="], "supervising_host_certs": [], "skip_setup_items": ["AppleID", "Siri"],
  "department": "IT", "language": "en", "region": "US", "configuration_web_url": "https://mdm.example.com/ade"}"#;

const DEFINE: &str = r#"{"profile_uuid": "5B7E9C2A3D4F4A1B9C8D7E6F5A4B3C2D",
  "devices": {"C02XK1ABJGH5": "SUCCESS", "DMQX2LL0AB": "NOT_ACCESSIBLE", "X": "FAILED"}}"#;

const ASSIGN: &str = r#"{"profile_uuid":"abc","devices":{"A":"SUCCESS","B":"THROTTLED","C":"NEW_THING"},"retry_after_seconds":60}"#;

const STATUS: &str = r#"{"devices": {"C02XK1ABJGH5": "SUCCESS", "DMQX2LL0AB": "NOT_ACCESSIBLE"}}"#;

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "false",
    "-0",
    "1e999",
    "-1e999",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\uDBFF\\uDFFF\"",
    "\"\\\"",
    "\u{feff}",
    "\"devices\":",
    "\"serial_number\":",
    "\"op_date\":\"2026-02-30T25:61:61Z\"",
    "\"fetched_until\":\"+999999-12-31T23:59:59Z\"",
    "\"op_type\":",
    "\"retry_after_seconds\":",
    "\"more_to_follow\":",
    "{\"a\":[[[[[[[[[[[[[[[[",
    "]]]]]]]]]]]]]]]]}",
];

fn seeds() -> Mutator {
    Mutator::new(
        [SYNC_PAGE, DETAILS, ACCOUNT, PROFILE, DEFINE, ASSIGN, STATUS]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
    )
    .with_tokens(JSON_TOKENS)
}

fn answers(bytes: &[u8]) -> Verdict {
    // The client decodes each answer with `serde_json::from_slice` into its type.
    let results = [
        serde_json::from_slice::<DevicePage>(bytes).map(|p| format!("{p:?}")),
        serde_json::from_slice::<DeviceDetails>(bytes).map(|d| format!("{d:?}")),
        serde_json::from_slice::<AccountDetail>(bytes).map(|a| format!("{a:?}")),
        serde_json::from_slice::<Profile>(bytes).map(|p| format!("{p:?}")),
        serde_json::from_slice::<DefineProfileResponse>(bytes).map(|r| format!("{r:?}")),
        serde_json::from_slice::<AssignProfileResponse>(bytes).map(|r| format!("{r:?}")),
        serde_json::from_slice::<DeviceStatusResponse>(bytes).map(|r| format!("{r:?}")),
    ];
    // A profile read back is sent again as it was read.
    if let Ok(profile) = serde_json::from_slice::<Profile>(bytes)
        && let Err(e) = serde_json::to_vec(&profile)
    {
        return Verdict::Broken(format!("a profile read does not write again: {e}"));
    }
    if results.iter().any(Result::is_ok) {
        Verdict::Accepted
    } else {
        Verdict::Refused
    }
}

#[test]
fn dep_answers_smoke() {
    Campaign::smoke("abm DEP answers (serde_json models)")
        .run(&seeds(), answers)
        .assert_clean();
}

#[test]
#[ignore = "a long fuzz campaign; run in release with --ignored"]
fn dep_answers_full() {
    Campaign::full("abm DEP answers (serde_json models)", FULL_CASES)
        .run(&seeds(), answers)
        .assert_clean();
}

#[test]
fn the_seeds_decode_as_their_types() {
    serde_json::from_str::<DevicePage>(SYNC_PAGE).unwrap();
    serde_json::from_str::<DeviceDetails>(DETAILS).unwrap();
    serde_json::from_str::<AccountDetail>(ACCOUNT).unwrap();
    serde_json::from_str::<Profile>(PROFILE).unwrap();
    serde_json::from_str::<DefineProfileResponse>(DEFINE).unwrap();
    serde_json::from_str::<AssignProfileResponse>(ASSIGN).unwrap();
    serde_json::from_str::<DeviceStatusResponse>(STATUS).unwrap();
}

use serde_json::json;

use super::*;

fn base() -> Value {
    json!({"profile_name": "Corp", "url": "https://mdm.example.com/mdm/enroll"})
}

fn with(key: &str, value: Value) -> Value {
    let mut b = base();
    b[key] = value;
    b
}

fn without(key: &str) -> Value {
    let mut b = base();
    b.as_object_mut().unwrap().remove(key);
    b
}

#[test]
fn a_minimal_profile_is_valid_and_unknown_keys_are_dropped() {
    let mut body = base();
    body["devices"] = json!(["C02XK1JHJG5J"]);
    body["whatever"] = json!(1);
    body["is_mdm_removable"] = json!(false);
    body["is_supervised"] = json!(true);
    let p = validate(&body).unwrap();
    assert_eq!(p.devices, vec!["C02XK1JHJG5J"]);
    assert!(!p.json.contains_key("devices"));
    assert!(!p.json.contains_key("whatever"));
    assert_eq!(p.json["is_mdm_removable"], json!(false));
}

#[test]
fn every_apple_code() {
    let long = |n: usize| json!("x".repeat(n));
    let cases = [
        (without("profile_name"), "CONFIG_NAME_REQUIRED"),
        (with("profile_name", json!("")), "CONFIG_NAME_INVALID"),
        (with("profile_name", long(126)), "CONFIG_NAME_INVALID"),
        (without("url"), "CONFIG_URL_REQUIRED"),
        (with("url", json!("")), "CONFIG_URL_INVALID"),
        (with("url", json!("not a url")), "CONFIG_URL_INVALID"),
        (with("url", json!("ftp://x.example/")), "CONFIG_URL_INVALID"),
        (
            with(
                "url",
                json!(format!("https://x.example/{}", "a".repeat(2001))),
            ),
            "CONFIG_URL_INVALID",
        ),
        (with("department", json!("")), "DEPARTMENT_INVALID"),
        (with("department", long(126)), "DEPARTMENT_INVALID"),
        (with("is_mdm_removable", json!(false)), "FLAGS_INVALID"),
        (with("language", json!("english")), "LOCALE_INVALID"),
        (with("region", json!("US")), "LOCALE_INVALID"),
        (with("org_magic", json!("")), "MAGIC_INVALID"),
        (with("org_magic", long(257)), "MAGIC_INVALID"),
        (
            with("support_email_address", json!("")),
            "SUPPORT_EMAIL_INVALID",
        ),
        (
            with("support_email_address", json!("no-at-sign")),
            "SUPPORT_EMAIL_INVALID",
        ),
        (
            with("support_phone_number", json!("")),
            "SUPPORT_PHONE_INVALID",
        ),
        (
            with("support_phone_number", long(51)),
            "SUPPORT_PHONE_INVALID",
        ),
        (
            with("is_supervised", json!("yes")),
            "MALFORMED_REQUEST_BODY",
        ),
        (with("devices", json!([1, 2])), "MALFORMED_REQUEST_BODY"),
        (json!([1]), "MALFORMED_REQUEST_BODY"),
    ];
    for (body, code) in cases {
        assert_eq!(validate(&body).unwrap_err(), code, "{body}");
    }
}

#[test]
fn limits_are_inclusive_and_counted_in_characters() {
    assert!(validate(&with("profile_name", json!("é".repeat(125)))).is_ok());
    assert!(validate(&with("support_phone_number", json!("1".repeat(50)))).is_ok());
    let mut locale = with("language", json!("en"));
    locale["region"] = json!("GB");
    assert!(validate(&locale).is_ok());
    assert!(validate(&with("language", json!("deu"))).is_ok());
    locale["region"] = json!("gb");
    assert_eq!(validate(&locale).unwrap_err(), "LOCALE_INVALID");
    assert!(validate(&with("url", json!("http://127.0.0.1:8080/mdm/enroll"))).is_ok());
    assert!(validate(&with("support_email_address", json!("it@example.com"))).is_ok());
}

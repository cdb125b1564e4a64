//! Validation of `POST /profile` bodies (`docs/protocol.md` §3.6, keys from §5.1), as a pure
//! function.
//!
//! Checks run in the order of Apple's table and the first failure is the answer:
//! `CONFIG_NAME_REQUIRED`, `CONFIG_NAME_INVALID` (empty or over 125 characters),
//! `CONFIG_URL_REQUIRED`, `CONFIG_URL_INVALID` (empty, over 2000 characters once
//! URL-encoded, or not an absolute `http`/`https` URL with a host), `DEPARTMENT_INVALID`
//! (empty or over 125), `FLAGS_INVALID` (`is_mdm_removable: false` without
//! `is_supervised: true`), `LOCALE_INVALID` (`language` not 2–3 letters, `region` not two
//! upper-case letters, or a `region` without a `language`), `MAGIC_INVALID` (empty or over
//! 256), `SUPPORT_EMAIL_INVALID` (empty, over 250, or not `local@domain.tld`),
//! `SUPPORT_PHONE_INVALID` (empty or over 50). A known key with the wrong JSON type is
//! `MALFORMED_REQUEST_BODY`. Unknown keys are dropped, and `skip_setup_items` values are not
//! judged (Apple names no code for them, §3.6).

use serde_json::{Map, Value};

/// String keys of the Profile object (§5.1).
const STRING_KEYS: &[&str] = &[
    "profile_name",
    "url",
    "support_phone_number",
    "support_email_address",
    "org_magic",
    "department",
    "language",
    "region",
    "configuration_web_url",
];
/// Boolean keys.
const BOOL_KEYS: &[&str] = &[
    "allow_pairing",
    "is_supervised",
    "is_multi_user",
    "is_mandatory",
    "await_device_configured",
    "is_mdm_removable",
    "auto_advance_setup",
    "is_return_to_service",
    "do_not_use_profile_from_backup",
];
/// String-array keys (`devices` is taken out of the stored profile).
const ARRAY_KEYS: &[&str] = &[
    "anchor_certs",
    "supervising_host_certs",
    "skip_setup_items",
    "devices",
];

/// A profile that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidProfile {
    /// The profile as it will be stored and returned by `GET /profile` (known keys only,
    /// without `devices`).
    pub json: Map<String, Value>,
    /// Serials to assign in the same call (§3.6), as sent.
    pub devices: Vec<String>,
}

/// Validates a define-profile body.
///
/// # Errors
/// Apple's code for the first problem, or `MALFORMED_REQUEST_BODY` for a body that is not a
/// JSON object or has a known key of the wrong type.
pub fn validate(body: &Value) -> Result<ValidProfile, &'static str> {
    let object = body.as_object().ok_or("MALFORMED_REQUEST_BODY")?;
    let mut json = Map::new();
    let mut devices = Vec::new();
    for (key, value) in object {
        let k = key.as_str();
        let ok = if STRING_KEYS.contains(&k) {
            value.is_string()
        } else if BOOL_KEYS.contains(&k) {
            value.is_boolean()
        } else if ARRAY_KEYS.contains(&k) {
            value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string))
        } else {
            continue;
        };
        if !ok {
            return Err("MALFORMED_REQUEST_BODY");
        }
        if k == "devices" {
            devices = string_items(value);
        } else {
            json.insert(key.clone(), value.clone());
        }
    }
    check(&json)?;
    Ok(ValidProfile { json, devices })
}

fn string_items(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn check(p: &Map<String, Value>) -> Result<(), &'static str> {
    let text = |k: &str| p.get(k).and_then(Value::as_str);
    let flag = |k: &str| p.get(k).and_then(Value::as_bool);
    let name = text("profile_name").ok_or("CONFIG_NAME_REQUIRED")?;
    bounded(name, 125).ok_or("CONFIG_NAME_INVALID")?;
    let url = text("url").ok_or("CONFIG_URL_REQUIRED")?;
    if !is_valid_url(url) {
        return Err("CONFIG_URL_INVALID");
    }
    optional(text("department"), 125).ok_or("DEPARTMENT_INVALID")?;
    if flag("is_mdm_removable") == Some(false) && flag("is_supervised") != Some(true) {
        return Err("FLAGS_INVALID");
    }
    if !is_valid_locale(text("language"), text("region")) {
        return Err("LOCALE_INVALID");
    }
    optional(text("org_magic"), 256).ok_or("MAGIC_INVALID")?;
    if let Some(email) = text("support_email_address")
        && (bounded(email, 250).is_none() || !is_email(email))
    {
        return Err("SUPPORT_EMAIL_INVALID");
    }
    optional(text("support_phone_number"), 50).ok_or("SUPPORT_PHONE_INVALID")?;
    Ok(())
}

/// `Some` when `value` is non-empty and at most `max` characters.
fn bounded(value: &str, max: usize) -> Option<()> {
    let n = value.chars().count();
    (n > 0 && n <= max).then_some(())
}

/// `Some` when `value` is absent, or present and [`bounded`].
fn optional(value: Option<&str>, max: usize) -> Option<()> {
    value.map_or(Some(()), |v| bounded(v, max))
}

fn is_valid_url(url: &str) -> bool {
    // `Url` serialises with non-ASCII characters percent-encoded: the "URL-encoded" length.
    url::Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some_and(|h| !h.is_empty())
            && u.as_str().len() <= 2000
    })
}

fn is_valid_locale(language: Option<&str>, region: Option<&str>) -> bool {
    let language_ok = language
        .is_none_or(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
    let region_ok = region.is_none_or(|r| {
        language.is_some() && r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase())
    });
    language_ok && region_ok
}

fn is_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;

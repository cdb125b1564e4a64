//! Checking a [`ProfileSpec`] against Apple's rules (`docs/protocol.md` §3.6, §5) and GuardMDM's,
//! and building the exact profile Apple receives.

use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use guardmdm_abm::Profile;
use serde::Serialize;

use super::{EnrollmentType, ProfileSpec, defaults};
use crate::{names, skip_keys};

/// Error codes: Apple's (§3.6) where Apple has one, GuardMDM's otherwise.
pub mod codes {
    /// `profile_name` empty or longer than 125 characters (Apple).
    pub const CONFIG_NAME_INVALID: &str = "CONFIG_NAME_INVALID";
    /// `url` or `configuration_web_url` empty, too long, not an absolute https URL (Apple).
    pub const CONFIG_URL_INVALID: &str = "CONFIG_URL_INVALID";
    /// `department` empty or longer than 125 characters (Apple).
    pub const DEPARTMENT_INVALID: &str = "DEPARTMENT_INVALID";
    /// `is_mdm_removable: false` without `is_supervised: true` (Apple).
    pub const FLAGS_INVALID: &str = "FLAGS_INVALID";
    /// A bad `language` or `region`, or a region without a language (Apple).
    pub const LOCALE_INVALID: &str = "LOCALE_INVALID";
    /// `org_magic` empty or longer than 256 characters (Apple).
    pub const MAGIC_INVALID: &str = "MAGIC_INVALID";
    /// `support_email_address` empty, longer than 250 characters, or not an address (Apple).
    pub const SUPPORT_EMAIL_INVALID: &str = "SUPPORT_EMAIL_INVALID";
    /// `support_phone_number` empty or longer than 50 characters (Apple).
    pub const SUPPORT_PHONE_INVALID: &str = "SUPPORT_PHONE_INVALID";
    /// The GuardMDM handle `name` breaks the naming rules (GuardMDM).
    pub const NAME_INVALID: &str = "NAME_INVALID";
    /// An `anchor_certs` or `supervising_host_certs` entry is not a base64 DER
    /// certificate (GuardMDM).
    pub const CERT_INVALID: &str = "CERT_INVALID";
    /// `enrollment_type` and `is_mandatory` disagree (GuardMDM).
    pub const ENROLLMENT_TYPE_CONFLICT: &str = "ENROLLMENT_TYPE_CONFLICT";
    /// An `initial_commands` entry is malformed, not allowed during setup, or there are
    /// too many (GuardMDM).
    pub const INITIAL_COMMAND_INVALID: &str = "INITIAL_COMMAND_INVALID";
    /// A `minimum_os` value is not a version (GuardMDM).
    pub const MINIMUM_OS_INVALID: &str = "MINIMUM_OS_INVALID";
    /// `release_after` is not a duration from 5 minutes to 7 days, or is given without
    /// `await_device_configured: true` (GuardMDM).
    pub const RELEASE_AFTER_INVALID: &str = "RELEASE_AFTER_INVALID";
}

/// Longest `profile_name` and `department`, in characters.
const MAX_NAME: usize = 125;
/// Longest URL once URL-encoded.
const MAX_URL: usize = 2000;
/// Longest `support_phone_number`.
const MAX_PHONE: usize = 50;
/// Longest `support_email_address`.
const MAX_EMAIL: usize = 250;
/// Longest `org_magic`.
const MAX_MAGIC: usize = 256;
/// Most `initial_commands` a profile may have.
const MAX_INITIAL_COMMANDS: usize = 20;

/// One problem with one key of a spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The key at fault (`anchor_certs[2]` for an item of a list).
    pub field: String,
    /// A stable code (see [`codes`]).
    pub code: String,
    /// What is wrong and how to fix it, for an IT admin.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.message, self.code)
    }
}

/// A spec that passed [`validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidProfile {
    /// Exactly what Apple receives: every boolean set, optional strings left out rather than
    /// empty, no `devices` and no `profile_uuid`.
    pub apple: Profile,
    /// Things worth telling the admin that do not stop the profile (an unknown skip key, a
    /// duplicate, a flag newer devices ignore). Empty when there is nothing to say.
    pub warnings: Vec<String>,
}

/// Checks `spec` and builds Apple's profile, applying GuardMDM's defaults ([`defaults`]).
/// `default_url` is the server's ADE enrollment endpoint, used when the spec has no `url`.
///
/// URLs are sent as the `url` crate writes them: percent-encoded, with a `/` path when
/// the spec gave none. Certificates are sent without the line breaks a spec may have.
///
/// # Errors
/// Every problem found, not just the first, each with its key, code and a message.
pub fn validate(spec: &ProfileSpec, default_url: &str) -> Result<ValidProfile, Vec<FieldError>> {
    let mut c = Checker::default();
    let checked = c.check(spec, default_url);
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let mut warnings = c.warnings;
    warnings.extend(flag_warnings(spec));
    Ok(ValidProfile {
        apple: apple_profile(spec, checked),
        warnings,
    })
}

/// The values [`Checker::check`] rewrites; `None` where the spec has none (or, for the
/// URL, when it is invalid).
struct Checked {
    url: Option<String>,
    configuration_web_url: Option<String>,
    anchor_certs: Option<Vec<String>>,
    supervising_host_certs: Option<Vec<String>>,
    skip_setup_items: Option<Vec<String>>,
}

/// Apple's profile for a spec that passed every check, defaults applied.
fn apple_profile(spec: &ProfileSpec, checked: Checked) -> Profile {
    Profile {
        profile_name: spec
            .profile_name
            .clone()
            .unwrap_or_else(|| spec.name.clone()),
        url: checked.url.unwrap_or_default(),
        configuration_web_url: checked.configuration_web_url,
        allow_pairing: Some(spec.allow_pairing.unwrap_or(defaults::ALLOW_PAIRING)),
        is_supervised: Some(spec.effective_is_supervised()),
        is_multi_user: Some(spec.is_multi_user.unwrap_or(defaults::IS_MULTI_USER)),
        is_mandatory: Some(spec.effective_is_mandatory()),
        await_device_configured: Some(
            spec.await_device_configured
                .unwrap_or(defaults::AWAIT_DEVICE_CONFIGURED),
        ),
        is_mdm_removable: Some(spec.effective_is_mdm_removable()),
        auto_advance_setup: Some(
            spec.auto_advance_setup
                .unwrap_or(defaults::AUTO_ADVANCE_SETUP),
        ),
        support_phone_number: spec.support_phone_number.clone(),
        support_email_address: spec.support_email_address.clone(),
        org_magic: spec.org_magic.clone(),
        department: spec.department.clone(),
        language: spec.language.clone(),
        region: spec.region.clone(),
        anchor_certs: checked.anchor_certs,
        supervising_host_certs: checked.supervising_host_certs,
        skip_setup_items: checked.skip_setup_items,
        devices: None,
        profile_uuid: None,
    }
}

/// Notes on flags that newer devices ignore.
fn flag_warnings(spec: &ProfileSpec) -> Vec<String> {
    let mut warnings = Vec::new();
    if spec.is_supervised == Some(false) {
        warnings.push(
            "`is_supervised: false` is ignored by iOS and iPadOS 13 and later, which supervise every ADE device".into(),
        );
    }
    if spec.enrollment_type() == EnrollmentType::UserInitiated {
        warnings.push(
            "`user_initiated` (`is_mandatory: false`) is ignored by iOS and iPadOS 13 and later, which always enroll ADE devices".into(),
        );
    }
    warnings
}

/// Collects errors and warnings.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
    warnings: Vec<String>,
}

impl Checker {
    /// Runs every check, in the order of the spec's keys.
    fn check(&mut self, spec: &ProfileSpec, default_url: &str) -> Checked {
        if let Err(e) = names::validate_name(&spec.name, "profile name") {
            let message = format!(
                "{e}. `name` is GuardMDM's handle for the profile; the name devices show goes in `profile_name`"
            );
            self.error("name", codes::NAME_INVALID, message);
        }
        if let Some(name) = &spec.profile_name {
            self.length("profile_name", codes::CONFIG_NAME_INVALID, name, MAX_NAME);
        }
        let url = match &spec.url {
            Some(url) => self.url("url", url, false),
            None => self.url("url", default_url, true),
        };
        let configuration_web_url = spec
            .configuration_web_url
            .as_ref()
            .and_then(|u| self.url("configuration_web_url", u, false));
        let optional = [
            (
                "department",
                codes::DEPARTMENT_INVALID,
                &spec.department,
                MAX_NAME,
            ),
            (
                "support_phone_number",
                codes::SUPPORT_PHONE_INVALID,
                &spec.support_phone_number,
                MAX_PHONE,
            ),
            (
                "org_magic",
                codes::MAGIC_INVALID,
                &spec.org_magic,
                MAX_MAGIC,
            ),
        ];
        for (field, code, value, max) in optional {
            if let Some(value) = value {
                self.length(field, code, value, max);
            }
        }
        if let Some(email) = &spec.support_email_address {
            self.email(email);
        }
        self.flags(spec);
        self.locale(spec.language.as_deref(), spec.region.as_deref());
        self.initial_commands(spec);
        if let Some(Err(e)) = spec.minimum_os.as_ref().map(|m| m.validate()) {
            self.error("minimum_os", codes::MINIMUM_OS_INVALID, e.to_string());
        }
        self.release_after(spec);
        Checked {
            url,
            configuration_web_url,
            anchor_certs: self.certs("anchor_certs", spec.anchor_certs.as_deref()),
            supervising_host_certs: self.certs(
                "supervising_host_certs",
                spec.supervising_host_certs.as_deref(),
            ),
            skip_setup_items: self.skip_items(spec.skip_setup_items.as_deref()),
        }
    }

    fn initial_commands(&mut self, spec: &ProfileSpec) {
        let Some(commands) = &spec.initial_commands else {
            return;
        };
        if commands.len() > MAX_INITIAL_COMMANDS {
            self.error(
                "initial_commands",
                codes::INITIAL_COMMAND_INVALID,
                format!(
                    "{} initial commands: at most {MAX_INITIAL_COMMANDS} are allowed",
                    commands.len()
                ),
            );
        }
        for (i, command) in commands.iter().enumerate() {
            let field = format!("initial_commands[{i}]");
            let problem = match command.request_type.as_str() {
                "DeviceConfigured" => Some(
                    "DeviceConfigured is sent by GuardMDM itself once the initial commands are answered (with `await_device_configured: true`); leave it out".to_string(),
                ),
                "DeviceLock" | "EraseDevice" => Some(format!(
                    "{} would stop the device in the middle of its setup; it cannot be an initial command",
                    command.request_type
                )),
                _ => command.to_request().err(),
            };
            if let Some(message) = problem {
                self.error(&field, codes::INITIAL_COMMAND_INVALID, message);
            }
        }
        if !commands.is_empty() && spec.await_device_configured != Some(true) {
            self.warnings.push(
                "`initial_commands` are sent right after enrollment, but Setup Assistant does not wait for them: set `await_device_configured: true` to hold the device until they are answered".into(),
            );
        }
    }

    fn release_after(&mut self, spec: &ProfileSpec) {
        let Some(text) = &spec.release_after else {
            return;
        };
        if let Err(message) = crate::setup_assistant::parse_release_after(text) {
            self.error("release_after", codes::RELEASE_AFTER_INVALID, message);
        } else if spec.await_device_configured != Some(true) {
            self.error(
                "release_after",
                codes::RELEASE_AFTER_INVALID,
                "`release_after` releases devices waiting in Setup Assistant, but they only wait with `await_device_configured: true`: set it, or remove `release_after`".into(),
            );
        }
    }

    fn error(&mut self, field: &str, code: &str, message: String) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message,
        });
    }

    /// Apple's "empty or longer than N" rule. Blank counts as empty. `false` on error.
    fn length(&mut self, field: &str, code: &str, value: &str, max: usize) -> bool {
        let len = value.chars().count();
        if value.trim().is_empty() {
            let message = format!("`{field}` is empty: give a value, or remove the key");
            self.error(field, code, message);
            false
        } else if len > max {
            let message = format!(
                "`{field}` is {len} characters long; Apple accepts at most {max}: shorten it"
            );
            self.error(field, code, message);
            false
        } else {
            true
        }
    }

    /// An absolute https URL with a host, at most 2000 characters once encoded; returns it
    /// as encoded. `server_default` words the messages for the server's own URL.
    fn url(&mut self, field: &str, value: &str, server_default: bool) -> Option<String> {
        let code = codes::CONFIG_URL_INVALID;
        let subject = if server_default {
            format!("the server's enrollment URL {value:?} (used because the profile has no `url`)")
        } else {
            format!("`{field}`")
        };
        let fix = if server_default {
            "set `url` in the profile, or fix the server's public URL setting"
        } else {
            "write a full address such as https://mdm.example.com/mdm/enroll"
        };
        let problem = if value.trim().is_empty() {
            Some("is empty".to_owned())
        } else if value.trim() != value {
            Some("has spaces around it".to_owned())
        } else {
            match url::Url::parse(value) {
                Err(e) => Some(format!("is not a valid URL ({e})")),
                // Devices reach the enrollment URLs over https only. Plain http is accepted
                // for a loopback host, where only local simulators can be (development and
                // tests), with a warning.
                Ok(u) if u.scheme() == "http" && is_loopback(&u) => {
                    self.warnings.push(format!(
                        "{subject} uses plain http on a loopback host: only local simulated devices can use it; real devices need https"
                    ));
                    if u.as_str().len() > MAX_URL {
                        Some(format!(
                            "is {} characters long once URL-encoded; Apple accepts at most {MAX_URL}",
                            u.as_str().len()
                        ))
                    } else {
                        return Some(u.into());
                    }
                }
                Ok(u) if u.scheme() != "https" => {
                    Some(format!("uses `{}:`; Apple only accepts https", u.scheme()))
                }
                Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                    Some("has no host name".to_owned())
                }
                Ok(u) if u.as_str().len() > MAX_URL => Some(format!(
                    "is {} characters long once URL-encoded; Apple accepts at most {MAX_URL}",
                    u.as_str().len()
                )),
                Ok(u) => return Some(u.into()),
            }
        };
        if let Some(problem) = problem {
            self.error(field, code, format!("{subject} {problem}: {fix}"));
        }
        None
    }

    fn email(&mut self, email: &str) {
        let field = "support_email_address";
        if !self.length(field, codes::SUPPORT_EMAIL_INVALID, email, MAX_EMAIL) {
            return;
        }
        if !plausible_email(email) {
            self.error(
                field,
                codes::SUPPORT_EMAIL_INVALID,
                format!("`{field}` {email:?} does not look like an email address: write it as name@example.com"),
            );
        }
    }

    /// Apple's FLAGS_INVALID rule on the effective values, and the enrollment-type conflict.
    fn flags(&mut self, spec: &ProfileSpec) {
        if !spec.effective_is_mdm_removable() && !spec.effective_is_supervised() {
            let (field, how) = if spec.is_mdm_removable.is_some() {
                ("is_mdm_removable", "was set to false")
            } else {
                ("is_supervised", "defaults to false")
            };
            let message = format!(
                "`is_mdm_removable` {how}, which Apple allows only for supervised devices, but `is_supervised` is false: set `is_supervised: true`, or `is_mdm_removable: true` to let users remove management"
            );
            self.error(field, codes::FLAGS_INVALID, message);
        }
        if let (Some(kind), Some(mandatory)) = (spec.enrollment_type, spec.is_mandatory)
            && kind.is_mandatory() != mandatory
        {
            let message = format!(
                "`enrollment_type: {}` means `is_mandatory: {}`, but `is_mandatory` is {mandatory}: remove one of the two keys",
                kind.as_str(),
                kind.is_mandatory()
            );
            self.error("enrollment_type", codes::ENROLLMENT_TYPE_CONFLICT, message);
        }
    }

    fn locale(&mut self, language: Option<&str>, region: Option<&str>) {
        let code = codes::LOCALE_INVALID;
        if let Some(language) = language
            && !is_language(language)
        {
            let hint = if let Some((lang, reg)) = language.split_once(['-', '_']) {
                format!(
                    "put the region in its own key: `language: {}` and `region: {}`",
                    lang.to_ascii_lowercase(),
                    reg.to_ascii_uppercase()
                )
            } else if is_language(&language.to_ascii_lowercase()) {
                format!(
                    "write it in lower case: {:?}",
                    language.to_ascii_lowercase()
                )
            } else {
                "use an ISO 639 code of 2 or 3 lower-case letters, such as \"en\" or \"haw\"".into()
            };
            self.error(
                "language",
                code,
                format!("`language` {language:?} is not a language code: {hint}"),
            );
        }
        let Some(region) = region else { return };
        if !is_region(region) {
            let hint = if is_region(&region.to_ascii_uppercase()) {
                format!("write it in upper case: {:?}", region.to_ascii_uppercase())
            } else {
                "use an ISO 3166-1 code of 2 upper-case letters, such as \"US\"".into()
            };
            self.error(
                "region",
                code,
                format!("`region` {region:?} is not a region code: {hint}"),
            );
        } else if language.is_none() {
            let message = "`region` needs a `language`: add one, such as `language: en`".into();
            self.error("region", code, message);
        }
    }

    /// Base64 DER certificates, returned without white space; an empty list is left out.
    fn certs(&mut self, field: &str, certs: Option<&[String]>) -> Option<Vec<String>> {
        let certs = certs.filter(|c| !c.is_empty())?;
        let mut out = Vec::with_capacity(certs.len());
        for (i, cert) in certs.iter().enumerate() {
            let item = format!("{field}[{i}]");
            match check_cert(cert) {
                Ok(clean) => out.push(clean),
                Err(problem) => {
                    self.error(&item, codes::CERT_INVALID, format!("`{item}` {problem}"));
                }
            }
        }
        Some(out)
    }

    /// Known, unconfirmed, unknown, empty and repeated skip keys; returns the list to send.
    fn skip_items(&mut self, items: Option<&[String]>) -> Option<Vec<String>> {
        let items = items.filter(|i| !i.is_empty())?;
        let mut seen = HashSet::with_capacity(items.len());
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if item.trim().is_empty() {
                self.warnings
                    .push(format!("`skip_setup_items[{i}]` is empty and was left out"));
                continue;
            }
            if !seen.insert(item.as_str()) {
                self.warnings.push(format!(
                    "`skip_setup_items` lists {item:?} more than once; it is sent once"
                ));
                continue;
            }
            match skip_keys::lookup(item) {
                Some(known) if !known.confirmed => self.warnings.push(format!(
                    "skip key {item:?} is not yet in Apple's published list; devices that do not know it ignore it"
                )),
                Some(_) => {}
                None => {
                    let hint = match skip_keys::suggest(item) {
                        Some(fix) => format!(" (did you mean {fix:?}?)"),
                        None => String::new(),
                    };
                    self.warnings.push(format!(
                        "{item:?} is not a known skip key{hint}; it is sent as written, and devices ignore keys they do not know"
                    ));
                }
            }
            out.push(item.clone());
        }
        (!out.is_empty()).then_some(out)
    }
}

/// One `@`, a non-empty local part, and a domain with a dot inside it; no white space.
fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// `^[a-z]{2,3}$`
fn is_language(s: &str) -> bool {
    (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase())
}

/// `^[A-Z]{2}$`
fn is_region(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// A base64 DER certificate: returns it without white space, or what is wrong with it.
fn check_cert(cert: &str) -> Result<String, String> {
    if cert.trim().is_empty() {
        return Err("is empty: remove it from the list".into());
    }
    if cert.contains("-----BEGIN") {
        return Err(
            "is a PEM file: keep only the base64 text between the -----BEGIN and -----END lines"
                .into(),
        );
    }
    let clean: String = cert.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .map_err(|e| {
            format!("is not valid base64 ({e}): paste the certificate's base64 text unchanged")
        })?;
    match der_length_problem(&der) {
        None => Ok(clean),
        Some(problem) => Err(format!(
            "is not a DER certificate ({problem}): export the certificate as DER (.cer) and base64-encode that"
        )),
    }
}

/// Whether `der` starts with a DER SEQUENCE whose length matches the data.
fn der_length_problem(der: &[u8]) -> Option<String> {
    if der.first() != Some(&0x30) {
        return Some("it does not start with a SEQUENCE".into());
    }
    let Some(&first) = der.get(1) else {
        return Some("it is too short".into());
    };
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || der.len() < 2 + n {
            return Some("its length is unreadable".into());
        }
        let len = der[2..2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    (header + len != der.len()).then(|| {
        format!(
            "it says it is {} bytes long but holds {}",
            header + len,
            der.len()
        )
    })
}

/// Whether a URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

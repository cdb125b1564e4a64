//! Configuration profiles as a device reads them: the enrollment profile from the ADE `url`
//! and profiles installed by `InstallProfile`. The checks are those Apple documents for
//! profiles and for the `com.apple.security.scep` and `com.apple.mdm` payloads; a failure
//! carries the `MCProfileErrorDomain` / `MCPayloadErrorDomain` code a device reports.

use std::collections::HashSet;

use guardmdm_crypto::Certificate;
use plist::{Dictionary, Value};
use secrecy::SecretString;

use crate::catalog::DeviceFamily;

/// `MCProfileErrorDomain` codes (Apple's MDM protocol reference, "Error Codes").
pub(crate) const MALFORMED_PROFILE: i64 = 1000;
const UNSUPPORTED_VERSION: i64 = 1001;
const MISSING_FIELD: i64 = 1002;
const BAD_TYPE: i64 = 1003;
pub(crate) const BAD_SIGNATURE: i64 = 1004;
const EMPTY_PROFILE: i64 = 1005;
const NON_UNIQUE_UUIDS: i64 = 1007;
const NON_UNIQUE_IDENTIFIERS: i64 = 1008;

/// Why a profile is refused: the `MCProfileErrorDomain` code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProfileProblem {
    pub(crate) code: i64,
    pub(crate) message: String,
}

fn problem(code: i64, message: impl Into<String>) -> ProfileProblem {
    ProfileProblem {
        code,
        message: message.into(),
    }
}

/// One payload of a profile, as `ProfileList` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadSummary {
    /// `PayloadType`, e.g. `com.apple.wifi.managed`.
    pub payload_type: String,
    /// `PayloadIdentifier`.
    pub identifier: String,
    /// `PayloadUUID`.
    pub uuid: String,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadVersion`.
    pub version: i64,
}

/// A configuration profile installed on a simulated device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledProfile {
    /// Top-level `PayloadIdentifier`: what `RemoveProfile` names.
    pub identifier: String,
    /// Top-level `PayloadUUID`.
    pub uuid: String,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// `PayloadRemovalDisallowed`.
    pub removal_disallowed: bool,
    /// Installed by the MDM server (`InstallProfile`), or the MDM enrollment profile itself.
    pub is_managed: bool,
    /// The MDM enrollment profile.
    pub is_mdm_enrollment: bool,
    /// The payloads, in order.
    pub payloads: Vec<PayloadSummary>,
    /// The certificates of the CMS signature around the profile (signer first), empty when
    /// it came unsigned.
    pub signer_certificates: Vec<Certificate>,
}

impl InstalledProfile {
    /// The `ProfileList` entry (Apple's `ProfileListResponse.ProfileListItem`).
    pub(crate) fn to_list_item(&self) -> Value {
        let mut d = Dictionary::new();
        d.insert("HasRemovalPasscode".into(), Value::Boolean(false));
        d.insert("IsEncrypted".into(), Value::Boolean(false));
        d.insert("IsManaged".into(), Value::Boolean(self.is_managed));
        let payloads = self
            .payloads
            .iter()
            .map(|p| {
                let mut item = Dictionary::new();
                if let Some(name) = &p.display_name {
                    item.insert("PayloadDisplayName".into(), Value::String(name.clone()));
                }
                item.insert(
                    "PayloadIdentifier".into(),
                    Value::String(p.identifier.clone()),
                );
                item.insert("PayloadType".into(), Value::String(p.payload_type.clone()));
                item.insert("PayloadUUID".into(), Value::String(p.uuid.clone()));
                item.insert("PayloadVersion".into(), Value::Integer(p.version.into()));
                Value::Dictionary(item)
            })
            .collect();
        d.insert("PayloadContent".into(), Value::Array(payloads));
        if let Some(name) = &self.display_name {
            d.insert("PayloadDisplayName".into(), Value::String(name.clone()));
        }
        d.insert(
            "PayloadIdentifier".into(),
            Value::String(self.identifier.clone()),
        );
        if let Some(org) = &self.organization {
            d.insert("PayloadOrganization".into(), Value::String(org.clone()));
        }
        d.insert(
            "PayloadRemovalDisallowed".into(),
            Value::Boolean(self.removal_disallowed),
        );
        d.insert("PayloadUUID".into(), Value::String(self.uuid.clone()));
        d.insert("PayloadVersion".into(), Value::Integer(1.into()));
        if !self.signer_certificates.is_empty() {
            let certs = self
                .signer_certificates
                .iter()
                .map(|c| Value::Data(c.to_der().to_vec()))
                .collect();
            d.insert("SignerCertificates".into(), Value::Array(certs));
        }
        Value::Dictionary(d)
    }
}

/// A parsed profile: its summary and its payload dictionaries.
#[derive(Debug, Clone)]
pub(crate) struct ParsedProfile {
    pub(crate) profile: InstalledProfile,
    pub(crate) payloads: Vec<Dictionary>,
}

/// Reads a configuration profile plist (XML or binary).
pub(crate) fn parse(
    bytes: &[u8],
    signer_certificates: Vec<Certificate>,
) -> Result<ParsedProfile, ProfileProblem> {
    let top = top_dictionary(bytes)?;
    let f = Fields::new(&top, "the profile");
    let payload_type = f.required_string("PayloadType")?;
    if payload_type != "Configuration" {
        return Err(problem(
            MALFORMED_PROFILE,
            format!("PayloadType is {payload_type:?}, not \"Configuration\""),
        ));
    }
    f.version()?;
    let identifier = f.required_string("PayloadIdentifier")?;
    let uuid = f.required_string("PayloadUUID")?;
    let content = match top.get("PayloadContent") {
        None => return Err(problem(EMPTY_PROFILE, "the profile has no PayloadContent")),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(problem(
                BAD_TYPE,
                "PayloadContent of the profile is not an array",
            ));
        }
    };
    let (payloads, summaries) = read_payloads(content, &uuid, &identifier)?;
    Ok(ParsedProfile {
        profile: InstalledProfile {
            identifier,
            uuid,
            display_name: f.string("PayloadDisplayName")?,
            organization: f.string("PayloadOrganization")?,
            removal_disallowed: f.boolean("PayloadRemovalDisallowed")?.unwrap_or(false),
            is_managed: true,
            is_mdm_enrollment: false,
            payloads: summaries,
            signer_certificates,
        },
        payloads,
    })
}

/// The profile's top-level dictionary.
fn top_dictionary(bytes: &[u8]) -> Result<Dictionary, ProfileProblem> {
    let value = Value::from_reader(std::io::Cursor::new(bytes)).map_err(|e| {
        problem(
            MALFORMED_PROFILE,
            format!("the profile is not a property list: {e}"),
        )
    })?;
    let Value::Dictionary(top) = value else {
        return Err(problem(
            MALFORMED_PROFILE,
            "the profile is not a dictionary",
        ));
    };
    Ok(top)
}

/// The payloads of `PayloadContent` and their summaries, in order. Each must be a
/// dictionary with its type, identifier and UUID; UUIDs (case-insensitively) and
/// identifiers must be unique, the profile's own (`uuid`, `identifier`) included.
fn read_payloads(
    content: &[Value],
    uuid: &str,
    identifier: &str,
) -> Result<(Vec<Dictionary>, Vec<PayloadSummary>), ProfileProblem> {
    let mut uuids = HashSet::from([uuid.to_ascii_uppercase()]);
    let mut identifiers = HashSet::from([identifier.to_string()]);
    let mut payloads = Vec::new();
    let mut summaries = Vec::new();
    for (i, item) in content.iter().enumerate() {
        let Value::Dictionary(payload) = item else {
            return Err(problem(
                BAD_TYPE,
                format!("payload {} is not a dictionary", i + 1),
            ));
        };
        let what = format!("payload {}", i + 1);
        let f = Fields::new(payload, &what);
        let summary = PayloadSummary {
            payload_type: f.required_string("PayloadType")?,
            identifier: f.required_string("PayloadIdentifier")?,
            uuid: f.required_string("PayloadUUID")?,
            display_name: f.string("PayloadDisplayName")?,
            version: f.version()?,
        };
        if !uuids.insert(summary.uuid.to_ascii_uppercase()) {
            return Err(problem(
                NON_UNIQUE_UUIDS,
                format!("PayloadUUID {} is used twice", summary.uuid),
            ));
        }
        if !identifiers.insert(summary.identifier.clone()) {
            return Err(problem(
                NON_UNIQUE_IDENTIFIERS,
                format!("PayloadIdentifier {} is used twice", summary.identifier),
            ));
        }
        summaries.push(summary);
        payloads.push(payload.clone());
    }
    Ok((payloads, summaries))
}

/// The `com.apple.security.scep` payload, as the device understood it.
#[derive(Debug, Clone)]
pub struct ScepPayload {
    /// `PayloadUUID` (what `IdentityCertificateUUID` points at).
    pub payload_uuid: String,
    /// `URL` of the SCEP service.
    pub url: String,
    /// `Name`, the CA name for the SCEP service, if given.
    pub name: Option<String>,
    /// `Challenge`.
    pub challenge: Option<SecretString>,
    /// `Subject` flattened to `(name or OID, value)` pairs, in order.
    pub subject: Vec<(String, String)>,
    /// `Keysize` (Apple's default when absent: 1024).
    pub key_size: u32,
    /// `CAFingerprint`: MD5, SHA-1 or SHA-256 of the CA certificate, if given.
    pub ca_fingerprint: Option<Vec<u8>>,
}

/// The `com.apple.mdm` payload, as the device understood it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdmPayload {
    /// `PayloadUUID`.
    pub payload_uuid: String,
    /// `ServerURL`: the command channel.
    pub server_url: String,
    /// `CheckInURL`, if given (the device then checks in at `ServerURL`).
    pub check_in_url: Option<String>,
    /// `Topic`.
    pub topic: String,
    /// `IdentityCertificateUUID`.
    pub identity_certificate_uuid: String,
    /// `AccessRights`.
    pub access_rights: u32,
    /// `SignMessage` (default `false`).
    pub sign_message: bool,
    /// `CheckOutWhenRemoved` (default `false`).
    pub check_out_when_removed: bool,
    /// `ServerCapabilities`.
    pub server_capabilities: Vec<String>,
    /// `UseDevelopmentAPNS` (default `false`).
    pub use_development_apns: bool,
}

impl MdmPayload {
    /// Where check-in messages go: `CheckInURL`, or `ServerURL` when there is none.
    #[must_use]
    pub fn effective_check_in_url(&self) -> &str {
        self.check_in_url.as_deref().unwrap_or(&self.server_url)
    }
}

/// What the device learned from its enrollment profile.
#[derive(Debug, Clone)]
pub struct EnrollmentInfo {
    /// The profile's `PayloadIdentifier`.
    pub profile_identifier: String,
    /// The profile's `PayloadUUID`.
    pub profile_uuid: String,
    /// The certificate that signed the profile (`None`: it came unsigned).
    pub signer: Option<Certificate>,
    /// Whether the signer chained to the ADE profile's `anchor_certs`.
    pub signer_trusted: bool,
    /// The identity payload.
    pub scep: ScepPayload,
    /// The MDM payload.
    pub mdm: MdmPayload,
    /// Certificates of `com.apple.security.root` payloads.
    pub anchors: Vec<Certificate>,
}

/// Finds and checks the SCEP and MDM payloads of an enrollment profile.
pub(crate) fn enrollment(
    parsed: &ParsedProfile,
    family: DeviceFamily,
) -> Result<(ScepPayload, MdmPayload, Vec<Certificate>), String> {
    let mdm: Vec<_> = of_type(parsed, "com.apple.mdm").collect();
    let [(mdm_dict, mdm_summary)] = mdm.as_slice() else {
        return Err(format!(
            "the enrollment profile has {} com.apple.mdm payloads; it needs exactly one",
            mdm.len()
        ));
    };
    let mdm = mdm_payload(mdm_dict, &mdm_summary.uuid, family)?;
    let identity = parsed
        .profile
        .payloads
        .iter()
        .zip(&parsed.payloads)
        .find(|(s, _)| s.uuid == mdm.identity_certificate_uuid);
    let (summary, dict) = identity.ok_or_else(|| {
        format!(
            "IdentityCertificateUUID {} names no payload of the profile (Apple: 12016 Missing \
             identity)",
            mdm.identity_certificate_uuid
        )
    })?;
    if summary.payload_type != "com.apple.security.scep" {
        return Err(format!(
            "IdentityCertificateUUID names a {} payload; the simulator gets its identity by \
             SCEP (com.apple.security.scep) only",
            summary.payload_type
        ));
    }
    let scep = scep_payload(dict, &summary.uuid)?;
    let mut anchors = Vec::new();
    for (dict, _) in of_type(parsed, "com.apple.security.root") {
        let Some(Value::Data(der)) = dict.get("PayloadContent") else {
            return Err("a com.apple.security.root payload has no certificate".into());
        };
        anchors.push(
            Certificate::from_der(der)
                .map_err(|e| format!("a com.apple.security.root payload: {e}"))?,
        );
    }
    let payload_uuids: HashSet<&str> = parsed
        .profile
        .payloads
        .iter()
        .map(|p| p.uuid.as_str())
        .collect();
    for key in [
        "ServerURLPinningCertificateUUIDs",
        "CheckInURLPinningCertificateUUIDs",
    ] {
        if let Some(Value::Array(pins)) = mdm_dict.get(key) {
            for pin in pins {
                let pin = pin.as_string().unwrap_or_default();
                if !payload_uuids.contains(pin) {
                    return Err(format!("{key} names {pin:?}, which is no payload here"));
                }
            }
        }
    }
    Ok((scep, mdm, anchors))
}

/// The payloads of one `PayloadType`, with their summaries.
fn of_type<'a>(
    parsed: &'a ParsedProfile,
    payload_type: &'a str,
) -> impl Iterator<Item = (&'a Dictionary, &'a PayloadSummary)> + 'a {
    parsed
        .payloads
        .iter()
        .zip(&parsed.profile.payloads)
        .filter(move |(_, s)| s.payload_type == payload_type)
}

fn scep_payload(dict: &Dictionary, uuid: &str) -> Result<ScepPayload, String> {
    let Some(Value::Dictionary(content)) = dict.get("PayloadContent") else {
        return Err("the SCEP payload has no PayloadContent dictionary".into());
    };
    let f = Fields::new(content, "the SCEP payload");
    let url = f.required_string("URL").map_err(|p| p.message)?;
    check_url("the SCEP URL", &url)?;
    let key_size = match f.integer("Keysize").map_err(|p| p.message)? {
        None => 1024,
        Some(n @ (1024 | 2048 | 4096)) => u32::try_from(n).unwrap_or(1024),
        Some(n) => return Err(format!("the SCEP Keysize {n} is not 1024, 2048 or 4096")),
    };
    match f.string("Key Type").map_err(|p| p.message)? {
        None => {}
        Some(t) if t == "RSA" => {}
        Some(t) => return Err(format!("the SCEP Key Type is {t:?}; devices support RSA")),
    }
    let subject = match content.get("Subject") {
        None => Vec::new(),
        Some(value) => subject(value)?,
    };
    let ca_fingerprint = match content.get("CAFingerprint") {
        None => None,
        Some(Value::Data(d)) if [16, 20, 32].contains(&d.len()) => Some(d.clone()),
        Some(_) => {
            return Err(
                "the SCEP CAFingerprint is not an MD5, SHA-1 or SHA-256 digest (data)".into(),
            );
        }
    };
    Ok(ScepPayload {
        payload_uuid: uuid.to_string(),
        url,
        name: f.string("Name").map_err(|p| p.message)?,
        challenge: f
            .string("Challenge")
            .map_err(|p| p.message)?
            .map(SecretString::from),
        subject,
        key_size,
        ca_fingerprint,
    })
}

/// `Subject`: an array of RDNs, each an array of `[type, value]` pairs.
fn subject(value: &Value) -> Result<Vec<(String, String)>, String> {
    let bad = || "the SCEP Subject is not an array of arrays of [name, value] pairs".to_string();
    let mut out = Vec::new();
    for rdn in value.as_array().ok_or_else(bad)? {
        for pair in rdn.as_array().ok_or_else(bad)? {
            match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(name), Value::String(value)]) => {
                    out.push((name.clone(), value.clone()));
                }
                _ => return Err(bad()),
            }
        }
    }
    Ok(out)
}

fn mdm_payload(dict: &Dictionary, uuid: &str, family: DeviceFamily) -> Result<MdmPayload, String> {
    let f = Fields::new(dict, "the MDM payload");
    let msg = |p: ProfileProblem| p.message;
    let server_url = f.required_string("ServerURL").map_err(msg)?;
    check_url("ServerURL", &server_url)?;
    let check_in_url = f.string("CheckInURL").map_err(msg)?;
    if let Some(url) = &check_in_url {
        check_url("CheckInURL", url)?;
    }
    let topic = f.required_string("Topic").map_err(msg)?;
    if topic
        .strip_prefix("com.apple.mgmt.")
        .is_none_or(str::is_empty)
    {
        return Err(format!(
            "Topic {topic:?} does not begin with com.apple.mgmt. (Apple: 12022 Invalid topic)"
        ));
    }
    let rights = f
        .integer("AccessRights")
        .map_err(msg)?
        .ok_or("the MDM payload has no AccessRights")?;
    let access_rights = u32::try_from(rights)
        .ok()
        .filter(|r| (1..=8191).contains(r))
        .ok_or_else(|| format!("AccessRights {rights} is not between 1 and 8191"))?;
    if access_rights & 2 != 0 && access_rights & 1 == 0
        || access_rights & 128 != 0 && access_rights & 64 == 0
    {
        return Err(format!(
            "AccessRights {access_rights} breaks Apple's rules (2 needs 1, 128 needs 64) \
             (Apple: 12000 Invalid access rights)"
        ));
    }
    let server_capabilities = match dict.get("ServerCapabilities") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_string().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("ServerCapabilities is not an array of strings")?,
        Some(_) => return Err("ServerCapabilities is not an array".into()),
    };
    if family == DeviceFamily::Mac
        && !server_capabilities
            .iter()
            .any(|c| c == "com.apple.mdm.per-user-connections")
    {
        return Err(
            "a Mac needs com.apple.mdm.per-user-connections in ServerCapabilities".to_string(),
        );
    }
    Ok(MdmPayload {
        payload_uuid: uuid.to_string(),
        server_url,
        check_in_url,
        topic,
        identity_certificate_uuid: f.required_string("IdentityCertificateUUID").map_err(msg)?,
        access_rights,
        sign_message: f.boolean("SignMessage").map_err(msg)?.unwrap_or(false),
        check_out_when_removed: f
            .boolean("CheckOutWhenRemoved")
            .map_err(msg)?
            .unwrap_or(false),
        server_capabilities,
        use_development_apns: f
            .boolean("UseDevelopmentAPNS")
            .map_err(msg)?
            .unwrap_or(false),
    })
}

/// Devices want `https://`; the simulator talks plain HTTP to local servers, so `http://` is
/// accepted too (TLS is not simulated).
fn check_url(what: &str, url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(()),
        _ => Err(format!("{what} {url:?} is not an absolute https:// URL")),
    }
}

/// Typed access to a dictionary's keys, with Apple's error codes.
struct Fields<'a> {
    dict: &'a Dictionary,
    what: &'a str,
}

impl<'a> Fields<'a> {
    fn new(dict: &'a Dictionary, what: &'a str) -> Self {
        Self { dict, what }
    }

    fn wrong(&self, key: &str, expected: &str) -> ProfileProblem {
        problem(
            BAD_TYPE,
            format!("{key} in {} is not {expected}", self.what),
        )
    }

    fn string(&self, key: &str) -> Result<Option<String>, ProfileProblem> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    fn required_string(&self, key: &str) -> Result<String, ProfileProblem> {
        self.string(key)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| problem(MISSING_FIELD, format!("{} has no {key}", self.what)))
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, ProfileProblem> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong(key, "a boolean")),
        }
    }

    fn integer(&self, key: &str) -> Result<Option<i64>, ProfileProblem> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => i
                .as_signed()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "an integer in range")),
            Some(_) => Err(self.wrong(key, "an integer")),
        }
    }

    /// `PayloadVersion`, which must be 1.
    fn version(&self) -> Result<i64, ProfileProblem> {
        match self.integer("PayloadVersion")? {
            None => Err(problem(
                MISSING_FIELD,
                format!("{} has no PayloadVersion", self.what),
            )),
            Some(1) => Ok(1),
            Some(v) => Err(problem(
                UNSUPPORTED_VERSION,
                format!("PayloadVersion {v} of {} is not supported", self.what),
            )),
        }
    }
}

/// A profile that holds an MDM payload cannot come through `InstallProfile`.
pub(crate) fn has_mdm_payload(parsed: &ParsedProfile) -> bool {
    parsed
        .profile
        .payloads
        .iter()
        .any(|p| p.payload_type == "com.apple.mdm")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(payloads: &str) -> Vec<u8> {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadIdentifier</key><string>com.example.p</string>
<key>PayloadUUID</key><string>A0000000-0000-4000-8000-000000000000</string>
<key>PayloadContent</key><array>{payloads}</array>
</dict></plist>"#
        )
        .into_bytes()
    }

    fn payload(kind: &str, id: &str, uuid: &str, extra: &str) -> String {
        format!(
            "<dict><key>PayloadType</key><string>{kind}</string>\
             <key>PayloadVersion</key><integer>1</integer>\
             <key>PayloadIdentifier</key><string>{id}</string>\
             <key>PayloadUUID</key><string>{uuid}</string>{extra}</dict>"
        )
    }

    const SCEP: &str = "<key>PayloadContent</key><dict><key>URL</key><string>http://mdm.example/scep</string>\
        <key>Keysize</key><integer>2048</integer><key>Challenge</key><string>c</string>\
        <key>Subject</key><array><array><array><string>O</string><string>Org</string></array></array>\
        <array><array><string>CN</string><string>dev</string></array></array></array></dict>";

    fn mdm(identity: &str, rights: u32) -> String {
        format!(
            "<key>ServerURL</key><string>http://mdm.example/connect</string>\
             <key>Topic</key><string>com.apple.mgmt.External.x</string>\
             <key>IdentityCertificateUUID</key><string>{identity}</string>\
             <key>AccessRights</key><integer>{rights}</integer>\
             <key>SignMessage</key><true/>\
             <key>ServerCapabilities</key><array><string>com.apple.mdm.per-user-connections</string></array>"
        )
    }

    #[test]
    fn an_enrollment_profile_is_understood() {
        let bytes = profile(&format!(
            "{}{}",
            payload("com.apple.security.scep", "p.scep", "S1", SCEP),
            payload("com.apple.mdm", "p.mdm", "M1", &mdm("S1", 8191))
        ));
        let parsed = parse(&bytes, Vec::new()).unwrap();
        assert_eq!(parsed.profile.identifier, "com.example.p");
        let (scep, mdm, anchors) = enrollment(&parsed, DeviceFamily::Mac).unwrap();
        assert_eq!(scep.url, "http://mdm.example/scep");
        assert_eq!(scep.key_size, 2048);
        assert_eq!(
            scep.subject,
            [("O".into(), "Org".into()), ("CN".into(), "dev".into())]
        );
        assert!(mdm.sign_message);
        assert_eq!(mdm.effective_check_in_url(), "http://mdm.example/connect");
        assert!(anchors.is_empty());
    }

    #[test]
    fn broken_enrollment_profiles_are_refused() {
        let wrong_identity = profile(&format!(
            "{}{}",
            payload("com.apple.security.scep", "p.scep", "S1", SCEP),
            payload("com.apple.mdm", "p.mdm", "M1", &mdm("S2", 8191))
        ));
        let parsed = parse(&wrong_identity, Vec::new()).unwrap();
        let err = enrollment(&parsed, DeviceFamily::IPhone).unwrap_err();
        assert!(err.contains("IdentityCertificateUUID"), "{err}");

        let bad_rights = profile(&format!(
            "{}{}",
            payload("com.apple.security.scep", "p.scep", "S1", SCEP),
            payload("com.apple.mdm", "p.mdm", "M1", &mdm("S1", 2))
        ));
        let parsed = parse(&bad_rights, Vec::new()).unwrap();
        assert!(enrollment(&parsed, DeviceFamily::IPhone).is_err());

        let no_mdm = profile(&payload("com.apple.security.scep", "p.scep", "S1", SCEP));
        let parsed = parse(&no_mdm, Vec::new()).unwrap();
        assert!(enrollment(&parsed, DeviceFamily::IPhone).is_err());
    }

    #[test]
    fn profile_errors_carry_apples_codes() {
        let code = |bytes: &[u8]| parse(bytes, Vec::new()).unwrap_err().code;
        assert_eq!(code(b"not a plist"), MALFORMED_PROFILE);
        let dup = profile(&format!(
            "{}{}",
            payload("com.apple.wifi.managed", "a", "U1", ""),
            payload("com.apple.wifi.managed", "b", "U1", "")
        ));
        assert_eq!(code(&dup), NON_UNIQUE_UUIDS);
        let dup = profile(&format!(
            "{}{}",
            payload("com.apple.wifi.managed", "a", "U1", ""),
            payload("com.apple.wifi.managed", "a", "U2", "")
        ));
        assert_eq!(code(&dup), NON_UNIQUE_IDENTIFIERS);
        let no_id = profile(&payload("com.apple.wifi.managed", "", "U1", ""));
        assert_eq!(code(&no_id), MISSING_FIELD);
        let v2 = String::from_utf8(profile(""))
            .unwrap()
            .replace("<integer>1</integer>", "<integer>2</integer>");
        assert_eq!(code(v2.as_bytes()), UNSUPPORTED_VERSION);
    }
}

//! What a device would refuse in an enrollment profile, caught before it is served.

use std::collections::HashSet;

use super::EnrollmentProfile;
use crate::error::ProtocolError;

fn invalid(reason: impl Into<String>) -> ProtocolError {
    ProtocolError::InvalidProfile(reason.into())
}

pub(super) fn profile(p: &EnrollmentProfile) -> Result<(), ProtocolError> {
    if p.identifier.trim().is_empty() {
        return Err(invalid("PayloadIdentifier is empty"));
    }
    if p.display_name.trim().is_empty() {
        return Err(invalid("PayloadDisplayName is empty"));
    }
    uuids(p)?;
    scep(p)?;
    mdm(p)
}

fn uuids(p: &EnrollmentProfile) -> Result<(), ProtocolError> {
    let named = [
        ("the profile's PayloadUUID", &p.uuids.profile),
        ("the SCEP payload's PayloadUUID", &p.uuids.scep),
        ("the MDM payload's PayloadUUID", &p.uuids.mdm),
    ];
    let anchors = p
        .trust_anchors
        .iter()
        .map(|a| ("a trust anchor's PayloadUUID", &a.uuid));
    let mut seen = HashSet::new();
    for (name, uuid) in named.into_iter().chain(anchors) {
        if uuid::Uuid::try_parse(uuid).is_err() {
            return Err(invalid(format!("{name} `{uuid}` is not a UUID")));
        }
        if !seen.insert(uuid.to_ascii_uppercase()) {
            return Err(invalid(format!(
                "{name} `{uuid}` is used twice in the profile"
            )));
        }
    }
    for anchor in &p.trust_anchors {
        if anchor.certificate_der.is_empty() {
            return Err(invalid(format!(
                "trust anchor `{}` has no certificate",
                anchor.uuid
            )));
        }
        if anchor.display_name.trim().is_empty() {
            return Err(invalid(format!(
                "trust anchor `{}` has no display name",
                anchor.uuid
            )));
        }
    }
    Ok(())
}

fn scep(p: &EnrollmentProfile) -> Result<(), ProtocolError> {
    url("the SCEP URL", &p.scep.url)?;
    if ![1024, 2048, 4096].contains(&p.scep.key_size) {
        return Err(invalid(format!(
            "SCEP Keysize {} is not one of 1024, 2048, 4096",
            p.scep.key_size
        )));
    }
    if p.scep
        .subject
        .iter()
        .any(|(oid, value)| oid.is_empty() || value.is_empty())
    {
        return Err(invalid("the SCEP Subject has an empty name or value"));
    }
    Ok(())
}

fn mdm(p: &EnrollmentProfile) -> Result<(), ProtocolError> {
    let m = &p.mdm;
    url("ServerURL", &m.server_url)?;
    if let Some(check_in) = &m.check_in_url {
        url("CheckInURL", check_in)?;
    }
    match m.topic.strip_prefix("com.apple.mgmt.") {
        Some(rest) if !rest.is_empty() => {}
        _ => {
            return Err(invalid(format!(
                "Topic `{}` must start with com.apple.mgmt. (it is the push certificate's topic)",
                m.topic
            )));
        }
    }
    access_rights(m.access_rights)?;
    let mut seen = HashSet::new();
    for capability in &m.server_capabilities {
        if capability.is_empty() || !seen.insert(capability) {
            return Err(invalid(
                "ServerCapabilities must be distinct non-empty strings",
            ));
        }
    }
    let anchors: HashSet<&str> = p.trust_anchors.iter().map(|a| a.uuid.as_str()).collect();
    let pins = m
        .server_url_pinning_certificate_uuids
        .iter()
        .map(|u| ("ServerURL", u));
    let pins = pins.chain(
        m.check_in_url_pinning_certificate_uuids
            .iter()
            .map(|u| ("CheckInURL", u)),
    );
    for (which, uuid) in pins {
        if !anchors.contains(uuid.as_str()) {
            return Err(invalid(format!(
                "{which}PinningCertificateUUIDs names `{uuid}`, which is no trust anchor in the profile"
            )));
        }
    }
    Ok(())
}

/// Apple's rules: never 0, only the thirteen defined bits, 2 needs 1, 128 needs 64.
fn access_rights(rights: u32) -> Result<(), ProtocolError> {
    if rights == 0 || rights > super::ACCESS_RIGHTS_ALL {
        return Err(invalid(format!(
            "AccessRights {rights} must be between 1 and 8191"
        )));
    }
    if rights & 2 != 0 && rights & 1 == 0 {
        return Err(invalid(format!(
            "AccessRights {rights} allows installing profiles (2) without inspecting them (1)"
        )));
    }
    if rights & 128 != 0 && rights & 64 == 0 {
        return Err(invalid(format!(
            "AccessRights {rights} allows installing provisioning profiles (128) without inspecting them (64)"
        )));
    }
    Ok(())
}

fn url(name: &str, value: &str) -> Result<(), ProtocolError> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(invalid(format!(
            "{name} `{value}` must be an absolute https:// URL (devices refuse anything else; \
             http:// is accepted for local simulators)"
        ))),
    }
}

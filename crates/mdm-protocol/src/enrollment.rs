//! The enrollment profile: the configuration profile a device installs to enroll
//! (`docs/protocol.md` §6.2; <https://developer.apple.com/documentation/devicemanagement/mdm>).
//!
//! One `Configuration` profile (`Content-Type: application/x-apple-aspen-config`) holding, in
//! install order:
//!
//! 1. optional `com.apple.security.root` payloads: trust anchors (DER certificates) for a
//!    private CA behind the SCEP or MDM URLs, which TLS pinning can also refer to;
//! 2. a `com.apple.security.scep` payload: the device generates an RSA key and gets its
//!    identity certificate from our SCEP CA, using the challenge;
//! 3. the `com.apple.mdm` payload: where to check in and fetch commands, the push topic, and
//!    `IdentityCertificateUUID` pointing at the SCEP payload, with `SignMessage` so every
//!    request carries `Mdm-Signature`.
//!
//! This module writes the unsigned XML; `crypto` signs it. Output is deterministic: every UUID
//! is an input ([`ProfileUuids`], [`TrustAnchor::uuid`]); [`ProfileUuids::generate`] makes
//! fresh ones for a new profile.
//!
//! From the ADE profile (`docs/protocol.md` §5.1): `is_mdm_removable: false` maps to
//! [`EnrollmentProfile::removable`] `= false`, which sets `PayloadRemovalDisallowed` (honoured on
//! supervised devices, which ADE devices are); `is_multi_user` needs the
//! `com.apple.mdm.per-user-connections` capability, which is in the defaults; `anchor_certs`
//! may be repeated here as [`TrustAnchor`]s.

use plist::Data;
use secrecy::{ExposeSecret, SecretString};

use crate::error::ProtocolError;

/// The `Content-Type` to serve the profile with; the Setup Assistant web view waits for it.
pub const ENROLLMENT_PROFILE_CONTENT_TYPE: &str = "application/x-apple-aspen-config";

/// `AccessRights` granting everything (all thirteen bits).
pub const ACCESS_RIGHTS_ALL: u32 = 8191;

/// Server capability: device and user channels (needed for Shared iPad and macOS users).
pub const CAPABILITY_PER_USER_CONNECTIONS: &str = "com.apple.mdm.per-user-connections";
/// Server capability: escrow of the macOS Bootstrap Token (`Set`/`GetBootstrapToken`).
pub const CAPABILITY_BOOTSTRAP_TOKEN: &str = "com.apple.mdm.bootstraptoken";
/// Server capability: the `GetToken` check-in.
pub const CAPABILITY_TOKEN: &str = "com.apple.mdm.token";

/// The UUIDs of the profile and its two fixed payloads. Keep them stable for one enrollment
/// configuration: a device replaces a profile whose `PayloadIdentifier` and UUIDs match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUuids {
    /// Top-level `PayloadUUID`.
    pub profile: String,
    /// `PayloadUUID` of the SCEP payload (and the MDM payload's `IdentityCertificateUUID`).
    pub scep: String,
    /// `PayloadUUID` of the MDM payload.
    pub mdm: String,
}

impl ProfileUuids {
    /// Three fresh random UUIDs.
    pub fn generate() -> Self {
        Self {
            profile: crate::new_uuid(),
            scep: crate::new_uuid(),
            mdm: crate::new_uuid(),
        }
    }
}

/// The `com.apple.security.scep` payload's settings.
#[derive(Debug, Clone)]
pub struct ScepSettings {
    /// `URL` of the SCEP service.
    pub url: String,
    /// `Name`: CA name the SCEP service understands, if it needs one.
    pub name: Option<String>,
    /// `Challenge`: the pre-shared secret that authorizes the certificate request.
    pub challenge: Option<SecretString>,
    /// `Subject` as `(OID or short name, value)` pairs, e.g. `("CN", "GuardMDM device")`;
    /// each pair becomes its own RDN: `[[["O", "…"]], [["CN", "…"]]]`.
    pub subject: Vec<(String, String)>,
    /// `Keysize`: 1024, 2048 (default) or 4096. `Key Type` is always `RSA`, `Key Usage` 5
    /// (signing and encryption).
    pub key_size: u32,
    /// `CAFingerprint`: hash of the CA certificate, so the device checks whom it enrolls with.
    pub ca_fingerprint: Option<Vec<u8>>,
}

impl ScepSettings {
    /// SCEP at `url`, 2048-bit RSA, no challenge, subject or fingerprint yet.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: None,
            challenge: None,
            subject: Vec::new(),
            key_size: 2048,
            ca_fingerprint: None,
        }
    }
}

/// The `com.apple.mdm` payload's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdmSettings {
    /// `ServerURL`: the command channel.
    pub server_url: String,
    /// `CheckInURL`: the check-in channel (defaults to `ServerURL` on the device when absent).
    pub check_in_url: Option<String>,
    /// `Topic`: the push certificate's topic, `com.apple.mgmt.External.<uuid>`.
    pub topic: String,
    /// `AccessRights` (default [`ACCESS_RIGHTS_ALL`]).
    pub access_rights: u32,
    /// `SignMessage` (default `true`): every request carries `Mdm-Signature`.
    pub sign_message: bool,
    /// `CheckOutWhenRemoved` (default `true`).
    pub check_out_when_removed: bool,
    /// `ServerCapabilities` (default per-user connections and bootstrap token).
    pub server_capabilities: Vec<String>,
    /// `ServerURLPinningCertificateUUIDs`: UUIDs of [`TrustAnchor`]s in this profile.
    pub server_url_pinning_certificate_uuids: Vec<String>,
    /// `CheckInURLPinningCertificateUUIDs`: UUIDs of [`TrustAnchor`]s in this profile.
    pub check_in_url_pinning_certificate_uuids: Vec<String>,
}

impl MdmSettings {
    /// MDM at `server_url` with push `topic`, and the defaults above.
    pub fn new(server_url: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            server_url: server_url.into(),
            check_in_url: None,
            topic: topic.into(),
            access_rights: ACCESS_RIGHTS_ALL,
            sign_message: true,
            check_out_when_removed: true,
            server_capabilities: vec![
                CAPABILITY_PER_USER_CONNECTIONS.to_string(),
                CAPABILITY_BOOTSTRAP_TOKEN.to_string(),
            ],
            server_url_pinning_certificate_uuids: Vec::new(),
            check_in_url_pinning_certificate_uuids: Vec::new(),
        }
    }
}

/// A `com.apple.security.root` payload: a certificate the device should trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// Its `PayloadUUID` (what pinning lists refer to).
    pub uuid: String,
    /// `PayloadDisplayName`, e.g. `GuardMDM CA`.
    pub display_name: String,
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
}

impl TrustAnchor {
    /// A trust anchor with a fresh UUID.
    pub fn new(display_name: impl Into<String>, certificate_der: impl Into<Vec<u8>>) -> Self {
        Self::with_uuid(crate::new_uuid(), display_name, certificate_der)
    }

    /// A trust anchor with a given UUID.
    pub fn with_uuid(
        uuid: impl Into<String>,
        display_name: impl Into<String>,
        certificate_der: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            uuid: uuid.into(),
            display_name: display_name.into(),
            certificate_der: certificate_der.into(),
        }
    }
}

/// The enrollment profile. Build with [`EnrollmentProfile::new`] and the `with_*` methods (or
/// set fields), then [`EnrollmentProfile::to_xml`].
#[derive(Debug, Clone)]
pub struct EnrollmentProfile {
    /// Top-level `PayloadIdentifier`, reverse DNS, e.g. `com.example.guardmdm.enroll`; the
    /// payloads get `.scep`, `.mdm` and `.anchor.N` appended.
    pub identifier: String,
    /// `PayloadDisplayName`.
    pub display_name: String,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// `PayloadDescription`.
    pub description: Option<String>,
    /// The UUIDs.
    pub uuids: ProfileUuids,
    /// `false` sets `PayloadRemovalDisallowed` (ADE `is_mdm_removable: false`). Default `true`.
    pub removable: bool,
    /// The SCEP payload.
    pub scep: ScepSettings,
    /// The MDM payload.
    pub mdm: MdmSettings,
    /// Trust anchors, installed first.
    pub trust_anchors: Vec<TrustAnchor>,
}

impl EnrollmentProfile {
    /// A removable profile without organization, description or trust anchors.
    pub fn new(
        identifier: impl Into<String>,
        display_name: impl Into<String>,
        uuids: ProfileUuids,
        scep: ScepSettings,
        mdm: MdmSettings,
    ) -> Self {
        Self {
            identifier: identifier.into(),
            display_name: display_name.into(),
            organization: None,
            description: None,
            uuids,
            removable: true,
            scep,
            mdm,
            trust_anchors: Vec::new(),
        }
    }

    /// Sets `PayloadOrganization`.
    pub fn with_organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }

    /// Sets `PayloadDescription`.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets whether the user may remove the profile (ADE `is_mdm_removable`).
    pub fn with_removable(mut self, removable: bool) -> Self {
        self.removable = removable;
        self
    }

    /// Adds a trust anchor.
    pub fn with_trust_anchor(mut self, anchor: TrustAnchor) -> Self {
        self.trust_anchors.push(anchor);
        self
    }

    /// Checks what a device would reject, or what would make enrollment fail later: UUIDs that
    /// are not UUIDs or are reused, URLs that are not `https://` (or `http://`, for local
    /// simulators), a topic outside `com.apple.mgmt.`, `AccessRights` that break Apple's rules,
    /// an unsupported key size, and pinning UUIDs that name no trust anchor in the profile.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        validate::profile(self)
    }

    /// The unsigned profile as an XML property list, after [`validate`](Self::validate).
    pub fn to_xml(&self) -> Result<Vec<u8>, ProtocolError> {
        self.validate()?;
        let mut out = Vec::new();
        plist::to_writer_xml(&mut out, &self.wire())
            .map_err(|e| ProtocolError::Write(e.to_string()))?;
        Ok(out)
    }

    fn wire(&self) -> wire::Profile<'_> {
        let mut content: Vec<wire::Payload<'_>> = Vec::new();
        for (i, anchor) in self.trust_anchors.iter().enumerate() {
            content.push(wire::Payload::Root(wire::Root {
                payload_type: "com.apple.security.root",
                payload_version: 1,
                payload_identifier: format!("{}.anchor.{}", self.identifier, i + 1),
                payload_uuid: &anchor.uuid,
                payload_display_name: &anchor.display_name,
                payload_content: Data::new(anchor.certificate_der.clone()),
            }));
        }
        content.push(wire::Payload::Scep(self.wire_scep()));
        content.push(wire::Payload::Mdm(self.wire_mdm()));
        wire::Profile {
            payload_type: "Configuration",
            payload_version: 1,
            payload_identifier: &self.identifier,
            payload_uuid: &self.uuids.profile,
            payload_display_name: &self.display_name,
            payload_organization: self.organization.as_deref(),
            payload_description: self.description.as_deref(),
            payload_scope: "System",
            payload_removal_disallowed: (!self.removable).then_some(true),
            payload_content: content,
        }
    }

    fn wire_scep(&self) -> wire::Scep<'_> {
        let scep = &self.scep;
        wire::Scep {
            payload_type: "com.apple.security.scep",
            payload_version: 1,
            payload_identifier: format!("{}.scep", self.identifier),
            payload_uuid: &self.uuids.scep,
            payload_display_name: "Device identity",
            payload_content: wire::ScepContent {
                url: &scep.url,
                name: scep.name.as_deref(),
                subject: scep
                    .subject
                    .iter()
                    .map(|(k, v)| vec![[k.as_str(), v.as_str()]])
                    .collect(),
                challenge: scep.challenge.as_ref().map(|c| c.expose_secret()),
                key_size: scep.key_size,
                key_type: "RSA",
                key_usage: 5,
                ca_fingerprint: scep.ca_fingerprint.clone().map(Data::new),
            },
        }
    }

    fn wire_mdm(&self) -> wire::Mdm<'_> {
        let mdm = &self.mdm;
        wire::Mdm {
            payload_type: "com.apple.mdm",
            payload_version: 1,
            payload_identifier: format!("{}.mdm", self.identifier),
            payload_uuid: &self.uuids.mdm,
            payload_display_name: "Device management",
            server_url: &mdm.server_url,
            check_in_url: mdm.check_in_url.as_deref(),
            topic: &mdm.topic,
            identity_certificate_uuid: &self.uuids.scep,
            access_rights: mdm.access_rights,
            sign_message: mdm.sign_message,
            check_out_when_removed: mdm.check_out_when_removed,
            server_capabilities: &mdm.server_capabilities,
            server_url_pinning_certificate_uuids: &mdm.server_url_pinning_certificate_uuids,
            check_in_url_pinning_certificate_uuids: &mdm.check_in_url_pinning_certificate_uuids,
        }
    }
}

mod validate;
mod wire;

#[cfg(test)]
mod tests;

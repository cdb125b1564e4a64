//! A minimum OS at enrollment (Apple's "software update required", `docs/protocol.md` §6.5):
//! whether a device asking for its enrollment profile may go on, must update first, or is
//! below the minimum but cannot be asked. Plain functions; the enrollment service
//! (`mdm/enroll.rs`) runs [`decide`] with the minimum [`effective_minimum`] picks.

use guardmdm_mdm_protocol::{MachineInfo, OsVersion, SoftwareUpdateRequired};
use serde::{Deserialize, Serialize};

pub use guardmdm_store::OsMinimum;

use crate::ServiceError;
use crate::os::OsKey;

/// The OSes a minimum can be set for: those whose devices Apple lets an MDM server ask for an
/// update during Setup Assistant (tvOS cannot be asked).
pub const MINIMUM_OSES: [OsKey; 4] = [OsKey::Ios, OsKey::Ipados, OsKey::Macos, OsKey::Visionos];

/// A minimum resolved to a version: what the device is asked to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredOs {
    /// The version.
    pub version: OsVersion,
    /// Its build, when known (from Apple's catalogue for "latest").
    pub build: Option<String>,
}

impl RequiredOs {
    /// `version` without a build.
    pub fn version(version: OsVersion) -> Self {
        Self {
            version,
            build: None,
        }
    }
}

/// What to do with an enrollment request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsDecision {
    /// No minimum applies, or the device meets it.
    Enroll,
    /// Answer 403 with this document: the device updates and asks again.
    RequireUpdate(SoftwareUpdateRequired),
    /// The device is below the minimum (or does not say its version) but cannot be asked to
    /// update: it enrolls, and GuardMDM reports it.
    CannotAsk {
        /// The minimum it is below.
        minimum: String,
        /// Why it cannot be asked.
        reason: String,
    },
}

/// Checks a minimum as an admin types it: a dotted version (`17.5`). `latest` is refused
/// with the reason: resolving it needs Apple's software catalogue, which GuardMDM does not
/// read yet, and a minimum that is stored but not enforced would mislead.
///
/// # Errors
/// [`ServiceError::Invalid`] naming the text.
pub fn parse_minimum(text: &str) -> Result<OsMinimum, ServiceError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("latest") {
        return Err(ServiceError::Invalid(
            "\"latest\" is not available yet (it needs Apple's software catalogue, which \
             GuardMDM does not read yet): set a version such as 17.5"
                .to_string(),
        ));
    }
    let version = OsVersion::parse(text).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    Ok(OsMinimum::Version(version.as_str().to_string()))
}

/// Checks that a minimum may be set for `os`.
///
/// # Errors
/// [`ServiceError::Invalid`] for tvOS.
pub fn check_os(os: OsKey) -> Result<(), ServiceError> {
    if MINIMUM_OSES.contains(&os) {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "{} devices cannot be asked to update during enrollment: a minimum can be set for iOS, iPadOS, macOS and visionOS",
            os.label()
        )))
    }
}

/// The OS of a device from its MachineInfo `PRODUCT` (`iPhone16,1`, `iPad14,3`, `Mac15,6`,
/// `MacBookPro18,3`, `RealityDevice14,1`, `AppleTV14,1`), for devices whose ABM record does
/// not say.
pub fn os_of_product(product: &str) -> Option<OsKey> {
    let p = product.trim();
    let starts = |prefix: &str| p.starts_with(prefix);
    if starts("iPhone") || starts("iPod") {
        Some(OsKey::Ios)
    } else if starts("iPad") {
        Some(OsKey::Ipados)
    } else if starts("AppleTV") {
        Some(OsKey::Tvos)
    } else if starts("RealityDevice") {
        Some(OsKey::Visionos)
    } else if starts("Mac") || starts("iMac") || starts("VirtualMac") {
        Some(OsKey::Macos)
    } else {
        None
    }
}

/// The minimum that applies to a device of `os`: its ADE profile's own for that OS, else the
/// global one.
pub fn effective_minimum(
    os: OsKey,
    profile: Option<&ProfileMinimums>,
    global: &[(OsKey, OsMinimum)],
) -> Option<OsMinimum> {
    profile.and_then(|p| p.get(os)).or_else(|| {
        global
            .iter()
            .find(|(o, _)| *o == os)
            .map(|(_, m)| m.clone())
    })
}

/// An ADE profile's own minimums (GuardMDM's, never sent to Apple): `{"ios": "17.5", "macos":
/// "latest"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileMinimums {
    /// iPhone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ios: Option<String>,
    /// iPad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipados: Option<String>,
    /// Mac.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macos: Option<String>,
    /// Vision Pro.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visionos: Option<String>,
}

impl ProfileMinimums {
    /// The minimum for `os`, when set and valid.
    pub fn get(&self, os: OsKey) -> Option<OsMinimum> {
        let text = match os {
            OsKey::Ios => self.ios.as_deref(),
            OsKey::Ipados => self.ipados.as_deref(),
            OsKey::Macos => self.macos.as_deref(),
            OsKey::Visionos => self.visionos.as_deref(),
            OsKey::Tvos => None,
        }?;
        parse_minimum(text).ok()
    }

    /// Every value must be `latest` or a version.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] naming the OS.
    pub fn validate(&self) -> Result<(), ServiceError> {
        for (os, text) in [
            (OsKey::Ios, &self.ios),
            (OsKey::Ipados, &self.ipados),
            (OsKey::Macos, &self.macos),
            (OsKey::Visionos, &self.visionos),
        ] {
            if let Some(text) = text {
                parse_minimum(text).map_err(|e| {
                    ServiceError::Invalid(format!("minimum_os.{}: {e}", os.as_str()))
                })?;
            }
        }
        Ok(())
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.ios.is_none()
            && self.ipados.is_none()
            && self.macos.is_none()
            && self.visionos.is_none()
    }
}

/// Decides an enrollment request of a device running `info` (its OS `os`, from ABM's record or
/// its product) against `required`, the minimum resolved to a version (`None`: no minimum).
pub fn decide(info: &MachineInfo, os: Option<OsKey>, required: Option<&RequiredOs>) -> OsDecision {
    let Some(required) = required else {
        return OsDecision::Enroll;
    };
    let minimum = required.version.to_string();
    let cannot = |reason: String| OsDecision::CannotAsk {
        minimum: minimum.clone(),
        reason,
    };
    if os == Some(OsKey::Tvos) {
        return cannot("tvOS devices cannot be asked to update during enrollment".to_string());
    }
    let Some(current) = info
        .os_version
        .as_deref()
        .and_then(|v| OsVersion::parse(v).ok())
    else {
        return cannot(
            "the device does not report its OS version (it runs an OS older than iOS 17 or macOS 14)"
                .to_string(),
        );
    };
    if current >= required.version {
        return OsDecision::Enroll;
    }
    if !info.mdm_can_request_software_update {
        return cannot(format!(
            "the device runs {current} and does not offer MDM_CAN_REQUEST_SOFTWARE_UPDATE"
        ));
    }
    OsDecision::RequireUpdate(SoftwareUpdateRequired::new(
        required.version.as_str(),
        required.build.clone(),
    ))
}

#[cfg(test)]
mod tests;

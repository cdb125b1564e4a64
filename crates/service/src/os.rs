//! The five operating systems GuardMDM keeps a default ADE profile for, and how an ABM device
//! record maps onto them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// An OS with its own default profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OsKey {
    /// iPhone and iPod touch.
    Ios,
    /// iPad.
    Ipados,
    /// Mac.
    Macos,
    /// Apple TV.
    Tvos,
    /// Apple Vision Pro.
    Visionos,
}

impl OsKey {
    /// Every key, in display order.
    pub const ALL: [Self; 5] = [
        Self::Ios,
        Self::Ipados,
        Self::Macos,
        Self::Tvos,
        Self::Visionos,
    ];

    /// `ios`, `ipados`, `macos`, `tvos` or `visionos`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ios => "ios",
            Self::Ipados => "ipados",
            Self::Macos => "macos",
            Self::Tvos => "tvos",
            Self::Visionos => "visionos",
        }
    }

    /// The name an admin reads: `iOS`, `iPadOS`, `macOS`, `tvOS`, `visionOS`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ios => "iOS",
            Self::Ipados => "iPadOS",
            Self::Macos => "macOS",
            Self::Tvos => "tvOS",
            Self::Visionos => "visionOS",
        }
    }

    /// Parses a key as an admin types it: case-insensitive, accepting Apple's spellings too
    /// (`OSX`, `macOS`, `iPadOS`).
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] naming the accepted values.
    pub fn parse(text: &str) -> Result<Self, ServiceError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "ios" => Ok(Self::Ios),
            "ipados" => Ok(Self::Ipados),
            "macos" | "osx" | "mac" => Ok(Self::Macos),
            "tvos" => Ok(Self::Tvos),
            "visionos" => Ok(Self::Visionos),
            _ => Err(ServiceError::Invalid(format!(
                "unknown OS {text:?}: use ios, ipados, macos, tvos or visionos"
            ))),
        }
    }

    /// The OS of an ABM device record, from Apple's `os` and `device_family`. The family
    /// decides where it is known, so an iPad whose record still says `iOS` (before protocol
    /// version 7) counts as iPadOS. `None` when neither says.
    pub fn of_device(os: Option<&str>, family: Option<&str>) -> Option<Self> {
        let family = family.map(str::to_ascii_lowercase);
        match family.as_deref() {
            Some("iphone" | "ipod") => return Some(Self::Ios),
            Some("ipad") => return Some(Self::Ipados),
            Some("mac") => return Some(Self::Macos),
            Some("appletv") => return Some(Self::Tvos),
            Some("vision") => return Some(Self::Visionos),
            _ => {}
        }
        match os.map(str::to_ascii_lowercase).as_deref() {
            Some("ios") => Some(Self::Ios),
            Some("ipados") => Some(Self::Ipados),
            Some("osx" | "macos") => Some(Self::Macos),
            Some("tvos") => Some(Self::Tvos),
            Some("visionos") => Some(Self::Visionos),
            _ => None,
        }
    }

    /// The OS whose default an OS falls back to when it has none: iPadOS falls back to iOS
    /// (the product page's "iOS / iPadOS default profile").
    pub fn fallback(self) -> Option<Self> {
        match self {
            Self::Ipados => Some(Self::Ios),
            _ => None,
        }
    }
}

impl fmt::Display for OsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_admin_and_apple_spellings() {
        assert_eq!(OsKey::parse("iOS").unwrap(), OsKey::Ios);
        assert_eq!(OsKey::parse(" OSX ").unwrap(), OsKey::Macos);
        assert_eq!(OsKey::parse("macOS").unwrap(), OsKey::Macos);
        assert_eq!(OsKey::parse("VisionOS").unwrap(), OsKey::Visionos);
        let err = OsKey::parse("android").unwrap_err().to_string();
        assert!(err.contains("android") && err.contains("visionos"), "{err}");
        for key in OsKey::ALL {
            assert_eq!(OsKey::parse(key.as_str()).unwrap(), key);
        }
    }

    #[test]
    fn device_family_decides_before_os() {
        assert_eq!(
            OsKey::of_device(Some("iOS"), Some("iPad")),
            Some(OsKey::Ipados)
        );
        assert_eq!(
            OsKey::of_device(Some("iOS"), Some("iPhone")),
            Some(OsKey::Ios)
        );
        assert_eq!(OsKey::of_device(Some("OSX"), None), Some(OsKey::Macos));
        assert_eq!(
            OsKey::of_device(Some("tvOS"), Some("AppleTV")),
            Some(OsKey::Tvos)
        );
        assert_eq!(
            OsKey::of_device(None, Some("Vision")),
            Some(OsKey::Visionos)
        );
        assert_eq!(OsKey::of_device(Some("watchOS"), Some("Watch")), None);
        assert_eq!(OsKey::of_device(None, None), None);
    }

    #[test]
    fn only_ipados_falls_back_to_ios() {
        assert_eq!(OsKey::Ipados.fallback(), Some(OsKey::Ios));
        assert_eq!(OsKey::Ios.fallback(), None);
        assert_eq!(OsKey::Tvos.fallback(), None);
    }
}

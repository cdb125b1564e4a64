//! The catalogue of Setup Assistant panes an ADE profile can skip (`skip_setup_items`,
//! `docs/protocol.md` §5.2), with the platforms and versions each key applies to.
//!
//! Sources: the `docs/protocol.md` §5.2 table (Apple's `other/skipkeys.yaml` as of iOS 18.1 /
//! macOS 15.1) and a later revision of that same Apple file, which adds visionOS 26 and the
//! keys marked "(verify)" in §5.2. In Apple's file a key inherits every platform of the
//! payload (iOS 7.0, macOS 10.9, tvOS 10.2, visionOS 26.0) unless it overrides it, often
//! with "n/a"; the table below applies that rule, which is why, for example, `Siri` lists
//! visionOS 26.0. iOS stands for iPadOS too: Apple gives them one column.
//!
//! Apple ignores a key a device does not know, so an unknown key is a warning, never an
//! error (see [`crate::profile_spec::validate`]). [`SkipKey::confirmed`] is `false` for a key
//! taken only from third-party catalogues and not yet in Apple's published list.

use serde::Serialize;

use Platform::{Ios, Macos, Tvos, Visionos};

/// A platform a skip key can apply to. iPadOS is [`Platform::Ios`]: Apple lists the two
/// together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// iOS and iPadOS.
    Ios,
    /// macOS.
    Macos,
    /// tvOS.
    Tvos,
    /// visionOS.
    Visionos,
}

impl Platform {
    /// Reads a platform name, case-insensitively: `ios`, `ipados`, `macos`, `osx` (as ABM
    /// reports Macs), `tvos` or `visionos`. `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "ios" | "ipados" => Some(Self::Ios),
            "macos" | "osx" => Some(Self::Macos),
            "tvos" => Some(Self::Tvos),
            "visionos" => Some(Self::Visionos),
            _ => None,
        }
    }
}

/// Where and since when one key applies. Versions are Apple's strings (`"10.12.4"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Availability {
    /// The platform.
    pub platform: Platform,
    /// The version that introduced the key there; `None` when Apple gives no version.
    pub since: Option<&'static str>,
    /// The version that deprecated it, if any (the pane may no longer appear).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<&'static str>,
    /// The version that removed it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<&'static str>,
}

/// One `skip_setup_items` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SkipKey {
    /// The key exactly as Apple spells it (keys are case-sensitive).
    pub key: &'static str,
    /// The platforms it applies to. Empty when not yet known (only for unconfirmed keys).
    pub applies: &'static [Availability],
    /// `false` when the key comes only from third-party catalogues, not Apple's list.
    pub confirmed: bool,
    /// What the pane is, or a caveat for admins; `None` when the key says it all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

const fn on(platform: Platform, since: &'static str) -> Availability {
    Availability {
        platform,
        since: Some(since),
        deprecated: None,
        removed: None,
    }
}

const fn until(platform: Platform, since: &'static str, deprecated: &'static str) -> Availability {
    Availability {
        platform,
        since: Some(since),
        deprecated: Some(deprecated),
        removed: None,
    }
}

const fn key(key: &'static str, applies: &'static [Availability]) -> SkipKey {
    SkipKey {
        key,
        applies,
        confirmed: true,
        note: None,
    }
}

const fn noted(key: &'static str, applies: &'static [Availability], note: &'static str) -> SkipKey {
    SkipKey {
        key,
        applies,
        confirmed: true,
        note: Some(note),
    }
}

/// visionOS version every key inherits unless Apple's file says "n/a".
const VISION: &str = "26.0";

/// Every known key, in Apple's (case-insensitive alphabetical) order.
pub const SKIP_KEYS: &[SkipKey] = &[
    noted(
        "Accessibility",
        &[on(Macos, "11.0")],
        "shown when creating additional users; not always skippable",
    ),
    key("ActionButton", &[on(Ios, "17.0")]),
    noted(
        "AdditionalPrivacySettings",
        &[on(Macos, "26.0")],
        "Additional Privacy Settings",
    ),
    SkipKey {
        key: "AgeBasedSafetySettings",
        applies: &[],
        confirmed: false,
        note: Some("26.x, platforms not confirmed: not yet in Apple's published list"),
    },
    noted(
        "Android",
        &[on(Ios, "9.0")],
        "removes \"Move from Android\" when Restore is not skipped",
    ),
    noted(
        "Appearance",
        &[on(Ios, "13.0"), on(Macos, "10.14")],
        "Choose Your Look",
    ),
    noted(
        "AppleID",
        &[
            on(Ios, "7.0"),
            on(Macos, "10.9"),
            on(Tvos, "10.2"),
            on(Visionos, VISION),
        ],
        "Apple Account sign-in",
    ),
    key("AppStore", &[on(Ios, "14.3"), on(Macos, "11.1")]),
    noted(
        "Biometric",
        &[on(Ios, "8.1"), on(Macos, "10.12.4"), on(Visionos, VISION)],
        "Touch ID, Face ID, Optic ID",
    ),
    noted("CameraButton", &[on(Ios, "18.0")], "Camera Control"),
    noted(
        "DeviceToDeviceMigration",
        &[on(Ios, "12.4")],
        "Apple's text says iOS 13",
    ),
    noted(
        "Diagnostics",
        &[
            on(Ios, "7.0"),
            on(Macos, "10.9"),
            on(Tvos, "10.2"),
            on(Visionos, VISION),
        ],
        "App Analytics",
    ),
    noted(
        "DisplayTone",
        &[until(Ios, "9.3.2", "15.0"), until(Macos, "10.13.6", "12.0")],
        "True Tone",
    ),
    noted(
        "EnableLockdownMode",
        &[on(Ios, "17.1"), on(Macos, "14.0")],
        "Lockdown Mode, when an Apple Account is set up",
    ),
    key("FileVault", &[on(Macos, "10.10")]),
    key("HomeButtonSensitivity", &[until(Ios, "10.0", "15.0")]),
    noted(
        "iCloudDiagnostics",
        &[on(Macos, "10.12.4")],
        "iCloud Analytics",
    ),
    noted(
        "iCloudStorage",
        &[on(Macos, "10.13.4")],
        "iCloud Documents and Desktop",
    ),
    key("iMessageAndFaceTime", &[on(Ios, "12.0")]),
    noted(
        "Intelligence",
        &[on(Ios, "18.0"), on(Macos, "15.0"), on(Visionos, VISION)],
        "Apple Intelligence",
    ),
    noted(
        "Keyboard",
        &[on(Ios, "13.0")],
        "not always skippable: shown before the device fetches its profile",
    ),
    noted(
        "Location",
        &[
            on(Ios, "7.0"),
            on(Macos, "10.11"),
            on(Tvos, "10.2"),
            on(Visionos, VISION),
        ],
        "Location Services",
    ),
    key("MessagingActivationUsingPhoneNumber", &[on(Ios, "10.0")]),
    noted("Multitasking", &[on(Ios, "26.0")], "iPadOS"),
    key("OnBoarding", &[until(Ios, "11.0", "14.0")]),
    noted(
        "OSShowcase",
        &[on(Ios, "26.0")],
        "third-party catalogues also list macOS 26.1",
    ),
    key(
        "Passcode",
        &[on(Ios, "7.0"), on(Macos, "10.9"), on(Visionos, VISION)],
    ),
    noted(
        "Payment",
        &[on(Ios, "8.1"), on(Macos, "10.12.4"), on(Visionos, VISION)],
        "Apple Pay",
    ),
    key(
        "Privacy",
        &[
            on(Ios, "11.3"),
            on(Macos, "10.13.4"),
            on(Tvos, "11.3"),
            on(Visionos, VISION),
        ],
    ),
    noted(
        "Restore",
        &[on(Ios, "7.0"), on(Macos, "10.9")],
        "restore from backup",
    ),
    key("RestoreCompleted", &[on(Ios, "14.0")]),
    key("Safety", &[on(Ios, "16.0")]),
    key("SafetyAndHandling", &[on(Ios, "18.4")]),
    noted("ScreenSaver", &[on(Tvos, "10.2")], "aerial screen savers"),
    key(
        "ScreenTime",
        &[on(Ios, "12.0"), on(Macos, "10.15"), on(Visionos, VISION)],
    ),
    noted(
        "SIMSetup",
        &[on(Ios, "12.0")],
        "add a cellular plan; skipping it prevents automatic eSIM setup",
    ),
    key(
        "Siri",
        &[
            on(Ios, "7.0"),
            on(Macos, "10.12"),
            on(Tvos, "10.2"),
            on(Visionos, VISION),
        ],
    ),
    noted(
        "SoftwareUpdate",
        &[on(Ios, "12.0"), on(Macos, "15.4"), on(Visionos, VISION)],
        "mandatory software update pane",
    ),
    noted(
        "SpokenLanguage",
        &[on(Ios, "13.0")],
        "Dictation; not always skippable: shown before the device fetches its profile",
    ),
    noted(
        "TapToSetup",
        &[on(Tvos, "10.2")],
        "setting up Apple TV with an iPhone; not always skippable",
    ),
    noted(
        "TermsOfAddress",
        &[on(Ios, "16.0"), on(Macos, "13.0")],
        "not always skippable: shown before the device fetches its profile",
    ),
    noted("Tips", &[on(Visionos, VISION)], "visionOS only"),
    noted(
        "TOS",
        &[
            on(Ios, "7.0"),
            on(Macos, "10.9"),
            on(Tvos, "10.2"),
            on(Visionos, VISION),
        ],
        "Terms and Conditions",
    ),
    key("TVHomeScreenSync", &[on(Tvos, "11.0")]),
    key("TVProviderSignIn", &[on(Tvos, "11.0")]),
    noted("TVRoom", &[on(Tvos, "11.4")], "Where is this Apple TV?"),
    noted(
        "UnlockWithWatch",
        &[on(Macos, "15.0")],
        "Unlock with Apple Watch",
    ),
    noted(
        "UpdateCompleted",
        &[on(Ios, "14.0")],
        "third-party catalogues also list macOS 26.1",
    ),
    SkipKey {
        key: "Wallpaper",
        applies: &[Availability {
            platform: Macos,
            since: Some("14.1"),
            deprecated: None,
            removed: Some("26.0"),
        }],
        confirmed: true,
        note: None,
    },
    key("WatchMigration", &[on(Ios, "11.0")]),
    key("WebContentFiltering", &[on(Ios, "18.2")]),
    noted(
        "Welcome",
        &[on(Ios, "13.0"), on(Macos, "15.0"), on(Visionos, VISION)],
        "Get Started",
    ),
    key("Zoom", &[until(Ios, "8.3", "17.0"), on(Visionos, VISION)]),
];

/// The catalogue entry for `key` (exact, case-sensitive), or `None` for an unknown key.
pub fn lookup(key: &str) -> Option<&'static SkipKey> {
    SKIP_KEYS.iter().find(|k| k.key == key)
}

/// Where `key` applies, or `None` when the key is unknown. An empty slice means the key is
/// known but its platforms are not confirmed yet.
pub fn applies_to(key: &str) -> Option<&'static [Availability]> {
    lookup(key).map(|k| k.applies)
}

/// The keys that apply to `os` (see [`Platform::parse`] for the names accepted), in
/// catalogue order, deprecated and removed ones included (older devices still show those
/// panes). Empty for an unknown platform name.
pub fn skip_keys_for(os: &str) -> Vec<&'static str> {
    let Some(platform) = Platform::parse(os) else {
        return Vec::new();
    };
    SKIP_KEYS
        .iter()
        .filter(|k| k.applies.iter().any(|a| a.platform == platform))
        .map(|k| k.key)
        .collect()
}

/// The known key `input` was probably meant to be: the same key in other letter case, or
/// else the nearest one within a small edit distance (1 for short input, 2 from 5 characters
/// on, 3 from 10 on). `None` when nothing is close.
pub fn suggest(input: &str) -> Option<&'static str> {
    closest(input, SKIP_KEYS.iter().map(|k| k.key))
}

/// The candidate `input` was probably meant to be (see [`suggest`]). Shared with the
/// profile field-name check.
pub(crate) fn closest<'a>(
    input: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = input.trim().to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    let budget = match lower.chars().count() {
        0..=4 => 1,
        5..=9 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&lower, &candidate.to_ascii_lowercase());
        if distance <= budget && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_KEYS: &[&str] = &[
        "Accessibility",
        "ActionButton",
        "Android",
        "Appearance",
        "AppleID",
        "AppStore",
        "Biometric",
        "CameraButton",
        "DeviceToDeviceMigration",
        "Diagnostics",
        "DisplayTone",
        "EnableLockdownMode",
        "FileVault",
        "HomeButtonSensitivity",
        "iCloudDiagnostics",
        "iCloudStorage",
        "iMessageAndFaceTime",
        "Intelligence",
        "Keyboard",
        "Location",
        "MessagingActivationUsingPhoneNumber",
        "OnBoarding",
        "Passcode",
        "Payment",
        "Privacy",
        "Restore",
        "RestoreCompleted",
        "Safety",
        "ScreenSaver",
        "ScreenTime",
        "SIMSetup",
        "Siri",
        "SoftwareUpdate",
        "SpokenLanguage",
        "TapToSetup",
        "TermsOfAddress",
        "TOS",
        "TVHomeScreenSync",
        "TVProviderSignIn",
        "TVRoom",
        "UpdateCompleted",
        "Wallpaper",
        "WatchMigration",
        "Welcome",
        "Zoom",
        // the "(verify)" keys
        "SafetyAndHandling",
        "WebContentFiltering",
        "UnlockWithWatch",
        "Multitasking",
        "OSShowcase",
        "Tips",
        "AgeBasedSafetySettings",
        "AdditionalPrivacySettings",
    ];

    #[test]
    fn the_catalogue_has_every_documented_key_once() {
        for k in DOC_KEYS {
            assert!(lookup(k).is_some(), "{k} missing");
        }
        assert_eq!(
            SKIP_KEYS.len(),
            DOC_KEYS.len(),
            "no key beyond the documented ones"
        );
        let mut seen = std::collections::HashSet::new();
        for k in SKIP_KEYS {
            assert!(seen.insert(k.key), "{} twice", k.key);
            assert!(
                !k.applies.is_empty() || !k.confirmed,
                "{} has no platform",
                k.key
            );
        }
    }

    #[test]
    fn platforms_follow_the_table() {
        let ios = skip_keys_for("iOS");
        assert!(ios.contains(&"ActionButton") && ios.contains(&"Restore"));
        assert!(!ios.contains(&"FileVault") && !ios.contains(&"TVRoom"));
        assert_eq!(skip_keys_for("ipados"), ios, "iPadOS shares iOS's column");
        let mac = skip_keys_for("macOS");
        assert!(mac.contains(&"FileVault") && mac.contains(&"Accessibility"));
        assert!(!mac.contains(&"ActionButton"));
        assert_eq!(skip_keys_for("OSX"), mac, "ABM's name for macOS");
        let tv = skip_keys_for("tvos");
        assert!(tv.contains(&"TVRoom") && tv.contains(&"ScreenSaver") && tv.contains(&"Location"));
        assert!(!tv.contains(&"Passcode"));
        let vision = skip_keys_for("visionOS");
        assert!(vision.contains(&"Tips") && vision.contains(&"TOS"));
        assert!(!vision.contains(&"Restore") && !vision.contains(&"Keyboard"));
        assert!(skip_keys_for("watchOS").is_empty());
        assert!(
            !ios.contains(&"AgeBasedSafetySettings"),
            "an unconfirmed key without platforms is not offered"
        );
    }

    #[test]
    fn availability_carries_versions() {
        let tone = applies_to("DisplayTone").unwrap();
        assert_eq!(tone[0].platform, Ios);
        assert_eq!(tone[0].since, Some("9.3.2"));
        assert_eq!(tone[0].deprecated, Some("15.0"));
        assert_eq!(applies_to("Wallpaper").unwrap()[0].removed, Some("26.0"));
        assert_eq!(applies_to("SoftwareUpdate").unwrap()[1].since, Some("15.4"));
        assert_eq!(applies_to("AgeBasedSafetySettings"), Some(&[][..]));
        assert_eq!(applies_to("appleid"), None, "keys are case-sensitive");
        assert_eq!(applies_to("Nope"), None);
    }

    #[test]
    fn suggestions_for_case_and_typos() {
        assert_eq!(suggest("appleid"), Some("AppleID"));
        assert_eq!(suggest("TOS "), Some("TOS"));
        assert_eq!(suggest("Diagnostic"), Some("Diagnostics"));
        assert_eq!(suggest("Biometrics"), Some("Biometric"));
        assert_eq!(suggest("FileVualt"), Some("FileVault"));
        assert_eq!(suggest("ScreenSavr"), Some("ScreenSaver"));
        assert_eq!(suggest("Bananas"), None);
        assert_eq!(suggest(""), None);
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}

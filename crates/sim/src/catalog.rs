//! The simulated product line: every device family and OS Apple's DEP API names
//! (`docs/protocol.md` §4: `device_family` iPhone, iPad, Mac, AppleTV, Vision; `os` iOS, iPadOS,
//! OSX, tvOS, visionOS), marketing model names, colours, capacities, and serial numbers
//! shaped like Apple's (ten random characters since 2021, twelve before).

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// A device family, spelled on the wire as Apple's `device_family` (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceFamily {
    /// iPhone, running iOS.
    #[serde(rename = "iPhone")]
    IPhone,
    /// iPad, running iPadOS (`os` is `iOS` before protocol version 7, §2.3).
    #[serde(rename = "iPad")]
    IPad,
    /// Mac, running macOS (`os` is `OSX` on the wire).
    #[serde(rename = "Mac")]
    Mac,
    /// Apple TV, running tvOS.
    #[serde(rename = "AppleTV")]
    AppleTv,
    /// Apple Vision Pro, running visionOS.
    #[serde(rename = "Vision")]
    Vision,
}

impl DeviceFamily {
    /// Every family, in a fixed order.
    pub const ALL: [Self; 5] = [
        Self::IPhone,
        Self::IPad,
        Self::Mac,
        Self::AppleTv,
        Self::Vision,
    ];

    /// Apple's `device_family` value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IPhone => "iPhone",
            Self::IPad => "iPad",
            Self::Mac => "Mac",
            Self::AppleTv => "AppleTV",
            Self::Vision => "Vision",
        }
    }

    /// Apple's `os` value at protocol `version` (§2.3: `iPadOS` only from version 7).
    #[must_use]
    pub fn os(self, version: u32) -> &'static str {
        match self {
            Self::IPhone => "iOS",
            Self::IPad if version >= 7 => "iPadOS",
            Self::IPad => "iOS",
            Self::Mac => "OSX",
            Self::AppleTv => "tvOS",
            Self::Vision => "visionOS",
        }
    }

    /// Parses a family name, case-insensitively, also accepting the OS names
    /// (`ios`, `ipados`, `macos`, `osx`, `tvos`, `visionos`) and `appletv`/`apple-tv`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text
            .trim()
            .to_ascii_lowercase()
            .replace([' ', '-', '_'], "")
            .as_str()
        {
            "iphone" | "ios" => Some(Self::IPhone),
            "ipad" | "ipados" => Some(Self::IPad),
            "mac" | "macos" | "osx" => Some(Self::Mac),
            "appletv" | "tv" | "tvos" => Some(Self::AppleTv),
            "vision" | "visionpro" | "applevisionpro" | "visionos" => Some(Self::Vision),
            _ => None,
        }
    }

    /// Position in [`Self::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::IPhone => 0,
            Self::IPad => 1,
            Self::Mac => 2,
            Self::AppleTv => 3,
            Self::Vision => 4,
        }
    }
}

/// One product model.
#[derive(Debug)]
pub struct Model {
    /// Family and OS.
    pub family: DeviceFamily,
    /// Marketing model name (`model`, §4).
    pub name: &'static str,
    /// Colours sold.
    pub colors: &'static [&'static str],
    /// Storage capacities sold.
    pub capacities: &'static [&'static str],
    /// Whether the model has a cellular radio (IMEI and EID at protocol version 10).
    pub cellular: bool,
    /// Whether its serial numbers use the pre-2021 twelve-character format.
    pub legacy_serial: bool,
}

const TITANIUM: &[&str] = &[
    "Black Titanium",
    "White Titanium",
    "Natural Titanium",
    "Desert Titanium",
];
const PHONE_CAP: &[&str] = &["128GB", "256GB", "512GB"];
const TABLET_CAP: &[&str] = &["64GB", "128GB", "256GB", "512GB"];
const MAC_CAP: &[&str] = &["256GB", "512GB", "1TB", "2TB"];

/// Every simulated model. The index into this table is what a device stores.
#[rustfmt::skip]
pub const MODELS: &[Model] = &[
    m(DeviceFamily::IPhone, "iPhone 16 Pro", TITANIUM, PHONE_CAP, true, false),
    m(DeviceFamily::IPhone, "iPhone 16", &["Black", "White", "Pink", "Teal", "Ultramarine"], PHONE_CAP, true, false),
    m(DeviceFamily::IPhone, "iPhone 15", &["Black", "Blue", "Green", "Yellow", "Pink"], PHONE_CAP, true, false),
    m(DeviceFamily::IPhone, "iPhone SE (3rd generation)", &["Midnight", "Starlight", "(PRODUCT)RED"], &["64GB", "128GB"], true, false),
    m(DeviceFamily::IPhone, "iPhone 11", &["Black", "White", "Purple"], &["64GB", "128GB"], true, true),
    m(DeviceFamily::IPad, "iPad Pro 13-inch (M4)", &["Space Black", "Silver"], &["256GB", "512GB", "1TB"], true, false),
    m(DeviceFamily::IPad, "iPad Air 11-inch (M2)", &["Space Gray", "Blue", "Purple", "Starlight"], TABLET_CAP, false, false),
    m(DeviceFamily::IPad, "iPad (10th generation)", &["Blue", "Pink", "Yellow", "Silver"], TABLET_CAP, false, false),
    m(DeviceFamily::IPad, "iPad mini (A17 Pro)", &["Space Gray", "Blue", "Purple", "Starlight"], TABLET_CAP, true, false),
    m(DeviceFamily::IPad, "iPad (9th generation)", &["Space Gray", "Silver"], &["64GB", "256GB"], false, true),
    m(DeviceFamily::Mac, "MacBook Air (13-inch, M3, 2024)", &["Midnight", "Starlight", "Space Gray", "Silver"], MAC_CAP, false, false),
    m(DeviceFamily::Mac, "MacBook Pro (14-inch, M4, 2024)", &["Space Black", "Silver"], MAC_CAP, false, false),
    m(DeviceFamily::Mac, "Mac mini (2024)", &["Silver"], MAC_CAP, false, false),
    m(DeviceFamily::Mac, "iMac (24-inch, 2024)", &["Blue", "Purple", "Pink", "Orange", "Yellow", "Green", "Silver"], MAC_CAP, false, false),
    m(DeviceFamily::Mac, "MacBook Pro (13-inch, 2020, Four Thunderbolt 3 ports)", &["Space Gray", "Silver"], MAC_CAP, false, true),
    m(DeviceFamily::AppleTv, "Apple TV 4K (3rd generation)", &["Black"], &["64GB", "128GB"], false, false),
    m(DeviceFamily::AppleTv, "Apple TV HD", &["Black"], &["32GB"], false, true),
    m(DeviceFamily::Vision, "Apple Vision Pro", &["Silver"], &["256GB", "512GB", "1TB"], false, false),
];

#[allow(clippy::fn_params_excessive_bools)] // a table constructor; the names are at the call sites' columns
const fn m(
    family: DeviceFamily,
    name: &'static str,
    colors: &'static [&'static str],
    capacities: &'static [&'static str],
    cellular: bool,
    legacy_serial: bool,
) -> Model {
    Model {
        family,
        name,
        colors,
        capacities,
        cellular,
        legacy_serial,
    }
}

/// Serial characters: digits and consonants, without the look-alikes `O` and `I` (Apple's
/// randomised serial numbers avoid vowels).
const SERIAL_ALPHABET: &[u8] = b"0123456789BCDFGHJKLMNPQRSTVWXYZ";
/// Manufacturing-plant prefixes of old-style serials.
const LEGACY_PREFIXES: &[&[u8; 3]] = &[b"C02", b"F17", b"DMP", b"DLX", b"FVF", b"G6T", b"C39"];

/// Families in a realistic fleet mix: iPhone 40 %, iPad 20 %, Mac 30 %, Apple TV 5 %,
/// Vision 5 %.
#[must_use]
pub fn pick_family(rng: &mut SplitMix64) -> DeviceFamily {
    match rng.below(100) {
        0..40 => DeviceFamily::IPhone,
        40..60 => DeviceFamily::IPad,
        60..90 => DeviceFamily::Mac,
        90..95 => DeviceFamily::AppleTv,
        _ => DeviceFamily::Vision,
    }
}

/// A random model of `family`: its index in [`MODELS`], a colour and a capacity index.
#[must_use]
pub fn pick_model(rng: &mut SplitMix64, family: DeviceFamily) -> (u8, u8, u8) {
    let candidates: Vec<usize> = (0..MODELS.len())
        .filter(|&i| MODELS.get(i).is_some_and(|m| m.family == family))
        .collect();
    let index = candidates
        .get(rng.index(candidates.len()))
        .copied()
        .unwrap_or(0);
    let model = model(index_u8(index));
    let color = rng.index(model.colors.len());
    let capacity = rng.index(model.capacities.len());
    (index_u8(index), index_u8(color), index_u8(capacity))
}

fn index_u8(i: usize) -> u8 {
    u8::try_from(i).unwrap_or(0)
}

/// The model at `index` (the first model for an out-of-range index).
#[must_use]
pub fn model(index: u8) -> &'static Model {
    MODELS.get(usize::from(index)).unwrap_or(&MODELS[0])
}

/// A fresh serial number for `model`: ten characters for current models, twelve (a plant
/// prefix and nine characters) for legacy ones. Uniqueness is the caller's business.
#[must_use]
pub fn generate_serial(rng: &mut SplitMix64, model: &Model) -> String {
    let mut out = String::with_capacity(12);
    let random_len = if model.legacy_serial {
        let prefix = LEGACY_PREFIXES[rng.index(LEGACY_PREFIXES.len())];
        out.push_str(&String::from_utf8_lossy(prefix));
        9
    } else {
        10
    };
    for _ in 0..random_len {
        let c = SERIAL_ALPHABET[rng.index(SERIAL_ALPHABET.len())];
        out.push(char::from(c));
    }
    out
}

/// Apple's `description` for a device: upper-case model, colour and capacity, as on an order
/// line (`IPHONE 16 PRO BLACK TITANIUM 256GB-USA`).
#[must_use]
pub fn description(model: &Model, color: u8, capacity: u8) -> String {
    format!(
        "{} {} {}-USA",
        model.name.to_ascii_uppercase(),
        color_name(model, color).to_ascii_uppercase(),
        model
            .capacities
            .get(usize::from(capacity))
            .copied()
            .unwrap_or_default()
    )
}

/// The colour name at `index` for `model`.
#[must_use]
pub fn color_name(model: &Model, index: u8) -> &'static str {
    model
        .colors
        .get(usize::from(index))
        .copied()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_models() {
        for family in DeviceFamily::ALL {
            assert!(MODELS.iter().any(|m| m.family == family), "{family:?}");
            assert_eq!(DeviceFamily::parse(family.as_str()), Some(family));
        }
        assert_eq!(DeviceFamily::parse("macOS"), Some(DeviceFamily::Mac));
        assert_eq!(DeviceFamily::parse("watch"), None);
    }

    #[test]
    fn ipad_os_depends_on_the_protocol_version() {
        assert_eq!(DeviceFamily::IPad.os(6), "iOS");
        assert_eq!(DeviceFamily::IPad.os(7), "iPadOS");
        assert_eq!(DeviceFamily::Mac.os(10), "OSX");
    }

    #[test]
    fn serials_look_like_apples() {
        let mut rng = SplitMix64::new(1);
        for model in MODELS {
            let s = generate_serial(&mut rng, model);
            assert_eq!(s.len(), if model.legacy_serial { 12 } else { 10 }, "{s}");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            );
            assert!(!s.contains(['A', 'E', 'I', 'O', 'U']) || model.legacy_serial);
        }
    }

    #[test]
    fn descriptions_name_model_colour_and_capacity() {
        let model = &MODELS[0];
        assert_eq!(
            description(model, 0, 1),
            "IPHONE 16 PRO BLACK TITANIUM 256GB-USA"
        );
    }
}

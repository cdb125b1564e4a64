//! What a simulated device is: product identifier, UDID, OS version and build, model number,
//! derived from its catalogue model and serial number so that the same serial always gives
//! the same device.

use guardmdm_crypto::digest::sha256;

use crate::catalog::{DeviceFamily, Model};

/// The hardware and software facts a device reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hardware {
    /// Product identifier (`PRODUCT`, `ProductName`), e.g. `iPhone17,1`.
    pub(crate) product: &'static str,
    /// The kind of device as `ModelName` says it: `iPhone`, `iPad`, `MacBook Air`, …
    pub(crate) model_name: &'static str,
    /// `Model`: an order number such as `MYW43LL/A` (iOS, iPadOS, tvOS, visionOS); the
    /// product identifier on a Mac.
    pub(crate) model_number: String,
    /// The device's UDID.
    pub(crate) udid: String,
    /// `OSVersion`.
    pub(crate) os_version: &'static str,
    /// `BuildVersion`.
    pub(crate) build_version: &'static str,
}

/// Per catalogue model: product identifier, `ModelName` and, for devices with an Apple
/// A-series or M-series SoC from 2018 on, the chip ID that starts their UDID.
fn product(model: &Model) -> (&'static str, &'static str, Option<u32>) {
    match model.name {
        "iPhone 16 Pro" => ("iPhone17,1", "iPhone", Some(0x8140)),
        "iPhone 16" => ("iPhone17,3", "iPhone", Some(0x8140)),
        "iPhone 15" => ("iPhone15,4", "iPhone", Some(0x8120)),
        "iPhone SE (3rd generation)" => ("iPhone14,6", "iPhone", Some(0x8110)),
        "iPhone 11" => ("iPhone12,1", "iPhone", Some(0x8030)),
        "iPad Pro 13-inch (M4)" => ("iPad16,6", "iPad", Some(0x8132)),
        "iPad Air 11-inch (M2)" => ("iPad14,8", "iPad", Some(0x8112)),
        "iPad (10th generation)" => ("iPad13,18", "iPad", Some(0x8101)),
        "iPad mini (A17 Pro)" => ("iPad16,2", "iPad", Some(0x8130)),
        "iPad (9th generation)" => ("iPad12,1", "iPad", Some(0x8030)),
        "MacBook Air (13-inch, M3, 2024)" => ("Mac15,12", "MacBook Air", None),
        "MacBook Pro (14-inch, M4, 2024)" => ("Mac16,1", "MacBook Pro", None),
        "Mac mini (2024)" => ("Mac16,10", "Mac mini", None),
        "iMac (24-inch, 2024)" => ("Mac16,3", "iMac", None),
        "MacBook Pro (13-inch, 2020, Four Thunderbolt 3 ports)" => {
            ("MacBookPro16,2", "MacBook Pro", None)
        }
        "Apple TV 4K (3rd generation)" => ("AppleTV14,1", "Apple TV", Some(0x8110)),
        "Apple TV HD" => ("AppleTV5,3", "Apple TV", None),
        "Apple Vision Pro" => ("RealityDevice14,1", "Apple Vision Pro", Some(0x8112)),
        _ => match model.family {
            DeviceFamily::IPhone => ("iPhone17,3", "iPhone", Some(0x8140)),
            DeviceFamily::IPad => ("iPad13,18", "iPad", Some(0x8101)),
            DeviceFamily::Mac => ("Mac15,12", "MacBook Air", None),
            DeviceFamily::AppleTv => ("AppleTV14,1", "Apple TV", Some(0x8110)),
            DeviceFamily::Vision => ("RealityDevice14,1", "Apple Vision Pro", Some(0x8112)),
        },
    }
}

/// The OS release every simulated device of a family runs: `(OSVersion, BuildVersion)`.
pub(crate) fn os_release(family: DeviceFamily) -> (&'static str, &'static str) {
    match family {
        DeviceFamily::IPhone | DeviceFamily::IPad => ("18.5", "22F76"),
        DeviceFamily::Mac => ("15.5", "24F74"),
        DeviceFamily::AppleTv => ("18.5", "22L572"),
        DeviceFamily::Vision => ("2.5", "22O473"),
    }
}

/// The facts for a device of `model` with this `serial`.
pub(crate) fn describe(model: &Model, serial: &str) -> Hardware {
    let (product, model_name, chip) = product(model);
    let (os_version, build_version) = os_release(model.family);
    let seed = sha256(format!("guardmdm-sim device {serial}").as_bytes());
    let udid = udid(model.family, chip, &seed);
    let model_number = if model.family == DeviceFamily::Mac {
        product.to_string()
    } else {
        order_number(&seed)
    };
    Hardware {
        product,
        model_name,
        model_number,
        udid,
        os_version,
        build_version,
    }
}

/// Apple's UDID formats: a Mac's is its hardware UUID; devices with a 2018-or-later SoC have
/// `<8 hex: chip ID>-<16 hex: ECID>` (25 characters); older ones 40 hex digits.
fn udid(family: DeviceFamily, chip: Option<u32>, seed: &[u8]) -> String {
    let mut bytes = [0u8; 32];
    for (b, s) in bytes.iter_mut().zip(seed) {
        *b = *s;
    }
    if family == DeviceFamily::Mac {
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&bytes[..16]);
        return uuid::Builder::from_random_bytes(uuid)
            .into_uuid()
            .hyphenated()
            .to_string()
            .to_ascii_uppercase();
    }
    match chip {
        Some(chip) => {
            let mut ecid = [0u8; 8];
            ecid.copy_from_slice(&bytes[..8]);
            // ECIDs are 52-bit numbers.
            let ecid = u64::from_be_bytes(ecid) & 0x000F_FFFF_FFFF_FFFF;
            format!("{chip:08X}-{ecid:016X}")
        }
        None => bytes[..20].iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// A part number such as `MYW43LL/A`.
fn order_number(seed: &[u8]) -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let mut out = String::from("M");
    for b in seed.iter().skip(20).take(4) {
        out.push(char::from(CHARS[usize::from(*b) % CHARS.len()]));
    }
    out.push_str("LL/A");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MODELS;

    #[test]
    fn udids_have_apples_shapes() {
        for model in MODELS {
            let hw = describe(model, "F2LXK3ABHG7F");
            match (model.family, product(model).2) {
                (DeviceFamily::Mac, _) => {
                    assert_eq!(hw.udid.len(), 36, "{}", hw.udid);
                    assert!(uuid::Uuid::parse_str(&hw.udid).is_ok());
                    assert_eq!(hw.model_number, hw.product);
                }
                (_, Some(chip)) => {
                    assert_eq!(hw.udid.len(), 25, "{}", hw.udid);
                    assert!(hw.udid.starts_with(&format!("{chip:08X}-")));
                    assert!(hw.model_number.ends_with("LL/A"));
                }
                (_, None) => assert_eq!(hw.udid.len(), 40, "{}", hw.udid),
            }
            assert_ne!(hw.product, "");
        }
    }

    #[test]
    fn the_same_serial_is_the_same_device() {
        let model = &MODELS[0];
        assert_eq!(describe(model, "A"), describe(model, "A"));
        assert_ne!(describe(model, "A").udid, describe(model, "B").udid);
    }
}

//! Typed requests and responses of the DEP API (`docs/protocol.md` §3–§5).
//!
//! Parsing is forgiving where Apple may evolve: unknown fields are ignored, enum values
//! GuardMDM does not know yet are kept verbatim (`Other`), and a timestamp in an unexpected
//! format becomes `None` with a warning instead of failing the whole page.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version of GuardMDM does not know, kept as Apple sent it.
            Other(String),
        }

        impl $name {
            /// Apple's spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $(if s.eq_ignore_ascii_case($text) { return Self::$variant; })+
                Self::Other(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> Self {
                v.as_str().to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// `device_family` (§4).
    DeviceFamily {
        /// iPad.
        IPad => "iPad",
        /// iPhone.
        IPhone => "iPhone",
        /// iPod touch.
        IPod => "iPod",
        /// Mac.
        Mac => "Mac",
        /// Apple TV.
        AppleTv => "AppleTV",
        /// Apple Vision Pro.
        Vision => "Vision",
    }
);

string_enum!(
    /// `os` (§4).
    Os {
        /// iOS.
        Ios => "iOS",
        /// iPadOS (protocol version 7 and later).
        IpadOs => "iPadOS",
        /// macOS, spelled `OSX` by Apple.
        MacOs => "OSX",
        /// tvOS.
        TvOs => "tvOS",
        /// visionOS.
        VisionOs => "visionOS",
    }
);

string_enum!(
    /// `profile_status` (§4).
    ProfileStatus {
        /// No profile assigned.
        Empty => "empty",
        /// A profile is assigned; the device has not fetched it yet.
        Assigned => "assigned",
        /// The device downloaded the profile during Setup Assistant.
        Pushed => "pushed",
        /// The profile was removed.
        Removed => "removed",
    }
);

string_enum!(
    /// `op_type` of a sync record (§3.3).
    OpType {
        /// Assigned to this MDM server.
        Added => "added",
        /// Changed (including moves between MDM servers, §9.2).
        Modified => "modified",
        /// No longer assigned to this MDM server.
        Deleted => "deleted",
    }
);

string_enum!(
    /// A per-serial result of assign, remove, define-with-devices and disown (§3.6–§3.10).
    DeviceStatus {
        /// Done.
        Success => "SUCCESS",
        /// The serial is not assigned to this MDM server or not visible to it.
        NotAccessible => "NOT_ACCESSIBLE",
        /// Failed; Apple's guidance is a 24-hour cooldown before retrying (§9.5).
        Failed => "FAILED",
        /// Throttled; retry after `retry_after_seconds` (protocol version 9/10).
        Throttled => "THROTTLED",
    }
);

/// Deserializes an optional ISO 8601 / RFC 3339 time; an unparsable value becomes `None`.
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.and_then(|s| match OffsetDateTime::parse(&s, &Rfc3339) {
        Ok(t) => Some(t),
        Err(_) if s.is_empty() => None,
        Err(_) => {
            tracing::warn!(value = %s, "unparsable timestamp from the DEP API ignored");
            None
        }
    }))
}

/// A device record (§4).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Device {
    /// Serial number: the key.
    pub serial_number: String,
    /// Marketing model name.
    #[serde(default)]
    pub model: String,
    /// Product description.
    #[serde(default)]
    pub description: Option<String>,
    /// Color.
    #[serde(default)]
    pub color: Option<String>,
    /// Asset tag.
    #[serde(default)]
    pub asset_tag: Option<String>,
    /// Device family.
    #[serde(default)]
    pub device_family: Option<DeviceFamily>,
    /// Operating system.
    #[serde(default)]
    pub os: Option<Os>,
    /// Who assigned the device to this MDM server.
    #[serde(default)]
    pub device_assigned_by: Option<String>,
    /// When it was assigned to this MDM server.
    #[serde(
        default,
        deserialize_with = "lenient_time",
        serialize_with = "ser_time"
    )]
    pub device_assigned_date: Option<OffsetDateTime>,
    /// Profile status.
    #[serde(default)]
    pub profile_status: Option<ProfileStatus>,
    /// The assigned profile.
    #[serde(default)]
    pub profile_uuid: Option<String>,
    /// When the profile was assigned.
    #[serde(
        default,
        deserialize_with = "lenient_time",
        serialize_with = "ser_time"
    )]
    pub profile_assign_time: Option<OffsetDateTime>,
    /// When the device fetched the profile.
    #[serde(
        default,
        deserialize_with = "lenient_time",
        serialize_with = "ser_time"
    )]
    pub profile_push_time: Option<OffsetDateTime>,
    /// Sync only: what happened.
    #[serde(default)]
    pub op_type: Option<OpType>,
    /// Sync only: when it happened.
    #[serde(
        default,
        deserialize_with = "lenient_time",
        serialize_with = "ser_time"
    )]
    pub op_date: Option<OffsetDateTime>,
    /// Details only: Apple's per-serial status (undocumented).
    #[serde(default)]
    pub response_status: Option<DeviceStatus>,
    /// Version 10: this device replaced another.
    #[serde(default)]
    pub is_replacement_device: Option<bool>,
    /// Version 10, sync `deleted` only: released because a replacement took its place.
    #[serde(default)]
    pub released_by_replacement: Option<bool>,
}

fn ser_time<S: serde::Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t.map(|t| t.format(&Rfc3339)) {
        Some(Ok(text)) => s.serialize_some(&text),
        Some(Err(e)) => Err(serde::ser::Error::custom(e)),
        None => s.serialize_none(),
    }
}

/// `GET /account` (§3.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AccountDetail {
    /// The MDM server's name in ABM.
    #[serde(default)]
    pub server_name: String,
    /// The MDM server's stable identifier.
    #[serde(default)]
    pub server_uuid: String,
    /// The Apple Account that generated the token in use.
    #[serde(default)]
    pub admin_id: Option<String>,
    /// Organization name.
    #[serde(default)]
    pub org_name: Option<String>,
    /// Organization email.
    #[serde(default)]
    pub org_email: Option<String>,
    /// Organization phone.
    #[serde(default)]
    pub org_phone: Option<String>,
    /// Organization address.
    #[serde(default)]
    pub org_address: Option<String>,
    /// Organization id (version 3).
    #[serde(default)]
    pub org_id: Option<String>,
    /// `org` or `edu` (version 3).
    #[serde(default)]
    pub org_type: Option<String>,
}

/// `POST /server/devices` and `POST /devices/sync` request (§3.2, §3.3).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CursorRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cursor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) limit: Option<u32>,
}

/// One page of fetch or sync results (§3.2).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DevicePage {
    /// Where to continue from; persist it after the page's devices are stored.
    #[serde(default)]
    pub cursor: Option<String>,
    /// The devices, in operation order.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Progress marker.
    #[serde(default, deserialize_with = "lenient_time")]
    pub fetched_until: Option<OffsetDateTime>,
    /// Whether to ask again at once with `cursor`.
    #[serde(default)]
    pub more_to_follow: bool,
}

/// `POST /devices` response (§3.5).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeviceDetails {
    /// By serial number.
    #[serde(default)]
    pub devices: BTreeMap<String, Device>,
}

/// An ADE profile ("cloud configuration", §5.1). Every boolean is sent explicitly when set
/// (`Some(false)` is sent as `false`, §9.12); `None` fields are omitted, never sent empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Profile {
    /// Name (≤ 125 characters).
    #[serde(default)]
    pub profile_name: String,
    /// The enrollment URL the device posts its MachineInfo to.
    #[serde(default)]
    pub url: String,
    /// Web authentication before enrollment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_web_url: Option<String>,
    /// Allow pairing with a computer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_pairing: Option<bool>,
    /// Supervised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_supervised: Option<bool>,
    /// Shared iPad.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_multi_user: Option<bool>,
    /// Enrollment cannot be skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mandatory: Option<bool>,
    /// Setup Assistant waits for `DeviceConfigured`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub await_device_configured: Option<bool>,
    /// The user may remove the MDM profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mdm_removable: Option<bool>,
    /// tvOS/macOS: advance through Setup Assistant automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_advance_setup: Option<bool>,
    /// Support phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_phone_number: Option<String>,
    /// Support email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_email_address: Option<String>,
    /// Org services identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_magic: Option<String>,
    /// Department shown during setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Language (ISO 639).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Region (ISO 3166-1 alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Trust anchors for the enrollment URLs (base64 DER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_certs: Option<Vec<String>>,
    /// Hosts allowed to pair (base64 DER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervising_host_certs: Option<Vec<String>>,
    /// Setup Assistant panes to skip (§5.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_setup_items: Option<Vec<String>>,
    /// Serials to assign in the same call (define only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
    /// Returned by get-profile only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_uuid: Option<String>,
}

/// `POST /profile` response (§3.6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DefineProfileResponse {
    /// The new profile's UUID (a new one on every define).
    pub profile_uuid: String,
    /// Per-serial results for `devices` in the request.
    #[serde(default)]
    pub devices: BTreeMap<String, DeviceStatus>,
}

/// Assign-profile response (§3.8).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AssignProfileResponse {
    /// Echo of the profile UUID.
    #[serde(default)]
    pub profile_uuid: Option<String>,
    /// Per-serial results.
    #[serde(default)]
    pub devices: BTreeMap<String, DeviceStatus>,
    /// When some serials are `THROTTLED`: wait at least this long (version 10).
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
}

/// Per-serial results of remove-profile and disown (§3.9, §3.10).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeviceStatusResponse {
    /// Per-serial results.
    #[serde(default)]
    pub devices: BTreeMap<String, DeviceStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_sync_page_with_unknown_values_and_fields() {
        let json = r#"{
          "cursor": "MTY1NzI2ODE5Ny0x", "more_to_follow": true,
          "fetched_until": "2026-11-27T10:00:00Z",
          "devices": [
            {"serial_number": "C02XK1ABJGH5", "model": "MacBook Pro", "device_family": "Mac",
             "os": "OSX", "profile_status": "pushed", "op_type": "Added",
             "op_date": "2026-11-26T09:00:00Z", "device_assigned_date": "2026-11-26T09:00:00Z",
             "brand_new_field": {"x": 1}},
            {"serial_number": "DMQX2LL0AB", "model": "iPad", "device_family": "iPadNext",
             "os": "iPadOS", "op_type": "deleted", "op_date": "not a date"}
          ]
        }"#;
        let page: DevicePage = serde_json::from_str(json).unwrap();
        assert!(page.more_to_follow);
        assert_eq!(page.devices.len(), 2);
        let mac = &page.devices[0];
        assert_eq!(mac.device_family, Some(DeviceFamily::Mac));
        assert_eq!(mac.os, Some(Os::MacOs));
        assert_eq!(mac.op_type, Some(OpType::Added), "case-insensitive");
        assert_eq!(mac.profile_status, Some(ProfileStatus::Pushed));
        let ipad = &page.devices[1];
        assert_eq!(
            ipad.device_family,
            Some(DeviceFamily::Other("iPadNext".into()))
        );
        assert_eq!(
            ipad.op_date, None,
            "an unparsable date is dropped, not fatal"
        );
    }

    #[test]
    fn profiles_send_explicit_false_and_omit_unset_fields() {
        let profile = Profile {
            profile_name: "Staff".into(),
            url: "https://mdm.example.com/mdm/enroll".into(),
            allow_pairing: Some(false),
            is_mdm_removable: Some(false),
            is_supervised: Some(true),
            ..Profile::default()
        };
        let json = serde_json::to_value(&profile).unwrap();
        assert_eq!(json["allow_pairing"], false);
        assert_eq!(json["is_mdm_removable"], false);
        assert!(json.get("department").is_none());
        assert!(json.get("devices").is_none());
    }

    #[test]
    fn assign_results_keep_unknown_statuses() {
        let json = r#"{"profile_uuid":"abc","devices":{"A":"SUCCESS","B":"THROTTLED","C":"NEW_THING"},"retry_after_seconds":60}"#;
        let r: AssignProfileResponse = serde_json::from_str(json).unwrap();
        assert_eq!(r.devices["A"], DeviceStatus::Success);
        assert_eq!(r.devices["B"], DeviceStatus::Throttled);
        assert_eq!(r.devices["C"], DeviceStatus::Other("NEW_THING".into()));
        assert_eq!(r.retry_after_seconds, Some(60));
    }
}

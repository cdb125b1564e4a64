//! GuardMDM's ADE profile specification: what an admin writes in a JSON or YAML file
//! (`guardmdm profiles create --file F`) or sends over REST, and how it becomes the
//! [`guardmdm_abm::Profile`] Apple receives (`docs/protocol.md` §3.6, §5.1).
//!
//! A spec names only what the admin cares about; [`validate`] fills in GuardMDM's defaults
//! and always sends every boolean explicitly, because Apple's own defaults for an omitted key
//! are not ours (§9.12).
//!
//! # Defaults
//!
//! | Key | GuardMDM default | Apple's default if omitted |
//! |---|---|---|
//! | `profile_name` | the spec's `name` | (required) |
//! | `url` | the server's ADE enrollment endpoint | (required) |
//! | `is_supervised` | `true` | `false` |
//! | `is_mandatory` | `true` | `false` |
//! | `is_mdm_removable` | `false` ("Lock MDM") | `true` |
//! | `allow_pairing` | `true` | `true` |
//! | `await_device_configured` | `false` | `false` |
//! | `auto_advance_setup` | `false` | `false` |
//! | `is_multi_user` | `false` | `false` |
//!
//! # Enrollment type
//!
//! `enrollment_type` is a friendlier name for `is_mandatory`:
//!
//! | `enrollment_type` | `is_mandatory` | In Setup Assistant |
//! |---|---|---|
//! | `automated` | `true` | the user cannot skip remote management |
//! | `user_initiated` | `false` | the user may skip it and enroll later |
//!
//! A spec may give either key, or both if they agree; when they disagree [`validate`]
//! reports `ENROLLMENT_TYPE_CONFLICT`. With neither, the type is `automated`.
//!
//! # Example (YAML)
//!
//! ```yaml
//! name: staff-macs
//! profile_name: Staff Macs
//! enrollment_type: automated
//! department: IT
//! support_phone_number: "+1 555 0100"
//! allow_pairing: false
//! skip_setup_items: [AppleID, Siri, Diagnostics]
//! ```

mod bounds;
mod parse;
mod text;
mod validate;

use crate::command_spec::CommandSpec;
use serde::{Deserialize, Serialize};

pub use bounds::{MAX_SPEC_BYTES, MAX_SPEC_DEPTH};
pub use parse::{SpecFormat, SpecParseError};
pub use text::{
    certs_from_text, certs_to_text, initial_commands_from_text, initial_commands_to_text,
};
pub use validate::{FieldError, ValidProfile, codes, validate};

/// GuardMDM's defaults for the flags a spec leaves out (see the module docs).
pub mod defaults {
    /// Devices are supervised.
    pub const IS_SUPERVISED: bool = true;
    /// The user cannot skip enrollment (`enrollment_type: automated`).
    pub const IS_MANDATORY: bool = true;
    /// "Lock MDM": the user cannot remove the MDM profile.
    pub const IS_MDM_REMOVABLE: bool = false;
    /// The device may pair with a computer.
    pub const ALLOW_PAIRING: bool = true;
    /// Setup Assistant does not wait for `DeviceConfigured`.
    pub const AWAIT_DEVICE_CONFIGURED: bool = false;
    /// Setup Assistant does not advance by itself (tvOS, macOS 11+).
    pub const AUTO_ADVANCE_SETUP: bool = false;
    /// Not a Shared iPad.
    pub const IS_MULTI_USER: bool = false;
}

/// Whether the user may skip remote management in Setup Assistant: GuardMDM's "enrollment
/// type", mapped onto Apple's `is_mandatory` (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentType {
    /// Enrollment cannot be skipped (`is_mandatory: true`).
    Automated,
    /// The user may skip enrollment and enroll later (`is_mandatory: false`).
    UserInitiated,
}

impl EnrollmentType {
    /// The `is_mandatory` value this type stands for.
    pub fn is_mandatory(self) -> bool {
        self == Self::Automated
    }

    /// The type an `is_mandatory` value stands for.
    pub fn from_mandatory(is_mandatory: bool) -> Self {
        if is_mandatory {
            Self::Automated
        } else {
            Self::UserInitiated
        }
    }

    /// The spelling used in specs: `automated` or `user_initiated`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automated => "automated",
            Self::UserInitiated => "user_initiated",
        }
    }
}

/// An ADE profile as an admin writes it. Unknown keys are an error naming the key, so a typo
/// never silently falls back to a default. `None` means "not given": GuardMDM's default
/// applies (see [`defaults`]), and serializing a spec leaves the key out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// GuardMDM's handle for the profile, used in commands and URLs (the rules of
    /// [`crate::names::validate_name`]). Required.
    pub name: String,
    /// The name Apple shows; defaults to `name`. 1 to 125 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_name: Option<String>,
    /// `automated` or `user_initiated`; another way to set `is_mandatory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_type: Option<EnrollmentType>,
    /// Where devices fetch their enrollment profile; defaults to the server's ADE endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A web page the user signs in to before enrollment (§6.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_web_url: Option<String>,
    /// Supervise the device (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_supervised: Option<bool>,
    /// The user cannot skip enrollment (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mandatory: Option<bool>,
    /// The user may remove the MDM profile (default `false`; `false` needs supervision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_mdm_removable: Option<bool>,
    /// Setup Assistant waits for the `DeviceConfigured` command (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub await_device_configured: Option<bool>,
    /// tvOS and macOS 11+: go through Setup Assistant without a user (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_advance_setup: Option<bool>,
    /// The device may pair with a computer (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_pairing: Option<bool>,
    /// Shared iPad (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_multi_user: Option<bool>,
    /// Department shown in Setup Assistant, 1 to 125 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Support phone number shown in Setup Assistant, 1 to 50 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_phone_number: Option<String>,
    /// Support email address shown in Setup Assistant, 1 to 250 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_email_address: Option<String>,
    /// Org services identifier, 1 to 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_magic: Option<String>,
    /// Setup language (ISO 639, lower case: `en`, `fr`, `haw`); tvOS and macOS 11+.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Setup region (ISO 3166-1 alpha-2, upper case: `US`); needs `language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Trust anchors for `url` and `configuration_web_url` (base64 DER certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_certs: Option<Vec<String>>,
    /// Hosts allowed to pair even when pairing is off (base64 DER certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervising_host_certs: Option<Vec<String>>,
    /// Setup Assistant panes to skip ([`crate::skip_keys`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_setup_items: Option<Vec<String>>,
    /// GuardMDM's own: commands every device of this profile gets right after it enrolls, in
    /// order; with `await_device_configured`, Setup Assistant waits until each has been
    /// answered, then GuardMDM sends `DeviceConfigured`. Not sent to Apple.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_commands: Option<Vec<CommandSpec>>,
    /// GuardMDM's own: the minimum OS per OS (`{"ios": "17.5", "macos": "14.4"}`) a device
    /// given this profile must run to enroll, instead of the global one (`docs/protocol.md`
    /// §6.5). Not sent to Apple.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_os: Option<crate::os_minimum::ProfileMinimums>,
    /// GuardMDM's own: with `await_device_configured`, GuardMDM releases a device still in
    /// Setup Assistant after it has waited this long (`45m`, `2h`, `1h 30m`; 5 minutes to 7
    /// days): `DeviceConfigured` first, its unanswered initial commands cancelled, audited as
    /// automatic. Not sent to Apple.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_after: Option<String>,
}

/// Every key a spec may have, in declaration order (used to suggest a fix for a typo).
pub const SPEC_FIELDS: &[&str] = &[
    "name",
    "profile_name",
    "enrollment_type",
    "url",
    "configuration_web_url",
    "is_supervised",
    "is_mandatory",
    "is_mdm_removable",
    "await_device_configured",
    "auto_advance_setup",
    "allow_pairing",
    "is_multi_user",
    "department",
    "support_phone_number",
    "support_email_address",
    "org_magic",
    "language",
    "region",
    "anchor_certs",
    "supervising_host_certs",
    "skip_setup_items",
    "initial_commands",
    "minimum_os",
    "release_after",
];

impl ProfileSpec {
    /// The effective `is_mandatory`: the flag if given, else the one `enrollment_type`
    /// stands for, else [`defaults::IS_MANDATORY`]. When both are given and disagree the
    /// flag wins here (and [`validate`] reports the conflict).
    pub fn effective_is_mandatory(&self) -> bool {
        self.is_mandatory
            .or(self.enrollment_type.map(EnrollmentType::is_mandatory))
            .unwrap_or(defaults::IS_MANDATORY)
    }

    /// The enrollment type this spec results in, from [`Self::effective_is_mandatory`].
    pub fn enrollment_type(&self) -> EnrollmentType {
        EnrollmentType::from_mandatory(self.effective_is_mandatory())
    }

    /// The effective `is_supervised` (default `true`).
    pub fn effective_is_supervised(&self) -> bool {
        self.is_supervised.unwrap_or(defaults::IS_SUPERVISED)
    }

    /// The effective `is_mdm_removable` (default `false`).
    pub fn effective_is_mdm_removable(&self) -> bool {
        self.is_mdm_removable.unwrap_or(defaults::IS_MDM_REMOVABLE)
    }
}

#[cfg(test)]
mod tests;

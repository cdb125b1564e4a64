//! Check-in messages: what a device `PUT`s to the MDM payload's `CheckInURL` (or `ServerURL`)
//! with `Content-Type: application/x-apple-aspen-mdm-checkin` (`docs/protocol.md` §7.1–§7.2;
//! <https://developer.apple.com/documentation/devicemanagement/check-in>).
//!
//! The flow: `Authenticate` when the MDM payload installs (answer 200; the device is not
//! enrolled yet), then `TokenUpdate` with the push token and `PushMagic` (the first one completes
//! enrollment), later `TokenUpdate`s whenever they change, and `CheckOut` on removal when the
//! profile asked for it. Every other message type (`UserAuthenticate`, `SetBootstrapToken`,
//! `GetBootstrapToken`, `DeclarativeManagement`, `GetToken`, `ReturnToService`, and whatever
//! Apple adds) is kept whole as [`CheckinMessage::Other`].
//!
//! Secrets (the push token, `PushMagic`, `UnlockToken`) are [`secrecy`] types, so `Debug` never
//! prints them; the raw dictionary of an `Other` message prints its keys only.

use std::fmt;

use plist::Dictionary;
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use crate::error::ProtocolError;
use crate::identity::DeviceIdentity;
use crate::plist_read::{Fields, KeysOnly, read_dictionary};

/// The `Content-Type` of check-in requests; anything else on the MDM URL is command traffic.
pub const CHECKIN_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm-checkin";

/// The largest check-in body accepted: 1 MiB. Check-ins are small (a `TokenUpdate` is under
/// 2 KB); the largest, `DeclarativeManagement` status reports, stay well below this. The HTTP
/// layer should refuse bigger bodies before reading them; [`parse_checkin`] refuses them too.
pub const MAX_CHECKIN_BYTES: usize = 1024 * 1024;

/// The check-in body limit a server applies unless told otherwise: 256 KiB. The check-ins
/// GuardMDM handles are small: an `Authenticate` is about 1 KB, a `TokenUpdate` with its
/// `UnlockToken` 2 to 5 KB, a `CheckOut` a few hundred bytes; the kinds it does not handle
/// (`SetBootstrapToken`, `DeclarativeManagement` status reports) stay in the tens of KB.
/// 256 KiB is some 50 times the largest handled message and caps what one request costs;
/// a server may allow up to [`MAX_CHECKIN_BYTES`].
pub const DEFAULT_CHECKIN_BYTES: usize = 256 * 1024;

const WHAT: &str = "check-in message";

/// A parsed check-in message, by `MessageType`.
#[derive(Clone)]
pub enum CheckinMessage {
    /// `Authenticate`: the MDM payload is being installed.
    Authenticate(Authenticate),
    /// `TokenUpdate`: new or changed push token, `PushMagic` or `UnlockToken`.
    TokenUpdate(TokenUpdate),
    /// `CheckOut`: the MDM profile was removed.
    CheckOut(CheckOut),
    /// Any other `MessageType`, kept whole for the service to handle or refuse.
    Other {
        /// Apple's `MessageType`, e.g. `GetBootstrapToken`.
        message_type: String,
        /// The enrollment it speaks for.
        identity: DeviceIdentity,
        /// Every key the device sent, `MessageType` included. May hold secrets
        /// (`BootstrapToken`); `Debug` prints its keys only.
        raw: Dictionary,
    },
}

impl CheckinMessage {
    /// Apple's `MessageType`.
    pub fn message_type(&self) -> &str {
        match self {
            Self::Authenticate(_) => "Authenticate",
            Self::TokenUpdate(_) => "TokenUpdate",
            Self::CheckOut(_) => "CheckOut",
            Self::Other { message_type, .. } => message_type,
        }
    }

    /// The device or user enrollment this message speaks for: its `UDID`, or its
    /// `EnrollmentID` for a user enrollment.
    pub fn identity(&self) -> &DeviceIdentity {
        match self {
            Self::Authenticate(m) => &m.identity,
            Self::TokenUpdate(m) => &m.identity,
            Self::CheckOut(m) => &m.identity,
            Self::Other { identity, .. } => identity,
        }
    }
}

impl fmt::Debug for CheckinMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Authenticate(m) => f.debug_tuple("Authenticate").field(m).finish(),
            Self::TokenUpdate(m) => f.debug_tuple("TokenUpdate").field(m).finish(),
            Self::CheckOut(m) => f.debug_tuple("CheckOut").field(m).finish(),
            Self::Other {
                message_type,
                identity,
                raw,
            } => f
                .debug_struct("Other")
                .field("message_type", message_type)
                .field("identity", identity)
                .field("raw", &KeysOnly(raw))
                .finish(),
        }
    }
}

/// `Authenticate` (Apple: `AuthenticateRequest`). Answer 200 with an empty body; do not treat
/// the device as enrolled until its first `TokenUpdate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    /// The enrollment it speaks for.
    pub identity: DeviceIdentity,
    /// `EnrollmentID` as sent (user enrollment; also in `identity` when there is no UDID).
    pub enrollment_id: Option<String>,
    /// `Topic`: the APNs topic the device subscribes to; must match the push certificate's.
    pub topic: String,
    /// `BuildVersion`, e.g. `22A3354`.
    pub build_version: Option<String>,
    /// `OSVersion`, e.g. `18.0`.
    pub os_version: Option<String>,
    /// `ProductName`, e.g. `iPhone17,2`.
    pub product_name: Option<String>,
    /// `SerialNumber` (absent for user enrollment).
    pub serial_number: Option<String>,
    /// `IMEI` (iOS).
    pub imei: Option<String>,
    /// `MEID` (iOS).
    pub meid: Option<String>,
    /// `DeviceName` (macOS).
    pub device_name: Option<String>,
    /// `Model` (macOS), e.g. `Mac14,2`.
    pub model: Option<String>,
    /// `ModelName` (macOS), e.g. `MacBook Air`.
    pub model_name: Option<String>,
    /// `EnrollmentUserID`, if a device sends one.
    pub enrollment_user_id: Option<String>,
}

/// `TokenUpdate` (Apple: `TokenUpdateRequest`): where to push this enrollment, and how.
///
/// Device channel when none of the user keys is present; user channel (macOS user, Shared iPad
/// user) otherwise, see [`TokenUpdate::is_user_channel`].
#[derive(Debug, Clone)]
pub struct TokenUpdate {
    /// The enrollment it speaks for.
    pub identity: DeviceIdentity,
    /// `EnrollmentID` as sent.
    pub enrollment_id: Option<String>,
    /// `Topic`.
    pub topic: String,
    /// `Token`: the APNs device token (send it hex-encoded, [`TokenUpdate::token_hex`]).
    pub token: SecretSlice<u8>,
    /// `PushMagic`: goes in the push payload `{"mdm": "<PushMagic>"}`.
    pub push_magic: SecretString,
    /// `UnlockToken` (iOS, device channel): keep it for `ClearPasscode`. Its absence does not
    /// invalidate one received earlier.
    pub unlock_token: Option<SecretSlice<u8>>,
    /// `AwaitingConfiguration`: the device waits in Setup Assistant for `DeviceConfigured`
    /// (user channel on Shared iPad: for `UserConfigured`). Absent means `false`.
    pub awaiting_configuration: bool,
    /// `NotOnConsole` (macOS user channel).
    pub not_on_console: Option<bool>,
    /// `UserID`: macOS user's ID; `FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF` on Shared iPad.
    pub user_id: Option<String>,
    /// `UserShortName`: macOS short name, or the Shared iPad user's Managed Apple Account.
    pub user_short_name: Option<String>,
    /// `UserLongName`: the user's full name.
    pub user_long_name: Option<String>,
    /// `EnrollmentUserID`: user enrollment's user channel (macOS).
    pub enrollment_user_id: Option<String>,
}

impl TokenUpdate {
    /// `true` when this token is for a user channel (`UserID` or `EnrollmentUserID` present).
    pub fn is_user_channel(&self) -> bool {
        self.user_id.is_some() || self.enrollment_user_id.is_some()
    }

    /// The push token as lowercase hex, as the APNs URL path wants it.
    pub fn token_hex(&self) -> String {
        self.token
            .expose_secret()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// `CheckOut` (Apple: `CheckOutRequest`): the MDM profile was removed (best effort; only sent
/// when the payload had `CheckOutWhenRemoved`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOut {
    /// The enrollment it speaks for.
    pub identity: DeviceIdentity,
    /// `EnrollmentID` as sent.
    pub enrollment_id: Option<String>,
    /// `Topic`.
    pub topic: String,
}

/// Parses a check-in body (XML or binary property list).
///
/// Errors: over [`MAX_CHECKIN_BYTES`], empty, not a property list (or truncated), not a
/// dictionary, no `MessageType`, neither `UDID` nor `EnrollmentID`, a required key missing
/// (`Topic`; `Token` and `PushMagic` for `TokenUpdate`), or a known key of the wrong type.
/// Unknown keys are ignored; unknown message types become [`CheckinMessage::Other`].
pub fn parse_checkin(bytes: &[u8]) -> Result<CheckinMessage, ProtocolError> {
    let dict = read_dictionary(bytes, WHAT, MAX_CHECKIN_BYTES)?;
    let message_type = Fields::new(&dict, WHAT).required_string("MessageType")?;
    match message_type.as_str() {
        "Authenticate" => authenticate(&dict).map(CheckinMessage::Authenticate),
        "TokenUpdate" => token_update(&dict).map(CheckinMessage::TokenUpdate),
        "CheckOut" => check_out(&dict).map(CheckinMessage::CheckOut),
        _ => {
            let (identity, _) = DeviceIdentity::read(&Fields::new(&dict, WHAT), WHAT)?;
            Ok(CheckinMessage::Other {
                message_type,
                identity,
                raw: dict,
            })
        }
    }
}

fn authenticate(dict: &Dictionary) -> Result<Authenticate, ProtocolError> {
    const WHAT: &str = "Authenticate check-in";
    let f = Fields::new(dict, WHAT);
    let (identity, enrollment_id) = DeviceIdentity::read(&f, WHAT)?;
    Ok(Authenticate {
        identity,
        enrollment_id,
        topic: f.required_string("Topic")?,
        build_version: f.string("BuildVersion")?,
        os_version: f.string("OSVersion")?,
        product_name: f.string("ProductName")?,
        serial_number: f.string("SerialNumber")?,
        imei: f.string("IMEI")?,
        meid: f.string("MEID")?,
        device_name: f.string("DeviceName")?,
        model: f.string("Model")?,
        model_name: f.string("ModelName")?,
        enrollment_user_id: f.string("EnrollmentUserID")?,
    })
}

fn token_update(dict: &Dictionary) -> Result<TokenUpdate, ProtocolError> {
    const WHAT: &str = "TokenUpdate check-in";
    let f = Fields::new(dict, WHAT);
    let (identity, enrollment_id) = DeviceIdentity::read(&f, WHAT)?;
    Ok(TokenUpdate {
        identity,
        enrollment_id,
        topic: f.required_string("Topic")?,
        token: SecretSlice::from(f.required_data("Token")?),
        push_magic: SecretString::from(f.required_string("PushMagic")?),
        unlock_token: f
            .data("UnlockToken")?
            .filter(|t| !t.is_empty())
            .map(SecretSlice::from),
        awaiting_configuration: f.boolean("AwaitingConfiguration")?.unwrap_or(false),
        not_on_console: f.boolean("NotOnConsole")?,
        user_id: f.string("UserID")?,
        user_short_name: f.string("UserShortName")?,
        user_long_name: f.string("UserLongName")?,
        enrollment_user_id: f.string("EnrollmentUserID")?,
    })
}

fn check_out(dict: &Dictionary) -> Result<CheckOut, ProtocolError> {
    const WHAT: &str = "CheckOut check-in";
    let f = Fields::new(dict, WHAT);
    let (identity, enrollment_id) = DeviceIdentity::read(&f, WHAT)?;
    Ok(CheckOut {
        identity,
        enrollment_id,
        topic: f.required_string("Topic")?,
    })
}

#[cfg(test)]
mod tests;

//! Apple's device assignment service (the "DEP API" of Apple Business Manager), as a client.
//!
//! Protocol reference: `docs/protocol.md`, and Apple's "Device Assignment"
//! documentation (<https://developer.apple.com/documentation/devicemanagement/device-assignment>).
//!
//! - Authentication (§2): `GET /session` signed with OAuth 1.0a HMAC-SHA1 over the URL really
//!   requested ([`oauth`]); the session token then goes in `X-ADM-Auth-Session` on every call,
//!   and a rotated token in any response replaces it (§2.4).
//! - Every request carries `User-Agent` (§9.13) and `X-Server-Protocol-Version:`
//!   [`PROTOCOL_VERSION`]: version 10, the newest whose response shapes this crate handles
//!   (`THROTTLED` with `retry_after_seconds` on assign, replacement-device fields).
//! - Retries ([`Client`]): 401, and 403 whose body says `FORBIDDEN`, re-authenticate once and
//!   replay; `T_C_NOT_SIGNED` and `ACCESS_DENIED` are never retried (§2.5); 429/503 honour
//!   `Retry-After` (seconds or an HTTP date), other 5xx and network failures back off
//!   exponentially with jitter (§3.15); every request has a timeout.
//! - Errors ([`DepError`]) name Apple's codes, the cursor codes as distinct variants (§3.2–§3.4).

pub mod client;
pub mod error;
pub mod model;
pub mod oauth;

pub use client::{Client, ClientOptions, DEFAULT_BASE_URL, MAX_SERIALS_PER_CALL, PROTOCOL_VERSION};
pub use error::DepError;
pub use model::{
    AccountDetail, AssignProfileResponse, DefineProfileResponse, Device, DeviceDetails,
    DeviceFamily, DevicePage, DeviceStatus, DeviceStatusResponse, OpType, Os, Profile,
    ProfileStatus,
};
pub use oauth::Credentials;

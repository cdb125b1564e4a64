//! MDM pushes through Apple Push Notification service (APNs).
//!
//! An MDM push carries no command: it only asks a device to contact its MDM server, which then
//! hands out the queued commands. Protocol reference: `docs/protocol.md` §7.5, and
//! Apple's "Sending notification requests to APNs"
//! (<https://developer.apple.com/documentation/usernotifications/sending-notification-requests-to-apns>)
//! and "Handling error responses from APNs"
//! (<https://developer.apple.com/documentation/usernotifications/handling-error-responses-from-apns>).
//!
//! - One request per device: `POST /3/device/<token as lower-case hex>` over HTTP/2, TLS client
//!   authentication with the MDM push certificate, `apns-push-type: mdm`, `apns-topic` = the
//!   certificate's subject UID (`com.apple.mgmt.External.<uuid>`), and the body exactly
//!   `{"mdm":"<PushMagic>"}` (no `aps` dictionary).
//! - Answers: 200 with an `apns-id`; otherwise a JSON body `{"reason", "timestamp"}`. 410 means
//!   the token is no longer valid for the topic (the device is gone).
//!
//! [`PushProvider`] is the seam the service layer depends on; [`ApnsClient`] is the real
//! implementation, sending a batch concurrently over one HTTP/2 connection.

mod client;
mod error;
mod identity;
mod outcome;

use async_trait::async_trait;

pub use client::{ApnsClient, ApnsConfig, DEFAULT_MAX_IN_FLIGHT, PRODUCTION_ENDPOINT};
pub use error::ApnsError;
pub use outcome::PushOutcome;

/// One device (or user channel) to push to.
///
/// `Debug` redacts the token and the push magic: both are secrets that must not reach the logs.
#[derive(Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// The APNs device token from the device's `TokenUpdate` check-in (raw bytes, usually 32).
    /// It is sent hex-encoded in lower case in the request path.
    pub token: Vec<u8>,
    /// The `PushMagic` string from the same `TokenUpdate`, sent as the payload's `mdm` value.
    pub push_magic: String,
    /// The APNs topic: the push certificate's subject UID, as in the enrollment's `Topic`.
    /// Sent as `apns-topic`; an empty topic omits the header (APNs then uses the certificate's
    /// single topic).
    pub topic: String,
}

impl PushTarget {
    /// Builds a target from its three parts.
    pub fn new(
        token: impl Into<Vec<u8>>,
        push_magic: impl Into<String>,
        topic: impl Into<String>,
    ) -> Self {
        Self {
            token: token.into(),
            push_magic: push_magic.into(),
            topic: topic.into(),
        }
    }

    /// The token as APNs wants it in the path: lower-case hex, two digits per byte.
    pub fn token_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(self.token.len() * 2);
        for byte in &self.token {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        hex
    }
}

impl std::fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTarget")
            .field(
                "token",
                &format_args!("[REDACTED {} bytes]", self.token.len()),
            )
            .field("push_magic", &"[REDACTED]")
            .field("topic", &self.topic)
            .finish()
    }
}

/// Something that can send MDM pushes (APNs in production, a recording fake in tests).
#[async_trait]
pub trait PushProvider: Send + Sync {
    /// Pushes to every target and returns one outcome per target, **in input order**
    /// (`outcomes[i]` belongs to `targets[i]`). An empty slice sends nothing and returns an
    /// empty vector.
    ///
    /// Never fails as a whole: a problem reaching APNs shows up as [`PushOutcome::Failed`] for
    /// the targets it affected, so one bad token never hides the others' results.
    async fn push(&self, targets: &[PushTarget]) -> Vec<PushOutcome>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hex_is_lower_case_two_digits_per_byte() {
        let target = PushTarget::new(vec![0x00, 0x0a, 0xff, 0x7f, 0xc3], "m", "t");
        assert_eq!(target.token_hex(), "000aff7fc3");
        assert_eq!(PushTarget::new(Vec::new(), "m", "t").token_hex(), "");
    }

    #[test]
    fn debug_redacts_token_and_magic() {
        let target = PushTarget::new(vec![0xab; 32], "magic-1234", "com.apple.mgmt.External.x");
        let debug = format!("{target:?}");
        assert!(!debug.contains("magic-1234"), "{debug}");
        assert!(!debug.contains("abab"), "{debug}");
        assert!(debug.contains("com.apple.mgmt.External.x"), "{debug}");
    }
}

//! The health of the MDM push certificate: a pure function of its expiry and the time, like
//! the ABM tokens' ([`crate::health`]).
//!
//! No certificate → `missing`; past expiry → `expired`; 30 days or less left → `expiring`;
//! otherwise `active`. Apple's certificates last a year and are renewed at identity.apple.com
//! with the Apple Account that created them, which keeps the topic.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::health::{Expiry, expires_in, expiry};

/// The state of the push certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushCertificateState {
    /// None uploaded: devices cannot enroll.
    Missing,
    /// Valid for more than 30 days.
    Active,
    /// Valid, but for 30 days or less.
    Expiring,
    /// Past its expiry: APNs refuses every push.
    Expired,
}

impl PushCertificateState {
    /// The state's name as the API and CLI show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Active => "active",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
        }
    }

    /// Whether an admin must act (log warnings and the dashboard banner).
    pub fn needs_attention(self) -> bool {
        self != Self::Active
    }
}

/// The push certificate's state, expiry, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushHealth {
    /// The state.
    pub state: PushCertificateState,
    /// The certificate's expiry; `None` while missing.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Whole days until expiry (0 on the last day), negative once expired; `None` while
    /// missing.
    pub days_left: Option<i64>,
    /// One sentence for the admin: the state and what to do.
    pub message: String,
}

/// The push certificate's health at `now`, from its expiry (`None`: no certificate).
pub fn push_certificate_health(
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> PushHealth {
    let Some(expires_at) = expires_at else {
        return PushHealth {
            state: PushCertificateState::Missing,
            expires_at: None,
            days_left: None,
            message: "No push certificate: devices cannot enroll. Make a certificate request \
                      (guardmdm apns csr), have it signed, upload it at identity.apple.com, and \
                      upload Apple's certificate to GuardMDM (guardmdm apns upload --cert)."
                .to_string(),
        };
    };
    let days_left = (expires_at - now).whole_days();
    let date = expires_at.date();
    let renew = "renew it at identity.apple.com with the same Apple Account that created it \
                 (a new certificate has a new topic and orphans every enrolled device), then \
                 upload it to GuardMDM";
    let (state, message) = match expiry(expires_at, now) {
        Expiry::Expired => (
            PushCertificateState::Expired,
            format!(
                "The push certificate expired on {date}: APNs refuses every push, so devices \
                 get no commands until they check in. Renew it now: {renew}."
            ),
        ),
        Expiry::Expiring => (
            PushCertificateState::Expiring,
            format!(
                "The push certificate expires {} ({date}): {renew}.",
                expires_in(days_left)
            ),
        ),
        Expiry::Valid => (
            PushCertificateState::Active,
            format!("The push certificate is valid until {date} ({days_left} days)."),
        ),
    };
    PushHealth {
        state,
        expires_at: Some(expires_at),
        days_left: Some(days_left),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-07 12:00 UTC);

    fn at(left: Duration) -> PushHealth {
        push_certificate_health(Some(NOW + left), NOW)
    }

    #[test]
    fn missing_active_expiring_and_expired() {
        let missing = push_certificate_health(None, NOW);
        assert_eq!(missing.state, PushCertificateState::Missing);
        assert_eq!(missing.days_left, None);
        assert!(missing.message.contains("guardmdm apns csr"), "{missing:?}");
        assert!(missing.state.needs_attention());

        let active = at(Duration::days(200));
        assert_eq!(active.state, PushCertificateState::Active);
        assert_eq!(active.days_left, Some(200));
        assert!(!active.state.needs_attention());

        let edge = at(Duration::days(30) + Duration::seconds(1));
        assert_eq!(edge.state, PushCertificateState::Active);
        let thirty = at(Duration::days(30));
        assert_eq!(thirty.state, PushCertificateState::Expiring);
        assert!(thirty.message.contains("in 30 days"), "{}", thirty.message);
        let soon = at(Duration::days(12) + Duration::hours(5));
        assert_eq!(
            (soon.state, soon.days_left),
            (PushCertificateState::Expiring, Some(12))
        );
        assert!(
            soon.message.contains("same Apple Account"),
            "{}",
            soon.message
        );
        assert!(at(Duration::days(1)).message.contains("in 1 day"));
        assert!(at(Duration::hours(3)).message.contains("today"));

        let now = at(Duration::ZERO);
        assert_eq!(now.state, PushCertificateState::Expired);
        let old = at(-Duration::days(3));
        assert_eq!(
            (old.state, old.days_left),
            (PushCertificateState::Expired, Some(-3))
        );
        assert!(
            old.message.contains("expired on 2026-12-04"),
            "{}",
            old.message
        );
        assert!(old.state.needs_attention());
    }

    #[test]
    fn states_have_stable_names() {
        let names: Vec<&str> = [
            PushCertificateState::Missing,
            PushCertificateState::Active,
            PushCertificateState::Expiring,
            PushCertificateState::Expired,
        ]
        .iter()
        .map(|s| s.as_str())
        .collect();
        assert_eq!(names, ["missing", "active", "expiring", "expired"]);
        assert_eq!(
            serde_json::to_string(&PushCertificateState::Expiring).unwrap(),
            "\"expiring\""
        );
    }
}

//! The health of an ABM entry's server token: a pure function of what is stored and the time.
//!
//! Precedence: no token → `pending`; past expiry → `expired`; a problem Apple reported
//! (`terms_not_signed`, `rejected`) → that state; 30 days or less left → `expiring`;
//! otherwise `active`. The messages follow the troubleshooting table of
//! `docs/architecture.md` §10.

use guardmdm_store::TokenProblem;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// Days before expiry from which a token, the push certificate or the HTTPS certificate
/// counts as expiring: renew 30 days before.
pub const EXPIRING_WITHIN_DAYS: i64 = 30;

/// Where something valid until a date stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Past its end.
    Expired,
    /// Valid, but for [`EXPIRING_WITHIN_DAYS`] or less.
    Expiring,
    /// Valid for longer.
    Valid,
}

/// Where something valid until `expires_at` stands at `now`: the one rule for ABM tokens,
/// the push certificate and HTTPS certificates.
pub fn expiry(expires_at: OffsetDateTime, now: OffsetDateTime) -> Expiry {
    let left = expires_at - now;
    if left <= Duration::ZERO {
        Expiry::Expired
    } else if left <= Duration::days(EXPIRING_WITHIN_DAYS) {
        Expiry::Expiring
    } else {
        Expiry::Valid
    }
}

/// "today", "in 1 day", "in 12 days": when something expires, from its whole days left.
pub fn expires_in(days_left: i64) -> String {
    match days_left {
        0 => "today".to_string(),
        1 => "in 1 day".to_string(),
        n => format!("in {n} days"),
    }
}

/// Problem kind: Apple answered `T_C_NOT_SIGNED`.
pub const PROBLEM_TERMS_NOT_SIGNED: &str = "terms_not_signed";
/// Problem kind: Apple rejected the token (revoked, replaced, or `ACCESS_DENIED`).
pub const PROBLEM_REJECTED: &str = "rejected";

/// The state of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// No server token uploaded yet.
    Pending,
    /// Valid for more than 30 days.
    Active,
    /// Valid, but for 30 days or less.
    Expiring,
    /// Past its `access_token_expiry`.
    Expired,
    /// Apple refuses calls until an ABM administrator accepts new terms and conditions.
    TermsNotSigned,
    /// Apple rejected the token.
    Rejected,
}

impl TokenState {
    /// The state's name as the API and CLI show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expiring => "expiring",
            Self::Expired => "expired",
            Self::TermsNotSigned => "terms_not_signed",
            Self::Rejected => "rejected",
        }
    }

    /// Whether an admin must act on a token that exists (warned in logs and banners).
    /// `pending` is a set-up step, not a fault, so it does not count.
    pub fn needs_attention(self) -> bool {
        matches!(
            self,
            Self::Expiring | Self::Expired | Self::TermsNotSigned | Self::Rejected
        )
    }
}

/// A token's state, expiry, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenHealth {
    /// The state.
    pub state: TokenState,
    /// `access_token_expiry`; `None` while pending.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Whole days until expiry (0 on the last day), or since expiry as a negative number
    /// (-2: expired two days ago); `None` while pending.
    pub days_left: Option<i64>,
    /// One sentence for the admin: the state and what to do.
    pub message: String,
}

/// Computes a token's health at `now`.
pub fn token_health(
    expires_at: Option<OffsetDateTime>,
    problem: Option<&TokenProblem>,
    now: OffsetDateTime,
) -> TokenHealth {
    let Some(expires_at) = expires_at else {
        return TokenHealth {
            state: TokenState::Pending,
            expires_at: None,
            days_left: None,
            message: "No server token yet: upload this entry's public key to Apple Business \
                      Manager (Settings > MDM Server), download the server token there, and \
                      upload it to GuardMDM."
                .to_string(),
        };
    };
    let days_left = (expires_at - now).whole_days();
    let date = expires_at.date();
    let stage = expiry(expires_at, now);
    let (state, message) = if stage == Expiry::Expired {
        (
            TokenState::Expired,
            format!(
                "Token expired on {date}: device sync has stopped and new devices cannot enroll. \
                 Regenerate the server token in Apple Business Manager and re-upload it."
            ),
        )
    } else if let Some(problem) = problem {
        let state = if problem.kind == PROBLEM_TERMS_NOT_SIGNED {
            TokenState::TermsNotSigned
        } else {
            TokenState::Rejected
        };
        (state, problem.message.clone())
    } else if stage == Expiry::Expiring {
        let when = expires_in(days_left);
        (
            TokenState::Expiring,
            format!(
                "Token expires {when} ({date}): download a new server token from Apple \
                 Business Manager and upload it to GuardMDM before then."
            ),
        )
    } else {
        (
            TokenState::Active,
            format!("Token valid until {date} ({days_left} days)."),
        )
    };
    TokenHealth {
        state,
        expires_at: Some(expires_at),
        days_left: Some(days_left),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-27 12:00 UTC);

    #[test]
    fn expiry_stages_meet_at_the_end_and_thirty_days_before() {
        assert_eq!(expiry(NOW, NOW), Expiry::Expired);
        assert_eq!(expiry(NOW + Duration::seconds(1), NOW), Expiry::Expiring);
        assert_eq!(expiry(NOW + Duration::days(30), NOW), Expiry::Expiring);
        assert_eq!(
            expiry(NOW + Duration::days(30) + Duration::seconds(1), NOW),
            Expiry::Valid
        );
        assert_eq!(expires_in(0), "today");
        assert_eq!(expires_in(1), "in 1 day");
        assert_eq!(expires_in(12), "in 12 days");
    }

    fn state_at(expires_in: Duration) -> (TokenState, Option<i64>) {
        let h = token_health(Some(NOW + expires_in), None, NOW);
        (h.state, h.days_left)
    }

    #[test]
    fn pending_without_a_token() {
        let h = token_health(None, None, NOW);
        assert_eq!(
            (h.state, h.expires_at, h.days_left),
            (TokenState::Pending, None, None)
        );
        assert!(h.message.contains("upload"));
    }

    #[test]
    fn boundaries_between_active_expiring_and_expired() {
        assert_eq!(
            state_at(Duration::days(365)),
            (TokenState::Active, Some(365))
        );
        assert_eq!(
            state_at(Duration::days(30) + Duration::seconds(1)),
            (TokenState::Active, Some(30))
        );
        assert_eq!(
            state_at(Duration::days(30)),
            (TokenState::Expiring, Some(30))
        );
        assert_eq!(
            state_at(Duration::hours(5)),
            (TokenState::Expiring, Some(0))
        );
        assert_eq!(
            state_at(Duration::seconds(1)),
            (TokenState::Expiring, Some(0))
        );
        assert_eq!(state_at(Duration::ZERO), (TokenState::Expired, Some(0)));
        assert_eq!(
            state_at(Duration::hours(-5)),
            (TokenState::Expired, Some(0))
        );
        assert_eq!(
            state_at(-Duration::days(3) - Duration::hours(1)),
            (TokenState::Expired, Some(-3))
        );
    }

    #[test]
    fn messages_say_what_to_do() {
        let expired = token_health(Some(NOW - Duration::days(1)), None, NOW);
        assert!(
            expired.message.contains("Regenerate"),
            "{}",
            expired.message
        );
        assert!(expired.message.contains("re-upload"));
        let expiring = token_health(Some(NOW + Duration::days(12)), None, NOW);
        assert!(
            expiring.message.contains("in 12 days"),
            "{}",
            expiring.message
        );
        assert!(expiring.message.contains("2026-12-09"));
    }

    #[test]
    fn reported_problems_win_over_expiry_state_but_not_over_expired() {
        let problem = TokenProblem {
            kind: PROBLEM_TERMS_NOT_SIGNED.to_string(),
            message: "Accept the new terms".to_string(),
            since: NOW,
        };
        let h = token_health(Some(NOW + Duration::days(100)), Some(&problem), NOW);
        assert_eq!(h.state, TokenState::TermsNotSigned);
        assert_eq!(h.message, "Accept the new terms");
        let rejected = TokenProblem {
            kind: PROBLEM_REJECTED.to_string(),
            ..problem.clone()
        };
        let h = token_health(Some(NOW + Duration::days(5)), Some(&rejected), NOW);
        assert_eq!(h.state, TokenState::Rejected);
        let h = token_health(Some(NOW - Duration::days(5)), Some(&problem), NOW);
        assert_eq!(h.state, TokenState::Expired);
    }

    #[test]
    fn active_and_pending_need_no_attention() {
        assert!(!TokenState::Active.needs_attention());
        assert!(!TokenState::Pending.needs_attention());
        for s in [
            TokenState::Expiring,
            TokenState::Expired,
            TokenState::TermsNotSigned,
            TokenState::Rejected,
        ] {
            assert!(s.needs_attention(), "{s:?}");
        }
    }
}

//! Errors of the DEP API, named after Apple's codes (`docs/protocol.md` §2.5, §3.0, §9).

use std::time::Duration;

/// What went wrong talking to Apple.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepError {
    /// `/session` refused the OAuth credentials (401 `token_rejected`, `signature_invalid`, …),
    /// or a call still failed with 401 / 403 `FORBIDDEN` right after a fresh session: the token
    /// was revoked, replaced by a newer download, or its downloading account removed (§9.8).
    #[error("Apple rejected the server token (HTTP {status}: {body})")]
    TokenRejected {
        /// HTTP status.
        status: u16,
        /// Apple's body, for the log.
        body: String,
    },
    /// 403 `T_C_NOT_SIGNED`: the organization must accept new terms in ABM (§9.7). Never retried.
    #[error(
        "Apple Business Manager's terms and conditions have not been accepted (T_C_NOT_SIGNED)"
    )]
    TermsNotSigned,
    /// 403 `ACCESS_DENIED`: this server or token may not make the request. Never retried.
    #[error("Apple denied access (ACCESS_DENIED)")]
    AccessDenied,
    /// 400 `INVALID_CURSOR`: start again with a full fetch.
    #[error("the cursor is invalid (INVALID_CURSOR)")]
    CursorInvalid,
    /// 400 `EXPIRED_CURSOR`: older than 7 days; start again with a full fetch.
    #[error("the cursor has expired (EXPIRED_CURSOR)")]
    CursorExpired,
    /// 400 `EXHAUSTED_CURSOR`: the fetch is complete; continue with sync.
    #[error("the fetch cursor is exhausted (EXHAUSTED_CURSOR)")]
    CursorExhausted,
    /// 400 `CURSOR_REQUIRED`: sync needs a cursor.
    #[error("sync needs a cursor (CURSOR_REQUIRED)")]
    CursorRequired,
    /// Any other error Apple named with a code (profile validation codes and the like).
    #[error("Apple answered HTTP {status} {code}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Apple's code, e.g. `CONFIG_URL_INVALID`, `NOT_FOUND`, `DEVICE_ID_REQUIRED`.
        code: String,
    },
    /// 429 or 503 still after the retries, or a `Retry-After` longer than the client waits.
    #[error("Apple is rate limiting or unavailable (HTTP {status}); retry after {retry_after:?}")]
    Throttled {
        /// HTTP status.
        status: u16,
        /// Apple's `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// A 5xx still after the retries.
    #[error("Apple's server failed (HTTP {status})")]
    Server {
        /// HTTP status.
        status: u16,
    },
    /// No answer: connection refused, DNS, TLS, timeout (after the retries).
    #[error("cannot reach Apple's device assignment service at {url}: {message}")]
    Transport {
        /// The URL tried.
        url: String,
        /// What failed.
        message: String,
    },
    /// Apple answered 200 with a body that is not the expected JSON.
    #[error("Apple's answer could not be read: {0}")]
    Decode(String),
    /// The request was refused before sending (for example more than 1000 serials).
    #[error("invalid DEP request: {0}")]
    InvalidRequest(String),
}

impl DepError {
    /// `EXPIRED_CURSOR` or `INVALID_CURSOR`: reset the cursor and fetch everything again.
    pub fn is_cursor_reset(&self) -> bool {
        matches!(self, Self::CursorExpired | Self::CursorInvalid)
    }

    /// `EXHAUSTED_CURSOR`: switch from fetch to sync.
    pub fn is_cursor_exhausted(&self) -> bool {
        matches!(self, Self::CursorExhausted)
    }

    /// Worth trying again later without any admin action (network, 5xx, throttling).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Throttled { .. } | Self::Server { .. } | Self::Transport { .. }
        )
    }

    /// For errors that only an admin can fix: the token-health state they put the entry in
    /// (`terms_not_signed` or `rejected`) and what the admin should do.
    pub fn token_problem(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::TermsNotSigned => Some((
                "terms_not_signed",
                "Apple Business Manager's terms and conditions changed: an administrator must \
                 sign in to business.apple.com and accept them. Syncing resumes after that.",
            )),
            Self::TokenRejected { .. } => Some((
                "rejected",
                "Apple rejected this server token: a newer token was downloaded for this MDM \
                 server, or the account that downloaded it was removed. Download a new server \
                 token from Apple Business Manager and upload it to GuardMDM.",
            )),
            Self::AccessDenied => Some((
                "rejected",
                "Apple denied this MDM server access (ACCESS_DENIED): check the MDM server in \
                 Apple Business Manager, then download and upload a new server token.",
            )),
            _ => None,
        }
    }
}

/// Apple's code in an error body: bare (`EXPIRED_CURSOR`), quoted (`"EXPIRED_CURSOR"`), or
/// inside other text; the first run of upper-case letters and underscores of length ≥ 3.
pub(crate) fn error_code(body: &str) -> Option<String> {
    let mut current = String::new();
    for c in body.chars() {
        if c.is_ascii_uppercase() || c == '_' {
            current.push(c);
        } else {
            if current.len() >= 3 && current.chars().any(|c| c != '_') {
                return Some(current);
            }
            current.clear();
        }
    }
    (current.len() >= 3).then_some(current)
}

/// The error for a 4xx answer that is not an authentication problem.
pub(crate) fn classify_client_error(status: u16, body: &str) -> DepError {
    let code = error_code(body).unwrap_or_else(|| format!("HTTP_{status}"));
    match code.as_str() {
        "T_C_NOT_SIGNED" => DepError::TermsNotSigned,
        "ACCESS_DENIED" => DepError::AccessDenied,
        "INVALID_CURSOR" => DepError::CursorInvalid,
        "EXPIRED_CURSOR" => DepError::CursorExpired,
        "EXHAUSTED_CURSOR" => DepError::CursorExhausted,
        "CURSOR_REQUIRED" => DepError::CursorRequired,
        _ => DepError::Api { status, code },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_codes_in_bare_quoted_and_wrapped_bodies() {
        assert_eq!(
            error_code("EXPIRED_CURSOR").as_deref(),
            Some("EXPIRED_CURSOR")
        );
        assert_eq!(
            error_code("\"EXPIRED_CURSOR\"\n").as_deref(),
            Some("EXPIRED_CURSOR")
        );
        assert_eq!(
            error_code("{\"error\":\"T_C_NOT_SIGNED\"}").as_deref(),
            Some("T_C_NOT_SIGNED")
        );
        assert_eq!(error_code("oauth_problem=signature_invalid"), None);
        assert_eq!(error_code(""), None);
    }

    #[test]
    fn classifies_cursor_and_terms_codes() {
        assert_eq!(
            classify_client_error(400, "EXHAUSTED_CURSOR"),
            DepError::CursorExhausted
        );
        assert!(classify_client_error(400, "\"EXPIRED_CURSOR\"").is_cursor_reset());
        assert!(classify_client_error(400, "INVALID_CURSOR").is_cursor_reset());
        assert_eq!(
            classify_client_error(400, "CURSOR_REQUIRED"),
            DepError::CursorRequired
        );
        assert_eq!(
            classify_client_error(403, "T_C_NOT_SIGNED"),
            DepError::TermsNotSigned
        );
        assert_eq!(
            classify_client_error(400, "CONFIG_URL_INVALID"),
            DepError::Api {
                status: 400,
                code: "CONFIG_URL_INVALID".into()
            }
        );
        assert_eq!(
            classify_client_error(404, ""),
            DepError::Api {
                status: 404,
                code: "HTTP_404".into()
            }
        );
    }

    #[test]
    fn only_admin_fixable_errors_are_token_problems() {
        assert_eq!(
            DepError::TermsNotSigned.token_problem().unwrap().0,
            "terms_not_signed"
        );
        assert_eq!(
            DepError::AccessDenied.token_problem().unwrap().0,
            "rejected"
        );
        assert!(DepError::Server { status: 500 }.token_problem().is_none());
        assert!(DepError::Server { status: 500 }.is_transient());
        assert!(!DepError::TermsNotSigned.is_transient());
    }
}

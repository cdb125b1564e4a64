//! What became of one push, and how an APNs answer maps to it (Apple's "Handling error
//! responses from APNs": status codes and the `{"reason", "timestamp"}` body).

use serde::Deserialize;

/// The result of pushing to one [`PushTarget`](crate::PushTarget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// APNs accepted the push (HTTP 200). Acceptance is not delivery: APNs stores and forwards,
    /// and the device checks in when it next can.
    Delivered {
        /// The `apns-id` APNs assigned to the notification, if it sent one.
        apns_id: Option<String>,
    },
    /// HTTP 410: the token is no longer valid for the topic. The device was wiped, unenrolled or
    /// re-enrolled with a new token; stop pushing to it until a new `TokenUpdate`.
    Unregistered {
        /// When APNs confirmed the token was no longer valid, in milliseconds since the Unix
        /// epoch (`timestamp` of the body); `None` when APNs did not say.
        timestamp_ms: Option<u64>,
    },
    /// APNs refused this request (a 4xx other than 410 and 429), for example 400
    /// `BadDeviceToken`, 403 `BadCertificate`, 400 `TopicDisallowed`, 413 `PayloadTooLarge`.
    /// Retrying the same request will fail the same way.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Apple's `reason` string; when the body had none, the body text (possibly empty).
        reason: String,
    },
    /// No usable answer after the retries: a network or TLS failure, a timeout, a 5xx or a 429.
    /// The push may be tried again later.
    Failed {
        /// What went wrong, for the log (never contains the token or push magic).
        message: String,
    },
}

impl PushOutcome {
    /// APNs accepted the push.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Delivered { .. })
    }

    /// The device token is dead (HTTP 410).
    pub fn is_unregistered(&self) -> bool {
        matches!(self, Self::Unregistered { .. })
    }

    /// The rejection points at the server's configuration rather than the device: the push
    /// certificate or topic is wrong (any 403, or `BadCertificate`, `BadCertificateEnvironment`,
    /// `BadTopic`, `TopicDisallowed`, `MissingTopic`). Every other push with the same
    /// certificate will fail too; alert an operator instead of blaming the device.
    pub fn is_configuration_problem(&self) -> bool {
        const CONFIG_REASONS: [&str; 5] = [
            "BadCertificate",
            "BadCertificateEnvironment",
            "BadTopic",
            "TopicDisallowed",
            "MissingTopic",
        ];
        match self {
            Self::Rejected { status, reason } => {
                *status == 403 || CONFIG_REASONS.contains(&reason.as_str())
            }
            _ => false,
        }
    }
}

/// An answer sorted by what to do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The outcome is known; do not retry.
    Final(PushOutcome),
    /// Worth another attempt (5xx, 429); the message describes this attempt.
    Retry(String),
}

/// The JSON body APNs sends with a failure.
#[derive(Deserialize)]
struct ErrorBody {
    reason: Option<String>,
    timestamp: Option<u64>,
}

/// Longest body text kept in a reason or message when the body is not Apple's JSON.
const MAX_BODY_TEXT: usize = 200;

/// Sorts one APNs answer.
pub(crate) fn classify(status: u16, apns_id: Option<String>, body: &[u8]) -> Verdict {
    match status {
        200..=299 => Verdict::Final(PushOutcome::Delivered { apns_id }),
        410 => Verdict::Final(PushOutcome::Unregistered {
            timestamp_ms: parse_body(body).and_then(|b| b.timestamp),
        }),
        429 | 500..=599 => Verdict::Retry(format!("APNs answered HTTP {status} {}", reason(body))),
        400..=499 => Verdict::Final(PushOutcome::Rejected {
            status,
            reason: reason(body),
        }),
        _ => Verdict::Final(PushOutcome::Failed {
            message: format!(
                "unexpected answer from APNs: HTTP {status} {}",
                reason(body)
            ),
        }),
    }
}

fn parse_body(body: &[u8]) -> Option<ErrorBody> {
    serde_json::from_slice(body).ok()
}

/// Apple's `reason`, else the (shortened) body text.
fn reason(body: &[u8]) -> String {
    if let Some(reason) = parse_body(body).and_then(|b| b.reason) {
        return reason;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_BODY_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16, reason: &str) -> PushOutcome {
        PushOutcome::Rejected {
            status,
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn success_keeps_the_apns_id() {
        assert_eq!(
            classify(200, Some("abc".into()), b""),
            Verdict::Final(PushOutcome::Delivered {
                apns_id: Some("abc".into())
            })
        );
    }

    #[test]
    fn gone_carries_the_timestamp() {
        let body = br#"{"reason":"Unregistered","timestamp":1700000000123}"#;
        assert_eq!(
            classify(410, None, body),
            Verdict::Final(PushOutcome::Unregistered {
                timestamp_ms: Some(1_700_000_000_123)
            })
        );
        assert_eq!(
            classify(410, None, b""),
            Verdict::Final(PushOutcome::Unregistered { timestamp_ms: None })
        );
    }

    #[test]
    fn client_errors_are_rejections_with_apples_reason() {
        let body = br#"{"reason":"BadDeviceToken"}"#;
        assert_eq!(
            classify(400, None, body),
            Verdict::Final(rejected(400, "BadDeviceToken"))
        );
        assert_eq!(
            classify(413, None, b"too big"),
            Verdict::Final(rejected(413, "too big"))
        );
    }

    #[test]
    fn server_errors_and_throttling_are_retried() {
        let body = br#"{"reason":"TooManyRequests"}"#;
        assert_eq!(
            classify(429, None, body),
            Verdict::Retry("APNs answered HTTP 429 TooManyRequests".into())
        );
        assert!(matches!(
            classify(503, None, b""),
            Verdict::Retry(m) if m.starts_with("APNs answered HTTP 503")
        ));
    }

    #[test]
    fn long_non_json_bodies_are_shortened() {
        let body = "x".repeat(1000);
        let Verdict::Final(PushOutcome::Rejected { reason, .. }) =
            classify(404, None, body.as_bytes())
        else {
            panic!("expected a rejection");
        };
        assert_eq!(reason.chars().count(), MAX_BODY_TEXT + 1);
    }

    #[test]
    fn configuration_problems_are_recognised() {
        assert!(rejected(403, "BadCertificate").is_configuration_problem());
        assert!(rejected(403, "Forbidden").is_configuration_problem());
        assert!(rejected(400, "TopicDisallowed").is_configuration_problem());
        assert!(!rejected(400, "BadDeviceToken").is_configuration_problem());
        assert!(!PushOutcome::Unregistered { timestamp_ms: None }.is_configuration_problem());
    }
}

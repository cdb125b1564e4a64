//! The HTTPS certificate this instance serves: where it came from, its names and expiry,
//! and the last problem obtaining or reloading it. The serving side (certificate files or
//! ACME) fills it; health checks, metrics, the dashboard banner and the doctor read it.
//! [`tls_health`] is the rule, a pure function of the state and the time.

use std::sync::{PoisonError, RwLock};

use serde::Serialize;
use time::OffsetDateTime;

use crate::health::{Expiry, expires_in, expiry};

/// Where the served certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateSource {
    /// `--tls-cert`/`--tls-key`, re-read when they change.
    Files,
    /// Obtained and renewed over ACME (`--acme`).
    Acme,
}

/// The certificate being served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedCertificate {
    /// Where it came from.
    pub source: CertificateSource,
    /// Its DNS names (subject alternative names).
    pub names: Vec<String>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// SHA-256 fingerprint (hex).
    pub fingerprint: String,
}

impl ServedCertificate {
    /// The facts of a DER certificate (the end-entity one of the chain served).
    ///
    /// # Errors
    /// When the bytes are not a certificate.
    pub fn from_der(
        source: CertificateSource,
        der: &[u8],
    ) -> Result<Self, guardmdm_crypto::CertificateError> {
        let cert = guardmdm_crypto::Certificate::from_der(der)?;
        Ok(Self {
            source,
            names: cert.dns_names(),
            not_before: cert.not_before(),
            not_after: cert.not_after(),
            fingerprint: cert.sha256_fingerprint().to_string(),
        })
    }
}

/// What is known of this instance's HTTPS certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TlsState {
    /// Whether the main listener serves HTTPS at all (off behind a TLS-terminating proxy).
    pub enabled: bool,
    /// The certificate served, once there is one.
    pub certificate: Option<ServedCertificate>,
    /// The last problem obtaining, renewing or reloading it (cleared on success); the
    /// certificate above stays in use meanwhile.
    pub problem: Option<String>,
    /// When the next renewal attempt is due (ACME).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_renewal: Option<OffsetDateTime>,
}

/// The shared, updatable [`TlsState`] of this instance.
#[derive(Debug, Default)]
pub struct TlsStatus {
    state: RwLock<TlsState>,
}

impl TlsStatus {
    /// A status for a listener that serves HTTPS (`enabled`) or plain HTTP.
    pub fn new(enabled: bool) -> Self {
        Self {
            state: RwLock::new(TlsState {
                enabled,
                ..TlsState::default()
            }),
        }
    }

    /// Records the certificate now served and clears the last problem.
    pub fn served(&self, certificate: ServedCertificate) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.certificate = Some(certificate);
        state.problem = None;
    }

    /// Records a problem (the served certificate, if any, stays).
    pub fn problem(&self, message: impl Into<String>) {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .problem = Some(message.into());
    }

    /// Clears the last problem (the served certificate, if any, stays).
    pub fn clear_problem(&self) {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .problem = None;
    }

    /// Records when the next renewal attempt is due.
    pub fn next_renewal(&self, at: Option<OffsetDateTime>) {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .next_renewal = at;
    }

    /// A copy of the state.
    pub fn snapshot(&self) -> TlsState {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The health of the served certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsHealthState {
    /// Valid for more than 30 days, and no problem.
    Active,
    /// Valid, but for 30 days or less, or the last renewal or reload failed.
    Expiring,
    /// Past its expiry: devices refuse to connect.
    Expired,
    /// HTTPS is on but there is no certificate yet (ACME has not obtained one).
    Missing,
}

/// The served certificate's state and one sentence on what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsHealth {
    /// The state.
    pub state: TlsHealthState,
    /// The state and what to do.
    pub message: String,
}

impl TlsHealth {
    /// Whether an admin must act (logs and the dashboard banner).
    pub fn needs_attention(&self) -> bool {
        self.state != TlsHealthState::Active
    }
}

/// The health of `state` at `now`; `None` when the listener serves plain HTTP.
pub fn tls_health(state: &TlsState, now: OffsetDateTime) -> Option<TlsHealth> {
    if !state.enabled {
        return None;
    }
    let problem = state.problem.as_deref();
    let Some(certificate) = &state.certificate else {
        let why = problem.unwrap_or("none obtained yet");
        return Some(TlsHealth {
            state: TlsHealthState::Missing,
            message: format!(
                "No HTTPS certificate: {why}. Devices cannot connect until there is one."
            ),
        });
    };
    let date = certificate.not_after.date();
    let stage = expiry(certificate.not_after, now);
    let (state, mut message) = if stage == Expiry::Expired {
        (
            TlsHealthState::Expired,
            format!("The HTTPS certificate expired on {date}: devices refuse to connect."),
        )
    } else if stage == Expiry::Expiring {
        (
            TlsHealthState::Expiring,
            format!(
                "The HTTPS certificate expires {} ({date}).",
                expires_in((certificate.not_after - now).whole_days())
            ),
        )
    } else if problem.is_some() {
        (
            TlsHealthState::Expiring,
            format!("The HTTPS certificate is valid until {date}, but:"),
        )
    } else {
        (
            TlsHealthState::Active,
            format!("The HTTPS certificate is valid until {date}."),
        )
    };
    match (problem, certificate.source) {
        (Some(problem), _) => message = format!("{message} {problem}"),
        (None, CertificateSource::Files) if state != TlsHealthState::Active => {
            message.push_str(
                " Replace the --tls-cert and --tls-key files; they are re-read when they change.",
            );
        }
        (None, CertificateSource::Acme) if state != TlsHealthState::Active => {
            message.push_str(" ACME renews it automatically; check the log for why it has not.");
        }
        (None, _) => {}
    }
    Some(TlsHealth { state, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn served(days_left: i64, source: CertificateSource, now: OffsetDateTime) -> TlsState {
        TlsState {
            enabled: true,
            certificate: Some(ServedCertificate {
                source,
                names: vec!["mdm.example.com".to_string()],
                not_before: now - Duration::days(10),
                not_after: now + Duration::days(days_left),
                fingerprint: "ab".to_string(),
            }),
            problem: None,
            next_renewal: None,
        }
    }

    #[test]
    fn plain_http_has_no_tls_health() {
        assert_eq!(
            tls_health(&TlsState::default(), OffsetDateTime::now_utc()),
            None
        );
    }

    #[test]
    fn states_follow_expiry_and_problems() {
        let now = OffsetDateTime::now_utc();
        let health = |s: &TlsState| tls_health(s, now).map(|h| h.state);
        assert_eq!(
            health(&served(60, CertificateSource::Files, now)),
            Some(TlsHealthState::Active)
        );
        assert_eq!(
            health(&served(30, CertificateSource::Files, now)),
            Some(TlsHealthState::Expiring)
        );
        assert_eq!(
            health(&served(-1, CertificateSource::Acme, now)),
            Some(TlsHealthState::Expired)
        );
        let mut failing = served(60, CertificateSource::Acme, now);
        failing.problem = Some("the CA could not validate mdm.example.com".to_string());
        let h = tls_health(&failing, now).unwrap();
        assert_eq!(h.state, TlsHealthState::Expiring);
        assert!(h.message.contains("could not validate"), "{}", h.message);
        let missing = TlsState {
            enabled: true,
            ..TlsState::default()
        };
        assert_eq!(health(&missing), Some(TlsHealthState::Missing));
    }

    #[test]
    fn the_status_keeps_the_certificate_through_a_problem_and_clears_it_on_success() {
        let now = OffsetDateTime::now_utc();
        let status = TlsStatus::new(true);
        let cert = served(60, CertificateSource::Files, now)
            .certificate
            .unwrap();
        status.served(cert.clone());
        status.problem("--tls-key: no usable private key");
        let s = status.snapshot();
        assert_eq!(s.certificate.as_ref(), Some(&cert));
        assert!(s.problem.is_some());
        status.served(cert);
        assert_eq!(status.snapshot().problem, None);
    }

    #[test]
    fn a_problem_is_cleared_without_a_certificate_too() {
        let now = OffsetDateTime::now_utc();
        let status = TlsStatus::new(true);
        status.problem("ACME: the certificate state cannot be read from the database");
        status.clear_problem();
        let s = status.snapshot();
        assert_eq!(s.problem, None);
        assert_eq!(s.certificate, None);
        assert_eq!(
            tls_health(&s, now).unwrap().message,
            "No HTTPS certificate: none obtained yet. Devices cannot connect until there is one."
        );

        let cert = served(60, CertificateSource::Acme, now)
            .certificate
            .unwrap();
        status.served(cert.clone());
        status.problem("the CA could not validate mdm.example.com");
        status.clear_problem();
        let s = status.snapshot();
        assert_eq!(s.problem, None);
        assert_eq!(s.certificate, Some(cert), "the certificate stays");
    }
}

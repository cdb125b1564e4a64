//! The doctor: checks a deployment as a device and Apple would see it, each finding with
//! what to do.
//!
//! Every check is a pure rule in [`rules`] (a function of what was observed and the time,
//! unit-tested) fed by [`run`], which observes: the public URL over the network, this
//! instance's HTTPS certificate, the push certificate and a connection to APNs, every ABM
//! entry and its last sync, the clock against Apple's `Date` header, the SCEP CA, the
//! database and its migrations, and the free space in the data dir.

pub mod probe;
pub mod rules;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Services;

/// Default limit for each network check (connect and answer).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Enrollment works, but an admin should act (soon).
    Warning,
    /// Devices cannot enroll (or cannot be managed once enrolled) until this is fixed.
    Blocking,
}

impl Status {
    /// The status as the API and the CLI show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Blocking => "blocking",
        }
    }
}

/// One observation and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What was checked (`public_url.trust`, `push_certificate`, `abm:main`, `disk`, …).
    pub check: String,
    /// How bad it is.
    pub status: Status,
    /// What was found, in one or two sentences.
    pub summary: String,
    /// What to do; `None` when nothing needs doing.
    pub fix: Option<String>,
}

impl Finding {
    /// A finding that needs nothing done.
    pub fn ok(check: impl Into<String>, summary: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            status: Status::Ok,
            summary: summary.into(),
            fix: None,
        }
    }

    /// A warning with what to do.
    pub fn warning(
        check: impl Into<String>,
        summary: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            status: Status::Warning,
            summary: summary.into(),
            fix: Some(fix.into()),
        }
    }

    /// A finding that blocks enrollment, with what to do.
    pub fn blocking(
        check: impl Into<String>,
        summary: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            status: Status::Blocking,
            summary: summary.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every finding of one run of the doctor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// When the checks ran.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// Findings that block enrollment.
    pub blocking: usize,
    /// Warnings.
    pub warnings: usize,
    /// Every finding, in the order the checks ran.
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    /// A report of `findings` made at `checked_at`.
    pub fn new(checked_at: OffsetDateTime, findings: Vec<Finding>) -> Self {
        let count = |status| findings.iter().filter(|f| f.status == status).count();
        Self {
            checked_at,
            blocking: count(Status::Blocking),
            warnings: count(Status::Warning),
            findings,
        }
    }

    /// Whether something blocks enrollment (warnings do not).
    pub fn blocks_enrollment(&self) -> bool {
        self.blocking > 0
    }
}

/// What the doctor needs beyond the services.
#[derive(Debug, Clone)]
pub struct DoctorSettings {
    /// The data dir whose free space is checked (`None`: not checked).
    pub data_dir: Option<PathBuf>,
    /// Limit for each network check.
    pub timeout: Duration,
}

impl Default for DoctorSettings {
    fn default() -> Self {
        Self {
            data_dir: None,
            timeout: DEFAULT_CHECK_TIMEOUT,
        }
    }
}

/// Runs every check.
pub async fn run(services: &Services) -> DoctorReport {
    let settings = &services.doctor;
    let timeout = settings.timeout;
    let mut findings = Vec::new();

    // The network checks run at once: the public URL as a device reaches it, APNs with the
    // push certificate, and Apple's clock.
    let public_url = services.mdm.settings().public_url.clone();
    let abm_url = services.abm_entries.default_url().to_string();
    let public = async {
        match rules::public_url(&public_url) {
            Err(finding) => vec![finding],
            Ok(host) => {
                let mut found = vec![Finding::ok(
                    "public_url",
                    format!("The public URL {public_url} is HTTPS."),
                )];
                found.extend(check_public_url(services, &public_url, &host, timeout).await);
                found
            }
        }
    };
    let (public, apns, skew) = tokio::join!(
        public,
        services.mdm.probe_apns(),
        probe::clock_skew(&abm_url, timeout)
    );
    findings.extend(public);
    let now = OffsetDateTime::now_utc();
    findings.push(rules::served_tls(
        crate::tls_status::tls_health(&services.tls.snapshot(), now).as_ref(),
    ));

    // The push certificate, and APNs with it.
    let push = services
        .mdm
        .push_certificate()
        .await
        .map_err(|e| e.to_string());
    findings.push(rules::push_certificate(push.as_ref().map(Option::as_ref)));
    let endpoint = services.mdm.settings().push.endpoint.clone();
    findings.push(rules::apns(&endpoint, &apns));

    // ABM entries, and the clock against Apple's.
    findings.extend(check_abm(services, now).await);
    findings.push(rules::clock(&abm_url, skew.as_ref().map(|s| *s)));

    // The SCEP CA.
    let ca = match services.mdm.keys().await {
        Ok(keys) => Ok((
            keys.ca.certificate().not_before(),
            keys.ca.certificate().not_after(),
        )),
        Err(e) => Err(e.message),
    };
    findings.push(rules::scep_ca(ca, OffsetDateTime::now_utc()));

    // The database.
    let backend = services.store.backend_name();
    let ping = services.store.ping().await.map_err(|e| e.to_string());
    let reachable = ping.is_ok();
    findings.push(rules::database(backend, ping));
    if reachable {
        let status = services.store.migrations().await.map_err(|e| e.to_string());
        findings.push(rules::migrations(status));
    }

    // Free space where the data lives.
    if let Some(dir) = &settings.data_dir {
        findings.push(rules::disk(dir, probe::free_space(dir)));
    }
    DoctorReport::new(OffsetDateTime::now_utc(), findings)
}

/// Reachability, trust, names and expiry of the public URL's certificate.
async fn check_public_url(
    services: &Services,
    public_url: &str,
    host: &str,
    timeout: Duration,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let seen = probe::public_url(public_url, timeout).await;
    findings.push(rules::reachable(public_url, &seen.answer));
    let Some(leaf) = seen.leaf else {
        return findings;
    };
    let system = probe::verify_chain(public_url, None, timeout).await;
    let anchors = if system.is_ok() {
        rules::AnchorTrust::default()
    } else {
        anchor_trust(services, public_url, timeout).await
    };
    findings.push(rules::trust(public_url, system, &anchors));
    match guardmdm_crypto::Certificate::from_der(&leaf) {
        Ok(cert) => {
            findings.push(rules::names(host, &cert.dns_names()));
            findings.push(rules::expiry(
                "public_url.expiry",
                "The public URL's certificate",
                cert.not_before(),
                cert.not_after(),
                OffsetDateTime::now_utc(),
            ));
        }
        Err(e) => findings.push(Finding::blocking(
            "public_url.names",
            format!("The public URL's certificate cannot be read: {e}."),
            "Serve a well-formed X.509 certificate (PEM, leaf first, then the intermediates).",
        )),
    }
    findings
}

/// Which ADE profiles carry anchor certificates the public URL's chain verifies against.
async fn anchor_trust(
    services: &Services,
    public_url: &str,
    timeout: Duration,
) -> rules::AnchorTrust {
    let mut trust = rules::AnchorTrust::default();
    let profiles = match services.profiles.list().await {
        Ok(profiles) => profiles,
        Err(e) => {
            trust.error = Some(e.to_string());
            return trust;
        }
    };
    for profile in profiles {
        let anchors = profile.apple.anchor_certs.clone().unwrap_or_default();
        let verified = if anchors.is_empty() {
            false
        } else {
            probe::verify_chain(public_url, Some(&anchors), timeout)
                .await
                .is_ok()
        };
        if verified {
            trust.trusted_by.push(profile.name);
        } else {
            trust.not_trusted_by.push(profile.name);
        }
    }
    trust
}

/// One finding per ABM entry (or one saying there is none).
async fn check_abm(services: &Services, now: OffsetDateTime) -> Vec<Finding> {
    let entries = match services.abm_entries.list().await {
        Ok(entries) => entries,
        Err(e) => {
            return vec![Finding::blocking(
                "abm",
                format!("The ABM entries cannot be read: {e}."),
                "See the database finding and the server log.",
            )];
        }
    };
    if entries.is_empty() {
        return vec![rules::no_abm_entries()];
    }
    let mut findings = Vec::with_capacity(entries.len());
    for entry in &entries {
        let last = services.sync.runs(&entry.name, 1).await.ok();
        let last = last.as_ref().and_then(|runs| runs.first());
        findings.push(rules::abm_entry(entry, last, now));
    }
    findings
}

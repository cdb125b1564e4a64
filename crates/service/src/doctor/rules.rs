//! The doctor's rules: pure functions from what was observed (and the time) to a
//! [`Finding`] saying what it means for enrollment and what to do.

use std::path::Path;

use time::{Duration, OffsetDateTime};

use super::Finding;
use crate::abm_entries::AbmEntryView;
use crate::health::{self, Expiry, TokenState};
use crate::mdm::{ApnsProbe, PushCertificateState, PushCertificateView};
use crate::tls_status::{TlsHealth, TlsHealthState};
use guardmdm_store::{MigrationStatus, SyncRun};

/// Clock skew (seconds) above which the doctor warns.
pub const SKEW_WARNING_SECONDS: i64 = 30;
/// Clock skew (seconds) above which enrollment is blocked.
pub const SKEW_BLOCKING_SECONDS: i64 = 5 * 60;
/// Free space below which the doctor warns (1 GiB).
pub const DISK_WARNING_BYTES: u64 = 1024 * 1024 * 1024;
/// Free space, as a share of the file system in percent, below which the doctor warns.
pub const DISK_WARNING_PERCENT: u64 = 10;
/// Free space below which writes are about to fail (100 MiB).
pub const DISK_BLOCKING_BYTES: u64 = 100 * 1024 * 1024;

const FIX_HTTPS: &str = "Devices enroll only over HTTPS: serve HTTPS with --tls-cert/--tls-key \
(or put a TLS-terminating proxy in front) and set --public-url to the https:// address devices reach.";

/// The public URL must be an `https` URL with a host; returns the host.
///
/// # Errors
/// The blocking finding when it is not.
pub fn public_url(url: &str) -> Result<String, Finding> {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Err(Finding::blocking(
                "public_url",
                format!("The public URL {url:?} is not a URL: {e}."),
                "Set --public-url (GUARDMDM_PUBLIC_URL) to the https:// address devices reach, e.g. https://mdm.example.com.",
            ));
        }
    };
    if parsed.scheme() != "https" {
        return Err(Finding::blocking(
            "public_url",
            format!(
                "The public URL {url} is plain {}: Apple devices refuse to enroll without HTTPS.",
                parsed.scheme()
            ),
            FIX_HTTPS,
        ));
    }
    match parsed.host_str() {
        Some(host) => Ok(host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string()),
        None => Err(Finding::blocking(
            "public_url",
            format!("The public URL {url} has no host."),
            "Set --public-url to the https:// address devices reach, e.g. https://mdm.example.com.",
        )),
    }
}

/// What `GET <public URL>/healthz` answered (any certificate accepted).
pub fn reachable(url: &str, answer: &Result<u16, String>) -> Finding {
    let healthz = format!("{}/healthz", url.trim_end_matches('/'));
    match answer {
        Ok(status) if (200..300).contains(status) => Finding::ok(
            "public_url.reachable",
            format!("GET {healthz} from this server answered {status}."),
        ),
        Ok(status) => Finding::blocking(
            "public_url.reachable",
            format!("GET {healthz} answered HTTP {status}, not GuardMDM's health check."),
            "The public URL must lead to this GuardMDM: check the reverse proxy's routing (it must pass every path through) or --public-url.",
        ),
        Err(e) => Finding::blocking(
            "public_url.reachable",
            format!("GET {healthz} failed from this server: {e}."),
            "Check that the public URL's host name resolves (DNS) to this server or its proxy, that the port is open in the firewall, and that HTTPS is served there (--tls-cert/--tls-key, or the proxy). Some networks do not let a server reach its own public address: then check from outside too.",
        ),
    }
}

/// Which ADE profiles carry anchor certificates the public URL's chain verifies against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnchorTrust {
    /// Profiles whose anchors verify it.
    pub trusted_by: Vec<String>,
    /// Profiles whose anchors (or lack of them) do not.
    pub not_trusted_by: Vec<String>,
    /// Why the profiles could not be read.
    pub error: Option<String>,
}

const FIX_TRUST: &str = "Serve a certificate from a CA devices trust (a public CA such as Let's \
Encrypt) with its full chain (the intermediates after the leaf), or add your CA's certificate \
to the anchor_certs of every ADE profile.";

/// Whether the chain verifies against the system trust store (`system`), or else against
/// the anchor certificates of the ADE profiles.
pub fn trust(url: &str, system: Result<(), String>, anchors: &AnchorTrust) -> Finding {
    const CHECK: &str = "public_url.trust";
    let why = match system {
        Ok(()) => {
            return Finding::ok(
                CHECK,
                format!("The certificate of {url} verifies against the system trust store."),
            );
        }
        Err(why) => why,
    };
    if let Some(error) = &anchors.error {
        return Finding::blocking(
            CHECK,
            format!(
                "The certificate of {url} does not verify against the system trust store ({why}), and the ADE profiles' anchors cannot be read: {error}."
            ),
            FIX_TRUST,
        );
    }
    match (
        anchors.trusted_by.is_empty(),
        anchors.not_trusted_by.is_empty(),
    ) {
        (false, true) => Finding::ok(
            CHECK,
            format!(
                "The certificate of {url} is not trusted by the system trust store, but verifies against the anchor certificates every ADE profile carries ({}).",
                anchors.trusted_by.join(", ")
            ),
        ),
        (false, false) => Finding::warning(
            CHECK,
            format!(
                "The certificate of {url} verifies only against the anchor certificates of the ADE profiles {}; devices given {} refuse it ({why}).",
                anchors.trusted_by.join(", "),
                anchors.not_trusted_by.join(", ")
            ),
            format!(
                "Add the CA's certificate to the anchor_certs of {}, or serve a certificate from a CA devices trust.",
                anchors.not_trusted_by.join(", ")
            ),
        ),
        (true, _) => Finding::blocking(
            CHECK,
            format!(
                "Devices will refuse the certificate of {url}: it does not verify against the system trust store ({why}) nor against any ADE profile's anchor certificates."
            ),
            FIX_TRUST,
        ),
    }
}

/// Whether `names` (the certificate's DNS names) cover `host` (`*.example.com` covers one
/// label).
pub fn names(host: &str, names: &[String]) -> Finding {
    const CHECK: &str = "public_url.names";
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Finding::warning(
            CHECK,
            format!("The public URL's host {host} is an IP address."),
            "Give the server a DNS name and use it in --public-url: certificates from public CAs name hosts, and a changed address would break every enrolled device.",
        );
    }
    let host = host.to_ascii_lowercase();
    let covered = names.iter().any(|name| {
        let name = name.to_ascii_lowercase();
        match name.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => name == host,
        }
    });
    let listed = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    if covered {
        Finding::ok(
            CHECK,
            format!("The certificate names {host} (its names: {listed})."),
        )
    } else {
        Finding::blocking(
            CHECK,
            format!(
                "The certificate does not name {host} (its names: {listed}): devices refuse it."
            ),
            format!(
                "Serve a certificate whose subject alternative names include {host}, or set --public-url to a name the certificate has."
            ),
        )
    }
}

/// A certificate's validity at `now`: blocking outside it, a warning in its last 30 days.
pub fn expiry(
    check: &str,
    what: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> Finding {
    let date = not_after.date();
    let left = not_after - now;
    if not_before > now {
        return Finding::blocking(
            check,
            format!(
                "{what} is not valid before {}: devices refuse it until then.",
                not_before.date()
            ),
            "Check this server's clock (see the clock finding), or serve a certificate valid now.",
        );
    }
    match health::expiry(not_after, now) {
        Expiry::Expired => Finding::blocking(
            check,
            format!("{what} expired on {date}: devices refuse it."),
            "Renew the certificate and serve the new one (files given with --tls-cert are re-read when they change).",
        ),
        Expiry::Expiring => Finding::warning(
            check,
            format!(
                "{what} expires {} ({date}).",
                health::expires_in(left.whole_days())
            ),
            "Renew it before then (files given with --tls-cert are re-read when they change).",
        ),
        Expiry::Valid => Finding::ok(
            check,
            format!("{what} is valid until {date} ({} days).", left.whole_days()),
        ),
    }
}

/// This instance's own HTTPS certificate (`--tls-cert`, ACME), from its health.
pub fn served_tls(health: Option<&TlsHealth>) -> Finding {
    const CHECK: &str = "tls";
    let Some(health) = health else {
        return Finding::ok(
            CHECK,
            "This instance serves plain HTTP: HTTPS must come from a TLS-terminating proxy in front of it (see the public URL findings).",
        );
    };
    match health.state {
        TlsHealthState::Active => Finding::ok(CHECK, health.message.clone()),
        TlsHealthState::Expiring => Finding::warning(
            CHECK,
            health.message.clone(),
            "Renew the certificate before it expires (see the message).",
        ),
        TlsHealthState::Expired | TlsHealthState::Missing => Finding::blocking(
            CHECK,
            health.message.clone(),
            "Serve a valid certificate: replace the --tls-cert and --tls-key files, or check the ACME errors in the log.",
        ),
    }
}

const FIX_PUSH_UPLOAD: &str = "Make a certificate request (guardmdm apns csr, or Settings > \
Push certificate), have it signed, upload it at Apple's Push Certificates Portal \
(identity.apple.com), and upload Apple's certificate: guardmdm apns upload --cert FILE.";

/// The push certificate: present, readable with its key, an MDM topic, and its expiry.
pub fn push_certificate(view: Result<Option<&PushCertificateView>, &String>) -> Finding {
    const CHECK: &str = "push_certificate";
    let view = match view {
        Ok(Some(view)) if view.state != PushCertificateState::Missing => view,
        Ok(_) => {
            return Finding::blocking(
                CHECK,
                "No MDM push certificate: devices cannot enroll without its topic.",
                FIX_PUSH_UPLOAD,
            );
        }
        Err(e) => {
            return Finding::blocking(
                CHECK,
                format!("The stored push certificate cannot be used: {e}."),
                FIX_PUSH_UPLOAD,
            );
        }
    };
    let topic = &view.topic;
    if !topic.starts_with(guardmdm_crypto::push_certificate::MDM_TOPIC_PREFIX) {
        return Finding::blocking(
            CHECK,
            format!("The push certificate's topic {topic} is not an MDM topic."),
            FIX_PUSH_UPLOAD,
        );
    }
    let date = view.not_after.date();
    match view.state {
        PushCertificateState::Expired => Finding::blocking(
            CHECK,
            format!(
                "The push certificate (topic {topic}) expired on {date}: devices cannot be pushed and new ones cannot enroll."
            ),
            "Renew it at identity.apple.com with the same Apple Account (same topic) and upload it: guardmdm apns upload.",
        ),
        PushCertificateState::Expiring => Finding::warning(
            CHECK,
            format!(
                "The push certificate (topic {topic}) expires {} ({date}).",
                health::expires_in(view.days_left)
            ),
            "Renew it at identity.apple.com with the same Apple Account (a new certificate would have another topic and orphan every device), then upload it: guardmdm apns upload.",
        ),
        // Missing is refused above: a view is of a certificate.
        PushCertificateState::Active | PushCertificateState::Missing => Finding::ok(
            CHECK,
            format!(
                "The push certificate's key matches it; topic {topic}, valid until {date} ({} days).",
                view.days_left
            ),
        ),
    }
}

/// A connection to APNs with the push certificate.
pub fn apns(endpoint: &str, probe: &ApnsProbe) -> Finding {
    const CHECK: &str = "apns";
    let how = if endpoint.starts_with("http://") {
        "over cleartext HTTP/2 (a push simulator)"
    } else {
        "with a TLS handshake using the push certificate"
    };
    match probe {
        ApnsProbe::NoCertificate => Finding::warning(
            CHECK,
            format!(
                "APNs at {endpoint} was not tried: there is no push certificate to connect with."
            ),
            FIX_PUSH_UPLOAD,
        ),
        ApnsProbe::Answered(status) => Finding::ok(
            CHECK,
            format!("Connected to APNs at {endpoint} {how} (it answered HTTP {status})."),
        ),
        ApnsProbe::Failed(why) => Finding::blocking(
            CHECK,
            format!(
                "Cannot connect to APNs at {endpoint} {how}: {why}. Devices would enroll, but no command would reach them afterwards (one awaiting DeviceConfigured stays in Setup Assistant)."
            ),
            "Allow outgoing connections to api.push.apple.com on port 443 (or --apns-url); a handshake refused by Apple means the push certificate was revoked: renew it at identity.apple.com.",
        ),
    }
}

/// No ABM entry at all.
pub fn no_abm_entries() -> Finding {
    Finding::blocking(
        "abm",
        "No ABM entry: Apple Business Manager does not know this server, so no device is sent to it on first power-on.",
        "Connect Apple Business Manager: guardmdm abm token create NAME, upload the public key in ABM (Settings > MDM Server), then guardmdm abm token upload NAME FILE.",
    )
}

/// One ABM entry: its server token's health and its last sync.
///
/// A token that is missing, expired, rejected or waiting for Apple's terms blocks (devices
/// assigned to that MDM server get no profile); an expiring token warns. A sync that never
/// ran or last failed warns: devices Apple already sent keep their profiles, and the next
/// scheduled sync (every 5 minutes) tries again.
pub fn abm_entry(entry: &AbmEntryView, last: Option<&SyncRun>, now: OffsetDateTime) -> Finding {
    let check = format!("abm:{}", entry.name);
    let name = &entry.name;
    let health = &entry.health;
    match health.state {
        TokenState::Pending | TokenState::Expired => {
            return Finding::blocking(
                check,
                format!("ABM entry {name}: {}", health.message),
                format!(
                    "guardmdm abm token upload {name} FILE once you have the server token from Apple Business Manager (Settings > MDM Server). Until then devices assigned to it get no profile."
                ),
            );
        }
        TokenState::Rejected | TokenState::TermsNotSigned => {
            return Finding::blocking(
                check,
                format!("ABM entry {name}: {}", health.message),
                "Act in Apple Business Manager as the message says, then Sync Now. Until then the entry does not sync and its new devices get no profile.",
            );
        }
        TokenState::Expiring => {
            return Finding::warning(
                check,
                format!("ABM entry {name}: {}", health.message),
                format!(
                    "Download a new server token for this MDM server in Apple Business Manager and upload it: guardmdm abm token upload {name} FILE."
                ),
            );
        }
        TokenState::Active => {}
    }
    let Some(run) = last else {
        return Finding::warning(
            check,
            format!(
                "ABM entry {name}: the token is valid, but it has never synced, so no device assigned to it in ABM is known yet."
            ),
            format!(
                "Wait for the scheduled sync (every 5 minutes) or start one: guardmdm abm sync {name} --wait."
            ),
        );
    };
    let when = run.finished_at.unwrap_or(run.started_at);
    let ago = (now - when).whole_minutes();
    match run.outcome.as_str() {
        "succeeded" | "running" => Finding::ok(
            check,
            format!(
                "ABM entry {name}: the token is valid until {}; the last sync {} {ago} minutes ago.",
                health
                    .expires_at
                    .map_or_else(|| "?".to_string(), |d| d.date().to_string()),
                if run.outcome == "running" {
                    "started"
                } else {
                    "succeeded"
                }
            ),
        ),
        outcome => Finding::warning(
            check,
            format!(
                "ABM entry {name}: the last sync {outcome} {ago} minutes ago: {}. Devices assigned in ABM since the last good sync have no profile yet; those synced before keep theirs.",
                run.error.as_deref().unwrap_or("no reason recorded")
            ),
            format!(
                "Fix what the error says, then start a sync: guardmdm abm sync {name} --wait (the schedule also retries every 5 minutes)."
            ),
        ),
    }
}

/// The skew between this clock and Apple's (`Date` of the ABM API), in seconds.
pub fn clock(abm_url: &str, skew: Result<i64, &String>) -> Finding {
    const CHECK: &str = "clock";
    const WHY: &str = "Apple refuses the OAuth timestamps of ABM calls from a clock that is minutes off, and certificates (device identities, HTTPS, the push certificate) look not yet valid or expired.";
    const FIX: &str = "Synchronise the clock with NTP (timedatectl set-ntp true, or chrony).";
    let skew = match skew {
        Ok(skew) => skew,
        Err(e) => {
            return Finding::warning(
                CHECK,
                format!("Apple's time could not be read from {abm_url}: {e}."),
                "Allow outgoing HTTPS to the ABM API (mdmenrollment.apple.com, or --abm-url): device sync needs it too.",
            );
        }
    };
    let how = if skew >= 0 { "behind" } else { "ahead of" };
    let secs = skew.unsigned_abs();
    let summary = format!("This server's clock is {secs} s {how} Apple's ({abm_url}).");
    if secs > SKEW_BLOCKING_SECONDS.unsigned_abs() {
        Finding::blocking(CHECK, format!("{summary} {WHY}"), FIX)
    } else if secs > SKEW_WARNING_SECONDS.unsigned_abs() {
        Finding::warning(CHECK, format!("{summary} Beyond 5 minutes: {WHY}"), FIX)
    } else {
        Finding::ok(CHECK, summary)
    }
}

/// The SCEP CA that issues device identities: valid now, and for how long.
pub fn scep_ca(
    validity: Result<(OffsetDateTime, OffsetDateTime), String>,
    now: OffsetDateTime,
) -> Finding {
    const CHECK: &str = "scep_ca";
    let (not_before, not_after) = match validity {
        Ok(validity) => validity,
        Err(e) => {
            return Finding::blocking(
                CHECK,
                format!("The SCEP CA cannot be loaded: {e}."),
                "Check that the secret key is the one the database was first used with and see the server log.",
            );
        }
    };
    let left = not_after - now;
    let date = not_after.date();
    let issued = Duration::days(i64::from(guardmdm_crypto::scep::ISSUED_DAYS));
    if not_before > now {
        Finding::blocking(
            CHECK,
            format!(
                "The SCEP CA is not valid before {}: devices cannot get an identity.",
                not_before.date()
            ),
            "Check this server's clock (see the clock finding).",
        )
    } else if left <= Duration::ZERO {
        Finding::blocking(
            CHECK,
            format!(
                "The SCEP CA expired on {date}: devices cannot get an identity, and enrolled devices' identities no longer verify."
            ),
            "The CA cannot be renewed in place: devices must enroll again after a new CA is created. Report this at the project's issue tracker.",
        )
    } else if left <= issued {
        Finding::warning(
            CHECK,
            format!(
                "The SCEP CA expires in {} days ({date}), before the device identities it issues now (valid {} days).",
                left.whole_days(),
                issued.whole_days()
            ),
            "Plan re-enrollment of devices before the CA expires.",
        )
    } else {
        Finding::ok(
            CHECK,
            format!(
                "The SCEP CA is valid until {date} ({} days).",
                left.whole_days()
            ),
        )
    }
}

/// Whether the database answers.
pub fn database(backend: &str, ping: Result<(), String>) -> Finding {
    match ping {
        Ok(()) => Finding::ok("database", format!("The {backend} database answers.")),
        Err(e) => Finding::blocking(
            "database",
            format!("The {backend} database does not answer: {e}."),
            "Check that the database server runs and is reachable with --database-url, and that the disk is not full.",
        ),
    }
}

/// Whether every migration of this binary is applied, none failed and none is unknown.
pub fn migrations(status: Result<MigrationStatus, String>) -> Finding {
    const CHECK: &str = "migrations";
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            return Finding::blocking(
                CHECK,
                format!("The applied migrations cannot be read: {e}."),
                "See the server log.",
            );
        }
    };
    let list = |v: &[i64]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !status.failed.is_empty() {
        return Finding::blocking(
            CHECK,
            format!("Migrations {} failed midway.", list(&status.failed)),
            "Restore the database from the backup made before the upgrade, then start GuardMDM again (the server log of the failed start has the reason).",
        );
    }
    let unknown = status.unknown();
    if !unknown.is_empty() {
        return Finding::blocking(
            CHECK,
            format!(
                "The database has migrations this GuardMDM does not know ({}): a newer version migrated it.",
                list(&unknown)
            ),
            "Upgrade this instance to the version that migrated the database (every instance sharing it must run the same version).",
        );
    }
    let missing = status.missing();
    if !missing.is_empty() {
        return Finding::blocking(
            CHECK,
            format!(
                "Migrations {} of this GuardMDM are not applied.",
                list(&missing)
            ),
            "Restart GuardMDM: it applies its migrations at start-up.",
        );
    }
    Finding::ok(
        CHECK,
        format!(
            "All {} migrations of this GuardMDM are applied, and no other.",
            status.known.len()
        ),
    )
}

fn bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= 1024 * MIB {
        format!("{:.1} GiB", n as f64 / (1024 * MIB) as f64)
    } else {
        format!("{} MiB", n / MIB)
    }
}

/// Free space in the data dir: `(free, total)` bytes.
pub fn disk(dir: &Path, space: Result<(u64, u64), String>) -> Finding {
    const CHECK: &str = "disk";
    let dir = dir.display();
    let (free, total) = match space {
        Ok(space) => space,
        Err(e) => {
            return Finding::warning(
                CHECK,
                format!("The free space in {dir} cannot be read: {e}."),
                "Check that the data dir exists and is readable by GuardMDM.",
            );
        }
    };
    let percent = free.saturating_mul(100).checked_div(total).unwrap_or(0);
    let summary = format!(
        "{} free of {} ({percent} %) in the data dir {dir}.",
        bytes(free),
        bytes(total)
    );
    const FIX: &str = "Free space on that file system or grow it: the SQLite database, its WAL and the logs need room to write.";
    if free < DISK_BLOCKING_BYTES {
        Finding::blocking(
            CHECK,
            format!("{summary} Writes (enrollments, syncs) are about to fail."),
            FIX,
        )
    } else if free < DISK_WARNING_BYTES || percent < DISK_WARNING_PERCENT {
        Finding::warning(CHECK, summary, FIX)
    } else {
        Finding::ok(CHECK, summary)
    }
}

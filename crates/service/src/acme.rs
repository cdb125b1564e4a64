//! Certificates over ACME (`serve --acme`): what several instances sharing one database keep
//! there, and the rules of when to order.
//!
//! The ACME account's credentials, the certificate with its private key, and the state of
//! the order in progress (its pending TLS-ALPN-01 challenges, the failures so far, when to
//! retry, the CA's last complaint) are sealed with the secret key and stored in the database,
//! so every instance serves the same certificate, whichever instance the CA reaches can
//! answer its challenge, and a failure is reported by all of them. Only the instance holding
//! the lease [`ACME_LEASE`] orders. The ACME protocol itself and the serving side live in the
//! `guardmdm` binary; the rules here ([`renewal_at`], [`order_due_at`], [`retry_delay`],
//! [`validate_domains`]) are plain functions.

use std::sync::Arc;

use guardmdm_crypto::SecretKey;
use guardmdm_store::{NewAuditEvent, Store};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::ServiceError;

/// The lease of the instance that orders certificates.
pub const ACME_LEASE: &str = "acme_order";
/// Let's Encrypt's production directory, the default of `--acme-directory`.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// The wait after the first failed order; it doubles with each further failure…
pub const RETRY_FIRST: Duration = Duration::minutes(1);
/// …up to this.
pub const RETRY_MAX: Duration = Duration::hours(6);

const ACCOUNT_SECRET: &str = "acme_account";
const CERTIFICATE_SECRET: &str = "acme_certificate";
const ORDER_SECRET: &str = "acme_order";

/// When a certificate valid from `not_before` to `not_after` is renewed: after two thirds of
/// its lifetime (day 60 of Let's Encrypt's 90).
pub fn renewal_at(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    not_before + (not_after - not_before) * 2 / 3
}

/// How long to wait after the `failures`-th failure in a row before ordering again: one
/// minute, doubling each time, at most six hours.
pub fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let delay = RETRY_FIRST * 2_i32.pow(doublings);
    delay.min(RETRY_MAX)
}

/// When the next order is due: at once when there is no certificate or it is not for
/// exactly `wanted` (the `--acme` names changed), else at its [`renewal_at`]; never before
/// `retry_at` (the back-off after a failure).
pub fn order_due_at(
    certificate: Option<&AcmeCertificate>,
    wanted: &[String],
    retry_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> OffsetDateTime {
    let due = match certificate {
        Some(c) if same_names(&c.domains, wanted) => renewal_at(c.not_before, c.not_after),
        _ => now,
    };
    retry_at.map_or(due, |retry| due.max(retry))
}

fn same_names(a: &[String], b: &[String]) -> bool {
    let norm = |names: &[String]| {
        let mut names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
        names.sort();
        names.dedup();
        names
    };
    norm(a) == norm(b)
}

/// Checks the `--acme` names: DNS names (letters, digits, hyphens; at least two labels; no
/// wildcard, which TLS-ALPN-01 cannot validate; no IP address), lower-cased, without
/// repeats, in the order given.
///
/// # Errors
/// Names the first bad name and what is wrong with it.
pub fn validate_domains(names: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for raw in names {
        let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Err("an empty name in the list".to_string());
        }
        if name.starts_with("*.") {
            return Err(format!(
                "{name}: a wildcard needs the DNS-01 challenge; GuardMDM validates with \
                 TLS-ALPN-01, so list each name"
            ));
        }
        if name.len() > 253 {
            return Err(format!("{name}: longer than 253 characters"));
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return Err(format!(
                "{name}: not a fully qualified DNS name (like mdm.example.com)"
            ));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(format!(
                    "{name}: \"{label}\" is not a DNS label (letters, digits and inner hyphens, \
                     1 to 63 characters)"
                ));
            }
        }
        if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
            return Err(format!(
                "{name}: an IP address; ACME certificates here are for DNS names"
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    if out.is_empty() {
        return Err("no name given".to_string());
    }
    Ok(out)
}

/// The certificate obtained over ACME, as stored (sealed) in the database.
#[derive(Clone, Serialize, Deserialize)]
pub struct AcmeCertificate {
    /// The names it was ordered for.
    pub domains: Vec<String>,
    /// The chain the CA issued (PEM, the server certificate first).
    pub chain_pem: String,
    /// Its private key (PKCS#8 PEM).
    #[serde(with = "secret_string")]
    pub key_pem: SecretString,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for AcmeCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeCertificate")
            .field("domains", &self.domains)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A TLS-ALPN-01 challenge the CA is about to check: every instance answers `acme-tls/1`
/// handshakes for `domain` with a certificate carrying `digest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PendingChallenge {
    /// The name being validated.
    pub domain: String,
    /// SHA-256 of the key authorization (RFC 8737 §3), for the acmeIdentifier extension.
    pub digest: Vec<u8>,
}

/// The ordering state every instance reads: pending challenges, the failures so far and
/// the CA's last complaint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// Challenges to answer now.
    pub challenges: Vec<PendingChallenge>,
    /// Failed orders in a row.
    pub failures: u32,
    /// No order before this (the back-off after a failure).
    #[serde(with = "time::serde::rfc3339::option")]
    pub retry_at: Option<OffsetDateTime>,
    /// Why the last order failed, in the CA's words.
    pub problem: Option<String>,
}

impl OrderState {
    /// The state after one more failure at `now`, for `problem`.
    #[must_use]
    pub fn failed(&self, problem: String, now: OffsetDateTime) -> Self {
        let failures = self.failures.saturating_add(1);
        Self {
            challenges: Vec::new(),
            failures,
            retry_at: Some(now + retry_delay(failures)),
            problem: Some(problem),
        }
    }
}

/// The ACME state in the database, sealed with the secret key.
#[derive(Clone)]
pub struct AcmeService {
    store: Arc<dyn Store>,
    secrets: Arc<SecretKey>,
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: serde_json::Value,
}

impl AcmeService {
    /// Over `store`, sealing with `secrets`.
    pub fn new(store: Arc<dyn Store>, secrets: Arc<SecretKey>) -> Self {
        Self { store, secrets }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ServiceError> {
        let Some(sealed) = self.store.get_secret(name).await? else {
            return Ok(None);
        };
        let json = self.secrets.open(&sealed, name)?;
        serde_json::from_slice(json.expose_secret())
            .map(Some)
            .map_err(|e| ServiceError::Internal(format!("the stored {name} is unreadable: {e}")))
    }

    async fn write<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        action: &str,
        details: serde_json::Value,
    ) -> Result<(), ServiceError> {
        let json = serde_json::to_vec(value)
            .map_err(|e| ServiceError::Internal(format!("encoding the {name}: {e}")))?;
        let sealed = self.secrets.seal(&json, name)?;
        let audit = NewAuditEvent {
            at: guardmdm_store::now(),
            actor: "system".to_string(),
            action: action.to_string(),
            target: "acme".to_string(),
            details,
        };
        self.store.put_secret(name, &sealed, &audit).await?;
        Ok(())
    }

    /// The stored account's credentials (instant-acme's JSON) if it was made at `directory`.
    ///
    /// # Errors
    /// The database, or a stored value the secret key cannot open.
    pub async fn account(&self, directory: &str) -> Result<Option<SecretString>, ServiceError> {
        let stored: Option<StoredAccount> = self.read(ACCOUNT_SECRET).await?;
        Ok(stored
            .filter(|a| a.directory == directory)
            .map(|a| SecretString::from(a.credentials.to_string())))
    }

    /// Stores the account made at `directory` (its credentials as JSON).
    ///
    /// # Errors
    /// Credentials that are not JSON, or the database.
    pub async fn save_account(
        &self,
        directory: &str,
        credentials: &SecretString,
    ) -> Result<(), ServiceError> {
        let credentials = serde_json::from_str(credentials.expose_secret())
            .map_err(|e| ServiceError::Internal(format!("ACME credentials: {e}")))?;
        let stored = StoredAccount {
            directory: directory.to_string(),
            credentials,
        };
        self.write(
            ACCOUNT_SECRET,
            &stored,
            "acme.account_create",
            serde_json::json!({ "directory": directory }),
        )
        .await
    }

    /// The certificate in the database, if any.
    ///
    /// # Errors
    /// The database, or a stored value the secret key cannot open.
    pub async fn certificate(&self) -> Result<Option<AcmeCertificate>, ServiceError> {
        self.read(CERTIFICATE_SECRET).await
    }

    /// Stores a newly issued certificate (every instance serves it from its next poll).
    ///
    /// # Errors
    /// The database.
    pub async fn save_certificate(
        &self,
        certificate: &AcmeCertificate,
    ) -> Result<(), ServiceError> {
        self.write(
            CERTIFICATE_SECRET,
            certificate,
            "acme.certificate_issued",
            serde_json::json!({
                "domains": certificate.domains,
                "not_before": certificate.not_before.to_string(),
                "not_after": certificate.not_after.to_string(),
            }),
        )
        .await
    }

    /// The ordering state (empty when nothing was ever ordered).
    ///
    /// # Errors
    /// The database, or a stored value the secret key cannot open.
    pub async fn order_state(&self) -> Result<OrderState, ServiceError> {
        Ok(self.read(ORDER_SECRET).await?.unwrap_or_default())
    }

    /// Stores the ordering state, with `action` (`acme.order_started`, `acme.order_failed`,
    /// `acme.order_finished`) in the audit log.
    ///
    /// # Errors
    /// The database.
    pub async fn save_order_state(
        &self,
        state: &OrderState,
        action: &str,
    ) -> Result<(), ServiceError> {
        let details = serde_json::json!({
            "challenges": state.challenges.iter().map(|c| &c.domain).collect::<Vec<_>>(),
            "failures": state.failures,
            "retry_at": state.retry_at.map(|t| t.to_string()),
            "problem": state.problem,
        });
        self.write(ORDER_SECRET, state, action, details).await
    }

    /// Takes (or extends) the ordering lease for `holder` for `ttl`; `false` while another
    /// instance holds it.
    ///
    /// # Errors
    /// The database.
    pub async fn claim(&self, holder: &str, ttl: Duration) -> Result<bool, ServiceError> {
        let now = guardmdm_store::now();
        Ok(self
            .store
            .claim_lease(ACME_LEASE, holder, now, now + ttl)
            .await?)
    }

    /// Gives the ordering lease up.
    ///
    /// # Errors
    /// The database.
    pub async fn release(&self, holder: &str) -> Result<(), ServiceError> {
        Ok(self.store.release_lease(ACME_LEASE, holder).await?)
    }
}

mod secret_string {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.expose_secret())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        String::deserialize(d).map(SecretString::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guardmdm_store_sqlite::SqliteStore;
    use time::macros::datetime;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    fn certificate(domains: &[&str], nb: OffsetDateTime, na: OffsetDateTime) -> AcmeCertificate {
        AcmeCertificate {
            domains: names(domains),
            chain_pem: "-----BEGIN CERTIFICATE-----".to_string(),
            key_pem: SecretString::from("-----BEGIN PRIVATE KEY-----"),
            not_before: nb,
            not_after: na,
        }
    }

    #[test]
    fn renewal_is_at_two_thirds_of_the_lifetime() {
        let nb = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(
            renewal_at(nb, nb + Duration::days(90)),
            nb + Duration::days(60)
        );
        assert_eq!(
            renewal_at(nb, nb + Duration::seconds(30)),
            nb + Duration::seconds(20)
        );
    }

    #[test]
    fn retries_back_off_from_a_minute_to_six_hours() {
        assert_eq!(retry_delay(1), Duration::minutes(1));
        assert_eq!(retry_delay(2), Duration::minutes(2));
        assert_eq!(retry_delay(3), Duration::minutes(4));
        assert_eq!(retry_delay(9), Duration::minutes(256));
        assert_eq!(retry_delay(10), Duration::hours(6));
        assert_eq!(retry_delay(u32::MAX), Duration::hours(6));
        assert_eq!(retry_delay(0), Duration::minutes(1));
        let now = datetime!(2026-01-01 00:00 UTC);
        let once = OrderState::default().failed("no".to_string(), now);
        let twice = once.failed("again".to_string(), now);
        assert_eq!(twice.failures, 2);
        assert_eq!(twice.retry_at, Some(now + Duration::minutes(2)));
        assert_eq!(twice.problem.as_deref(), Some("again"));
    }

    #[test]
    fn orders_are_due_without_a_certificate_for_new_names_and_at_renewal() {
        let now = datetime!(2026-03-01 00:00 UTC);
        let nb = datetime!(2026-02-01 00:00 UTC);
        let wanted = names(&["mdm.example.com"]);
        assert_eq!(order_due_at(None, &wanted, None, now), now);
        let cert = certificate(&["MDM.example.com"], nb, nb + Duration::days(90));
        assert_eq!(
            order_due_at(Some(&cert), &wanted, None, now),
            nb + Duration::days(60)
        );
        let more = names(&["mdm.example.com", "mdm2.example.com"]);
        assert_eq!(order_due_at(Some(&cert), &more, None, now), now);
        let later = now + Duration::hours(1);
        assert_eq!(order_due_at(None, &wanted, Some(later), now), later);
        assert_eq!(
            order_due_at(Some(&cert), &wanted, Some(later), now),
            nb + Duration::days(60)
        );
    }

    #[test]
    fn domains_are_dns_names() {
        assert_eq!(
            validate_domains(&names(&[
                "MDM.Example.com.",
                "b.example.com",
                "mdm.example.com"
            ]))
            .unwrap(),
            names(&["mdm.example.com", "b.example.com"])
        );
        for (bad, why) in [
            ("*.example.com", "wildcard"),
            ("localhost", "fully qualified"),
            ("a..example.com", "not a DNS label"),
            ("-a.example.com", "not a DNS label"),
            ("a_b.example.com", "not a DNS label"),
            ("127.0.0.1", "IP address"),
            ("", "empty"),
        ] {
            let err = validate_domains(&names(&[bad])).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(validate_domains(&[]).unwrap_err().contains("no name"));
    }

    #[tokio::test]
    async fn state_is_sealed_in_the_database_and_the_lease_has_one_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("g.db")).await.unwrap());
        let key = Arc::new(SecretKey::generate().unwrap());
        let acme = AcmeService::new(store.clone(), key.clone());
        assert!(acme.certificate().await.unwrap().is_none());
        assert_eq!(acme.order_state().await.unwrap(), OrderState::default());
        assert!(acme.account("https://ca/dir").await.unwrap().is_none());

        acme.save_account("https://ca/dir", &SecretString::from(r#"{"id":"x"}"#))
            .await
            .unwrap();
        let creds = acme.account("https://ca/dir").await.unwrap().unwrap();
        assert_eq!(creds.expose_secret(), r#"{"id":"x"}"#);
        assert!(acme.account("https://other/dir").await.unwrap().is_none());

        let nb = datetime!(2026-02-01 00:00 UTC);
        let cert = certificate(&["mdm.example.com"], nb, nb + Duration::days(90));
        acme.save_certificate(&cert).await.unwrap();
        let back = acme.certificate().await.unwrap().unwrap();
        assert_eq!(back.domains, cert.domains);
        assert_eq!(back.key_pem.expose_secret(), cert.key_pem.expose_secret());
        assert_eq!(back.not_after, cert.not_after);
        let sealed = store.get_secret(CERTIFICATE_SECRET).await.unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"),
            "the key is sealed"
        );
        assert!(!format!("{back:?}").contains("PRIVATE KEY"));

        let state = OrderState {
            challenges: vec![PendingChallenge {
                domain: "mdm.example.com".to_string(),
                digest: vec![1; 32],
            }],
            ..OrderState::default()
        };
        acme.save_order_state(&state, "acme.order_started")
            .await
            .unwrap();
        assert_eq!(acme.order_state().await.unwrap(), state);

        // Another key cannot read any of it.
        let other = AcmeService::new(store, Arc::new(SecretKey::generate().unwrap()));
        assert!(other.certificate().await.is_err());

        assert!(acme.claim("a", Duration::minutes(5)).await.unwrap());
        assert!(!acme.claim("b", Duration::minutes(5)).await.unwrap());
        acme.release("a").await.unwrap();
        assert!(acme.claim("b", Duration::minutes(5)).await.unwrap());
    }
}

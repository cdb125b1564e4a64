//! Certificates over ACME (`serve --acme`): what several instances sharing one database keep
//! there, and the rules of when to order.
//!
//! The ACME account's credentials, the certificate with its private key, and the state of
//! the order in progress (its pending TLS-ALPN-01 challenges, the failures so far, when to
//! retry, the CA's last complaint) are sealed with the secret key and stored in the database,
//! so every instance serves the same certificate, whichever instance the CA reaches can
//! answer its challenge, and a failure is reported by all of them. Only the instance holding
//! the lease [`ACME_LEASE`] orders.
//!
//! [`AcmeJob`] is each instance's loop: every poll interval it installs what the database
//! holds through [`AcmeServing`] and keeps [`TlsStatus`] true, and when an order is due it
//! takes the lease and orders through [`AcmeClient`]. The ACME protocol (instant-acme) and
//! the serving side (rustls) implement those two traits in the `guardmdm` binary; the rules
//! ([`renewal_at`], [`order_due_at`], [`retry_delay`], [`validate_domains`]) are plain
//! functions.

use std::sync::Arc;

use async_trait::async_trait;
use guardmdm_crypto::SecretKey;
use guardmdm_store::{MdmStore, MetaStore, NewAuditEvent, Store};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::ServiceError;
use crate::tls_status::{ServedCertificate, TlsStatus};

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
pub struct AcmeService<S: ?Sized = dyn Store> {
    store: Arc<S>,
    secrets: Arc<SecretKey>,
}

impl<S: ?Sized> Clone for AcmeService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            secrets: self.secrets.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    /// instant-acme's credentials (JSON), kept as the text it gave.
    #[serde(with = "secret_string")]
    credentials: SecretString,
}

impl<S: ?Sized + MdmStore + MetaStore> AcmeService<S> {
    /// Over `store`, sealing with `secrets`.
    pub fn new(store: Arc<S>, secrets: Arc<SecretKey>) -> Self {
        Self { store, secrets }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, ServiceError> {
        crate::secrets::read_json(self.store.as_ref(), &self.secrets, name).await
    }

    async fn write<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        action: &str,
        details: serde_json::Value,
    ) -> Result<(), ServiceError> {
        let audit = NewAuditEvent {
            at: guardmdm_store::now(),
            actor: "system".to_string(),
            action: action.to_string(),
            target: "acme".to_string(),
            details,
        };
        crate::secrets::write_json(self.store.as_ref(), &self.secrets, name, value, &audit).await
    }

    /// The stored account's credentials (instant-acme's JSON) if it was made at `directory`.
    ///
    /// # Errors
    /// The database, or a stored value the secret key cannot open.
    pub async fn account(&self, directory: &str) -> Result<Option<SecretString>, ServiceError> {
        let stored: Option<StoredAccount> = self.read(ACCOUNT_SECRET).await?;
        Ok(stored
            .filter(|a| a.directory == directory)
            .map(|a| a.credentials))
    }

    /// Stores the account made at `directory` (its credentials, instant-acme's JSON).
    ///
    /// # Errors
    /// The database.
    pub async fn save_account(
        &self,
        directory: &str,
        credentials: &SecretString,
    ) -> Result<(), ServiceError> {
        let stored = StoredAccount {
            directory: directory.to_string(),
            credentials: credentials.clone(),
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

/// The serving side of this instance: the certificate and challenges it answers with.
pub trait AcmeServing: Send + Sync {
    /// Serves `certificate` to new connections from now on; returns what it serves.
    ///
    /// # Errors
    /// When the chain or key cannot be served (what is wrong).
    fn serve(&self, certificate: &AcmeCertificate) -> Result<ServedCertificate, String>;

    /// Answers TLS-ALPN-01 validation for exactly these challenges (none: stop answering).
    fn answer(&self, challenges: &[PendingChallenge]);
}

/// The ACME protocol: one order, from the new order to the certificate.
#[async_trait]
pub trait AcmeClient: Send + Sync {
    /// Orders a certificate for `domains`. Before telling the CA a challenge is ready, it
    /// hands the challenges to [`OrderContext::publish`], which returns once every instance
    /// answers them.
    ///
    /// # Errors
    /// What to tell the admin, in the CA's words where it gave some.
    async fn order(
        &self,
        domains: &[String],
        context: &OrderContext<'_>,
    ) -> Result<AcmeCertificate, String>;
}

/// What an order in progress may do with the shared state.
pub struct OrderContext<'a> {
    job: &'a AcmeJob,
}

impl OrderContext<'_> {
    /// The stored account's credentials for `directory`, if any (see
    /// [`AcmeService::account`]).
    ///
    /// # Errors
    /// The database, as a message.
    pub async fn account(&self, directory: &str) -> Result<Option<SecretString>, String> {
        self.job
            .service
            .account(directory)
            .await
            .map_err(|e| format!("reading the ACME account from the database: {e}"))
    }

    /// Stores the account made at `directory`.
    ///
    /// # Errors
    /// The database, as a message.
    pub async fn save_account(
        &self,
        directory: &str,
        credentials: &SecretString,
    ) -> Result<(), String> {
        self.job
            .service
            .save_account(directory, credentials)
            .await
            .map_err(|e| format!("storing the ACME account: {e}"))
    }

    /// Publishes the challenges in the database and answers them here, then waits one poll
    /// interval (and a little) so every instance answers them too.
    ///
    /// # Errors
    /// The database, as a message.
    pub async fn publish(&self, challenges: &[PendingChallenge]) -> Result<(), String> {
        if challenges.is_empty() {
            return Ok(());
        }
        let mut state = self
            .job
            .service
            .order_state()
            .await
            .map_err(|e| format!("reading the order state: {e}"))?;
        state.challenges = challenges.to_vec();
        self.job
            .service
            .save_order_state(&state, "acme.order_started")
            .await
            .map_err(|e| format!("publishing the challenges: {e}"))?;
        self.job.serving.answer(challenges);
        tokio::time::sleep(self.job.poll_interval + std::time::Duration::from_millis(500)).await;
        Ok(())
    }
}

/// How long the ordering lease lasts; an order is given up well before
/// ([`ORDER_TIMEOUT`]), so a lease only lapses when its instance died.
pub const LEASE_TTL: Duration = Duration::minutes(10);
/// The longest one order may take, from the new order to the certificate.
pub const ORDER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// One instance's ACME loop (see the module documentation).
pub struct AcmeJob {
    service: AcmeService,
    domains: Vec<String>,
    poll_interval: std::time::Duration,
    status: Arc<TlsStatus>,
    serving: Arc<dyn AcmeServing>,
    client: Arc<dyn AcmeClient>,
    /// This instance's name in the ordering lease.
    holder: String,
    /// The chain now served, to install a new one only when it changes.
    installed: Option<String>,
    /// The problem last shown in `status`.
    shown_problem: Option<String>,
}

impl AcmeJob {
    /// A job for `domains` (checked by [`validate_domains`]) that reads the database every
    /// `poll_interval`, serves through `serving`, orders through `client` and reports in
    /// `status`. `holder` names this instance in the ordering lease (the instance's one
    /// name, as in the sync leases: [`crate::dep_sync::SyncService::holder`]).
    pub fn new(
        service: AcmeService,
        domains: Vec<String>,
        poll_interval: std::time::Duration,
        holder: String,
        status: Arc<TlsStatus>,
        serving: Arc<dyn AcmeServing>,
        client: Arc<dyn AcmeClient>,
    ) -> Self {
        Self {
            service,
            domains,
            poll_interval,
            status,
            serving,
            client,
            holder,
            installed: None,
            shown_problem: None,
        }
    }

    /// Runs until `shutdown`: installs what the database holds, and orders when due. An
    /// order in progress is abandoned at shutdown (its lease is released; the next order
    /// replaces its challenges).
    pub async fn run(mut self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            let stepped = tokio::select! {
                () = shutdown.cancelled() => break,
                stepped = self.step() => stepped,
            };
            if let Err(e) = stepped {
                tracing::error!(error = %e, "ACME: cannot read or write the certificate state in the database");
                self.show_problem(Some(format!(
                    "ACME: the certificate state cannot be read from the database: {e}"
                )));
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
        if let Err(e) = self.service.release(&self.holder).await {
            tracing::warn!(error = %e, "ACME: could not release the ordering lease");
        }
    }

    /// One poll: install the database's state, then order if due and no other instance is.
    ///
    /// # Errors
    /// The database.
    pub async fn step(&mut self) -> Result<(), ServiceError> {
        let (certificate, state) = self.sync().await?;
        let now = OffsetDateTime::now_utc();
        let due = order_due_at(certificate.as_ref(), &self.domains, state.retry_at, now);
        if due > now || !self.service.claim(&self.holder, LEASE_TTL).await? {
            return Ok(());
        }
        // Another instance may have finished an order just before the lease was ours.
        let (certificate, state) = self.sync().await?;
        let now = OffsetDateTime::now_utc();
        if order_due_at(certificate.as_ref(), &self.domains, state.retry_at, now) > now {
            return self.service.release(&self.holder).await;
        }
        let outcome = self.order_and_store(state).await;
        self.service.release(&self.holder).await?;
        outcome?;
        self.sync().await?;
        Ok(())
    }

    /// Reads the certificate and the order state from the database and installs them.
    async fn sync(&mut self) -> Result<(Option<AcmeCertificate>, OrderState), ServiceError> {
        let certificate = self.service.certificate().await?;
        let state = self.service.order_state().await?;
        self.serving.answer(&state.challenges);
        if let Some(cert) = &certificate
            && self.installed.as_deref() != Some(cert.chain_pem.as_str())
        {
            match self.serving.serve(cert) {
                Ok(served) => {
                    tracing::info!(names = ?served.names, not_after = %served.not_after, "ACME: serving the certificate");
                    // `served` clears the problem; show_problem sets it again if there is one.
                    self.status.served(served);
                    self.shown_problem = None;
                }
                Err(e) => {
                    tracing::error!(error = %e, "ACME: the stored certificate cannot be served");
                }
            }
            // Tried once per stored chain: the next order replaces a bad one.
            self.installed = Some(cert.chain_pem.clone());
        }
        self.show_problem(state.problem.clone());
        self.status.next_renewal(Some(order_due_at(
            certificate.as_ref(),
            &self.domains,
            state.retry_at,
            OffsetDateTime::now_utc(),
        )));
        Ok((certificate, state))
    }

    fn show_problem(&mut self, problem: Option<String>) {
        if problem == self.shown_problem {
            return;
        }
        match &problem {
            Some(p) => self.status.problem(p.clone()),
            None => self.status.clear_problem(),
        }
        self.shown_problem = problem;
    }

    /// Orders a certificate and stores the outcome: the certificate, or the failure with
    /// the back-off. Errors only for the database.
    async fn order_and_store(&self, before: OrderState) -> Result<(), ServiceError> {
        tracing::info!(names = ?self.domains, "ACME: ordering a certificate");
        let context = OrderContext { job: self };
        let ordered =
            tokio::time::timeout(ORDER_TIMEOUT, self.client.order(&self.domains, &context));
        let outcome = match ordered.await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "the ACME order did not complete within {} minutes",
                ORDER_TIMEOUT.as_secs() / 60
            )),
        };
        // The challenges are withdrawn whatever happened.
        self.serving.answer(&[]);
        match outcome {
            Ok(certificate) => {
                self.service.save_certificate(&certificate).await?;
                self.service
                    .save_order_state(&OrderState::default(), "acme.order_finished")
                    .await?;
                tracing::info!(names = ?certificate.domains, not_after = %certificate.not_after, "ACME: certificate issued");
            }
            Err(problem) => {
                let state = before.failed(format!("ACME: {problem}"), OffsetDateTime::now_utc());
                tracing::error!(
                    problem = %problem,
                    failures = state.failures,
                    retry_at = ?state.retry_at,
                    "ACME: the certificate order failed; retrying later"
                );
                self.service
                    .save_order_state(&state, "acme.order_failed")
                    .await?;
            }
        }
        Ok(())
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
    use secrecy::ExposeSecret;
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

    /// Records what a job serves and answers.
    #[derive(Default)]
    struct FakeServing {
        served: std::sync::Mutex<Vec<String>>,
        answered: std::sync::Mutex<Vec<Vec<PendingChallenge>>>,
    }

    impl AcmeServing for FakeServing {
        fn serve(&self, certificate: &AcmeCertificate) -> Result<ServedCertificate, String> {
            self.served
                .lock()
                .unwrap()
                .push(certificate.chain_pem.clone());
            Ok(ServedCertificate {
                source: crate::tls_status::CertificateSource::Acme,
                names: certificate.domains.clone(),
                not_before: certificate.not_before,
                not_after: certificate.not_after,
                fingerprint: certificate.chain_pem.clone(),
            })
        }

        fn answer(&self, challenges: &[PendingChallenge]) {
            self.answered.lock().unwrap().push(challenges.to_vec());
        }
    }

    /// A CA that issues (or refuses) at once, publishing one challenge first and checking
    /// that it reached another instance's serving side.
    struct FakeCa {
        orders: std::sync::atomic::AtomicU32,
        refuse: Option<String>,
        lifetime: Duration,
        other: Option<(Arc<FakeServing>, tokio::sync::Mutex<AcmeJob>)>,
    }

    #[async_trait]
    impl AcmeClient for FakeCa {
        async fn order(
            &self,
            domains: &[String],
            context: &OrderContext<'_>,
        ) -> Result<AcmeCertificate, String> {
            let n = self
                .orders
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            let challenge = PendingChallenge {
                domain: domains[0].clone(),
                digest: vec![n as u8; 32],
            };
            context.publish(std::slice::from_ref(&challenge)).await?;
            if let Some((serving, job)) = &self.other {
                // The other instance's next poll answers the challenge too.
                job.lock().await.step().await.map_err(|e| e.to_string())?;
                let answered = serving.answered.lock().unwrap().last().cloned();
                assert_eq!(answered, Some(vec![challenge]));
            }
            if let Some(why) = &self.refuse {
                return Err(why.clone());
            }
            let now = OffsetDateTime::now_utc();
            Ok(AcmeCertificate {
                domains: domains.to_vec(),
                chain_pem: format!("chain {n}"),
                key_pem: SecretString::from("key"),
                not_before: now,
                not_after: now + self.lifetime,
            })
        }
    }

    fn fake_ca(refuse: Option<&str>, lifetime: Duration) -> FakeCa {
        FakeCa {
            orders: std::sync::atomic::AtomicU32::new(0),
            refuse: refuse.map(ToString::to_string),
            lifetime,
            other: None,
        }
    }

    async fn services() -> (tempfile::TempDir, AcmeService) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("g.db")).await.unwrap());
        (
            dir,
            AcmeService::new(store, Arc::new(SecretKey::generate().unwrap())),
        )
    }

    fn job(
        service: &AcmeService,
        serving: Arc<FakeServing>,
        ca: Arc<FakeCa>,
    ) -> (AcmeJob, Arc<TlsStatus>) {
        let status = Arc::new(TlsStatus::new(true));
        let job = AcmeJob::new(
            service.clone(),
            names(&["mdm.example.com"]),
            std::time::Duration::from_millis(1),
            format!("instance-{}", uuid::Uuid::new_v4().simple()),
            status.clone(),
            serving,
            ca,
        );
        (job, status)
    }

    #[tokio::test]
    async fn one_instance_orders_and_the_others_serve_what_it_stored() {
        let (_dir, service) = services().await;
        let b_serving = Arc::new(FakeServing::default());
        let b_ca = Arc::new(fake_ca(None, Duration::days(90)));
        let (b, b_status) = job(&service, b_serving.clone(), b_ca.clone());
        let b = tokio::sync::Mutex::new(b);
        let a_serving = Arc::new(FakeServing::default());
        let a_ca = Arc::new(FakeCa {
            other: Some((b_serving.clone(), b)),
            ..fake_ca(None, Duration::days(90))
        });
        let (mut a, a_status) = job(&service, a_serving.clone(), a_ca.clone());

        a.step().await.unwrap();
        assert_eq!(a_ca.orders.load(std::sync::atomic::Ordering::SeqCst), 1);
        // B answered the challenge while A's order ran; A held the lease, so B did not order.
        assert_eq!(b_ca.orders.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(*a_serving.served.lock().unwrap(), vec!["chain 1"]);
        assert_eq!(
            a_serving.answered.lock().unwrap().last(),
            Some(&Vec::new()),
            "the challenge is withdrawn"
        );
        let state = a_status.snapshot();
        let cert = state.certificate.unwrap();
        assert_eq!(
            state.next_renewal,
            Some(renewal_at(cert.not_before, cert.not_after))
        );
        assert_eq!(service.order_state().await.unwrap(), OrderState::default());

        // B's next poll serves the stored certificate without ordering.
        let (_, b) = a_ca.other.as_ref().unwrap();
        b.lock().await.step().await.unwrap();
        assert_eq!(b_ca.orders.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(*b_serving.served.lock().unwrap(), vec!["chain 1"]);
        assert_eq!(
            b_status.snapshot().certificate.unwrap().fingerprint,
            "chain 1"
        );

        // Nothing is due: polls order nothing.
        a.step().await.unwrap();
        assert_eq!(a_ca.orders.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_problem_shown_without_a_certificate_is_cleared_when_it_is_gone() {
        let (_dir, service) = services().await;
        let serving = Arc::new(FakeServing::default());
        let ca = Arc::new(fake_ca(None, Duration::days(90)));
        let (mut a, status) = job(&service, serving, ca.clone());
        // What `run` shows when a poll cannot reach the database.
        a.show_problem(Some(
            "ACME: the certificate state cannot be read from the database: gone".to_string(),
        ));
        assert!(status.snapshot().problem.is_some());
        // The next poll reads the database (no certificate yet, no failed order).
        a.sync().await.unwrap();
        let state = status.snapshot();
        assert_eq!(state.certificate, None);
        assert_eq!(state.problem, None);
        assert_eq!(ca.orders.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn renewal_is_ordered_when_due_and_served() {
        let (_dir, service) = services().await;
        let serving = Arc::new(FakeServing::default());
        // A zero lifetime makes the renewal due at once.
        let ca = Arc::new(fake_ca(None, Duration::ZERO));
        let (mut a, _status) = job(&service, serving.clone(), ca.clone());
        a.step().await.unwrap();
        a.step().await.unwrap();
        assert_eq!(ca.orders.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(*serving.served.lock().unwrap(), vec!["chain 1", "chain 2"]);
    }

    #[tokio::test]
    async fn a_failure_is_reported_and_retried_after_the_back_off() {
        let (_dir, service) = services().await;
        let serving = Arc::new(FakeServing::default());
        let ca = Arc::new(fake_ca(
            Some("the CA could not validate mdm.example.com: Connection refused"),
            Duration::days(90),
        ));
        let (mut a, status) = job(&service, serving.clone(), ca.clone());
        a.step().await.unwrap();
        let state = status.snapshot();
        assert_eq!(
            state.problem.as_deref(),
            Some("ACME: the CA could not validate mdm.example.com: Connection refused")
        );
        let stored = service.order_state().await.unwrap();
        assert_eq!(stored.failures, 1);
        assert!(stored.challenges.is_empty());
        assert_eq!(state.next_renewal, stored.retry_at);
        assert_eq!(
            crate::tls_status::tls_health(&state, OffsetDateTime::now_utc())
                .unwrap()
                .state,
            crate::tls_status::TlsHealthState::Missing
        );
        // Not again before the back-off ends…
        a.step().await.unwrap();
        assert_eq!(ca.orders.load(std::sync::atomic::Ordering::SeqCst), 1);
        // …then again, and the wait doubles.
        let mut due = stored.clone();
        due.retry_at = Some(OffsetDateTime::now_utc() - Duration::seconds(1));
        service
            .save_order_state(&due, "acme.order_failed")
            .await
            .unwrap();
        let before = OffsetDateTime::now_utc();
        a.step().await.unwrap();
        assert_eq!(ca.orders.load(std::sync::atomic::Ordering::SeqCst), 2);
        let stored = service.order_state().await.unwrap();
        assert_eq!(stored.failures, 2);
        assert!(stored.retry_at.unwrap() >= before + Duration::minutes(2));
    }
}

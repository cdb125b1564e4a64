//! `serve --acme`: the HTTPS certificate obtained and renewed over ACME (RFC 8555) with
//! TLS-ALPN-01 validation (RFC 8737) on the main listener.
//!
//! Every instance runs [`AcmeTask::run`]: every `--acme-poll-interval` it reads the
//! certificate and the pending challenges from the database
//! ([`guardmdm_service::acme::AcmeService`]) and installs them into its
//! [`Certificates`], and keeps [`TlsStatus`] true. When an order is due
//! ([`guardmdm_service::acme::order_due_at`]) the instance that takes the ordering lease
//! orders through `instant-acme`, publishes the challenges in the database (so whichever
//! instance the CA reaches answers), waits one poll interval for the others to pick them up,
//! and stores the certificate; a failure is stored with the CA's words and retried with
//! back-off.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use guardmdm_service::acme::{
    AcmeCertificate, AcmeService, OrderState, PendingChallenge, order_due_at,
};
use guardmdm_service::tls_status::{CertificateSource, TlsStatus};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::config::AcmeSettings;
use crate::tls::Certificates;

/// How long the ordering lease lasts; an order is given up well before
/// ([`ORDER_TIMEOUT`]), so a lease only lapses when its instance died.
const LEASE_TTL: time::Duration = time::Duration::minutes(10);
/// The longest one order may take, from the new order to the certificate.
const ORDER_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long the CA gets to validate the challenges, and to issue the certificate.
const CA_WAIT: Duration = Duration::from_secs(120);

/// The HTTP client of the ACME directory: HTTPS only, trusting the system's roots and
/// those of `--acme-ca-file`.
pub type AcmeHttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// Builds the directory's HTTP client.
///
/// # Errors
/// An unreadable `--acme-ca-file`, or one with no certificate.
pub fn http_client(ca_file: Option<&Path>) -> anyhow::Result<AcmeHttpClient> {
    let extra_roots = match ca_file {
        None => Vec::new(),
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("--acme-ca-file: reading {}", path.display()))?;
            let roots = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    anyhow::anyhow!("--acme-ca-file {}: unreadable PEM: {e}", path.display())
                })?;
            if roots.is_empty() {
                anyhow::bail!(
                    "--acme-ca-file {}: no certificate (\"-----BEGIN CERTIFICATE-----\") found",
                    path.display()
                );
            }
            roots
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .context("--acme-ca-file: setting up certificate verification")?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS for ACME")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// This instance's ACME job.
pub struct AcmeTask {
    settings: AcmeSettings,
    service: AcmeService,
    certificates: Arc<Certificates>,
    status: Arc<TlsStatus>,
    http: AcmeHttpClient,
    /// This instance's name in the ordering lease.
    holder: String,
    /// The chain now served, to install a new one only when it changes.
    installed: Option<String>,
    /// The problem last shown in `status`.
    shown_problem: Option<String>,
    /// The challenges now answered.
    challenges: HashSet<PendingChallenge>,
}

impl AcmeTask {
    /// A job serving into `certificates` and reporting in `status`.
    ///
    /// # Errors
    /// When the directory's HTTP client cannot be built (see [`http_client`]).
    pub fn new(
        settings: AcmeSettings,
        service: AcmeService,
        certificates: Arc<Certificates>,
        status: Arc<TlsStatus>,
    ) -> anyhow::Result<Self> {
        let http = http_client(settings.ca_file.as_deref())?;
        Ok(Self {
            settings,
            service,
            certificates,
            status,
            http,
            holder: uuid::Uuid::new_v4().to_string(),
            installed: None,
            shown_problem: None,
            challenges: HashSet::new(),
        })
    }

    /// Runs until `shutdown`: installs what the database holds, and orders when due.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            // An order in progress is abandoned at shutdown: its lease is released below and
            // its challenges are replaced by the next order's.
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
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        if let Err(e) = self.service.release(&self.holder).await {
            tracing::warn!(error = %e, "ACME: could not release the ordering lease");
        }
    }

    /// One poll: install the database's state, then order if due and nobody else is.
    async fn step(&mut self) -> anyhow::Result<()> {
        let (certificate, state) = self.sync().await?;
        let now = OffsetDateTime::now_utc();
        let due = order_due_at(
            certificate.as_ref(),
            &self.settings.domains,
            state.retry_at,
            now,
        );
        if due > now || !self.service.claim(&self.holder, LEASE_TTL).await? {
            return Ok(());
        }
        // Another instance may have finished an order just before the lease was ours.
        let (certificate, state) = self.sync().await?;
        let now = OffsetDateTime::now_utc();
        if order_due_at(
            certificate.as_ref(),
            &self.settings.domains,
            state.retry_at,
            now,
        ) <= now
        {
            let outcome = self.order_and_store(state).await;
            self.service.release(&self.holder).await?;
            outcome?;
            self.sync().await?;
        } else {
            self.service.release(&self.holder).await?;
        }
        Ok(())
    }

    /// Reads the certificate and the order state from the database and installs them.
    async fn sync(&mut self) -> anyhow::Result<(Option<AcmeCertificate>, OrderState)> {
        let certificate = self.service.certificate().await?;
        let state = self.service.order_state().await?;
        self.install_challenges(&state.challenges);
        if let Some(cert) = &certificate
            && self.installed.as_deref() != Some(cert.chain_pem.as_str())
        {
            match self.install(cert) {
                Ok(()) => self.shown_problem = None,
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
            &self.settings.domains,
            state.retry_at,
            OffsetDateTime::now_utc(),
        )));
        Ok((certificate, state))
    }

    fn install(&self, cert: &AcmeCertificate) -> anyhow::Result<()> {
        let key = crate::tls::certified_key_from_pem(
            cert.chain_pem.as_bytes(),
            cert.key_pem.expose_secret().as_bytes(),
            "the ACME certificate in the database",
        )?;
        let served = crate::tls::served_certificate(&key, CertificateSource::Acme)?;
        self.certificates.set(key);
        tracing::info!(names = ?served.names, not_after = %served.not_after, "ACME: serving the certificate");
        // `served` clears the problem; show_problem sets it again if there still is one.
        self.status.served(served);
        Ok(())
    }

    fn show_problem(&mut self, problem: Option<String>) {
        if problem == self.shown_problem {
            return;
        }
        match &problem {
            Some(p) => self.status.problem(p.clone()),
            None => {
                // Only `served` clears a problem: show the certificate again without one.
                if let Some(cert) = self.status.snapshot().certificate {
                    self.status.served(cert);
                }
            }
        }
        self.shown_problem = problem;
    }

    fn install_challenges(&mut self, wanted: &[PendingChallenge]) {
        let wanted: HashSet<PendingChallenge> = wanted.iter().cloned().collect();
        for gone in self.challenges.difference(&wanted) {
            self.certificates.remove_challenge(&gone.domain);
        }
        for new in wanted.difference(&self.challenges) {
            match challenge_certificate(&new.domain, &new.digest) {
                Ok(key) => self.certificates.set_challenge(&new.domain, key),
                Err(e) => {
                    tracing::error!(error = %e, domain = %new.domain, "ACME: cannot make the TLS-ALPN-01 certificate")
                }
            }
        }
        self.challenges = wanted;
    }

    /// Orders a certificate and stores the outcome: the certificate, or the failure with
    /// the back-off. Errors only for the database.
    async fn order_and_store(&mut self, before: OrderState) -> anyhow::Result<()> {
        tracing::info!(names = ?self.settings.domains, directory = %self.settings.directory, "ACME: ordering a certificate");
        let outcome = match tokio::time::timeout(ORDER_TIMEOUT, self.order()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "the ACME order did not complete within {} minutes",
                ORDER_TIMEOUT.as_secs() / 60
            )),
        };
        match outcome {
            Ok(certificate) => {
                self.service.save_certificate(&certificate).await?;
                self.service
                    .save_order_state(&OrderState::default(), "acme.order_finished")
                    .await?;
                tracing::info!(names = ?certificate.domains, not_after = %certificate.not_after, "ACME: certificate issued");
            }
            Err(problem) => {
                let now = OffsetDateTime::now_utc();
                let state = before.failed(format!("ACME: {problem}"), now);
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

    /// The stored account, or a new one (also when `fresh`: the CA no longer knows the
    /// stored one).
    async fn account(&self, fresh: bool) -> Result<Account, String> {
        let directory = &self.settings.directory;
        let http = Box::new(self.http.clone());
        let stored = match fresh {
            true => None,
            false => self
                .service
                .account(directory)
                .await
                .map_err(|e| format!("reading the ACME account from the database: {e}"))?,
        };
        if let Some(credentials) = stored {
            let credentials: AccountCredentials = serde_json::from_str(credentials.expose_secret())
                .map_err(|e| format!("the stored ACME account is unreadable: {e}"))?;
            return Account::builder_with_http(http)
                .from_credentials(credentials)
                .await
                .map_err(|e| {
                    format!(
                        "cannot reach the ACME directory {directory}: {}",
                        describe(&e)
                    )
                });
        }
        let contact = self.settings.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = Account::builder_with_http(http)
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                directory.clone(),
                None,
            )
            .await
            .map_err(|e| format!("creating an ACME account at {directory}: {}", describe(&e)))?;
        let json = serde_json::to_string(&credentials)
            .map_err(|e| format!("encoding the ACME account: {e}"))?;
        self.service
            .save_account(directory, &SecretString::from(json))
            .await
            .map_err(|e| format!("storing the ACME account: {e}"))?;
        tracing::info!(directory = %directory, "ACME: account created");
        Ok(account)
    }

    /// One order, from the new order to the certificate; the error is what to tell the
    /// admin, in the CA's words where it gave some.
    async fn order(&mut self) -> Result<AcmeCertificate, String> {
        let identifiers: Vec<Identifier> = self
            .settings
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let new_order = NewOrder::new(&identifiers);
        let refused =
            |e: &instant_acme::Error| format!("the CA refused the order: {}", describe(e));
        let mut order = match self.account(false).await?.new_order(&new_order).await {
            Ok(order) => order,
            Err(instant_acme::Error::Api(problem)) if is_unknown_account(&problem) => {
                // The CA forgot the account (a test CA restarted, or it was deactivated).
                tracing::warn!(
                    "ACME: the CA no longer knows the stored account; creating a new one"
                );
                self.account(true)
                    .await?
                    .new_order(&new_order)
                    .await
                    .map_err(|e| refused(&e))?
            }
            Err(e) => return Err(refused(&e)),
        };

        // The challenges to answer: one TLS-ALPN-01 per name not yet authorized.
        let mut pending = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization
                .map_err(|e| format!("reading the order's authorizations: {}", describe(&e)))?;
            let domain = authorization.identifier().to_string();
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(format!("the CA's authorization for {domain} is {other:?}"));
                }
            }
            let Some(challenge) = authorization.challenge(ChallengeType::TlsAlpn01) else {
                return Err(format!(
                    "the CA offers no TLS-ALPN-01 challenge for {domain}, the only one GuardMDM answers"
                ));
            };
            pending.push(PendingChallenge {
                domain,
                digest: challenge.key_authorization().digest().as_ref().to_vec(),
            });
        }

        if !pending.is_empty() {
            let started = OrderState {
                challenges: pending.clone(),
                ..self
                    .service
                    .order_state()
                    .await
                    .map_err(|e| format!("reading the order state: {e}"))?
            };
            self.service
                .save_order_state(&started, "acme.order_started")
                .await
                .map_err(|e| format!("publishing the challenges: {e}"))?;
            self.install_challenges(&pending);
            // The other instances install the challenges at their next poll.
            tokio::time::sleep(self.settings.poll_interval + Duration::from_millis(500)).await;
        }
        let validated = self.validate(&mut order).await;
        // The challenges are withdrawn whatever happened (the caller stores the outcome).
        self.install_challenges(&[]);
        validated?;

        let key = rcgen::KeyPair::generate().map_err(|e| format!("making the key: {e}"))?;
        let mut params = rcgen::CertificateParams::new(self.settings.domains.clone())
            .map_err(|e| format!("making the certificate request: {e}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| format!("making the certificate request: {e}"))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| format!("the CA refused to finalize the order: {}", describe(&e)))?;
        let chain_pem = order
            .poll_certificate(&retry_policy())
            .await
            .map_err(|e| format!("the CA did not issue the certificate: {}", describe(&e)))?;

        let key_pem = SecretString::from(key.serialize_pem());
        let served = crate::tls::certified_key_from_pem(
            chain_pem.as_bytes(),
            key_pem.expose_secret().as_bytes(),
            "the certificate the CA issued",
        )
        .map_err(|e| e.to_string())?;
        let facts = crate::tls::served_certificate(&served, CertificateSource::Acme)
            .map_err(|e| e.to_string())?;
        Ok(AcmeCertificate {
            domains: self.settings.domains.clone(),
            chain_pem,
            key_pem,
            not_before: facts.not_before,
            not_after: facts.not_after,
        })
    }

    /// Tells the CA the challenges are ready and waits for its verdict; when it could not
    /// validate a name, the error is the challenge's own error detail.
    async fn validate(&self, order: &mut instant_acme::Order) -> Result<(), String> {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization
                .map_err(|e| format!("reading the order's authorizations: {}", describe(&e)))?;
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            let domain = authorization.identifier().to_string();
            if let Some(mut challenge) = authorization.challenge(ChallengeType::TlsAlpn01) {
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| format!("the CA could not validate {domain}: {}", describe(&e)))?;
            }
        }
        let verdict = match order.poll_ready(&retry_policy()).await {
            Ok(OrderStatus::Ready) => return Ok(()),
            Ok(status) => format!("the order is {status:?}"),
            Err(e) => describe(&e),
        };
        // Invalid: find the challenge that failed, and why, in the CA's words.
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let Ok(mut authorization) = authorization else {
                continue;
            };
            let domain = authorization.identifier().to_string();
            let Ok(state) = authorization.refresh().await else {
                continue;
            };
            if let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
                return Err(format!(
                    "the CA could not validate {domain}: {}",
                    problem_text(problem)
                ));
            }
        }
        Err(format!("the CA did not validate the names: {verdict}"))
    }
}

/// RFC 8555 §6.7: the request's account does not exist on the server.
fn is_unknown_account(problem: &instant_acme::Problem) -> bool {
    problem
        .r#type
        .as_deref()
        .is_some_and(|t| t == "urn:ietf:params:acme:error:accountDoesNotExist")
}

fn retry_policy() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(CA_WAIT)
}

/// An ACME error as an admin reads it: the CA's detail where it gave one.
fn describe(error: &instant_acme::Error) -> String {
    match error {
        instant_acme::Error::Api(problem) => problem_text(problem),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                text = format!("{text}: {cause}");
                source = cause.source();
            }
            text
        }
    }
}

fn problem_text(problem: &instant_acme::Problem) -> String {
    let mut text = problem
        .detail
        .clone()
        .or_else(|| problem.r#type.clone())
        .unwrap_or_else(|| "no detail given".to_string());
    for sub in &problem.subproblems {
        if let Some(detail) = &sub.detail {
            text = format!("{text}; {detail}");
        }
    }
    text
}

/// The TLS-ALPN-01 certificate for `domain` (RFC 8737 §3): self-signed, the domain as its
/// only name, and the critical acmeIdentifier extension holding `digest`.
///
/// # Errors
/// When the key or certificate cannot be made.
pub fn challenge_certificate(
    domain: &str,
    digest: &[u8],
) -> anyhow::Result<Arc<rustls::sign::CertifiedKey>> {
    let key = rcgen::KeyPair::generate().context("making the challenge key")?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()])
        .context("the challenge certificate's name")?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params
        .self_signed(&key)
        .context("signing the challenge certificate")?;
    // Not `CertifiedKey::from_der`: its key check parses the certificate with webpki, which
    // refuses the critical acmeIdentifier extension it does not know.
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing_key = rustls::crypto::aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| anyhow::anyhow!("loading the challenge key: {e}"))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(
        vec![cert.der().clone()],
        signing_key,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_certificates_carry_the_digest_in_a_critical_extension() {
        let digest = [7u8; 32];
        let key = challenge_certificate("mdm.example.com", &digest).unwrap();
        let der = key.cert.first().unwrap().as_ref().to_vec();
        let cert = guardmdm_crypto::Certificate::from_der(&der).unwrap();
        assert_eq!(cert.dns_names(), vec!["mdm.example.com".to_string()]);
        // id-pe-acmeIdentifier (1.3.6.1.5.5.7.1.31), critical, OCTET STRING of the digest.
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let at = der
            .windows(oid.len())
            .position(|w| w == oid)
            .expect("the acmeIdentifier extension");
        let rest = &der[at + oid.len()..];
        assert_eq!(&rest[..3], &[0x01, 0x01, 0xff], "critical");
        assert_eq!(&rest[3..7], &[0x04, 0x22, 0x04, 0x20]);
        assert_eq!(&rest[7..39], &digest);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let err = http_client(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("no certificate"), "{err}");
        let missing = http_client(Some(&dir.path().join("missing.pem")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("--acme-ca-file: reading"), "{missing}");
    }
}

//! `serve --acme`: the HTTPS certificate obtained and renewed over ACME (RFC 8555) with
//! TLS-ALPN-01 validation (RFC 8737) on the main listener.
//!
//! The loop, the shared state and the rules are [`guardmdm_service::acme`]'s
//! [`AcmeJob`]; this module gives it the ACME protocol ([`InstantAcme`], through
//! instant-acme, whose HTTP client trusts the system's roots and `--acme-ca-file`) and the
//! serving side ([`Serving`]: the listener's [`Certificates`], with the TLS-ALPN-01
//! challenge certificates).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use guardmdm_service::acme::{
    AcmeCertificate, AcmeClient, AcmeJob, AcmeService, AcmeServing, OrderContext, PendingChallenge,
};
use guardmdm_service::tls_status::{CertificateSource, ServedCertificate, TlsStatus};
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

use crate::config::AcmeSettings;
use crate::tls::Certificates;

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

/// The serving side: the certificate and the TLS-ALPN-01 challenges go to the listener's
/// [`Certificates`].
pub struct Serving {
    certificates: Arc<Certificates>,
    /// The challenges now answered.
    answered: Mutex<HashSet<PendingChallenge>>,
}

impl Serving {
    /// Serving through `certificates`.
    pub fn new(certificates: Arc<Certificates>) -> Self {
        Self {
            certificates,
            answered: Mutex::new(HashSet::new()),
        }
    }
}

impl AcmeServing for Serving {
    fn serve(&self, certificate: &AcmeCertificate) -> Result<ServedCertificate, String> {
        let key = crate::tls::certified_key_from_pem(
            certificate.chain_pem.as_bytes(),
            certificate.key_pem.expose_secret().as_bytes(),
            "the ACME certificate in the database",
        )
        .map_err(|e| e.to_string())?;
        let served = crate::tls::served_certificate(&key, CertificateSource::Acme)
            .map_err(|e| e.to_string())?;
        self.certificates.set(key);
        Ok(served)
    }

    fn answer(&self, challenges: &[PendingChallenge]) {
        let wanted: HashSet<PendingChallenge> = challenges.iter().cloned().collect();
        let mut answered = self.answered.lock().unwrap_or_else(PoisonError::into_inner);
        for gone in answered.difference(&wanted) {
            self.certificates.remove_challenge(&gone.domain);
        }
        for new in wanted.difference(&answered) {
            match challenge_certificate(&new.domain, &new.digest) {
                Ok(key) => self.certificates.set_challenge(&new.domain, key),
                Err(e) => {
                    tracing::error!(error = %e, domain = %new.domain, "ACME: cannot make the TLS-ALPN-01 certificate");
                }
            }
        }
        *answered = wanted;
    }
}

/// The ACME protocol through instant-acme, against `--acme-directory`.
pub struct InstantAcme {
    directory: String,
    email: Option<String>,
    http: AcmeHttpClient,
}

impl InstantAcme {
    /// A client of `settings`' directory.
    ///
    /// # Errors
    /// When the directory's HTTP client cannot be built (see [`http_client`]).
    pub fn new(settings: &AcmeSettings) -> anyhow::Result<Self> {
        Ok(Self {
            directory: settings.directory.clone(),
            email: settings.email.clone(),
            http: http_client(settings.ca_file.as_deref())?,
        })
    }

    /// The stored account, or a new one (also when `fresh`: the CA no longer knows the
    /// stored one).
    async fn account(&self, context: &OrderContext<'_>, fresh: bool) -> Result<Account, String> {
        let directory = &self.directory;
        let http = Box::new(self.http.clone());
        let stored = match fresh {
            true => None,
            false => context.account(directory).await?,
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
                        describe(e)
                    )
                });
        }
        let contact = self.email.as_ref().map(|e| format!("mailto:{e}"));
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
            .map_err(|e| format!("creating an ACME account at {directory}: {}", describe(e)))?;
        let json = serde_json::to_string(&credentials)
            .map_err(|e| format!("encoding the ACME account: {e}"))?;
        context
            .save_account(directory, &SecretString::from(json))
            .await?;
        tracing::info!(directory = %directory, "ACME: account created");
        Ok(account)
    }

    /// Tells the CA the challenges are ready and waits for its verdict; when it could not
    /// validate a name, the error is the challenge's own error detail.
    async fn validate(order: &mut instant_acme::Order) -> Result<(), String> {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization
                .map_err(|e| format!("reading the order's authorizations: {}", describe(e)))?;
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            let domain = authorization.identifier().to_string();
            if let Some(mut challenge) = authorization.challenge(ChallengeType::TlsAlpn01) {
                challenge
                    .set_ready()
                    .await
                    .map_err(|e| format!("the CA could not validate {domain}: {}", describe(e)))?;
            }
        }
        let verdict = match order.poll_ready(&retry_policy()).await {
            Ok(OrderStatus::Ready) => return Ok(()),
            Ok(status) => format!("the order is {status:?}"),
            Err(e) => describe(e),
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

    /// Places the order with the stored account, or with a new one when the CA forgot the
    /// stored one.
    async fn new_order(
        &self,
        context: &OrderContext<'_>,
        new_order: &NewOrder<'_>,
    ) -> Result<instant_acme::Order, String> {
        let refused = |e: instant_acme::Error| format!("the CA refused the order: {}", describe(e));
        match self
            .account(context, false)
            .await?
            .new_order(new_order)
            .await
        {
            Ok(order) => Ok(order),
            Err(instant_acme::Error::Api(problem)) if is_unknown_account(&problem) => {
                // The CA forgot the account (a test CA restarted, or it was deactivated).
                tracing::warn!(
                    "ACME: the CA no longer knows the stored account; creating a new one"
                );
                self.account(context, true)
                    .await?
                    .new_order(new_order)
                    .await
                    .map_err(refused)
            }
            Err(e) => Err(refused(e)),
        }
    }

    /// The challenges to answer: one TLS-ALPN-01 per name not yet authorized. An
    /// authorization neither pending nor valid, or one without a TLS-ALPN-01 challenge,
    /// fails the order.
    async fn pending_challenges(
        order: &mut instant_acme::Order,
    ) -> Result<Vec<PendingChallenge>, String> {
        let mut pending = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization
                .map_err(|e| format!("reading the order's authorizations: {}", describe(e)))?;
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
        Ok(pending)
    }

    /// Once the order is validated: a new key, the certificate request for `domains`, and
    /// the certificate the CA issues for it, checked as the listener will serve it.
    async fn issue(
        order: &mut instant_acme::Order,
        domains: &[String],
    ) -> Result<AcmeCertificate, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| format!("making the key: {e}"))?;
        let mut params = rcgen::CertificateParams::new(domains.to_vec())
            .map_err(|e| format!("making the certificate request: {e}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| format!("making the certificate request: {e}"))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| format!("the CA refused to finalize the order: {}", describe(e)))?;
        let chain_pem = order
            .poll_certificate(&retry_policy())
            .await
            .map_err(|e| format!("the CA did not issue the certificate: {}", describe(e)))?;

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
            domains: domains.to_vec(),
            chain_pem,
            key_pem,
            not_before: facts.not_before,
            not_after: facts.not_after,
        })
    }
}

#[async_trait]
impl AcmeClient for InstantAcme {
    async fn order(
        &self,
        domains: &[String],
        context: &OrderContext<'_>,
    ) -> Result<AcmeCertificate, String> {
        let identifiers: Vec<Identifier> =
            domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
        let mut order = self
            .new_order(context, &NewOrder::new(&identifiers))
            .await?;
        let pending = Self::pending_challenges(&mut order).await?;
        context.publish(&pending).await?;
        Self::validate(&mut order).await?;
        Self::issue(&mut order, domains).await
    }
}

/// This instance's ACME job over `service`, taking the ordering lease as `holder` (the
/// instance's lease-holder name), serving into `certificates` and reporting in `status`.
///
/// # Errors
/// When the directory's HTTP client cannot be built (see [`http_client`]).
pub fn job(
    settings: &AcmeSettings,
    service: AcmeService,
    holder: String,
    certificates: Arc<Certificates>,
    status: Arc<TlsStatus>,
) -> anyhow::Result<AcmeJob> {
    Ok(AcmeJob::new(
        service,
        settings.domains.clone(),
        settings.poll_interval,
        holder,
        status,
        Arc::new(Serving::new(certificates)),
        Arc::new(InstantAcme::new(settings)?),
    ))
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

/// An ACME error as an admin reads it: the CA's detail where it gave one, else the error
/// and its causes on one line.
fn describe(error: instant_acme::Error) -> String {
    match error {
        instant_acme::Error::Api(problem) => problem_text(&problem),
        other => format!("{:#}", anyhow::Error::new(other)),
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

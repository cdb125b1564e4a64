//! The certificates `guardmdm serve` answers TLS handshakes with.
//!
//! [`Certificates`] is the server's certificate resolver: it holds the certificate in use
//! (from `--tls-cert`/`--tls-key`, or obtained over ACME) and, while an ACME order is being
//! validated, the TLS-ALPN-01 challenge certificates (RFC 8737) by domain. Whoever obtains a
//! certificate swaps it in with [`Certificates::set`]; handshakes already under way keep the
//! one they started with, new ones get the new one, and no connection is dropped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The certificate in use and the pending TLS-ALPN-01 challenge certificates.
#[derive(Debug, Default)]
pub struct Certificates {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Certificates {
    /// Makes the certificate new handshakes get.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(key);
    }

    /// The certificate new handshakes get, if any.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Answers TLS-ALPN-01 validation of `domain` with `key` until it is withdrawn.
    pub fn set_challenge(&self, domain: &str, key: Arc<CertifiedKey>) {
        self.challenges
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(domain.to_ascii_lowercase(), key);
    }

    /// Stops answering TLS-ALPN-01 validation of `domain`.
    pub fn remove_challenge(&self, domain: &str) {
        self.challenges
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&domain.to_ascii_lowercase());
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // A validation handshake gets the challenge certificate for its name, or nothing.
            let name = hello.server_name()?.to_ascii_lowercase();
            return self
                .challenges
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&name)
                .cloned();
        }
        self.current()
    }
}

/// The graph's one TLS crypto provider.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The TLS settings of the main listener: TLS 1.2 and 1.3 with rustls' safe defaults,
/// HTTP/2 and HTTP/1.1 over ALPN, and `acme-tls/1` for TLS-ALPN-01 validation; the
/// certificate is whatever `certificates` holds at each handshake.
///
/// # Errors
/// When the crypto provider supports none of the protocol versions (it always does).
pub fn server_config(certificates: Arc<Certificates>) -> anyhow::Result<Arc<ServerConfig>> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// A certificate chain and its private key from PEM: the server certificate first, then
/// the intermediates; the key in PKCS#8, PKCS#1 (RSA) or SEC1 (EC) form. The key must be
/// the certificate's.
///
/// # Errors
/// What is wrong, naming `what` (the file or setting the PEM came from).
pub fn certified_key_from_pem(
    chain_pem: &[u8],
    key_pem: &[u8],
    what: &str,
) -> anyhow::Result<Arc<CertifiedKey>> {
    certify(
        chain_from_pem(chain_pem, what)?,
        key_from_pem(key_pem, what)?,
        |e| anyhow::anyhow!("{what}: the private key does not fit the certificate: {e}"),
    )
}

/// [`certified_key_from_pem`] for the contents of the `--tls-cert` file `cert` and the
/// `--tls-key` file `key`: each problem names the file it is in.
///
/// # Errors
/// What is wrong, and in which file.
pub fn certified_key_from_file_contents(
    cert: &Path,
    chain_pem: &[u8],
    key: &Path,
    key_pem: &[u8],
) -> anyhow::Result<Arc<CertifiedKey>> {
    certify(
        chain_from_pem(chain_pem, &format!("--tls-cert {}", cert.display()))?,
        key_from_pem(key_pem, &format!("--tls-key {}", key.display()))?,
        |e| {
            anyhow::anyhow!(
                "the private key in --tls-key {} does not fit the certificate in --tls-cert {} ({e}): \
                 put the key of this certificate there (a certificate written before its key is \
                 picked up once the key follows)",
                key.display(),
                cert.display()
            )
        },
    )
}

/// The chain and its key as rustls serves them; `mismatch` words a key of another
/// certificate.
fn certify(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    mismatch: impl FnOnce(rustls::Error) -> anyhow::Error,
) -> anyhow::Result<Arc<CertifiedKey>> {
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(mismatch)
}

/// The certificates of a PEM chain, at least one.
fn chain_from_pem(pem: &[u8], what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{what}: the certificate PEM is unreadable: {e}"))?;
    if chain.is_empty() {
        bail!("{what}: no certificate (\"-----BEGIN CERTIFICATE-----\") found");
    }
    Ok(chain)
}

/// The first private key of a PEM file.
fn key_from_pem(pem: &[u8], what: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        anyhow::anyhow!(
            "{what}: no usable private key ({e}); it must be an unencrypted PEM \
             \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\""
        )
    })
}

/// What the status page and health checks show of a certificate being served.
///
/// # Errors
/// When its end-entity certificate cannot be read.
pub fn served_certificate(
    key: &CertifiedKey,
    source: guardmdm_service::tls_status::CertificateSource,
) -> anyhow::Result<guardmdm_service::tls_status::ServedCertificate> {
    let leaf = key.cert.first().context("an empty certificate chain")?;
    guardmdm_service::tls_status::ServedCertificate::from_der(source, leaf)
        .context("reading the served certificate")
}

//! A test PKI for HTTPS servers: a root CA, an intermediate, and server certificates for
//! [`HOST`] issued by the intermediate, written as `--tls-cert` (leaf + intermediate) and
//! `--tls-key` files; and TLS clients that trust the root (or any root given as PEM, such
//! as an ACME CA's).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The name test servers' certificates are for; clients resolve it to the server's address.
pub const HOST: &str = "mdm.guardmdm.test";

/// A root CA and an intermediate that issues server certificates.
pub struct Pki {
    pub root_pem: String,
    intermediate_pem: String,
    intermediate: Issuer<'static, KeyPair>,
}

/// A server certificate: its files' contents and its DER, to recognise it in a handshake.
#[derive(Clone)]
pub struct ServerCert {
    /// The `--tls-cert` contents: the leaf, then the intermediate.
    pub chain_pem: String,
    /// The `--tls-key` contents.
    pub key_pem: String,
    pub leaf_der: CertificateDer<'static>,
    pub not_after: OffsetDateTime,
}

impl Pki {
    pub fn new() -> Self {
        let root_key = KeyPair::generate().unwrap();
        let mut root_params = CertificateParams::new(Vec::new()).unwrap();
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root_params
            .distinguished_name
            .push(DnType::CommonName, "GuardMDM test root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, "GuardMDM test intermediate");
        let intermediate = params.signed_by(&key, &root_issuer).unwrap();
        Self {
            root_pem: root.pem(),
            intermediate_pem: intermediate.pem(),
            intermediate: Issuer::new(params, key),
        }
    }

    /// A certificate for [`HOST`] valid from yesterday for `days` days (negative: expired).
    pub fn issue(&self, days: i64) -> ServerCert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![HOST.to_string()]).unwrap();
        let now = OffsetDateTime::now_utc();
        // Whole seconds: what the certificate carries.
        let not_after = (now + time::Duration::days(days))
            .replace_nanosecond(0)
            .unwrap();
        params.not_before = now - time::Duration::days(days.abs() + 1);
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.intermediate).unwrap();
        ServerCert {
            chain_pem: format!("{}{}", cert.pem(), self.intermediate_pem),
            key_pem: key.serialize_pem(),
            leaf_der: cert.der().clone(),
            not_after,
        }
    }

    /// A TLS client config that trusts the root, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        client_config(self.root_pem.as_bytes(), alpn)
    }

    /// A TLS connection to `addr` for [`HOST`] offering HTTP/1.1.
    pub async fn connect(&self, addr: SocketAddr) -> TlsStream<TcpStream> {
        connect(self.root_pem.as_bytes(), addr).await
    }

    /// A reqwest client that trusts the root and resolves [`HOST`] to `addr`.
    pub fn reqwest_builder(&self, addr: SocketAddr) -> reqwest::ClientBuilder {
        reqwest_builder(self.root_pem.as_bytes(), addr)
    }
}

/// A TLS client config that trusts only the certificates in `root_pem`, offering `alpn`.
pub fn client_config(root_pem: &[u8], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    assert!(!roots.is_empty(), "no certificate in the root PEM");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` for [`HOST`] offering HTTP/1.1, trusting `root_pem`.
pub async fn connect(root_pem: &[u8], addr: SocketAddr) -> TlsStream<TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(client_config(root_pem, &[b"http/1.1"]));
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap()
}

/// A reqwest client that trusts only `root_pem` and resolves [`HOST`] to `addr`.
pub fn reqwest_builder(root_pem: &[u8], addr: SocketAddr) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(root_pem).unwrap()])
        .resolve(HOST, addr)
}

/// `GET /healthz` on an open HTTP/1.1 connection (kept alive): the status line.
pub async fn healthz_on<S>(stream: &mut S) -> String
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(super::PATIENCE, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "the connection closed: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            if got.len() >= end + 4 + length {
                return text.lines().next().unwrap().to_string();
            }
        }
    }
}

/// The certificate the server presented on `stream`.
pub fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// The `--tls-cert` and `--tls-key` paths in `dir`.
pub fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("tls-cert.pem"), dir.join("tls-key.pem"))
}

/// Writes `cert` into `dir`'s TLS files the way certbot and acme.sh do: each to a new file
/// renamed over the old one, the certificate first.
pub fn install(dir: &Path, cert: &ServerCert) {
    let (cert_path, key_path) = paths(dir);
    replace(&cert_path, &cert.chain_pem);
    replace(&key_path, &cert.key_pem);
}

/// Replaces `path` with `text` by renaming a new file over it.
pub fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

//! `ApnsClient` over TLS with client authentication, as against Apple: a local HTTP/2 server
//! that requires a client certificate from a test CA, and a push certificate issued by it.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::connect_info::Connected;
use axum::http::{StatusCode, Version};
use axum::routing::post;
use axum::serve::{IncomingStream, Listener};
use guardmdm_apns::{ApnsClient, ApnsConfig, PushOutcome, PushProvider, PushTarget};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    PKCS_RSA_SHA256,
};
use rustls::RootCertStore;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use url::Url;

const TOPIC: &str = "com.apple.mgmt.External.2d5ec1f4-93c8-4bd3-8d5e-0c3a2f1e4b77";

/// A test CA that issues the server certificate and the push certificate.
struct Pki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = params.self_signed(&key).unwrap();
        Self {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names`, with the given key usage; returns (cert DER, cert PEM, key).
    fn issue(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        key: KeyPair,
    ) -> (CertificateDer<'static>, String, KeyPair) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![usage];
        params
            .distinguished_name
            .push(DnType::CommonName, "APSP:test push certificate");
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().clone(), cert.pem(), key)
    }
}

/// A TLS listener requiring a client certificate from the CA; handshake failures are
/// recorded, not served.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshake_failures: Arc<Mutex<Vec<String>>>,
}

/// What the handler learns about its connection.
#[derive(Clone, Debug)]
struct Peer {
    client_cert: Option<Vec<u8>>,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, _)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => {
                    let client_cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .map(|cert| cert.to_vec());
                    return (tls, Peer { client_cert });
                }
                Err(e) => self.handshake_failures.lock().unwrap().push(e.to_string()),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer { client_cert: None })
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// What the server saw of each request: the client certificate and the HTTP version.
type Seen = Arc<Mutex<Vec<(Option<Vec<u8>>, Version)>>>;

struct Server {
    addr: SocketAddr,
    seen: Seen,
    handshake_failures: Arc<Mutex<Vec<String>>>,
}

async fn start_server(pki: &Pki) -> Server {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let (server_der, _, server_key) = pki.issue(
        &["127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        KeyPair::generate().unwrap(),
    );
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server_der],
            PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        )
        .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];

    let seen: Seen = Arc::default();
    let handshake_failures = Arc::<Mutex<Vec<String>>>::default();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(tls)),
        handshake_failures: handshake_failures.clone(),
    };
    let recorder = seen.clone();
    let app = Router::new().route(
        "/3/device/{token}",
        post(
            move |ConnectInfo(peer): ConnectInfo<Peer>, version: Version| async move {
                recorder.lock().unwrap().push((peer.client_cert, version));
                ([("apns-id", "tls-ok")], StatusCode::OK)
            },
        ),
    );
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
            .await
            .unwrap();
    });
    Server {
        addr,
        seen,
        handshake_failures,
    }
}

fn client(server: &Server, pki: &Pki, identity_pem: String) -> ApnsClient {
    ApnsClient::new(ApnsConfig {
        endpoint: Url::parse(&format!("https://{}", server.addr)).unwrap(),
        identity_pem: Some(identity_pem.into()),
        timeout: Duration::from_secs(5),
        server_roots_pem: Some(pki.ca_pem.clone()),
        ..ApnsConfig::default()
    })
    .unwrap()
}

fn targets() -> Vec<PushTarget> {
    (0u8..3)
        .map(|n| PushTarget::new(vec![n; 32], format!("magic-{n}"), TOPIC))
        .collect()
}

#[tokio::test]
async fn pushes_authenticate_with_the_push_certificate() {
    let pki = Pki::new("GuardMDM test CA");
    let server = start_server(&pki).await;
    // Apple's push certificates are RSA.
    let (push_der, push_pem, push_key) = pki.issue(
        &["push.example"],
        ExtendedKeyUsagePurpose::ClientAuth,
        KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap(),
    );
    let client = client(
        &server,
        &pki,
        format!("{push_pem}{}", push_key.serialize_pem()),
    );

    let outcomes = client.push(&targets()).await;

    let delivered = PushOutcome::Delivered {
        apns_id: Some("tls-ok".to_owned()),
    };
    assert_eq!(
        outcomes,
        vec![delivered.clone(), delivered.clone(), delivered]
    );
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for (client_cert, version) in seen {
        assert_eq!(client_cert.as_deref(), Some(push_der.as_ref()));
        assert_eq!(version, Version::HTTP_2);
    }
    assert!(server.handshake_failures.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_certificate_the_server_does_not_trust_is_refused() {
    let pki = Pki::new("GuardMDM test CA");
    let server = start_server(&pki).await;
    // Issued by another CA: the server's verifier rejects it during the handshake.
    let stranger = Pki::new("Some other CA");
    let (_, pem, key) = stranger.issue(
        &["push.example"],
        ExtendedKeyUsagePurpose::ClientAuth,
        KeyPair::generate().unwrap(),
    );
    let client = client(&server, &pki, format!("{pem}{}", key.serialize_pem()));

    let outcomes = client.push(&targets()[..1]).await;

    let PushOutcome::Failed { message } = &outcomes[0] else {
        panic!("expected a failure: {outcomes:?}");
    };
    assert!(message.starts_with("cannot reach APNs"), "{message}");
    assert!(server.seen.lock().unwrap().is_empty());
    let failures = server.handshake_failures.lock().unwrap().clone();
    assert!(!failures.is_empty());
    assert!(
        failures.iter().all(|f| f.contains("UnknownIssuer")),
        "{failures:?}"
    );
}

//! GuardMDM's SCEP CA against a third-party client: micromdm's `scepclient` (Debian package
//! `scep`), over HTTP, through a minimal SCEP endpoint built here with axum.
//!
//! The client fetches `GetCACaps` and `GetCACert`, then sends a `PKCSReq` (signed with SHA-1,
//! enveloped with single DES, whatever the capabilities say) and writes the issued
//! certificate next to its key. With the right challenge the certificate must verify against
//! the CA with the `openssl` command-line tool; with a wrong one the client must fail on a
//! FAILURE `CertRep`. Without `scepclient` installed the test says SKIPPED and passes.

// Test helpers outside `#[test]` functions may unwrap, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use guardmdm_crypto::scep::{
    CA_CAPS_CONTENT_TYPE, CA_CERT_CONTENT_TYPE, FailInfo, PKI_MESSAGE_CONTENT_TYPE, PkiOutcome,
    ScepCa, StaticChallenge, decode_message_param,
};
use guardmdm_crypto::{Certificate, TrustAnchors};
use secrecy::SecretString;

const CHALLENGE: &str = "interop-challenge-31337";

struct Endpoint {
    ca: ScepCa,
    policy: StaticChallenge,
    /// Leave `POSTPKIOperation` and `SCEPStandard` out of the capabilities, so the client uses
    /// GET.
    get_only: bool,
    outcomes: Mutex<Vec<PkiOutcome>>,
}

type Params = Query<HashMap<String, String>>;

async fn scep_get(State(app): State<Arc<Endpoint>>, Query(params): Params) -> Response {
    match params.get("operation").map(String::as_str) {
        Some("GetCACaps") => {
            let caps = ScepCa::get_ca_caps();
            let caps = if app.get_only {
                // SCEPStandard implies POSTPKIOperation (RFC 8894 §3.5.2), so both go.
                caps.replace("POSTPKIOperation\n", "")
                    .replace("SCEPStandard\n", "")
            } else {
                caps.to_string()
            };
            ([(header::CONTENT_TYPE, CA_CAPS_CONTENT_TYPE)], caps).into_response()
        }
        Some("GetCACert") => (
            [(header::CONTENT_TYPE, CA_CERT_CONTENT_TYPE)],
            app.ca.get_ca_cert(),
        )
            .into_response(),
        Some("PKIOperation") => {
            let Some(message) = params.get("message") else {
                return StatusCode::BAD_REQUEST.into_response();
            };
            match decode_message_param(message) {
                Ok(der) => pki_operation(&app, &der),
                Err(_) => StatusCode::BAD_REQUEST.into_response(),
            }
        }
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn scep_post(
    State(app): State<Arc<Endpoint>>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    if params.get("operation").map(String::as_str) != Some("PKIOperation") || app.get_only {
        return StatusCode::BAD_REQUEST.into_response();
    }
    pki_operation(&app, &body)
}

fn pki_operation(app: &Endpoint, message: &[u8]) -> Response {
    match app.ca.pki_operation(message, &app.policy) {
        Ok(response) => {
            app.outcomes.lock().unwrap().push(response.outcome);
            (
                [(header::CONTENT_TYPE, PKI_MESSAGE_CONTENT_TYPE)],
                response.der,
            )
                .into_response()
        }
        Err(e) if e.is_client_error() => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Starts the endpoint on 127.0.0.1:0 and returns its SCEP URL.
async fn serve(app: Arc<Endpoint>) -> String {
    let router = Router::new()
        .route("/scep", get(scep_get).post(scep_post))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/scep")
}

fn endpoint(get_only: bool) -> Arc<Endpoint> {
    // micromdm's scepclient always envelopes with single DES.
    let ca = ScepCa::generate("GuardMDM Interop CA")
        .unwrap()
        .with_single_des()
        .unwrap();
    Arc::new(Endpoint {
        ca,
        policy: StaticChallenge::new(SecretString::from(CHALLENGE)),
        get_only,
        outcomes: Mutex::new(Vec::new()),
    })
}

/// Runs `scepclient` with its key (and so its CSR and certificate) in `dir`.
async fn scepclient(url: &str, dir: &Path, challenge: &str) -> Output {
    tokio::process::Command::new("scepclient")
        .arg("-server-url")
        .arg(url)
        .arg("-private-key")
        .arg(dir.join("key.pem"))
        .args(["-challenge", challenge, "-cn", "interop-device", "-debug"])
        .output()
        .await
        .expect("scepclient runs")
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command-line tool is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn scepclient_installed() -> bool {
    std::process::Command::new("scepclient")
        .arg("-version")
        .output()
        .is_ok()
}

/// Enrolls with the right challenge and checks the certificate with OpenSSL's CLI.
async fn enrolls(get_only: bool) {
    let app = endpoint(get_only);
    let url = serve(app.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let output = scepclient(&url, dir.path(), CHALLENGE).await;
    assert!(output.status.success(), "{}", describe(&output));

    let issued = dir.path().join("client.pem");
    assert!(
        issued.exists(),
        "no certificate written: {}",
        describe(&output)
    );
    std::fs::write(dir.path().join("ca.pem"), app.ca.certificate().to_pem()).unwrap();
    let verified = openssl(&["verify", "-CAfile", "ca.pem", "client.pem"], dir.path());
    assert!(
        verified.trim_end().ends_with("client.pem: OK"),
        "{verified}"
    );
    // The certificate holds the key scepclient generated (which never left it).
    let cert_key = openssl(
        &["x509", "-in", "client.pem", "-noout", "-pubkey"],
        dir.path(),
    );
    let own_key = openssl(&["pkey", "-in", "key.pem", "-pubout"], dir.path());
    assert_eq!(cert_key, own_key);
    let text = openssl(
        &["x509", "-in", "client.pem", "-noout", "-text"],
        dir.path(),
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");

    let cert = Certificate::from_pem(&std::fs::read(&issued).unwrap()).unwrap();
    assert_eq!(cert.subject_common_name(), Some("interop-device"));
    assert!(app.ca.issued_by_me(&cert));
    TrustAnchors::from_certificates([app.ca.certificate().clone()])
        .unwrap()
        .verify(&cert, &[])
        .unwrap();
    let outcomes = app.outcomes.lock().unwrap();
    assert!(
        matches!(outcomes.as_slice(), [PkiOutcome::Issued(c)] if *c == cert),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn scepclient_interoperates() {
    if !scepclient_installed() {
        // Written straight to stderr so it shows even when the test harness captures output.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: scepclient not found; apt-get install scep to run the SCEP interop test"
        );
        return;
    }

    // POST, as the capabilities allow.
    enrolls(false).await;
    // GET with the message in the query string (URL-safe base64 from this client).
    enrolls(true).await;

    // A wrong challenge: the client gets a FAILURE CertRep and writes no certificate.
    let app = endpoint(false);
    let url = serve(app.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let output = scepclient(&url, dir.path(), "not-the-challenge").await;
    assert!(!output.status.success(), "{}", describe(&output));
    let said = describe(&output);
    assert!(said.contains("failInfo: badRequest (2)"), "{said}");
    assert!(!dir.path().join("client.pem").exists());
    let outcomes = app.outcomes.lock().unwrap();
    assert!(
        matches!(
            outcomes.as_slice(),
            [PkiOutcome::Failed {
                fail_info: FailInfo::BadRequest,
                ..
            }]
        ),
        "{outcomes:?}"
    );
}

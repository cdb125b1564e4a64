//! Clients GuardMDM did not write, and requests from identities it did not issue, over a real
//! socket.
//!
//! - A SCEP client that signs its `PKCSReq` with a separate, freshly made self-signed key
//!   ("SCEP SIGNER", as the mdmb device simulator does) rather than the CSR's key gets its
//!   identity from `/scep`, reads the answer with the signer key, and checks in with the
//!   identity, which certifies the CSR's key. The challenge is still required and single use.
//! - OpenSSL's per-thread error queue does not leak from one request into another: after a
//!   check-in signed by an identity from a foreign CA that bears GuardMDM's CA name (its
//!   signature check fails inside OpenSSL), an unrelated malformed SCEP message is refused with
//!   exactly the message it gets on its own. The server shares the test's current-thread
//!   runtime, so both requests run on the same thread.

// Helpers outside #[test] functions fail by panicking too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::disallowed_methods)]

use crate::common;

use base64::Engine as _;
use common::TestApp;
use common::mdm::{TOPIC, buy, enrollment, setup};
use guardmdm_crypto::scep::{PKI_MESSAGE_CONTENT_TYPE, ScepCa, ScepClient, StaticChallenge};
use guardmdm_crypto::{
    Certificate, DeviceKey, FailInfo, Identity, PkiOutcome, ScepClientError, sign_detached,
};
use guardmdm_mdm_protocol::CHECKIN_CONTENT_TYPE;
use guardmdm_sim::SimDevice;
use plist::{Dictionary, Value};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

/// A check-in body (XML plist) from `entries`.
fn plist(entries: &[(&str, Value)]) -> Vec<u8> {
    let dict: Dictionary = entries
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    let mut out = Vec::new();
    Value::Dictionary(dict).to_writer_xml(&mut out).unwrap();
    out
}

fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

/// PUTs a check-in signed by `identity` (`Mdm-Signature`); the status and body text.
async fn check_in(
    http: &reqwest::Client,
    url: &str,
    identity: &Identity,
    body: Vec<u8>,
) -> (StatusCode, String) {
    let signature = sign_detached(&body, identity).unwrap();
    let reply = http
        .put(url)
        .header(reqwest::header::CONTENT_TYPE, CHECKIN_CONTENT_TYPE)
        .header(
            "Mdm-Signature",
            base64::engine::general_purpose::STANDARD.encode(signature),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    (reply.status(), reply.text().await.unwrap())
}

/// POSTs a `PKIOperation` message to the SCEP endpoint at `url`.
async fn pki_operation(
    http: &reqwest::Client,
    url: &str,
    message: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let reply = http
        .post(url)
        .query(&[("operation", "PKIOperation")])
        .header(reqwest::header::CONTENT_TYPE, PKI_MESSAGE_CONTENT_TYPE)
        .body(message)
        .send()
        .await
        .unwrap();
    (reply.status(), reply.bytes().await.unwrap().to_vec())
}

async fn ca_certificate(http: &reqwest::Client, url: &str) -> Certificate {
    let reply = http
        .get(url)
        .query(&[("operation", "GetCACert")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    Certificate::from_der(&reply.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_scep_client_signing_with_a_separate_key_gets_an_identity_that_checks_in() {
    for backend in common::backends() {
        let mdm = setup(backend).await;
        let app = &mdm.app;
        let serial = buy(&mdm, 1).await.remove(0);
        // The simulated device gets the enrollment profile; the SCEP step is done here, the
        // way mdmb does it.
        let device = SimDevice::new(&app.abm.sim, &serial, &mdm.ca).unwrap();
        device.activate(&app.abm.sim).unwrap();
        let info = device.post_machine_info().await.unwrap();
        let scep_url = info.scep.url.clone();
        let challenge = info.scep.challenge.clone().unwrap();
        let subject: Vec<(&str, &str)> = info
            .scep
            .subject
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ca = ca_certificate(&app.http, &scep_url).await;
        let client = ScepClient::default().with_separate_signer();
        let key = DeviceKey::generate().unwrap();
        let request = |challenge: &str| {
            client
                .pkcs_req_with_subject(&ca, &key, &subject, Some(challenge))
                .unwrap()
        };

        // A wrong challenge is refused (and consumes nothing).
        let (message, pending) = request("not-the-challenge");
        let (status, reply) = pki_operation(&app.http, &scep_url, message).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            pending.read_cert_rep(&reply).unwrap_err(),
            ScepClientError::Failure {
                fail_info: Some(FailInfo::BadRequest)
            }
        );

        // The profile's challenge: a certificate for the CSR's key, read with the signer key.
        let (message, pending) = request(challenge.expose_secret());
        assert_eq!(pending.signer_certificate().subject(), "CN=SCEP SIGNER");
        let (status, reply) = pki_operation(&app.http, &scep_url, message).await;
        assert_eq!(status, StatusCode::OK);
        let cert = pending.read_cert_rep(&reply).unwrap();
        assert_eq!(cert.subject(), format!("CN=GuardMDM {serial}"));
        assert_ne!(&cert, pending.signer_certificate());
        assert!(
            Identity::from_device_key(pending.signer_certificate().clone(), &key, Vec::new())
                .is_err(),
            "the signer certificate is for another key than the device's"
        );
        let identity = Identity::from_device_key(cert, &key, Vec::new()).unwrap();

        // The challenge was single use.
        let (message, pending) = request(challenge.expose_secret());
        let (_, reply) = pki_operation(&app.http, &scep_url, message).await;
        assert_eq!(
            pending.read_cert_rep(&reply).unwrap_err(),
            ScepClientError::Failure {
                fail_info: Some(FailInfo::BadRequest)
            }
        );

        // The identity works: Authenticate and TokenUpdate enroll the device.
        let check_in_url = info.mdm.effective_check_in_url().to_string();
        let udid = device.udid().to_string();
        let (status, body) = check_in(
            &app.http,
            &check_in_url,
            &identity,
            plist(&[
                ("MessageType", string("Authenticate")),
                ("Topic", string(TOPIC)),
                ("UDID", string(&udid)),
                ("SerialNumber", string(&serial)),
                ("ProductName", string("iPhone14,5")),
                ("OSVersion", string("18.0")),
                ("BuildVersion", string("22A3354")),
            ]),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = check_in(
            &app.http,
            &check_in_url,
            &identity,
            plist(&[
                ("MessageType", string("TokenUpdate")),
                ("Topic", string(TOPIC)),
                ("UDID", string(&udid)),
                ("Token", Value::Data(vec![0xab; 32])),
                ("PushMagic", string("5E0E1A5C-6F0D-4B7B-8C4B-2B8F6A1D9E31")),
                ("UnlockToken", Value::Data(vec![0x01; 64])),
                ("AwaitingConfiguration", Value::Boolean(true)),
            ]),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let e = enrollment(app, &serial).await;
        assert_eq!(e["status"], "enrolled", "{e}");
        assert_eq!(e["udid"], udid.as_str());
        mdm.app.stop().await;
    }
}

/// An identity issued by a CA that is not GuardMDM's but bears the same name, so GuardMDM
/// checks its signature (with OpenSSL) before refusing it.
fn foreign_identity(guardmdm_ca: &Certificate) -> Identity {
    let name = guardmdm_ca.subject_common_name().unwrap();
    let foreign = ScepCa::generate(name).unwrap();
    assert_eq!(foreign.certificate().subject(), guardmdm_ca.subject());
    let key = DeviceKey::generate().unwrap();
    let (message, pending) = ScepClient::default()
        .pkcs_req(foreign.certificate(), &key, "stranger", "foreign")
        .unwrap();
    let response = foreign
        .pki_operation(
            &message,
            &StaticChallenge::new(SecretString::from("foreign")),
        )
        .unwrap();
    assert!(matches!(response.outcome, PkiOutcome::Issued(_)));
    let cert = pending.read_cert_rep(&response.der).unwrap();
    assert_eq!(cert.issuer(), guardmdm_ca.subject());
    Identity::from_device_key(cert, &key, Vec::new()).unwrap()
}

#[tokio::test]
async fn an_error_message_never_carries_an_earlier_requests_openssl_errors() {
    for backend in common::backends() {
        let app = TestApp::spawn(backend).await;
        let scep_url = app.url("/scep");
        let check_in_url = app.url("/mdm/checkin");
        let ca = ca_certificate(&app.http, &scep_url).await;
        let foreign = foreign_identity(&ca);
        let authenticate = plist(&[
            ("MessageType", string("Authenticate")),
            ("Topic", string(TOPIC)),
            ("UDID", string("00008030-000A1B2C3D4E5F60")),
        ]);
        // What a malformed SCEP message is told, before anything else went wrong.
        let (status, alone) = pki_operation(&app.http, &scep_url, b"junk".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let alone = String::from_utf8(alone).unwrap();
        assert!(alone.contains("not a CMS message"), "{alone}");
        for round in 0..20 {
            let (status, refused) =
                check_in(&app.http, &check_in_url, &foreign, authenticate.clone()).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
            assert!(
                refused.contains("was not issued by GuardMDM's CA"),
                "{refused}"
            );
            let (status, after) = pki_operation(&app.http, &scep_url, b"junk".to_vec()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            let after = String::from_utf8(after).unwrap();
            assert_eq!(
                after, alone,
                "round {round}: the refusal of a malformed SCEP message carries another request's errors"
            );
        }
        app.stop().await;
    }
}

//! The SCEP CA against requests built here with OpenSSL, the way a client builds them; replies
//! are read back with OpenSSL (`PKCS7_verify` against the CA, `CMS_decrypt` with the client
//! key). The interoperability test with micromdm's `scepclient` is `tests/scep_interop.rs`.

use super::*;
use crate::cms_shape::signed_data_shape;
use crate::device_key::DeviceKey;
use der::{Tag, Tagged};
use openssl::cms::CmsContentInfo;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

const CHALLENGE: &str = "one-time-7f3a";
const NONCE: [u8; 16] = *b"0123456789abcdef";
const TRANSACTION: &str = "8kcNByWSxb8EIgoqbi+gTqK4Weo=";

fn ca() -> ScepCa {
    ScepCa::generate("GuardMDM Test SCEP CA").unwrap()
}

fn policy() -> StaticChallenge {
    StaticChallenge::new(SecretString::from(CHALLENGE))
}

/// A SCEP client: its key pair, the throw-away self-signed certificate, and its CSR, built
/// with the client module's own pieces so that requests can be taken apart and forged.
struct Client {
    key: PKey<Private>,
    self_signed: X509,
    csr: Vec<u8>,
}

fn client(cn: &str, challenge: Option<&str>) -> Client {
    client_with_key(pki::rsa_key(2048).unwrap(), cn, challenge)
}

fn client_with_key(key: PKey<Private>, cn: &str, challenge: Option<&str>) -> Client {
    let subject = pki::name(cn, Some("GuardMDM Device")).unwrap();
    let signer_name = pki::name("SCEP SIGNER", None).unwrap();
    let self_signed = client::self_signed(&key, &signer_name).unwrap();
    let csr = client::csr(&key, &subject.to_der().unwrap(), challenge).unwrap();
    Client {
        key,
        self_signed,
        csr,
    }
}

/// A PKIOperation message: the CSR enveloped to `recipient`, signed by the client.
fn message(client: &Client, recipient: &X509, message_type: &str, cipher: Cipher) -> Vec<u8> {
    message_with_content(
        client,
        &envelope(&client.csr, recipient, cipher),
        message_type,
    )
}

fn envelope(content: &[u8], recipient: &X509, cipher: Cipher) -> Vec<u8> {
    client::envelope(content, recipient, cipher).unwrap()
}

fn message_with_content(client: &Client, content: &[u8], message_type: &str) -> Vec<u8> {
    client::signed_message(
        &client.self_signed,
        &client.key,
        content,
        message_type,
        TRANSACTION,
        &NONCE,
    )
    .unwrap()
}

fn pkcs_req(ca: &ScepCa, client: &Client) -> Vec<u8> {
    message(client, ca.certificate().x509(), "19", Cipher::aes_256_cbc())
}

/// A CertRep as a client reads it.
struct Reply {
    status: String,
    fail_info: Option<String>,
    recipient_nonce: Vec<u8>,
    sender_nonce: Vec<u8>,
    transaction_id: String,
    envelope: Option<Vec<u8>>,
}

fn read_reply(der: &[u8], ca: &ScepCa) -> Reply {
    // Full verification, chain included, against the CA as the client trusts it.
    let p7 = Pkcs7::from_der(der).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(ca.certificate().x509().clone()).unwrap();
    let store = store.build();
    let none = Stack::new().unwrap();
    let shape = signed_data_shape(der).unwrap();
    // A FAILURE reply has no eContent: its signature covers empty content.
    let detached = shape.econtent.is_none().then_some(&b""[..]);
    p7.verify(&none, &store, detached, None, Pkcs7Flags::BINARY)
        .unwrap();
    assert_eq!(shape.signer_infos.len(), 1);
    let attrs = shape.signer_infos[0].signed_attrs.clone().unwrap();
    let value = |oid| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .map(|a| a.values.iter().next().unwrap().clone())
    };
    let string = |oid| {
        value(oid).map(|v: der::Any| {
            assert_eq!(v.tag(), Tag::PrintableString);
            String::from_utf8(v.value().to_vec()).unwrap()
        })
    };
    let bytes = |oid| value(oid).map(|v: der::Any| v.value().to_vec()).unwrap();
    assert_eq!(string(request::MESSAGE_TYPE).unwrap(), "3");
    Reply {
        status: string(request::PKI_STATUS).unwrap(),
        fail_info: string(request::FAIL_INFO),
        recipient_nonce: bytes(request::RECIPIENT_NONCE),
        sender_nonce: bytes(request::SENDER_NONCE),
        transaction_id: string(request::TRANSACTION_ID).unwrap(),
        envelope: shape.econtent,
    }
}

/// Decrypts a SUCCESS reply's envelope with the client key and returns the certificate.
fn issued_certificate(reply: &Reply, client: &Client) -> X509 {
    let envelope = reply
        .envelope
        .as_ref()
        .expect("a SUCCESS reply has content");
    let degenerate = CmsContentInfo::from_der(envelope)
        .unwrap()
        .decrypt(&client.key, &client.self_signed)
        .unwrap();
    let p7 = Pkcs7::from_der(&degenerate).unwrap();
    let certs = p7.signed().unwrap().certificates().unwrap();
    assert_eq!(certs.len(), 1);
    certs.iter().next().unwrap().to_owned()
}

fn assert_failure(response: &PkiResponse, ca: &ScepCa, expected: FailInfo) {
    assert!(
        matches!(&response.outcome, PkiOutcome::Failed { fail_info, .. } if *fail_info == expected),
        "{:?}",
        response.outcome
    );
    let reply = read_reply(&response.der, ca);
    assert_eq!(reply.status, "2");
    assert_eq!(reply.fail_info.as_deref(), Some(expected.code()));
    assert_eq!(
        reply.envelope, None,
        "RFC 8894 §3.3.2: no pkcsPKIEnvelope on FAILURE"
    );
    assert_eq!(reply.recipient_nonce, NONCE);
    assert_eq!(reply.transaction_id, TRANSACTION);
}

#[test]
fn a_pkcs_req_with_the_right_challenge_gets_a_certificate() {
    let ca = ca();
    let device = client("device-1", Some(CHALLENGE));
    let response = ca
        .pki_operation(&pkcs_req(&ca, &device), &policy())
        .unwrap();
    assert_eq!(response.transaction_id, TRANSACTION);

    let reply = read_reply(&response.der, &ca);
    assert_eq!(reply.status, "0");
    assert_eq!(reply.fail_info, None);
    assert_eq!(
        reply.recipient_nonce, NONCE,
        "recipientNonce = the request's senderNonce"
    );
    assert_eq!(reply.sender_nonce.len(), 16);
    assert_ne!(reply.sender_nonce, NONCE);
    assert_eq!(reply.transaction_id, TRANSACTION);

    let issued = issued_certificate(&reply, &device);
    let PkiOutcome::Issued(reported) = &response.outcome else {
        panic!("{:?}", response.outcome);
    };
    assert_eq!(reported.to_der(), issued.to_der().unwrap());
    assert!(
        issued.public_key().unwrap().public_eq(&device.key),
        "the CSR's key is certified"
    );
    assert_eq!(reported.subject(), "O=GuardMDM Device, CN=device-1");
    assert_eq!(reported.issuer(), ca.certificate().subject());
    assert!(issued.verify(&ca.key).unwrap());
    let text = String::from_utf8(issued.to_text().unwrap()).unwrap();
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(
        text.contains("Digital Signature, Key Encipherment"),
        "{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
    let days = (reported.not_after() - reported.not_before()).whole_days();
    assert!((364..=366).contains(&days), "{days} days");
    assert!(
        reported.serial_hex().len() >= 20,
        "a random serial of about 128 bits"
    );

    assert!(ca.issued_by_me(reported));
    ca.trust_anchors().verify(reported, &[]).unwrap();
    let self_signed = Certificate::from_x509(device.self_signed).unwrap();
    assert!(!ca.issued_by_me(&self_signed));
    assert!(!ca.issued_by_me(self::ca().certificate()));
}

#[test]
fn serials_are_unique() {
    let ca = ca();
    let device = client("device-2", Some(CHALLENGE));
    let serial = |ca: &ScepCa| match ca
        .pki_operation(&pkcs_req(ca, &device), &policy())
        .unwrap()
        .outcome
    {
        PkiOutcome::Issued(cert) => cert.serial_hex().to_string(),
        other => panic!("{other:?}"),
    };
    assert_ne!(serial(&ca), serial(&ca));
}

#[test]
fn the_reply_envelope_uses_the_request_cipher() {
    let ca = ca();
    let device = client("device-3", Some(CHALLENGE));
    for (cipher, oid) in [
        (Cipher::aes_128_cbc(), "2.16.840.1.101.3.4.1.2"),
        (Cipher::aes_256_cbc(), "2.16.840.1.101.3.4.1.42"),
        (Cipher::des_ede3_cbc(), "1.2.840.113549.3.7"),
    ] {
        let msg = message(&device, ca.certificate().x509(), "19", cipher);
        let response = ca.pki_operation(&msg, &policy()).unwrap();
        let reply = read_reply(&response.der, &ca);
        let algorithm = request::content_encryption_algorithm(reply.envelope.as_ref().unwrap());
        assert_eq!(algorithm.unwrap().to_string(), oid);
        issued_certificate(&reply, &device);
    }
}

#[test]
fn a_wrong_or_missing_challenge_is_a_bad_request_failure() {
    let ca = ca();
    for challenge in [Some("guess"), Some(""), None] {
        let device = client("device-4", challenge);
        let response = ca
            .pki_operation(&pkcs_req(&ca, &device), &policy())
            .unwrap();
        assert_failure(&response, &ca, FailInfo::BadRequest);
    }
}

#[test]
fn the_two_phase_api_shows_the_challenge_and_csr() {
    let ca = ca();
    let device = client("device-5", Some(CHALLENGE));
    let request = ca.decode_request(&pkcs_req(&ca, &device)).unwrap();
    assert_eq!(request.problem(), None);
    assert_eq!(request.challenge(), Some(CHALLENGE));
    assert_eq!(request.transaction_id(), TRANSACTION);
    assert_eq!(request.message_type(), "19");
    let csr = request.csr().unwrap();
    assert_eq!(csr.common_name(), Some("device-5"));
    assert_eq!(csr.public_key_bits(), 2048);
    assert_eq!(
        csr.public_key_der(),
        device.key.public_key_to_der().unwrap()
    );
    assert_eq!(csr.public_key_sha256().len(), 64);
    assert!(!format!("{request:?}").contains(CHALLENGE));

    let refused = ca
        .respond(&request, Err(Rejection::new("challenge already used")))
        .unwrap();
    assert_failure(&refused, &ca, FailInfo::BadRequest);
    let PkiOutcome::Failed { reason, .. } = refused.outcome else {
        unreachable!()
    };
    assert!(reason.contains("challenge already used"), "{reason}");
    assert!(matches!(
        ca.respond(&request, Ok(())).unwrap().outcome,
        PkiOutcome::Issued(_)
    ));
}

#[test]
fn a_forged_request_signature_is_a_bad_message_check() {
    let ca = ca();
    let device = client("device-6", Some(CHALLENGE));
    let mut msg = pkcs_req(&ca, &device);
    let last = msg.len() - 1; // the signature value ends the structure
    msg[last] ^= 0x01;
    let response = ca.pki_operation(&msg, &policy()).unwrap();
    assert_failure(&response, &ca, FailInfo::BadMessageCheck);
}

#[test]
fn an_envelope_for_another_ca_is_a_bad_message_check() {
    let ca = ca();
    let other = self::ca();
    let device = client("device-7", Some(CHALLENGE));
    let msg = message(
        &device,
        other.certificate().x509(),
        "19",
        Cipher::aes_128_cbc(),
    );
    let response = ca.pki_operation(&msg, &policy()).unwrap();
    assert_failure(&response, &ca, FailInfo::BadMessageCheck);
}

#[test]
fn single_des_is_refused_unless_enabled() {
    let ca = ca();
    let device = client("device-8", Some(CHALLENGE));
    legacy::load().unwrap(); // so the test can build a DES envelope
    let msg = message(&device, ca.certificate().x509(), "19", Cipher::des_cbc());
    let response = ca.pki_operation(&msg, &policy()).unwrap();
    assert_failure(&response, &ca, FailInfo::BadAlg);

    let ca = ca.with_single_des().unwrap();
    let response = ca.pki_operation(&msg, &policy()).unwrap();
    let reply = read_reply(&response.der, &ca);
    assert_eq!(reply.status, "0");
    let algorithm = request::content_encryption_algorithm(reply.envelope.as_ref().unwrap());
    assert_eq!(
        algorithm.unwrap().to_string(),
        "1.2.840.113549.3.7",
        "3DES reply"
    );
    issued_certificate(&reply, &device);
}

#[test]
fn other_message_types_are_bad_requests() {
    let ca = ca();
    let device = client("device-9", Some(CHALLENGE));
    for message_type in ["17", "20", "21", "22", "99"] {
        let msg = message(
            &device,
            ca.certificate().x509(),
            message_type,
            Cipher::aes_256_cbc(),
        );
        let response = ca.pki_operation(&msg, &policy()).unwrap();
        assert_failure(&response, &ca, FailInfo::BadRequest);
    }
}

#[test]
fn a_small_rsa_key_is_a_bad_alg() {
    let ca = ca();
    let device = client_with_key(pki::rsa_key(1024).unwrap(), "weak", Some(CHALLENGE));
    let response = ca
        .pki_operation(&pkcs_req(&ca, &device), &policy())
        .unwrap();
    assert_failure(&response, &ca, FailInfo::BadAlg);
}

/// `device`'s CSR in a request signed by `signer`'s key and self-signed certificate, as mdmb
/// signs with a separate "SCEP SIGNER" key.
fn signed_by(device: &Client, signer: &Client) -> Client {
    Client {
        key: signer.key.clone(),
        self_signed: signer.self_signed.clone(),
        csr: device.csr.clone(),
    }
}

#[test]
fn a_request_signed_with_a_separate_key_certifies_the_csr_key() {
    let ca = ca();
    let device = client("device-10", Some(CHALLENGE));
    let signer = client("unused", None);
    let mixed = signed_by(&device, &signer);
    let response = ca.pki_operation(&pkcs_req(&ca, &mixed), &policy()).unwrap();
    let reply = read_reply(&response.der, &ca);
    assert_eq!(reply.status, "0", "{:?}", response.outcome);
    // The envelope is for the signer certificate: its key opens it, the CSR's does not.
    let issued = issued_certificate(&reply, &mixed);
    assert!(
        CmsContentInfo::from_der(reply.envelope.as_ref().unwrap())
            .unwrap()
            .decrypt(&device.key, &device.self_signed)
            .is_err()
    );
    assert!(
        issued.public_key().unwrap().public_eq(&device.key),
        "the CSR's key is certified"
    );
    assert!(!issued.public_key().unwrap().public_eq(&signer.key));
    let PkiOutcome::Issued(reported) = &response.outcome else {
        panic!("{:?}", response.outcome);
    };
    assert_eq!(reported.subject(), "O=GuardMDM Device, CN=device-10");
}

#[test]
fn a_separate_signer_must_have_an_rsa_key() {
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    let ca = ca();
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let name = pki::name("SCEP SIGNER", None).unwrap();
    let signer = Client {
        self_signed: client::self_signed(&key, &name).unwrap(),
        key,
        csr: Vec::new(),
    };
    let mixed = signed_by(&client("device-10", Some(CHALLENGE)), &signer);
    let request = ca.decode_request(&pkcs_req(&ca, &mixed)).unwrap();
    let (fail_info, reason) = request.problem().unwrap();
    assert_eq!(fail_info, FailInfo::BadAlg, "{reason}");
    assert!(reason.contains("not RSA"), "{reason}");
}

#[test]
fn a_separate_signer_does_not_excuse_a_csr_that_does_not_verify() {
    let ca = ca();
    let device = client("device-10", Some(CHALLENGE));
    let mut mixed = signed_by(&device, &client("unused", None));
    let last = mixed.csr.len() - 1; // the CSR's signature value ends it
    mixed.csr[last] ^= 0x01;
    let request = ca.decode_request(&pkcs_req(&ca, &mixed)).unwrap();
    let (fail_info, reason) = request.problem().unwrap();
    assert_eq!(fail_info, FailInfo::BadMessageCheck);
    assert!(
        reason.contains("CSR's signature does not verify"),
        "{reason}"
    );
    let response = ca.pki_operation(&pkcs_req(&ca, &mixed), &policy()).unwrap();
    assert_failure(&response, &ca, FailInfo::BadMessageCheck);
}

#[test]
fn a_separate_signer_still_needs_the_challenge() {
    let ca = ca();
    let signer = client("unused", Some(CHALLENGE));
    for challenge in [Some("guess"), None] {
        let mixed = signed_by(&client("device-10", challenge), &signer);
        let response = ca.pki_operation(&pkcs_req(&ca, &mixed), &policy()).unwrap();
        assert_failure(&response, &ca, FailInfo::BadRequest);
    }
}

#[test]
fn garbage_in_the_envelope_is_a_bad_request() {
    let ca = ca();
    let device = client("device-11", Some(CHALLENGE));
    let not_enveloped = message_with_content(&device, b"hello", "19");
    let response = ca.pki_operation(&not_enveloped, &policy()).unwrap();
    assert_failure(&response, &ca, FailInfo::BadRequest);
    let not_a_csr = message_with_content(
        &device,
        &envelope(b"not a CSR", ca.certificate().x509(), Cipher::aes_256_cbc()),
        "19",
    );
    let response = ca.pki_operation(&not_a_csr, &policy()).unwrap();
    assert_failure(&response, &ca, FailInfo::BadRequest);
}

#[test]
fn unanswerable_messages_are_errors() {
    let ca = ca();
    let device = client("device-12", Some(CHALLENGE));
    let msg = pkcs_req(&ca, &device);
    for input in [&b""[..], b"junk", &msg[..msg.len() / 2]] {
        let err = ca.pki_operation(input, &policy()).unwrap_err();
        assert!(matches!(err, ScepError::Malformed(_)), "{err}");
        assert!(err.is_client_error());
    }
    // Signed, but without the SCEP attributes.
    let mut certs = Stack::new().unwrap();
    certs.push(device.self_signed.clone()).unwrap();
    let plain = Pkcs7::sign(
        &device.self_signed,
        &device.key,
        &certs,
        b"x",
        Pkcs7Flags::BINARY,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let err = ca.pki_operation(&plain, &policy()).unwrap_err();
    assert!(err.to_string().contains("transactionID"), "{err}");
}

#[test]
fn the_ca_round_trips_through_pem() {
    let ca = ca();
    let (cert_pem, key_pem) = ca.to_pem().unwrap();
    let again = ScepCa::from_pem(cert_pem.as_bytes(), &key_pem).unwrap();
    assert_eq!(again.certificate(), ca.certificate());
    assert_eq!(again.get_ca_cert(), ca.certificate().to_der());
    assert!(!format!("{again:?}").contains("PRIVATE"));

    let (_, other_key) = self::ca().to_pem().unwrap();
    let err = ScepCa::from_pem(cert_pem.as_bytes(), &other_key).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
    let ec = openssl::ec::EcKey::generate(
        &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
    )
    .unwrap();
    let ec_pem = PKey::from_ec_key(ec)
        .unwrap()
        .private_key_to_pem_pkcs8()
        .unwrap();
    let err = ScepCa::from_pem(
        cert_pem.as_bytes(),
        &SecretString::from(String::from_utf8(ec_pem).unwrap()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("RSA"), "{err}");
    assert!(ScepCa::generate("").is_err());
}

#[test]
fn the_generated_ca_is_a_ten_year_rsa_ca() {
    let ca = ca();
    let cert = ca.certificate();
    assert_eq!(cert.subject(), "O=GuardMDM, CN=GuardMDM Test SCEP CA");
    assert_eq!(ca.key.bits(), 2048);
    let years = (cert.not_after() - cert.not_before()).whole_days() / 365;
    assert_eq!(years, 10);
    let text = String::from_utf8(cert.x509().to_text().unwrap()).unwrap();
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(
        text.contains("Digital Signature, Key Encipherment, Certificate Sign, CRL Sign"),
        "{text}"
    );
}

#[test]
fn capabilities_are_honest() {
    let caps: Vec<&str> = ScepCa::get_ca_caps().lines().collect();
    assert_eq!(
        caps,
        [
            "AES",
            "DES3",
            "POSTPKIOperation",
            "SCEPStandard",
            "SHA-256",
            "SHA-512"
        ]
    );
}

#[test]
fn get_message_parameters_decode() {
    let ca = ca();
    let device = client("device-13", Some(CHALLENGE));
    let msg = pkcs_req(&ca, &device);
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let standard = STANDARD.encode(&msg);
    assert_eq!(decode_message_param(&standard).unwrap(), msg);
    assert_eq!(
        decode_message_param(&standard.replace('+', " ")).unwrap(),
        msg
    );
    assert_eq!(
        decode_message_param(&URL_SAFE_NO_PAD.encode(&msg)).unwrap(),
        msg
    );
    assert!(decode_message_param("a=b=c").is_err());
}

#[test]
fn the_static_challenge_compares_exactly() {
    let csr = CsrInfo {
        subject: String::new(),
        common_name: None,
        public_key_der: Vec::new(),
        public_key_bits: 0,
    };
    let policy = policy();
    assert!(policy.check(Some(CHALLENGE), &csr).is_ok());
    assert!(policy.check(Some("one-time-7f3b"), &csr).is_err());
    assert!(policy.check(Some("one-time-7f3a "), &csr).is_err());
    assert!(policy.check(None, &csr).is_err());
}

#[test]
fn issued_certificates_never_outlive_the_ca() {
    let root = crate::test_pki::make("Short CA", None, Usage::IssuingCa, -60, 30 * 86_400);
    let cert_pem = root.cert.to_pem().unwrap();
    let key_pem = String::from_utf8(root.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let ca = ScepCa::from_pem(&cert_pem, &SecretString::from(key_pem)).unwrap();
    let device = client("device-14", Some(CHALLENGE));
    let PkiOutcome::Issued(cert) = ca
        .pki_operation(&pkcs_req(&ca, &device), &policy())
        .unwrap()
        .outcome
    else {
        panic!("not issued");
    };
    assert_eq!(cert.not_after(), ca.certificate().not_after());
}

// The device side: `client::ScepClient` against the CA.

fn device_key() -> DeviceKey {
    DeviceKey::generate().unwrap()
}

#[test]
fn the_client_enrolls_with_the_ca() {
    let ca = ca();
    let key = device_key();
    let (message, pending) = ScepClient::default()
        .pkcs_req(
            ca.certificate(),
            &key,
            "00008140-001A2B3C4D5E801C",
            CHALLENGE,
        )
        .unwrap();
    let request = ca.decode_request(&message).unwrap();
    assert_eq!(request.problem(), None);
    assert_eq!(request.challenge(), Some(CHALLENGE));
    assert_eq!(request.transaction_id(), pending.transaction_id());
    assert_eq!(pending.transaction_id().len(), 64, "hex SHA-256 of the key");
    let response = ca.respond(&request, Ok(())).unwrap();
    let cert = pending.read_cert_rep(&response.der).unwrap();
    assert_eq!(cert.subject(), "CN=00008140-001A2B3C4D5E801C");
    assert!(ca.issued_by_me(&cert));
    crate::Identity::from_device_key(cert, &key, Vec::new()).unwrap();
    assert!(!format!("{pending:?}").contains("PRIVATE"));
}

#[test]
fn the_client_can_sign_with_a_separate_key_as_mdmb_does() {
    let ca = ca();
    let key = device_key();
    let client = ScepClient::default().with_separate_signer();
    assert!(client.separate_signer());
    assert!(!ScepClient::default().separate_signer());
    let (message, pending) = client
        .pkcs_req(ca.certificate(), &key, "device", CHALLENGE)
        .unwrap();
    let request = ca.decode_request(&message).unwrap();
    assert_eq!(request.problem(), None);
    let signer = request.signer().unwrap();
    assert_eq!(signer, pending.signer_certificate());
    assert_eq!(signer.subject(), "CN=SCEP SIGNER");
    assert!(
        crate::Identity::from_device_key(signer.clone(), &key, Vec::new()).is_err(),
        "the signer certificate is for another key"
    );
    let cert = pending
        .read_cert_rep(&ca.respond(&request, Ok(())).unwrap().der)
        .unwrap();
    assert_eq!(cert.subject(), "CN=device");
    crate::Identity::from_device_key(cert, &key, Vec::new()).unwrap();

    let (message, pending) = client
        .pkcs_req(ca.certificate(), &key, "device", "wrong")
        .unwrap();
    let response = ca.pki_operation(&message, &policy()).unwrap();
    assert_eq!(
        pending.read_cert_rep(&response.der).unwrap_err(),
        ScepClientError::Failure {
            fail_info: Some(FailInfo::BadRequest)
        }
    );
}

#[test]
fn the_client_reads_failures_with_their_fail_info() {
    let ca = ca();
    let (message, pending) = ScepClient::default()
        .pkcs_req(ca.certificate(), &device_key(), "device", "wrong")
        .unwrap();
    let response = ca.pki_operation(&message, &policy()).unwrap();
    let err = pending.read_cert_rep(&response.der).unwrap_err();
    assert_eq!(
        err,
        ScepClientError::Failure {
            fail_info: Some(FailInfo::BadRequest)
        }
    );
    assert!(err.to_string().contains("badRequest (2)"), "{err}");
}

#[test]
fn the_client_refuses_replies_to_other_requests() {
    let ca = ca();
    let client = ScepClient::default();
    let key = device_key();
    let (first, first_pending) = client
        .pkcs_req(ca.certificate(), &key, "device", CHALLENGE)
        .unwrap();
    let (_, same_key_pending) = client
        .pkcs_req(ca.certificate(), &key, "device", CHALLENGE)
        .unwrap();
    let (_, other_pending) = client
        .pkcs_req(ca.certificate(), &device_key(), "device", CHALLENGE)
        .unwrap();
    let reply = ca.pki_operation(&first, &policy()).unwrap().der;
    assert!(first_pending.read_cert_rep(&reply).is_ok());
    assert_eq!(
        same_key_pending.read_cert_rep(&reply).unwrap_err(),
        ScepClientError::NonceMismatch
    );
    assert!(matches!(
        other_pending.read_cert_rep(&reply).unwrap_err(),
        ScepClientError::TransactionMismatch { .. }
    ));
    // A reply signed by another CA (which could not even decrypt the request).
    let impostor = self::ca().pki_operation(&first, &policy()).unwrap().der;
    assert!(matches!(
        first_pending.read_cert_rep(&impostor).unwrap_err(),
        ScepClientError::BadSignature(_)
    ));
    assert!(matches!(
        first_pending.read_cert_rep(b"junk").unwrap_err(),
        ScepClientError::Malformed(_)
    ));
}

#[test]
fn the_client_chooses_from_the_capabilities() {
    let caps = ScepCapabilities::parse(ScepCa::get_ca_caps());
    assert!(caps.post_pki_operation() && caps.aes() && caps.sha256() && caps.des3());
    assert_eq!(
        ScepClient::for_capabilities(&caps).unwrap().cipher(),
        EnvelopeCipher::Aes128Cbc
    );
    let des3 = ScepCapabilities::parse("DES3\r\nsha-256\r\n");
    assert!(!des3.post_pki_operation());
    assert_eq!(
        ScepClient::for_capabilities(&des3).unwrap().cipher(),
        EnvelopeCipher::Des3Cbc
    );
    let standard = ScepCapabilities::parse("SCEPStandard");
    assert!(standard.post_pki_operation());
    assert_eq!(
        ScepClient::for_capabilities(&standard).unwrap().cipher(),
        EnvelopeCipher::Aes128Cbc
    );
    for weak in ["AES\nPOSTPKIOperation", "SHA-256", ""] {
        assert!(matches!(
            ScepClient::for_capabilities(&ScepCapabilities::parse(weak)),
            Err(ScepError::InvalidRequest(_))
        ));
    }
}

#[test]
fn the_client_sends_the_whole_subject_and_any_cipher() {
    let ca = ca();
    let key = device_key();
    let subject = [
        ("O", "GuardMDM"),
        ("OU", "Devices"),
        ("0.9.2342.19200300.100.1.1", "uid-1"),
        ("CN", "device"),
    ];
    for cipher in [
        EnvelopeCipher::Aes128Cbc,
        EnvelopeCipher::Aes256Cbc,
        EnvelopeCipher::Des3Cbc,
    ] {
        let (message, pending) = ScepClient::new(cipher)
            .pkcs_req_with_subject(ca.certificate(), &key, &subject, Some(CHALLENGE))
            .unwrap();
        let response = ca.pki_operation(&message, &policy()).unwrap();
        let cert = pending.read_cert_rep(&response.der).unwrap();
        assert_eq!(
            cert.subject(),
            "O=GuardMDM, OU=Devices, UID=uid-1, CN=device"
        );
    }
    // No challenge at all: refused by a policy that wants one.
    let (message, pending) = ScepClient::default()
        .pkcs_req_with_subject(ca.certificate(), &key, &[("CN", "device")], None)
        .unwrap();
    let request = ca.decode_request(&message).unwrap();
    assert_eq!(request.challenge(), None);
    let response = ca.pki_operation(&message, &policy()).unwrap();
    assert!(matches!(
        pending.read_cert_rep(&response.der),
        Err(ScepClientError::Failure { .. })
    ));
    assert!(matches!(
        ScepClient::default().pkcs_req_with_subject(
            ca.certificate(),
            &key,
            &[("NOT-A-NAME", "x")],
            None
        ),
        Err(ScepError::InvalidRequest(_))
    ));
}

#[test]
fn fail_info_codes_round_trip() {
    for f in [
        FailInfo::BadAlg,
        FailInfo::BadMessageCheck,
        FailInfo::BadRequest,
        FailInfo::BadTime,
        FailInfo::BadCertId,
    ] {
        assert_eq!(FailInfo::from_code(f.code()), Some(f));
    }
    assert_eq!(FailInfo::from_code("9"), None);
}

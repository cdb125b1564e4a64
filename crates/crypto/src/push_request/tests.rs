use super::*;
use crate::PushCertificate;
use crate::test_pki::{self, Pair};
use secrecy::ExposeSecret;

const TOPIC: &str = "com.apple.mgmt.External.0b9c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3";
const DAY: i64 = 86_400;

fn pem(pair: &Pair) -> Vec<u8> {
    pair.cert.to_pem().unwrap()
}

fn key_pem(pair: &Pair) -> Vec<u8> {
    pair.key.private_key_to_pem_pkcs8().unwrap()
}

/// A vendor CA (root), its intermediate, and a vendor signing certificate under it.
fn vendor_pki() -> (Pair, Pair, Pair) {
    let root = test_pki::root("Test Vendor Root");
    let intermediate = test_pki::intermediate(&root, "Test Vendor Intermediate");
    let vendor = test_pki::leaf(&intermediate, "MDM Vendor: GuardMDM Test");
    (root, intermediate, vendor)
}

#[test]
fn a_request_holds_a_fresh_2048_bit_key_whose_fingerprint_it_reports() {
    let request = generate_push_request().unwrap();
    let req = read_request(request.csr_pem.as_bytes()).unwrap();
    assert_eq!(req.public_key().unwrap().bits(), 2048);
    assert!(
        one_line(req.subject_name()).contains(REQUEST_COMMON_NAME),
        "{}",
        one_line(req.subject_name())
    );
    let from_key =
        public_key_sha256_of_private_key(request.private_key_pem.expose_secret().as_bytes())
            .unwrap();
    assert_eq!(from_key, request.public_key_sha256);
    let other = generate_push_request().unwrap();
    assert_ne!(other.public_key_sha256, request.public_key_sha256);
    assert!(format!("{request:?}").contains("REDACTED"));
    assert!(!format!("{request:?}").contains("PRIVATE KEY"));
}

#[test]
fn the_portal_issues_a_push_certificate_for_the_requests_key() {
    let request = generate_push_request().unwrap();
    let portal = PushPortal::generate().unwrap();
    let cert = portal
        .issue(request.csr_pem.as_bytes(), TOPIC, 365)
        .unwrap();
    let push = PushCertificate::from_pem(
        cert.as_bytes(),
        request.private_key_pem.expose_secret().as_bytes(),
    )
    .unwrap();
    assert_eq!(push.topic, TOPIC);
    assert_eq!(push.public_key_sha256(), request.public_key_sha256);
    let days = (push.certificate.not_after() - OffsetDateTime::now_utc()).whole_days();
    assert!((364..=365).contains(&days), "{days}");
    assert!(matches!(
        portal.issue(b"not a request", TOPIC, 365).unwrap_err(),
        PushRequestError::Request(_)
    ));
}

#[test]
fn the_signed_request_carries_the_csr_the_chain_in_order_and_a_vendor_signature() {
    let (root, intermediate, vendor) = vendor_pki();
    // The bundle in any order, spread over two files.
    let bundle = [pem(&root), pem(&vendor)].concat();
    let chain_file = pem(&intermediate);
    let signer = VendorSigner::new(&[&bundle, &chain_file], &key_pem(&vendor)).unwrap();
    assert_eq!(signer.chain_subjects().len(), 3);
    assert!(signer.chain_subjects()[0].contains("MDM Vendor: GuardMDM Test"));
    assert!(
        signer.notes()[0].contains("not Apple Root CA"),
        "{:?}",
        signer.notes()
    );

    let request = generate_push_request().unwrap();
    let encoded = signer.sign_request(request.csr_pem.as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let xml = b64.decode(encoded.as_bytes()).unwrap();
    assert!(
        xml.starts_with(b"<?xml"),
        "{}",
        String::from_utf8_lossy(&xml)
    );
    let value = plist::Value::from_reader_xml(xml.as_slice()).unwrap();
    let dict = value.as_dictionary().unwrap();
    let text = |k: &str| {
        dict.get(k)
            .and_then(plist::Value::as_string)
            .unwrap()
            .to_string()
    };

    let csr_der = b64.decode(text("PushCertRequestCSR")).unwrap();
    let expected = X509Req::from_pem(request.csr_pem.as_bytes())
        .unwrap()
        .to_der()
        .unwrap();
    assert_eq!(csr_der, expected);

    let chain = X509::stack_from_pem(text("PushCertCertificateChain").as_bytes()).unwrap();
    let ders: Vec<Vec<u8>> = chain.iter().map(|c| c.to_der().unwrap()).collect();
    assert_eq!(
        ders,
        [
            vendor.cert.to_der().unwrap(),
            intermediate.cert.to_der().unwrap(),
            root.cert.to_der().unwrap()
        ],
        "vendor certificate, then its issuer, then the root"
    );

    let signature = b64.decode(text("PushCertSignature")).unwrap();
    let public = vendor.cert.public_key().unwrap();
    let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha256(), &public).unwrap();
    verifier.update(&csr_der).unwrap();
    assert!(
        verifier.verify(&signature).unwrap(),
        "the vendor key signed the CSR's DER"
    );
    let stranger = test_pki::root("Stranger");
    let public = stranger.cert.public_key().unwrap();
    let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha256(), &public).unwrap();
    verifier.update(&csr_der).unwrap();
    assert!(!verifier.verify(&signature).unwrap_or(false));

    assert!(matches!(
        signer.sign_request(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
        ),
        Err(PushRequestError::Request(_))
    ));
}

#[test]
fn a_missing_issuer_is_named_with_where_to_get_it() {
    let (root, _intermediate, vendor) = vendor_pki();
    for bundle in [pem(&vendor), [pem(&vendor), pem(&root)].concat()] {
        let err = VendorSigner::new(&[&bundle], &key_pem(&vendor)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PushRequestError::Chain(_)), "{text}");
        assert!(text.contains("incomplete"), "{text}");
        assert!(text.contains("CN=Test Vendor Intermediate"), "{text}");
        assert!(text.contains(APPLE_CERTIFICATE_AUTHORITY_URL), "{text}");
        assert!(text.contains("--vendor-chain"), "{text}");
    }
}

#[test]
fn a_key_that_fits_no_certificate_an_expired_vendor_and_garbage_are_refused() {
    let (root, intermediate, vendor) = vendor_pki();
    let bundle = [pem(&vendor), pem(&intermediate), pem(&root)].concat();
    let stranger = test_pki::root("Stranger");
    assert_eq!(
        VendorSigner::new(&[&bundle], &key_pem(&stranger)).unwrap_err(),
        PushRequestError::VendorKeyMismatch { given: 3 }
    );
    assert!(matches!(
        VendorSigner::new(&[&bundle], b"not a key").unwrap_err(),
        PushRequestError::VendorKey(_)
    ));
    assert!(matches!(
        VendorSigner::new(&[b"not a certificate"], &key_pem(&vendor)).unwrap_err(),
        PushRequestError::VendorCertificate(_)
    ));

    let old = test_pki::make(
        "MDM Vendor: Old",
        Some(&intermediate),
        Usage::ClientIdentity,
        -3 * DAY,
        -DAY,
    );
    let bundle = [pem(&old), pem(&intermediate), pem(&root)].concat();
    let err = VendorSigner::new(&[&bundle], &key_pem(&old))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("The MDM vendor certificate is valid only from"),
        "{err}"
    );
    assert!(err.contains("developer.apple.com"), "{err}");
}

#[test]
fn an_issuer_with_the_right_name_but_another_key_breaks_the_chain() {
    let (root, _intermediate, vendor) = vendor_pki();
    let impostor = test_pki::intermediate(&root, "Test Vendor Intermediate");
    let bundle = [pem(&vendor), pem(&impostor), pem(&root)].concat();
    let err = VendorSigner::new(&[&bundle], &key_pem(&vendor)).unwrap_err();
    assert!(matches!(err, PushRequestError::Chain(_)), "{err}");
}

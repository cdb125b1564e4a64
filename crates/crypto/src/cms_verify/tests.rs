use super::*;
use crate::pki::Usage;
use crate::test_pki::{self, Pair};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;

const MACHINE_INFO: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PRODUCT</key><string>iPhone16,2</string>
	<key>SERIAL</key><string>F2LXK0ABCDEF</string>
	<key>UDID</key><string>00008130-000A1B2C3D4E5F60</string>
	<key>VERSION</key><string>22A3354</string>
	<key>OS_VERSION</key><string>18.0</string>
</dict>
</plist>
"#;

/// Apple's shape: a root, a device CA intermediate, a device identity.
struct DevicePki {
    root: Pair,
    intermediate: Pair,
    device: Pair,
}

fn device_pki() -> DevicePki {
    let root = test_pki::root("Test Apple Root CA");
    let intermediate = test_pki::intermediate(&root, "Test iPhone Device CA");
    let device = test_pki::leaf(&intermediate, "00008130-000A1B2C3D4E5F60");
    DevicePki {
        root,
        intermediate,
        device,
    }
}

fn anchors(cert: &X509) -> TrustAnchors {
    TrustAnchors::from_pem(&cert.to_pem().unwrap()).unwrap()
}

fn sign(signer: &Pair, extra: &[&X509], content: &[u8], flags: Pkcs7Flags) -> Vec<u8> {
    let mut certs = Stack::new().unwrap();
    for c in extra {
        certs.push((*c).clone()).unwrap();
    }
    Pkcs7::sign(
        &signer.cert,
        &signer.key,
        &certs,
        content,
        flags | Pkcs7Flags::BINARY,
    )
    .unwrap()
    .to_der()
    .unwrap()
}

fn machine_info(pki: &DevicePki, flags: Pkcs7Flags) -> Vec<u8> {
    sign(&pki.device, &[&pki.intermediate.cert], MACHINE_INFO, flags)
}

fn flip_byte_at(mut der: Vec<u8>, index: usize) -> Vec<u8> {
    der[index] ^= 0x01;
    der
}

fn position_of(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn attached_machine_info_verifies_through_the_intermediate() {
    let pki = device_pki();
    let der = machine_info(&pki, Pkcs7Flags::empty());
    let verified = verify_attached(&der, &anchors(&pki.root.cert)).unwrap();
    assert_eq!(verified.content, MACHINE_INFO);
    assert_eq!(
        verified.signer.subject_common_name(),
        Some("00008130-000A1B2C3D4E5F60")
    );
}

#[test]
fn attached_without_signed_attributes_verifies() {
    let pki = device_pki();
    let der = machine_info(&pki, Pkcs7Flags::NOATTR);
    let verified = verify_attached(&der, &anchors(&pki.root.cert)).unwrap();
    assert_eq!(verified.content, MACHINE_INFO);
}

#[test]
fn attached_accepts_the_base64_header_forms() {
    let pki = device_pki();
    let der = machine_info(&pki, Pkcs7Flags::empty());
    let anchors = anchors(&pki.root.cert);
    for text in [STANDARD.encode(&der), URL_SAFE_NO_PAD.encode(&der)] {
        let verified = verify_attached(text.as_bytes(), &anchors).unwrap();
        assert_eq!(verified.content, MACHINE_INFO);
    }
}

#[test]
fn anchors_may_hold_the_intermediate_when_the_device_omits_it() {
    let pki = device_pki();
    let der = sign(&pki.device, &[], MACHINE_INFO, Pkcs7Flags::empty());
    let mut bundle = pki.root.cert.to_pem().unwrap();
    bundle.extend(pki.intermediate.cert.to_pem().unwrap());
    let verified = verify_attached(&der, &TrustAnchors::from_pem(&bundle).unwrap()).unwrap();
    assert_eq!(verified.content, MACHINE_INFO);
    // Without the intermediate anywhere, the chain is incomplete.
    let err = verify_attached(&der, &anchors(&pki.root.cert)).unwrap_err();
    assert!(matches!(err, CmsError::UntrustedChain { .. }), "{err}");
}

#[test]
fn a_flipped_content_byte_is_a_bad_signature() {
    let pki = device_pki();
    let der = machine_info(&pki, Pkcs7Flags::empty());
    let at = position_of(&der, b"F2LXK0ABCDEF");
    let err = verify_attached(&flip_byte_at(der, at), &anchors(&pki.root.cert)).unwrap_err();
    assert!(matches!(err, CmsError::BadSignature { .. }), "{err}");
    assert!(
        err.to_string().contains("00008130-000A1B2C3D4E5F60"),
        "{err}"
    );
}

#[test]
fn a_flipped_signature_byte_is_a_bad_signature() {
    let pki = device_pki();
    for flags in [Pkcs7Flags::empty(), Pkcs7Flags::NOATTR] {
        let der = machine_info(&pki, flags);
        let last = der.len() - 1; // the signature value ends the structure
        let err = verify_attached(&flip_byte_at(der, last), &anchors(&pki.root.cert)).unwrap_err();
        assert!(matches!(err, CmsError::BadSignature { .. }), "{err}");
    }
}

#[test]
fn a_wrong_anchor_is_an_untrusted_chain_naming_the_signer() {
    let pki = device_pki();
    let other = test_pki::root("Some Other CA");
    let der = machine_info(&pki, Pkcs7Flags::empty());
    let err = verify_attached(&der, &anchors(&other.cert)).unwrap_err();
    assert!(matches!(err, CmsError::UntrustedChain { .. }), "{err}");
    assert!(err.is_trust_failure());
    assert!(
        err.to_string().contains("CN=00008130-000A1B2C3D4E5F60"),
        "{err}"
    );
}

#[test]
fn a_self_signed_signer_is_untrusted() {
    let pki = device_pki();
    let rogue = test_pki::root("00008130-000A1B2C3D4E5F60");
    let der = sign(&rogue, &[], MACHINE_INFO, Pkcs7Flags::empty());
    let err = verify_attached(&der, &anchors(&pki.root.cert)).unwrap_err();
    assert!(matches!(err, CmsError::UntrustedChain { .. }), "{err}");
}

#[test]
fn truncated_der_is_not_cms() {
    let pki = device_pki();
    let der = machine_info(&pki, Pkcs7Flags::empty());
    for len in [0, 1, 10, der.len() / 2, der.len() - 1] {
        let err = verify_attached(&der[..len], &anchors(&pki.root.cert)).unwrap_err();
        assert!(matches!(err, CmsError::NotCms(_)), "length {len}: {err}");
    }
}

#[test]
fn other_bytes_are_not_cms() {
    let pki = device_pki();
    let anchors = anchors(&pki.root.cert);
    let cert_der = pki.device.cert.to_der().unwrap();
    for input in [MACHINE_INFO, &cert_der, &[0x30, 0x03, 0x02, 0x01, 0x01][..]] {
        let err = verify_attached(input, &anchors).unwrap_err();
        assert!(matches!(err, CmsError::NotCms(_)), "{err}");
    }
    let err = verify_detached(b"%%% not base64 %%%", b"body").unwrap_err();
    assert!(matches!(err, CmsError::NotCms(_)), "{err}");
}

#[test]
fn bad_base64_text_is_reported_as_such() {
    let err = verify_detached(b"MIIabc=def", b"body").unwrap_err();
    assert!(matches!(err, CmsError::Base64(_)), "{err}");
}

#[test]
fn enveloped_data_is_not_signed_data() {
    let pki = device_pki();
    let mut certs = Stack::new().unwrap();
    certs.push(pki.device.cert.clone()).unwrap();
    let der = Pkcs7::encrypt(
        &certs,
        MACHINE_INFO,
        Cipher::aes_256_cbc(),
        Pkcs7Flags::BINARY,
    )
    .unwrap()
    .to_der()
    .unwrap();
    let err = verify_attached(&der, &anchors(&pki.root.cert)).unwrap_err();
    assert!(
        matches!(&err, CmsError::NotSignedData { content_type } if content_type.contains("envelopedData")),
        "{err}"
    );
}

#[test]
fn a_certificates_only_message_has_no_signer() {
    use der::{Decode as _, Encode as _};
    let pki = device_pki();
    let cert = x509_cert::Certificate::from_der(&pki.device.cert.to_der().unwrap()).unwrap();
    let der = cms::content_info::ContentInfo::try_from(cert)
        .unwrap()
        .to_der()
        .unwrap();
    let err = verify_detached(&der, b"body").unwrap_err();
    assert_eq!(err, CmsError::NoSigner);
}

#[test]
fn a_signer_certificate_left_out_is_reported() {
    let pki = device_pki();
    let der = sign(
        &pki.device,
        &[],
        b"body",
        Pkcs7Flags::DETACHED | Pkcs7Flags::NOCERTS,
    );
    assert_eq!(
        verify_detached(&der, b"body").unwrap_err(),
        CmsError::SignerCertificateMissing
    );
}

#[test]
fn an_expired_signer_is_expired() {
    let pki = device_pki();
    let day = 86_400;
    let old = test_pki::make(
        "old-device",
        Some(&pki.intermediate),
        Usage::ClientIdentity,
        -400 * day,
        -day,
    );
    let der = sign(
        &old,
        &[&pki.intermediate.cert],
        MACHINE_INFO,
        Pkcs7Flags::empty(),
    );
    let err = verify_attached(&der, &anchors(&pki.root.cert)).unwrap_err();
    assert!(
        matches!(&err, CmsError::Expired { subject, .. } if subject.contains("old-device")),
        "{err}"
    );
    assert!(err.is_trust_failure());

    let detached = sign(&old, &[], b"body", Pkcs7Flags::DETACHED);
    let err = verify_detached(&detached, b"body").unwrap_err();
    assert!(matches!(err, CmsError::Expired { .. }), "{err}");
    let err = DetachedSignature::parse(&detached).unwrap_err();
    assert!(matches!(err, CmsError::Expired { .. }), "{err}");
}

#[test]
fn a_signer_not_yet_valid_is_reported() {
    let pki = device_pki();
    let day = 86_400;
    let future = test_pki::make(
        "future-device",
        Some(&pki.intermediate),
        Usage::ClientIdentity,
        day,
        2 * day,
    );
    let detached = sign(&future, &[], b"body", Pkcs7Flags::DETACHED);
    let err = verify_detached(&detached, b"body").unwrap_err();
    assert!(matches!(err, CmsError::NotYetValid { .. }), "{err}");
}

#[test]
fn an_expired_intermediate_is_named() {
    let root = test_pki::root("Test Root");
    let day = 86_400;
    let stale = test_pki::make(
        "Stale Device CA",
        Some(&root),
        Usage::IssuingCa,
        -400 * day,
        -day,
    );
    let device = test_pki::leaf(&stale, "device");
    let der = sign(&device, &[&stale.cert], MACHINE_INFO, Pkcs7Flags::empty());
    let err = verify_attached(&der, &anchors(&root.cert)).unwrap_err();
    assert!(
        matches!(&err, CmsError::Expired { subject, .. } if subject.contains("Stale Device CA")),
        "{err}"
    );
}

#[test]
fn detached_signature_round_trip() {
    let pki = device_pki();
    let body = b"<plist><dict><key>MessageType</key><string>Authenticate</string></dict></plist>";
    let der = sign(&pki.device, &[], body, Pkcs7Flags::DETACHED);
    let header = STANDARD.encode(&der);
    let signer = verify_detached(header.as_bytes(), body).unwrap();
    assert_eq!(signer.to_der(), pki.device.cert.to_der().unwrap());
    assert_eq!(verify_detached(&der, body).unwrap(), signer);
    // The caller then checks trust separately.
    anchors(&pki.root.cert)
        .verify(
            &signer,
            &[Certificate::from_x509(pki.intermediate.cert.clone()).unwrap()],
        )
        .unwrap();
}

#[test]
fn a_detached_signature_over_another_body_is_bad() {
    let pki = device_pki();
    let der = sign(&pki.device, &[], b"body one", Pkcs7Flags::DETACHED);
    let err = verify_detached(&der, b"body two").unwrap_err();
    assert!(matches!(err, CmsError::BadSignature { .. }), "{err}");
}

#[test]
fn a_detached_signature_names_its_signer_before_the_body_is_known() {
    let pki = device_pki();
    let body = b"<plist><dict><key>Status</key><string>Idle</string></dict></plist>";
    let der = sign(&pki.device, &[], body, Pkcs7Flags::DETACHED);
    let header = STANDARD.encode(&der);
    let parsed = DetachedSignature::parse(header.as_bytes()).unwrap();
    assert_eq!(parsed.signer().to_der(), pki.device.cert.to_der().unwrap());
    parsed.verify(body).unwrap();
    let err = parsed.verify(b"another body").unwrap_err();
    assert!(matches!(err, CmsError::BadSignature { .. }), "{err}");
    // What a stranger sends instead of a signature is refused before any body matters.
    assert!(matches!(
        DetachedSignature::parse(b"AAAA").unwrap_err(),
        CmsError::NotCms(_)
    ));
    let attached = sign(&pki.device, &[], body, Pkcs7Flags::empty());
    assert_eq!(
        DetachedSignature::parse(&attached).unwrap_err(),
        CmsError::UnexpectedContent
    );
}

#[test]
fn attached_and_detached_are_not_interchangeable() {
    let pki = device_pki();
    let anchors = anchors(&pki.root.cert);
    let detached = sign(&pki.device, &[], b"body", Pkcs7Flags::DETACHED);
    assert_eq!(
        verify_attached(&detached, &anchors).unwrap_err(),
        CmsError::NoContent
    );
    let attached = sign(&pki.device, &[], b"body", Pkcs7Flags::empty());
    assert_eq!(
        verify_detached(&attached, b"body").unwrap_err(),
        CmsError::UnexpectedContent
    );
}

#[test]
fn trust_anchor_files_are_checked() {
    let pki = device_pki();
    let garbage = TrustAnchors::from_pem(b"hello").unwrap_err();
    assert!(
        garbage.to_string().contains("BEGIN CERTIFICATE"),
        "{garbage}"
    );
    let der = TrustAnchors::from_pem(&pki.root.cert.to_der().unwrap()).unwrap_err();
    assert!(der.to_string().contains("DER"), "{der}");
    let corrupt = TrustAnchors::from_pem(
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap_err();
    assert!(matches!(corrupt, CmsError::Anchors(_)), "{corrupt}");
    assert!(TrustAnchors::from_certificates(Vec::new()).is_err());

    let mut bundle = pki.root.cert.to_pem().unwrap();
    bundle.extend(b"\n# a comment between blocks\n");
    bundle.extend(pki.intermediate.cert.to_pem().unwrap());
    let anchors = TrustAnchors::from_pem(&bundle).unwrap();
    assert_eq!(anchors.certificates().len(), 2);
}

#[test]
fn certificate_facts() {
    let pki = device_pki();
    let cert = Certificate::from_der(&pki.device.cert.to_der().unwrap()).unwrap();
    assert_eq!(
        cert.subject_common_name(),
        Some("00008130-000A1B2C3D4E5F60")
    );
    assert_eq!(
        cert.subject(),
        "O=GuardMDM Test, CN=00008130-000A1B2C3D4E5F60"
    );
    assert_eq!(cert.issuer(), "O=GuardMDM Test, CN=Test iPhone Device CA");
    let serial = pki
        .device
        .cert
        .serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap();
    assert_eq!(cert.serial_hex(), serial.to_ascii_lowercase());
    let fingerprint = pki.device.cert.digest(MessageDigest::sha256()).unwrap();
    assert_eq!(
        cert.sha256_fingerprint(),
        crate::certificate::hex(&fingerprint)
    );
    assert_eq!(cert.sha256_fingerprint().len(), 64);
    assert!(cert.is_valid_at(OffsetDateTime::now_utc()));
    assert!(cert.not_after() > OffsetDateTime::now_utc() + time::Duration::days(300));
    let again = Certificate::from_pem(cert.to_pem().as_bytes()).unwrap();
    assert_eq!(again, cert);
    assert!(format!("{cert:?}").contains("00008130"));
    assert!(Certificate::from_der(b"nope").is_err());
}

use openssl::hash::MessageDigest;

//! Fuzz harnesses for the cryptographic parsers the network reaches: the attached CMS
//! signature of an ADE MachineInfo body, the detached `Mdm-Signature`, a SCEP `PKIOperation`
//! (`PKCSReq` as [`ScepClient`] builds it, through decoding and answering), and an ABM server
//! token (`.p7m`, made as Apple makes it) with its JSON. Valid seeds are built here with the
//! crate's own device-side functions; the mutations flip DER lengths and tags, repeat and drop
//! real elements, truncate and splice (`guardmdm-fuzz`).
//!
//! Checked per case: no panic, and bad input is refused as bad input: never an error the
//! server answers with a 500 ([`CmsError::Internal`], [`ScepError::Internal`], an unusable
//! entry key). A `PKCSReq` that decodes must also get an answer.
//!
//! The `*_smoke` tests run a few hundred cases in the normal test run; the ignored ones run
//! `GUARDMDM_FUZZ_CASES` (default 20,000) cases:
//! `cargo test --release -p guardmdm-crypto --test fuzz -- --ignored --nocapture`.

// Test code: failures are panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use guardmdm_crypto::cms_verify::decode_base64_or_der;
use guardmdm_crypto::scep::{EnvelopeCipher, Rejection, decode_message_param};
use guardmdm_crypto::{
    CmsError, DepTokenError, DepTokens, DeviceCa, DeviceKey, Identity, ScepCa, ScepClient,
    ScepError, TokenKeyPair, TrustAnchors, decrypt_server_token, encrypt_server_token,
    generate_token_key_pair, sign_attached, sign_detached, verify_attached,
    verify_attached_signature, verify_detached,
};
use guardmdm_fuzz::{Mutator, Verdict};

const FULL_CASES: u64 = 20_000;

const UDID: &str = "00008130-000A1B2C3D4E5F60";

const MACHINE_INFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PRODUCT</key><string>iPhone16,2</string>
	<key>SERIAL</key><string>F2LXK0ABCDEF</string>
	<key>UDID</key><string>00008130-000A1B2C3D4E5F60</string>
	<key>VERSION</key><string>22A3354</string>
	<key>OS_VERSION</key><string>18.0</string>
	<key>LANGUAGE</key><string>en-US</string>
</dict>
</plist>
"#;

const CHECKIN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>MessageType</key><string>Authenticate</string>
<key>Topic</key><string>com.apple.mgmt.External.5a1c3b2e-9d4f-4e6a-8b7c-0d1e2f3a4b5c</string>
<key>UDID</key><string>00008130-000A1B2C3D4E5F60</string>
</dict></plist>"#;

const TOKEN_JSON: &str = r#"{"consumer_key":"CK_0123456789abcdef","consumer_secret":"CS_fedcba9876543210","access_token":"AT_0123456789abcdef0123456789abcdef","access_secret":"AS_fedcba9876543210fedcba9876543210","access_token_expiry":"2027-12-07T12:00:00Z"}"#;

/// Device-side material, built once per test binary (RSA key generation is slow).
struct Pki {
    ca: DeviceCa,
    anchors: TrustAnchors,
    device: Identity,
    scep: ScepCa,
    token_keys: TokenKeyPair,
}

static PKI: LazyLock<Pki> = LazyLock::new(|| {
    let ca = DeviceCa::generate("Fuzz Devices").unwrap();
    let anchors = ca.trust_anchors();
    let device = ca.issue_identity(UDID).unwrap();
    Pki {
        ca,
        anchors,
        device,
        scep: ScepCa::generate("GuardMDM Fuzz SCEP CA").unwrap(),
        token_keys: generate_token_key_pair("GuardMDM fuzz").unwrap(),
    }
});

fn binary_plist(xml: &str) -> Vec<u8> {
    let value = plist::Value::from_reader_xml(xml.as_bytes()).unwrap();
    let mut out = Vec::new();
    value.to_writer_binary(&mut out).unwrap();
    out
}

/// A CMS error the server would answer with a 500 instead of a 4xx.
fn cms_refused<T>(result: Result<T, CmsError>) -> Verdict {
    match result {
        Ok(_) => Verdict::Accepted,
        Err(CmsError::Internal(reason)) => Verdict::Broken(format!(
            "bad input reported as an OpenSSL failure: {reason}"
        )),
        Err(e) => {
            let _ = (e.to_string(), e.is_trust_failure());
            Verdict::Refused
        }
    }
}

// --- attached: the ADE MachineInfo body and the aspen header's content -------------------

fn attached_seeds() -> Mutator {
    let pki = &*PKI;
    let xml = sign_attached(MACHINE_INFO.as_bytes(), &pki.device).unwrap();
    let binary = sign_attached(&binary_plist(MACHINE_INFO), &pki.device).unwrap();
    // Signed by another CA's device: well-formed, untrusted.
    let stranger = DeviceCa::generate("Fuzz Strangers")
        .unwrap()
        .issue_identity(UDID)
        .unwrap();
    let untrusted = sign_attached(MACHINE_INFO.as_bytes(), &stranger).unwrap();
    let b64 = STANDARD.encode(&xml).into_bytes();
    let url_safe = URL_SAFE_NO_PAD.encode(&xml).into_bytes();
    Mutator::new(vec![xml, binary, untrusted, b64, url_safe])
}

fn attached(bytes: &[u8]) -> Verdict {
    let pki = &*PKI;
    let _ = cms_refused(verify_attached_signature(bytes));
    match verify_attached(bytes, &pki.anchors) {
        Ok(verified) => {
            let _ = (verified.signer.subject(), verified.content.len());
            Verdict::Accepted
        }
        other => cms_refused(other),
    }
}

// --- detached: Mdm-Signature over a check-in body ---------------------------------------

fn detached_seeds() -> Mutator {
    let pki = &*PKI;
    let der = sign_detached(CHECKIN.as_bytes(), &pki.device).unwrap();
    let b64 = STANDARD.encode(&der).into_bytes();
    // A signature over another body, and an attached one where a detached one belongs.
    let other = sign_detached(b"<plist/>", &pki.device).unwrap();
    let attached = sign_attached(CHECKIN.as_bytes(), &pki.device).unwrap();
    Mutator::new(vec![der, b64, other, attached])
}

fn detached(bytes: &[u8]) -> Verdict {
    match decode_base64_or_der(bytes) {
        Ok(der) => cms_refused(verify_detached(&der, CHECKIN.as_bytes())),
        Err(e) => cms_refused::<()>(Err(e)),
    }
}

// --- SCEP PKIOperation --------------------------------------------------------------------

fn scep_seeds() -> Mutator {
    let pki = &*PKI;
    let key = DeviceKey::generate().unwrap();
    let ca_cert = pki.scep.certificate();
    let mut seeds = Vec::new();
    for cipher in [
        EnvelopeCipher::Aes128Cbc,
        EnvelopeCipher::Aes256Cbc,
        EnvelopeCipher::Des3Cbc,
    ] {
        let (der, _) = ScepClient::new(cipher)
            .pkcs_req(ca_cert, &key, UDID, "fuzz-challenge")
            .unwrap();
        seeds.push(der);
    }
    let (no_challenge, _) = ScepClient::default()
        .pkcs_req_with_subject(ca_cert, &key, &[("CN", UDID), ("O", "Fuzz")], None)
        .unwrap();
    seeds.push(no_challenge);
    // The GET form carries base64 in the `message` parameter.
    seeds.push(STANDARD.encode(&seeds[0]).into_bytes());
    Mutator::new(seeds)
}

fn scep_internal(e: &ScepError) -> Option<Verdict> {
    (!e.is_client_error())
        .then(|| Verdict::Broken(format!("bad input answered as a server failure: {e}")))
}

fn scep(bytes: &[u8]) -> Verdict {
    let pki = &*PKI;
    // POST carries DER; GET carries the base64 `message` parameter (text).
    let der = match std::str::from_utf8(bytes) {
        Ok(text) if bytes.first() != Some(&0x30) => match decode_message_param(text) {
            Ok(der) => der,
            Err(e) => return scep_internal(&e).unwrap_or(Verdict::Refused),
        },
        _ => bytes.to_vec(),
    };
    let request = match pki.scep.decode_request(&der) {
        Ok(request) => request,
        Err(e) => return scep_internal(&e).unwrap_or(Verdict::Refused),
    };
    let _ = (
        request.transaction_id(),
        request.message_type(),
        request.challenge(),
        request.signer().map(|c| c.subject().to_string()),
        request.problem(),
        request
            .csr()
            .map(|c| (c.subject().to_string(), c.public_key_bits())),
    );
    // Whatever decoded gets an answer: SUCCESS (the challenge passed) or FAILURE.
    for decision in [Ok(()), Err(Rejection::new("the challenge is wrong"))] {
        if let Err(e) = pki.scep.respond(&request, decision) {
            return Verdict::Broken(format!("a decoded request got no answer: {e}"));
        }
    }
    Verdict::Accepted
}

// --- ABM server token (.p7m) and its JSON -------------------------------------------------

fn token_seeds() -> Mutator {
    let pki = &*PKI;
    let file = encrypt_server_token(TOKEN_JSON, &pki.token_keys.certificate_pem).unwrap();
    let other_keys = generate_token_key_pair("GuardMDM other").unwrap();
    let foreign = encrypt_server_token(TOKEN_JSON, &other_keys.certificate_pem).unwrap();
    let text = String::from_utf8(file.clone()).unwrap();
    let crlf = text
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes();
    Mutator::new(vec![file, foreign, crlf]).with_tokens([
        "Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\n",
        "Content-Transfer-Encoding: base64\n",
        "MIME-Version: 1.0\n",
        "\n\n",
        "\r\n",
        "=",
        "-----BEGIN MESSAGE-----",
        "Content-Type: text/plain;charset=UTF-8\n",
    ])
}

fn token(bytes: &[u8]) -> Verdict {
    let pki = &*PKI;
    match decrypt_server_token(
        bytes,
        &pki.token_keys.certificate_pem,
        &pki.token_keys.private_key_pem,
    ) {
        Ok(tokens) => {
            let _ = format!("{tokens:?}");
            Verdict::Accepted
        }
        Err(DepTokenError::Key(reason)) => Verdict::Broken(format!(
            "a bad file reported as this entry's key being unusable: {reason}"
        )),
        Err(e) => {
            let _ = e.to_string();
            Verdict::Refused
        }
    }
}

fn token_json_seeds() -> Mutator {
    let pretty = serde_json::to_string_pretty(
        &serde_json::from_str::<serde_json::Value>(TOKEN_JSON).unwrap(),
    )
    .unwrap();
    Mutator::new(vec![TOKEN_JSON.as_bytes().to_vec(), pretty.into_bytes()]).with_tokens(JSON_TOKENS)
}

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "1e999",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"access_token_expiry\":",
    "\"consumer_key\":",
    "\"\":",
    "{\"a\":[[[[[[[[",
    "]]]]]]]]}",
];

fn token_json(bytes: &[u8]) -> Verdict {
    match DepTokens::from_json(&String::from_utf8_lossy(bytes)) {
        Ok(tokens) => match tokens.to_json() {
            Ok(json) => {
                let _ = json;
                Verdict::Accepted
            }
            Err(e) => Verdict::Broken(format!("accepted tokens do not serialize: {e}")),
        },
        Err(e) => {
            let _ = e.to_string();
            Verdict::Refused
        }
    }
}

guardmdm_fuzz::harness!(
    attached_smoke,
    attached_full,
    "crypto verify_attached (MachineInfo CMS)",
    attached_seeds(),
    attached,
    FULL_CASES
);
guardmdm_fuzz::harness!(
    detached_smoke,
    detached_full,
    "crypto verify_detached (Mdm-Signature)",
    detached_seeds(),
    detached,
    FULL_CASES
);
guardmdm_fuzz::harness!(
    scep_smoke,
    scep_full,
    "crypto ScepCa decode_request/respond (PKIOperation)",
    scep_seeds(),
    scep,
    FULL_CASES
);
guardmdm_fuzz::harness!(
    token_smoke,
    token_full,
    "crypto decrypt_server_token (ABM .p7m)",
    token_seeds(),
    token,
    FULL_CASES
);
guardmdm_fuzz::harness!(
    token_json_smoke,
    token_json_full,
    "crypto DepTokens::from_json",
    token_json_seeds(),
    token_json,
    FULL_CASES
);

/// The seeds themselves are accepted: the harnesses start from valid messages.
#[test]
fn every_harness_starts_from_valid_messages() {
    let pki = &*PKI;
    assert!(matches!(
        attached(&attached_seeds().seeds()[0]),
        Verdict::Accepted
    ));
    assert!(matches!(
        detached(&detached_seeds().seeds()[0]),
        Verdict::Accepted
    ));
    assert!(matches!(scep(&scep_seeds().seeds()[0]), Verdict::Accepted));
    assert!(matches!(
        token(&token_seeds().seeds()[0]),
        Verdict::Accepted
    ));
    assert!(matches!(
        token_json(TOKEN_JSON.as_bytes()),
        Verdict::Accepted
    ));
    let _ = pki.ca.root_certificate();
}

use super::*;
use crate::keypair::{TokenKeyPair, generate_token_key_pair};
use std::process::Command;

const GOOD_JSON: &str = r#"{"consumer_key":"CK_48dd68d198350f51258e885ce9a5c37ab7f98543c4a697323d75682a6c10a32501cb247e3db08105db868f73f2c972bdb6ae77112aea803b9219eb52689d42e6","consumer_secret":"CS_34c7b2b531a600d99a764e4a3e7aa7e7eb6b7f2e","access_token":"AT_927696831c59ba510cfe4ec1a69e5267c19881257d4bca2906a99d0785b785a6f6fdeb09774954fdd5e2d0ad952e3af52c6d8d2f21c924ba0caf4a031c158b89","access_secret":"AS_c31afd7a09691d83548489336e8ff1cb11b82b6b","access_token_expiry":"2027-07-01T22:18:53Z"}"#;

fn pair() -> TokenKeyPair {
    generate_token_key_pair("GuardMDM test").unwrap()
}

fn decrypt(file: &[u8], pair: &TokenKeyPair) -> Result<DepTokens, DepTokenError> {
    decrypt_server_token(file, &pair.certificate_pem, &pair.private_key_pem)
}

/// Encrypts with the `openssl` command-line tool, independently of our own encrypt code.
fn openssl_cli_smime(inner: &str, cert_pem: &str, cipher: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let input = dir.path().join("inner.txt");
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&input, inner).unwrap();
    let out = Command::new("openssl")
        .args(["smime", "-encrypt", "-binary", cipher, "-in"])
        .arg(&input)
        .arg(&cert)
        .output()
        .expect("the openssl command-line tool is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn apple_inner(json: &str) -> String {
    format!(
        "Content-Type: text/plain;charset=UTF-8\nContent-Transfer-Encoding: 7bit\n\n-----BEGIN MESSAGE-----\n{json}\n-----END MESSAGE-----\n"
    )
}

#[test]
fn decrypts_a_token_made_like_abm_does() {
    let pair = pair();
    let file = encrypt_server_token(GOOD_JSON, &pair.certificate_pem).unwrap();
    assert!(String::from_utf8_lossy(&file).starts_with("Content-Type: application/pkcs7-mime"));
    let tokens = decrypt(&file, &pair).unwrap();
    assert!(tokens.consumer_key.expose_secret().starts_with("CK_48dd"));
    assert!(tokens.consumer_secret.expose_secret().starts_with("CS_"));
    assert!(tokens.access_token.expose_secret().starts_with("AT_"));
    assert!(tokens.access_secret.expose_secret().starts_with("AS_"));
    assert_eq!(
        tokens.access_token_expiry,
        time::macros::datetime!(2027-07-01 22:18:53 UTC)
    );
}

#[test]
fn decrypts_tokens_made_by_the_openssl_cli_with_aes_and_3des_and_lf_endings() {
    let pair = pair();
    for cipher in ["-aes256", "-aes128", "-des3"] {
        let file = openssl_cli_smime(&apple_inner(GOOD_JSON), &pair.certificate_pem, cipher);
        let text = String::from_utf8(file.clone()).unwrap();
        assert!(text.contains("smime.p7m"), "{text}");
        let tokens = decrypt(&file, &pair).unwrap_or_else(|e| panic!("{cipher}: {e}"));
        assert!(tokens.access_token.expose_secret().starts_with("AT_"));
        // The same file with LF endings only.
        let lf = text.replace("\r\n", "\n");
        decrypt(lf.as_bytes(), &pair).unwrap();
    }
}

#[test]
fn accepts_a_message_without_inner_headers_or_markers() {
    let pair = pair();
    let file = openssl_cli_smime(GOOD_JSON, &pair.certificate_pem, "-aes256");
    decrypt(&file, &pair).unwrap();
}

#[test]
fn refuses_files_that_are_not_smime() {
    let pair = pair();
    let cases: [(&[u8], &str); 5] = [
        (b"", "empty"),
        (b"%PDF-1.7\n\xff\xfe binary", "binary"),
        (GOOD_JSON.as_bytes(), "MIME headers"),
        (b"Content-Type: text/plain\n\nhello\n", "text/plain"),
        (
            b"Content-Type: application/pkcs7-mime\nContent-Transfer-Encoding: quoted-printable\n\nabc\n",
            "quoted-printable",
        ),
    ];
    for (input, why) in cases {
        let err = decrypt(input, &pair).unwrap_err();
        assert!(matches!(err, DepTokenError::NotSmime(_)), "{why}: {err:?}");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
}

#[test]
fn refuses_corrupt_or_truncated_base64() {
    let pair = pair();
    let file =
        String::from_utf8(encrypt_server_token(GOOD_JSON, &pair.certificate_pem).unwrap()).unwrap();
    // Cut anywhere in the body: always "corrupt or truncated", never a panic or a success.
    let body_start = file.find("\r\n\r\n").unwrap() + 4;
    for cut in (body_start + 1..file.len() - 3).step_by(97) {
        let err = decrypt(&file.as_bytes()[..cut], &pair).unwrap_err();
        assert!(
            matches!(err, DepTokenError::Base64(_) | DepTokenError::NotCms(_)),
            "cut at {cut}: {err:?}"
        );
        assert!(err.to_string().contains("corrupt or truncated"), "{err}");
    }
    // A character that is not base64.
    let corrupt = format!("{}*{}", &file[..body_start + 10], &file[body_start + 11..]);
    assert!(matches!(
        decrypt(corrupt.as_bytes(), &pair),
        Err(DepTokenError::Base64(_))
    ));
    // Headers only.
    let (headers, _) = file.split_once("\r\n\r\n").unwrap();
    let err = decrypt(format!("{headers}\r\n\r\n").as_bytes(), &pair).unwrap_err();
    assert!(matches!(err, DepTokenError::Base64(_)), "{err:?}");
}

#[test]
fn refuses_base64_that_is_not_cms() {
    let pair = pair();
    let file =
        String::from_utf8(encrypt_server_token(GOOD_JSON, &pair.certificate_pem).unwrap()).unwrap();
    let (headers, body) = file.split_once("\r\n\r\n").unwrap();
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    // Truncated on a quantum boundary: valid base64, truncated DER.
    let truncated = format!("{headers}\r\n\r\n{}\r\n", &b64[..b64.len() / 2 / 4 * 4]);
    let err = decrypt(truncated.as_bytes(), &pair).unwrap_err();
    assert!(matches!(err, DepTokenError::NotCms(_)), "{err:?}");
    let garbage = format!(
        "{headers}\r\n\r\n{}\r\n",
        STANDARD.encode(b"not a cms structure")
    );
    let err = decrypt(garbage.as_bytes(), &pair).unwrap_err();
    assert!(matches!(err, DepTokenError::NotCms(_)), "{err:?}");
}

#[test]
fn refuses_a_token_encrypted_to_another_key() {
    let ours = pair();
    let theirs = pair();
    let file = encrypt_server_token(GOOD_JSON, &theirs.certificate_pem).unwrap();
    assert_eq!(
        decrypt(&file, &ours).unwrap_err(),
        DepTokenError::WrongRecipient
    );
    let file = openssl_cli_smime(&apple_inner(GOOD_JSON), &theirs.certificate_pem, "-aes256");
    assert_eq!(
        decrypt(&file, &ours).unwrap_err(),
        DepTokenError::WrongRecipient
    );
}

#[test]
fn refuses_bad_inner_json() {
    let pair = pair();
    let missing = GOOD_JSON.replace(
        r#""access_secret":"AS_c31afd7a09691d83548489336e8ff1cb11b82b6b","#,
        "",
    );
    let empty = GOOD_JSON.replace("CS_34c7b2b531a600d99a764e4a3e7aa7e7eb6b7f2e", "");
    let bad_expiry = GOOD_JSON.replace("2027-07-01T22:18:53Z", "next summer");
    let cases: [(String, DepTokenError); 5] = [
        (missing, DepTokenError::MissingField("access_secret")),
        (empty, DepTokenError::EmptyField("consumer_secret")),
        (
            bad_expiry,
            DepTokenError::BadExpiry {
                value: "next summer".to_string(),
            },
        ),
        (
            "[1, 2]".to_string(),
            DepTokenError::InnerFormat("the message is not a JSON object".to_string()),
        ),
        (
            String::new(),
            DepTokenError::InnerFormat(
                "the message between the MESSAGE markers is empty".to_string(),
            ),
        ),
    ];
    for (json, expected) in cases {
        let file = encrypt_server_token(&json, &pair.certificate_pem).unwrap();
        assert_eq!(decrypt(&file, &pair).unwrap_err(), expected, "{json}");
    }
    let file = encrypt_server_token("{\"consumer_key\": 5}", &pair.certificate_pem).unwrap();
    assert!(matches!(decrypt(&file, &pair), Err(DepTokenError::Json(_))));
}

#[test]
fn debug_redacts_every_secret_and_json_round_trips() {
    let tokens = DepTokens::from_json(GOOD_JSON).unwrap();
    let debug = format!("{tokens:?}");
    for secret in ["CK_", "CS_", "AT_", "AS_"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    let again = DepTokens::from_json(tokens.to_json().unwrap().expose_secret()).unwrap();
    assert_eq!(
        again.consumer_key.expose_secret(),
        tokens.consumer_key.expose_secret()
    );
    assert_eq!(again.access_token_expiry, tokens.access_token_expiry);
}

#[test]
fn reports_unusable_entry_keys() {
    let pair = pair();
    let file = encrypt_server_token(GOOD_JSON, &pair.certificate_pem).unwrap();
    let err = decrypt_server_token(&file, "not a pem", &pair.private_key_pem).unwrap_err();
    assert!(matches!(err, DepTokenError::Key(_)));
}

//! The ABM server token: the `<ServerName>_Token_<time>_smime.p7m` file an admin downloads
//! from Apple Business Manager.
//!
//! Three layers (see `docs/protocol.md` §1.3):
//! 1. a MIME header block (`Content-Type: application/pkcs7-mime; … smime-type=enveloped-data`,
//!    `Content-Transfer-Encoding: base64`), a blank line, then base64 of DER;
//! 2. CMS `EnvelopedData` with an RSA key-transport recipient for the entry's certificate;
//! 3. decrypted: another MIME header block, then the JSON between `-----BEGIN MESSAGE-----`
//!    and `-----END MESSAGE-----`, holding the four OAuth 1.0a values and their expiry.
//!
//! Line endings may be CRLF or LF. Every failure names the layer and what is wrong with it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::PKey;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::describe;

/// The decrypted contents of a server token: the OAuth 1.0a credentials for the DEP API.
///
/// `Debug` shows none of the four values.
#[derive(Clone)]
pub struct DepTokens {
    /// `consumer_key` (`CK_…`): stable for one MDM server in ABM.
    pub consumer_key: SecretString,
    /// `consumer_secret` (`CS_…`).
    pub consumer_secret: SecretString,
    /// `access_token` (`AT_…`).
    pub access_token: SecretString,
    /// `access_secret` (`AS_…`).
    pub access_secret: SecretString,
    /// `access_token_expiry`: one year after the token was downloaded.
    pub access_token_expiry: OffsetDateTime,
}

impl std::fmt::Debug for DepTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepTokens")
            .field("consumer_key", &"[REDACTED]")
            .field("consumer_secret", &"[REDACTED]")
            .field("access_token", &"[REDACTED]")
            .field("access_secret", &"[REDACTED]")
            .field("access_token_expiry", &self.access_token_expiry)
            .finish()
    }
}

/// The JSON form of the token, as Apple writes it and as GuardMDM seals it at rest.
#[derive(Serialize, Deserialize)]
struct TokenJson {
    consumer_key: Option<String>,
    consumer_secret: Option<String>,
    access_token: Option<String>,
    access_secret: Option<String>,
    access_token_expiry: Option<String>,
}

impl DepTokens {
    /// The token as Apple's JSON. The result holds every secret: seal it before storing.
    ///
    /// # Errors
    /// Never in practice; the expiry is always formattable.
    pub fn to_json(&self) -> Result<SecretString, DepTokenError> {
        let json = TokenJson {
            consumer_key: Some(self.consumer_key.expose_secret().to_string()),
            consumer_secret: Some(self.consumer_secret.expose_secret().to_string()),
            access_token: Some(self.access_token.expose_secret().to_string()),
            access_secret: Some(self.access_secret.expose_secret().to_string()),
            access_token_expiry: Some(
                self.access_token_expiry
                    .format(&Rfc3339)
                    .map_err(|e| DepTokenError::Json(e.to_string()))?,
            ),
        };
        serde_json::to_string(&json)
            .map(SecretString::from)
            .map_err(|e| DepTokenError::Json(e.to_string()))
    }

    /// Parses and validates Apple's token JSON: all four values present and non-empty, and an
    /// RFC 3339 expiry.
    ///
    /// # Errors
    /// [`DepTokenError::Json`], [`DepTokenError::MissingField`], [`DepTokenError::EmptyField`]
    /// or [`DepTokenError::BadExpiry`].
    pub fn from_json(json: &str) -> Result<Self, DepTokenError> {
        let raw: TokenJson =
            serde_json::from_str(json).map_err(|e| DepTokenError::Json(e.to_string()))?;
        fn field(value: Option<String>, name: &'static str) -> Result<String, DepTokenError> {
            match value {
                None => Err(DepTokenError::MissingField(name)),
                Some(v) if v.trim().is_empty() => Err(DepTokenError::EmptyField(name)),
                Some(v) => Ok(v),
            }
        }
        let expiry = field(raw.access_token_expiry, "access_token_expiry")?;
        let access_token_expiry = OffsetDateTime::parse(expiry.trim(), &Rfc3339)
            .map_err(|_| DepTokenError::BadExpiry { value: expiry })?;
        Ok(Self {
            consumer_key: field(raw.consumer_key, "consumer_key")?.into(),
            consumer_secret: field(raw.consumer_secret, "consumer_secret")?.into(),
            access_token: field(raw.access_token, "access_token")?.into(),
            access_secret: field(raw.access_secret, "access_secret")?.into(),
            access_token_expiry,
        })
    }
}

/// Why a server token file could not be read. Each message names the problem for the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepTokenError {
    /// The outer layer is not an S/MIME `application/pkcs7-mime` message.
    #[error(
        "not an ABM server token: {0} (expected the *_smime.p7m file downloaded from Apple Business Manager)"
    )]
    NotSmime(String),
    /// The base64 body is corrupt or cut short.
    #[error("the server token's base64 data is corrupt or truncated: {0}")]
    Base64(String),
    /// The decoded bytes are not a CMS structure.
    #[error("the server token is corrupt or truncated: its data is not a CMS EnvelopedData ({0})")]
    NotCms(String),
    /// The CMS message is encrypted to some other certificate.
    #[error(
        "the server token is encrypted to a different key: it was downloaded for another MDM server, or before this entry's public key was uploaded to ABM"
    )]
    WrongRecipient,
    /// Decryption failed for another reason.
    #[error("the server token could not be decrypted: {0}")]
    Decrypt(String),
    /// The decrypted content carries no JSON message.
    #[error("the decrypted server token has no token message: {0}")]
    InnerFormat(String),
    /// The message is not valid JSON of the expected shape.
    #[error("the server token's JSON is invalid: {0}")]
    Json(String),
    /// A required key is absent.
    #[error("the server token's JSON has no `{0}`")]
    MissingField(&'static str),
    /// A required key is empty.
    #[error("the server token's JSON has an empty `{0}`")]
    EmptyField(&'static str),
    /// `access_token_expiry` is not an RFC 3339 time.
    #[error("the server token's access_token_expiry {value:?} is not an RFC 3339 time")]
    BadExpiry {
        /// The value as found.
        value: String,
    },
    /// The entry's own certificate or key cannot be loaded.
    #[error("this entry's key material is unusable: {0}")]
    Key(String),
}

/// Decrypts a server token file with the entry's certificate and private key, and validates
/// the token inside. Expiry is *not* judged here: that is a domain rule with a clock.
///
/// # Errors
/// A [`DepTokenError`] naming the layer that is wrong.
pub fn decrypt_server_token(
    file: &[u8],
    certificate_pem: &str,
    private_key_pem: &SecretString,
) -> Result<DepTokens, DepTokenError> {
    let _queue = crate::error_queue::isolate();
    let der = unwrap_smime(file)?;
    let cert =
        X509::from_pem(certificate_pem.as_bytes()).map_err(|e| DepTokenError::Key(describe(&e)))?;
    let key = PKey::private_key_from_pem(private_key_pem.expose_secret().as_bytes())
        .map_err(|e| DepTokenError::Key(describe(&e)))?;
    let cms = CmsContentInfo::from_der(&der).map_err(|e| DepTokenError::NotCms(describe(&e)))?;
    if !has_recipient(&der, &cert) {
        return Err(DepTokenError::WrongRecipient);
    }
    let plain = cms
        .decrypt(&key, &cert)
        .map_err(|e| classify_decrypt_error(&e))?;
    let json = unwrap_message(&plain)?;
    DepTokens::from_json(&json)
}

/// Whether the CMS structure names `cert` as a recipient, by issuer and serial number (what
/// Apple and OpenSSL write) or by subject key identifier.
///
/// OpenSSL reports a missing recipient with an empty error stack, so GuardMDM looks for the
/// recipient itself to tell "encrypted to another key" from other failures.
fn has_recipient(der: &[u8], cert: &X509) -> bool {
    let contains =
        |needle: &[u8]| !needle.is_empty() && der.windows(needle.len()).any(|w| w == needle);
    let by_issuer_serial = match (cert.issuer_name().to_der(), cert.serial_number().to_bn()) {
        (Ok(issuer), Ok(serial)) => {
            let mut needle = issuer;
            needle.extend(der_integer(&serial.to_vec()));
            contains(&needle)
        }
        _ => false,
    };
    by_issuer_serial
        || cert
            .subject_key_id()
            .is_some_and(|ski| contains(ski.as_slice()))
}

/// DER encoding of a non-negative INTEGER from its big-endian magnitude.
fn der_integer(magnitude: &[u8]) -> Vec<u8> {
    let mut content: Vec<u8> = magnitude.iter().copied().skip_while(|b| *b == 0).collect();
    if content.first().is_none_or(|b| b & 0x80 != 0) {
        content.insert(0, 0);
    }
    let mut out = vec![0x02];
    let len = content.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let len_bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | u8::try_from(len_bytes.len()).unwrap_or(0));
        out.extend(len_bytes);
    }
    out.extend(content);
    out
}

fn classify_decrypt_error(err: &openssl::error::ErrorStack) -> DepTokenError {
    let text = describe(err);
    if text.to_ascii_lowercase().contains("not enveloped data") {
        DepTokenError::NotCms(text)
    } else {
        DepTokenError::Decrypt(format!(
            "it names this entry's certificate but does not decrypt with its private key ({text})"
        ))
    }
}

/// Strips the outer MIME block and decodes the base64 body to DER.
fn unwrap_smime(file: &[u8]) -> Result<Vec<u8>, DepTokenError> {
    if file.is_empty() {
        return Err(DepTokenError::NotSmime("the file is empty".to_string()));
    }
    let text = std::str::from_utf8(file).map_err(|_| {
        DepTokenError::NotSmime("the file is binary, not an S/MIME text message".to_string())
    })?;
    let (headers, body) = split_headers(text).ok_or_else(|| {
        DepTokenError::NotSmime("it does not start with MIME headers".to_string())
    })?;
    let content_type = header(&headers, "content-type").ok_or_else(|| {
        DepTokenError::NotSmime("its MIME headers have no Content-Type".to_string())
    })?;
    let ct = content_type.to_ascii_lowercase();
    if !ct.contains("pkcs7-mime") {
        return Err(DepTokenError::NotSmime(format!(
            "its Content-Type is {content_type:?}, not application/pkcs7-mime"
        )));
    }
    if let Some(enc) = header(&headers, "content-transfer-encoding")
        && !enc.eq_ignore_ascii_case("base64")
    {
        return Err(DepTokenError::NotSmime(format!(
            "its Content-Transfer-Encoding is {enc:?}, not base64"
        )));
    }
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(DepTokenError::Base64(
            "there is no data after the MIME headers".to_string(),
        ));
    }
    STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| DepTokenError::Base64(e.to_string()))
}

/// Splits `Header: value` lines (with folded continuations) from the body at the first blank
/// line. `None` when the text does not open with a header line or has no blank line.
fn split_headers(text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut rest = text;
    loop {
        let (line, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => return None,
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        rest = next;
        if line.is_empty() {
            return if headers.is_empty() {
                None
            } else {
                Some((headers, rest))
            };
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = headers.last_mut()?;
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return None;
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// From the decrypted content: drops the inner MIME headers and the MESSAGE markers.
fn unwrap_message(plain: &[u8]) -> Result<String, DepTokenError> {
    let text = std::str::from_utf8(plain)
        .map_err(|_| DepTokenError::InnerFormat("the content is not UTF-8 text".to_string()))?;
    let body = match split_headers(text) {
        Some((_, body)) => body,
        None => text,
    };
    let json: String = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----BEGIN MESSAGE") && !l.starts_with("-----END MESSAGE"))
        .collect::<Vec<_>>()
        .join("\n");
    let json = json.trim();
    if json.is_empty() {
        return Err(DepTokenError::InnerFormat(
            "the message between the MESSAGE markers is empty".to_string(),
        ));
    }
    if !json.starts_with('{') {
        return Err(DepTokenError::InnerFormat(
            "the message is not a JSON object".to_string(),
        ));
    }
    Ok(json.to_string())
}

/// Builds a server token file the way Apple Business Manager does: the JSON in Apple's inner
/// MIME block and MESSAGE markers, encrypted with CMS (AES-256-CBC content, RSA key transport)
/// to `certificate_pem`, base64 with Apple's outer S/MIME headers.
///
/// GuardMDM's ABM simulator and tests use this; the server itself only decrypts.
///
/// # Errors
/// [`DepTokenError::Key`] for an unreadable certificate, [`DepTokenError::Decrypt`] when
/// OpenSSL fails to encrypt.
pub fn encrypt_server_token(json: &str, certificate_pem: &str) -> Result<Vec<u8>, DepTokenError> {
    let _queue = crate::error_queue::isolate();
    let cert =
        X509::from_pem(certificate_pem.as_bytes()).map_err(|e| DepTokenError::Key(describe(&e)))?;
    let mut certs = Stack::new().map_err(|e| DepTokenError::Key(describe(&e)))?;
    certs
        .push(cert)
        .map_err(|e| DepTokenError::Key(describe(&e)))?;
    let inner = format!(
        "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n-----BEGIN MESSAGE-----\r\n{json}\r\n-----END MESSAGE-----\r\n"
    );
    let cms = CmsContentInfo::encrypt(
        &certs,
        inner.as_bytes(),
        Cipher::aes_256_cbc(),
        CMSOptions::BINARY,
    )
    .map_err(|e| DepTokenError::Decrypt(describe(&e)))?;
    let der = cms
        .to_der()
        .map_err(|e| DepTokenError::Decrypt(describe(&e)))?;
    let b64 = STANDARD.encode(der);
    let mut out = String::from(
        "Content-Type: application/pkcs7-mime; name=\"smime.p7m\"; smime-type=enveloped-data\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\
         Content-Description: S/MIME Encrypted Message\r\n\r\n",
    );
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests;

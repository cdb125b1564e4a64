//! OAuth 1.0a (RFC 5849) signing of `GET /session` with HMAC-SHA1 (`docs/protocol.md` §2.1).
//!
//! The signature covers the URL the request is really sent to, so a simulator base URL works.
//! Only `/session` is signed; every later call carries `X-ADM-Auth-Session` instead.

use secrecy::{ExposeSecret, SecretString};

/// The four OAuth values of a server token.
pub struct Credentials {
    /// `consumer_key`.
    pub consumer_key: SecretString,
    /// `consumer_secret`.
    pub consumer_secret: SecretString,
    /// `access_token`.
    pub access_token: SecretString,
    /// `access_secret`.
    pub access_secret: SecretString,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials([REDACTED])")
    }
}

/// The `Authorization` header value for `GET url`, with a fresh nonce and the current time.
pub fn authorization(url: &str, credentials: &Credentials) -> String {
    builder(credentials).get(url, &())
}

fn builder(
    credentials: &Credentials,
) -> oauth1_request::Builder<'_, oauth1_request::HmacSha1, &str> {
    let client = oauth1_request::Credentials::new(
        credentials.consumer_key.expose_secret(),
        credentials.consumer_secret.expose_secret(),
    );
    let token = oauth1_request::Credentials::new(
        credentials.access_token.expose_secret(),
        credentials.access_secret.expose_secret(),
    );
    let mut b = oauth1_request::Builder::new(client, oauth1_request::HmacSha1::new());
    b.token(token).version(true);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;

    /// RFC 5849 §1.2: the photos.example.net request with its published signature.
    #[test]
    fn matches_the_rfc_5849_example() {
        let creds = Credentials {
            consumer_key: "dpf43f3p2l4k3l03".into(),
            consumer_secret: "kd94hf93k423kf44".into(),
            access_token: "nnch734d00sl2jdk".into(),
            access_secret: "pfkkdhi9sl3r4s00".into(),
        };
        let mut b = builder(&creds);
        b.nonce("chapoH")
            .timestamp(NonZeroU64::new(137_131_202))
            .version(false);
        let request =
            oauth1_request::ParameterList::new([("file", "vacation.jpg"), ("size", "original")]);
        let header = b.get("http://photos.example.net/photos", &request);
        assert!(
            header.contains("oauth_signature=\"MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D\""),
            "{header}"
        );
        assert!(header.starts_with("OAuth "));
        assert!(header.contains("oauth_consumer_key=\"dpf43f3p2l4k3l03\""));
    }

    #[test]
    fn session_headers_are_fresh_and_carry_every_parameter() {
        let creds = Credentials {
            consumer_key: "CK_a".into(),
            consumer_secret: "CS_b".into(),
            access_token: "AT_c".into(),
            access_secret: "AS_d".into(),
        };
        let a = authorization("http://127.0.0.1:9/session", &creds);
        let b = authorization("http://127.0.0.1:9/session", &creds);
        assert_ne!(a, b, "a new nonce every time");
        for p in [
            "oauth_consumer_key=\"CK_a\"",
            "oauth_token=\"AT_c\"",
            "oauth_signature_method=\"HMAC-SHA1\"",
            "oauth_timestamp=",
            "oauth_nonce=",
            "oauth_version=\"1.0\"",
            "oauth_signature=",
        ] {
            assert!(a.contains(p), "{p} missing in {a}");
        }
        assert!(
            !a.contains("CS_b") && !a.contains("AS_d"),
            "secrets never leave"
        );
    }
}

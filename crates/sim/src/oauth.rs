//! OAuth 1.0a verification of `GET /session` (`docs/protocol.md` §2.1, RFC 5849), as pure
//! functions: parsing the `Authorization: OAuth …` header (§3.5.1), the signature base string
//! over the URL the request was really sent to (§3.4.1), HMAC-SHA1 (§3.4.2), and the problem
//! names Apple answers with (§2.5: `signature_invalid`, `token_rejected`; the others are the
//! OAuth Problem Reporting names).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Why a `/session` request is refused. [`Self::status`] and [`Self::body`] give the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthProblem {
    /// 400: a required parameter is missing (or there is no OAuth header at all).
    ParameterAbsent(String),
    /// 400: a parameter is given twice, or the header cannot be parsed.
    ParameterRejected(String),
    /// 400: `oauth_signature_method` is not `HMAC-SHA1`.
    SignatureMethodRejected,
    /// 400: `oauth_version` is present and not `1.0`.
    VersionRejected,
    /// 401: no MDM server has this consumer key.
    ConsumerKeyUnknown,
    /// 401: the access token is unknown, replaced by a newer download, or expired.
    TokenRejected,
    /// 401: the signature does not verify.
    SignatureInvalid,
    /// 401: the timestamp is outside the accepted window.
    TimestampRefused,
    /// 401: the nonce was already used with this timestamp and token.
    NonceUsed,
}

impl OAuthProblem {
    /// The HTTP status Apple answers with (§2.5: 400 for malformed requests, 401 for bad
    /// credentials).
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::ParameterAbsent(_)
            | Self::ParameterRejected(_)
            | Self::SignatureMethodRejected
            | Self::VersionRejected => 400,
            _ => 401,
        }
    }

    /// The response body. 401 bodies are the bare problem name (`token_rejected`,
    /// `signature_invalid`, as seen from Apple); 400 bodies use the OAuth Problem Reporting
    /// form with `oauth_problem_advice`, as seen from Apple.
    #[must_use]
    pub fn body(&self) -> String {
        let advice = |problem: &str, advice: &str| {
            format!(
                "oauth_problem={problem}&oauth_problem_advice={}",
                percent_encode(advice)
            )
        };
        match self {
            Self::ParameterAbsent(name) => format!(
                "{}&oauth_parameters_absent={name}",
                advice("parameter_absent", "a required OAuth parameter is missing")
            ),
            Self::ParameterRejected(name) => format!(
                "{}&oauth_parameters_rejected={}",
                advice(
                    "parameter_rejected",
                    "an OAuth parameter is duplicated or malformed"
                ),
                percent_encode(name)
            ),
            Self::SignatureMethodRejected => {
                advice("signature_method_rejected", "only HMAC-SHA1 is supported")
            }
            Self::VersionRejected => advice("version_rejected", "only OAuth 1.0 is supported"),
            Self::ConsumerKeyUnknown => "consumer_key_unknown".to_string(),
            Self::TokenRejected => "token_rejected".to_string(),
            Self::SignatureInvalid => "signature_invalid".to_string(),
            Self::TimestampRefused => "timestamp_refused".to_string(),
            Self::NonceUsed => "nonce_used".to_string(),
        }
    }
}

/// The protocol parameters of a request, after parsing and checking for presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthRequest {
    /// `oauth_consumer_key`.
    pub consumer_key: String,
    /// `oauth_token`.
    pub token: String,
    /// `oauth_timestamp`, Unix seconds.
    pub timestamp: i64,
    /// `oauth_nonce`.
    pub nonce: String,
    /// `oauth_signature`, base64 as sent.
    pub signature: String,
    /// Every `oauth_*` parameter except the signature and `realm`, plus query parameters:
    /// what the signature covers (RFC 5849 §3.4.1.3).
    pub signed_params: Vec<(String, String)>,
}

/// Parses an `Authorization` header value and the request's query string into an
/// [`OAuthRequest`], checking presence (`oauth_consumer_key`, `oauth_token`,
/// `oauth_signature_method`, `oauth_timestamp`, `oauth_nonce`, `oauth_signature`), the method
/// (`HMAC-SHA1`), the version (`1.0` when present) and duplicates.
///
/// # Errors
/// The 400 [`OAuthProblem`]s; `None` for the header is `ParameterAbsent`.
pub fn parse_request(
    header: Option<&str>,
    query: Option<&str>,
) -> Result<OAuthRequest, OAuthProblem> {
    let header =
        header.ok_or_else(|| OAuthProblem::ParameterAbsent("oauth_consumer_key".into()))?;
    let params = parse_header(header)?;
    let mut signed: Vec<(String, String)> = Vec::new();
    for (name, value) in &params {
        if params.iter().filter(|(n, _)| n == name).count() > 1 {
            return Err(OAuthProblem::ParameterRejected(name.clone()));
        }
        if name != "oauth_signature" && name != "realm" {
            signed.push((name.clone(), value.clone()));
        }
    }
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        match (decode(name), decode(value)) {
            (Some(n), Some(v)) => signed.push((n, v)),
            _ => return Err(OAuthProblem::ParameterRejected(pair.to_string())),
        }
    }
    let get = |name: &str| -> Result<String, OAuthProblem> {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| OAuthProblem::ParameterAbsent(name.to_string()))
    };
    let consumer_key = get("oauth_consumer_key")?;
    let token = get("oauth_token")?;
    let method = get("oauth_signature_method")?;
    let timestamp = get("oauth_timestamp")?;
    let nonce = get("oauth_nonce")?;
    let signature = get("oauth_signature")?;
    if method != "HMAC-SHA1" {
        return Err(OAuthProblem::SignatureMethodRejected);
    }
    if let Ok(version) = get("oauth_version")
        && version != "1.0"
    {
        return Err(OAuthProblem::VersionRejected);
    }
    let timestamp = timestamp
        .parse::<i64>()
        .map_err(|_| OAuthProblem::ParameterRejected("oauth_timestamp".into()))?;
    Ok(OAuthRequest {
        consumer_key,
        token,
        timestamp,
        nonce,
        signature,
        signed_params: signed,
    })
}

/// Splits `OAuth k="v", k2="v2"` into decoded pairs (RFC 5849 §3.5.1). The scheme name is
/// case-insensitive; whitespace around commas is tolerated.
fn parse_header(header: &str) -> Result<Vec<(String, String)>, OAuthProblem> {
    let header = header.trim();
    let rest = match header.get(..6) {
        Some(scheme) if scheme.eq_ignore_ascii_case("oauth ") => &header[6..],
        _ => return Err(OAuthProblem::ParameterAbsent("oauth_consumer_key".into())),
    };
    let mut out = Vec::new();
    for item in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| OAuthProblem::ParameterRejected(item.to_string()))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| OAuthProblem::ParameterRejected(name.trim().to_string()))?;
        let name = percent_decode(name.trim())
            .ok_or_else(|| OAuthProblem::ParameterRejected(name.to_string()))?;
        let value =
            percent_decode(value).ok_or_else(|| OAuthProblem::ParameterRejected(name.clone()))?;
        out.push((name, value));
    }
    Ok(out)
}

/// RFC 5849 §3.6: everything but `A-Z a-z 0-9 - . _ ~` is escaped, as `%XX` upper-case.
const RFC5849: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// RFC 5849 §3.6 percent-encoding.
#[must_use]
pub fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, RFC5849).to_string()
}

/// Decodes `%XX` escapes; `None` for a malformed escape (Apple refuses such a header rather
/// than guess) or bytes that are not UTF-8.
#[must_use]
pub fn percent_decode(text: &str) -> Option<String> {
    let well_formed = text.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// The base string URI (RFC 5849 §3.4.1.2): lower-case scheme and host, the port only when
/// it is not the scheme's default, and the path.
#[must_use]
pub fn base_uri(scheme: &str, host: &str, path: &str) -> String {
    let scheme = scheme.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let host = match (scheme.as_str(), host.rsplit_once(':')) {
        ("http", Some((h, "80"))) | ("https", Some((h, "443"))) => h.to_string(),
        _ => host,
    };
    format!("{scheme}://{host}{path}")
}

/// The signature base string (RFC 5849 §3.4.1): method, base string URI, and the sorted,
/// encoded parameters.
#[must_use]
pub fn base_string(method: &str, base_uri: &str, params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(n, v)| (percent_encode(n), percent_encode(v)))
        .collect();
    encoded.sort();
    let normalized = encoded
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode(base_uri),
        percent_encode(&normalized)
    )
}

/// The HMAC-SHA1 signature (RFC 5849 §3.4.2), base64: key = encoded consumer secret `&`
/// encoded token secret.
#[must_use]
pub fn sign(consumer_secret: &str, token_secret: &str, base_string: &str) -> String {
    let key = format!(
        "{}&{}",
        percent_encode(consumer_secret),
        percent_encode(token_secret)
    );
    STANDARD.encode(guardmdm_crypto::digest::hmac_sha1(
        key.as_bytes(),
        base_string.as_bytes(),
    ))
}

/// Whether `signature` (base64 as sent) is the right one, compared in constant time.
#[must_use]
pub fn signature_matches(expected: &str, signature: &str) -> bool {
    let (a, b) = (expected.as_bytes(), signature.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;

//! The DEP API client: session handling, retries, and one method per endpoint (§3).

use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::classify_client_error;
use crate::model::{
    AccountDetail, AssignProfileResponse, CursorRequest, DefineProfileResponse, DeviceDetails,
    DevicePage, DeviceStatusResponse, Profile,
};
use crate::{Credentials, DepError};

/// Apple's production DEP API.
pub const DEFAULT_BASE_URL: &str = "https://mdmenrollment.apple.com";
/// `X-Server-Protocol-Version` sent with every request (§2.3).
pub const PROTOCOL_VERSION: &str = "10";
/// Most serials Apple accepts in one assign, remove, details or disown call (§3.8).
pub const MAX_SERIALS_PER_CALL: usize = 1000;
/// Largest fetch/sync page (§3.2).
pub const MAX_PAGE_LIMIT: u32 = 1000;

const SESSION_HEADER: &str = "x-adm-auth-session";
const JSON: &str = "application/json;charset=UTF8";

/// Timeouts and retry policy.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `User-Agent`.
    pub user_agent: String,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Retries after a network failure, 5xx, 429 or 503 (not counting the first try).
    pub max_retries: u32,
    /// First backoff; doubled each retry, with jitter.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// Longest `Retry-After` the client sleeps through; a longer one is returned as
    /// [`DepError::Throttled`] for the caller to schedule.
    pub max_retry_after: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            user_agent: concat!("GuardMDM/", env!("CARGO_PKG_VERSION")).to_string(),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_retries: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// A client of one ABM MDM server's DEP API (one server token).
pub struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    session: Mutex<Option<SecretString>>,
    options: ClientOptions,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(500)
            .collect()
    }
}

impl Client {
    /// A client for the DEP API at `base_url` (Apple's, or a simulator's).
    ///
    /// # Errors
    /// [`DepError::InvalidRequest`] for a malformed URL; [`DepError::Transport`] if the HTTP
    /// client cannot be built.
    pub fn new(
        base_url: &str,
        credentials: Credentials,
        options: ClientOptions,
    ) -> Result<Self, DepError> {
        let parsed = reqwest::Url::parse(base_url)
            .map_err(|e| DepError::InvalidRequest(format!("ABM URL {base_url:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(options.user_agent.clone())
            .build()
            .map_err(|e| DepError::Transport {
                url: base_url.to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            http,
            base: parsed.as_str().trim_end_matches('/').to_string(),
            credentials,
            session: Mutex::new(None),
            options,
        })
    }

    /// `GET /account` (§3.1): the MDM server and organization behind the token.
    ///
    /// # Errors
    /// Any [`DepError`].
    pub async fn account(&self) -> Result<AccountDetail, DepError> {
        self.call(Method::GET, "/account", None::<&()>).await
    }

    /// `POST /server/devices` (§3.2): one page of every device assigned to this server.
    /// `cursor` is `None` on the very first request.
    ///
    /// # Errors
    /// [`DepError::CursorExhausted`] when the fetch is already complete (switch to sync),
    /// [`DepError::CursorInvalid`], and the others.
    pub async fn fetch_devices(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<DevicePage, DepError> {
        check_limit(limit)?;
        self.call(
            Method::POST,
            "/server/devices",
            Some(&CursorRequest { cursor, limit }),
        )
        .await
    }

    /// `POST /devices/sync` (§3.3): changes since `cursor`, with `op_type` and `op_date`.
    ///
    /// # Errors
    /// [`DepError::CursorExpired`] (older than 7 days), [`DepError::CursorInvalid`],
    /// [`DepError::CursorRequired`], and the others.
    pub async fn sync_devices(
        &self,
        cursor: &str,
        limit: Option<u32>,
    ) -> Result<DevicePage, DepError> {
        check_limit(limit)?;
        let body = CursorRequest {
            cursor: Some(cursor),
            limit,
        };
        self.call(Method::POST, "/devices/sync", Some(&body)).await
    }

    /// `POST /devices` (§3.5): details of up to 1000 serials.
    ///
    /// # Errors
    /// Any [`DepError`].
    pub async fn device_details(&self, serials: &[String]) -> Result<DeviceDetails, DepError> {
        check_serials(serials)?;
        self.call(
            Method::POST,
            "/devices",
            Some(&Serials { devices: serials }),
        )
        .await
    }

    /// `POST /profile` (§3.6): defines a profile; Apple answers a new `profile_uuid` each time.
    ///
    /// # Errors
    /// [`DepError::Api`] with Apple's validation code (`CONFIG_URL_INVALID`, `FLAGS_INVALID`, …).
    pub async fn define_profile(
        &self,
        profile: &Profile,
    ) -> Result<DefineProfileResponse, DepError> {
        if let Some(devices) = &profile.devices {
            check_serials(devices)?;
        }
        self.call(Method::POST, "/profile", Some(profile)).await
    }

    /// `GET /profile?profile_uuid=` (§3.7).
    ///
    /// # Errors
    /// [`DepError::Api`] with `NOT_FOUND` for an unknown UUID, and the others.
    pub async fn get_profile(&self, profile_uuid: &str) -> Result<Profile, DepError> {
        let path = format!("/profile?profile_uuid={}", percent_encode(profile_uuid));
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Assigns a profile to up to 1000 serials (§3.8, `POST /profile/devices` as Apple's
    /// documentation gives it). Per-serial results may be `FAILED` or `THROTTLED`.
    ///
    /// # Errors
    /// [`DepError::InvalidRequest`] for 0 or more than 1000 serials; [`DepError::Api`] 404 for
    /// an unknown profile; the others.
    pub async fn assign_profile(
        &self,
        profile_uuid: &str,
        serials: &[String],
    ) -> Result<AssignProfileResponse, DepError> {
        check_serials(serials)?;
        let body = AssignRequest {
            profile_uuid,
            devices: serials,
        };
        self.call(Method::POST, "/profile/devices", Some(&body))
            .await
    }

    /// `DELETE /profile/devices` (§3.9): removes the profile from up to 1000 serials.
    ///
    /// # Errors
    /// Any [`DepError`].
    pub async fn remove_profile(
        &self,
        serials: &[String],
    ) -> Result<DeviceStatusResponse, DepError> {
        check_serials(serials)?;
        self.call(
            Method::DELETE,
            "/profile/devices",
            Some(&Serials { devices: serials }),
        )
        .await
    }

    /// `POST /devices/disown` (§3.10): permanently releases devices from the organization.
    /// Callers must have an admin's explicit confirmation.
    ///
    /// # Errors
    /// Any [`DepError`].
    pub async fn disown_devices(
        &self,
        serials: &[String],
    ) -> Result<DeviceStatusResponse, DepError> {
        check_serials(serials)?;
        self.call(
            Method::POST,
            "/devices/disown",
            Some(&Serials { devices: serials }),
        )
        .await
    }

    /// Sends an API call with the session, re-authenticating once on 401 / 403 `FORBIDDEN`.
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, DepError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| DepError::InvalidRequest(e.to_string()))?;
        let url = format!("{}{path}", self.base);
        let mut reauthenticated = false;
        loop {
            let session = match self.current_session() {
                Some(s) => s,
                None => self.authenticate().await?,
            };
            let answer = self
                .send_with_retries(&url, || {
                    let mut req = self
                        .http
                        .request(method.clone(), &url)
                        .header(SESSION_HEADER, session.expose_secret())
                        .header("x-server-protocol-version", PROTOCOL_VERSION)
                        .header(reqwest::header::ACCEPT, JSON);
                    if let Some(body) = &body {
                        req = req
                            .header(reqwest::header::CONTENT_TYPE, JSON)
                            .body(body.clone());
                    }
                    req
                })
                .await?;
            self.adopt_rotated_session(&answer.headers);
            let status = answer.status;
            if status.is_success() {
                return serde_json::from_slice(&answer.body)
                    .map_err(|e| DepError::Decode(format!("{path}: {e}")));
            }
            let text = answer.text();
            let session_refused = status == StatusCode::UNAUTHORIZED
                || (status == StatusCode::FORBIDDEN && text.contains("FORBIDDEN"));
            if session_refused {
                self.clear_session();
                if !reauthenticated {
                    tracing::debug!(%path, status = status.as_u16(), "DEP session refused; re-authenticating");
                    reauthenticated = true;
                    continue;
                }
                return Err(DepError::TokenRejected {
                    status: status.as_u16(),
                    body: text,
                });
            }
            return Err(classify_client_error(status.as_u16(), &text));
        }
    }

    /// `GET /session` (§2.1): a new session token, stored for later calls.
    async fn authenticate(&self) -> Result<SecretString, DepError> {
        let url = format!("{}/session", self.base);
        let answer = self
            .send_with_retries(&url, || {
                self.http
                    .get(&url)
                    .header(
                        reqwest::header::AUTHORIZATION,
                        crate::oauth::authorization(&url, &self.credentials),
                    )
                    .header("x-server-protocol-version", PROTOCOL_VERSION)
                    .header(reqwest::header::CONTENT_TYPE, JSON)
                    .header(reqwest::header::ACCEPT, JSON)
            })
            .await?;
        let status = answer.status;
        if status.is_success() {
            #[derive(serde::Deserialize)]
            struct SessionAnswer {
                auth_session_token: Option<String>,
            }
            let parsed: SessionAnswer = serde_json::from_slice(&answer.body)
                .map_err(|e| DepError::Decode(format!("/session: {e}")))?;
            let token = parsed
                .auth_session_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    DepError::Decode("/session answered no auth_session_token".into())
                })?;
            let token = SecretString::from(token);
            self.set_session(token.clone());
            return Ok(token);
        }
        let text = answer.text();
        match status {
            StatusCode::UNAUTHORIZED => Err(DepError::TokenRejected {
                status: 401,
                body: text,
            }),
            StatusCode::FORBIDDEN if text.contains("FORBIDDEN") => Err(DepError::TokenRejected {
                status: 403,
                body: text,
            }),
            _ => Err(classify_client_error(status.as_u16(), &text)),
        }
    }

    /// Sends `build()` until it is answered with something other than a network failure,
    /// 429, or 5xx, or the retries run out.
    async fn send_with_retries(
        &self,
        url: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer, DepError> {
        let mut attempt = 0;
        loop {
            let last = attempt >= self.options.max_retries;
            let outcome = match build().send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => Ok(Answer {
                            status,
                            headers,
                            body: body.to_vec(),
                        }),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let answer = match outcome {
                Ok(answer) => answer,
                Err(e) => {
                    let message = if e.is_timeout() {
                        format!("timed out: {e}")
                    } else {
                        e.to_string()
                    };
                    if last {
                        return Err(DepError::Transport {
                            url: url.to_string(),
                            message,
                        });
                    }
                    tracing::warn!(%url, attempt, error = %message, "DEP request failed; retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
            };
            let status = answer.status;
            let throttled = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            if !throttled && !status.is_server_error() {
                return Ok(answer);
            }
            let retry_after = throttled.then(|| retry_after(&answer.headers)).flatten();
            if last || retry_after.is_some_and(|d| d > self.options.max_retry_after) {
                return Err(if throttled {
                    DepError::Throttled {
                        status: status.as_u16(),
                        retry_after,
                    }
                } else {
                    DepError::Server {
                        status: status.as_u16(),
                    }
                });
            }
            let wait = retry_after.unwrap_or_else(|| self.backoff(attempt));
            tracing::warn!(%url, status = status.as_u16(), attempt, wait_ms = wait.as_millis() as u64, "DEP API busy or failing; retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Exponential backoff with jitter: a random duration in [d/2, d], d = base·2^attempt.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .options
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt));
        let full = exp.min(self.options.backoff_max);
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let fraction = (random % 1000) as f64 / 1000.0;
        full.div_f64(2.0).mul_f64(1.0 + fraction)
    }

    fn current_session(&self) -> Option<SecretString> {
        self.session.lock().ok().and_then(|s| s.clone())
    }

    fn set_session(&self, token: SecretString) {
        if let Ok(mut s) = self.session.lock() {
            *s = Some(token);
        }
    }

    fn clear_session(&self) {
        if let Ok(mut s) = self.session.lock() {
            *s = None;
        }
    }

    fn adopt_rotated_session(&self, headers: &HeaderMap) {
        let Some(new) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
            return;
        };
        if new.is_empty() {
            return;
        }
        if let Ok(mut s) = self.session.lock()
            && s.as_ref().is_none_or(|old| old.expose_secret() != new)
        {
            tracing::debug!("DEP session token rotated");
            *s = Some(SecretString::from(new.to_string()));
        }
    }
}

#[derive(Serialize)]
struct Serials<'a> {
    devices: &'a [String],
}

#[derive(Serialize)]
struct AssignRequest<'a> {
    profile_uuid: &'a str,
    devices: &'a [String],
}

fn check_serials(serials: &[String]) -> Result<(), DepError> {
    if serials.is_empty() || serials.len() > MAX_SERIALS_PER_CALL {
        return Err(DepError::InvalidRequest(format!(
            "{} serials in one call; Apple takes 1 to {MAX_SERIALS_PER_CALL}",
            serials.len()
        )));
    }
    Ok(())
}

fn check_limit(limit: Option<u32>) -> Result<(), DepError> {
    match limit {
        Some(l) if l == 0 || l > MAX_PAGE_LIMIT => Err(DepError::InvalidRequest(format!(
            "page limit {l}; Apple takes 1 to {MAX_PAGE_LIMIT}"
        ))),
        _ => Ok(()),
    }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v: &HeaderValue| v.to_str().ok())?;
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value.trim(), format)
        .ok()?
        .assume_utc();
    let wait = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// What a query value escapes: everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date means now"
        );
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let client = Client::new(
            "http://127.0.0.1:9",
            Credentials {
                consumer_key: "a".into(),
                consumer_secret: "b".into(),
                access_token: "c".into(),
                access_secret: "d".into(),
            },
            ClientOptions::default(),
        )
        .unwrap();
        for attempt in 0..10 {
            let d = client.backoff(attempt);
            let full = Duration::from_millis(500)
                .saturating_mul(1 << attempt)
                .min(Duration::from_secs(30));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn refuses_bad_batches_and_limits_before_sending() {
        assert!(check_serials(&[]).is_err());
        assert!(check_serials(&vec!["S".to_string(); 1001]).is_err());
        check_serials(&vec!["S".to_string(); 1000]).unwrap();
        assert!(check_limit(Some(0)).is_err());
        assert!(check_limit(Some(1001)).is_err());
        check_limit(Some(1000)).unwrap();
        check_limit(None).unwrap();
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }
}

//! The APNs HTTP/2 client: one connection, many concurrent streams, one request per target.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use crate::outcome::{Verdict, classify};
use crate::{ApnsError, PushOutcome, PushProvider, PushTarget, identity};

/// Apple's production APNs endpoint. MDM pushes always go here: the development environment
/// (`api.development.push.apple.com`) is not used for MDM.
pub const PRODUCTION_ENDPOINT: &str = "https://api.push.apple.com";

/// Default number of pushes in flight at once, all multiplexed on one HTTP/2 connection.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 32;

/// Attempts per target for retriable failures (network errors, timeouts, 5xx, 429).
const MAX_ATTEMPTS: u32 = 3;

/// Pause before the second attempt; it doubles before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How to reach APNs.
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// Base URL of the APNs server; requests go to `<endpoint>/3/device/<token hex>`.
    /// Default [`PRODUCTION_ENDPOINT`]. An `http://` URL speaks cleartext HTTP/2 (prior
    /// knowledge, no TLS, no client certificate): for tests and local simulators only.
    pub endpoint: Url,
    /// The MDM push certificate and its unencrypted private key, PEM (leaf certificate first,
    /// chain optional, key anywhere). Required for `https`; checked but unused for `http`.
    pub identity_pem: Option<SecretString>,
    /// Limit for connecting and, separately, for each request (one attempt). Default 10 s.
    pub timeout: Duration,
    /// How long APNs should keep trying to deliver a push to an offline device (sent as
    /// `apns-expiration` = now + this, in Unix seconds). `Some(Duration::ZERO)` asks for one
    /// delivery attempt without storing; `None` (default) sends no header and leaves it to
    /// APNs.
    pub expiration: Option<Duration>,
    /// Pushes in flight at once (HTTP/2 streams). Default [`DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
    /// PEM CA certificates to trust for the APNs server **instead of** the system roots, for a
    /// local TLS simulator. `None` (default) trusts the platform's roots, as Apple's server
    /// needs.
    pub server_roots_pem: Option<String>,
}

impl ApnsConfig {
    /// Production settings with the given push certificate and key (PEM).
    pub fn new(identity_pem: SecretString) -> Self {
        Self {
            identity_pem: Some(identity_pem),
            ..Self::default()
        }
    }
}

impl Default for ApnsConfig {
    /// Production endpoint, no identity yet, 10 s timeout, no expiration header, 32 in flight.
    fn default() -> Self {
        #[allow(clippy::expect_used)] // a constant that parses; covered by a unit test
        let endpoint = Url::parse(PRODUCTION_ENDPOINT).expect("PRODUCTION_ENDPOINT is a URL");
        Self {
            endpoint,
            identity_pem: None,
            timeout: Duration::from_secs(10),
            expiration: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            server_roots_pem: None,
        }
    }
}

/// Sends MDM pushes to APNs over HTTP/2 (the production [`PushProvider`]).
///
/// Cheap to share: keep one per push certificate for the life of the process, so the HTTP/2
/// connection to APNs is reused (Apple asks providers not to reconnect for every push).
#[derive(Debug, Clone)]
pub struct ApnsClient {
    http: reqwest::Client,
    /// `<endpoint>/3/device/`, to which the token hex is appended.
    device_url: String,
    expiration: Option<Duration>,
    max_in_flight: usize,
}

/// The push body: exactly `{"mdm":"<PushMagic>"}`.
#[derive(Serialize)]
struct Payload<'a> {
    mdm: &'a str,
}

impl ApnsClient {
    /// Builds the client: checks the settings and the push certificate, and configures HTTP/2
    /// only, with TLS client authentication for `https`. Does not connect yet.
    ///
    /// # Errors
    /// [`ApnsError`] for an unusable endpoint, identity PEM, server roots or setting.
    pub fn new(config: ApnsConfig) -> Result<Self, ApnsError> {
        let ApnsConfig {
            endpoint,
            identity_pem,
            timeout,
            expiration,
            max_in_flight,
            server_roots_pem,
        } = config;
        if max_in_flight == 0 {
            return Err(ApnsError::InvalidSetting(
                "max_in_flight must be at least 1".to_owned(),
            ));
        }
        let identity = identity_pem
            .map(|pem| identity::load(pem.expose_secret()))
            .transpose()?;
        let mut builder = reqwest::Client::builder()
            .http2_prior_knowledge()
            .connect_timeout(timeout)
            .timeout(timeout);
        match endpoint.scheme() {
            "https" => {
                builder = builder.identity(identity.ok_or(ApnsError::MissingIdentity)?);
                if let Some(pem) = server_roots_pem {
                    builder = builder.tls_certs_only(server_roots(&pem)?);
                }
            }
            "http" => {}
            _ => return Err(ApnsError::UnsupportedEndpoint(endpoint.to_string())),
        }
        let http = builder
            .build()
            .map_err(|e| ApnsError::HttpClient(error_chain(e)))?;
        let device_url = format!("{}/3/device/", endpoint.as_str().trim_end_matches('/'));
        Ok(Self {
            http,
            device_url,
            expiration,
            max_in_flight,
        })
    }

    /// Connects to the endpoint as a push would (over `https`, the TLS handshake with the push
    /// certificate) and sends one request that is not a push (`GET` on the device path
    /// without a token). Returns the HTTP status APNs answered, which only shows that the
    /// connection and the handshake succeeded.
    ///
    /// # Errors
    /// Why no answer came: DNS, connection, TLS handshake (a revoked or foreign
    /// certificate) or timeout, as one line.
    pub async fn probe(&self) -> Result<u16, String> {
        self.http
            .get(&self.device_url)
            .send()
            .await
            .map(|response| response.status().as_u16())
            .map_err(error_chain)
    }

    /// One target, with up to [`MAX_ATTEMPTS`] attempts for retriable failures.
    async fn push_one(&self, target: &PushTarget) -> PushOutcome {
        let url = format!("{}{}", self.device_url, target.token_hex());
        let body = match serde_json::to_vec(&Payload {
            mdm: &target.push_magic,
        }) {
            Ok(body) => body,
            Err(e) => {
                return PushOutcome::Failed {
                    message: format!("cannot encode the push payload: {e}"),
                };
            }
        };
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let message = match self.send(&url, target, body.clone()).await {
                Verdict::Final(outcome) => return outcome,
                Verdict::Retry(message) => message,
            };
            if attempt >= MAX_ATTEMPTS {
                return PushOutcome::Failed {
                    message: format!("{message} (gave up after {attempt} attempts)"),
                };
            }
            // Per attempt at debug: an outage would otherwise log every target; the batch
            // summary warns once.
            tracing::debug!(attempt, %message, "APNs push failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }

    /// One attempt.
    async fn send(&self, url: &str, target: &PushTarget, body: Vec<u8>) -> Verdict {
        let mut request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("apns-push-type", "mdm")
            .body(body);
        if !target.topic.is_empty() {
            request = request.header("apns-topic", target.topic.as_str());
        }
        if let Some(expiration) = self.expiration {
            request = request.header("apns-expiration", expiration_header(expiration));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return transport_failure(e),
        };
        let status = response.status().as_u16();
        let apns_id = response
            .headers()
            .get("apns-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match response.bytes().await {
            Ok(body) => classify(status, apns_id, &body),
            Err(e) => transport_failure(e),
        }
    }
}

#[async_trait]
impl PushProvider for ApnsClient {
    async fn push(&self, targets: &[PushTarget]) -> Vec<PushOutcome> {
        // Indices rather than `&PushTarget` items: a closure over references trips the
        // compiler's higher-ranked `Send` check inside `async_trait`'s boxed future.
        let outcomes: Vec<PushOutcome> = stream::iter(0..targets.len())
            .map(|i| self.push_one(&targets[i]))
            .buffered(self.max_in_flight)
            .collect()
            .await;
        log_summary(&outcomes);
        outcomes
    }
}

/// The trust anchors for a simulator's server certificate.
fn server_roots(pem: &str) -> Result<Vec<reqwest::Certificate>, ApnsError> {
    let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| ApnsError::InvalidServerRoots(error_chain(e)))?;
    if roots.is_empty() {
        return Err(ApnsError::InvalidServerRoots(
            "no CERTIFICATE section".to_owned(),
        ));
    }
    Ok(roots)
}

/// `apns-expiration`: Unix seconds when APNs may drop the push, or `0` for "try once".
fn expiration_header(expiration: Duration) -> String {
    if expiration.is_zero() {
        return "0".to_owned();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    now.saturating_add(expiration.as_secs().max(1)).to_string()
}

/// A request that got no answer. A request that could not even be built (a topic that is not a
/// valid header value) is final; everything else (connect, TLS, timeout, reset) is retried.
fn transport_failure(error: reqwest::Error) -> Verdict {
    let is_builder = error.is_builder();
    let message = error_chain(error);
    if is_builder {
        Verdict::Final(PushOutcome::Failed {
            message: format!("invalid push request: {message}"),
        })
    } else {
        Verdict::Retry(format!("cannot reach APNs: {message}"))
    }
}

/// The error and its sources, without the request URL (it contains the device token).
fn error_chain(error: reqwest::Error) -> String {
    format!("{:#}", anyhow::Error::new(error.without_url()))
}

/// One line per batch: how many of each outcome; a warning when some could not be pushed.
fn log_summary(outcomes: &[PushOutcome]) {
    let (mut delivered, mut unregistered, mut rejected, mut failed) = (0, 0, 0, 0);
    for outcome in outcomes {
        match outcome {
            PushOutcome::Delivered { .. } => delivered += 1,
            PushOutcome::Unregistered { .. } => unregistered += 1,
            PushOutcome::Rejected { .. } => rejected += 1,
            PushOutcome::Failed { .. } => failed += 1,
        }
    }
    let targets = outcomes.len();
    if failed > 0 {
        let example = outcomes.iter().find_map(|o| match o {
            PushOutcome::Failed { message } => Some(message.as_str()),
            _ => None,
        });
        tracing::warn!(
            targets,
            delivered,
            unregistered,
            rejected,
            failed,
            example,
            "APNs pushes failed after retries"
        );
    } else {
        tracing::debug!(
            targets,
            delivered,
            unregistered,
            rejected,
            "APNs push batch done"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_points_at_production() {
        let config = ApnsConfig::default();
        assert_eq!(config.endpoint.as_str(), "https://api.push.apple.com/");
        assert_eq!(config.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        assert!(config.identity_pem.is_none());
    }

    #[test]
    fn https_needs_an_identity() {
        let err = ApnsClient::new(ApnsConfig::default()).unwrap_err();
        assert_eq!(err, ApnsError::MissingIdentity);
    }

    #[test]
    fn only_http_and_https_endpoints() {
        let config = ApnsConfig {
            endpoint: Url::parse("ftp://example.invalid").unwrap(),
            ..ApnsConfig::default()
        };
        assert!(matches!(
            ApnsClient::new(config).unwrap_err(),
            ApnsError::UnsupportedEndpoint(_)
        ));
    }

    #[test]
    fn zero_in_flight_is_refused() {
        let config = ApnsConfig {
            endpoint: Url::parse("http://127.0.0.1:1").unwrap(),
            max_in_flight: 0,
            ..ApnsConfig::default()
        };
        assert!(matches!(
            ApnsClient::new(config).unwrap_err(),
            ApnsError::InvalidSetting(_)
        ));
    }

    #[test]
    fn device_url_joins_without_double_slash() {
        for endpoint in ["http://127.0.0.1:8080", "http://127.0.0.1:8080/"] {
            let config = ApnsConfig {
                endpoint: Url::parse(endpoint).unwrap(),
                ..ApnsConfig::default()
            };
            let client = ApnsClient::new(config).unwrap();
            assert_eq!(client.device_url, "http://127.0.0.1:8080/3/device/");
        }
    }

    #[test]
    fn payload_is_exactly_the_mdm_key() {
        let body = serde_json::to_string(&Payload {
            mdm: "9D3E-\"quoted\"",
        })
        .unwrap();
        assert_eq!(body, r#"{"mdm":"9D3E-\"quoted\""}"#);
    }

    #[test]
    fn expiration_is_absolute_unix_seconds_or_zero() {
        assert_eq!(expiration_header(Duration::ZERO), "0");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header: u64 = expiration_header(Duration::from_secs(3600))
            .parse()
            .unwrap();
        assert!((now + 3600..=now + 3602).contains(&header), "{header}");
    }
}

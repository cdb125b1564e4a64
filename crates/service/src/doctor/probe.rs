//! What the doctor observes over the network and on disk. Each probe returns what it saw
//! (or why it saw nothing) as one line; [`super::rules`] judges it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;

/// What `GET <public URL>/healthz` showed, trusting any certificate (trust is checked on its
/// own, so an untrusted chain is not mistaken for an unreachable server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicSeen {
    /// The HTTP status, or why there was none.
    pub answer: Result<u16, String>,
    /// The certificate the server presented (DER), if the handshake got that far.
    pub leaf: Option<Vec<u8>>,
}

fn healthz(public_url: &str) -> String {
    format!("{}/healthz", public_url.trim_end_matches('/'))
}

fn client(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("guardmdm-doctor/", env!("CARGO_PKG_VERSION")))
}

/// The error and its causes on one line, without the URL (the caller names it).
fn chain(error: reqwest::Error) -> String {
    format!("{:#}", anyhow::Error::new(error.without_url()))
}

/// `GET <public_url>/healthz` within `timeout`, keeping the certificate presented.
pub async fn public_url(public_url: &str, timeout: Duration) -> PublicSeen {
    let http = match client(timeout)
        .tls_danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            return PublicSeen {
                answer: Err(chain(e)),
                leaf: None,
            };
        }
    };
    match http.get(healthz(public_url)).send().await {
        Ok(response) => PublicSeen {
            answer: Ok(response.status().as_u16()),
            leaf: response
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(reqwest::tls::TlsInfo::peer_certificate)
                .map(<[u8]>::to_vec),
        },
        Err(e) => PublicSeen {
            answer: Err(chain(e)),
            leaf: None,
        },
    }
}

/// Whether the public URL's chain verifies (and names its host): against this system's
/// trust store when `anchors` is `None` (reqwest's `rustls` feature verifies with
/// `rustls-platform-verifier`, which reads the operating system's roots), else against only those certificates (base64 DER,
/// as ADE profiles carry them). Any HTTP answer means the handshake verified.
///
/// # Errors
/// Why it does not verify (or why nothing answered), as one line.
pub async fn verify_chain(
    public_url: &str,
    anchors: Option<&[String]>,
    timeout: Duration,
) -> Result<(), String> {
    let mut builder = client(timeout);
    if let Some(anchors) = anchors {
        let mut roots = Vec::with_capacity(anchors.len());
        for anchor in anchors {
            let compact: String = anchor.chars().filter(|c| !c.is_whitespace()).collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| format!("an anchor certificate is not base64: {e}"))?;
            roots.push(reqwest::Certificate::from_der(&der).map_err(chain)?);
        }
        builder = builder.tls_certs_only(roots);
    }
    let http = builder.build().map_err(chain)?;
    http.get(healthz(public_url))
        .send()
        .await
        .map(drop)
        .map_err(chain)
}

/// How far Apple's clock (the `Date` header of `GET <abm_url>`) is ahead of this one, in
/// whole seconds (negative: behind).
///
/// # Errors
/// When nothing answered, or the answer had no readable `Date`.
pub async fn clock_skew(abm_url: &str, timeout: Duration) -> Result<i64, String> {
    let http = client(timeout).build().map_err(chain)?;
    let sent = SystemTime::now();
    let response = http.get(abm_url).send().await.map_err(chain)?;
    let received = SystemTime::now();
    let date = response
        .headers()
        .get(reqwest::header::DATE)
        .ok_or_else(|| "the answer has no Date header".to_string())?;
    let date = date
        .to_str()
        .ok()
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .ok_or_else(|| format!("the Date header {date:?} is not an HTTP date"))?;
    // This clock at the moment Apple stamped the answer: halfway through the round trip.
    let half = received.duration_since(sent).unwrap_or_default() / 2;
    let local = sent + half;
    Ok(match date.duration_since(local) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
        Err(behind) => -i64::try_from(behind.duration().as_secs()).unwrap_or(i64::MAX),
    })
}

/// Free bytes (for an unprivileged process) and total bytes of the file system holding
/// `dir`.
///
/// # Errors
/// When the file system cannot be queried.
pub fn free_space(dir: &Path) -> Result<(u64, u64), String> {
    let stat = rustix::fs::statvfs(dir).map_err(|e| e.to_string())?;
    Ok((
        stat.f_bavail.saturating_mul(stat.f_frsize),
        stat.f_blocks.saturating_mul(stat.f_frsize),
    ))
}

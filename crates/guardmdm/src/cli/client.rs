//! A small client of GuardMDM's REST API, for the admin commands.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// The GuardMDM server's base URL.
    #[arg(
        long,
        global = true,
        env = "GUARDMDM_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// An API token (or the server's admin token).
    #[arg(
        long,
        global = true,
        env = "GUARDMDM_API_TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
}

/// An authenticated REST client.
pub struct ApiClient {
    base: Url,
    token: SecretString,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for `args`.
    ///
    /// # Errors
    /// A malformed URL or a missing token.
    pub fn new(args: &ClientArgs) -> anyhow::Result<Self> {
        let base = Url::parse(&args.url)
            .with_context(|| format!("GUARDMDM_URL {:?} is not a URL", args.url))?;
        let token = args
            .api_token
            .clone()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "no API token: set GUARDMDM_API_TOKEN (or pass --api-token) to an API token or \
                 the server's admin token (the file admin-token in its data dir)"
                )
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("guardmdm-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base,
            token: SecretString::from(token.trim().to_string()),
            http,
        })
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The URL of `/api/v1/<segments…>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("GUARDMDM_URL {} cannot be a base URL", self.base))?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        Ok(url)
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let url = self.url(segments)?;
        let request = self
            .http
            .request(method, url.clone())
            .bearer_auth(self.token.expose_secret());
        let response = build(request)
            .send()
            .await
            .with_context(|| format!("cannot reach GuardMDM at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str::<serde_json::Value>(&text).ok();
        let mut message = json
            .as_ref()
            .and_then(|v| {
                v.get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or(text);
        // Field-by-field problems (an invalid ADE profile): one line each.
        let fields = json
            .as_ref()
            .and_then(|v| v.get("errors"))
            .and_then(|e| e.as_array());
        for e in fields.into_iter().flatten() {
            let get = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or_default();
            message.push_str(&format!(
                "\n  - {}: {} ({})",
                get("field"),
                get("message"),
                get("code")
            ));
        }
        if status == StatusCode::UNAUTHORIZED {
            bail!("{message} (HTTP 401: check GUARDMDM_API_TOKEN)");
        }
        bail!("{message} (HTTP {})", status.as_u16())
    }

    /// GET, decoding JSON.
    ///
    /// # Errors
    /// Transport failures and non-2xx answers (with the server's message).
    pub async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> anyhow::Result<T> {
        self.send(Method::GET, segments, |r| r)
            .await?
            .json()
            .await
            .context("decoding the answer")
    }

    /// GET with a query string, decoding JSON.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn get_query<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> anyhow::Result<T> {
        self.send(Method::GET, segments, |r| r.query(query))
            .await?
            .json()
            .await
            .context("decoding the answer")
    }

    /// GET with a query string of a paged list, decoding JSON: the page, and the `after` of
    /// the next one when the answer's `Link: <…>; rel="next"` header gives it.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn get_page<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> anyhow::Result<(T, Option<String>)> {
        let response = self.send(Method::GET, segments, |r| r.query(query)).await?;
        let next = response
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| next_after(&self.base, v));
        let page = response.json().await.context("decoding the answer")?;
        Ok((page, next))
    }

    /// GET, as text.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn get_text(&self, segments: &[&str]) -> anyhow::Result<String> {
        self.send(Method::GET, segments, |r| r)
            .await?
            .text()
            .await
            .context("reading the answer")
    }

    /// A JSON request (`POST`, `PATCH`), decoding JSON.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn send_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(method, segments, |r| r.json(body))
            .await?
            .json()
            .await
            .context("decoding the answer")
    }

    /// A bodiless request with a query string (`POST …?full=true`), decoding JSON.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn send_json_query<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        query: &Q,
    ) -> anyhow::Result<T> {
        self.send(method, segments, |r| r.query(query))
            .await?
            .json()
            .await
            .context("decoding the answer")
    }

    /// `PUT` of raw bytes with a query string, decoding JSON.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn put_bytes<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<T> {
        self.send_bytes(Method::PUT, segments, query, content_type, body)
            .await
    }

    /// Raw bytes with any method and a query string, decoding JSON.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn send_bytes<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        query: &Q,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<T> {
        self.send(method, segments, |r| {
            r.query(query)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body)
        })
        .await?
        .json()
        .await
        .context("decoding the answer")
    }

    /// `DELETE`, ignoring any body.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<()> {
        self.send(Method::DELETE, segments, |r| r).await.map(drop)
    }
}

/// The `after` query parameter of the `rel="next"` target of a `Link` header value.
fn next_after(base: &Url, link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let url = base.join(target).ok()?;
        is_next
            .then(|| url.query_pairs().find(|(k, _)| k == "after"))
            .flatten()
            .map(|(_, v)| v.into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let base = Url::parse("https://mdm.example.com/").unwrap();
        let link = "</api/v1/devices?status=enrolled&after=eyJ4IjoxfQ&limit=5>; rel=\"next\"";
        assert_eq!(next_after(&base, link).as_deref(), Some("eyJ4IjoxfQ"));
        let two = "</a?after=1>; rel=\"prev\", </a?after=2>; rel=\"next\"";
        assert_eq!(next_after(&base, two).as_deref(), Some("2"));
        assert_eq!(next_after(&base, "</a?after=1>; rel=\"prev\""), None);
        assert_eq!(next_after(&base, "garbage"), None);
    }
}

//! A client of a running simulator's portal (`/portal/…`), for `guardmdm abm-sim`'s
//! subcommands and for tests or demos that drive a simulator in another process. Answers are
//! the portal's JSON, untyped.

use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::Value;

/// Why a portal call failed.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// The base URL is not usable.
    #[error("{0:?} is not a usable simulator URL")]
    Url(String),
    /// The simulator could not be reached or did not answer.
    #[error("cannot reach the ABM simulator at {url} (is it running?): {reason}")]
    Unreachable {
        /// Where it was expected.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The portal refused the request.
    #[error("the simulator refused ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The portal's `message`.
        message: String,
    },
    /// The answer was not what the portal sends.
    #[error("unexpected answer from the simulator: {0}")]
    Body(String),
}

/// A body to send.
#[derive(Debug)]
pub enum PortalBody {
    /// No body.
    Empty,
    /// JSON.
    Json(Value),
    /// Raw bytes (a PEM or CSV upload).
    Bytes(Vec<u8>),
}

/// A downloaded server token.
#[derive(Debug, Clone)]
pub struct DownloadedToken {
    /// Apple's file name, from `Content-Disposition`.
    pub file_name: String,
    /// The `*_smime.p7m` file.
    pub contents: Vec<u8>,
}

/// A portal client with timeouts.
#[derive(Debug, Clone)]
pub struct PortalClient {
    base: Url,
    http: reqwest::Client,
}

impl PortalClient {
    /// A client for the simulator at `base_url` (e.g. `http://127.0.0.1:8090`).
    ///
    /// # Errors
    /// [`PortalError::Url`] for a malformed URL.
    pub fn new(base_url: &str) -> Result<Self, PortalError> {
        let base = Url::parse(base_url)
            .ok()
            .filter(|u| !u.cannot_be_a_base())
            .ok_or_else(|| PortalError::Url(base_url.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("guardmdm-sim-portal/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PortalError::Body(e.to_string()))?;
        Ok(Self { base, http })
    }

    fn url(&self, path: &str) -> Result<Url, PortalError> {
        let path = path.trim_start_matches('/');
        self.base
            .join(&format!("portal/{path}"))
            .map_err(|_| PortalError::Url(format!("{}portal/{path}", self.base)))
    }

    /// Calls `method /portal/<path>` with `query` and `body`; returns the JSON answer.
    ///
    /// # Errors
    /// Unreachable simulator, a refusal, or an answer that is not JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: PortalBody,
    ) -> Result<Value, PortalError> {
        self.send(method, path, query, body)
            .await?
            .json()
            .await
            .map_err(|e| PortalError::Body(e.to_string()))
    }

    /// `GET /portal/<path>`.
    ///
    /// # Errors
    /// As [`Self::call`].
    pub async fn get(&self, path: &str) -> Result<Value, PortalError> {
        self.call(Method::GET, path, &[], PortalBody::Empty).await
    }

    /// Downloads a new token for `server_uuid` (the previous one stops working).
    ///
    /// # Errors
    /// As [`Self::call`].
    pub async fn download_token(&self, server_uuid: &str) -> Result<DownloadedToken, PortalError> {
        let path = format!("servers/{server_uuid}/token");
        let response = self
            .send(Method::POST, &path, &[], PortalBody::Empty)
            .await?;
        let file_name = response
            .headers()
            .get(reqwest::header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("filename=\"").nth(1))
            .and_then(|v| v.split('"').next())
            .map_or_else(|| "server_token_smime.p7m".to_string(), str::to_string);
        let contents = response
            .bytes()
            .await
            .map_err(|e| PortalError::Body(e.to_string()))?
            .to_vec();
        Ok(DownloadedToken {
            file_name,
            contents,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: PortalBody,
    ) -> Result<reqwest::Response, PortalError> {
        let mut req = self.http.request(method, self.url(path)?).query(query);
        req = match body {
            PortalBody::Empty => req,
            PortalBody::Json(v) => req.json(&v),
            PortalBody::Bytes(b) => req.body(b),
        };
        let response = req.send().await.map_err(|e| PortalError::Unreachable {
            url: self.base.to_string(),
            reason: e.to_string(),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| status.to_string(), str::to_string);
        Err(PortalError::Refused {
            status: status.as_u16(),
            message,
        })
    }
}

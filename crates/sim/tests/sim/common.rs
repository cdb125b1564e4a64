//! Test support: a simulator on 127.0.0.1:0, a shared key pair, a test-only OAuth 1.0a
//! signer (RFC 5849, independent of the crate's verifier) and a minimal DEP client.

use std::sync::OnceLock;

use base64::Engine as _;
use guardmdm_crypto::{DepTokens, TokenKeyPair};
use guardmdm_sim::{RunningSimulator, ServerInfo, SimConfig, Simulator};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::Value;

pub(crate) const UA: &str = "guardmdm-sim-tests/1.0";

/// One RSA key pair for every test (generating one per test is slow).
pub(crate) fn key_pair() -> &'static TokenKeyPair {
    static KEY: OnceLock<TokenKeyPair> = OnceLock::new();
    KEY.get_or_init(|| guardmdm_crypto::generate_token_key_pair("GuardMDM tests").unwrap())
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// A simulator serving on an ephemeral port.
pub(crate) async fn spawn(config: SimConfig) -> RunningSimulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Simulator::new(config).start(listener).unwrap()
}

/// A simulator with `devices` devices adopted by one registered server, and a client for it.
pub(crate) async fn setup(devices: usize) -> (RunningSimulator, Dep) {
    setup_with(SimConfig {
        devices,
        ..SimConfig::default()
    })
    .await
}

pub(crate) async fn setup_with(config: SimConfig) -> (RunningSimulator, Dep) {
    let running = spawn(config).await;
    let dep = Dep::register(&running, "GuardMDM Test").await;
    (running, dep)
}

/// Decrypts a server token file with the shared key.
pub(crate) fn decrypt(file: &[u8]) -> DepTokens {
    let key = key_pair();
    guardmdm_crypto::decrypt_server_token(file, &key.certificate_pem, &key.private_key_pem).unwrap()
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// RFC 5849 HMAC-SHA1 `Authorization` header for `GET url` (no query parameters).
pub(crate) fn oauth_header(url: &str, t: &DepTokens, timestamp: i64, nonce: &str) -> String {
    let mut params = [
        (
            "oauth_consumer_key",
            t.consumer_key.expose_secret().to_string(),
        ),
        ("oauth_nonce", nonce.to_string()),
        ("oauth_signature_method", "HMAC-SHA1".to_string()),
        ("oauth_timestamp", timestamp.to_string()),
        ("oauth_token", t.access_token.expose_secret().to_string()),
        ("oauth_version", "1.0".to_string()),
    ];
    params.sort();
    let normalized: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect();
    let base = format!("GET&{}&{}", pct(url), pct(&normalized.join("&")));
    let key = format!(
        "{}&{}",
        pct(t.consumer_secret.expose_secret()),
        pct(t.access_secret.expose_secret())
    );
    let sig = base64::engine::general_purpose::STANDARD.encode(guardmdm_crypto::digest::hmac_sha1(
        key.as_bytes(),
        base.as_bytes(),
    ));
    let fields: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", pct(v)))
        .chain([format!("oauth_signature=\"{}\"", pct(&sig))])
        .collect();
    format!("OAuth realm=\"ADM\", {}", fields.join(", "))
}

pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(crate) fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    pub(crate) fn assert(&self, status: u16, body: &str) {
        assert_eq!((self.status.as_u16(), self.text.as_str()), (status, body));
    }
}

/// A minimal DEP client: one server's token, a session, a protocol version.
pub(crate) struct Dep {
    pub(crate) base: String,
    pub(crate) server: ServerInfo,
    pub(crate) tokens: DepTokens,
    pub(crate) session: Option<String>,
    pub(crate) version: u32,
    pub(crate) http: reqwest::Client,
}

impl Dep {
    /// Registers a server named `name` through the Rust API and downloads its token.
    pub(crate) async fn register(running: &RunningSimulator, name: &str) -> Self {
        let server = running
            .sim
            .register_server(name, &key_pair().certificate_pem)
            .unwrap();
        let token = running
            .sim
            .download_token(&server.server_uuid, None)
            .unwrap();
        Self {
            base: running.base_url(),
            server,
            tokens: decrypt(&token.contents),
            session: None,
            version: 10,
            http: http(),
        }
    }

    /// `GET /session` with a fresh signature; stores the session.
    pub(crate) async fn session(&mut self) -> Reply {
        let header = oauth_header(
            &format!("{}/session", self.base),
            &self.tokens,
            now(),
            &nonce(),
        );
        let reply = self.raw(Method::GET, "/session", None, Some(&header)).await;
        if reply.status == StatusCode::OK {
            self.session = reply.json()["auth_session_token"]
                .as_str()
                .map(str::to_string);
        }
        reply
    }

    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        auth: Option<&str>,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("User-Agent", UA)
            .header("X-Server-Protocol-Version", self.version.to_string())
            .header("Content-Type", "application/json;charset=UTF8");
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        if let Some(s) = &self.session {
            req = req.header("X-ADM-Auth-Session", s);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        Reply {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }

    /// An API call with the current session (opened first if needed); adopts rotated tokens.
    pub(crate) async fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> Reply {
        if self.session.is_none() {
            assert_eq!(self.session().await.status, StatusCode::OK);
        }
        let reply = self
            .raw(method, path, body.map(|b| b.to_string()), None)
            .await;
        if let Some(t) = reply.headers.get("x-adm-auth-session") {
            self.session = Some(t.to_str().unwrap().to_string());
        }
        reply
    }

    pub(crate) async fn post(&mut self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Fetches every page; returns the devices and the final cursor.
    pub(crate) async fn fetch_all(&mut self, limit: u32) -> (Vec<Value>, String) {
        let mut cursor: Option<String> = None;
        let mut devices = Vec::new();
        loop {
            let mut body = serde_json::json!({ "limit": limit });
            if let Some(c) = &cursor {
                body["cursor"] = c.clone().into();
            }
            let page = self.post("/server/devices", body).await.json();
            devices.extend(page["devices"].as_array().unwrap().iter().cloned());
            cursor = page["cursor"].as_str().map(str::to_string);
            if !page["more_to_follow"].as_bool().unwrap() {
                return (devices, cursor.unwrap());
            }
        }
    }

    /// One sync page from `cursor`.
    pub(crate) async fn sync(&mut self, cursor: &str) -> Value {
        let reply = self
            .post("/devices/sync", serde_json::json!({ "cursor": cursor }))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()
    }
}

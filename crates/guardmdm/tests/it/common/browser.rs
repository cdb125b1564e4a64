//! A real headless Chromium, driven through chromedriver over the W3C WebDriver protocol: a
//! small JSON client on the workspace's reqwest (fantoccini would add a second `http`, a
//! `thiserror` 1 and an old ICU to the graph for what is a dozen endpoints here).
//!
//! [`Browser::start`] returns `None` (after a loud SKIPPED line) when chromedriver is not
//! installed, unless `GUARDMDM_REQUIRE_BROWSER=1` is set (as `.ci/run` does): then it panics.
//! Flows for more pages: `goto`, `find`/`wait_for`, `click`, `type_into`, `select`,
//! `text`, `choose_file`, `screenshot`.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::in_path;

/// Where the browser tests save their screenshots: `docs/screenshots/NAME`.
pub fn screenshot_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/screenshots")
        .join(name)
}

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long `wait_*` polls.
const WAIT: Duration = Duration::from_secs(15);

/// An element found on the page.
#[derive(Debug, Clone)]
pub struct Element(String);

pub struct Browser {
    http: reqwest::Client,
    session: String,
    _driver: tokio::process::Child,
}

impl Drop for Browser {
    /// Ends the session even when a test panics, so chromedriver closes Chromium (killing
    /// chromedriver alone would leave it running).
    fn drop(&mut self) {
        use std::io::{Read as _, Write as _};
        let Some(rest) = self.session.strip_prefix("http://") else {
            return;
        };
        let Some((host, path)) = rest.split_once('/') else {
            return;
        };
        if let Ok(mut stream) = std::net::TcpStream::connect(host) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                stream,
                "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
        }
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None` when not installed
    /// (and not required).
    pub async fn start() -> Option<Self> {
        Self::start_with(&[]).await
    }

    /// [`Browser::start`] with extra Chromium arguments.
    pub async fn start_with(extra_args: &[&str]) -> Option<Self> {
        let required = std::env::var("GUARDMDM_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        let driver = in_path(&["chromedriver"]);
        let chromium = in_path(&["chromium", "chromium-browser", "google-chrome"]);
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            assert!(
                !required,
                "GUARDMDM_REQUIRE_BROWSER=1 but chromedriver or chromium is not installed \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "SKIPPED: the browser tests need chromedriver and chromium in PATH \
                 (apt-get install chromium chromium-driver); set GUARDMDM_REQUIRE_BROWSER=1 to \
                 make their absence an error"
            );
            return None;
        };
        let port = super::free_port();
        let child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1280,900",
            "--lang=en-US",
        ];
        args.extend_from_slice(extra_args);
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": chromium, "args": args },
            }}
        });
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver did not start a session: {resp}"))
            .to_string();
        Some(Self {
            http,
            session: format!("{base}/session/{id}"),
            _driver: child,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp: Value = req.send().await.unwrap().json().await.unwrap();
        resp["value"].clone()
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let v = self.call(method, path, Some(body)).await;
        match v.get("error") {
            Some(e) => Err(format!("{e}: {}", v["message"])),
            None => Ok(v),
        }
    }

    /// Opens `url` signed out, is sent to the sign-in form, and signs in as `name`.
    pub async fn sign_in_at(&self, url: &str, name: &str, password: &str) {
        self.goto(url).await;
        self.wait_url("/signin?next=").await;
        self.type_into("#name", name).await;
        self.type_into("#password", password).await;
        self.click(&self.find("button[type=submit]").await).await;
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/url", None).await;
        v.as_str()
            .unwrap_or_else(|| panic!("WebDriver: {v}"))
            .to_string()
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .try_call(
                reqwest::Method::POST,
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await
            .unwrap_or(Value::Null);
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| Element(e[ELEMENT].as_str().unwrap().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn find(&self, css: &str) -> Element {
        self.find_all(css)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element {css:?} on the page"))
    }

    /// Waits until `css` matches an element whose text contains `text` (any text when empty).
    pub async fn wait_for(&self, css: &str, text: &str) -> Element {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            for el in self.find_all(css).await {
                if text.is_empty() || self.text(&el).await.contains(text) {
                    return el;
                }
            }
            if tokio::time::Instant::now() > deadline {
                let body = self.page_text().await;
                panic!(
                    "waited for {css:?} with {text:?} at {}: {body}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the URL contains `part`.
    pub async fn wait_url(&self, part: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return url;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "URL {url} never had {part:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn page_text(&self) -> String {
        let body = self.find_all("body").await;
        match body.first() {
            Some(b) => self.text(b).await,
            None => String::new(),
        }
    }

    pub async fn text(&self, el: &Element) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{}/text", el.0),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    pub async fn attr(&self, el: &Element, name: &str) -> Option<String> {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{}/attribute/{name}", el.0),
            None,
        )
        .await
        .as_str()
        .map(str::to_string)
    }

    pub async fn click(&self, el: &Element) {
        self.try_call(
            reqwest::Method::POST,
            &format!("/element/{}/click", el.0),
            json!({}),
        )
        .await
        .unwrap();
    }

    pub async fn clear(&self, el: &Element) {
        self.try_call(
            reqwest::Method::POST,
            &format!("/element/{}/clear", el.0),
            json!({}),
        )
        .await
        .unwrap();
    }

    /// Types into an input (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.clear(&el).await;
        self.try_call(
            reqwest::Method::POST,
            &format!("/element/{}/value", el.0),
            json!({ "text": text }),
        )
        .await
        .unwrap();
    }

    /// Chooses `path` in the file input `css` (file inputs cannot be cleared or typed into).
    pub async fn choose_file(&self, css: &str, path: &Path) {
        let el = self.find(css).await;
        self.try_call(
            reqwest::Method::POST,
            &format!("/element/{}/value", el.0),
            json!({ "text": path.to_str().unwrap() }),
        )
        .await
        .unwrap();
    }

    /// Picks the option with `value` in the select `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let option = self.find(&format!("{css} option[value=\"{value}\"]")).await;
        self.click(&option).await;
    }

    /// Runs `script` (an async function body that calls `arguments[0]` with its result).
    pub async fn run_async(&self, script: &str) -> Value {
        self.try_call(
            reqwest::Method::POST,
            "/execute/async",
            json!({ "script": script, "args": [] }),
        )
        .await
        .unwrap()
    }

    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.try_call(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await
        .unwrap();
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    pub async fn quit(self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

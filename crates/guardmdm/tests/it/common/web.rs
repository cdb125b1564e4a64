//! A cookie-carrying HTTP client for the dashboard (no browser): sign in, keep the session
//! cookie, read CSRF tokens from pages, post forms with or without them.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::TestApp;

/// A dashboard password that passes the policy.
pub const PASSWORD: &str = "correct horse battery";

/// Creates a dashboard admin through the REST API (what `guardmdm admins create` does).
pub async fn create_admin(app: &TestApp, name: &str, password: &str) {
    let (status, body) = app
        .json(
            Method::POST,
            "/api/v1/admins",
            Some(json!({ "name": name, "password": password })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .map_or("", |v| v.to_str().unwrap())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_string()
    }

    /// The number of device rows in a devices page.
    pub fn rows(&self) -> usize {
        self.body.matches("<td class=\"serial\"").count()
    }

    /// The serials of a devices page, in order.
    pub fn serials(&self) -> Vec<String> {
        self.body
            .split("<td class=\"serial\" data-label=\"Serial\"><a href=\"/devices/")
            .skip(1)
            .map(|s| s.split('"').next().unwrap().to_string())
            .collect()
    }

    /// The href of the "Next page" link, unescaped.
    pub fn next_href(&self) -> Option<String> {
        let i = self.body.find("rel=\"next\"")?;
        let before = &self.body[..i];
        let start = before.rfind("href=\"")? + 6;
        let end = start + before[start..].find('"')?;
        Some(
            before[start..end]
                .replace("&amp;", "&")
                .replace("&#38;", "&"),
        )
    }
}

pub struct WebClient {
    pub base: String,
    http: reqwest::Client,
    pub session: Option<String>,
    /// The `Origin` header sent with posts (`None`: none).
    pub origin: Option<String>,
}

impl WebClient {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            http: app
                .client_builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            session: None,
            origin: Some(app.base.clone()),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(s) = &self.session {
            req = req.header("cookie", format!("guardmdm_session={s}"));
        }
        req
    }

    async fn page(resp: reqwest::Response) -> Page {
        Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(self.request(Method::GET, path).send().await.unwrap()).await
    }

    /// Posts a urlencoded form; `csrf_header` goes in `X-CSRF-Token`.
    pub async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        csrf_header: Option<&str>,
    ) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut req = self
            .request(Method::POST, path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(o) = &self.origin {
            req = req.header("origin", o);
        }
        if let Some(t) = csrf_header {
            req = req.header("x-csrf-token", t);
        }
        Self::page(req.send().await.unwrap()).await
    }

    /// Gets `path` with an extra cookie (`name=value`), as a browser sends a flash cookie.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> Page {
        let mut value = cookie.to_string();
        if let Some(s) = &self.session {
            value = format!("guardmdm_session={s}; {value}");
        }
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", value);
        Self::page(req.send().await.unwrap()).await
    }

    /// Gets `path` as an htmx poll does (`HX-Request`, not boosted).
    pub async fn get_htmx(&self, path: &str) -> Page {
        let req = self.request(Method::GET, path).header("hx-request", "true");
        Self::page(req.send().await.unwrap()).await
    }

    /// Posts `multipart/form-data` as htmx does (the CSRF token, when given, in
    /// `X-CSRF-Token`): text fields, then files as (field, file name, contents).
    pub async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
        csrf_header: Option<&str>,
    ) -> Page {
        let boundary = "----guardmdm-test-boundary-7d1f";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        for (name, file_name, contents) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(contents);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let mut req = self
            .request(Method::POST, path)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header("hx-request", "true")
            .body(body);
        if let Some(o) = &self.origin {
            req = req.header("origin", o);
        }
        if let Some(t) = csrf_header {
            req = req.header("x-csrf-token", t);
        }
        Self::page(req.send().await.unwrap()).await
    }

    /// Signs in; on success keeps the session cookie. Returns the answer.
    pub async fn sign_in(&mut self, name: &str, password: &str, next: &str) -> Page {
        let page = self
            .post(
                "/signin",
                &[("name", name), ("password", password), ("next", next)],
                None,
            )
            .await;
        for c in page.set_cookies() {
            if let Some(rest) = c.strip_prefix("guardmdm_session=") {
                let value = rest.split(';').next().unwrap();
                self.session = (!value.is_empty()).then(|| value.to_string());
            }
        }
        page
    }

    /// Signs in and checks it worked.
    pub async fn signed_in(app: &TestApp, name: &str) -> Self {
        let mut c = Self::new(app);
        let page = c.sign_in(name, PASSWORD, "/devices").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert!(c.session.is_some());
        c
    }
}

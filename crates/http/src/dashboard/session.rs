//! Signing in and out, the session cookie, and the checks every protected request passes:
//! a valid session, and for state changes the session's CSRF token and a same-origin
//! `Origin`/`Referer`.

use std::net::SocketAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use guardmdm_service::{AbmEntryView, DashboardSession, ServiceError, SignInError};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;

use super::Banner;
use crate::AppState;

/// The session cookie: the session token, which the server keeps only as a hash.
pub(crate) const SESSION_COOKIE: &str = "guardmdm_session";
/// A one-time message for the next page (a code from [`FLASHES`], never free text).
const FLASH_COOKIE: &str = "guardmdm_flash";
/// The form field carrying the CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf_token";
/// The header carrying the CSRF token (htmx requests).
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// The largest urlencoded form body the CSRF check reads.
const MAX_FORM_BYTES: usize = 256 * 1024;

/// Flash messages by code.
const FLASHES: &[(&str, &str)] = &[
    ("signed_out", "You are signed out."),
    (
        "profile_created",
        "Profile created. Make it an OS default, give it to a group, or assign it to devices.",
    ),
    (
        "profile_saved",
        "Saved as a new version: GuardMDM defines it at Apple and re-assigns its devices.",
    ),
    (
        "profile_unchanged",
        "Nothing changed: the profile is the same as its current version.",
    ),
    ("profile_deleted", "Profile deleted."),
    (
        "default_saved",
        "OS default saved: devices are resolved again and assigned at Apple.",
    ),
    (
        "minimum_saved",
        "Minimum OS saved: it applies to the next enrollments.",
    ),
    ("group_created", "Group created."),
    (
        "group_saved",
        "Group saved: its devices are resolved again.",
    ),
    ("group_deleted", "Group deleted."),
    ("members_removed", "Removed from the group."),
    (
        "apns_request_made",
        "Certificate request made: download it, have it signed, and upload it at identity.apple.com.",
    ),
    (
        "apns_request_replaced",
        "New certificate request made with a new key: it replaces the earlier pending request, whose certificate can no longer be uploaded here.",
    ),
    (
        "apns_uploaded",
        "Push certificate installed: GuardMDM pushes devices with it from now on.",
    ),
    (
        "abm_created",
        "Token generated: download the public key below and upload it to Apple Business Manager.",
    ),
    (
        "token_uploaded",
        "Server token installed: GuardMDM can now sync this MDM server's devices.",
    ),
    ("settings_saved", "Settings saved."),
    ("abm_deleted", "The ABM entry was deleted."),
    ("sync_started", "Sync started: its progress is below."),
    (
        "sync_running",
        "A sync of this entry is already running: its progress is below.",
    ),
    (
        "released",
        "Released: DeviceConfigured was queued first and the devices were pushed; their unanswered initial commands were cancelled.",
    ),
    (
        "released_some",
        "Some devices were released; the others no longer wait in Setup Assistant (or are unknown).",
    ),
    (
        "release_none",
        "Nothing released: tick the devices to release first.",
    ),
    (
        "command_sent",
        "Command queued and the device was pushed: its result appears below when it answers.",
    ),
];

/// A `Set-Cookie` value showing flash `code` on the next page.
pub(crate) fn flash(code: &'static str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{FLASH_COOKIE}={code}; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn flash_message(headers: &HeaderMap) -> Option<&'static str> {
    let code = cookie(headers, FLASH_COOKIE)?;
    FLASHES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, message)| *message)
}

fn clear_cookie(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of cookie `name`, if the request has it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `next` that is a local path (`/devices?os=iOS`), or `/devices`: never another site
/// (`//evil.example`, `https://…`, `/\evil`).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_string()
        }
        _ => "/devices".to_string(),
    }
}

/// Whether the request comes from a page of this server: its `Origin` (or, without one, its
/// `Referer`) is the public URL's origin or the origin of the `Host` it was sent to.
pub(crate) fn same_origin(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    let origin = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(o) => o.to_string(),
        None => match headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(super::origin)
        {
            Some(o) => o,
            None => return false,
        },
    };
    if public_origin.is_some_and(|p| p.eq_ignore_ascii_case(&origin)) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    ["http://", "https://"].iter().any(|scheme| {
        origin
            .strip_prefix(scheme)
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    })
}

fn session_cookie(state: &AppState, token: &SecretString, max_age: i64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        token.expose_secret()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What a protected handler gets: the session, the token banners and the flash message.
pub(crate) struct Page {
    pub(super) session: DashboardSession,
    pub(super) banners: Vec<Banner>,
    pub(super) flash: Option<&'static str>,
    /// The ABM entries the banners were made from (`None` when they could not be read),
    /// for the pages that list them too.
    entries: Option<Vec<AbmEntryView>>,
}

impl Page {
    /// The ABM entries, read once per request.
    ///
    /// # Errors
    /// When the store could not be read at the start of the request (logged then).
    pub(super) fn abm_entries(&self) -> Result<&[AbmEntryView], ServiceError> {
        self.entries
            .as_deref()
            .ok_or_else(|| ServiceError::Internal("the ABM entries could not be read".into()))
    }
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = parts
            .extensions
            .get::<DashboardSession>()
            .cloned()
            .ok_or_else(|| refused(StatusCode::UNAUTHORIZED, "Sign in first."))?;
        let entries = match state.services.abm_entries.list().await {
            Ok(entries) => Some(entries),
            Err(e) => {
                tracing::error!(error = %e, "dashboard: cannot read ABM entries for the banner");
                None
            }
        };
        let mut banners: Vec<Banner> = entries
            .iter()
            .flatten()
            .filter_map(|e| super::banner(&e.name, e.health.state, &e.health.message))
            .collect();
        banners.extend(super::tls_banner(guardmdm_service::tls_status::tls_health(
            &state.services.tls.snapshot(),
            OffsetDateTime::now_utc(),
        )));
        match state.services.mdm.push_health().await {
            Ok(health) => banners.extend(super::push_banner(
                &health,
                entries.as_ref().map_or(0, Vec::len),
            )),
            Err(e) => {
                tracing::error!(error = %e, "dashboard: cannot read the push certificate for the banner")
            }
        }
        match state.services.mdm.count_stuck().await {
            Ok(n) => banners.extend(super::stuck_banner(n, state.services.mdm.stuck_after())),
            Err(e) => {
                tracing::error!(error = %e, "dashboard: cannot count the devices stuck in Setup Assistant for the banner")
            }
        }
        Ok(Self {
            session,
            banners,
            flash: flash_message(&parts.headers),
            entries,
        })
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

/// A page with only a message (refusals outside a session).
pub(crate) fn refused(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Refused");
    (status, MessagePage { title, message }).into_response()
}

/// Requires a valid session; for state-changing methods also a same-origin request carrying
/// the session's CSRF token. Puts the [`DashboardSession`] into the request.
pub(crate) async fn require_session(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let token = cookie(req.headers(), SESSION_COOKIE).map(str::to_string);
    let session = match &token {
        Some(t) => match state.services.admins.session(t).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "dashboard: session lookup failed");
                return refused(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error: see the server log.",
                );
            }
        },
        None => None,
    };
    let Some(session) = session else {
        return to_signin(&req);
    };
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut req = req;
    if changes_state {
        if !same_origin(req.headers(), state.public_origin.as_deref()) {
            tracing::warn!(admin = %session.admin, "dashboard: cross-origin request refused");
            return refused(
                StatusCode::FORBIDDEN,
                "This request did not come from a GuardMDM page (Origin check failed).",
            );
        }
        match csrf_token_of(req).await {
            Ok((presented, rebuilt)) => {
                let ok = presented.is_some_and(|p| {
                    guardmdm_crypto::api_token::constant_time_eq(
                        &SecretString::from(p),
                        &SecretString::from(session.csrf_token.clone()),
                    )
                });
                if !ok {
                    tracing::warn!(admin = %session.admin, "dashboard: missing or wrong CSRF token");
                    return refused(
                        StatusCode::FORBIDDEN,
                        "The form's security token is missing or out of date: reload the page and try again.",
                    );
                }
                req = rebuilt;
            }
            Err(response) => return response,
        }
    }
    let had_flash = cookie(req.headers(), FLASH_COOKIE).is_some();
    req.extensions_mut().insert(session);
    let mut response = next.run(req).await;
    if had_flash && response.status().is_success() {
        response
            .headers_mut()
            .append(header::SET_COOKIE, clear_cookie(FLASH_COOKIE));
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The CSRF token a request presents (header first, else a urlencoded form field), with the
/// request rebuilt around the body it had to read.
async fn csrf_token_of(req: Request) -> Result<(Option<String>, Request), Response> {
    if let Some(v) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        let v = v.to_string();
        return Ok((Some(v), req));
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((None, req));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "The form is larger than {} KiB, the limit for a form without JavaScript; nothing was changed.",
                    MAX_FORM_BYTES / 1024
                ),
            )
        })?;
    let token = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    Ok((token, Request::from_parts(parts, Body::from(bytes))))
}

/// Where an unauthenticated request goes: page requests to the sign-in form with `next`;
/// htmx requests get `HX-Redirect` to it; other methods a 403.
fn to_signin(req: &Request) -> Response {
    let here = req
        .uri()
        .path_and_query()
        .map_or("/devices", |pq| pq.as_str());
    let target = format!(
        "/signin?next={}",
        form_urlencoded::byte_serialize(safe_next(Some(here)).as_bytes()).collect::<String>()
    );
    if req.headers().contains_key("hx-request") {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            r.headers_mut().insert("hx-redirect", v);
        }
        return r;
    }
    match *req.method() {
        Method::GET | Method::HEAD => Redirect::to(&target).into_response(),
        _ => refused(
            StatusCode::FORBIDDEN,
            "You are not signed in (or your session ended): sign in and try again.",
        ),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "signin.html")]
struct SignInPage {
    asset_version: &'static str,
    next: String,
    name: String,
    error: Option<String>,
    flash: Option<&'static str>,
}

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    next: Option<String>,
}

pub(crate) async fn signin_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SignInQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(_)) = state.services.admins.session(token).await
    {
        return Redirect::to(&next).into_response();
    }
    let flash = flash_message(&headers);
    let page = SignInPage {
        asset_version: super::assets::version(),
        next,
        name: String::new(),
        error: None,
        flash,
    };
    let mut response = page.into_response();
    if flash.is_some() {
        response
            .headers_mut()
            .append(header::SET_COOKIE, clear_cookie(FLASH_COOKIE));
    }
    response
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    name: String,
    password: String,
    next: Option<String>,
}

/// The client's address, for per-client rate limits.
fn client_of(parts: &axum::http::Extensions) -> String {
    parts
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |ci| ci.0.ip().to_string())
}

pub(crate) async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    if !same_origin(&headers, state.public_origin.as_deref()) {
        return refused(
            StatusCode::FORBIDDEN,
            "This sign-in did not come from GuardMDM's sign-in page (Origin check failed).",
        );
    }
    let name = form.name.trim().to_string();
    let client = client_of(&extensions);
    match state
        .services
        .admins
        .sign_in(&name, SecretString::from(form.password), &client)
        .await
    {
        Ok(signed_in) => {
            let max_age = state.services.admins.policy().lifetime.whole_seconds();
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&state, &signed_in.token, max_age.max(0)),
            );
            response
        }
        Err(e) => SignInAgain { next, name }.refused(e),
    }
}

/// The sign-in page again after a refused sign-in: the name as typed, and why it was
/// refused.
struct SignInAgain {
    next: String,
    name: String,
}

impl SignInAgain {
    /// The answer to a refused sign-in: the status that says why, and `Retry-After` when
    /// waiting helps.
    fn refused(self, error: SignInError) -> Response {
        match error {
            SignInError::WrongCredentials => self.page(
                StatusCode::UNAUTHORIZED,
                "Wrong name or password.".to_string(),
            ),
            SignInError::TooManyAttempts { retry_at } => self.too_many_attempts(retry_at),
            SignInError::Busy { retry_after } => {
                let wait = retry_after.as_secs_f64().ceil().max(1.0);
                let mut response = self.page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is busy checking other sign-ins, so your password was not checked \
                     (and the attempt does not count). Try again in a few seconds."
                        .to_string(),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("{wait:.0}")) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
                response
            }
            SignInError::Service(e) => {
                tracing::error!(error = %e, "sign-in failed");
                self.page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal error: see the server log.".to_string(),
                )
            }
        }
    }

    /// Locked out after too many failures: when the next attempt may be made, as a time
    /// and in minutes, and in `Retry-After` (seconds, at least one).
    fn too_many_attempts(self, retry_at: OffsetDateTime) -> Response {
        let wait = (retry_at - OffsetDateTime::now_utc())
            .whole_seconds()
            .max(1);
        let minutes = (wait + 59) / 60;
        let when = retry_at
            .format(time::macros::format_description!(
                "[hour]:[minute]:[second] UTC"
            ))
            .unwrap_or_default();
        let mut response = self.page(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-in attempts. Try again after {when} (in about {minutes} minute{}).",
                if minutes == 1 { "" } else { "s" }
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }

    fn page(self, status: StatusCode, error: String) -> Response {
        (
            status,
            SignInPage {
                asset_version: super::assets::version(),
                next: self.next,
                name: self.name,
                error: Some(error),
                flash: None,
            },
        )
            .into_response()
    }
}

pub(crate) async fn signout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.services.admins.sign_out(token).await
    {
        tracing::error!(error = %e, "sign-out failed");
        return refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error: see the server log.",
        );
    }
    let mut response = Redirect::to("/signin").into_response();
    let h = response.headers_mut();
    h.append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
    h.append(header::SET_COOKIE, flash("signed_out"));
    // htmx (hx-boost) follows redirects inside XHR: make it load the sign-in page for real.
    h.insert("hx-redirect", HeaderValue::from_static("/signin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_only_ever_a_local_path() {
        assert_eq!(safe_next(Some("/devices?os=iOS")), "/devices?os=iOS");
        assert_eq!(safe_next(Some("/devices/C02X")), "/devices/C02X");
        for bad in [
            "//evil.example/x",
            "https://evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "devices",
            "/de\nvices",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/devices", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/devices");
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origin_checks() {
        let public = Some("https://mdm.example.com");
        assert!(same_origin(
            &headers(&[("origin", "https://mdm.example.com")]),
            public
        ));
        assert!(same_origin(
            &headers(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080")
            ]),
            public
        ));
        assert!(!same_origin(
            &headers(&[
                ("origin", "https://evil.example"),
                ("host", "127.0.0.1:8080")
            ]),
            public
        ));
        assert!(!same_origin(
            &headers(&[("origin", "null"), ("host", "127.0.0.1:8080")]),
            public
        ));
        assert!(same_origin(
            &headers(&[
                ("referer", "http://127.0.0.1:8080/devices?x=1"),
                ("host", "127.0.0.1:8080")
            ]),
            public
        ));
        assert!(!same_origin(
            &headers(&[
                ("referer", "http://127.0.0.1:8080.evil.example/"),
                ("host", "127.0.0.1:8080")
            ]),
            public
        ));
        assert!(
            !same_origin(&headers(&[("host", "127.0.0.1:8080")]), public),
            "neither Origin nor Referer"
        );
    }

    #[test]
    fn the_origin_of_a_url_is_written_as_a_browser_writes_it() {
        use super::super::origin;
        // A public URL with the scheme's default port matches the Origin a browser sends.
        assert_eq!(
            origin("https://MDM.example.com:443/enroll?x=1").as_deref(),
            Some("https://mdm.example.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            origin("https://admin:secret@mdm.example.com/").as_deref(),
            Some("https://mdm.example.com"),
            "credentials are not part of an origin"
        );
        assert_eq!(origin("ftp://mdm.example.com/"), None);
        assert_eq!(origin("not a url"), None);
        assert!(same_origin(
            &headers(&[("origin", "https://mdm.example.com")]),
            origin("https://mdm.example.com:443/").as_deref()
        ));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = headers(&[("cookie", "a=1; guardmdm_session=tok; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}

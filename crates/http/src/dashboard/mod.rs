//! The web dashboard: server-rendered HTML (askama, auto-escaped) with light progressive
//! enhancement (htmx, vendored), served by `guardmdm serve` itself. Every asset is in the
//! binary; nothing comes from a CDN.
//!
//! # Routes
//! - `GET /` redirects to `/devices`.
//! - `GET /signin`, `POST /signin`: the sign-in form (argon2id passwords, rate-limited; see
//!   [`guardmdm_service::admins`]). `POST /signout` ends the session.
//! - `GET /devices`: Devices > ABM Devices. `GET /devices/{serial}`: one device.
//! - `GET /enrollments`: Devices > Enrolled devices. `GET /enrollments/{udid}`: one enrolled
//!   device with its commands; `POST /enrollments/{udid}/commands` sends one
//!   (`GET …/commands` is the command table htmx polls while one awaits its answer).
//!   `GET /enrollments?stuck=1`: the devices stuck in Setup Assistant, with why;
//!   `POST /enrollments/release` releases the one whose button was pressed (`only`) or the
//!   ticked ones (`udid`).
//! - `GET /settings/abm`: Settings > ABM Integration; `POST` there is "Generate Token" (a new
//!   entry). Per entry, under `/settings/abm/{name}`: the page, `public-key` (the PEM),
//!   `POST token` (the server token), `POST settings`, `GET`/`POST delete` (confirm, delete),
//!   and `sync`: `POST` is Sync Now, `GET` the progress and recent runs (a fragment for htmx
//!   polls, a page otherwise).
//! - `GET /settings/apns`: Settings > Push certificate; `POST …/request` makes a certificate
//!   request, `GET …/request.csr` downloads it, `POST …/certificate` uploads Apple's
//!   certificate.
//! - `GET /settings/health`: Settings > Health, the doctor's findings.
//! - `GET /assets/{file}`: the stylesheet and htmx, cached for a year (the URLs carry a
//!   content hash, `?v=`).
//! - `/profiles`: ADE profiles: list, `new` (form) and `new/yaml`, and per profile its page
//!   (with device-level assignment, `POST …/assign`), `edit`, `yaml`, `versions`, `delete`.
//! - `/os-defaults`: the default profile per OS, each saved with `POST /os-defaults/{os}`.
//! - `/groups`: device groups: list, `new`, and per group its page (static groups' members,
//!   `POST …/members` to add with a dry run, `POST …/members/remove`), `edit`, `delete`.
//!
//! # Adding a page (phase 2)
//! 1. Write a template in `crates/http/templates/` that starts with
//!    `{% extends "base.html" %}`, fills `{% block title %}` and `{% block content %}`, and a
//!    struct deriving `Template` + `WebTemplate` with a field `chrome: Chrome`.
//! 2. Write the handler with a [`Page`] argument (the signed-in admin, the CSRF token, the
//!    token banners and the flash message): `page.chrome("/nav-href")` builds the chrome with
//!    that nav entry marked current. Use `page.session.actor()` for service calls that change
//!    something, so the audit log names the admin.
//! 3. Add the route in [`protected_routes`]: everything there requires a session (an
//!    unauthenticated page request is redirected to `/signin?next=…`) and every
//!    state-changing method (POST, PUT, PATCH, DELETE) is refused with 403 unless it carries
//!    the session's CSRF token, either as a `csrf_token` field of a urlencoded form (write
//!    `<input type="hidden" name="csrf_token" value="{{ chrome.csrf_token }}">`) or as the
//!    `X-CSRF-Token` header (htmx sends it on every request: `base.html` sets `hx-headers`),
//!    and an `Origin` (or `Referer`) of this server. Multipart forms must go through htmx
//!    (`hx-encoding="multipart/form-data"`) so the header carries the token.
//! 4. After a change, answer `303 See Other` to a page, with `session::flash` to show a message
//!    there once; errors in input are shown on the form's page with the message of the
//!    [`guardmdm_service::ServiceError`].
//! 5. Add a nav entry in [`nav`] (never for a page that does not exist yet) and an
//!    integration test over a real socket (`crates/guardmdm/tests/dashboard.rs`), and a browser
//!    flow in `crates/guardmdm/tests/browser.rs` if the page has interaction.

mod abm;
mod apns;
mod assets;
mod devices;
mod enrollments;
mod error_page;
mod forms;
mod groups;
mod health;
mod os_defaults;
mod profile_form;
mod profiles;
mod session;
mod sync;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::{get, post};
use guardmdm_service::mdm::{PushCertificateState, PushHealth};
use guardmdm_service::tls_status::{TlsHealth, TlsHealthState};
use guardmdm_service::{ServiceError, TokenState};

use crate::AppState;

pub(crate) use session::Page;

/// The origin (`scheme://host[:port]`, the port only when not the scheme's default) of an
/// `http` or `https` URL, as a browser writes it in an `Origin` header.
pub(crate) fn origin(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

/// Headers every dashboard response carries: a strict Content-Security-Policy (scripts and
/// styles only from `/assets`), no framing, no sniffing, same-origin referrers.
pub(crate) async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; \
             object-src 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Every dashboard route, mounted at the root next to `/api/v1`, `/mdm/*` and `/scep`.
pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/devices") }))
        .route("/signin", get(session::signin_form).post(session::signin))
        .route("/assets/{file}", get(assets::serve))
        .merge(
            protected_routes().layer(axum::middleware::from_fn_with_state(
                state,
                session::require_session,
            )),
        )
}

/// The routes that need a signed-in admin (and CSRF checks on state changes). Their bodies
/// are read by [`forms::FormData`] alone, which enforces each form's limit (and answers 413
/// naming it), so axum's hidden default limit is turned off here.
fn protected_routes() -> Router<AppState> {
    protected_pages().layer(DefaultBodyLimit::disable())
}

fn protected_pages() -> Router<AppState> {
    Router::new()
        .route("/signout", post(session::signout))
        .route("/devices", get(devices::list))
        .route("/devices/{serial}", get(devices::show))
        .route("/profiles", get(profiles::list))
        .route(
            "/profiles/new",
            get(profiles::new_form).post(profiles::create),
        )
        .route(
            "/profiles/new/yaml",
            get(profiles::new_yaml).post(profiles::create_yaml),
        )
        .route("/profiles/{name}", get(profiles::show))
        .route(
            "/profiles/{name}/edit",
            get(profiles::edit_form).post(profiles::update),
        )
        .route(
            "/profiles/{name}/yaml",
            get(profiles::edit_yaml).post(profiles::update_yaml),
        )
        .route("/profiles/{name}/versions", get(profiles::versions))
        .route(
            "/profiles/{name}/delete",
            get(profiles::confirm_delete).post(profiles::delete),
        )
        .route("/profiles/{name}/assign", post(profiles::assign))
        .route("/os-defaults", get(os_defaults::show))
        .route("/os-defaults/{os}", post(os_defaults::save))
        .route("/os-defaults/{os}/minimum", post(os_defaults::save_minimum))
        .route("/groups", get(groups::list))
        .route("/groups/new", get(groups::new_form).post(groups::create))
        .route("/groups/{name}", get(groups::show))
        .route(
            "/groups/{name}/edit",
            get(groups::edit_form).post(groups::update),
        )
        .route(
            "/groups/{name}/delete",
            get(groups::confirm_delete).post(groups::delete),
        )
        .route("/groups/{name}/members", post(groups::add))
        .route("/groups/{name}/members/remove", post(groups::remove))
        .route("/enrollments", get(enrollments::list))
        .route("/enrollments/release", post(enrollments::release))
        .route("/enrollments/{udid}", get(enrollments::show))
        .route(
            "/enrollments/{udid}/commands",
            get(enrollments::commands).post(enrollments::send),
        )
        .route("/settings/abm", get(abm::list).post(abm::create))
        .route("/settings/abm/{name}", get(abm::show))
        .route("/settings/abm/{name}/public-key", get(abm::public_key))
        .route("/settings/abm/{name}/token", post(abm::upload_token))
        .route("/settings/abm/{name}/settings", post(abm::update_settings))
        .route(
            "/settings/abm/{name}/delete",
            get(abm::confirm_delete).post(abm::delete),
        )
        .route(
            "/settings/abm/{name}/sync",
            get(sync::show).post(sync::start),
        )
        .route(apns::NAV, get(apns::show))
        .route("/settings/apns/request", post(apns::create_request))
        .route("/settings/apns/request.csr", get(apns::download_request))
        .route("/settings/apns/certificate", post(apns::upload_certificate))
        .route("/settings/health", get(health::show))
}

/// `2026-12-06 05:37 UTC`.
pub(crate) fn when(t: time::OffsetDateTime) -> String {
    t.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

/// RFC 3339, for `<time datetime>`.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A 303 to `to` showing flash `code` there.
pub(crate) fn see_other(to: &str, code: &'static str) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let mut r = Redirect::to(to).into_response();
    r.headers_mut()
        .append(axum::http::header::SET_COOKIE, session::flash(code));
    r
}

/// A path segment, percent-encoded (names, serials and UDIDs in hrefs).
pub(crate) fn path_segment(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A service error as a form shows it: the status to answer and the service's message.
/// Internal errors are logged and shown generically.
pub(crate) fn shown(err: &ServiceError) -> (StatusCode, String) {
    let status = match err {
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::Unauthorized(_) => StatusCode::FORBIDDEN,
        ServiceError::Invalid(_)
        | ServiceError::Validation { .. }
        | ServiceError::BadToken(_)
        | ServiceError::TokenExpired { .. }
        | ServiceError::TokenRejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ServiceError::Internal(_) => {
            tracing::error!(error = %err, "dashboard: internal error");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error: see the server log.".to_string(),
            );
        }
    };
    (status, err.to_string())
}

/// One nav entry.
#[derive(Debug, Clone)]
pub(crate) struct NavItem {
    pub(crate) label: &'static str,
    pub(crate) href: &'static str,
    pub(crate) current: bool,
}

/// A group of nav entries ("Devices", "Settings").
#[derive(Debug, Clone)]
pub(crate) struct NavSection {
    pub(crate) group: &'static str,
    pub(crate) items: Vec<NavItem>,
}

/// The navigation, with `current` (an href) marked.
pub(crate) fn nav(current: &str) -> Vec<NavSection> {
    let item = |label, href: &'static str| NavItem {
        label,
        href,
        current: current == href,
    };
    vec![
        NavSection {
            group: "Devices",
            items: vec![
                item("ABM Devices", "/devices"),
                item("Enrolled devices", "/enrollments"),
                item("Groups", "/groups"),
            ],
        },
        NavSection {
            group: "Enrollment",
            items: vec![
                item("ADE profiles", "/profiles"),
                item("OS defaults", "/os-defaults"),
            ],
        },
        NavSection {
            group: "Settings",
            items: vec![
                item("ABM Integration", "/settings/abm"),
                item("Push certificate", apns::NAV),
                item("Health", "/settings/health"),
            ],
        },
    ]
}

/// A banner: an ABM entry's token, or the push certificate, needs an admin.
#[derive(Debug, Clone)]
pub(crate) struct Banner {
    /// What needs the admin (`ABM entry main`, `Push certificate`).
    pub(crate) subject: String,
    /// Where to act, if a page does it: (href, link text).
    pub(crate) link: Option<(&'static str, &'static str)>,
    pub(crate) title: &'static str,
    pub(crate) message: String,
    pub(crate) action: &'static str,
    pub(crate) severe: bool,
    /// The element id, for banners tests and links point at.
    pub(crate) id: Option<&'static str>,
}

/// The banner for a token state, if it needs one: what is wrong and exactly what to do.
pub(crate) fn banner(entry: &str, state: TokenState, message: &str) -> Option<Banner> {
    let (title, action, severe) = match state {
        TokenState::Expiring => (
            "server token expiring",
            "Renew now: in Apple Business Manager (business.apple.com), Settings > MDM Server, \
             download a new server token for this MDM server, then upload it to GuardMDM \
             (`guardmdm abm entry upload NAME FILE.p7m`).",
            false,
        ),
        TokenState::Expired => (
            "server token expired",
            "Sync has stopped and new devices cannot enroll (enrolled devices keep working). \
             Download a new server token in Apple Business Manager, Settings > MDM Server, and \
             upload it to GuardMDM (`guardmdm abm entry upload NAME FILE.p7m`).",
            true,
        ),
        TokenState::Rejected => (
            "server token rejected by Apple",
            "Apple no longer accepts this token (revoked or replaced). Download a new server \
             token in Apple Business Manager, Settings > MDM Server, and upload it to GuardMDM.",
            true,
        ),
        TokenState::TermsNotSigned => (
            "blocked until Apple's terms are accepted",
            "An administrator of your organization must sign in to Apple Business Manager \
             (business.apple.com) and accept the new terms and conditions; then sync again.",
            true,
        ),
        TokenState::Pending | TokenState::Active => return None,
    };
    Some(Banner {
        subject: format!("ABM entry {entry}"),
        link: None,
        title,
        message: message.to_string(),
        action,
        severe,
        id: None,
    })
}

/// The banner about this instance's HTTPS certificate, when it needs an admin (the message
/// from the health rule says what to do).
pub(crate) fn tls_banner(health: Option<TlsHealth>) -> Option<Banner> {
    let health = health.filter(TlsHealth::needs_attention)?;
    let (title, severe) = match health.state {
        TlsHealthState::Expiring => ("needs attention", false),
        TlsHealthState::Expired => ("expired", true),
        TlsHealthState::Missing => ("missing", true),
        TlsHealthState::Active => return None,
    };
    Some(Banner {
        subject: "HTTPS certificate".to_string(),
        link: None,
        title,
        message: health.message,
        action: "",
        severe,
        id: Some("tls-banner"),
    })
}

/// The push certificate's banner, if it needs one. A missing certificate is shown once an
/// ABM entry exists (devices assigned to GuardMDM cannot enroll without one); before that
/// it is a set-up step, shown on its Settings page.
pub(crate) fn push_banner(health: &PushHealth, abm_entries: usize) -> Option<Banner> {
    let (title, action, severe) = match health.state {
        PushCertificateState::Active => return None,
        PushCertificateState::Missing if abm_entries == 0 => return None,
        PushCertificateState::Missing => (
            "missing",
            "Devices cannot enroll until GuardMDM has one: make a certificate request, have \
             it signed, upload it at identity.apple.com, and upload Apple's certificate here.",
            true,
        ),
        PushCertificateState::Expiring => (
            "expiring",
            "Renew it at identity.apple.com with the same Apple Account that created it (not a \
             new certificate: a new topic orphans every enrolled device), then upload it here.",
            false,
        ),
        PushCertificateState::Expired => (
            "expired",
            "APNs refuses every push. Renew it at identity.apple.com with the same Apple \
             Account that created it, then upload it here.",
            true,
        ),
    };
    Some(Banner {
        subject: "Push certificate".to_string(),
        link: Some((apns::NAV, "Settings > Push certificate")),
        title,
        message: health.message.clone(),
        action,
        severe,
        id: Some("apns-banner"),
    })
}

/// The banner on every page while devices are stuck in Setup Assistant (waiting longer than
/// `stuck_after`), with the count.
pub(crate) fn stuck_banner(count: u64, stuck_after: time::Duration) -> Option<Banner> {
    if count == 0 {
        return None;
    }
    Some(Banner {
        subject: if count == 1 {
            "1 device".to_string()
        } else {
            format!("{count} devices")
        },
        link: Some(("/enrollments?stuck=1", "See why, and release them")),
        title: "stuck in Setup Assistant",
        message: format!(
            "Waiting for DeviceConfigured longer than {}.",
            duration_words(stuck_after)
        ),
        action: "",
        severe: false,
        id: Some("stuck-banner"),
    })
}

/// A duration in words: `30 minutes`, `2 hours`, `45 seconds`, `1h 30m`.
pub(crate) fn duration_words(d: time::Duration) -> String {
    let secs = d.whole_seconds();
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        s if s % 3600 == 0 && s > 0 => plural(s / 3600, "hour"),
        s if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s if s % 60 == 0 && s > 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

/// What every signed-in page shows around its content.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub(crate) admin: String,
    pub(crate) csrf_token: String,
    pub(crate) nav: Vec<NavSection>,
    pub(crate) banners: Vec<Banner>,
    pub(crate) flash: Option<&'static str>,
    pub(crate) asset_version: &'static str,
}

impl Page {
    /// The chrome of a page whose nav entry is `current`.
    pub(crate) fn chrome(&self, current: &str) -> Chrome {
        Chrome {
            admin: self.session.admin.clone(),
            csrf_token: self.session.csrf_token.clone(),
            nav: nav(current),
            banners: self.banners.clone(),
            flash: self.flash,
            asset_version: assets::version(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_only_for_states_that_need_an_admin() {
        assert!(banner("main", TokenState::Active, "ok").is_none());
        assert!(banner("main", TokenState::Pending, "upload").is_none());
        let b = banner("main", TokenState::Expiring, "Token expires in 12 days").unwrap();
        assert!(!b.severe);
        assert!(b.action.contains("download a new server token"));
        for s in [
            TokenState::Expired,
            TokenState::Rejected,
            TokenState::TermsNotSigned,
        ] {
            assert!(banner("main", s, "m").unwrap().severe, "{s:?}");
        }
        assert!(
            banner("main", TokenState::TermsNotSigned, "m")
                .unwrap()
                .action
                .contains("accept the new terms")
        );
    }

    #[test]
    fn a_tls_banner_only_when_the_certificate_needs_an_admin() {
        let health = |state| {
            Some(TlsHealth {
                state,
                message: "m".to_string(),
            })
        };
        assert!(tls_banner(None).is_none(), "plain HTTP");
        assert!(tls_banner(health(TlsHealthState::Active)).is_none());
        assert!(!tls_banner(health(TlsHealthState::Expiring)).unwrap().severe);
        assert!(tls_banner(health(TlsHealthState::Expired)).unwrap().severe);
        assert!(tls_banner(health(TlsHealthState::Missing)).unwrap().severe);
    }

    #[test]
    fn a_stuck_banner_with_the_count_only_when_devices_are_stuck() {
        assert!(stuck_banner(0, time::Duration::minutes(30)).is_none());
        let b = stuck_banner(3, time::Duration::minutes(30)).unwrap();
        assert_eq!(
            (b.subject.as_str(), b.title, b.message.as_str()),
            (
                "3 devices",
                "stuck in Setup Assistant",
                "Waiting for DeviceConfigured longer than 30 minutes."
            )
        );
        assert_eq!(
            stuck_banner(1, time::Duration::hours(2)).unwrap().subject,
            "1 device"
        );
        assert_eq!(duration_words(time::Duration::seconds(2)), "2 seconds");
        assert_eq!(duration_words(time::Duration::minutes(90)), "1h 30m");
        assert_eq!(duration_words(time::Duration::hours(1)), "1 hour");
    }

    #[test]
    fn push_banners_for_a_certificate_that_needs_an_admin() {
        use guardmdm_service::mdm::push_certificate_health;
        let now = time::macros::datetime!(2026-12-07 12:00 UTC);
        let at = |days: i64| push_certificate_health(Some(now + time::Duration::days(days)), now);
        assert!(push_banner(&at(200), 3).is_none());
        let missing = push_certificate_health(None, now);
        assert!(
            push_banner(&missing, 0).is_none(),
            "a set-up step before ABM"
        );
        let b = push_banner(&missing, 1).unwrap();
        assert!(b.severe && b.subject == "Push certificate");
        assert_eq!(b.link.unwrap().0, "/settings/apns");
        let b = push_banner(&at(12), 0).unwrap();
        assert!(!b.severe);
        assert!(b.action.contains("same Apple Account"));
        assert!(push_banner(&at(-1), 0).unwrap().severe);
    }

    #[test]
    fn nav_marks_the_current_page() {
        let n = nav("/devices");
        assert!(n[0].items[0].current);
        assert!(!nav("/other")[0].items[0].current);
        let current = |href: &str| -> Vec<&'static str> {
            nav(href)
                .iter()
                .flat_map(|s| s.items.clone())
                .filter(|i| i.current)
                .map(|i| i.label)
                .collect()
        };
        assert_eq!(current("/os-defaults"), ["OS defaults"]);
        assert_eq!(current("/settings/abm"), ["ABM Integration"]);
        assert_eq!(current("/settings/apns"), ["Push certificate"]);
        assert_eq!(current("/enrollments"), ["Enrolled devices"]);
        assert_eq!(current("/settings/health"), ["Health"]);
    }
}

//! Settings > Push certificate (`/settings/apns`): the MDM push certificate's health (topic,
//! expiry, days left, state) and the walkthrough from request to renewal: make a certificate
//! request (`POST request`; GuardMDM keeps the key), download it (`GET request.csr`), have it
//! signed and upload it at identity.apple.com, then upload Apple's certificate
//! (`POST certificate`), matched against the request's key.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use guardmdm_service::ServiceError;
use guardmdm_service::mdm::{
    PushCertificateState, PushCertificateView, PushHealth, PushRequestView, PushUpload,
};

use super::error_page::error_page;
use super::forms::FormData;
use super::{Chrome, Page, see_other, shown, when};
use crate::AppState;

/// The nav entry and address of the page.
pub(crate) const NAV: &str = "/settings/apns";

/// The largest certificate upload: a PEM certificate is about 2 KB.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// The downloaded request's file name.
const REQUEST_FILE: &str = "GuardMDM_push.csr";

/// A state as the admin reads it.
pub(crate) fn state_label(state: PushCertificateState) -> &'static str {
    match state {
        PushCertificateState::Missing => "Missing",
        PushCertificateState::Active => "Active",
        PushCertificateState::Expiring => "Expiring soon",
        PushCertificateState::Expired => "Expired",
    }
}

/// The CSS class of a state's badge.
fn state_class(state: PushCertificateState) -> &'static str {
    match state {
        PushCertificateState::Active => "ok",
        PushCertificateState::Missing => "pending",
        PushCertificateState::Expiring => "warn",
        PushCertificateState::Expired => "bad",
    }
}

/// The installed certificate's facts as shown.
struct Installed {
    topic: String,
    expires: String,
    days_left: String,
    subject: String,
    fingerprint: String,
}

impl From<&PushCertificateView> for Installed {
    fn from(v: &PushCertificateView) -> Self {
        Self {
            topic: v.topic.clone(),
            expires: when(v.not_after),
            days_left: match v.days_left {
                d if d < 0 => format!("expired {} days ago", -d),
                1 => "1 day".to_string(),
                d => format!("{d} days"),
            },
            subject: v.subject.clone(),
            fingerprint: v.fingerprint.clone(),
        }
    }
}

/// The pending request as shown.
struct Pending {
    made: String,
    installed: bool,
    key_sha256: String,
}

impl From<&PushRequestView> for Pending {
    fn from(r: &PushRequestView) -> Self {
        Self {
            made: when(r.created_at),
            installed: r.installed,
            key_sha256: r.public_key_sha256.clone(),
        }
    }
}

/// Errors shown next to the page's forms.
#[derive(Default)]
struct Errors {
    request: Option<String>,
    certificate: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings_apns.html")]
struct ApnsPage {
    chrome: Chrome,
    state: &'static str,
    state_class: &'static str,
    message: String,
    installed: Option<Installed>,
    pending: Option<Pending>,
    errors: Errors,
    request_file: &'static str,
    max_kib: usize,
}

/// `GET /settings/apns`.
pub(crate) async fn show(State(state): State<AppState>, page: Page) -> Response {
    render(&state, &page, Errors::default(), StatusCode::OK).await
}

async fn render(state: &AppState, page: &Page, errors: Errors, status: StatusCode) -> Response {
    let mdm = &state.services.mdm;
    let (certificate, request, health) = match (
        mdm.push_certificate().await,
        mdm.push_request().await,
        mdm.push_health().await,
    ) {
        (Ok(c), Ok(r), Ok(h)) => (c, r, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return error_page(page, e),
    };
    let PushHealth {
        state: s, message, ..
    } = health;
    let view = ApnsPage {
        chrome: page.chrome(NAV),
        state: state_label(s),
        state_class: state_class(s),
        message,
        installed: certificate.as_ref().map(Installed::from),
        pending: request.as_ref().map(Pending::from),
        errors,
        request_file: REQUEST_FILE,
        max_kib: MAX_CERTIFICATE_BYTES / 1024,
    };
    (status, view).into_response()
}

/// `POST /settings/apns/request`: a new key and certificate request.
pub(crate) async fn create_request(
    State(state): State<AppState>,
    page: Page,
    req: Request,
) -> Response {
    if let Err(e) = FormData::read(req, 16 * 1024).await {
        let errors = Errors {
            request: Some(e.message),
            ..Errors::default()
        };
        return render(&state, &page, errors, e.status).await;
    }
    match state
        .services
        .mdm
        .create_push_request(&page.session.actor())
        .await
    {
        Ok(view) if view.replaced.is_some() => see_other(NAV, "apns_request_replaced"),
        Ok(_) => see_other(NAV, "apns_request_made"),
        Err(e) => {
            let (status, message) = shown(&e);
            let errors = Errors {
                request: Some(message),
                ..Errors::default()
            };
            render(&state, &page, errors, status).await
        }
    }
}

/// `GET /settings/apns/request.csr`: the pending request (PEM) to have signed.
pub(crate) async fn download_request(State(state): State<AppState>, page: Page) -> Response {
    match state.services.mdm.push_request().await {
        Ok(Some(request)) => {
            let mut r = request.csr_pem.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pkcs10"),
            );
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"GuardMDM_push.csr\""),
            );
            r
        }
        Ok(None) => error_page(
            &page,
            ServiceError::NotFound(
                "No certificate request yet: make one on Settings > Push certificate.".to_string(),
            ),
        ),
        Err(e) => error_page(&page, e),
    }
}

/// `POST /settings/apns/certificate`: Apple's certificate, as a file (multipart, sent by
/// htmx) or pasted (urlencoded, works without JavaScript), matched against the request's key.
pub(crate) async fn upload_certificate(
    State(state): State<AppState>,
    page: Page,
    req: Request,
) -> Response {
    let fail = |message: String| Errors {
        certificate: Some(message),
        ..Errors::default()
    };
    let form = match FormData::read(req, MAX_CERTIFICATE_BYTES + 16 * 1024).await {
        Ok(f) => f,
        Err(e) => return render(&state, &page, fail(e.message), e.status).await,
    };
    let certificate = match (form.file("certificate_file"), form.raw("certificate_text")) {
        (Some(file), _) => file.to_vec(),
        (None, Some(text)) => text.as_bytes().to_vec(),
        (None, None) => {
            let message = "Choose the certificate file Apple's push certificate portal \
                           downloaded (a .pem file), or paste its contents."
                .to_string();
            return render(&state, &page, fail(message), StatusCode::BAD_REQUEST).await;
        }
    };
    let force = form.checked("force");
    match state
        .services
        .mdm
        .upload_push_certificate(
            &page.session.actor(),
            PushUpload::Certificate { certificate },
            force,
        )
        .await
    {
        Ok(_) => see_other(NAV, "apns_uploaded"),
        Err(e) => {
            let (status, message) = shown(&e);
            render(&state, &page, fail(message), status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_reads_differently_and_only_a_working_certificate_is_green() {
        let all = [
            PushCertificateState::Missing,
            PushCertificateState::Active,
            PushCertificateState::Expiring,
            PushCertificateState::Expired,
        ];
        let labels: std::collections::HashSet<_> = all.iter().map(|&s| state_label(s)).collect();
        assert_eq!(labels.len(), all.len(), "two states share a label");
        for s in all {
            assert_eq!(
                state_class(s) == "ok",
                s == PushCertificateState::Active,
                "{s:?}"
            );
        }
        assert_eq!(state_class(PushCertificateState::Expired), "bad");
        assert_eq!(state_class(PushCertificateState::Expiring), "warn");
    }
}

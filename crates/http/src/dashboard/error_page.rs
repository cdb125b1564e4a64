//! The error page every dashboard page falls back to, shared by all of them.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use guardmdm_service::ServiceError;

use super::{Chrome, Page};

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: &'static str,
    message: String,
}

/// The page for a service error on a page that has nothing else to show.
pub(crate) fn error_page(page: &Page, err: ServiceError) -> Response {
    // A bad link or filter is a 400 here; everything else as forms show it.
    let (status, message) = match err {
        ServiceError::Invalid(m) => (StatusCode::BAD_REQUEST, m),
        other => super::shown(&other),
    };
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "Not a valid request",
        StatusCode::CONFLICT => "Not done",
        StatusCode::FORBIDDEN => "Not allowed",
        _ => "Something went wrong",
    };
    (
        status,
        ErrorPage {
            chrome: page.chrome(""),
            heading,
            message,
        },
    )
        .into_response()
}

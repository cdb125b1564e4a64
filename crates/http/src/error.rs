//! The one error type of the HTTP boundary: each failure maps to a status code in one `match`,
//! and the body is `{"error": "<code>", "message": "<what is wrong>"}`.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use guardmdm_service::ServiceError;

/// An error answered to an API client.
#[derive(Debug)]
pub enum ApiError {
    /// From a service.
    Service(ServiceError),
    /// The request itself is malformed (body, query, headers).
    BadRequest(String),
    /// The body exceeds the route's limit (bytes).
    PayloadTooLarge(usize),
    /// No such route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        Self::Service(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::Service(err) => match err {
                ServiceError::Invalid(m) => (StatusCode::BAD_REQUEST, "invalid_request", m),
                ServiceError::Validation { message, errors } => {
                    return (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        Json(serde_json::json!({
                            "error": "validation_failed",
                            "message": message,
                            "errors": errors,
                        })),
                    )
                        .into_response();
                }
                ServiceError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
                ServiceError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
                e @ ServiceError::BadToken(_) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_token_file",
                    e.to_string(),
                ),
                ServiceError::TokenRejected(m) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "token_rejected", m)
                }
                e @ ServiceError::TokenExpired { .. } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "token_expired",
                    e.to_string(),
                ),
                ServiceError::Unauthorized(m) => {
                    return unauthorized(&m);
                }
                ServiceError::Internal(detail) => {
                    tracing::error!(error = %detail, "internal error");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal error: see the server log (x-request-id in this response)"
                            .to_string(),
                    )
                }
            },
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "invalid_request", m),
            Self::PayloadTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the request body is larger than this endpoint's limit of {} KiB",
                    limit / 1024
                ),
            ),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route".to_string(),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method".to_string(),
            ),
        };
        body(status, code, &message)
    }
}

fn body(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": code, "message": message })),
    )
        .into_response()
}

/// 401 with the JSON error and a `WWW-Authenticate` challenge.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = body(StatusCode::UNAUTHORIZED, "unauthorized", message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"guardmdm\""),
    );
    response
}

pub(crate) async fn api_not_found() -> ApiError {
    ApiError::NotFound
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error: see the server log",
    )
}

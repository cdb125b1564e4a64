//! `/api/v1/openapi.json`: the OpenAPI 3.1 description of the admin API.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, kept beside the routes it describes.
pub(crate) const DOCUMENT: &str = include_str!("../openapi.json");

pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

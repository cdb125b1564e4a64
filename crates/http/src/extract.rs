//! Extractors whose rejections are [`ApiError`]s (JSON bodies), not axum's plain text.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON body; malformed JSON, unknown fields and wrong types are 400 with the reason.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::BytesRejection(e)) => Err(bytes_rejection(&e)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// A query string; malformed ones are 400 with the reason.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|e: QueryRejection| ApiError::BadRequest(e.body_text()))
    }
}

/// A raw body up to `LIMIT` bytes; larger ones are 413 naming the limit.
pub(crate) struct LimitedBytes<const LIMIT: usize>(pub(crate) Bytes);

impl<S, const LIMIT: usize> FromRequest<S> for LimitedBytes<LIMIT>
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::to_bytes(req.into_body(), LIMIT).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(e) => {
                let source = e.into_inner();
                if source
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Err(ApiError::PayloadTooLarge(LIMIT))
                } else {
                    Err(ApiError::BadRequest(format!(
                        "could not read the request body: {source}"
                    )))
                }
            }
        }
    }
}

fn bytes_rejection(e: &BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(crate::MAX_JSON_BODY_BYTES)
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

//! Bearer-token authentication for every `/api/v1` route.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use guardmdm_service::Actor;

use crate::error::unauthorized;
use crate::{ApiError, AppState};

/// Authenticates the request and stores the [`Actor`] for the handler; 401 otherwise.
pub(crate) async fn require_admin(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return unauthorized("missing Authorization header: send `Authorization: Bearer <token>`");
    };
    let Some(token) = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .filter(|t| !t.trim().is_empty())
    else {
        return unauthorized("the Authorization header must be `Bearer <token>`");
    };
    match state.services.auth.authenticate(token).await {
        Ok(actor) => {
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// The authenticated caller, set by [`require_admin`].
pub(crate) struct Caller(pub(crate) Actor);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .map(Self)
            .ok_or_else(|| unauthorized("not authenticated"))
    }
}

//! Route handlers, one module per resource.

pub(crate) mod abm;
pub(crate) mod api_tokens;
pub(crate) mod audit;
pub(crate) mod health;
pub(crate) mod openapi;
pub(crate) mod sync;

use axum::Router;
use axum::routing::{get, put};

use crate::AppState;

/// Every authenticated `/api/v1` route. Keep `openapi.json` in step: a test sends each
/// documented operation and checks that it is routed.
pub(crate) fn api_router() -> Router<AppState> {
    Router::new()
        .route("/abm/tokens", get(abm::list).post(abm::create))
        .route(
            "/abm/tokens/{name}",
            get(abm::show).patch(abm::update).delete(abm::delete),
        )
        .route("/abm/tokens/{name}/public-key", get(abm::public_key))
        .route(
            "/abm/tokens/{name}/server-token",
            put(abm::upload_server_token),
        )
        .route(
            "/api-tokens",
            get(api_tokens::list).post(api_tokens::create),
        )
        .route(
            "/api-tokens/{name}",
            axum::routing::delete(api_tokens::revoke),
        )
        .route(
            "/abm/tokens/{name}/syncs",
            get(sync::list).post(sync::start),
        )
        .route("/abm/tokens/{name}/syncs/{id}", get(sync::show))
        .route("/devices", get(sync::devices))
        .route("/audit", get(audit::list))
}

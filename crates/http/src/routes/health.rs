//! `/healthz` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let database = state.services.store.backend_name();
    match state.services.store.ping().await {
        Ok(()) => Json(serde_json::json!({
            "status": "ok",
            "database": database,
            "version": env!("CARGO_PKG_VERSION"),
        }))
        .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "status": "unavailable",
                    "database": database,
                    "message": "the database does not answer",
                })),
            )
                .into_response()
        }
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let entries = state.services.abm_entries.list().await?;
    let push = state.services.mdm.push_certificate().await?;
    let tls = state.services.tls.snapshot().certificate;
    let stuck = state.services.mdm.count_stuck().await?;
    let text = crate::metrics::render(&state.metrics, &entries, push.as_ref(), tls.as_ref(), stuck)
        .map_err(|e| ApiError::Service(guardmdm_service::ServiceError::Internal(e.to_string())))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

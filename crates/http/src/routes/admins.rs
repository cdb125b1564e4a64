//! `/api/v1/admins`: dashboard accounts (`guardmdm admins …`). Passwords go in, never out.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use guardmdm_service::AdminView;
use secrecy::SecretString;
use serde::Deserialize;

use crate::auth::Caller;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    password: String,
}

pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<AdminView>>, ApiError> {
    Ok(Json(state.services.admins.list().await?))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<AdminView>), ApiError> {
    let admin = state
        .services
        .admins
        .create(&actor, &body.name, SecretString::from(body.password))
        .await?;
    Ok((StatusCode::CREATED, Json(admin)))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<Json<AdminView>, ApiError> {
    Ok(Json(state.services.admins.delete(&actor, &name).await?))
}

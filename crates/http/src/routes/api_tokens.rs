//! `/api/v1/api-tokens`: named API tokens. The token itself is returned once, at creation.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use guardmdm_service::ApiKeyView;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
}

#[derive(Serialize)]
pub(crate) struct Created {
    #[serde(flatten)]
    key: ApiKeyView,
    /// Shown once; GuardMDM keeps only its hash.
    token: String,
}

pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    Ok(Json(state.services.auth.list_api_keys().await?))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let created = state
        .services
        .auth
        .create_api_key(&actor, &body.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            key: created.key,
            token: created.token.expose_secret().to_string(),
        }),
    ))
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<Json<ApiKeyView>, ApiError> {
    Ok(Json(
        state.services.auth.revoke_api_key(&actor, &name).await?,
    ))
}

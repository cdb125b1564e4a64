//! `/api/v1/abm/entries` (also `/abm/tokens`): ABM entries ("MDM servers") and their server tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use guardmdm_service::abm_entries::MAX_TOKEN_FILE_BYTES;
use guardmdm_service::{AbmEntryView, EntrySettings, NewEntry};
use serde::{Deserialize, Deserializer};

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery, LimitedBytes};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    batch_size: Option<u32>,
    abm_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    batch_size: Option<u32>,
    /// Absent: unchanged; `null`: back to the server default; a string: set.
    #[serde(default, deserialize_with = "present")]
    abm_url: Option<Option<String>>,
}

/// Deserializes a field that is present (possibly `null`) as `Some(..)`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadQuery {
    #[serde(default)]
    force: bool,
}

pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<AbmEntryView>>, ApiError> {
    Ok(Json(state.services.abm_entries.list().await?))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<AbmEntryView>), ApiError> {
    let new = NewEntry {
        name: body.name,
        batch_size: body.batch_size,
        abm_url: body.abm_url,
    };
    let view = state.services.abm_entries.create(&actor, new).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<AbmEntryView>, ApiError> {
    Ok(Json(state.services.abm_entries.get(&name).await?))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<AbmEntryView>, ApiError> {
    let settings = EntrySettings {
        batch_size: body.batch_size,
        abm_url: body.abm_url,
    };
    Ok(Json(
        state
            .services
            .abm_entries
            .update_settings(&actor, &name, settings)
            .await?,
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.abm_entries.delete(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn public_key(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let pem = state.services.abm_entries.public_key(&name).await?;
    let disposition = format!("attachment; filename=\"GuardMDM_{name}.pem\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        pem,
    ))
}

pub(crate) async fn upload_server_token(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<UploadQuery>,
    LimitedBytes(file): LimitedBytes<MAX_TOKEN_FILE_BYTES>,
) -> Result<Json<AbmEntryView>, ApiError> {
    let view = state
        .services
        .abm_entries
        .upload_server_token(&actor, &name, &file, query.force)
        .await?;
    Ok(Json(view))
}

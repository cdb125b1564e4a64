//! `/api/v1/groups`: device groups, static and smart, and their members.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use guardmdm_service::groups::{GroupChange, GroupView, NewGroup};
use guardmdm_service::serial_list::CsvReport;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::extract::{ApiJson, ApiQuery, LimitedBytes};
use crate::routes::profiles::{DryRunQuery, MAX_SERIALS_BODY_BYTES, serials_from};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MembersQuery {
    after: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveBody {
    serials: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct Removed {
    removed: u64,
}

pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<GroupView>>, ApiError> {
    Ok(Json(state.services.groups.list().await?))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(actor): Caller,
    ApiJson(body): ApiJson<NewGroup>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    let view = state.services.groups.create(&actor, body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(state.services.groups.get(&name).await?))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<GroupChange>,
) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(
        state.services.groups.update(&actor, &name, body).await?,
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.services.groups.delete(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn members(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<MembersQuery>,
) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(
        state
            .services
            .groups
            .members(&name, query.after.as_deref(), query.limit.unwrap_or(100))
            .await?,
    ))
}

pub(crate) async fn add(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<DryRunQuery>,
    headers: HeaderMap,
    LimitedBytes(body): LimitedBytes<MAX_SERIALS_BODY_BYTES>,
) -> Result<Json<CsvReport>, ApiError> {
    let input = serials_from(&headers, &body)?;
    Ok(Json(
        state
            .services
            .groups
            .add(&actor, &name, input, query.dry_run)
            .await?,
    ))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<RemoveBody>,
) -> Result<Json<Removed>, ApiError> {
    let removed = state
        .services
        .groups
        .remove(&actor, &name, &body.serials)
        .await?;
    Ok(Json(Removed { removed }))
}

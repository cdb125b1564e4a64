//! `/api/v1/abm/entries/{name}/syncs`: Sync Now, full resync, runs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use guardmdm_service::dep_sync::SyncRun;
use guardmdm_service::{SyncRunId, SyncStart};
use serde::Deserialize;

use crate::auth::Caller;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartQuery {
    /// Reset the cursor and fetch everything again, reconciling removals.
    #[serde(default)]
    full: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    limit: Option<u32>,
}

/// Sync Now: 202 with the new run, or 200 with the run already going.
pub(crate) async fn start(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<StartQuery>,
) -> Result<(StatusCode, Json<SyncStart>), ApiError> {
    let start = state
        .services
        .sync
        .sync_now(&actor, &name, query.full)
        .await?;
    let status = if start.started {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(start)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<RunsQuery>,
) -> Result<Json<Vec<SyncRun>>, ApiError> {
    Ok(Json(
        state
            .services
            .sync
            .runs(&name, query.limit.unwrap_or(20))
            .await?,
    ))
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, SyncRunId)>,
) -> Result<Json<SyncRun>, ApiError> {
    Ok(Json(state.services.sync.run(&name, id).await?))
}

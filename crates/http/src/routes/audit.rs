//! `/api/v1/audit`: the audit log, newest first, paged with `before`.

use axum::Json;
use axum::extract::State;
use guardmdm_service::audit::AuditEvent;
use serde::Deserialize;

use crate::extract::ApiQuery;
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<AuditEvent>>, ApiError> {
    let events = state
        .services
        .audit
        .list(query.limit.unwrap_or(100), query.before)
        .await?;
    Ok(Json(events))
}

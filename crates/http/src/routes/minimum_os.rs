//! `/api/v1/minimum-os`: the global minimum OS at enrollment, per OS (`docs/protocol.md` §6.5).

use axum::Json;
use axum::extract::{Path, State};
use guardmdm_service::ServiceError;
use guardmdm_service::minimum_os::MinimumOsView;
use guardmdm_service::os::OsKey;
use serde::Deserialize;

use crate::auth::Caller;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MinimumBody {
    /// A version (`17.5`), `latest`, or `null` to clear.
    minimum: Option<String>,
}

/// `GET /minimum-os`.
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<MinimumOsView>>, ApiError> {
    Ok(Json(state.services.minimum_os.list().await?))
}

/// `PUT /minimum-os/{os}`.
pub(crate) async fn set(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(os): Path<String>,
    ApiJson(body): ApiJson<MinimumBody>,
) -> Result<Json<Vec<MinimumOsView>>, ApiError> {
    let os = OsKey::parse(&os).map_err(ServiceError::from)?;
    Ok(Json(
        state
            .services
            .minimum_os
            .set(&actor, os, body.minimum.as_deref())
            .await?,
    ))
}

//! `/api/v1/doctor`: every check of the deployment, each finding with what to do.

use axum::Json;
use axum::extract::State;
use guardmdm_service::doctor::DoctorReport;

use crate::AppState;

pub(crate) async fn run(State(state): State<AppState>) -> Json<DoctorReport> {
    Json(guardmdm_service::doctor::run(&state.services).await)
}

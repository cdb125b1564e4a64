//! Settings > Health (`/settings/health`): the doctor's findings, the same as
//! `guardmdm doctor` and `GET /api/v1/doctor` show, each with what to do. The checks run
//! when the page is loaded.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use guardmdm_service::doctor::{Finding, Status};

use super::{Chrome, Page, when};
use crate::AppState;

/// A finding as the page shows it.
pub(crate) struct Row {
    check: String,
    status: &'static str,
    status_class: &'static str,
    summary: String,
    fix: Option<String>,
}

impl From<Finding> for Row {
    fn from(f: Finding) -> Self {
        let (status, status_class) = match f.status {
            Status::Ok => ("ok", "ok"),
            Status::Warning => ("warning", "warn"),
            Status::Blocking => ("blocking", "bad"),
        };
        Self {
            check: f.check,
            status,
            status_class,
            summary: f.summary,
            fix: f.fix,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "settings_health.html")]
pub(crate) struct HealthPage {
    chrome: Chrome,
    checked_at: String,
    blocking: usize,
    warnings: usize,
    rows: Vec<Row>,
}

pub(crate) async fn show(State(state): State<AppState>, page: Page) -> HealthPage {
    let report = guardmdm_service::doctor::run(&state.services).await;
    HealthPage {
        chrome: page.chrome("/settings/health"),
        checked_at: when(report.checked_at),
        blocking: report.blocking,
        warnings: report.warnings,
        rows: report.findings.into_iter().map(Row::from).collect(),
    }
}

//! Devices > OS defaults (`/os-defaults`): the profile each OS's devices get when no
//! explicit assignment or group gives them one, and the minimum OS a device must run to
//! enroll (`docs/protocol.md` §6.5); each row is saved on its own.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use guardmdm_service::ServiceError;
use guardmdm_service::os::OsKey;

use super::error_page::error_page;
use super::forms::FormData;
use super::see_other;
use super::{Chrome, Page};
use crate::AppState;

pub(crate) struct Choice {
    value: String,
    selected: bool,
}

pub(crate) struct Row {
    key: &'static str,
    label: &'static str,
    current: Option<String>,
    note: String,
    choices: Vec<Choice>,
}

/// One OS's minimum at enrollment, with the error of a refused save.
pub(crate) struct MinimumRow {
    key: &'static str,
    label: String,
    value: String,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "os_defaults.html")]
struct OsDefaultsPage {
    chrome: Chrome,
    rows: Vec<Row>,
    no_profiles: bool,
    minimums: Vec<MinimumRow>,
}

pub(crate) async fn show(State(state): State<AppState>, page: Page) -> Response {
    render(&state, &page, None).await
}

/// The page; `refused` is a minimum that was not saved: its OS, what was typed and why.
async fn render(
    state: &AppState,
    page: &Page,
    refused: Option<(OsKey, String, String)>,
) -> Response {
    let (defaults, profiles, minimums) = match (
        state.services.profiles.defaults().await,
        state.services.profiles.list().await,
        state.services.minimum_os.list().await,
    ) {
        (Ok(d), Ok(p), Ok(m)) => (d, p, m),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return error_page(page, e),
    };
    let rows = defaults
        .into_iter()
        .map(|d| {
            let note = match (d.os, &d.profile, &d.falls_back_to) {
                (_, Some(_), _) => String::new(),
                (_, None, Some(ios)) => {
                    format!("No iPadOS default: iPads use the iOS default, {ios}.")
                }
                (OsKey::Ipados, None, None) => {
                    "No iPadOS default: iPads use the iOS default, which is not set either."
                        .to_string()
                }
                (os, None, None) => format!(
                    "No default: {} devices without an explicit profile or group stay unassigned.",
                    os.label()
                ),
            };
            Row {
                key: d.os.as_str(),
                label: d.os.label(),
                choices: profiles
                    .iter()
                    .map(|p| Choice {
                        value: p.name.clone(),
                        selected: d.profile.as_deref() == Some(p.name.as_str()),
                    })
                    .collect(),
                current: d.profile,
                note,
            }
        })
        .collect();
    let minimums = minimums
        .into_iter()
        .map(|m| {
            let refused = refused.as_ref().filter(|(os, _, _)| *os == m.os);
            MinimumRow {
                key: m.os.as_str(),
                label: m.label,
                value: refused.map_or_else(|| m.minimum.unwrap_or_default(), |r| r.1.clone()),
                error: refused.map(|r| r.2.clone()),
            }
        })
        .collect();
    let status = if refused.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let view = OsDefaultsPage {
        chrome: page.chrome("/os-defaults"),
        rows,
        no_profiles: profiles.is_empty(),
        minimums,
    };
    (status, view).into_response()
}

pub(crate) async fn save(
    State(state): State<AppState>,
    page: Page,
    Path(os): Path<String>,
    form: FormData,
) -> Response {
    let os = match OsKey::parse(&os) {
        Ok(os) => os,
        Err(e) => return error_page(&page, e.into()),
    };
    let profile = form.opt("profile");
    match state
        .services
        .profiles
        .set_default(&page.session.actor(), os, profile.as_deref())
        .await
    {
        Ok(_) => see_other("/os-defaults", "default_saved"),
        Err(e) => error_page(&page, e),
    }
}

/// Saves one OS's minimum at enrollment (empty clears it); a refused value is shown again
/// next to its input with the reason.
pub(crate) async fn save_minimum(
    State(state): State<AppState>,
    page: Page,
    Path(os): Path<String>,
    form: FormData,
) -> Response {
    let os = match OsKey::parse(&os) {
        Ok(os) => os,
        Err(e) => return error_page(&page, e.into()),
    };
    let minimum = form.get("minimum").trim().to_string();
    match state
        .services
        .minimum_os
        .set(&page.session.actor(), os, Some(&minimum))
        .await
    {
        Ok(_) => see_other("/os-defaults", "minimum_saved"),
        Err(ServiceError::Invalid(why)) => render(&state, &page, Some((os, minimum, why))).await,
        Err(e) => error_page(&page, e),
    }
}

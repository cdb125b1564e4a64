//! Devices > OS defaults (`/os-defaults`): the profile each OS's devices get when no
//! explicit assignment or group gives them one; each row is saved on its own.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
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

#[derive(Template, WebTemplate)]
#[template(path = "os_defaults.html")]
struct OsDefaultsPage {
    chrome: Chrome,
    rows: Vec<Row>,
    no_profiles: bool,
}

pub(crate) async fn show(State(state): State<AppState>, page: Page) -> Response {
    let (defaults, profiles) = match (
        state.services.profiles.defaults().await,
        state.services.profiles.list().await,
    ) {
        (Ok(d), Ok(p)) => (d, p),
        (Err(e), _) | (_, Err(e)) => return error_page(&page, e),
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
    OsDefaultsPage {
        chrome: page.chrome("/os-defaults"),
        rows,
        no_profiles: profiles.is_empty(),
    }
    .into_response()
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

//! ADE profiles: the list (`/profiles`), a profile (`/profiles/{name}`, with device-level
//! assignment), the form and the YAML/JSON editor for creating and editing, the version
//! history and deletion.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use guardmdm_service::ServiceError;
use guardmdm_service::os::OsKey;
use guardmdm_service::profile_spec::{FieldError, ProfileSpec};
use guardmdm_service::profiles::{DefinitionView, ProfileView};

use super::error_page::error_page;
use super::forms::{self, BulkForm, FormData, ReportView};
use super::profile_form::{ProfileFormView, ProfileValues, errors_of};
use super::{Chrome, Page, see_other, when};
use crate::AppState;

const NAV: &str = "/profiles";

fn os_labels(keys: &[OsKey]) -> Vec<&'static str> {
    keys.iter().copied().map(OsKey::label).collect()
}

pub(crate) struct UuidView {
    entry: String,
    version: i64,
    uuid: String,
    at: String,
    current: bool,
}

fn uuids(defs: &[DefinitionView]) -> Vec<UuidView> {
    defs.iter()
        .map(|d| UuidView {
            entry: d.abm_entry.clone(),
            version: d.version,
            uuid: d.profile_uuid.clone(),
            at: when(d.defined_at),
            current: d.current,
        })
        .collect()
}

pub(crate) struct ListRow {
    name: String,
    apple_name: String,
    version: i64,
    os_defaults: String,
    groups: Vec<String>,
    devices: u64,
    uuids: Vec<UuidView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "profiles.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<ListRow>,
}

pub(crate) async fn list(State(state): State<AppState>, page: Page) -> Response {
    let profiles = match state.services.profiles.list().await {
        Ok(p) => p,
        Err(e) => return error_page(&page, e),
    };
    let rows = profiles
        .into_iter()
        .map(|p| ListRow {
            apple_name: p.apple.profile_name.clone(),
            os_defaults: os_labels(&p.used_by.os_defaults).join(", "),
            groups: p.used_by.groups.clone(),
            devices: p.used_by.devices,
            uuids: uuids(&p.definitions)
                .into_iter()
                .filter(|u| u.current)
                .collect(),
            version: p.version,
            name: p.name,
        })
        .collect();
    ListPage {
        chrome: page.chrome(NAV),
        rows,
    }
    .into_response()
}

#[derive(Template, WebTemplate)]
#[template(path = "profile.html")]
struct ShowPage {
    chrome: Chrome,
    p: ProfileView,
    enrollment_type: &'static str,
    os_defaults: Vec<&'static str>,
    apple_json: String,
    uuids: Vec<UuidView>,
    bulk: BulkForm,
}

impl ShowPage {
    fn new(page: &Page, p: ProfileView, action: &str) -> Self {
        let bulk = BulkForm::new(
            format!("/profiles/{}/assign", p.name),
            "Assign to devices".to_string(),
        )
        .with_actions(
            vec![
                ("assign", format!("Assign {} to these devices (explicit, device-level)", p.name)),
                (
                    "unassign",
                    "Clear these devices' explicit profile (they fall back to their groups and OS default)"
                        .to_string(),
                ),
            ],
            action,
        );
        Self {
            bulk,
            chrome: page.chrome(NAV),
            enrollment_type: match p.enrollment_type.as_str() {
                "automated" => "Automated (cannot be skipped)",
                _ => "User-initiated (can be skipped)",
            },
            os_defaults: os_labels(&p.used_by.os_defaults),
            apple_json: serde_json::to_string_pretty(&p.apple).unwrap_or_default(),
            uuids: uuids(&p.definitions),
            p,
        }
    }
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    match state.services.profiles.get(&name).await {
        Ok(p) => ShowPage::new(&page, p, "").into_response(),
        Err(e) => error_page(&page, e),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "profile_form.html")]
struct FormPage {
    chrome: Chrome,
    heading: String,
    action: String,
    cancel: String,
    yaml_href: String,
    editing: bool,
    expected_version: i64,
    error: Option<String>,
    form: ProfileFormView,
}

fn form_page(
    page: &Page,
    name: Option<&str>,
    expected_version: i64,
    values: &ProfileValues,
    errors: &[FieldError],
    error: Option<String>,
) -> FormPage {
    let (heading, action, cancel, yaml_href) = match name {
        Some(n) => (
            format!("Edit profile {n}"),
            format!("/profiles/{n}/edit"),
            format!("/profiles/{n}"),
            format!("/profiles/{n}/yaml"),
        ),
        None => (
            "New ADE profile".to_string(),
            "/profiles/new".to_string(),
            "/profiles".to_string(),
            "/profiles/new/yaml".to_string(),
        ),
    };
    FormPage {
        chrome: page.chrome(NAV),
        heading,
        action,
        cancel,
        yaml_href,
        editing: name.is_some(),
        expected_version,
        error,
        form: ProfileFormView::new(values, errors, name.is_some()),
    }
}

pub(crate) async fn new_form(page: Page) -> Response {
    form_page(&page, None, 0, &ProfileValues::empty(), &[], None).into_response()
}

/// The answer to a failed save: the form again with the errors (and the admin's input).
fn refused_form(
    page: &Page,
    name: Option<&str>,
    expected_version: i64,
    values: &ProfileValues,
    err: ServiceError,
) -> Response {
    if let Some(errors) = errors_of(&err) {
        let summary = Some(format!(
            "The profile was not saved: {} problem{} to fix.",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        ));
        let view = form_page(page, name, expected_version, values, &errors, summary);
        return (StatusCode::UNPROCESSABLE_ENTITY, view).into_response();
    }
    let status = match &err {
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => return error_page(page, err),
    };
    let view = form_page(
        page,
        name,
        expected_version,
        values,
        &[],
        Some(err.to_string()),
    );
    (status, view).into_response()
}

/// Parses the form; when part of it cannot be read, checks the rest too so every error
/// shows at once.
fn spec_or_errors(state: &AppState, values: &ProfileValues) -> Result<ProfileSpec, ServiceError> {
    let (spec, mut errors) = values.to_spec();
    if errors.is_empty() {
        return Ok(spec);
    }
    if let Err(ServiceError::Validation { errors: more, .. }) =
        state.services.profiles.check_spec(&spec)
    {
        errors.extend(more);
    }
    Err(ServiceError::validation(errors))
}

pub(crate) async fn create(State(state): State<AppState>, page: Page, form: FormData) -> Response {
    let values = ProfileValues::from_form(&form);
    let result = match spec_or_errors(&state, &values) {
        Ok(spec) => {
            state
                .services
                .profiles
                .create(&page.session.actor(), spec)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(p) => see_other(&format!("/profiles/{}", p.name), "profile_created"),
        Err(e) => refused_form(&page, None, 0, &values, e),
    }
}

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    match state.services.profiles.get(&name).await {
        Ok(p) => form_page(
            &page,
            Some(&p.name),
            p.version,
            &ProfileValues::from_spec(&p.spec),
            &[],
            None,
        )
        .into_response(),
        Err(e) => error_page(&page, e),
    }
}

fn expected_version(form: &FormData) -> Option<i64> {
    form.get("expected_version").trim().parse().ok()
}

pub(crate) async fn update(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let values = ProfileValues::from_form(&form);
    let expected = expected_version(&form);
    let result = match spec_or_errors(&state, &values) {
        Ok(spec) => {
            state
                .services
                .profiles
                .update(&page.session.actor(), &name, spec, expected)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(w) => see_other(
            &format!("/profiles/{name}"),
            if w.changed {
                "profile_saved"
            } else {
                "profile_unchanged"
            },
        ),
        Err(e) => refused_form(&page, Some(&name), expected.unwrap_or(0), &values, e),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "profile_yaml.html")]
struct YamlPage {
    chrome: Chrome,
    heading: String,
    action: String,
    cancel: String,
    form_href: String,
    editing: bool,
    expected_version: i64,
    text: String,
    error: Option<String>,
    errors: Vec<String>,
}

fn yaml_page(
    page: &Page,
    name: Option<&str>,
    expected_version: i64,
    text: String,
    error: Option<String>,
    errors: Vec<String>,
) -> YamlPage {
    let (heading, action, cancel, form_href) = match name {
        Some(n) => (
            format!("Edit profile {n} as YAML or JSON"),
            format!("/profiles/{n}/yaml"),
            format!("/profiles/{n}"),
            format!("/profiles/{n}/edit"),
        ),
        None => (
            "New ADE profile from YAML or JSON".to_string(),
            "/profiles/new/yaml".to_string(),
            "/profiles".to_string(),
            "/profiles/new".to_string(),
        ),
    };
    YamlPage {
        chrome: page.chrome(NAV),
        heading,
        action,
        cancel,
        form_href,
        editing: name.is_some(),
        expected_version,
        text,
        error,
        errors,
    }
}

const YAML_EXAMPLE: &str = "name: corp-iphone\nprofile_name: Corporate iPhones\nenrollment_type: automated\ndepartment: IT\nsupport_phone_number: \"+1 555 0100\"\nskip_setup_items: [AppleID, Siri, Diagnostics]\n";

pub(crate) async fn new_yaml(page: Page) -> Response {
    yaml_page(&page, None, 0, YAML_EXAMPLE.to_string(), None, vec![]).into_response()
}

pub(crate) async fn edit_yaml(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    let p = match state.services.profiles.get(&name).await {
        Ok(p) => p,
        Err(e) => return error_page(&page, e),
    };
    match p.spec.to_yaml() {
        Ok(text) => yaml_page(&page, Some(&p.name), p.version, text, None, vec![]).into_response(),
        Err(e) => error_page(&page, ServiceError::Internal(e)),
    }
}

fn refused_yaml(
    page: &Page,
    name: Option<&str>,
    expected_version: i64,
    text: String,
    err: ServiceError,
) -> Response {
    let (status, errors) = match &err {
        ServiceError::Validation { errors, .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            errors.iter().map(ToString::to_string).collect(),
        ),
        ServiceError::Conflict(_) => (StatusCode::CONFLICT, vec![]),
        ServiceError::Invalid(_) => (StatusCode::BAD_REQUEST, vec![]),
        ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, vec![]),
        _ => return error_page(page, err),
    };
    let message = format!("The profile was not saved: {err}");
    let view = yaml_page(page, name, expected_version, text, Some(message), errors);
    (status, view).into_response()
}

pub(crate) async fn create_yaml(
    State(state): State<AppState>,
    page: Page,
    form: FormData,
) -> Response {
    let text = form.get("spec").to_string();
    let result = match ProfileSpec::parse(text.as_bytes(), None) {
        Ok(spec) => {
            state
                .services
                .profiles
                .create(&page.session.actor(), spec)
                .await
        }
        Err(e) => Err(ServiceError::Invalid(e.to_string())),
    };
    match result {
        Ok(p) => see_other(&format!("/profiles/{}", p.name), "profile_created"),
        Err(e) => refused_yaml(&page, None, 0, text, e),
    }
}

pub(crate) async fn update_yaml(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let text = form.get("spec").to_string();
    let expected = expected_version(&form);
    let result = match ProfileSpec::parse(text.as_bytes(), None) {
        Ok(spec) => {
            state
                .services
                .profiles
                .update(&page.session.actor(), &name, spec, expected)
                .await
        }
        Err(e) => Err(ServiceError::Invalid(e.to_string())),
    };
    match result {
        Ok(w) => see_other(
            &format!("/profiles/{name}"),
            if w.changed {
                "profile_saved"
            } else {
                "profile_unchanged"
            },
        ),
        Err(e) => refused_yaml(&page, Some(&name), expected.unwrap_or(0), text, e),
    }
}

pub(crate) struct VersionRow {
    version: i64,
    created_by: String,
    at: String,
    spec: String,
    uuids: Vec<UuidView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "profile_versions.html")]
struct VersionsPage {
    chrome: Chrome,
    name: String,
    versions: Vec<VersionRow>,
}

pub(crate) async fn versions(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    let versions = match state.services.profiles.versions(&name).await {
        Ok(v) => v,
        Err(e) => return error_page(&page, e),
    };
    let versions = versions
        .into_iter()
        .map(|v| VersionRow {
            spec: serde_json::from_value::<ProfileSpec>(v.spec.clone())
                .ok()
                .and_then(|s| s.to_yaml().ok())
                .unwrap_or_else(|| serde_json::to_string_pretty(&v.spec).unwrap_or_default()),
            uuids: uuids(&v.definitions),
            version: v.version,
            created_by: v.created_by,
            at: when(v.created_at),
        })
        .collect();
    VersionsPage {
        chrome: page.chrome(NAV),
        name,
        versions,
    }
    .into_response()
}

#[derive(Template, WebTemplate)]
#[template(path = "confirm.html")]
pub(super) struct ConfirmPage {
    pub(super) chrome: Chrome,
    pub(super) heading: String,
    pub(super) message: String,
    pub(super) action: String,
    pub(super) button: String,
    pub(super) cancel: String,
    pub(super) error: Option<String>,
}

pub(crate) async fn confirm_delete(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    let p = match state.services.profiles.get(&name).await {
        Ok(p) => p,
        Err(e) => return error_page(&page, e),
    };
    let message = if p.used_by.is_empty() {
        format!(
            "Delete ADE profile {name} and its {} version{}? Nothing uses it. This cannot be undone.",
            p.version,
            if p.version == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "Profile {name} is in use, so it cannot be deleted yet: assign another profile to its OS defaults, groups and devices first."
        )
    };
    ConfirmPage {
        chrome: page.chrome(NAV),
        heading: format!("Delete profile {name}"),
        message,
        action: format!("/profiles/{name}/delete"),
        button: format!("Delete {name}"),
        cancel: format!("/profiles/{name}"),
        error: None,
    }
    .into_response()
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    match state
        .services
        .profiles
        .delete(&page.session.actor(), &name)
        .await
    {
        Ok(()) => see_other("/profiles", "profile_deleted"),
        Err(ServiceError::Conflict(m)) => (
            StatusCode::CONFLICT,
            ConfirmPage {
                chrome: page.chrome(NAV),
                heading: format!("Delete profile {name}"),
                message: String::new(),
                action: format!("/profiles/{name}/delete"),
                button: format!("Delete {name}"),
                cancel: format!("/profiles/{name}"),
                error: Some(format!("Not deleted: {m}.")),
            },
        )
            .into_response(),
        Err(e) => error_page(&page, e),
    }
}

/// `POST /profiles/{name}/assign`: give serials this profile explicitly (`action=assign`)
/// or clear their explicit profile (`action=unassign`); a dry run unless `mode=apply`. With
/// `?report=csv`, a dry run answered as the whole report in CSV.
pub(crate) async fn assign(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    Query(query): Query<forms::ReportQuery>,
    form: FormData,
) -> Response {
    let p = match state.services.profiles.get(&name).await {
        Ok(p) => p,
        Err(e) => return error_page(&page, e),
    };
    let action = form.get("action").to_string();
    let mut view = ShowPage::new(&page, p, &action);
    let (wants_csv, input) = match query
        .wants_csv()
        .and_then(|csv| forms::bulk_input(&form).map(|input| (csv, input)))
    {
        Ok(given) => given,
        Err(m) => {
            view.bulk.error = Some(m);
            return (StatusCode::BAD_REQUEST, view).into_response();
        }
    };
    let dry_run = wants_csv || forms::is_dry_run(&form);
    let profile = (view.bulk.action == "assign").then_some(name.as_str());
    match state
        .services
        .profiles
        .assign(&page.session.actor(), profile, input.input.clone(), dry_run)
        .await
    {
        Ok(report) if wants_csv => {
            let stem = format!("profile-{name}-{}", view.bulk.action);
            forms::csv_download(&stem, &report)
        }
        Ok(report) => {
            if !dry_run {
                // Show the profile as it is now (its explicit device count changed).
                if let Ok(p) = state.services.profiles.get(&name).await {
                    view = ShowPage::new(&page, p, &action);
                }
            }
            view.bulk.report = Some(ReportView::new(report, input));
            view.into_response()
        }
        Err(ServiceError::Invalid(m)) => {
            view.bulk.error = Some(m);
            (StatusCode::BAD_REQUEST, view).into_response()
        }
        Err(e) => error_page(&page, e),
    }
}

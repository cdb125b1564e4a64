//! Devices > Groups (`/groups`): static groups (a list of serials, added by textarea or CSV
//! with a dry run) and smart groups (a rule over ABM attributes), each optionally giving a
//! profile, ordered by priority.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use guardmdm_service::ServiceError;
use guardmdm_service::group_rule::GroupRule;
use guardmdm_service::groups::{DEFAULT_PRIORITY, GroupChange, GroupView, NewGroup};
use serde::Deserialize;

use super::error_page::error_page;
use super::forms::{self, BulkForm, FormData, ReportView};
use super::profiles::ConfirmPage;
use super::see_other;
use super::{Chrome, Page};
use crate::AppState;

const NAV: &str = "/groups";
/// Members shown per page of a static group.
const MEMBERS_PER_PAGE: u32 = 200;

pub(crate) struct Row {
    name: String,
    kind: String,
    priority: i32,
    profile: String,
    rule: String,
    members: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "groups.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
}

pub(crate) async fn list(State(state): State<AppState>, page: Page) -> Response {
    let groups = match state.services.groups.list().await {
        Ok(g) => g,
        Err(e) => return error_page(&page, e),
    };
    let rows = groups
        .into_iter()
        .map(|g| Row {
            members: if g.kind == "smart" {
                "from the rule".to_string()
            } else {
                g.member_count.to_string()
            },
            rule: g.rule_text.unwrap_or_default(),
            profile: g.profile.unwrap_or_default(),
            priority: g.priority,
            kind: g.kind,
            name: g.name,
        })
        .collect();
    ListPage {
        chrome: page.chrome(NAV),
        rows,
    }
    .into_response()
}

/// The group form's values and errors.
pub(crate) struct GroupForm {
    name: String,
    smart: bool,
    rule: String,
    priority: String,
    profile: String,
    profiles: Vec<String>,
    error: Option<String>,
    /// The field the error is about (`name`, `rule`, `priority`, `profile`).
    error_field: &'static str,
}

impl GroupForm {
    fn invalid(&self, field: &str) -> bool {
        self.error.is_some() && self.error_field == field
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "group_form.html")]
struct FormPage {
    chrome: Chrome,
    heading: String,
    action: String,
    cancel: String,
    editing: bool,
    form: GroupForm,
}

async fn profile_names(state: &AppState) -> Result<Vec<String>, ServiceError> {
    Ok(state
        .services
        .profiles
        .list()
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect())
}

fn form_page(page: &Page, editing: Option<&str>, form: GroupForm) -> FormPage {
    let (heading, action, cancel) = match editing {
        Some(n) => (
            format!("Edit group {n}"),
            format!("/groups/{n}/edit"),
            format!("/groups/{n}"),
        ),
        None => (
            "New device group".to_string(),
            "/groups/new".to_string(),
            "/groups".to_string(),
        ),
    };
    FormPage {
        chrome: page.chrome(NAV),
        heading,
        action,
        cancel,
        editing: editing.is_some(),
        form,
    }
}

pub(crate) async fn new_form(State(state): State<AppState>, page: Page) -> Response {
    let profiles = match profile_names(&state).await {
        Ok(p) => p,
        Err(e) => return error_page(&page, e),
    };
    let form = GroupForm {
        name: String::new(),
        smart: false,
        rule: String::new(),
        priority: DEFAULT_PRIORITY.to_string(),
        profile: String::new(),
        profiles,
        error: None,
        error_field: "",
    };
    form_page(&page, None, form).into_response()
}

/// The field a service error is about, from what the service says.
fn field_of(err: &ServiceError) -> &'static str {
    let m = err.to_string();
    match err {
        ServiceError::Conflict(_) => "name",
        ServiceError::NotFound(_) => "profile",
        _ if m.contains("priority") => "priority",
        _ if m.contains("group name") => "name",
        _ => "rule",
    }
}

fn read_form(form: &FormData, profiles: Vec<String>, name: String, smart: bool) -> GroupForm {
    GroupForm {
        name,
        smart,
        rule: form.get("rule").to_string(),
        priority: form.get("priority").trim().to_string(),
        profile: form.get("profile").trim().to_string(),
        profiles,
        error: None,
        error_field: "",
    }
}

fn parse_priority(text: &str) -> Result<Option<i32>, ServiceError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ServiceError::Invalid(format!(
            "priority {text:?} is not a whole number: use 0 to 100000 (the lowest number wins)"
        ))
    })
}

fn refused(page: &Page, editing: Option<&str>, mut form: GroupForm, err: ServiceError) -> Response {
    let status = match &err {
        ServiceError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => return error_page(page, err),
    };
    form.error_field = field_of(&err);
    form.error = Some(err.to_string());
    (status, form_page(page, editing, form)).into_response()
}

pub(crate) async fn create(State(state): State<AppState>, page: Page, form: FormData) -> Response {
    let profiles = match profile_names(&state).await {
        Ok(p) => p,
        Err(e) => return error_page(&page, e),
    };
    let smart = form.get("kind") == "smart";
    let values = read_form(&form, profiles, form.get("name").trim().to_string(), smart);
    let new = (|| {
        Ok::<_, ServiceError>(NewGroup {
            name: values.name.clone(),
            rule: if smart {
                Some(GroupRule::parse_lines(&values.rule)?)
            } else {
                None
            },
            profile: (!values.profile.is_empty()).then(|| values.profile.clone()),
            priority: parse_priority(&values.priority)?,
        })
    })();
    let result = match new {
        Ok(new) => {
            state
                .services
                .groups
                .create(&page.session.actor(), new)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(g) => see_other(&format!("/groups/{}", g.name), "group_created"),
        Err(e) => refused(&page, None, values, e),
    }
}

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    let (group, profiles) = match (
        state.services.groups.get(&name).await,
        profile_names(&state).await,
    ) {
        (Ok(g), Ok(p)) => (g, p),
        (Err(e), _) | (_, Err(e)) => return error_page(&page, e),
    };
    let form = GroupForm {
        smart: group.kind == "smart",
        rule: group
            .rule
            .as_ref()
            .map(GroupRule::to_lines)
            .unwrap_or_default(),
        priority: group.priority.to_string(),
        profile: group.profile.clone().unwrap_or_default(),
        name: group.name,
        profiles,
        error: None,
        error_field: "",
    };
    form_page(&page, Some(&name), form).into_response()
}

pub(crate) async fn update(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let (group, profiles) = match (
        state.services.groups.get(&name).await,
        profile_names(&state).await,
    ) {
        (Ok(g), Ok(p)) => (g, p),
        (Err(e), _) | (_, Err(e)) => return error_page(&page, e),
    };
    let smart = group.kind == "smart";
    let values = read_form(&form, profiles, group.name.clone(), smart);
    let change = (|| {
        Ok::<_, ServiceError>(GroupChange {
            rule: if smart {
                Some(GroupRule::parse_lines(&values.rule)?)
            } else {
                None
            },
            profile: Some((!values.profile.is_empty()).then(|| values.profile.clone())),
            priority: parse_priority(&values.priority)?,
        })
    })();
    let result = match change {
        Ok(change) => {
            state
                .services
                .groups
                .update(&page.session.actor(), &name, change)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => see_other(&format!("/groups/{name}"), "group_saved"),
        Err(e) => refused(&page, Some(&name), values, e),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "group.html")]
struct ShowPage {
    chrome: Chrome,
    g: GroupView,
    members: Vec<String>,
    next_href: Option<String>,
    remove_error: Option<String>,
    bulk: BulkForm,
}

#[derive(Deserialize, Default)]
pub(crate) struct MembersQuery {
    #[serde(default)]
    after: String,
}

async fn show_page(
    state: &AppState,
    page: &Page,
    name: &str,
    after: &str,
) -> Result<ShowPage, ServiceError> {
    let g = state.services.groups.get(name).await?;
    let members = if g.kind == "static" {
        let after = (!after.is_empty()).then_some(after);
        state
            .services
            .groups
            .members(name, after, MEMBERS_PER_PAGE)
            .await?
    } else {
        Vec::new()
    };
    let next_href = (members.len() == MEMBERS_PER_PAGE as usize)
        .then(|| members.last())
        .flatten()
        .map(|last| format!("/groups/{name}?after={last}"));
    Ok(ShowPage {
        chrome: page.chrome(NAV),
        bulk: BulkForm::new(format!("/groups/{name}/members"), "Add devices".to_string()),
        g,
        members,
        next_href,
        remove_error: None,
    })
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Response {
    match show_page(&state, &page, &name, &q.after).await {
        Ok(view) => view.into_response(),
        Err(e) => error_page(&page, e),
    }
}

/// `POST /groups/{name}/members`: add serials to a static group; a dry run unless
/// `mode=apply`. With `?report=csv`, a dry run answered as the whole report in CSV.
pub(crate) async fn add(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    Query(query): Query<forms::ReportQuery>,
    form: FormData,
) -> Response {
    let mut view = match show_page(&state, &page, &name, "").await {
        Ok(v) => v,
        Err(e) => return error_page(&page, e),
    };
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
    match state
        .services
        .groups
        .add(&page.session.actor(), &name, input.input.clone(), dry_run)
        .await
    {
        Ok(report) if wants_csv => forms::csv_download(&format!("group-{name}"), &report),
        Ok(report) => {
            if !dry_run && let Ok(v) = show_page(&state, &page, &name, "").await {
                view = v;
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

/// `POST /groups/{name}/members/remove`: the ticked members and the serials typed.
pub(crate) async fn remove(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    form: FormData,
) -> Response {
    let mut serials: Vec<String> = form.all("member").into_iter().map(str::to_string).collect();
    serials.extend(forms::split_serials(form.get("serials")));
    let error = if serials.is_empty() {
        Some(ServiceError::Invalid(
            "nothing to remove: tick members or type their serial numbers".to_string(),
        ))
    } else {
        match state
            .services
            .groups
            .remove(&page.session.actor(), &name, &serials)
            .await
        {
            Ok(0) => Some(ServiceError::Invalid(
                "none of these serial numbers is a member of the group".to_string(),
            )),
            Ok(_) => None,
            Err(e) => Some(e),
        }
    };
    match error {
        None => see_other(&format!("/groups/{name}"), "members_removed"),
        Some(ServiceError::Invalid(m)) => match show_page(&state, &page, &name, "").await {
            Ok(mut view) => {
                view.remove_error = Some(m);
                (StatusCode::BAD_REQUEST, view).into_response()
            }
            Err(e) => error_page(&page, e),
        },
        Some(e) => error_page(&page, e),
    }
}

pub(crate) async fn confirm_delete(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
) -> Response {
    let g = match state.services.groups.get(&name).await {
        Ok(g) => g,
        Err(e) => return error_page(&page, e),
    };
    let members = if g.kind == "static" {
        format!(
            " and its {} member{}",
            g.member_count,
            if g.member_count == 1 { "" } else { "s" }
        )
    } else {
        String::new()
    };
    ConfirmPage {
        chrome: page.chrome(NAV),
        heading: format!("Delete group {name}"),
        message: format!(
            "Delete the {} group {name}{members}? Its devices resolve their profile again without it. This cannot be undone.",
            g.kind
        ),
        action: format!("/groups/{name}/delete"),
        button: format!("Delete {name}"),
        cancel: format!("/groups/{name}"),
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
        .groups
        .delete(&page.session.actor(), &name)
        .await
    {
        Ok(()) => see_other("/groups", "group_deleted"),
        Err(e) => error_page(&page, e),
    }
}

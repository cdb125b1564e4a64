//! Devices > Enrolled devices (`/enrollments`): the devices enrolled in GuardMDM's MDM, and
//! one device (`/enrollments/{udid}`) with its command queue, the results, and a form per
//! common command ([`CommandSpec`]).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use guardmdm_mdm_protocol::MAX_COMMAND_BYTES;
use guardmdm_service::ServiceError;
use guardmdm_service::command_spec::CommandSpec;
use guardmdm_service::mdm::{
    CommandStatus, CommandView, EnrollmentStatus, EnrollmentView, MAX_STUCK_LIST,
    NewCommandRequest, PushStatus, StuckDevice,
};
use serde::Deserialize;

use super::error_page::error_page;
use super::forms::FormData;
use super::{Chrome, Page, path_segment, shown};
use super::{rfc3339, see_other, when};
use crate::AppState;

const NAV: &str = "/enrollments";
/// Devices per page.
const PAGE_SIZE: u32 = 50;
/// Commands shown on a device's page.
const COMMANDS_SHOWN: u32 = 50;

fn enrollment_href(udid: &str) -> String {
    format!("/enrollments/{}", path_segment(udid))
}

fn status_label(status: EnrollmentStatus) -> String {
    match status {
        EnrollmentStatus::Authenticated => "enrolling (authenticated)".to_string(),
        EnrollmentStatus::CheckedOut => "checked out (unenrolled)".to_string(),
        other => other.as_str().replace('_', " "),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The list's query string.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    serial: String,
    #[serde(default)]
    after: String,
    /// `1`: only the devices stuck in Setup Assistant.
    #[serde(default)]
    stuck: String,
}

impl ListQuery {
    fn stuck(&self) -> bool {
        !self.stuck.trim().is_empty() && self.stuck.trim() != "0"
    }

    fn href(&self, after: Option<&str>) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("stuck", if self.stuck() { "1" } else { "" }),
            ("status", self.status.trim()),
            ("serial", self.serial.trim()),
            ("after", after.unwrap_or_default()),
        ] {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        let q = s.finish();
        if q.is_empty() {
            NAV.to_string()
        } else {
            format!("{NAV}?{q}")
        }
    }
}

pub(crate) struct Row {
    udid: String,
    href: String,
    serial: String,
    serial_href: Option<String>,
    status: String,
    status_class: String,
    last_seen: String,
    last_seen_at: String,
    pushable: &'static str,
    awaiting: String,
    push: String,
    push_class: String,
}

impl From<&EnrollmentView> for Row {
    fn from(e: &EnrollmentView) -> Self {
        Self {
            href: enrollment_href(&e.udid),
            udid: e.udid.clone(),
            serial: e.serial_number.clone().unwrap_or_else(|| "-".to_string()),
            serial_href: e
                .serial_number
                .as_ref()
                .map(|s| format!("/devices/{}", path_segment(s))),
            status: status_label(e.status),
            status_class: e.status.to_string(),
            last_seen: when(e.last_seen_at),
            last_seen_at: rfc3339(e.last_seen_at),
            pushable: yes_no(e.pushable),
            awaiting: match (e.awaiting_configuration, e.awaiting_since) {
                (true, Some(since)) => format!("yes, since {}", when(since)),
                (waiting, _) => yes_no(waiting).to_string(),
            },
            push: push_label(&e.push),
            push_class: e.push.state.clone(),
        }
    }
}

/// A push state in words; a failure with its reason.
fn push_label(push: &PushStatus) -> String {
    match (push.state.as_str(), &push.error) {
        ("pending", _) => "Pending".to_string(),
        ("sent", _) => "Sent".to_string(),
        ("failed", Some(reason)) => format!("Failed: {reason}"),
        ("failed", None) => "Failed".to_string(),
        _ => "Not pushed since this server started".to_string(),
    }
}

pub(crate) struct StatusOption {
    value: &'static str,
    label: String,
    selected: bool,
}

/// A device stuck in Setup Assistant, as the list shows it.
pub(crate) struct StuckRow {
    udid: String,
    href: String,
    serial: String,
    since: String,
    since_at: String,
    reason: String,
}

impl From<StuckDevice> for StuckRow {
    fn from(d: StuckDevice) -> Self {
        Self {
            href: enrollment_href(&d.udid),
            serial: d.serial_number.unwrap_or_else(|| "-".to_string()),
            since: when(d.waiting_since),
            since_at: rfc3339(d.waiting_since),
            reason: d.reason_text,
            udid: d.udid,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "enrollments.html")]
struct ListPage {
    chrome: Chrome,
    form: ListQuery,
    statuses: Vec<StatusOption>,
    /// Showing only the stuck devices (`?stuck=1`).
    stuck_only: bool,
    stuck: Vec<StuckRow>,
    stuck_after: String,
    rows: Vec<Row>,
    caption: String,
    error: Option<String>,
    next_href: Option<String>,
    first_href: Option<String>,
}

/// `GET /enrollments`.
pub(crate) async fn list(
    State(state): State<AppState>,
    page: Page,
    Query(form): Query<ListQuery>,
) -> Response {
    if form.stuck() {
        return stuck_list(&state, &page, form).await;
    }
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let (mut found, error) = match state
        .services
        .mdm
        .enrollments(
            opt(&form.status),
            opt(&form.serial),
            opt(&form.after),
            PAGE_SIZE + 1,
        )
        .await
    {
        Ok(list) => (list, None),
        Err(e @ ServiceError::Invalid(_)) => (vec![], Some(e.to_string())),
        Err(e) => return error_page(&page, e),
    };
    let more = found.len() > PAGE_SIZE as usize;
    found.truncate(PAGE_SIZE as usize);
    let next_href = more
        .then(|| found.last().map(|e| form.href(Some(&e.udid))))
        .flatten();
    let n = found.len();
    let caption = match (n, form.after.is_empty(), more) {
        (0, _, _) => "No enrolled devices on this page.".to_string(),
        (n, true, true) => {
            format!("The first {n} enrolled devices, by UDID; more on the next pages.")
        }
        (n, true, false) => format!(
            "{n} enrolled device{}, by UDID.",
            if n == 1 { "" } else { "s" }
        ),
        (n, false, _) => format!("{n} more enrolled devices, by UDID."),
    };
    let statuses = EnrollmentStatus::ALL
        .into_iter()
        .map(|s| StatusOption {
            value: s.as_str(),
            label: status_label(s),
            selected: s.as_str() == form.status,
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let view = ListPage {
        chrome: page.chrome(NAV),
        statuses,
        stuck_only: false,
        stuck: Vec::new(),
        stuck_after: String::new(),
        rows: found.iter().map(Row::from).collect(),
        caption,
        error,
        next_href,
        first_href: (!form.after.is_empty()).then(|| form.href(None)),
        form,
    };
    (status, view).into_response()
}

fn statuses(selected: &str) -> Vec<StatusOption> {
    EnrollmentStatus::ALL
        .into_iter()
        .map(|s| StatusOption {
            value: s.as_str(),
            label: status_label(s),
            selected: s.as_str() == selected,
        })
        .collect()
}

/// `GET /enrollments?stuck=1`: the devices stuck in Setup Assistant, with why, and release
/// buttons.
async fn stuck_list(state: &AppState, page: &Page, form: ListQuery) -> Response {
    let found = match state.services.mdm.stuck_devices(MAX_STUCK_LIST).await {
        Ok(list) => list,
        Err(e) => return error_page(page, e),
    };
    let n = found.len();
    let stuck_after = super::duration_words(state.services.mdm.stuck_after());
    let caption = match n {
        0 => format!("No device has waited in Setup Assistant longer than {stuck_after}."),
        1 => format!("1 device waiting in Setup Assistant longer than {stuck_after}."),
        n => format!(
            "{n} devices waiting in Setup Assistant longer than {stuck_after}, the longest first."
        ),
    };
    let view = ListPage {
        chrome: page.chrome(NAV),
        statuses: statuses(&form.status),
        stuck_only: true,
        stuck: found.into_iter().map(StuckRow::from).collect(),
        stuck_after,
        rows: Vec::new(),
        caption,
        error: None,
        next_href: None,
        first_href: None,
        form,
    };
    view.into_response()
}

/// `POST /enrollments/release`: releases the device of the button pressed (`only`), or
/// every ticked one (`udid`), from Setup Assistant.
pub(crate) async fn release(State(state): State<AppState>, page: Page, req: Request) -> Response {
    let form = match FormData::read(req, 256 * 1024).await {
        Ok(f) => f,
        Err(e) => return error_page(&page, ServiceError::Invalid(e.message)),
    };
    let udids: Vec<String> = match form.text("only") {
        Some(one) => vec![one.to_string()],
        None => form
            .all("udid")
            .into_iter()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect(),
    };
    const BACK: &str = "/enrollments?stuck=1";
    if udids.is_empty() {
        return see_other(BACK, "release_none");
    }
    match state
        .services
        .mdm
        .release_many(&page.session.actor(), &udids)
        .await
    {
        Ok(outcomes) if outcomes.iter().all(|o| o.released.is_some()) => {
            see_other(BACK, "released")
        }
        Ok(_) => see_other(BACK, "released_some"),
        Err(e) => error_page(&page, e),
    }
}

pub(crate) struct CommandRow {
    uuid: String,
    request_type: String,
    status: String,
    status_class: String,
    created_by: String,
    created: String,
    created_at: String,
    updated: String,
    completed: String,
    result: Option<String>,
}

impl From<CommandView> for CommandRow {
    fn from(c: CommandView) -> Self {
        Self {
            status: c.status.as_str().replace('_', " "),
            status_class: c.status.to_string(),
            created: when(c.created_at),
            created_at: rfc3339(c.created_at),
            updated: when(c.updated_at),
            completed: c.completed_at.map_or_else(|| "-".to_string(), when),
            uuid: c.uuid,
            request_type: c.request_type,
            created_by: c.created_by,
            result: c.result,
        }
    }
}

/// The command queue as the page and its polled fragment show it.
pub(crate) struct Queue {
    href: String,
    /// A command is queued or sent: the table polls until each has an answer.
    polling: bool,
    commands: Vec<CommandRow>,
}

/// What the command forms were filled with, kept when one is refused.
#[derive(Default)]
pub(crate) struct CommandForm {
    request_type: String,
    queries: String,
    identifier: String,
    message: String,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "enrollment.html")]
struct DevicePage {
    chrome: Chrome,
    udid: String,
    href: String,
    facts: Vec<(&'static str, String)>,
    serial_href: Option<String>,
    info: Vec<(String, String)>,
    enrolled: bool,
    queue: Queue,
    form: CommandForm,
}

#[derive(Template, WebTemplate)]
#[template(path = "commands_fragment.html")]
struct QueueFragment {
    queue: Queue,
}

async fn queue(state: &AppState, udid: &str) -> Result<Queue, ServiceError> {
    let commands = state.services.mdm.commands(udid, COMMANDS_SHOWN).await?;
    Ok(Queue {
        href: format!("{}/commands", enrollment_href(udid)),
        polling: commands
            .iter()
            .any(|c| matches!(c.status, CommandStatus::Queued | CommandStatus::Sent)),
        commands: commands.into_iter().map(CommandRow::from).collect(),
    })
}

/// `GET /enrollments/{udid}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    page: Page,
    Path(udid): Path<String>,
) -> Response {
    device_page(&state, &page, &udid, CommandForm::default(), StatusCode::OK).await
}

/// `GET /enrollments/{udid}/commands`: the command table for an htmx poll, else the page.
pub(crate) async fn commands(
    State(state): State<AppState>,
    page: Page,
    headers: HeaderMap,
    Path(udid): Path<String>,
) -> Response {
    if headers.contains_key("hx-request") && !headers.contains_key("hx-boosted") {
        return match queue(&state, &udid).await {
            Ok(queue) => QueueFragment { queue }.into_response(),
            Err(e) => error_page(&page, e),
        };
    }
    device_page(&state, &page, &udid, CommandForm::default(), StatusCode::OK).await
}

async fn device_page(
    state: &AppState,
    page: &Page,
    udid: &str,
    form: CommandForm,
    status: StatusCode,
) -> Response {
    let e = match state.services.mdm.enrollment(udid).await {
        Ok(e) => e,
        Err(e) => return error_page(page, e),
    };
    let queue = match queue(state, udid).await {
        Ok(q) => q,
        Err(e) => return error_page(page, e),
    };
    let row = Row::from(&e);
    let facts = vec![
        ("UDID", e.udid.clone()),
        ("Serial", row.serial.clone()),
        ("Status", row.status.clone()),
        (
            "Enrolled at",
            e.enrolled_at.map_or_else(|| "-".to_string(), when),
        ),
        ("Last seen", row.last_seen.clone()),
        ("Pushable", row.pushable.to_string()),
        ("Awaiting configuration", row.awaiting.clone()),
        ("Push", row.push.clone()),
        (
            "Last push attempt",
            e.push
                .last_attempt_at
                .map_or_else(|| "never".to_string(), when),
        ),
        (
            "Last push sent",
            e.push
                .last_success_at
                .map_or_else(|| "never".to_string(), when),
        ),
    ];
    let info = e
        .device_info
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let view = DevicePage {
        chrome: page.chrome(NAV),
        href: row.href.clone(),
        udid: e.udid.clone(),
        serial_href: row.serial_href,
        facts,
        info,
        enrolled: e.status == EnrollmentStatus::Enrolled,
        queue,
        form,
    };
    (status, view).into_response()
}

/// The command a form asks for.
fn spec_of(form: &FormData) -> Result<CommandSpec, String> {
    let request_type = form
        .text("request_type")
        .ok_or("choose a command")?
        .to_string();
    if request_type == "EraseDevice" && !form.checked("confirm_erase") {
        return Err(
            "Nothing was sent: to erase the device, tick the box confirming that all its data \
             and settings will be erased."
                .to_string(),
        );
    }
    let queries = form.text("queries").map(|q| {
        q.split([',', '\n'])
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    let profile = match (form.file("profile_file"), form.raw("profile_text")) {
        (Some(file), _) => Some(file.to_vec()),
        (None, Some(text)) => Some(text.as_bytes().to_vec()),
        (None, None) => None,
    };
    if request_type == "InstallProfile" && profile.is_none() {
        return Err(
            "InstallProfile needs a profile: choose a .mobileconfig file or paste it.".to_string(),
        );
    }
    Ok(CommandSpec {
        request_type,
        queries,
        payload_base64: profile.map(|p| base64::engine::general_purpose::STANDARD.encode(p)),
        identifier: form.text("identifier").map(str::to_string),
        pin: form.text("pin").map(str::to_string),
        message: form.text("message").map(str::to_string),
    })
}

/// `POST /enrollments/{udid}/commands`: sends one of the common commands.
pub(crate) async fn send(
    State(state): State<AppState>,
    page: Page,
    Path(udid): Path<String>,
    req: Request,
) -> Response {
    let form = match FormData::read(req, MAX_COMMAND_BYTES).await {
        Ok(f) => f,
        Err(e) => {
            let form = CommandForm {
                error: Some(e.message),
                ..CommandForm::default()
            };
            return device_page(&state, &page, &udid, form, e.status).await;
        }
    };
    let kept = CommandForm {
        request_type: form.text("request_type").unwrap_or_default().to_string(),
        queries: form.text("queries").unwrap_or_default().to_string(),
        identifier: form.text("identifier").unwrap_or_default().to_string(),
        message: form.text("message").unwrap_or_default().to_string(),
        error: None,
    };
    let request = spec_of(&form).and_then(|spec| spec.to_request());
    let result = match request {
        Ok(r) => state
            .services
            .mdm
            .send_command(&page.session.actor(), &udid, NewCommandRequest::Typed(r))
            .await
            .map_err(|e| shown(&e)),
        Err(message) => Err((StatusCode::BAD_REQUEST, message)),
    };
    match result {
        Ok(_) => see_other(
            &format!("{}#commands", enrollment_href(&udid)),
            "command_sent",
        ),
        Err((StatusCode::NOT_FOUND, message)) => error_page(&page, ServiceError::NotFound(message)),
        Err((status, message)) => {
            let form = CommandForm {
                error: Some(message),
                ..kept
            };
            device_page(&state, &page, &udid, form, status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::header;

    async fn form(body: &'static str) -> FormData {
        let req = Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        FormData::read(req, 4096).await.unwrap()
    }

    #[tokio::test]
    async fn forms_become_command_specs() {
        let s = spec_of(
            &form("request_type=DeviceInformation&queries=OSVersion%2C+SerialNumber%0AModel").await,
        )
        .unwrap();
        assert_eq!(
            s.queries.unwrap(),
            ["OSVersion", "SerialNumber", "Model"].map(String::from)
        );
        let s = spec_of(&form("request_type=DeviceLock&message=Call+IT&pin=").await).unwrap();
        assert_eq!(s.message.as_deref(), Some("Call IT"));
        assert_eq!(s.pin, None);
        let s = spec_of(&form("request_type=InstallProfile&profile_text=%3Cplist%2F%3E").await)
            .unwrap();
        assert_eq!(s.payload_base64.as_deref(), Some("PHBsaXN0Lz4="));
        assert!(s.to_request().is_ok());
    }

    #[tokio::test]
    async fn erase_needs_the_confirmation_and_install_a_profile() {
        let e = spec_of(&form("request_type=EraseDevice&pin=123456").await).unwrap_err();
        assert!(e.contains("tick the box"), "{e}");
        let s =
            spec_of(&form("request_type=EraseDevice&pin=123456&confirm_erase=on").await).unwrap();
        assert_eq!(s.pin.as_deref(), Some("123456"));
        let e = spec_of(&form("request_type=InstallProfile").await).unwrap_err();
        assert!(e.contains(".mobileconfig"), "{e}");
        assert!(spec_of(&form("").await).is_err());
    }

    #[test]
    fn list_links_keep_filters() {
        let q = ListQuery {
            status: "enrolled".into(),
            serial: " C02X ".into(),
            after: "abc".into(),
            stuck: String::new(),
        };
        assert_eq!(
            q.href(Some("U1")),
            "/enrollments?status=enrolled&serial=C02X&after=U1"
        );
        assert_eq!(q.href(None), "/enrollments?status=enrolled&serial=C02X");
        assert_eq!(ListQuery::default().href(None), "/enrollments");
        let stuck = ListQuery {
            stuck: "1".into(),
            ..ListQuery::default()
        };
        assert_eq!(stuck.href(None), "/enrollments?stuck=1");
    }
}

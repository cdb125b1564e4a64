//! Devices > ABM Devices (`/devices`) and one device (`/devices/{serial}`).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use guardmdm_service::assign_rules::AssignState;
use guardmdm_service::device_list::{DeviceStatus, DeviceView};
use guardmdm_service::devices::DeviceDetail;
use guardmdm_service::os::OsKey;
use guardmdm_service::resolve::StepOutcome;
use guardmdm_service::troubleshoot::{self, Hint};
use guardmdm_service::{AbmEntryView, DeviceListRequest, ServiceError, TokenState};
use serde::Deserialize;

use super::error_page::error_page;
use super::{Chrome, Page, rfc3339, when};
use crate::AppState;

/// The list's query string, as the GET form sends it (empty fields mean "any").
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    serial: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    entry: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    assignment: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    limit: String,
}

impl ListQuery {
    /// The query string of these filters with `changes` applied (`after` is dropped unless
    /// given: a new filter or order starts at the first page).
    fn href(&self, changes: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, &str)> = [
            ("serial", self.serial.as_str()),
            ("status", &self.status),
            ("os", &self.os),
            ("entry", &self.entry),
            ("group", &self.group),
            ("assignment", &self.assignment),
            ("sort", &self.sort),
            ("dir", &self.dir),
            ("limit", &self.limit),
        ]
        .into_iter()
        .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
        .collect();
        pairs.extend(changes.iter().copied());
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        let q = s.finish();
        if q.is_empty() {
            "/devices".to_string()
        } else {
            format!("/devices?{q}")
        }
    }

    fn has_filters(&self) -> bool {
        [
            &self.serial,
            &self.status,
            &self.os,
            &self.entry,
            &self.group,
            &self.assignment,
        ]
        .iter()
        .any(|v| !v.is_empty())
    }

    fn request(&self) -> Result<DeviceListRequest, ServiceError> {
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let limit =
            match self.limit.trim() {
                "" => None,
                n => Some(n.parse::<u32>().map_err(|_| {
                    ServiceError::Invalid(format!("page size {n:?} is not a number"))
                })?),
            };
        let descending = match self.dir.as_str() {
            "" | "asc" => false,
            "desc" => true,
            other => {
                return Err(ServiceError::Invalid(format!(
                    "order {other:?}: use asc or desc"
                )));
            }
        };
        Ok(DeviceListRequest {
            status: opt(&self.status),
            abm_status: None,
            assignment: opt(&self.assignment),
            os: opt(&self.os),
            entry: opt(&self.entry),
            group: opt(&self.group),
            serial: opt(&self.serial),
            sort: opt(&self.sort),
            descending,
            after: opt(&self.after),
            limit,
        })
    }
}

pub(crate) struct SelectOption {
    value: String,
    label: String,
    selected: bool,
}

fn options<'a, L: Into<String>>(
    choices: impl IntoIterator<Item = (&'a str, L)>,
    current: &str,
) -> Vec<SelectOption> {
    choices
        .into_iter()
        .map(|(value, label)| SelectOption {
            value: value.to_string(),
            label: label.into(),
            selected: value == current,
        })
        .collect()
}

pub(crate) struct Header {
    label: &'static str,
    href: Option<String>,
    aria_sort: Option<&'static str>,
}

pub(crate) struct RowView {
    serial: String,
    href: String,
    model: String,
    family: String,
    os: String,
    entry: String,
    profile: String,
    rule: String,
    apple: String,
    assignment: String,
    status: &'static str,
    status_class: &'static str,
    last_seen: String,
}

fn os_label(os: Option<&str>) -> String {
    match os {
        Some("OSX") => "macOS".to_string(),
        Some(o) => o.to_string(),
        None => "-".to_string(),
    }
}

impl From<DeviceView> for RowView {
    fn from(r: DeviceView) -> Self {
        let (profile, rule, assignment) = match &r.assignment {
            Some(a) => (
                a.profile.clone().unwrap_or_else(|| "none".to_string()),
                a.rule.clone(),
                a.state.as_str().replace('_', " "),
            ),
            None => (
                "-".to_string(),
                "not resolved yet".to_string(),
                "-".to_string(),
            ),
        };
        let device = r.device.device;
        Self {
            href: format!(
                "/devices/{}",
                form_urlencoded::byte_serialize(device.serial_number.as_bytes())
                    .collect::<String>()
            ),
            family: device.device_family.unwrap_or_else(|| "-".to_string()),
            os: os_label(device.os.as_deref()),
            apple: device.profile_status.unwrap_or_else(|| "-".to_string()),
            status: r.status.label(),
            status_class: r.status.as_str(),
            last_seen: r.last_seen_at.map_or_else(|| "-".to_string(), when),
            serial: device.serial_number,
            model: device.model,
            entry: r.abm_entry,
            profile,
            rule,
            assignment,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "devices.html")]
pub(crate) struct DevicesPage {
    chrome: Chrome,
    form: ListQuery,
    status_options: Vec<SelectOption>,
    os_options: Vec<SelectOption>,
    entry_options: Vec<SelectOption>,
    group_options: Vec<SelectOption>,
    assignment_options: Vec<SelectOption>,
    sort_options: Vec<SelectOption>,
    dir_options: Vec<SelectOption>,
    headers: Vec<Header>,
    rows: Vec<RowView>,
    caption: String,
    error: Option<String>,
    has_filters: bool,
    next_href: Option<String>,
    first_href: Option<String>,
    sync_entries: Vec<SyncEntry>,
}

/// An ABM entry in the devices page's sync panel.
pub(crate) struct SyncEntry {
    name: String,
    sync_href: String,
    can_sync: bool,
    state: &'static str,
    last_sync: String,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    page: Page,
    Query(form): Query<ListQuery>,
) -> Response {
    let choices = match state.services.device_list.choices().await {
        Ok(c) => c,
        Err(e) => return error_page(&page, e),
    };
    let sync_entries = match page.abm_entries() {
        Ok(entries) => entries.iter().map(SyncEntry::from).collect(),
        Err(e) => return error_page(&page, e),
    };
    // A filter or order that cannot be read, or names nothing, is said on the page (400).
    let (rows, next, error) = match form.request() {
        Ok(req) => match state.services.device_list.page(req).await {
            Ok(p) => (p.rows, p.next, None),
            Err(e @ (ServiceError::Invalid(_) | ServiceError::NotFound(_))) => {
                (vec![], None, Some(e.to_string()))
            }
            Err(e) => return error_page(&page, e),
        },
        Err(e) => (vec![], None, Some(e.to_string())),
    };
    let statuses: Vec<(&str, &str)> = DeviceStatus::ALL
        .iter()
        .map(|s| (s.as_str(), s.label()))
        .collect();
    let view = DevicesPage {
        chrome: page.chrome("/devices"),
        status_options: options(statuses, &form.status),
        os_options: options(OsKey::ALL.map(|os| (os.label(), os.label())), &form.os),
        entry_options: options(
            choices.entries.iter().map(|e| (e.as_str(), e.as_str())),
            &form.entry,
        ),
        group_options: options(
            choices.groups.iter().map(|g| (g.as_str(), g.as_str())),
            &form.group,
        ),
        assignment_options: options(
            AssignState::ALL.map(|s| (s.as_str(), s.as_str().replace('_', " "))),
            &form.assignment,
        ),
        sort_options: options(
            [
                ("serial", "Serial"),
                ("model", "Model"),
                ("updated", "Last change"),
            ],
            form.sort_key(),
        ),
        dir_options: options(
            [("asc", "Ascending"), ("desc", "Descending")],
            if form.descending() { "desc" } else { "asc" },
        ),
        headers: form.headers(),
        caption: caption(rows.len(), form.after.is_empty(), next.is_some()),
        rows: rows.into_iter().map(RowView::from).collect(),
        has_filters: form.has_filters(),
        next_href: next.map(|n| form.href(&[("after", n.as_str())])),
        first_href: (!form.after.is_empty()).then(|| form.href(&[])),
        error: error.clone(),
        form,
        sync_entries,
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, view).into_response()
}

impl From<&AbmEntryView> for SyncEntry {
    fn from(e: &AbmEntryView) -> Self {
        Self {
            sync_href: format!("/settings/abm/{}/sync", super::path_segment(&e.name)),
            name: e.name.clone(),
            can_sync: e.health.state != TokenState::Pending,
            state: super::abm::state_label(e.health.state),
            last_sync: e.last_sync_at.map_or_else(|| "never".to_string(), when),
        }
    }
}

impl ListQuery {
    /// The column the list is ordered by (`serial` unless another is asked for).
    fn sort_key(&self) -> &str {
        if self.sort.is_empty() {
            "serial"
        } else {
            self.sort.as_str()
        }
    }

    fn descending(&self) -> bool {
        self.dir == "desc"
    }

    /// The table's column headers; the sortable ones link to ordering by them (the other
    /// way round when they already order it) and say how they order it.
    fn headers(&self) -> Vec<Header> {
        vec![
            self.header("Serial", Some("serial")),
            self.header("Model", Some("model")),
            self.header("Family", None),
            self.header("OS", None),
            self.header("ABM entry", None),
            self.header("Profile (rule)", None),
            self.header("Apple profile", None),
            self.header("Assignment", None),
            self.header("Status", None),
            self.header("Last seen", None),
        ]
    }

    /// One column header, sortable by `key` when it has one.
    fn header(&self, label: &'static str, key: Option<&'static str>) -> Header {
        let (href, aria_sort) = match key {
            Some(key) => {
                let current = key == self.sort_key();
                let desc = self.descending();
                let dir = if current && !desc { "desc" } else { "asc" };
                (
                    Some(self.href(&[("sort", key), ("dir", dir)])),
                    Some(match (current, desc) {
                        (false, _) => "none",
                        (true, false) => "ascending",
                        (true, true) => "descending",
                    }),
                )
            }
            None => (None, None),
        };
        Header {
            label,
            href,
            aria_sort,
        }
    }
}

/// What the table's caption says about this page: `count` rows, on the `first` page or a
/// later one, with `more` pages after it or not.
fn caption(count: usize, first: bool, more: bool) -> String {
    match (count, first, more) {
        (0, _, _) => "No devices on this page.".to_string(),
        (n, true, true) => format!("The first {n} devices; more on the next pages."),
        (n, true, false) => format!("{n} device{}.", if n == 1 { "" } else { "s" }),
        (n, false, _) => format!("{n} more devices."),
    }
}

pub(crate) struct StepView {
    rule: String,
    outcome: &'static str,
    detail: String,
    won: bool,
}

pub(crate) struct EventView {
    at: String,
    at_text: String,
    what: String,
}

pub(crate) struct RecordView {
    entry: String,
    status: &'static str,
    status_class: &'static str,
    facts: Vec<(&'static str, String)>,
    profile_summary: String,
    steps: Vec<StepView>,
    apple: Vec<(&'static str, String)>,
    hints: Vec<Hint>,
    timeline: Vec<EventView>,
    enrollment_href: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "device.html")]
struct DevicePage {
    chrome: Chrome,
    serial: String,
    records: Vec<RecordView>,
}

pub(crate) async fn show(
    State(state): State<AppState>,
    page: Page,
    Path(serial): Path<String>,
) -> Response {
    let details = match state.services.devices.show(&serial).await {
        Ok(d) => d,
        Err(e) => return error_page(&page, e),
    };
    let mut records = Vec::with_capacity(details.len());
    for d in &details {
        let commands = match &d.enrollment {
            Some(e) => state
                .services
                .mdm
                .commands(&e.udid, 20)
                .await
                .unwrap_or_default(),
            None => vec![],
        };
        let token = state
            .services
            .abm_entries
            .get(&d.abm_entry)
            .await
            .map_or(TokenState::Active, |e| e.health.state);
        records.push(record(d, &commands, token));
    }
    let serial = details
        .first()
        .map_or(serial, |d| d.device.device.serial_number.clone());
    DevicePage {
        chrome: page.chrome("/devices"),
        serial,
        records,
    }
    .into_response()
}

fn record(
    d: &DeviceDetail,
    commands: &[guardmdm_service::mdm::CommandView],
    token: TokenState,
) -> RecordView {
    let status = guardmdm_service::device_list::device_status(
        d.abm_status == "removed",
        d.enrollment.as_ref().map(|e| e.status),
        d.assignment.as_ref().map(|a| a.state),
        d.device.device.profile_status.as_deref(),
    );
    RecordView {
        enrollment_href: d
            .enrollment
            .as_ref()
            .map(|e| format!("/enrollments/{}", super::path_segment(&e.udid))),
        entry: d.abm_entry.clone(),
        status: status.label(),
        status_class: status.as_str(),
        facts: facts(d),
        profile_summary: profile_summary(d),
        steps: steps(d),
        apple: apple_facts(d),
        hints: troubleshoot::hints(d, token),
        timeline: troubleshoot::timeline(d, commands)
            .into_iter()
            .map(|e| EventView {
                at: rfc3339(e.at),
                at_text: when(e.at),
                what: e.what,
            })
            .collect(),
    }
}

/// The value, or `-` when there is none.
fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_string())
}

/// What ABM says about the device, then its assignment and its MDM enrollment when it has
/// them.
fn facts(d: &DeviceDetail) -> Vec<(&'static str, String)> {
    let dev = &d.device.device;
    let mut facts = vec![
        ("Serial", dev.serial_number.clone()),
        ("Model", dev.model.clone()),
        ("Family", or_dash(&dev.device_family)),
        ("OS", os_label(dev.os.as_deref())),
        ("Description", or_dash(&dev.description)),
        ("Color", or_dash(&dev.color)),
        ("Asset tag", or_dash(&dev.asset_tag)),
        ("ABM entry", d.abm_entry.clone()),
        ("Assigned in ABM by", or_dash(&dev.device_assigned_by)),
        ("First synced", when(d.device.first_seen_at)),
        ("Groups", {
            if d.groups.is_empty() {
                "none".to_string()
            } else {
                d.groups.join(", ")
            }
        }),
    ];
    if let Some(a) = &d.assignment {
        facts.push(("Assignment", a.state.as_str().replace('_', " ")));
        if let Some(e) = &a.last_error {
            facts.push(("Assignment note", e.clone()));
        }
    }
    if let Some(e) = &d.enrollment {
        facts.push(("MDM enrollment", e.status.to_string()));
        facts.push(("UDID", e.udid.clone()));
        facts.push(("Last seen", when(e.last_seen_at)));
    }
    facts
}

/// The profile the device resolves to and the rule that gives it, or why it has none.
fn profile_summary(d: &DeviceDetail) -> String {
    match &d.resolution.profile {
        Some(p) => format!("Profile {p}, given by the {}.", d.resolution.rule),
        None => format!(
            "Unassigned: {}.",
            d.resolution
                .unassigned_reason
                .as_deref()
                .unwrap_or("no rule gives it a profile")
        ),
    }
}

/// The resolution's rules in precedence order, and what each one did for this device.
fn steps(d: &DeviceDetail) -> Vec<StepView> {
    d.resolution
        .steps
        .iter()
        .map(|s| StepView {
            rule: s.rule.clone(),
            outcome: match s.outcome {
                StepOutcome::Won => "gives the profile",
                StepOutcome::Shadowed => "matches, but a rule above wins",
                StepOutcome::Skipped => "does not apply",
            },
            detail: s.detail.clone(),
            won: s.outcome == StepOutcome::Won,
        })
        .collect()
}

/// The device's profile at Apple: which one, whether it is the one expected, and when it
/// was assigned and downloaded.
fn apple_facts(d: &DeviceDetail) -> Vec<(&'static str, String)> {
    vec![
        ("Profile status", or_dash(&d.apple.profile_status)),
        ("Profile UUID", or_dash(&d.apple.profile_uuid)),
        ("Expected UUID", or_dash(&d.apple.expected_profile_uuid)),
        (
            "Up to date",
            if d.apple.up_to_date { "yes" } else { "no" }.to_string(),
        ),
        (
            "Assigned at Apple",
            d.apple
                .profile_assign_time
                .map_or_else(|| "-".to_string(), when),
        ),
        (
            "Downloaded by the device",
            d.apple
                .profile_push_time
                .map_or_else(|| "-".to_string(), when),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_filters_and_drop_the_cursor() {
        let q = ListQuery {
            os: "iOS".into(),
            status: "enrolled".into(),
            after: "abc".into(),
            ..ListQuery::default()
        };
        assert_eq!(
            q.href(&[("sort", "model")]),
            "/devices?status=enrolled&os=iOS&sort=model"
        );
        assert_eq!(
            q.href(&[("after", "xyz")]),
            "/devices?status=enrolled&os=iOS&after=xyz"
        );
        assert_eq!(ListQuery::default().href(&[]), "/devices");
    }

    #[test]
    fn bad_query_values_are_named() {
        let q = ListQuery {
            dir: "sideways".into(),
            ..ListQuery::default()
        };
        assert!(q.request().unwrap_err().to_string().contains("sideways"));
        let q = ListQuery {
            limit: "ten".into(),
            ..ListQuery::default()
        };
        assert!(q.request().unwrap_err().to_string().contains("ten"));
    }
}

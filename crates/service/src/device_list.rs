//! The list of ABM devices, one home for the dashboard's `/devices`, `GET /api/v1/devices` and
//! `guardmdm devices list`: filters, serial search, sorting and keyset pages that cost the
//! same at any depth of a 1,000,000-device fleet (no OFFSET, no COUNT per page).
//!
//! [`device_status`] (Unassigned, Assigning, Assigned, Pushed, Enrolled, Removed from ABM;
//! `docs/architecture.md` §9), [`parse_status_filter`] and [`parse_after`] are plain
//! functions; [`DeviceListService::page`] runs a [`DeviceListRequest`] against the store.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use guardmdm_store::{
    AbmEntryStore, AssignState, AssignmentConfigStore, AssignmentStateStore, DeviceCursor,
    DeviceOrder, DeviceQuery, DeviceSyncStore, EnrollmentStatus, EntryId, Store, StoredAbmDevice,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ServiceError;
use crate::group_rule::{DeviceFacts, GroupRule};
use crate::lookup::{AssignmentView, entry_names, profile_names};
use crate::resolve::{Membership, Resolver};

/// Largest page.
pub const MAX_PAGE: u32 = 1_000;
/// Default page.
pub const DEFAULT_PAGE: u32 = 50;
/// Devices examined at most per page when filtering by a smart group (its rule is evaluated
/// here, not in SQL); a page may then hold fewer rows and still offer the next one.
const SMART_SCAN_LIMIT: u32 = 2_000;
/// Devices read per batch while filtering by a smart group.
const SMART_BATCH: u32 = 200;

/// Where a device stands, in the dashboard's words (`docs/architecture.md` §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// No ADE profile resolved for it (see why on its page).
    Unassigned,
    /// A profile is resolved and being sent to Apple (pending, failed, throttled or not
    /// accessible: the assignment state says which).
    Pending,
    /// Apple has its profile.
    Assigned,
    /// The device downloaded its profile.
    Pushed,
    /// Enrolled in GuardMDM (MDM check-in done).
    Enrolled,
    /// Removed from ABM (unassigned from this MDM server there).
    Removed,
}

impl DeviceStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Unassigned,
        Self::Pending,
        Self::Assigned,
        Self::Pushed,
        Self::Enrolled,
        Self::Removed,
    ];

    /// The filter value: `unassigned`, `pending`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unassigned => "unassigned",
            Self::Pending => "pending",
            Self::Assigned => "assigned",
            Self::Pushed => "pushed",
            Self::Enrolled => "enrolled",
            Self::Removed => "removed",
        }
    }

    /// What the dashboard shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unassigned => "Unassigned",
            Self::Pending => "Assigning",
            Self::Assigned => "Assigned",
            Self::Pushed => "Pushed",
            Self::Enrolled => "Enrolled",
            Self::Removed => "Removed from ABM",
        }
    }
}

/// A device's status from what is stored: removal wins, then an MDM enrollment, then
/// GuardMDM's assignment state (or Apple's profile status when no pass ran yet).
pub fn device_status(
    removed: bool,
    enrollment_status: Option<EnrollmentStatus>,
    assignment_state: Option<AssignState>,
    apple_profile_status: Option<&str>,
) -> DeviceStatus {
    if removed {
        return DeviceStatus::Removed;
    }
    if enrollment_status == Some(EnrollmentStatus::Enrolled) {
        return DeviceStatus::Enrolled;
    }
    match (assignment_state, apple_profile_status) {
        (Some(AssignState::Pushed), _) | (None, Some("pushed")) => DeviceStatus::Pushed,
        (Some(AssignState::Assigned), _) | (None, Some("assigned")) => DeviceStatus::Assigned,
        (
            Some(
                AssignState::Pending
                | AssignState::Failed
                | AssignState::Throttled
                | AssignState::NotAccessible,
            ),
            _,
        ) => DeviceStatus::Pending,
        _ => DeviceStatus::Unassigned,
    }
}

/// The store query for a status filter (the listing's other fields are left as they are).
///
/// # Errors
/// [`ServiceError::Invalid`] for an unknown status.
pub fn parse_status_filter(status: &str, query: &mut DeviceQuery) -> Result<(), ServiceError> {
    let state = match status {
        "unassigned" => AssignState::Unassigned,
        // The dashboard says Assigning; the filter value is `pending`.
        "pending" | "assigning" => AssignState::Pending,
        "assigned" => AssignState::Assigned,
        "pushed" => AssignState::Pushed,
        "enrolled" => {
            query.removed = Some(false);
            query.enrolled = Some(true);
            return Ok(());
        }
        "removed" => {
            query.removed = Some(true);
            return Ok(());
        }
        other => {
            return Err(ServiceError::Invalid(format!(
                "status {other:?}: use unassigned, pending, assigned, pushed, enrolled or removed"
            )));
        }
    };
    // An enrolled device shows as Enrolled whatever its assignment state.
    query.removed = Some(false);
    query.enrolled = Some(false);
    query.assignment_state = Some(state);
    Ok(())
}

/// The sort orders offered.
pub fn parse_order(sort: &str) -> Result<DeviceOrder, ServiceError> {
    match sort {
        "serial" => Ok(DeviceOrder::Serial),
        "model" => Ok(DeviceOrder::Model),
        "updated" => Ok(DeviceOrder::Updated),
        other => Err(ServiceError::Invalid(format!(
            "sort {other:?}: use serial, model or updated"
        ))),
    }
}

/// Whether a device is still assigned to this MDM server in ABM: the store query for it.
///
/// # Errors
/// [`ServiceError::Invalid`] for anything but `assigned` and `removed`.
pub fn parse_abm_status(abm_status: &str) -> Result<bool, ServiceError> {
    match abm_status {
        "assigned" => Ok(false),
        "removed" => Ok(true),
        other => Err(ServiceError::Invalid(format!(
            "abm_status {other:?}: use assigned or removed"
        ))),
    }
}

/// Where a page starts: the `next` cursor of the page before, or, in the serial order
/// only, the serial number of the previous page's last device (what `GET /api/v1/devices`
/// took before it had cursors, and scripts still send). An empty value is the first page.
///
/// # Errors
/// [`ServiceError::Invalid`] for text that is neither, or a serial in another order.
pub fn parse_after(after: &str, query: &mut DeviceQuery) -> Result<(), ServiceError> {
    let after = after.trim();
    if after.is_empty() {
        return Ok(());
    }
    if let Ok(cursor) = decode_cursor(after) {
        query.after = Some(cursor);
        return Ok(());
    }
    // A cursor is base64 of a JSON object ("eyJ…"), which no serial number (upper-case
    // letters and digits) decodes to.
    let serial = after.to_ascii_uppercase();
    if !serial.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ServiceError::Invalid(
            "after: the page cursor is not valid: start again from the first page".to_string(),
        ));
    }
    if query.order != DeviceOrder::Serial || query.descending {
        return Err(ServiceError::Invalid(
            "after: a serial number continues only the ascending serial order; pass the next \
             page's cursor instead"
                .to_string(),
        ));
    }
    query.after_serial = Some(serial);
    Ok(())
}

/// A page cursor as it travels in a URL: URL-safe base64 of JSON.
pub fn encode_cursor(cursor: &DeviceCursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

/// Reads [`encode_cursor`]'s output.
///
/// # Errors
/// [`ServiceError::Invalid`] for anything else.
pub fn decode_cursor(text: &str) -> Result<DeviceCursor, ServiceError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| {
            ServiceError::Invalid(
                "the page cursor is not valid: start again from the first page".to_string(),
            )
        })
}

/// What to list: every field optional, as a GET form sends them.
#[derive(Debug, Clone, Default)]
pub struct DeviceListRequest {
    /// A [`DeviceStatus`] value.
    pub status: Option<String>,
    /// `assigned` (still assigned to this MDM server in ABM) or `removed`.
    pub abm_status: Option<String>,
    /// GuardMDM's assignment state (`unassigned`, `pending`, `failed`, …).
    pub assignment: Option<String>,
    /// Apple's OS (`iOS`, `iPadOS`, `macOS`/`OSX`, `tvOS`, `visionOS`).
    pub os: Option<String>,
    /// An ABM entry name.
    pub entry: Option<String>,
    /// A group name (static or smart).
    pub group: Option<String>,
    /// Serial numbers starting with this (case-insensitive).
    pub serial: Option<String>,
    /// `serial`, `model` or `updated`.
    pub sort: Option<String>,
    /// Largest first.
    pub descending: bool,
    /// The `next` of the previous page (or, in the serial order, the previous page's last
    /// serial: [`parse_after`]).
    pub after: Option<String>,
    /// Rows per page (1 to [`MAX_PAGE`]).
    pub limit: Option<u32>,
}

/// A device as the list shows it: Apple's record, its ABM entry, its status, and where
/// assigning its profile stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    /// The ABM entry's name.
    pub abm_entry: String,
    /// `assigned` (in ABM for this MDM server) or `removed` (removed from ABM).
    pub abm_status: String,
    /// Where it stands, as the dashboard shows it.
    pub status: DeviceStatus,
    /// The last MDM request from the device, once enrolled.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_seen_at: Option<OffsetDateTime>,
    /// The stored record.
    #[serde(flatten)]
    pub device: StoredAbmDevice,
    /// Where assigning its ADE profile stands; `None` before the first assignment pass.
    pub assignment: Option<AssignmentView>,
}

/// A page of the list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DevicePage {
    /// The rows.
    pub rows: Vec<DeviceView>,
    /// The cursor of the next page, when there may be one.
    pub next: Option<String>,
}

/// The choices the list's filters offer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceFilterChoices {
    /// ABM entry names.
    pub entries: Vec<String>,
    /// Group names.
    pub groups: Vec<String>,
}

/// The store query for a request's page size, order, cursor and the filters the store
/// evaluates (status, ABM status, assignment state, OS, serial prefix); `None` when two
/// filters contradict each other, so nothing can match. The entry and group filters need
/// the store and are added by [`DeviceListService::page`].
///
/// # Errors
/// [`ServiceError::Invalid`] for a bad page size, order, cursor or filter value.
pub fn store_query(req: &DeviceListRequest) -> Result<Option<DeviceQuery>, ServiceError> {
    let limit = req.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ServiceError::Invalid(format!(
            "page size must be between 1 and {MAX_PAGE}"
        )));
    }
    let mut query = DeviceQuery {
        limit,
        descending: req.descending,
        order: parse_order(req.sort.as_deref().unwrap_or("serial"))?,
        ..DeviceQuery::default()
    };
    if let Some(after) = &req.after {
        parse_after(after, &mut query)?;
    }
    if let Some(status) = &req.status {
        parse_status_filter(status, &mut query)?;
    }
    if let Some(abm_status) = &req.abm_status {
        let removed = parse_abm_status(abm_status)?;
        if query.removed.is_some_and(|r| r != removed) {
            // Removed from ABM and still in it.
            return Ok(None);
        }
        query.removed = Some(removed);
    }
    if let Some(state) = &req.assignment {
        let state = crate::assign_rules::parse_state(state)?;
        if query.assignment_state.is_some_and(|s| s != state) {
            // Two different states.
            return Ok(None);
        }
        query.assignment_state = Some(state);
    }
    if let Some(os) = &req.os {
        query.os = Some(if os.eq_ignore_ascii_case("macos") {
            "OSX".to_string()
        } else {
            os.clone()
        });
    }
    if let Some(serial) = &req.serial {
        let prefix = serial.trim().to_ascii_uppercase();
        if let Some(c) = prefix.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(ServiceError::Invalid(format!(
                "serial numbers have only letters and digits, not {c:?}"
            )));
        }
        if !prefix.is_empty() {
            query.serial_prefix = Some(prefix);
        }
    }
    Ok(Some(query))
}

/// The device list.
pub struct DeviceListService<S: ?Sized = dyn Store> {
    store: Arc<S>,
}

impl<S: ?Sized> Clone for DeviceListService<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
        }
    }
}

impl<S> DeviceListService<S>
where
    S: ?Sized + AbmEntryStore + AssignmentConfigStore + AssignmentStateStore + DeviceSyncStore,
{
    /// A service over `store`.
    pub fn new(store: Arc<S>) -> Self {
        Self { store }
    }

    /// The entries and groups the filters can choose from.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn choices(&self) -> Result<DeviceFilterChoices, ServiceError> {
        Ok(DeviceFilterChoices {
            entries: self
                .store
                .list_abm_entries()
                .await?
                .into_iter()
                .map(|e| e.name)
                .collect(),
            groups: self
                .store
                .list_groups()
                .await?
                .into_iter()
                .map(|g| g.name)
                .collect(),
        })
    }

    /// One page.
    ///
    /// # Errors
    /// [`ServiceError::Invalid`] for a bad filter or cursor, [`ServiceError::NotFound`] for
    /// an unknown entry or group.
    pub async fn page(&self, req: DeviceListRequest) -> Result<DevicePage, ServiceError> {
        let Some(mut query) = store_query(&req)? else {
            return Ok(DevicePage {
                rows: vec![],
                next: None,
            });
        };
        let entries = entry_names(self.store.as_ref()).await?;
        if let Some(name) = &req.entry {
            let id = entries
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(id, _)| *id)
                .ok_or_else(|| ServiceError::NotFound(format!("no ABM entry named {name:?}")))?;
            query.entry_id = Some(id);
        }
        let smart = match &req.group {
            Some(name) => self.group_filter(name, &mut query).await?,
            None => None,
        };
        let (devices, next) = match smart {
            None => {
                let devices = self.store.list_abm_devices(&query).await?;
                let next = (devices.len() == query.limit as usize)
                    .then(|| devices.last().map(DeviceCursor::after))
                    .flatten();
                (devices, next)
            }
            Some(rule) => self.scan_smart(&rule, &entries, query).await?,
        };
        let rows = self.rows(devices, &entries).await?;
        Ok(DevicePage {
            rows,
            next: next.as_ref().map(encode_cursor),
        })
    }

    /// Narrows `query` to a static group's members; a smart group's rule is returned instead,
    /// to be evaluated on each device ([`Self::scan_smart`]).
    async fn group_filter(
        &self,
        name: &str,
        query: &mut DeviceQuery,
    ) -> Result<Option<GroupRule>, ServiceError> {
        let config = self.store.assignment_config().await?;
        let resolver = Resolver::new(&config);
        let group = resolver
            .groups()
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| ServiceError::NotFound(format!("no group named {name:?}")))?;
        match &group.membership {
            Membership::Static => {
                query.group_id = Some(group.id);
                Ok(None)
            }
            Membership::Smart(rule) => Ok(Some(rule.clone())),
            Membership::Broken(why) => Err(ServiceError::Invalid(format!(
                "group {name:?} has a rule that no longer reads ({why}): fix the group first"
            ))),
        }
    }

    /// Walks the listing in batches, keeping the devices the rule matches, until the page is
    /// full or [`SMART_SCAN_LIMIT`] devices were examined.
    async fn scan_smart(
        &self,
        rule: &GroupRule,
        entries: &HashMap<EntryId, String>,
        mut query: DeviceQuery,
    ) -> Result<(Vec<StoredAbmDevice>, Option<DeviceCursor>), ServiceError> {
        let want = query.limit as usize;
        query.limit = SMART_BATCH;
        let mut out = Vec::with_capacity(want);
        let mut examined = 0;
        loop {
            let batch = self.store.list_abm_devices(&query).await?;
            let full = batch.len() == query.limit as usize;
            for d in batch {
                examined += 1;
                query.after = Some(DeviceCursor::after(&d));
                let entry = entries.get(&d.entry_id).map_or("", String::as_str);
                if rule.matches(&DeviceFacts::new(&d.device, entry)) {
                    out.push(d);
                    if out.len() == want {
                        return Ok((out, query.after));
                    }
                }
            }
            if !full {
                return Ok((out, None));
            }
            if examined >= SMART_SCAN_LIMIT {
                return Ok((out, query.after));
            }
        }
    }

    async fn rows(
        &self,
        devices: Vec<StoredAbmDevice>,
        entries: &HashMap<EntryId, String>,
    ) -> Result<Vec<DeviceView>, ServiceError> {
        let serials: Vec<String> = devices
            .iter()
            .map(|d| d.device.serial_number.clone())
            .collect();
        let enrollments: HashMap<String, guardmdm_store::EnrollmentState> = self
            .store
            .enrollment_states(&serials)
            .await?
            .into_iter()
            .map(|e| (e.serial.clone(), e))
            .collect();
        let profiles = profile_names(self.store.as_ref()).await?;
        let mut by_entry: HashMap<EntryId, Vec<String>> = HashMap::new();
        for d in &devices {
            by_entry
                .entry(d.entry_id)
                .or_default()
                .push(d.device.serial_number.clone());
        }
        let mut records = HashMap::new();
        for (entry_id, serials) in by_entry {
            for r in self.store.assignments(entry_id, &serials).await? {
                records.insert((entry_id, r.serial_number.clone()), r);
            }
        }
        Ok(devices
            .into_iter()
            .map(|d| {
                let record = records.remove(&(d.entry_id, d.device.serial_number.clone()));
                let enrollment = enrollments.get(&d.device.serial_number);
                let status = device_status(
                    d.removed_at.is_some(),
                    enrollment.map(|e| e.status),
                    record.as_ref().map(|r| r.state),
                    d.device.profile_status.as_deref(),
                );
                DeviceView {
                    abm_entry: entries.get(&d.entry_id).cloned().unwrap_or_default(),
                    abm_status: if d.removed_at.is_some() {
                        "removed"
                    } else {
                        "assigned"
                    }
                    .to_string(),
                    status,
                    last_seen_at: enrollment.map(|e| e.last_seen_at),
                    assignment: record.map(|r| AssignmentView::new(r, &profiles)),
                    device: d,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_precedence() {
        use DeviceStatus::*;
        assert_eq!(
            device_status(
                true,
                Some(EnrollmentStatus::Enrolled),
                Some(AssignState::Pushed),
                None
            ),
            Removed
        );
        assert_eq!(
            device_status(
                false,
                Some(EnrollmentStatus::Enrolled),
                Some(AssignState::Pushed),
                None
            ),
            Enrolled
        );
        assert_eq!(
            device_status(
                false,
                Some(EnrollmentStatus::CheckedOut),
                Some(AssignState::Pushed),
                None
            ),
            Pushed
        );
        assert_eq!(
            device_status(false, None, Some(AssignState::Assigned), Some("empty")),
            Assigned
        );
        assert_eq!(device_status(false, None, None, Some("pushed")), Pushed);
        assert_eq!(device_status(false, None, None, Some("assigned")), Assigned);
        assert_eq!(
            device_status(false, None, Some(AssignState::Failed), Some("assigned")),
            Pending
        );
        assert_eq!(
            device_status(false, None, Some(AssignState::Unassigned), None),
            Unassigned
        );
        assert_eq!(device_status(false, None, None, None), Unassigned);
    }

    #[test]
    fn status_filters_map_to_queries() {
        let mut q = DeviceQuery::default();
        parse_status_filter("enrolled", &mut q).unwrap();
        assert_eq!((q.enrolled, q.removed), (Some(true), Some(false)));
        let mut q = DeviceQuery::default();
        parse_status_filter("pushed", &mut q).unwrap();
        assert_eq!(q.assignment_state, Some(AssignState::Pushed));
        assert_eq!(q.enrolled, Some(false));
        let mut q = DeviceQuery::default();
        parse_status_filter("removed", &mut q).unwrap();
        assert_eq!((q.removed, q.assignment_state), (Some(true), None));
        let err = parse_status_filter("gone", &mut q).unwrap_err();
        assert!(err.to_string().contains("unassigned"), "{err}");
        // A device matching a status filter's fields shows that status, and only an
        // Enrolled filter takes enrolled devices.
        for s in DeviceStatus::ALL {
            let mut q = DeviceQuery::default();
            parse_status_filter(s.as_str(), &mut q).unwrap();
            let removed = q.removed == Some(true);
            let enrollment = (q.enrolled == Some(true)).then_some(EnrollmentStatus::Enrolled);
            assert_eq!(
                device_status(removed, enrollment, q.assignment_state, None),
                s
            );
            if !matches!(s, DeviceStatus::Enrolled | DeviceStatus::Removed) {
                assert_eq!(q.enrolled, Some(false), "{s:?}");
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = DeviceCursor {
            model: "iPhone 16".into(),
            updated_at: time::macros::datetime!(2026-01-02 03:04:05.123456 UTC),
            serial: "C02X".into(),
            entry_id: EntryId::new_v4(),
        };
        let text = encode_cursor(&c);
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(decode_cursor(&text).unwrap(), c);
        assert!(decode_cursor("not a cursor!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode(b"{}")).is_err());
    }

    #[test]
    fn a_page_starts_after_a_cursor_or_in_the_serial_order_after_a_serial() {
        let c = DeviceCursor {
            model: "iPad".into(),
            updated_at: time::macros::datetime!(2026-01-02 03:04:05 UTC),
            serial: "C02X".into(),
            entry_id: EntryId::new_v4(),
        };
        let mut q = DeviceQuery::default();
        parse_after(&encode_cursor(&c), &mut q).unwrap();
        assert_eq!((q.after, q.after_serial), (Some(c), None));
        let mut q = DeviceQuery::default();
        parse_after(" c02xyz ", &mut q).unwrap();
        assert_eq!((q.after, q.after_serial.as_deref()), (None, Some("C02XYZ")));
        let mut q = DeviceQuery::default();
        parse_after("", &mut q).unwrap();
        assert_eq!((q.after, q.after_serial), (None, None));
        let mut q = DeviceQuery {
            order: DeviceOrder::Model,
            ..DeviceQuery::default()
        };
        let err = parse_after("C02XYZ", &mut q).unwrap_err();
        assert!(err.to_string().contains("ascending serial order"), "{err}");
        let err = parse_after("not/a cursor", &mut DeviceQuery::default()).unwrap_err();
        assert!(err.to_string().contains("cursor is not valid"), "{err}");
    }

    #[test]
    fn contradicting_filters_match_nothing_and_bad_ones_are_named() {
        let req = |f: fn(&mut DeviceListRequest)| {
            let mut r = DeviceListRequest::default();
            f(&mut r);
            r
        };
        let q = store_query(&req(|r| {
            r.status = Some("pushed".into());
            r.os = Some("macOS".into());
            r.serial = Some(" c02 ".into());
        }))
        .unwrap()
        .unwrap();
        assert_eq!(q.assignment_state, Some(AssignState::Pushed));
        assert_eq!(q.os.as_deref(), Some("OSX"));
        assert_eq!(q.serial_prefix.as_deref(), Some("C02"));
        assert_eq!(q.limit, DEFAULT_PAGE);
        let none = |f| store_query(&req(f)).unwrap().is_none();
        assert!(none(|r| {
            r.status = Some("removed".into());
            r.abm_status = Some("assigned".into());
        }));
        assert!(none(|r| {
            r.status = Some("pushed".into());
            r.assignment = Some("failed".into());
        }));
        let err = |f| store_query(&req(f)).unwrap_err().to_string();
        assert!(err(|r| r.limit = Some(0)).contains("page size"));
        assert!(err(|r| r.serial = Some("C02-".into())).contains("letters and digits"));
        assert!(err(|r| r.sort = Some("color".into())).contains("serial, model or updated"));
    }

    #[test]
    fn abm_status_is_assigned_or_removed() {
        assert!(!parse_abm_status("assigned").unwrap());
        assert!(parse_abm_status("removed").unwrap());
        let err = parse_abm_status("enrolled").unwrap_err();
        assert!(err.to_string().contains("assigned or removed"), "{err}");
    }

    #[test]
    fn orders() {
        assert_eq!(parse_order("model").unwrap(), DeviceOrder::Model);
        assert!(parse_order("color").is_err());
    }
}

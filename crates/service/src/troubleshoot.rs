//! A device's story and what to do when it is stuck: the timeline of what GuardMDM recorded
//! about it, and hints from the troubleshooting table (`docs/architecture.md` §10) chosen by
//! its state.
//! Both are plain functions of a [`DeviceDetail`].

use serde::Serialize;
use time::OffsetDateTime;

use crate::TokenState;
use crate::assign_rules::AssignState;
use crate::devices::DeviceDetail;
use crate::mdm::CommandView;
use crate::resolve::RuleRef;
use guardmdm_store::OsUpdateOutcome;

/// One thing that happened to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEvent {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `abm`, `sync`, `assignment`, `apple`, `enrollment` or `command`.
    pub kind: &'static str,
    /// What happened, in words.
    pub what: String,
}

/// Everything recorded about a device, newest first.
pub fn timeline(detail: &DeviceDetail, commands: &[CommandView]) -> Vec<TimelineEvent> {
    let mut events = Events::default();
    events.abm_record(detail);
    events.assignment(detail);
    events.enrollment(detail);
    events.os_updates(detail);
    events.commands(commands);
    let mut out = events.0;
    out.sort_by_key(|e| std::cmp::Reverse(e.at));
    out
}

/// A timeline being gathered, in the order events are found (sorted at the end).
#[derive(Default)]
struct Events(Vec<TimelineEvent>);

impl Events {
    /// Adds an event that happened (`at` is known).
    fn push(&mut self, at: Option<OffsetDateTime>, kind: &'static str, what: String) {
        if let Some(at) = at {
            self.0.push(TimelineEvent { at, kind, what });
        }
    }

    /// Enrollments held for an OS update, or let through below the minimum.
    fn os_updates(&mut self, detail: &DeviceDetail) {
        for u in &detail.os_updates {
            let required = match &u.required_build {
                Some(build) => format!("{} ({build})", u.required_version),
                None => u.required_version.clone(),
            };
            let running = if u.device_version.is_empty() {
                "an OS version it does not report".to_string()
            } else {
                u.device_version.clone()
            };
            let times = if u.count > 1 {
                format!(", {} times", u.count)
            } else {
                String::new()
            };
            let what = match u.outcome {
                OsUpdateOutcome::Held => {
                    format!("Held for update to {required}: the device ran {running}{times}")
                }
                OsUpdateOutcome::NotAsked => format!(
                    "Below minimum {required}, cannot be asked to update: enrolled on {running}{}{times}",
                    u.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            };
            self.push(Some(u.last_at), "enrollment", what);
        }
    }

    /// The ABM record: assigned in ABM, first synced, last changed, removed.
    fn abm_record(&mut self, detail: &DeviceDetail) {
        let d = &detail.device;
        let entry = &detail.abm_entry;
        self.push(
            d.device.device_assigned_date,
            "abm",
            format!(
                "Assigned to this MDM server in Apple Business Manager{}",
                d.device
                    .device_assigned_by
                    .as_deref()
                    .map(|by| format!(" by {by}"))
                    .unwrap_or_default()
            ),
        );
        self.push(
            Some(d.first_seen_at),
            "sync",
            format!("First synced from ABM entry {entry}"),
        );
        if d.updated_at != d.first_seen_at {
            self.push(
                Some(d.updated_at),
                "sync",
                format!(
                    "Record last changed by a sync{}",
                    d.device
                        .op_type
                        .as_deref()
                        .map(|op| format!(" (Apple: {op})"))
                        .unwrap_or_default()
                ),
            );
        }
        self.push(
            d.removed_at,
            "sync",
            "Removed from ABM (no longer assigned to this MDM server)".to_string(),
        );
    }

    /// The profile: GuardMDM's last send, and what Apple recorded.
    fn assignment(&mut self, detail: &DeviceDetail) {
        if let Some(a) = &detail.assignment {
            self.push(
                a.attempted_at,
                "assignment",
                format!(
                    "GuardMDM sent profile {} to Apple (attempt {}): now {}{}",
                    a.profile.as_deref().unwrap_or("-"),
                    a.attempts,
                    a.state,
                    a.last_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            );
        }
        self.push(
            detail.apple.profile_assign_time,
            "apple",
            "Apple recorded the ADE profile for the device".to_string(),
        );
        self.push(
            detail.apple.profile_push_time,
            "apple",
            "The device downloaded its ADE profile".to_string(),
        );
    }

    /// The MDM enrollment: when it enrolled, when it was last heard from.
    fn enrollment(&mut self, detail: &DeviceDetail) {
        if let Some(e) = &detail.enrollment {
            self.push(
                e.enrolled_at,
                "enrollment",
                "Enrolled in GuardMDM (first TokenUpdate)".to_string(),
            );
            self.push(
                Some(e.last_seen_at),
                "enrollment",
                format!("Last MDM request (status {})", e.status),
            );
        }
    }

    /// Each command: queued, answered.
    fn commands(&mut self, commands: &[CommandView]) {
        for c in commands {
            self.push(
                Some(c.created_at),
                "command",
                format!("Command {} queued by {}", c.request_type, c.created_by),
            );
            self.push(
                c.completed_at,
                "command",
                format!("Command {} answered: {}", c.request_type, c.status),
            );
        }
    }
}

/// A row of the troubleshooting table (`docs/architecture.md` §10), applied to one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hint {
    /// The symptom.
    pub issue: &'static str,
    /// The likely cause, for this device.
    pub cause: String,
    /// What to do.
    pub solution: String,
}

/// The hints that apply to a device, given its ABM entry's token state.
pub fn hints(detail: &DeviceDetail, token: TokenState) -> Vec<Hint> {
    let mut out: Vec<Hint> = token_hint(detail, token).into_iter().collect();
    if detail.abm_status == "removed" {
        out.push(Hint {
            issue: "Device not enrolling",
            cause: "The device was removed from this MDM server in Apple Business Manager"
                .to_string(),
            solution: "Assign it to GuardMDM's MDM server again in Apple Business Manager; the \
                       next sync restores it."
                .to_string(),
        });
        return out;
    }
    let enrolled = detail
        .enrollment
        .as_ref()
        .is_some_and(|e| e.status == guardmdm_store::EnrollmentStatus::Enrolled);
    if detail.resolution.profile.is_none() {
        out.extend(unassigned_hints(detail, enrolled));
        return out;
    }
    let state = detail.assignment.as_ref().map(|a| a.state);
    out.extend(assignment_hint(detail, state));
    out.extend(delivery_hints(detail, state, enrolled));
    out
}

/// The hint for an ABM entry whose token Apple no longer accepts, if it is one.
fn token_hint(detail: &DeviceDetail, token: TokenState) -> Option<Hint> {
    match token {
        TokenState::Expired => Some(Hint {
            issue: "Devices not appearing in GuardMDM",
            cause: format!("The server token of ABM entry {} expired", detail.abm_entry),
            solution: "Regenerate the server token in Apple Business Manager and re-upload it \
                       under Settings > ABM Integration (or `guardmdm abm token upload`)."
                .to_string(),
        }),
        TokenState::Rejected | TokenState::TermsNotSigned => Some(Hint {
            issue: "Sync fails",
            cause: format!(
                "Apple refuses the token of ABM entry {} ({})",
                detail.abm_entry,
                token.as_str()
            ),
            solution: if token == TokenState::TermsNotSigned {
                "An ABM administrator must accept Apple's new terms at business.apple.com, then \
                 sync again."
                    .to_string()
            } else {
                "Download a new server token from Apple Business Manager and upload it.".to_string()
            },
        }),
        _ => None,
    }
}

/// The hints for a device no rule gives a profile.
fn unassigned_hints(detail: &DeviceDetail, enrolled: bool) -> Vec<Hint> {
    let os = detail.device.device.os.as_deref().unwrap_or("its OS");
    let mut out = vec![Hint {
        issue: "Devices stuck in \"Unassigned\"",
        cause: detail
            .resolution
            .unassigned_reason
            .clone()
            .unwrap_or_else(|| "No matching default profile".to_string()),
        solution: format!(
            "Create an ADE profile and set it as the default for {os} \
             (`guardmdm profiles default --os …`), or assign one to the device or a group."
        ),
    }];
    if !enrolled {
        out.push(Hint {
            issue: "Device not enrolling",
            cause: "No ADE profile assigned".to_string(),
            solution: format!("Assign a default profile for {os}."),
        });
    }
    out
}

/// The hint for an assignment Apple refused or put off, if it is one.
fn assignment_hint(detail: &DeviceDetail, state: Option<AssignState>) -> Option<Hint> {
    match state {
        Some(AssignState::Failed) => Some(Hint {
            issue: "Device not enrolling",
            cause: format!(
                "Apple refused the profile assignment{}",
                detail
                    .assignment
                    .as_ref()
                    .and_then(|a| a.last_error.as_deref())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            solution: "GuardMDM retries after a 24-hour cooldown (Apple's guidance); check that \
                       the device is still assigned to this MDM server in ABM."
                .to_string(),
        }),
        Some(AssignState::NotAccessible) => Some(Hint {
            issue: "Device not enrolling",
            cause: "Apple says the device is not on this MDM server".to_string(),
            solution: "Assign the device to GuardMDM's MDM server in Apple Business Manager."
                .to_string(),
        }),
        Some(AssignState::Throttled) => Some(Hint {
            issue: "Device not enrolling",
            cause: "Apple asked GuardMDM to slow down".to_string(),
            solution: "Nothing to do: GuardMDM retries when Apple allows.".to_string(),
        }),
        _ => None,
    }
}

/// The hints for a profile that did not reach the device: Apple has another one, or the
/// device has it but never checked in.
fn delivery_hints(detail: &DeviceDetail, state: Option<AssignState>, enrolled: bool) -> Vec<Hint> {
    let mut out = Vec::new();
    if matches!(detail.resolution.rule, RuleRef::Default { .. })
        && !detail.apple.up_to_date
        && state.is_some_and(|s| s != AssignState::Pending)
    {
        out.push(Hint {
            issue: "Wrong profile applied",
            cause: format!(
                "Apple does not have the profile the {} rule gives ({})",
                detail.resolution.rule,
                detail.resolution.profile.as_deref().unwrap_or("-")
            ),
            solution: "Update the default profile for the correct OS; GuardMDM reassigns it at \
                       Apple on its next pass."
                .to_string(),
        });
    }
    if !enrolled && detail.apple.profile_status.as_deref() == Some("pushed") {
        out.push(Hint {
            issue: "Device not enrolling",
            cause: "The device downloaded its ADE profile but has not checked in".to_string(),
            solution: "Check that the device can reach GuardMDM's enrollment URL (the profile's \
                       url, normally the public URL + /mdm/enroll) and that the push certificate \
                       is valid."
                .to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::AppleView;
    use crate::resolve::Resolution;
    use guardmdm_store::{AbmDevice, EntryId, StoredAbmDevice};
    use time::Duration;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2026-03-01 10:00 UTC);

    fn detail() -> DeviceDetail {
        DeviceDetail {
            abm_entry: "main".into(),
            abm_status: "assigned".into(),
            device: StoredAbmDevice {
                entry_id: EntryId::from_inner(uuid::Uuid::nil()),
                device: AbmDevice {
                    serial_number: "C02TEST00001".into(),
                    model: "iPhone 16".into(),
                    os: Some("tvOS".into()),
                    device_assigned_date: Some(T - Duration::days(2)),
                    ..AbmDevice::default()
                },
                removed_at: None,
                first_seen_at: T - Duration::days(1),
                updated_at: T,
            },
            resolution: Resolution {
                profile_id: None,
                profile: None,
                profile_version: None,
                rule: RuleRef::None,
                steps: vec![],
                unassigned_reason: Some("no default for tvOS".into()),
            },
            explicit_profile: None,
            groups: vec![],
            apple: AppleView {
                profile_status: Some("empty".into()),
                profile_uuid: None,
                profile_assign_time: None,
                profile_push_time: None,
                expected_profile_uuid: None,
                up_to_date: false,
            },
            assignment: None,
            enrollment: None,
            os_updates: vec![],
        }
    }

    #[test]
    fn an_unassigned_device_gets_the_default_profile_hints() {
        let h = hints(&detail(), TokenState::Active);
        let issues: Vec<&str> = h.iter().map(|h| h.issue).collect();
        assert_eq!(
            issues,
            ["Devices stuck in \"Unassigned\"", "Device not enrolling"]
        );
        assert_eq!(h[0].cause, "no default for tvOS");
        assert!(
            h[0].solution.contains("default for tvOS"),
            "{}",
            h[0].solution
        );
    }

    #[test]
    fn an_expired_token_comes_first_and_removal_says_reassign() {
        let h = hints(&detail(), TokenState::Expired);
        assert_eq!(h[0].issue, "Devices not appearing in GuardMDM");
        assert!(h[0].solution.contains("re-upload"));
        let mut removed = detail();
        removed.abm_status = "removed".into();
        let h = hints(&removed, TokenState::Active);
        assert_eq!(h.len(), 1);
        assert!(h[0].solution.contains("Assign it to GuardMDM"));
    }

    #[test]
    fn the_timeline_is_newest_first() {
        let t = timeline(&detail(), &[]);
        let kinds: Vec<&str> = t.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["sync", "sync", "abm"]);
        assert!(t.windows(2).all(|w| w[0].at >= w[1].at));
    }

    #[test]
    fn the_timeline_says_held_for_update_and_below_minimum() {
        let at = time::macros::datetime!(2026-05-01 10:00 UTC);
        let event = |outcome, count| guardmdm_store::OsUpdateEvent {
            serial_number: "S".into(),
            udid: "U".into(),
            device_version: "17.2".into(),
            device_build: Some("21C62".into()),
            required_version: "17.5".into(),
            required_build: None,
            outcome,
            reason: (outcome == OsUpdateOutcome::NotAsked)
                .then(|| "no MDM_CAN_REQUEST_SOFTWARE_UPDATE".to_string()),
            first_at: at,
            last_at: at,
            count,
        };
        let mut d = detail();
        d.os_updates = vec![
            event(OsUpdateOutcome::Held, 2),
            event(OsUpdateOutcome::NotAsked, 1),
        ];
        let what: Vec<String> = timeline(&d, &[])
            .into_iter()
            .filter(|e| e.kind == "enrollment")
            .map(|e| e.what)
            .collect();
        assert_eq!(
            what,
            [
                "Held for update to 17.5: the device ran 17.2, 2 times",
                "Below minimum 17.5, cannot be asked to update: enrolled on 17.2 (no MDM_CAN_REQUEST_SOFTWARE_UPDATE)",
            ]
        );
    }
}

//! The rules of ABM device sync as plain functions (`docs/protocol.md` §3.2–§3.4, §9.1–§9.4):
//! how Apple's records become stored ones, which record of a serial wins, and what the
//! cursor state machine does after each page or error.

use std::collections::HashMap;

use guardmdm_abm::{DepError, Device};
use guardmdm_store::{AbmDevice, SyncPhase, SyncState};

/// The stored form of Apple's record.
pub fn to_record(d: &Device) -> AbmDevice {
    AbmDevice {
        serial_number: d.serial_number.clone(),
        model: d.model.clone(),
        description: d.description.clone(),
        color: d.color.clone(),
        asset_tag: d.asset_tag.clone(),
        device_family: d.device_family.as_ref().map(ToString::to_string),
        os: d.os.as_ref().map(ToString::to_string),
        device_assigned_by: d.device_assigned_by.clone(),
        device_assigned_date: d.device_assigned_date,
        profile_status: d.profile_status.as_ref().map(ToString::to_string),
        profile_uuid: d.profile_uuid.clone(),
        profile_assign_time: d.profile_assign_time,
        profile_push_time: d.profile_push_time,
        op_type: d.op_type.as_ref().map(|o| o.as_str().to_ascii_lowercase()),
        op_date: d.op_date,
    }
}

/// One record per serial: when a serial repeats in a page (added then deleted, …), the one
/// with the latest `op_date` wins; on equal dates, the later one in the page (§3.3, §9.4).
pub fn reduce_page(devices: &[Device]) -> Vec<AbmDevice> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(devices.len());
    let mut out: Vec<AbmDevice> = Vec::with_capacity(devices.len());
    for d in devices {
        match index.get(d.serial_number.as_str()) {
            Some(&i) => {
                if d.op_date >= out[i].op_date {
                    out[i] = to_record(d);
                }
            }
            None => {
                index.insert(d.serial_number.as_str(), out.len());
                out.push(to_record(d));
            }
        }
    }
    out
}

/// What to do after a page was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPage {
    /// Ask again with this state.
    Continue(SyncState),
    /// The full fetch ended: reconcile (when asked) and switch to sync with this state.
    FetchComplete(SyncState),
    /// Up to date.
    Done,
    /// Apple answered the cursor it was given with `more_to_follow`: stop instead of looping
    /// (micromdm #1016, nanodep #73).
    RepeatedCursor,
}

/// The state to store with a page, and what comes next.
pub fn after_page(
    state: &SyncState,
    page_cursor: Option<String>,
    more_to_follow: bool,
) -> (SyncState, AfterPage) {
    let cursor = page_cursor.or_else(|| state.cursor.clone());
    let next = SyncState {
        cursor: cursor.clone(),
        ..state.clone()
    };
    if more_to_follow && cursor.is_some() && cursor == state.cursor {
        return (next, AfterPage::RepeatedCursor);
    }
    if more_to_follow {
        return (next.clone(), AfterPage::Continue(next));
    }
    match state.phase {
        SyncPhase::Fetch => {
            let synced = SyncState {
                phase: SyncPhase::Sync,
                reconcile: false,
                ..next.clone()
            };
            (next, AfterPage::FetchComplete(synced))
        }
        SyncPhase::Sync => (next, AfterPage::Done),
    }
}

/// What to do after Apple refused a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// `EXHAUSTED_CURSOR` during a fetch: the fetch is complete, continue with sync.
    SwitchToSync(SyncState),
    /// `EXPIRED_CURSOR` / `INVALID_CURSOR`: start a new, reconciling full fetch.
    Refetch(SyncState),
    /// Give up this run with the error.
    Stop,
}

/// The recovery for `err` in `state`; a refetch happens at most once per run.
pub fn after_error(state: &SyncState, err: &DepError, refetched_already: bool) -> Recovery {
    if err.is_cursor_exhausted() && state.phase == SyncPhase::Fetch {
        return Recovery::SwitchToSync(SyncState {
            phase: SyncPhase::Sync,
            reconcile: false,
            ..state.clone()
        });
    }
    let reset = err.is_cursor_reset() || matches!(err, DepError::CursorRequired);
    if reset && !refetched_already {
        return Recovery::Refetch(full_refetch(state));
    }
    Recovery::Stop
}

/// A fresh, reconciling full fetch after `state` (cursor reset or admin's full resync).
pub fn full_refetch(state: &SyncState) -> SyncState {
    SyncState {
        cursor: None,
        phase: SyncPhase::Fetch,
        generation: state.generation + 1,
        reconcile: true,
    }
}

/// The admin-facing sentence for an error that ended a run; the token-health problems use
/// the wording of the troubleshooting table (`docs/architecture.md` §10).
pub fn run_error_message(err: &DepError) -> String {
    match err {
        DepError::Transport { .. } | DepError::Server { .. } | DepError::Throttled { .. } => {
            format!(
                "Sync failed: {err}. Likely a network issue: check firewall rules and retry; \
             GuardMDM retries automatically every 5 minutes."
            )
        }
        other => match other.token_problem() {
            Some((_, message)) => message.to_string(),
            None => format!("Sync failed: {other}"),
        },
    }
}

/// The message for a run refused because the token expired (`docs/architecture.md` §10).
pub const TOKEN_EXPIRED_MESSAGE: &str =
    "Token expired — regenerate and re-upload the ABM token (devices are not syncing).";

/// The error of a run that ended because the instance running it stopped (killed, crashed,
/// lost power): its lease lapsed, or a single-process store found it at start-up.
pub const INSTANCE_STOPPED_MESSAGE: &str = "The GuardMDM instance running this sync stopped while syncing (it no longer renewed the entry's sync lease). Nothing is lost: the next sync continues from the saved cursor.";

#[cfg(test)]
mod tests {
    use super::*;
    use guardmdm_abm::OpType;
    use time::macros::datetime;

    fn dev(serial: &str, op: &OpType, at: time::OffsetDateTime, model: &str) -> Device {
        let json = serde_json::json!({
            "serial_number": serial, "model": model, "op_type": op.as_str(),
            "op_date": at.format(&time::format_description::well_known::Rfc3339).unwrap(),
            "os": "iPadOS", "device_family": "iPad",
        });
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn repeated_serials_keep_the_latest_op_date() {
        let t = datetime!(2026-11-27 10:00 UTC);
        let page = [
            dev("A", &OpType::Added, t, "first"),
            dev("B", &OpType::Added, t, "b"),
            dev(
                "A",
                &OpType::Deleted,
                t + time::Duration::minutes(5),
                "second",
            ),
            dev(
                "A",
                &OpType::Modified,
                t + time::Duration::minutes(1),
                "stale",
            ),
        ];
        let reduced = reduce_page(&page);
        assert_eq!(reduced.len(), 2);
        assert_eq!(reduced[0].serial_number, "A");
        assert_eq!(reduced[0].model, "second");
        assert!(reduced[0].is_deleted());
        assert_eq!(reduced[0].os.as_deref(), Some("iPadOS"));
        assert_eq!(reduced[1].op_type.as_deref(), Some("added"));
    }

    fn st(cursor: Option<&str>, phase: SyncPhase) -> SyncState {
        SyncState {
            cursor: cursor.map(str::to_string),
            phase,
            generation: 3,
            reconcile: true,
        }
    }

    #[test]
    fn the_cursor_state_machine() {
        let fetch = st(Some("c1"), SyncPhase::Fetch);
        let (saved, next) = after_page(&fetch, Some("c2".into()), true);
        assert_eq!(saved.cursor.as_deref(), Some("c2"));
        assert_eq!(next, AfterPage::Continue(saved.clone()));
        let (saved, next) = after_page(&saved, Some("c3".into()), false);
        assert_eq!(
            saved.phase,
            SyncPhase::Fetch,
            "stored with its page as fetched"
        );
        let AfterPage::FetchComplete(synced) = next else {
            panic!("{next:?}")
        };
        assert_eq!(
            (synced.phase, synced.reconcile, synced.cursor.as_deref()),
            (SyncPhase::Sync, false, Some("c3"))
        );
        let (_, next) = after_page(&synced, Some("c4".into()), false);
        assert_eq!(next, AfterPage::Done);
        let (_, next) = after_page(&synced, Some("c3".into()), true);
        assert_eq!(next, AfterPage::RepeatedCursor);
        let (saved, _) = after_page(&synced, None, false);
        assert_eq!(
            saved.cursor.as_deref(),
            Some("c3"),
            "no cursor in the answer keeps ours"
        );
    }

    #[test]
    fn recoveries() {
        let fetch = st(Some("c"), SyncPhase::Fetch);
        let sync = st(Some("c"), SyncPhase::Sync);
        assert_eq!(
            after_error(&fetch, &DepError::CursorExhausted, false),
            Recovery::SwitchToSync(SyncState {
                phase: SyncPhase::Sync,
                reconcile: false,
                ..fetch.clone()
            })
        );
        let Recovery::Refetch(fresh) = after_error(&sync, &DepError::CursorExpired, false) else {
            panic!()
        };
        assert_eq!(
            (fresh.cursor, fresh.phase, fresh.generation, fresh.reconcile),
            (None, SyncPhase::Fetch, 4, true)
        );
        assert!(matches!(
            after_error(&sync, &DepError::CursorInvalid, false),
            Recovery::Refetch(_)
        ));
        assert_eq!(
            after_error(&sync, &DepError::CursorExpired, true),
            Recovery::Stop,
            "once per run"
        );
        assert_eq!(
            after_error(&sync, &DepError::TermsNotSigned, false),
            Recovery::Stop
        );
        assert_eq!(
            after_error(&sync, &DepError::Server { status: 500 }, false),
            Recovery::Stop
        );
    }

    #[test]
    fn messages_follow_the_troubleshooting_table() {
        assert!(
            run_error_message(&DepError::Server { status: 503 })
                .contains("check firewall rules and retry")
        );
        assert!(run_error_message(&DepError::TermsNotSigned).contains("accept"));
        assert!(TOKEN_EXPIRED_MESSAGE.contains("regenerate and re-upload"));
    }
}

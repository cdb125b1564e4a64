//! When a device's profile must be (re)sent to Apple, and what Apple's answer means for it:
//! plain functions over plain types (`docs/protocol.md` §3.8 and §9).
//!
//! Per-device states: `unassigned` (no profile resolves), `pending` (to be sent), `assigned`
//! (Apple accepted our profile), `pushed` (the device downloaded it in Setup Assistant),
//! `not_accessible` (Apple says the device is not on this MDM server), `failed` (24-hour
//! cooldown before a retry, Apple's guidance), `throttled` (until Apple's
//! `retry_after_seconds`), `removed` (the device left ABM: nothing is sent).
//!
//! A device is sent when:
//! - its resolved profile (version) differs from the one last sent for it, or it was never
//!   sent;
//! - or Apple reported something about it since our last send (a sync stored a newer record)
//!   and that record shows another profile, `profile_status` `empty` or `removed`, or
//!   `op_type` `added` (it came back to the server) — Apple may have dropped our profile
//!   (§9.2, §9.3);
//! - and no cooldown or throttle is running.
//!
//! Nothing is remembered outside the record: a crash between Apple's answer and writing it
//! leaves the old record, and the next pass sends again (assigning is idempotent at Apple).

use time::{Duration, OffsetDateTime};

use guardmdm_abm::DeviceStatus;
pub use guardmdm_store::AssignState;
use guardmdm_store::{AssignmentRecord, RuleRef, StoredAbmDevice, StoredText};

use crate::ServiceError;
use crate::resolve::Resolution;

/// How long a serial rests after Apple answers `FAILED` or `NOT_ACCESSIBLE`.
pub const FAILED_COOLDOWN: Duration = Duration::hours(24);
/// The wait after `THROTTLED` when Apple gives no `retry_after_seconds`.
pub const DEFAULT_THROTTLE: Duration = Duration::seconds(60);

/// The plan for one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The record to store when nothing is sent, or to send from (state `pending`).
    pub record: AssignmentRecord,
    /// Send `record.apple_uuid`'s target to Apple.
    pub send: bool,
}

/// Decides what to do with one present device. `target_uuid` is the Apple `profile_uuid` of
/// the resolved profile version for this device's ABM entry (`None` when the resolution is
/// unassigned, or when the profile could not be defined at Apple: then `define_error` says
/// why and the device stays pending).
pub fn plan(
    device: &StoredAbmDevice,
    resolution: &Resolution,
    target_uuid: Option<&str>,
    define_error: Option<&str>,
    prior: Option<&AssignmentRecord>,
    now: OffsetDateTime,
) -> Plan {
    let mut record = resolved_record(device, resolution, prior, now);
    let Some(_) = resolution.profile_id else {
        record.state = AssignState::Unassigned;
        record.retry_at = None;
        // For an unassigned device the "problem" is why no rule gave it a profile.
        record.last_error = resolution.unassigned_reason.clone();
        return Plan {
            record,
            send: false,
        };
    };
    let Some(target) = target_uuid else {
        record.state = AssignState::Pending;
        record.last_error = define_error.map(str::to_string);
        return Plan {
            record,
            send: false,
        };
    };
    plan_send(device, record, prior, target, now)
}

/// The device's record (its prior one, or a new pending one) with the profile, version and
/// rule of `resolution`.
fn resolved_record(
    device: &StoredAbmDevice,
    resolution: &Resolution,
    prior: Option<&AssignmentRecord>,
    now: OffsetDateTime,
) -> AssignmentRecord {
    let serial = &device.device.serial_number;
    let mut record = prior.cloned().unwrap_or_else(|| AssignmentRecord {
        serial_number: serial.clone(),
        profile_id: None,
        profile_version: None,
        rule: RuleRef::None,
        state: AssignState::Pending,
        apple_uuid: None,
        attempted_at: None,
        retry_at: None,
        attempts: 0,
        last_error: None,
        updated_at: now,
    });
    record.profile_id = resolution.profile_id;
    record.profile_version = resolution.profile_version;
    record.rule = resolution.rule.clone();
    record
}

/// [`plan`] for a device whose profile Apple knows as `target`: rest while a cooldown or
/// throttle runs, adopt what Apple reports when it has the target, leave a settled device
/// alone, and otherwise send.
fn plan_send(
    device: &StoredAbmDevice,
    mut record: AssignmentRecord,
    prior: Option<&AssignmentRecord>,
    target: &str,
    now: OffsetDateTime,
) -> Plan {
    let prior_state = prior.map(|p| p.state);
    let same_target = prior
        .and_then(|p| p.apple_uuid.as_deref())
        .is_some_and(|u| u.eq_ignore_ascii_case(target));
    let apple_news = match prior.and_then(|p| p.attempted_at) {
        None => true,
        Some(sent) => device.updated_at > sent,
    };
    let apple = &device.device;
    let apple_has_target = apple
        .profile_uuid
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case(target));
    let status = apple.profile_status.as_deref().map(str::to_ascii_lowercase);
    let apple_dropped = matches!(status.as_deref(), None | Some("empty" | "removed"))
        || apple
            .op_type
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("added"));

    // A cooldown or throttle runs to its end, unless Apple has news about a device it called
    // not accessible (it may have been assigned to this server since).
    let resting = prior.and_then(|p| p.retry_at).is_some_and(|at| at > now)
        && matches!(
            prior_state,
            Some(AssignState::Failed | AssignState::Throttled | AssignState::NotAccessible)
        );
    if resting && !(prior_state == Some(AssignState::NotAccessible) && apple_news) {
        return Plan {
            record,
            send: false,
        };
    }

    if apple_news && apple_has_target && !apple_dropped {
        // Apple has our profile: adopt its view.
        record.state = if status.as_deref() == Some("pushed") {
            AssignState::Pushed
        } else {
            AssignState::Assigned
        };
        record.apple_uuid = Some(target.to_string());
        record.retry_at = None;
        record.last_error = None;
        return Plan {
            record,
            send: false,
        };
    }
    let settled = matches!(
        prior_state,
        Some(AssignState::Assigned | AssignState::Pushed)
    );
    if !apple_news && same_target && settled {
        return Plan {
            record,
            send: false,
        };
    }
    record.state = AssignState::Pending;
    record.apple_uuid = Some(target.to_string());
    record.last_error = None;
    Plan { record, send: true }
}

/// Applies Apple's per-serial answer to a record that was sent.
pub fn apply_answer(
    record: &mut AssignmentRecord,
    answer: Option<&DeviceStatus>,
    retry_after_seconds: Option<u64>,
    now: OffsetDateTime,
) {
    record.attempted_at = Some(now);
    record.attempts += 1;
    let (state, retry_at, error) = match answer {
        Some(DeviceStatus::Success) => (AssignState::Assigned, None, None),
        Some(DeviceStatus::NotAccessible) => (
            AssignState::NotAccessible,
            Some(now + FAILED_COOLDOWN),
            Some(
                "Apple answered NOT_ACCESSIBLE: the device is not assigned to this MDM server in ABM; GuardMDM retries when ABM reports a change, or after 24 hours"
                    .to_string(),
            ),
        ),
        Some(DeviceStatus::Failed) => (
            AssignState::Failed,
            Some(now + FAILED_COOLDOWN),
            Some(
                "Apple answered FAILED; GuardMDM retries after a 24-hour cooldown (Apple's guidance: sooner retries keep failing)"
                    .to_string(),
            ),
        ),
        Some(DeviceStatus::Throttled) => {
            let wait = retry_after_seconds
                .and_then(|s| i64::try_from(s).ok())
                .map_or(DEFAULT_THROTTLE, |s| Duration::seconds(s.max(1)));
            (
                AssignState::Throttled,
                Some(now + wait),
                Some(format!(
                    "Apple answered THROTTLED; GuardMDM retries after {} seconds",
                    wait.whole_seconds()
                )),
            )
        }
        Some(other) => (
            AssignState::Pending,
            None,
            Some(format!(
                "Apple answered {}; GuardMDM retries on the next pass",
                other.as_str()
            )),
        ),
        None => (
            AssignState::Pending,
            None,
            Some(
                "Apple's answer did not mention this serial; GuardMDM retries on the next pass"
                    .to_string(),
            ),
        ),
    };
    record.state = state;
    record.retry_at = retry_at;
    record.last_error = error;
    record.updated_at = now;
}

/// Records a send that got no per-serial answer (the call failed): the device stays pending
/// and is sent again on the next pass; the attempt time is left alone, so Apple's later
/// records still count as news.
pub fn apply_call_failure(record: &mut AssignmentRecord, error: &str, now: OffsetDateTime) {
    record.state = AssignState::Pending;
    record.last_error = Some(format!(
        "the assignment call to Apple failed ({error}); GuardMDM retries on the next pass"
    ));
    record.updated_at = now;
}

/// Whether two records differ in anything but `updated_at` (unchanged records are not
/// rewritten).
pub fn changed(before: Option<&AssignmentRecord>, after: &AssignmentRecord) -> bool {
    match before {
        None => true,
        Some(b) => {
            let mut b = b.clone();
            b.updated_at = after.updated_at;
            &b != after
        }
    }
}

/// An assignment state as an admin filters by it (`not_accessible`, …).
///
/// # Errors
/// [`ServiceError::Invalid`] naming the states, for anything else.
pub fn parse_state(text: &str) -> Result<AssignState, ServiceError> {
    AssignState::from_stored(text).ok_or_else(|| {
        ServiceError::Invalid(format!(
            "assignment state {text:?}: use {}",
            AssignState::ALL.map(AssignState::as_str).join(", ")
        ))
    })
}

/// Where an incremental pass starts looking for devices Apple changed, after a pass that
/// started at `last_started` (unknown for passes recorded before it was kept) and finished at
/// `last_finished`, with or without an error.
///
/// Devices of an entry are written only by the instance holding its lease, and a pass runs
/// under that lease after the sync's writes: a clean pass saw every device changed before it
/// started. Changes after it come from later syncs, perhaps on another instance whose clock
/// differs by up to `margin`, hence `last_finished - margin`. So whatever a sync wrote just
/// before its pass (all of a full fetch merged at once) is not looked at again. After a pass
/// that stopped early, only the margin applies. The daily full pass heals anything missed.
pub fn incremental_since(
    last_started: Option<OffsetDateTime>,
    last_finished: OffsetDateTime,
    stopped_early: bool,
    margin: Duration,
) -> OffsetDateTime {
    let after_margin = last_finished - margin;
    match last_started {
        Some(started) if !stopped_early => after_margin.max(started),
        _ => after_margin,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_incremental_pass_skips_what_the_last_clean_pass_saw() {
        let margin = Duration::seconds(30);
        let started = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let short = started + Duration::seconds(12);
        // A pass shorter than the margin: everything before its start was seen.
        assert_eq!(
            incremental_since(Some(started), short, false, margin),
            started
        );
        // A long pass: the margin before its end is later than its start.
        let long = started + Duration::seconds(300);
        assert_eq!(
            incremental_since(Some(started), long, false, margin),
            long - margin
        );
        // A pass that stopped early, or one recorded without its start: the margin only.
        assert_eq!(
            incremental_since(Some(started), short, true, margin),
            short - margin
        );
        assert_eq!(
            incremental_since(None, short, false, margin),
            short - margin
        );
    }
    use super::*;
    use crate::resolve::RuleRef;
    use guardmdm_store::{AbmDevice, EntryId, ProfileId};
    use uuid::Uuid;

    const U1: &str = "AAAA1111";
    const U2: &str = "BBBB2222";

    fn at(minutes: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minutes)
    }

    fn device(
        status: Option<&str>,
        uuid: Option<&str>,
        op: Option<&str>,
        stored_at: i64,
    ) -> StoredAbmDevice {
        StoredAbmDevice {
            entry_id: EntryId::from_inner(Uuid::nil()),
            device: AbmDevice {
                serial_number: "S1".to_string(),
                profile_status: status.map(str::to_string),
                profile_uuid: uuid.map(str::to_string),
                op_type: op.map(str::to_string),
                ..AbmDevice::default()
            },
            removed_at: None,
            first_seen_at: at(0),
            updated_at: at(stored_at),
        }
    }

    fn resolution(version: i64) -> Resolution {
        Resolution {
            profile_id: Some(ProfileId::from_inner(Uuid::from_u128(1))),
            profile: Some("p".to_string()),
            profile_version: Some(version),
            rule: RuleRef::Device,
            steps: vec![],
            unassigned_reason: None,
        }
    }

    fn unassigned() -> Resolution {
        Resolution {
            profile_id: None,
            profile: None,
            profile_version: None,
            rule: RuleRef::None,
            steps: vec![],
            unassigned_reason: Some("no default for tvOS".to_string()),
        }
    }

    /// Sends, and Apple answers `answer` at minute `when`.
    fn sent(
        d: &StoredAbmDevice,
        target: &str,
        answer: &DeviceStatus,
        when: i64,
    ) -> AssignmentRecord {
        let p = plan(d, &resolution(1), Some(target), None, None, at(when));
        assert!(p.send);
        let mut r = p.record;
        apply_answer(&mut r, Some(answer), Some(120), at(when));
        r
    }

    #[test]
    fn a_new_device_is_sent_then_left_alone_once_apple_confirms() {
        let d = device(Some("empty"), None, Some("added"), 0);
        let p = plan(&d, &resolution(1), Some(U1), None, None, at(1));
        assert!(p.send);
        assert_eq!(p.record.state, AssignState::Pending);
        assert_eq!(p.record.rule, RuleRef::Device);
        let mut r = p.record;
        apply_answer(&mut r, Some(&DeviceStatus::Success), None, at(1));
        assert_eq!(r.state, AssignState::Assigned);
        assert_eq!(r.attempts, 1);
        // No news from Apple yet: nothing to do, even though the stored record still says
        // `added` / `empty`.
        let again = plan(&d, &resolution(1), Some(U1), None, Some(&r), at(2));
        assert!(!again.send);
        assert!(!changed(Some(&r), &again.record));
        // The next sync stores Apple's `modified` with our profile: adopt it.
        let confirmed = device(Some("assigned"), Some(U1), Some("modified"), 5);
        let p = plan(&confirmed, &resolution(1), Some(U1), None, Some(&r), at(6));
        assert!(!p.send);
        assert_eq!(p.record.state, AssignState::Assigned);
        // The device downloads it.
        let pushed = device(Some("pushed"), Some(U1), Some("modified"), 9);
        let p = plan(
            &pushed,
            &resolution(1),
            Some(U1),
            None,
            Some(&p.record),
            at(10),
        );
        assert!(!p.send);
        assert_eq!(p.record.state, AssignState::Pushed);
    }

    #[test]
    fn a_new_profile_version_is_sent_again() {
        let d = device(Some("empty"), None, Some("added"), 0);
        let r = sent(&d, U1, &DeviceStatus::Success, 1);
        let pushed = device(Some("pushed"), Some(U1), Some("modified"), 5);
        let settled = plan(&pushed, &resolution(1), Some(U1), None, Some(&r), at(6));
        assert!(!settled.send);
        assert_eq!(settled.record.state, AssignState::Pushed);
        let p = plan(
            &pushed,
            &resolution(2),
            Some(U2),
            None,
            Some(&settled.record),
            at(7),
        );
        assert!(p.send);
        assert_eq!(p.record.apple_uuid.as_deref(), Some(U2));
        assert_eq!(p.record.profile_version, Some(2));
    }

    #[test]
    fn apple_dropping_our_profile_is_news_that_sends_again() {
        let d = device(Some("empty"), None, Some("added"), 0);
        let r = sent(&d, U1, &DeviceStatus::Success, 1);
        for (status, uuid, op) in [
            (Some("removed"), Some(U1), Some("modified")), // re-assigned to the same server (§9.3)
            (Some("empty"), None, Some("added")),          // came back
            (Some("assigned"), Some("FOREIGN"), Some("modified")), // another profile
            (Some("assigned"), Some(U1), Some("added")),   // came back as added
            (None, None, Some("modified")),
        ] {
            let news = device(status, uuid, op, 5);
            let p = plan(&news, &resolution(1), Some(U1), None, Some(&r), at(6));
            assert!(p.send, "{status:?} {uuid:?} {op:?}");
        }
    }

    #[test]
    fn failed_rests_24_hours_and_throttled_until_apple_says() {
        let d = device(Some("empty"), None, Some("added"), 0);
        let failed = sent(&d, U1, &DeviceStatus::Failed, 1);
        assert_eq!(failed.state, AssignState::Failed);
        assert_eq!(failed.retry_at, Some(at(1) + FAILED_COOLDOWN));
        assert!(failed.last_error.as_deref().unwrap().contains("24-hour"));
        let p = plan(&d, &resolution(1), Some(U1), None, Some(&failed), at(60));
        assert!(!p.send);
        assert_eq!(p.record.state, AssignState::Failed);
        // Even a profile change waits for the cooldown.
        assert!(!plan(&d, &resolution(2), Some(U2), None, Some(&failed), at(60)).send);
        let later = at(1) + FAILED_COOLDOWN + Duration::minutes(1);
        assert!(plan(&d, &resolution(1), Some(U1), None, Some(&failed), later).send);

        let throttled = sent(&d, U1, &DeviceStatus::Throttled, 1);
        assert_eq!(throttled.state, AssignState::Throttled);
        assert_eq!(throttled.retry_at, Some(at(1) + Duration::seconds(120)));
        assert!(!plan(&d, &resolution(1), Some(U1), None, Some(&throttled), at(2)).send);
        assert!(plan(&d, &resolution(1), Some(U1), None, Some(&throttled), at(4)).send);
        let mut no_hint = throttled;
        apply_answer(&mut no_hint, Some(&DeviceStatus::Throttled), None, at(5));
        assert_eq!(no_hint.retry_at, Some(at(5) + DEFAULT_THROTTLE));
    }

    #[test]
    fn not_accessible_retries_on_news_from_apple() {
        let d = device(Some("empty"), None, Some("added"), 0);
        let r = sent(&d, U1, &DeviceStatus::NotAccessible, 1);
        assert_eq!(r.state, AssignState::NotAccessible);
        assert!(!plan(&d, &resolution(1), Some(U1), None, Some(&r), at(30)).send);
        let news = device(Some("empty"), None, Some("added"), 40);
        assert!(plan(&news, &resolution(1), Some(U1), None, Some(&r), at(41)).send);
    }

    #[test]
    fn a_failed_call_keeps_the_device_pending_for_the_next_pass() {
        let d = device(Some("empty"), None, Some("added"), 0);
        let mut r = plan(&d, &resolution(1), Some(U1), None, None, at(1)).record;
        apply_call_failure(&mut r, "HTTP 503", at(1));
        assert_eq!(r.state, AssignState::Pending);
        assert!(r.last_error.as_deref().unwrap().contains("503"));
        assert!(plan(&d, &resolution(1), Some(U1), None, Some(&r), at(2)).send);
        // A serial missing from Apple's answer is retried too.
        let mut r2 = plan(&d, &resolution(1), Some(U1), None, None, at(1)).record;
        apply_answer(&mut r2, None, None, at(1));
        assert_eq!(r2.state, AssignState::Pending);
        assert!(plan(&d, &resolution(1), Some(U1), None, Some(&r2), at(2)).send);
    }

    #[test]
    fn a_crash_before_the_answer_is_written_sends_again() {
        // The record written before the crash is the prior one: the same plan comes out.
        let d = device(Some("empty"), None, Some("added"), 0);
        let first = plan(&d, &resolution(1), Some(U1), None, None, at(1));
        let again = plan(&d, &resolution(1), Some(U1), None, None, at(2));
        assert!(first.send && again.send);
    }

    #[test]
    fn unassigned_and_undefinable_profiles_are_not_sent() {
        let d = device(Some("empty"), None, Some("added"), 0);
        let p = plan(&d, &unassigned(), None, None, None, at(1));
        assert!(!p.send);
        assert_eq!(p.record.state, AssignState::Unassigned);
        assert_eq!(p.record.rule, RuleRef::None);
        assert_eq!(p.record.last_error.as_deref(), Some("no default for tvOS"));
        let p = plan(
            &d,
            &resolution(1),
            None,
            Some("Apple rejected the profile: CONFIG_URL_INVALID"),
            None,
            at(1),
        );
        assert!(!p.send);
        assert_eq!(p.record.state, AssignState::Pending);
        assert!(p.record.last_error.unwrap().contains("CONFIG_URL_INVALID"));
    }

    #[test]
    fn a_device_apple_already_has_on_our_profile_is_adopted_without_sending() {
        // For example after GuardMDM's database was restored from a backup.
        let d = device(Some("assigned"), Some(U1), Some("modified"), 0);
        let p = plan(&d, &resolution(1), Some(U1), None, None, at(1));
        assert!(!p.send);
        assert_eq!(p.record.state, AssignState::Assigned);
    }

    #[test]
    fn states_round_trip() {
        for s in AssignState::ALL {
            assert_eq!(AssignState::from_stored(s.as_str()), Some(s));
        }
        assert_eq!(AssignState::from_stored("x"), None);
    }
}

//! Devices stuck in Setup Assistant: the rules, as plain functions. A device enrolled with an
//! ADE profile that awaits configuration waits in Setup Assistant until GuardMDM sends
//! `DeviceConfigured` (after the profile's initial commands, `docs/architecture.md` section 6).
//! Once it has waited longer than the threshold (`--stuck-after`, [`DEFAULT_STUCK_AFTER`]) it
//! is *stuck*, and [`stuck_reason`] says why; [`release_plan`] says which of its open commands
//! a release cancels; [`auto_release_due`] when a profile's `release_after` lets GuardMDM
//! release it by itself.

use guardmdm_store::{CommandStatus, MdmCommand};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::mdm::INITIAL_COMMANDS_SENDER;

/// How long a device may wait in Setup Assistant before it counts as stuck, by default.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::minutes(30);

/// The `RequestType` that lets a device leave Setup Assistant.
pub const DEVICE_CONFIGURED: &str = "DeviceConfigured";

/// Why a device is still in Setup Assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StuckReason {
    /// The device stopped asking: nothing heard from it since `since`.
    NoCheckIn {
        /// Its last request.
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
    },
    /// An initial command of its profile is not answered yet.
    PendingCommand {
        /// Its `RequestType`.
        request_type: String,
        /// Its `CommandUUID`.
        command_uuid: String,
        /// `queued`, `sent` or `not_now`.
        status: CommandStatus,
        /// How many times the device answered `NotNow` to it.
        not_now_count: u32,
    },
    /// `DeviceConfigured` is queued or sent, and the device has not acknowledged it.
    DeviceConfiguredNotAcknowledged {
        /// Its `CommandUUID`.
        command_uuid: String,
        /// `queued`, `sent` or `not_now`.
        status: CommandStatus,
    },
    /// Nothing is open for it: `DeviceConfigured` failed or was never queued.
    NothingQueued,
}

impl StuckReason {
    /// The reason in words, for tables and the dashboard.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::NoCheckIn { since } => format!(
                "no check-in since {}: the device stopped asking",
                since
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
            Self::PendingCommand {
                request_type,
                status,
                not_now_count,
                ..
            } => {
                let answers = match not_now_count {
                    0 => "never answered".to_string(),
                    1 => "answered NotNow once".to_string(),
                    n => format!("answered NotNow {n} times"),
                };
                format!("initial command {request_type} pending ({status}, {answers})")
            }
            Self::DeviceConfiguredNotAcknowledged { status, .. } => {
                format!("DeviceConfigured {status}, not acknowledged")
            }
            Self::NothingQueued => {
                "nothing queued: DeviceConfigured failed or was never sent".to_string()
            }
        }
    }
}

/// Whether a device waiting since `awaiting_since` is stuck at `now`.
#[must_use]
pub fn is_stuck(awaiting_since: OffsetDateTime, now: OffsetDateTime, threshold: Duration) -> bool {
    now - awaiting_since >= threshold
}

/// The latest `awaiting_since` a stuck device can have at `now`.
#[must_use]
pub fn stuck_cutoff(now: OffsetDateTime, threshold: Duration) -> OffsetDateTime {
    now - threshold
}

/// When the device was last heard from: its `last_seen_at` (written at most once a minute
/// for command-channel requests), or later the last change one of its requests made to an
/// open command (taken, answered `NotNow`, requeued; a command's `updated_at` equals its
/// `created_at` until the device asks for it).
#[must_use]
pub fn last_heard(last_seen_at: OffsetDateTime, open: &[MdmCommand]) -> OffsetDateTime {
    open.iter()
        .filter(|c| c.updated_at > c.created_at)
        .map(|c| c.updated_at)
        .fold(last_seen_at, OffsetDateTime::max)
}

/// Why a stuck device waits, from its last request and its open commands (in queue order):
/// silence first (nothing heard for `threshold`), then the first open initial command, then
/// an open `DeviceConfigured`.
#[must_use]
pub fn stuck_reason(
    last_seen_at: OffsetDateTime,
    open: &[MdmCommand],
    now: OffsetDateTime,
    threshold: Duration,
) -> StuckReason {
    let heard = last_heard(last_seen_at, open);
    if now - heard >= threshold {
        return StuckReason::NoCheckIn { since: heard };
    }
    if let Some(c) = open
        .iter()
        .find(|c| c.created_by == INITIAL_COMMANDS_SENDER && c.status.is_open())
    {
        return StuckReason::PendingCommand {
            request_type: c.request_type.clone(),
            command_uuid: c.uuid.clone(),
            status: c.status,
            not_now_count: c.not_now_count,
        };
    }
    if let Some(c) = open
        .iter()
        .find(|c| c.request_type == DEVICE_CONFIGURED && c.status.is_open())
    {
        return StuckReason::DeviceConfiguredNotAcknowledged {
            command_uuid: c.uuid.clone(),
            status: c.status,
        };
    }
    StuckReason::NothingQueued
}

/// The open commands a release cancels: the profile's initial commands not answered yet (so
/// they do not run after Setup Assistant) and any `DeviceConfigured` already queued (the
/// release queues a new one first). Commands an admin sent stay queued.
#[must_use]
pub fn release_plan(open: &[MdmCommand]) -> Vec<&MdmCommand> {
    open.iter()
        .filter(|c| {
            c.status.is_open()
                && (c.created_by == INITIAL_COMMANDS_SENDER || c.request_type == DEVICE_CONFIGURED)
        })
        .collect()
}

/// The shortest and longest `release_after` a profile may give.
pub const RELEASE_AFTER_RANGE: (Duration, Duration) = (Duration::minutes(5), Duration::days(7));

/// A profile's `release_after`: numbers with a unit, `s`, `m`, `h` or `d`, summed (`45m`,
/// `2h`, `1h 30m`, `1d`), from 5 minutes to 7 days.
///
/// # Errors
/// What is wrong, worded for the profile's author.
pub fn parse_release_after(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "`release_after` {text:?} is not a duration: write a number and s, m, h or d (45m, 2h, 1h 30m)"
        )
    };
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 || digits > 6 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = match rest[digits..].chars().next() {
            Some('s') => Duration::seconds(1),
            Some('m') => Duration::minutes(1),
            Some('h') => Duration::hours(1),
            Some('d') => Duration::days(1),
            _ => return Err(bad()),
        };
        total += unit * i32::try_from(n).map_err(|_| bad())?;
        rest = rest[digits + 1..].trim_start();
    }
    let (min, max) = RELEASE_AFTER_RANGE;
    if total < min || total > max {
        return Err(format!(
            "`release_after` {text:?}: give from 5 minutes (5m) to 7 days (7d)"
        ));
    }
    Ok(total)
}

/// Whether a device waiting since `awaiting_since`, with a profile that says `release_after`
/// and these open commands, is due for an automatic release at `now`: it has waited that
/// long, and a release would change something (an initial command is still open, or no
/// `DeviceConfigured` is; one released already only waits for the device to ask).
#[must_use]
pub fn auto_release_due(
    awaiting_since: OffsetDateTime,
    release_after: Option<Duration>,
    open: &[MdmCommand],
    now: OffsetDateTime,
) -> bool {
    let waited = release_after.is_some_and(|after| now - awaiting_since >= after);
    let initial_open = open
        .iter()
        .any(|c| c.created_by == INITIAL_COMMANDS_SENDER && c.status.is_open());
    let configured_open = open
        .iter()
        .any(|c| c.request_type == DEVICE_CONFIGURED && c.status.is_open());
    waited && (initial_open || !configured_open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn cmd(uuid: &str, request_type: &str, by: &str, status: CommandStatus) -> MdmCommand {
        MdmCommand {
            uuid: uuid.to_string(),
            udid: "U1".to_string(),
            request_type: request_type.to_string(),
            payload: Vec::new(),
            status,
            result: None,
            created_by: by.to_string(),
            not_now_count: 0,
            created_at: t0(),
            updated_at: t0(),
            completed_at: None,
        }
    }

    const T: Duration = Duration::minutes(30);

    #[test]
    fn stuck_once_waited_the_threshold() {
        assert!(!is_stuck(t0(), t0() + Duration::minutes(29), T));
        assert!(is_stuck(t0(), t0() + T, T));
        assert_eq!(stuck_cutoff(t0() + T, T), t0());
    }

    #[test]
    fn a_pending_initial_command_is_named_with_its_not_now_answers() {
        let now = t0() + Duration::hours(1);
        let mut pending = cmd(
            "c1",
            "InstallProfile",
            INITIAL_COMMANDS_SENDER,
            CommandStatus::NotNow,
        );
        pending.not_now_count = 7;
        pending.updated_at = now - Duration::minutes(1);
        let open = [
            cmd(
                "a1",
                "DeviceInformation",
                "admin:ann",
                CommandStatus::Queued,
            ),
            pending,
        ];
        let reason = stuck_reason(t0(), &open, now, T);
        assert_eq!(
            reason,
            StuckReason::PendingCommand {
                request_type: "InstallProfile".to_string(),
                command_uuid: "c1".to_string(),
                status: CommandStatus::NotNow,
                not_now_count: 7,
            },
            "a NotNow answer a minute ago is a check-in, though last_seen_at is old"
        );
        assert_eq!(
            reason.describe(),
            "initial command InstallProfile pending (not_now, answered NotNow 7 times)"
        );
    }

    #[test]
    fn a_silent_device_is_no_check_in_since_its_last_request() {
        let now = t0() + Duration::hours(2);
        let last = t0() + Duration::minutes(5);
        // Queued, never asked for: updated_at == created_at says nothing of the device.
        let open = [cmd(
            "c1",
            "InstallProfile",
            INITIAL_COMMANDS_SENDER,
            CommandStatus::Queued,
        )];
        assert_eq!(
            stuck_reason(last, &open, now, T),
            StuckReason::NoCheckIn { since: last }
        );
        assert!(
            StuckReason::NoCheckIn { since: last }
                .describe()
                .starts_with("no check-in since 2027-01-15T08:05:00Z")
        );
    }

    #[test]
    fn device_configured_unacknowledged_then_nothing_queued() {
        let now = t0() + Duration::hours(1);
        let mut dc = cmd("dc", DEVICE_CONFIGURED, "system", CommandStatus::Sent);
        dc.updated_at = now;
        let open = [
            cmd(
                "a1",
                "DeviceInformation",
                "admin:ann",
                CommandStatus::Queued,
            ),
            dc,
        ];
        let reason = stuck_reason(now, &open, now, T);
        assert_eq!(
            reason,
            StuckReason::DeviceConfiguredNotAcknowledged {
                command_uuid: "dc".to_string(),
                status: CommandStatus::Sent
            }
        );
        assert_eq!(reason.describe(), "DeviceConfigured sent, not acknowledged");
        assert_eq!(stuck_reason(now, &[], now, T), StuckReason::NothingQueued);
    }

    #[test]
    fn release_cancels_initial_commands_and_old_device_configured_only() {
        let open = [
            cmd(
                "i1",
                "InstallProfile",
                INITIAL_COMMANDS_SENDER,
                CommandStatus::NotNow,
            ),
            cmd(
                "a1",
                "DeviceInformation",
                "admin:ann",
                CommandStatus::Queued,
            ),
            cmd("dc", DEVICE_CONFIGURED, "system", CommandStatus::Sent),
            cmd(
                "i2",
                "InstallApplication",
                INITIAL_COMMANDS_SENDER,
                CommandStatus::Acknowledged,
            ),
        ];
        let plan: Vec<_> = release_plan(&open)
            .iter()
            .map(|c| c.uuid.as_str())
            .collect();
        assert_eq!(plan, ["i1", "dc"]);
    }

    #[test]
    fn release_after_reads_units_and_keeps_to_its_range() {
        assert_eq!(parse_release_after("45m"), Ok(Duration::minutes(45)));
        assert_eq!(parse_release_after(" 1h 30m "), Ok(Duration::minutes(90)));
        assert_eq!(parse_release_after("2h"), Ok(Duration::hours(2)));
        assert_eq!(parse_release_after("7d"), Ok(Duration::days(7)));
        assert_eq!(parse_release_after("600s"), Ok(Duration::minutes(10)));
        for bad in ["", "45", "m", "45 minutes", "-5m", "1.5h", "99999999m"] {
            let e = parse_release_after(bad).unwrap_err();
            assert!(e.contains("is not a duration"), "{bad}: {e}");
        }
        for out in ["4m", "8d"] {
            let e = parse_release_after(out).unwrap_err();
            assert!(e.contains("from 5 minutes"), "{out}: {e}");
        }
    }

    #[test]
    fn automatic_release_only_with_release_after_once_due() {
        let after = Some(Duration::minutes(45));
        let pending = [cmd(
            "i1",
            "InstallProfile",
            INITIAL_COMMANDS_SENDER,
            CommandStatus::NotNow,
        )];
        let due = t0() + Duration::minutes(45);
        assert!(!auto_release_due(
            t0(),
            None,
            &pending,
            t0() + Duration::days(9)
        ));
        assert!(!auto_release_due(
            t0(),
            after,
            &pending,
            due - Duration::seconds(1)
        ));
        assert!(auto_release_due(t0(), after, &pending, due));
        assert!(auto_release_due(t0(), after, &[], due), "nothing queued");
        let released = [cmd(
            "dc",
            DEVICE_CONFIGURED,
            "system",
            CommandStatus::Queued,
        )];
        assert!(
            !auto_release_due(t0(), after, &released, due),
            "released already: DeviceConfigured waits for the device"
        );
    }
}

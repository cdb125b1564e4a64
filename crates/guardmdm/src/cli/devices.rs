//! `guardmdm devices list|show`: ABM devices, and why each has its profile.

use guardmdm_service::DeviceView;
use guardmdm_service::devices::DeviceDetail;
use guardmdm_service::resolve::StepOutcome;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ApiClient, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DevicesCommand {
    /// List devices with their status (Unassigned, Assigning, Assigned, Pushed, Enrolled,
    /// Removed from ABM), as the dashboard's device list shows them.
    List {
        /// Only this ABM entry's devices.
        #[arg(long, alias = "token")]
        entry: Option<String>,
        /// Only this OS: ios, ipados, macos, tvos, visionos.
        #[arg(long)]
        os: Option<String>,
        /// Only this status: unassigned, pending (Assigning), assigned, pushed, enrolled,
        /// removed.
        #[arg(long)]
        status: Option<String>,
        /// `assigned` (still assigned to this MDM server in ABM, whatever its status) or
        /// `removed`.
        #[arg(long)]
        abm_status: Option<String>,
        /// Only this profile-assignment state: unassigned, pending, assigned, pushed,
        /// not_accessible, failed, throttled, removed.
        #[arg(long)]
        assignment: Option<String>,
        /// Only members of this group (static or smart).
        #[arg(long)]
        group: Option<String>,
        /// Only serial numbers starting with this.
        #[arg(long)]
        serial: Option<String>,
        /// Sort by serial, model or updated (the last change).
        #[arg(long, default_value = "serial")]
        sort: String,
        /// Largest first.
        #[arg(long)]
        desc: bool,
        /// Where the page starts: the cursor the previous page printed (or a serial number,
        /// in the serial order).
        #[arg(long)]
        after: Option<String>,
        /// How many (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One device: Apple's record, its ADE profile and why, and where assigning it stands.
    Show {
        /// The serial number.
        serial: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn time(t: Option<OffsetDateTime>) -> String {
    t.map_or(String::new(), |t| t.format(&Rfc3339).unwrap_or_default())
}

/// An enrolled device's push state on one line: the state, the reason of a failure, the last
/// attempt and the last success.
fn push_line(push: &guardmdm_service::mdm::PushStatus) -> String {
    let never = |t: Option<OffsetDateTime>| {
        if t.is_some() {
            time(t)
        } else {
            "never".to_string()
        }
    };
    let state = match (push.state.as_str(), &push.error) {
        ("none", _) => "none (not pushed by this server instance since it started)".to_string(),
        ("failed", Some(reason)) => format!("failed: {reason}"),
        (state, _) => state.to_string(),
    };
    format!(
        "{state}; last attempt {}, last success {}",
        never(push.last_attempt_at),
        never(push.last_success_at)
    )
}

pub(crate) async fn run(client: &ApiClient, command: DevicesCommand) -> anyhow::Result<()> {
    match command {
        DevicesCommand::List {
            entry,
            os,
            status,
            abm_status,
            assignment,
            group,
            serial,
            sort,
            desc,
            after,
            limit,
            json,
        } => {
            let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
            if desc {
                query.push(("dir", "desc".to_string()));
            }
            for (key, value) in [
                ("entry", entry),
                ("os", os),
                ("status", status),
                ("abm_status", abm_status),
                ("assignment", assignment),
                ("group", group),
                ("serial", serial),
                ("sort", Some(sort)),
                ("after", after),
            ] {
                if let Some(value) = value {
                    query.push((key, value));
                }
            }
            let (devices, next): (Vec<DeviceView>, _) =
                client.get_page(&["devices"], &query).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
            } else {
                print_list(&devices);
            }
            if let Some(next) = next {
                eprintln!("More: --after {next}");
            }
        }
        DevicesCommand::Show { serial, json } => {
            let details: Vec<DeviceDetail> = client.get(&["devices", &serial]).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&details)?);
            } else {
                for (i, d) in details.iter().enumerate() {
                    if i > 0 {
                        println!();
                    }
                    print_detail(d);
                }
            }
        }
    }
    Ok(())
}

fn print_list(devices: &[DeviceView]) {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            let r = &d.device.device;
            let (state, profile, note) = d.assignment.as_ref().map_or_else(
                || (String::new(), String::new(), String::new()),
                |a| {
                    (
                        a.state.as_str().to_string(),
                        a.profile.clone().unwrap_or_default(),
                        a.last_error.clone().unwrap_or_default(),
                    )
                },
            );
            vec![
                r.serial_number.clone(),
                r.model.clone(),
                r.os.clone().unwrap_or_default(),
                d.abm_entry.clone(),
                d.status.label().to_string(),
                profile,
                state,
                r.profile_status.clone().unwrap_or_default(),
                note,
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "SERIAL",
                "MODEL",
                "OS",
                "ABM ENTRY",
                "STATUS",
                "PROFILE",
                "ASSIGNMENT",
                "APPLE STATUS",
                "NOTE"
            ],
            &rows
        )
    );
}

/// One device explained: its facts, where assigning stands, the enrollment, Apple's view,
/// then why it has its profile.
fn print_detail(d: &DeviceDetail) {
    let mut lines = facts(d);
    lines.extend(assignment_lines(d));
    lines.extend(enrollment_lines(d));
    lines.extend(apple_lines(d));
    for (k, v) in lines {
        println!("{:<20}{v}", format!("{k}:"));
    }
    println!("Why:");
    for step in &d.resolution.steps {
        let mark = match step.outcome {
            StepOutcome::Won => "✔",
            StepOutcome::Shadowed => "↷",
            StepOutcome::Skipped => "·",
        };
        println!("  {mark} {}: {}", step.rule, step.detail);
    }
}

type Lines = Vec<(&'static str, String)>;

/// Apple's record, the entry, the resolved profile and the groups.
fn facts(d: &DeviceDetail) -> Lines {
    let r = &d.device.device;
    let res = &d.resolution;
    vec![
        ("Serial", r.serial_number.clone()),
        ("Model", r.model.clone()),
        (
            "OS / family",
            format!(
                "{} / {}",
                r.os.clone().unwrap_or_default(),
                r.device_family.clone().unwrap_or_default()
            ),
        ),
        ("ABM entry", format!("{} ({})", d.abm_entry, d.abm_status)),
        (
            "Assigned by",
            r.device_assigned_by.clone().unwrap_or_default(),
        ),
        (
            "Profile",
            match &res.profile {
                Some(p) => format!(
                    "{p} v{} (by {})",
                    res.profile_version.unwrap_or_default(),
                    res.rule
                ),
                None => format!(
                    "Unassigned: {}",
                    res.unassigned_reason.clone().unwrap_or_default()
                ),
            },
        ),
        ("Groups", d.groups.join(", ")),
    ]
}

/// Where sending its profile to Apple stands.
fn assignment_lines(d: &DeviceDetail) -> Lines {
    let Some(a) = &d.assignment else {
        return vec![("Assignment", "not evaluated yet".to_string())];
    };
    let mut lines = vec![("Assignment", a.state.as_str().to_string())];
    if let Some(e) = &a.last_error {
        lines.push(("Last problem", e.clone()));
    }
    if a.retry_at.is_some() {
        lines.push(("Retry after", time(a.retry_at)));
    }
    lines.push((
        "Sent to Apple",
        format!("{} time(s), last {}", a.attempts, time(a.attempted_at)),
    ));
    lines
}

/// The MDM enrollment and, once enrolled, its push state.
fn enrollment_lines(d: &DeviceDetail) -> Lines {
    match &d.enrollment {
        Some(e) => vec![
            (
                "Enrollment",
                format!(
                    "{} (UDID {}, last seen {})",
                    e.status,
                    e.udid,
                    e.last_seen_at.format(&Rfc3339).unwrap_or_default()
                ),
            ),
            ("Push", push_line(&e.push)),
        ],
        None => vec![("Enrollment", "not enrolled yet".to_string())],
    }
}

/// What Apple reports of the profile, and the UUID GuardMDM expects there.
fn apple_lines(d: &DeviceDetail) -> Lines {
    let apple = &d.apple;
    vec![
        (
            "Apple reports",
            format!(
                "{} {}",
                apple.profile_status.clone().unwrap_or_else(|| "-".into()),
                apple.profile_uuid.clone().unwrap_or_default()
            ),
        ),
        ("Apple assign time", time(apple.profile_assign_time)),
        ("Apple push time", time(apple.profile_push_time)),
        (
            "Expected UUID",
            format!(
                "{}{}",
                apple.expected_profile_uuid.clone().unwrap_or_default(),
                if apple.up_to_date {
                    " (Apple is up to date)"
                } else {
                    ""
                }
            ),
        ),
    ]
}

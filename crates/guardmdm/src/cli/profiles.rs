//! `guardmdm profiles …`: ADE profiles, OS defaults, and device-level assignment.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use guardmdm_service::os::OsKey;
use guardmdm_service::profiles::{
    DefinitionView, OsDefaultView, ProfileView, ProfileWrite, VersionView,
};
use guardmdm_service::serial_list::CsvReport;
use guardmdm_store::ProfileReferences;
use reqwest::Method;
use time::format_description::well_known::Rfc3339;

use super::{ApiClient, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ProfilesCommand {
    /// Create a profile from a JSON or YAML file.
    Create {
        /// The profile file (`.json`, `.yaml` or `.yml`).
        #[arg(long, short)]
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List profiles.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One profile: its settings, what Apple receives, where it is used, Apple's UUIDs.
    Show {
        /// The profile's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a profile's settings from a file: a new version, and its devices are
    /// re-assigned at Apple.
    Update {
        /// The profile's name.
        name: String,
        /// The profile file.
        #[arg(long, short)]
        file: PathBuf,
        /// Refuse unless the profile is at this version (guards against concurrent edits).
        #[arg(long)]
        expected_version: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A profile's version history.
    Versions {
        /// The profile's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a profile nothing uses.
    Delete {
        /// The profile's name.
        name: String,
    },
    /// Set, clear or list the default profile per OS.
    Default {
        /// The OS: ios, ipados, macos, tvos, visionos. Without it, lists every default.
        #[arg(long)]
        os: Option<String>,
        /// The profile to make the default.
        profile: Option<String>,
        /// Remove the OS's default.
        #[arg(long, conflicts_with = "profile")]
        clear: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Assign a profile to devices explicitly (device level), from serials or a CSV.
    Assign {
        /// The profile's name.
        profile: String,
        #[command(flatten)]
        serials: SerialArgs,
    },
    /// Remove the explicit profile of devices (they fall back to groups and OS defaults).
    Unassign {
        #[command(flatten)]
        serials: SerialArgs,
    },
}

/// Serials from flags or a CSV file, and what to do with the report.
#[derive(Debug, clap::Args)]
pub(crate) struct SerialArgs {
    /// A serial number (repeat for several).
    #[arg(long = "serial", required_unless_present = "csv")]
    serials: Vec<String>,
    /// A CSV file of serial numbers (header optional).
    #[arg(long, conflicts_with = "serials")]
    csv: Option<PathBuf>,
    /// Report what would happen without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// Print the full report as JSON.
    #[arg(long)]
    json: bool,
}

impl SerialArgs {
    /// Sends the serials to `segments` and prints the report.
    pub(crate) async fn send(&self, client: &ApiClient, segments: &[&str]) -> anyhow::Result<()> {
        let query = [("dry_run", self.dry_run.to_string())];
        let report: CsvReport = match &self.csv {
            Some(path) => {
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                client
                    .send_bytes(Method::POST, segments, &query, "text/csv", bytes)
                    .await?
            }
            None => {
                let body = serde_json::to_vec(&serde_json::json!({ "serials": self.serials }))?;
                client
                    .send_bytes(Method::POST, segments, &query, "application/json", body)
                    .await?
            }
        };
        print_report(&report, self.json)
    }
}

/// Prints a per-row report: the counts, then the rows that were not applied.
pub(crate) fn print_report(report: &CsvReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let c = &report.counts;
    let verb = if report.dry_run {
        "would apply"
    } else {
        "applied"
    };
    println!(
        "{} rows: {verb} {}, unknown serial {}, not in ABM {}, duplicate {}, malformed {}{}",
        c.total(),
        c.applied,
        c.unknown_serial,
        c.not_in_abm,
        c.duplicate_row,
        c.malformed,
        if report.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    const SHOWN: usize = 50;
    let problems: Vec<Vec<String>> = report
        .rows
        .iter()
        .filter(|r| r.outcome != guardmdm_service::serial_csv::RowOutcome::Applied)
        .map(|r| {
            vec![
                r.line.to_string(),
                r.serial.clone().unwrap_or_default(),
                serde_json::to_value(r.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                r.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    if !problems.is_empty() {
        let shown = &problems[..problems.len().min(SHOWN)];
        print!(
            "{}",
            table::render(&["LINE", "SERIAL", "OUTCOME", "DETAIL"], shown)
        );
        if problems.len() > SHOWN {
            println!("… and {} more rows (use --json)", problems.len() - SHOWN);
        }
    }
    Ok(())
}

fn read_spec(path: &Path) -> anyhow::Result<(&'static str, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") => {
            "application/yaml"
        }
        Some(ext) if ext.eq_ignore_ascii_case("json") => "application/json",
        _ => {
            let first = bytes
                .iter()
                .copied()
                .find(|b| !b.is_ascii_whitespace() && *b != 0xEF && *b != 0xBB && *b != 0xBF);
            if first == Some(b'{') {
                "application/json"
            } else {
                "application/yaml"
            }
        }
    };
    Ok((content_type, bytes))
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "",
    }
}

/// `profiles show`: the settings, what Apple receives, where the profile is used, and
/// Apple's UUIDs per ABM entry.
fn print_profile(p: &ProfileView) {
    let mut lines = apple_settings(p);
    lines.push(("Used by", used_by(&p.used_by)));
    for (k, v) in lines {
        println!("{:<24}{v}", format!("{k}:"));
    }
    for w in &p.warnings {
        println!("Warning: {w}");
    }
    if !p.definitions.is_empty() {
        println!();
        print_definitions(&p.definitions);
    }
}

/// The profile's name and version, then the settings Apple receives, as labelled lines.
fn apple_settings(p: &ProfileView) -> Vec<(&'static str, String)> {
    let a = &p.apple;
    vec![
        ("Name", p.name.clone()),
        ("Version", p.version.to_string()),
        ("Apple name", a.profile_name.clone()),
        ("Enrollment type", p.enrollment_type.as_str().to_string()),
        ("Enrollment URL", a.url.clone()),
        (
            "Configuration web URL",
            a.configuration_web_url.clone().unwrap_or_default(),
        ),
        ("Supervised", yes_no(a.is_supervised).to_string()),
        ("Mandatory", yes_no(a.is_mandatory).to_string()),
        ("MDM removable", yes_no(a.is_mdm_removable).to_string()),
        (
            "Await device configured",
            yes_no(a.await_device_configured).to_string(),
        ),
        ("Auto advance", yes_no(a.auto_advance_setup).to_string()),
        ("Allow pairing", yes_no(a.allow_pairing).to_string()),
        ("Multi-user", yes_no(a.is_multi_user).to_string()),
        ("Department", a.department.clone().unwrap_or_default()),
        (
            "Support phone",
            a.support_phone_number.clone().unwrap_or_default(),
        ),
        (
            "Support email",
            a.support_email_address.clone().unwrap_or_default(),
        ),
        ("Language", a.language.clone().unwrap_or_default()),
        ("Region", a.region.clone().unwrap_or_default()),
        (
            "Skip setup items",
            a.skip_setup_items.clone().unwrap_or_default().join(", "),
        ),
    ]
}

/// Where a profile is used, in one line: the OS defaults, the groups, the devices that name
/// it explicitly; `nothing` when none does.
fn used_by(used: &ProfileReferences) -> String {
    let mut uses = Vec::new();
    if !used.os_defaults.is_empty() {
        let keys: Vec<&str> = used.os_defaults.iter().map(|os| os.as_str()).collect();
        uses.push(format!("default for {}", keys.join(", ")));
    }
    if !used.groups.is_empty() {
        uses.push(format!("groups {}", used.groups.join(", ")));
    }
    if used.devices > 0 {
        uses.push(format!("{} devices explicitly", used.devices));
    }
    if uses.is_empty() {
        "nothing".to_string()
    } else {
        uses.join("; ")
    }
}

/// The profile as defined at Apple: one row per ABM entry and version, with Apple's UUID.
fn print_definitions(definitions: &[DefinitionView]) {
    let rows: Vec<Vec<String>> = definitions
        .iter()
        .map(|d| {
            vec![
                d.abm_entry.clone(),
                format!(
                    "v{}{}",
                    d.version,
                    if d.current { " (current)" } else { "" }
                ),
                d.profile_uuid.clone(),
                d.defined_at.format(&Rfc3339).unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["ABM ENTRY", "VERSION", "APPLE PROFILE UUID", "DEFINED"],
            &rows
        )
    );
}

fn print_defaults(defaults: &[OsDefaultView]) {
    let rows: Vec<Vec<String>> = defaults
        .iter()
        .map(|d| {
            vec![
                d.os.label().to_string(),
                match (&d.profile, &d.falls_back_to) {
                    (Some(p), _) => p.clone(),
                    (None, Some(f)) => format!("(none: uses the iOS default {f})"),
                    (None, None) => "(none)".to_string(),
                },
            ]
        })
        .collect();
    print!("{}", table::render(&["OS", "DEFAULT PROFILE"], &rows));
}

pub(crate) async fn run(client: &ApiClient, command: ProfilesCommand) -> anyhow::Result<()> {
    match command {
        ProfilesCommand::Create { file, json } => create(client, &file, json).await,
        ProfilesCommand::List { json } => list(client, json).await,
        ProfilesCommand::Show { name, json } => show(client, &name, json).await,
        ProfilesCommand::Update {
            name,
            file,
            expected_version,
            json,
        } => update(client, &name, &file, expected_version, json).await,
        ProfilesCommand::Versions { name, json } => versions(client, &name, json).await,
        ProfilesCommand::Delete { name } => {
            client.delete(&["profiles", &name]).await?;
            println!("Deleted profile {name:?}.");
            Ok(())
        }
        ProfilesCommand::Default {
            os,
            profile,
            clear,
            json,
        } => default(client, os.as_deref(), profile, clear, json).await,
        ProfilesCommand::Assign { profile, serials } => {
            serials
                .send(client, &["profiles", &profile, "assign"])
                .await
        }
        ProfilesCommand::Unassign { serials } => {
            serials
                .send(client, &["explicit-assignments", "clear"])
                .await
        }
    }
}

/// `profiles create`: the profile from a file, and Apple's warnings about it.
async fn create(client: &ApiClient, file: &Path, json: bool) -> anyhow::Result<()> {
    let (content_type, body) = read_spec(file)?;
    let view: ProfileView = client
        .send_bytes(Method::POST, &["profiles"], &(), content_type, body)
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        println!("Created profile {:?} (version 1).", view.name);
        for w in &view.warnings {
            println!("Warning: {w}");
        }
    }
    Ok(())
}

/// `profiles list`: one row per profile, with its key settings and what uses it.
async fn list(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let views: Vec<ProfileView> = client.get(&["profiles"]).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|p| {
            let u = &p.used_by;
            vec![
                p.name.clone(),
                p.version.to_string(),
                p.enrollment_type.as_str().to_string(),
                yes_no(p.apple.is_supervised).to_string(),
                yes_no(p.apple.is_mdm_removable).to_string(),
                u.os_defaults
                    .iter()
                    .map(|os| os.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                u.groups.join(","),
                u.devices.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "NAME",
                "VERSION",
                "ENROLLMENT",
                "SUPERVISED",
                "REMOVABLE",
                "DEFAULT FOR",
                "GROUPS",
                "DEVICES"
            ],
            &rows
        )
    );
    Ok(())
}

/// `profiles show`.
async fn show(client: &ApiClient, name: &str, json: bool) -> anyhow::Result<()> {
    let view: ProfileView = client.get(&["profiles", name]).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print_profile(&view);
    }
    Ok(())
}

/// `profiles update`: the new settings from a file, refused unless the profile is still at
/// `expected_version` when one is given.
async fn update(
    client: &ApiClient,
    name: &str,
    file: &Path,
    expected_version: Option<i64>,
    json: bool,
) -> anyhow::Result<()> {
    let (content_type, body) = read_spec(file)?;
    let query: Vec<(&str, String)> = expected_version
        .map(|v| ("expected_version", v.to_string()))
        .into_iter()
        .collect();
    let write: ProfileWrite = client
        .send_bytes(Method::PUT, &["profiles", name], &query, content_type, body)
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&write)?);
    } else if write.changed {
        println!(
            "Profile {name:?} is now version {}; its devices are being re-assigned at Apple.",
            write.profile.version
        );
    } else {
        println!(
            "Profile {name:?} is unchanged (version {}).",
            write.profile.version
        );
    }
    Ok(())
}

/// `profiles versions`: who wrote each version when, and its UUIDs at Apple.
async fn versions(client: &ApiClient, name: &str, json: bool) -> anyhow::Result<()> {
    let versions: Vec<VersionView> = client.get(&["profiles", name, "versions"]).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&versions)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.created_at.format(&Rfc3339).unwrap_or_default(),
                v.created_by.clone(),
                v.definitions
                    .iter()
                    .map(|d| format!("{}:{}", d.abm_entry, d.profile_uuid))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["VERSION", "WRITTEN", "BY", "APPLE UUIDS"], &rows)
    );
    Ok(())
}

/// `profiles default`: without `--os`, lists every OS's default; with it, sets the OS's
/// default to `profile` or clears it, and prints the defaults as they now are.
async fn default(
    client: &ApiClient,
    os: Option<&str>,
    profile: Option<String>,
    clear: bool,
    json: bool,
) -> anyhow::Result<()> {
    let defaults: Vec<OsDefaultView> = match os {
        None => {
            if profile.is_some() || clear {
                bail!("say which OS with --os ios|ipados|macos|tvos|visionos");
            }
            client.get(&["os-defaults"]).await?
        }
        Some(os) => {
            let os = OsKey::parse(os)?;
            if profile.is_none() && !clear {
                bail!(
                    "name the profile to make the {} default, or pass --clear",
                    os.label()
                );
            }
            client
                .send_json(
                    Method::PUT,
                    &["os-defaults", os.as_str()],
                    &serde_json::json!({ "profile": profile }),
                )
                .await?
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&defaults)?);
    } else {
        print_defaults(&defaults);
    }
    Ok(())
}

//! `guardmdm devices list`: ABM devices.

use guardmdm_service::DeviceView;
use time::format_description::well_known::Rfc3339;

use super::{ApiClient, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DevicesCommand {
    /// List devices, by serial number.
    List {
        /// Only this ABM entry's devices.
        #[arg(long)]
        token: Option<String>,
        /// Only this OS: ios, ipados, macos, tvos, visionos.
        #[arg(long)]
        os: Option<String>,
        /// `assigned` (in ABM) or `removed` (removed from ABM).
        #[arg(long)]
        status: Option<String>,
        /// Serials after this one (the next page).
        #[arg(long)]
        after: Option<String>,
        /// How many (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(client: &ApiClient, command: DevicesCommand) -> anyhow::Result<()> {
    let DevicesCommand::List {
        token,
        os,
        status,
        after,
        limit,
        json,
    } = command;
    let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
    for (key, value) in [
        ("token", token),
        ("os", os),
        ("status", status),
        ("after", after),
    ] {
        if let Some(value) = value {
            query.push((key, value));
        }
    }
    let devices: Vec<DeviceView> = client.get_query(&["devices"], &query).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            let r = &d.device.device;
            vec![
                r.serial_number.clone(),
                r.model.clone(),
                r.device_family.clone().unwrap_or_default(),
                r.os.clone().unwrap_or_default(),
                d.abm_entry.clone(),
                d.abm_status.clone(),
                r.profile_status.clone().unwrap_or_default(),
                r.device_assigned_date
                    .map_or(String::new(), |t| t.format(&Rfc3339).unwrap_or_default()),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "SERIAL",
                "MODEL",
                "FAMILY",
                "OS",
                "ABM ENTRY",
                "ABM",
                "PROFILE",
                "ASSIGNED"
            ],
            &rows
        )
    );
    if devices.len() == usize::try_from(limit).unwrap_or(usize::MAX)
        && let Some(last) = devices.last()
    {
        eprintln!("More: --after {}", last.device.device.serial_number);
    }
    Ok(())
}

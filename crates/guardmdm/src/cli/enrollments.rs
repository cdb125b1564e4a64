//! `guardmdm enrollments`: devices stuck in Setup Assistant, and releasing them.

use anyhow::bail;
use guardmdm_service::mdm::{ReleaseOutcome, StuckDevice};
use reqwest::Method;
use time::format_description::well_known::Rfc3339;

use super::client::ApiClient;
use super::table;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum EnrollmentsCommand {
    /// Devices stuck in Setup Assistant (waiting for DeviceConfigured longer than the
    /// server's --stuck-after), the longest waiting first, with why.
    Stuck {
        /// At most this many (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Release devices from Setup Assistant now: DeviceConfigured is queued first, the
    /// initial commands they have not answered are cancelled, and they are pushed.
    Release {
        /// The devices' UDIDs.
        #[arg(required = true)]
        udids: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(client: &ApiClient, command: EnrollmentsCommand) -> anyhow::Result<()> {
    match command {
        EnrollmentsCommand::Stuck { limit, json } => {
            let list: Vec<StuckDevice> = client
                .get_query(&["enrollments", "stuck"], &[("limit", limit)])
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!("No device is stuck in Setup Assistant.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    vec![
                        d.udid.clone(),
                        d.serial_number.clone().unwrap_or_default(),
                        d.waiting_since.format(&Rfc3339).unwrap_or_default(),
                        d.reason_text.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["UDID", "SERIAL", "WAITING SINCE", "REASON"], &rows)
            );
        }
        EnrollmentsCommand::Release { udids, json } => {
            let outcomes: Vec<ReleaseOutcome> = client
                .send_json(
                    Method::POST,
                    &["enrollments", "release"],
                    &serde_json::json!({ "udids": udids }),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&outcomes)?);
            }
            let mut failed = 0;
            for o in &outcomes {
                match (&o.released, &o.error) {
                    (Some(r), _) if !json => {
                        let skipped: Vec<&str> =
                            r.skipped.iter().map(|c| c.request_type.as_str()).collect();
                        let skipped = if skipped.is_empty() {
                            String::new()
                        } else {
                            format!("; skipped {}", skipped.join(", "))
                        };
                        println!(
                            "Released {}: DeviceConfigured {} queued (pushed){skipped}.",
                            o.udid, r.command_uuid
                        );
                    }
                    (Some(_), _) => {}
                    (None, error) => {
                        failed += 1;
                        eprintln!("{}: {}", o.udid, error.as_deref().unwrap_or("not released"));
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} devices not released", outcomes.len());
            }
        }
    }
    Ok(())
}

//! `guardmdm minimum-os …`: the global minimum OS at enrollment (`docs/protocol.md` §6.5).

use guardmdm_service::minimum_os::MinimumOsView;
use guardmdm_service::os::OsKey;
use reqwest::Method;

use super::{ApiClient, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum MinimumOsCommand {
    /// Every OS's minimum.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Require at least VERSION (e.g. 17.5) before a device of the OS may enroll.
    Set {
        /// The OS: ios, ipados, macos or visionos.
        #[arg(long)]
        os: String,
        /// The minimum version.
        version: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove the OS's minimum.
    Clear {
        /// The OS.
        #[arg(long)]
        os: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print(list: &[MinimumOsView], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(list)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            vec![
                m.label.clone(),
                m.minimum.clone().unwrap_or_else(|| "(none)".to_string()),
            ]
        })
        .collect();
    print!("{}", table::render(&["OS", "MINIMUM"], &rows));
    Ok(())
}

pub(crate) async fn run(client: &ApiClient, command: MinimumOsCommand) -> anyhow::Result<()> {
    let (os, minimum, json) = match command {
        MinimumOsCommand::List { json } => {
            let list: Vec<MinimumOsView> = client.get(&["minimum-os"]).await?;
            return print(&list, json);
        }
        MinimumOsCommand::Set { os, version, json } => (os, Some(version), json),
        MinimumOsCommand::Clear { os, json } => (os, None, json),
    };
    let os = OsKey::parse(&os)?;
    let list: Vec<MinimumOsView> = client
        .send_json(
            Method::PUT,
            &["minimum-os", os.as_str()],
            &serde_json::json!({ "minimum": minimum }),
        )
        .await?;
    print(&list, json)
}

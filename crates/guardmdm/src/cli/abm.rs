//! `guardmdm abm …`: ABM entries and their server tokens.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use guardmdm_service::{AbmEntryView, TokenState};
use reqwest::Method;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use super::{ApiClient, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AbmCommand {
    /// ABM entries ("MDM servers") and their server tokens (`abm token …`, their name in earlier releases, still works).
    #[command(subcommand, alias = "token")]
    Entry(EntryCommand),
    /// Sync Now: fetch device changes from ABM (returns the running sync if one is going).
    Sync {
        /// Entry name.
        name: String,
        /// Wait for the sync to finish, showing its progress; exits non-zero if it failed.
        #[arg(long)]
        wait: bool,
        /// Full resync: reset the cursor and fetch every device again, marking the ones ABM
        /// no longer lists as removed.
        #[arg(long)]
        full: bool,
    },
    /// Recent sync runs of an entry.
    Syncs {
        /// Entry name.
        name: String,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum EntryCommand {
    /// Create an entry and write its public key (PEM) to upload to Apple Business Manager.
    Create {
        /// Entry name (letters, digits, '.', '_', '-').
        name: String,
        /// Where to write the PEM. Default: `GuardMDM_<NAME>.pem` in the current directory.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Devices per sync page (1–1000, default 100).
        #[arg(long)]
        batch_size: Option<u32>,
        /// DEP API base URL for this entry only (e.g. an ABM simulator).
        #[arg(long)]
        abm_url: Option<String>,
    },
    /// Change an entry's settings.
    Set {
        /// Entry name.
        name: String,
        /// Devices per sync page (1–1000).
        #[arg(long)]
        batch_size: Option<u32>,
        /// DEP API base URL for this entry only.
        #[arg(long, conflicts_with = "default_abm_url")]
        abm_url: Option<String>,
        /// Use the server's --abm-url again.
        #[arg(long)]
        default_abm_url: bool,
    },
    /// Print (or write) an entry's public key PEM again.
    PublicKey {
        /// Entry name.
        name: String,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Install or renew an entry's server token (the *_smime.p7m file from ABM).
    Upload {
        /// Entry name.
        name: String,
        /// The token file downloaded from Apple Business Manager.
        file: PathBuf,
        /// Replace the token even if it belongs to another MDM server.
        #[arg(long)]
        force: bool,
    },
    /// List entries with token health, expiry and days left.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one entry.
    Show {
        /// Entry name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete an entry with its key pair and token (ABM keeps the MDM server).
    Delete {
        /// Entry name.
        name: String,
        /// Confirm: the key pair cannot be recovered.
        #[arg(long)]
        yes: bool,
    },
}

pub(crate) async fn run(client: &ApiClient, command: AbmCommand) -> anyhow::Result<()> {
    match command {
        AbmCommand::Entry(command) => entry(client, command).await,
        AbmCommand::Sync { name, wait, full } => {
            super::sync::sync_now(client, &name, wait, full).await
        }
        AbmCommand::Syncs { name, limit, json } => {
            super::sync::list_runs(client, &name, limit, json).await
        }
    }
}

/// `abm entry …`.
async fn entry(client: &ApiClient, command: EntryCommand) -> anyhow::Result<()> {
    match command {
        EntryCommand::Create {
            name,
            output,
            batch_size,
            abm_url,
        } => create(client, &name, output, batch_size, abm_url).await,
        EntryCommand::Set {
            name,
            batch_size,
            abm_url,
            default_abm_url,
        } => set(client, &name, batch_size, abm_url, default_abm_url).await,
        EntryCommand::PublicKey { name, output } => {
            let pem = client
                .get_text(&["abm", "entries", &name, "public-key"])
                .await?;
            match output {
                Some(path) => {
                    write_file(&path, &pem)?;
                    eprintln!("Wrote {}", path.display());
                }
                None => print!("{pem}"),
            }
            Ok(())
        }
        EntryCommand::Upload { name, file, force } => upload(client, &name, &file, force).await,
        EntryCommand::List { json } => list(client, json).await,
        EntryCommand::Show { name, json } => {
            let entry: AbmEntryView = client.get(&["abm", "entries", &name]).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entry)?);
            } else {
                print!("{}", entries_table(std::slice::from_ref(&entry)));
                println!("\n{}", entry.health.message);
            }
            Ok(())
        }
        EntryCommand::Delete { name, yes } => {
            if !yes {
                bail!("deleting {name:?} destroys its key pair and token; add --yes to confirm");
            }
            client.delete(&["abm", "entries", &name]).await?;
            eprintln!("Deleted ABM entry {name:?}.");
            Ok(())
        }
    }
}

/// `abm entry create`: the entry, its public key written to `output` (default
/// `GuardMDM_<NAME>.pem`), and what to do next in Apple Business Manager.
async fn create(
    client: &ApiClient,
    name: &str,
    output: Option<PathBuf>,
    batch_size: Option<u32>,
    abm_url: Option<String>,
) -> anyhow::Result<()> {
    let body = json!({ "name": name, "batch_size": batch_size, "abm_url": abm_url });
    let entry: AbmEntryView = client
        .send_json(Method::POST, &["abm", "entries"], &body)
        .await?;
    let pem = client
        .get_text(&["abm", "entries", &entry.name, "public-key"])
        .await?;
    let path = output.unwrap_or_else(|| PathBuf::from(format!("GuardMDM_{}.pem", entry.name)));
    write_file(&path, &pem)?;
    eprintln!(
        "Created ABM entry {:?}; its public key is in {}.",
        entry.name,
        path.display()
    );
    eprintln!(
        "Next: in Apple Business Manager, Settings > MDM Server (add or edit the server), upload {},",
        path.display()
    );
    eprintln!(
        "      download the server token, then: guardmdm abm entry upload {} <file>_smime.p7m",
        entry.name
    );
    Ok(())
}

/// `abm entry set`: changes only the settings given (`--default-abm-url` clears the
/// entry's own URL); refuses when none is.
async fn set(
    client: &ApiClient,
    name: &str,
    batch_size: Option<u32>,
    abm_url: Option<String>,
    default_abm_url: bool,
) -> anyhow::Result<()> {
    let mut body = serde_json::Map::new();
    if let Some(size) = batch_size {
        body.insert("batch_size".into(), json!(size));
    }
    if let Some(url) = abm_url {
        body.insert("abm_url".into(), json!(url));
    } else if default_abm_url {
        body.insert("abm_url".into(), serde_json::Value::Null);
    }
    if body.is_empty() {
        bail!("nothing to change: give --batch-size, --abm-url or --default-abm-url");
    }
    let entry: AbmEntryView = client
        .send_json(Method::PATCH, &["abm", "entries", name], &body)
        .await?;
    print!("{}", entries_table(&[entry]));
    Ok(())
}

/// `abm entry upload`: installs the server token and says which ABM MDM server it
/// connected to, when Apple confirmed it.
async fn upload(client: &ApiClient, name: &str, file: &Path, force: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read the token file {}", file.display()))?;
    let entry: AbmEntryView = client
        .put_bytes(
            &["abm", "entries", name, "server-token"],
            &[("force", force)],
            "application/pkcs7-mime",
            bytes,
        )
        .await?;
    println!(
        "Server token installed for {:?}: {}",
        entry.name, entry.health.message
    );
    match &entry.account {
        Some(a) => println!(
            "Connected to the ABM MDM server {:?} ({}) of {}.",
            a.server_name,
            a.server_uuid,
            a.org_name.as_deref().unwrap_or("your organization")
        ),
        None => println!(
            "Apple could not confirm which MDM server this token belongs to yet; see the server log."
        ),
    }
    Ok(())
}

/// `abm entry list`: the entries, then the health message of each one not active.
async fn list(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let entries: Vec<AbmEntryView> = client.get(&["abm", "entries"]).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else if entries.is_empty() {
        println!("No ABM entries yet: guardmdm abm entry create NAME");
    } else {
        print!("{}", entries_table(&entries));
        for e in entries
            .iter()
            .filter(|e| e.health.state != TokenState::Active)
        {
            println!("\n{}: {}", e.name, e.health.message);
        }
    }
    Ok(())
}

fn entries_table(entries: &[AbmEntryView]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.name.clone(),
                e.health.state.as_str().to_string(),
                e.health
                    .expires_at
                    .map_or("-".into(), |t| t.format(&Rfc3339).unwrap_or_default()),
                e.health.days_left.map_or("-".into(), |d| d.to_string()),
                e.last_sync_at
                    .map_or("never".into(), |t| t.format(&Rfc3339).unwrap_or_default()),
                e.batch_size.to_string(),
                e.account
                    .as_ref()
                    .map_or("-".into(), |a| a.server_name.clone()),
                e.abm_url
                    .clone()
                    .unwrap_or_else(|| "(server default)".into()),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME",
            "HEALTH",
            "EXPIRES",
            "DAYS LEFT",
            "LAST SYNC",
            "BATCH",
            "ABM SERVER",
            "ABM URL",
        ],
        &rows,
    )
}

fn write_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

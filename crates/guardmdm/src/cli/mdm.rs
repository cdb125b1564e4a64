//! `guardmdm apns …` (the MDM push certificate) and `guardmdm commands …` (the command queue of
//! an enrolled device).

use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine as _;
use guardmdm_service::mdm::{CommandView, PushCertificateView};
use reqwest::Method;

use super::{ApiClient, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ApnsCommand {
    /// Install or renew the MDM push certificate (PEM certificate and key, or PKCS#12).
    Upload {
        /// The certificate (PEM).
        #[arg(long, requires = "key", conflicts_with = "p12")]
        cert: Option<PathBuf>,
        /// Its private key (PEM, unencrypted).
        #[arg(long)]
        key: Option<PathBuf>,
        /// A PKCS#12 file instead.
        #[arg(long)]
        p12: Option<PathBuf>,
        /// The PKCS#12 file's password.
        #[arg(long, env = "GUARDMDM_P12_PASSWORD", hide_env_values = true)]
        p12_password: Option<String>,
        /// Accept a different topic (it orphans every enrolled device: renew instead).
        #[arg(long)]
        force: bool,
    },
    /// The push certificate: topic, expiry, days left.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CommandsCommand {
    /// Send a command to an enrolled device (answered once queued; the push runs in the background).
    Send {
        /// The device's UDID.
        udid: String,
        /// DeviceInformation, ProfileList, InstallProfile, RemoveProfile, DeviceLock,
        /// EraseDevice, DeviceConfigured, or `raw` with --file.
        request_type: String,
        /// InstallProfile: the .mobileconfig; raw: the command plist.
        #[arg(long)]
        file: Option<PathBuf>,
        /// RemoveProfile: the profile's identifier.
        #[arg(long)]
        identifier: Option<String>,
        /// DeviceLock: the lock-screen message.
        #[arg(long)]
        message: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A device's commands, newest first, with their status.
    List {
        /// The device's UDID.
        udid: String,
        /// Print JSON (with the results).
        #[arg(long)]
        json: bool,
    },
    /// One command with the device's result.
    Show {
        /// The CommandUUID.
        uuid: String,
    },
}

fn print_push(view: &PushCertificateView) {
    for (k, v) in [
        ("Topic", view.topic.clone()),
        ("Subject", view.subject.clone()),
        ("Expires", view.not_after.to_string()),
        ("Days left", view.days_left.to_string()),
        ("State", view.state.clone()),
        ("SHA-256", view.fingerprint.clone()),
    ] {
        println!("{:<11}{v}", format!("{k}:"));
    }
}

pub(crate) async fn run_apns(client: &ApiClient, command: ApnsCommand) -> anyhow::Result<()> {
    match command {
        ApnsCommand::Upload {
            cert,
            key,
            p12,
            p12_password,
            force,
        } => {
            let read =
                |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
            let body = match (cert, key, p12) {
                (Some(cert), Some(key), None) => serde_json::json!({
                    "certificate_pem": String::from_utf8_lossy(&read(&cert)?),
                    "key_pem": String::from_utf8_lossy(&read(&key)?),
                    "force": force,
                }),
                (None, None, Some(p12)) => serde_json::json!({
                    "pkcs12_base64": base64::engine::general_purpose::STANDARD.encode(read(&p12)?),
                    "password": p12_password.unwrap_or_default(),
                    "force": force,
                }),
                _ => bail!("give --cert and --key, or --p12"),
            };
            let view: PushCertificateView = client.send_json(Method::PUT, &["apns"], &body).await?;
            print_push(&view);
        }
        ApnsCommand::Show { json } => {
            let view: Option<PushCertificateView> = client.get(&["apns"]).await?;
            match (view, json) {
                (v, true) => println!("{}", serde_json::to_string_pretty(&v)?),
                (Some(v), false) => print_push(&v),
                (None, false) => {
                    println!("No push certificate yet: guardmdm apns upload --cert F --key F")
                }
            }
        }
    }
    Ok(())
}

pub(crate) async fn run_commands(
    client: &ApiClient,
    command: CommandsCommand,
) -> anyhow::Result<()> {
    match command {
        CommandsCommand::Send {
            udid,
            request_type,
            file,
            identifier,
            message,
            json,
        } => {
            let segments = ["enrollments", udid.as_str(), "commands"];
            let view: CommandView = if request_type.eq_ignore_ascii_case("raw") {
                let Some(file) = file else {
                    bail!("a raw command needs --file with the command plist");
                };
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                client
                    .send_bytes(Method::POST, &segments, &(), "application/x-plist", bytes)
                    .await?
            } else {
                let payload = match &file {
                    Some(f) => Some(base64::engine::general_purpose::STANDARD.encode(
                        std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
                    )),
                    None => None,
                };
                let body = serde_json::json!({
                    "request_type": request_type,
                    "payload_base64": payload,
                    "identifier": identifier,
                    "message": message,
                });
                client.send_json(Method::POST, &segments, &body).await?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!(
                    "Queued {} {} for {udid} (pushed).",
                    view.request_type, view.uuid
                );
            }
        }
        CommandsCommand::List { udid, json } => {
            let list: Vec<CommandView> = client.get(&["enrollments", &udid, "commands"]).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|c| {
                    vec![
                        c.uuid.clone(),
                        c.request_type.clone(),
                        c.status.clone(),
                        c.created_at.to_string(),
                        c.completed_at.map(|t| t.to_string()).unwrap_or_default(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &["COMMAND UUID", "TYPE", "STATUS", "QUEUED", "ANSWERED"],
                    &rows
                )
            );
        }
        CommandsCommand::Show { uuid } => {
            let view: CommandView = client.get(&["commands", &uuid]).await?;
            println!("{} {} {}", view.uuid, view.request_type, view.status);
            if let Some(result) = view.result {
                println!("{result}");
            }
        }
    }
    Ok(())
}

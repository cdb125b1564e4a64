//! `guardmdm apns …` (the MDM push certificate) and `guardmdm commands …` (the command queue of
//! an enrolled device).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine as _;
use guardmdm_crypto::VendorSigner;
use guardmdm_service::mdm::{CommandView, PushCertificateView, PushRequestView};
use reqwest::Method;

use super::{ApiClient, table};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ApnsCommand {
    /// Make a push certificate request: GuardMDM makes the key (kept sealed on the server,
    /// never shown) and writes the certificate request (PEM) for Apple's push portal. Each
    /// run makes a new key and replaces the pending request; the installed certificate stays
    /// in use until the certificate for the new request is uploaded. With --vendor-cert and
    /// --vendor-key, signs the request with your MDM vendor certificate here (the vendor key
    /// never leaves this machine) and writes the signed request identity.apple.com takes.
    Csr {
        /// Where to write it. Default: `GuardMDM_push.csr`, or `GuardMDM_push_request.b64`
        /// when signing.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Your MDM vendor certificate ("MDM CSR" from the Apple Developer Enterprise
        /// Program), PEM; may also hold its chain (Apple's intermediate and root).
        #[arg(long, requires = "vendor_key")]
        vendor_cert: Option<PathBuf>,
        /// The vendor certificate's private key (PEM, unencrypted).
        #[arg(long, requires = "vendor_cert")]
        vendor_key: Option<PathBuf>,
        /// More certificates of the vendor chain (PEM), if not in --vendor-cert.
        #[arg(long, requires = "vendor_cert")]
        vendor_chain: Vec<PathBuf>,
        /// Write the pending request again instead of making a new key.
        #[arg(long)]
        pending: bool,
    },
    /// Install or renew the MDM push certificate: the certificate Apple issued for
    /// GuardMDM's request alone (--cert), a PEM certificate and key, or PKCS#12.
    Upload {
        /// The certificate (PEM). Alone, it must have been issued for GuardMDM's last
        /// request (guardmdm apns csr).
        #[arg(long, conflicts_with = "p12")]
        cert: Option<PathBuf>,
        /// Its private key (PEM, unencrypted), when GuardMDM did not make it.
        #[arg(long, requires = "cert")]
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
        ("State", view.state.as_str().to_string()),
        ("SHA-256", view.fingerprint.clone()),
    ] {
        println!("{:<11}{v}", format!("{k}:"));
    }
    if !view.message.is_empty() {
        println!("{}", view.message);
    }
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `apns csr`: the vendor files are checked before the server makes a new key, so a mistake
/// in them changes nothing.
async fn push_request(
    client: &ApiClient,
    output: Option<PathBuf>,
    vendor: Option<(PathBuf, PathBuf, Vec<PathBuf>)>,
    pending: bool,
) -> anyhow::Result<()> {
    let signer = match &vendor {
        Some((cert, key, chain)) => {
            let mut texts = vec![read(cert)?];
            for file in chain {
                texts.push(read(file)?);
            }
            let refs: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
            let signer = VendorSigner::new(&refs, &read(key)?)?;
            for note in signer.notes() {
                eprintln!("Note: {note}.");
            }
            Some(signer)
        }
        None => None,
    };
    let view: PushRequestView = if pending {
        let view: Option<PushRequestView> = client.get(&["apns", "csr"]).await?;
        view.context("GuardMDM has no pending push certificate request: run guardmdm apns csr")?
    } else {
        client
            .send_json(Method::POST, &["apns", "csr"], &serde_json::json!({}))
            .await?
    };
    let (contents, default) = match &signer {
        Some(signer) => (
            signer.sign_request(view.csr_pem.as_bytes())?,
            "GuardMDM_push_request.b64",
        ),
        None => (view.csr_pem.clone(), "GuardMDM_push.csr"),
    };
    let path = output.unwrap_or_else(|| PathBuf::from(default));
    std::fs::write(&path, contents).with_context(|| {
        format!(
            "cannot write {} (the request is kept on the server: write it again with guardmdm apns csr --pending -o FILE)",
            path.display()
        )
    })?;
    match &signer {
        Some(signer) => {
            eprintln!(
                "Wrote the signed push certificate request to {} (signed by {}).",
                path.display(),
                signer.chain_subjects().first().map_or("", String::as_str)
            );
            eprintln!(
                "Next: at https://identity.apple.com sign in with your organisation's Apple Account (the same one for every renewal), create a certificate (or renew the existing one), upload {}, download the certificate, then: guardmdm apns upload --cert FILE",
                path.display()
            );
        }
        None => {
            eprintln!("Wrote the push certificate request to {}.", path.display());
            eprintln!("{}", view.message);
        }
    }
    if let Some(replaced) = view.replaced {
        eprintln!(
            "This made a new key and replaced the pending request of {replaced}: a certificate issued for that one cannot be uploaded without its key."
        );
    }
    Ok(())
}

pub(crate) async fn run_apns(client: &ApiClient, command: ApnsCommand) -> anyhow::Result<()> {
    match command {
        ApnsCommand::Csr {
            output,
            vendor_cert,
            vendor_key,
            vendor_chain,
            pending,
        } => {
            let vendor = vendor_cert
                .zip(vendor_key)
                .map(|(c, k)| (c, k, vendor_chain));
            push_request(client, output, vendor, pending).await?;
        }
        ApnsCommand::Upload {
            cert,
            key,
            p12,
            p12_password,
            force,
        } => {
            let body = match (cert, key, p12) {
                (Some(cert), None, None) => serde_json::json!({
                    "certificate_pem": String::from_utf8_lossy(&read(&cert)?),
                    "force": force,
                }),
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
                _ => bail!("give --cert (alone, or with --key), or --p12"),
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
                    println!(
                        "No push certificate yet: make a request (guardmdm apns csr), then upload Apple's certificate (guardmdm apns upload --cert FILE)"
                    )
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
            let view = send_command(
                client,
                &udid,
                &request_type,
                file.as_deref(),
                identifier,
                message,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!(
                    "Queued {} {} for {udid} (pushed).",
                    view.request_type, view.uuid
                );
            }
        }
        CommandsCommand::List { udid, json } => list_commands(client, &udid, json).await?,
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

/// Queues a command for the device `udid`: a `raw` one is the plist in `file` as is; any
/// other is described in JSON, with `file` as its base64 payload.
async fn send_command(
    client: &ApiClient,
    udid: &str,
    request_type: &str,
    file: Option<&Path>,
    identifier: Option<String>,
    message: Option<String>,
) -> anyhow::Result<CommandView> {
    let segments = ["enrollments", udid, "commands"];
    if request_type.eq_ignore_ascii_case("raw") {
        let Some(file) = file else {
            bail!("a raw command needs --file with the command plist");
        };
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        return client
            .send_bytes(Method::POST, &segments, &(), "application/x-plist", bytes)
            .await;
    }
    let payload = match file {
        Some(f) => Some(
            base64::engine::general_purpose::STANDARD
                .encode(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?),
        ),
        None => None,
    };
    let body = serde_json::json!({
        "request_type": request_type,
        "payload_base64": payload,
        "identifier": identifier,
        "message": message,
    });
    client.send_json(Method::POST, &segments, &body).await
}

/// `commands list`: a device's commands, newest first, with their status.
async fn list_commands(client: &ApiClient, udid: &str, json: bool) -> anyhow::Result<()> {
    let list: Vec<CommandView> = client.get(&["enrollments", udid, "commands"]).await?;
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
                c.status.to_string(),
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
    Ok(())
}
